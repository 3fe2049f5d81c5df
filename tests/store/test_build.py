"""A capture analysed straight into a store (rows streamed to disk as they are made) gives
exactly the tables of the in-memory analysis, whatever the number of workers, and a store
that holds nothing else: no raw rows left, nothing written when the analysis fails."""

from __future__ import annotations

import os
from pathlib import Path

import pandas.testing as pdt
import pytest

from inspector.analysis import pipeline, rows
from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import TABLE_NAMES
from inspector.errors import CaptureError
from inspector.parse.connection import ParserOptions
from inspector.store import analyze_into_cache, build, cache_entry, cached_store, open_store, store_inputs
from inspector.store.build import analyze_into_store
from inspector.store.layout import part_files
from tests.conftest import bundled_files, corpus_params

BUNDLED = [str(path) for path in bundled_files()]


def streamed_equals_in_memory(paths: list[str], folder: Path, jobs: int) -> Path:
    expected = analyze_captures(paths, jobs=jobs)
    store, warnings = analyze_into_store(paths, folder, store_inputs(paths, ParserOptions()), jobs=jobs)
    assert warnings == expected.warnings
    with open_store(store) as opened:
        assert opened.meta["warnings"] == expected.warnings
        for name in TABLE_NAMES:
            pdt.assert_frame_equal(opened.table(name), expected.tables[name], check_exact=True, obj=name)
    return store


@pytest.mark.parametrize("jobs", [1, 2])
def test_bundled_captures_streamed_into_a_store_are_the_in_memory_tables(tmp_path: Path, jobs: int):
    store = streamed_equals_in_memory(BUNDLED, tmp_path / "store", jobs)
    assert sorted(os.listdir(store)) == sorted([*TABLE_NAMES, "store.json"])  # the raw rows are gone


@pytest.mark.parametrize("path", corpus_params())
def test_corpus_captures_streamed_into_a_store_are_the_in_memory_tables(tmp_path: Path, path: Path):
    streamed_equals_in_memory([str(path)], tmp_path / "store", jobs=2)


def test_rows_spilled_all_along_and_written_in_many_parts_are_the_same_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Rows become chunks every 16, workers hand them on at every sweep of the open connections,
    # and the store takes them in parts of 10 rows: many spills and parts per worker, from a
    # few thousand packets, with WebSocket messages open across spills.
    monkeypatch.setattr(rows, "CHUNK_ROWS", 16)
    monkeypatch.setattr(rows, "CHECK_FULL_EVENTS", 4)
    monkeypatch.setattr(pipeline, "SWEEP_EVERY_PACKETS", 64)
    monkeypatch.setattr(pipeline, "SPILL_ROWS", 1)
    monkeypatch.setattr(build, "PART_ROWS", 10)
    store = streamed_equals_in_memory(BUNDLED, tmp_path / "store", jobs=2)
    for table in ("ws_frames", "message_costs", "http_messages"):
        parts = [path.name for path in part_files(store, table)]
        assert len(parts) > 2 * len(BUNDLED) and any(not name.endswith("-00000000.parquet") for name in parts), parts


def test_a_bad_capture_among_good_ones_leaves_no_store_and_no_temporary_folder(tmp_path: Path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture file at all")
    paths = [BUNDLED[0], str(bad)]
    with pytest.raises(CaptureError, match="bad.pcap"):
        analyze_into_store(paths, tmp_path / "store", store_inputs(paths, ParserOptions()), jobs=2)
    assert sorted(os.listdir(tmp_path)) == ["bad.pcap"]


def test_a_capture_analysed_into_the_cache_is_found_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("INSPECTOR_CACHE_DIR", str(tmp_path / "cache"))
    paths = [BUNDLED[0]]
    inputs = store_inputs(paths, ParserOptions())
    entry, warnings = analyze_into_cache(paths, inputs)
    assert entry == cache_entry(inputs) and warnings == []
    again, _ = analyze_into_cache(paths, inputs)  # the same analysis again: the store already there stays
    assert again == entry and os.listdir(tmp_path / "cache") == [entry.name]
    with cached_store(inputs) as store:
        pdt.assert_frame_equal(store.table("connections"), analyze_captures(paths).tables["connections"], check_exact=True)
