"""A capture analysed straight into a store (rows streamed to disk as they are made) gives
exactly the tables of the in-memory analysis, whatever the number of workers, and a store
that holds nothing else: no raw rows left, nothing written when the analysis fails."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pandas.testing as pdt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from inspector.analysis import pipeline, rows
from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import TABLE_NAMES
from inspector.errors import CaptureError, StoreError
from inspector.parse.connection import ParserOptions
from inspector.store import analyze_into_cache, build, cache_entry, cached_store, open_store, store_inputs
from inspector.store.build import analyze_into_store
from inspector.store.layout import part_files
from inspector.store.schema import to_frame
from tests import conversations
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


# jobs=1: one worker per file, whose rows are written as parts as they are made (build.EagerParts);
# jobs=2: two workers, whose rows are written after them from raw streams.
@pytest.mark.parametrize("jobs", [1, 2])
def test_rows_spilled_all_along_and_written_in_many_parts_are_the_same_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int):
    # Rows become chunks every 16, workers hand them on at every sweep of the open connections,
    # and the store takes them in parts of 10 rows: many spills and parts per worker, from a
    # few thousand packets, with WebSocket messages open across spills.
    monkeypatch.setattr(rows, "CHUNK_ROWS", 16)
    monkeypatch.setattr(rows, "CHECK_FULL_EVENTS", 4)
    monkeypatch.setattr(pipeline, "SWEEP_EVERY_PACKETS", 64)
    monkeypatch.setattr(pipeline, "SPILL_ROWS", 1)
    monkeypatch.setattr(build, "PART_ROWS", 10)
    store = streamed_equals_in_memory(BUNDLED, tmp_path / "store", jobs=jobs)
    for table in ("ws_frames", "message_costs", "http_messages"):
        parts = [path.name for path in part_files(store, table)]
        assert len(parts) > 2 * len(BUNDLED) and any(not name.endswith("-00000000.parquet") for name in parts), parts


@pytest.mark.parametrize("segment_bytes", [3, 10])
def test_frames_whose_message_completes_after_their_chunk_left_are_written_in_their_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                                        segment_bytes: int):
    """A fragmented WebSocket message whose first frames leave in chunks before it completes:
    those chunks wait for their message_id (build.HeldChunks), the chunks after them are written
    on, and the held ones end up in their place among the table's parts."""
    monkeypatch.setattr(rows, "CHUNK_ROWS", 1)
    monkeypatch.setattr(rows, "CHECK_FULL_EVENTS", 1)
    monkeypatch.setattr(pipeline, "SWEEP_EVERY_PACKETS", 2)
    monkeypatch.setattr(pipeline, "SPILL_ROWS", 1)
    monkeypatch.setattr(build, "PART_ROWS", 2)
    held_places = []
    write = build.HeldChunks.write

    def counted_write(held, shard):
        held_places.extend(place for place, _rows in held.places)
        write(held, shard)
    monkeypatch.setattr(build.HeldChunks, "write", counted_write)
    turns = conversations.ws_session()
    capture = tmp_path / "ws-session.pcap"
    capture.write_bytes(conversations.capture_of(turns, conversations.in_segments(turns, segment_bytes)))
    store = streamed_equals_in_memory([str(capture)], tmp_path / "store", jobs=1)
    parts = part_files(store, "ws_frames")
    assert held_places and len(parts) > len(held_places) and max(held_places) < len(parts) - 1, (held_places, parts)
    # In their place: the parts one after the other are the table, in its order (no sort on reading).
    in_part_order = to_frame("ws_frames", pa.concat_tables(pq.read_table(path) for path in parts))
    pdt.assert_frame_equal(in_part_order, analyze_captures([str(capture)], jobs=1).tables["ws_frames"], check_exact=True)
    assert sorted(os.listdir(store)) == sorted([*TABLE_NAMES, "store.json"])


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_bad_capture_among_good_ones_leaves_no_store_and_no_temporary_folder(tmp_path: Path, jobs: int):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture file at all")
    paths = [BUNDLED[0], str(bad)]
    with pytest.raises(CaptureError, match="bad.pcap"):
        analyze_into_store(paths, tmp_path / "store", store_inputs(paths, ParserOptions()), jobs=jobs)
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


@pytest.mark.parametrize("failing", ["while the analysis goes on", "when the analysis fails"])
def test_parts_written_as_rows_are_made_fail_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str):
    """One worker's parts are written by a thread as its rows are made (build.EagerParts): a
    failure there, or of the analysis while the thread writes, fails the whole run with its
    error, leaves no store or temporary folder, and no thread behind."""
    monkeypatch.setattr(pipeline, "SPILL_ROWS", 1)  # chunks go to the thread all along
    monkeypatch.setattr(rows, "CHUNK_ROWS", 16)
    monkeypatch.setattr(rows, "CHECK_FULL_EVENTS", 4)
    if failing == "while the analysis goes on":
        def full_disk(parts, table, chunk):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(build, "_add_chunk", full_disk)
        expected = (StoreError, "No space left on device")
    else:
        sweep = pipeline._Shard.sweep
        calls = iter(range(1_000_000))

        def failing_sweep(shard):
            sweep(shard)
            if next(calls) == 3:
                raise RuntimeError("the analysis broke")
        monkeypatch.setattr(pipeline._Shard, "sweep", failing_sweep)
        monkeypatch.setattr(pipeline, "SWEEP_EVERY_PACKETS", 64)
        expected = (RuntimeError, "the analysis broke")
    paths = [str(path) for path in bundled_files() if path.name == "chat.pcap"]
    with pytest.raises(expected[0], match=expected[1]):
        analyze_into_store(paths, tmp_path / "store", store_inputs(paths, ParserOptions()), jobs=1)
    assert os.listdir(tmp_path) == []
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("store-parts")]
