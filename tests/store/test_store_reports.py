"""What `inspector analyze` prints and exports, read from a store: the summary computed by SQL is
the summary of the in-memory analysis, and the tables streamed out of the store in chunks are,
byte for byte, the files the whole in-memory tables give."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

from inspector.analysis.export import EXPORT_CHUNK_ROWS, defuse_formulas, export_chunks, export_tables
from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import SCHEMAS, TABLE_NAMES
from inspector.errors import StoreError
from inspector.parse.connection import ParserOptions
from inspector.report import format_summary, store_summary
from inspector.store import StoreWriter, open_store, store_inputs, write_analysis
from inspector.store.layout import part_files
from inspector.store.schema import ROW_ORDER
from tests.conftest import analyze_cached, bundled_files, corpus_params

BUNDLED_PATHS = [str(path) for path in bundled_files()]
FORMATS = ("csv", "parquet", "json")


@pytest.fixture(scope="module")
def bundled_analysis():
    return analyze_captures(BUNDLED_PATHS)


def stored(analysis, paths: list[str], folder: Path, **options):
    return open_store(write_analysis(analysis, folder, store_inputs(paths, ParserOptions()), **options))


def schema_tables(analysis) -> dict[str, pd.DataFrame]:
    """The analysis's tables with the schema's dtypes: the analysis itself gives findings.conn_id as
    int64 rather than Int64 when no finding lacks a connection (a store always gives the schema's)."""
    return {name: analysis.tables[name].astype(SCHEMAS[name]) for name in TABLE_NAMES}


def reference_export(tables: dict[str, pd.DataFrame], directory: Path, fmt: str, row_group_rows: int | None = None) -> None:
    """The export as it was written before exports were streamed: each whole table by one pandas call."""
    directory.mkdir()
    for name, table in tables.items():
        path = directory / f"{name}.{fmt}"
        if fmt == "csv":
            out = table.copy()
            for column in out.columns:
                if str(out[column].dtype) in ("bool", "boolean"):
                    out[column] = out[column].map({True: "true", False: "false"})
            defuse_formulas(out).to_csv(path, index=False, lineterminator="\r\n")
        elif fmt == "parquet":
            table.to_parquet(path, index=False, row_group_size=row_group_rows)
        else:
            table.to_json(path, orient="records", lines=False, indent=None)


def assert_same_files(got: Path, expected: Path) -> None:
    assert sorted(os.listdir(got)) == sorted(os.listdir(expected))
    for name in os.listdir(expected):
        assert (got / name).read_bytes() == (expected / name).read_bytes(), name


# --- the summary ---------------------------------------------------------------------------


def test_summary_of_a_store_of_the_bundled_captures_is_the_summary_of_their_analysis(bundled_analysis, tmp_path: Path):
    # parts of a few rows each: every count and sum runs over many files
    with stored(bundled_analysis, BUNDLED_PATHS, tmp_path / "store", part_rows=7) as store:
        assert store_summary(store) == format_summary(bundled_analysis)


@pytest.mark.parametrize("path", bundled_files(), ids=lambda p: p.name)
def test_summary_of_a_store_of_a_bundled_capture(path: Path, tmp_path: Path):
    analysis = analyze_cached(str(path))
    with stored(analysis, [str(path)], tmp_path / "store") as store:
        assert store_summary(store) == format_summary(analysis)


@pytest.mark.parametrize("path", corpus_params())
def test_summary_of_a_store_of_a_corpus_capture(path: Path, tmp_path: Path):
    """The corpus has findings, non-TCP packets, midstream and lossy connections."""
    analysis = analyze_cached(str(path))
    with stored(analysis, [str(path)], tmp_path / "store", part_rows=5) as store:
        assert store_summary(store) == format_summary(analysis)


def test_summary_of_a_store_with_findings_and_no_connections_of_a_kind(tmp_path: Path):
    """Findings by rule sorted as pandas sorts them, and an empty REST part counted as 0."""
    from tests.conftest import corpus_path

    path = str(corpus_path("ndpi-http-linux-sll-midstream-lost.pcap"))
    analysis = analyze_cached(path)
    assert len(analysis.tables["findings"]["rule"].unique()) > 1
    with stored(analysis, [path], tmp_path / "store") as store:
        text = store_summary(store)
    assert text == format_summary(analysis) and "findings by rule:" in text


# --- the export ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_from_a_store_is_the_export_of_the_whole_tables(fmt: str, bundled_analysis, tmp_path: Path):
    tables = schema_tables(bundled_analysis)
    reference_export(tables, tmp_path / "reference", fmt)
    with stored(bundled_analysis, BUNDLED_PATHS, tmp_path / "store", part_rows=7) as store:
        written = store.export(tmp_path / "streamed", fmt)
    assert sorted(path.name for path in written) == sorted(f"{name}.{fmt}" for name in TABLE_NAMES)
    assert_same_files(tmp_path / "streamed", tmp_path / "reference")
    export_tables(tables, tmp_path / "in-memory", fmt)
    assert_same_files(tmp_path / "in-memory", tmp_path / "reference")


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_in_chunks_of_a_few_rows_is_the_same_file(fmt: str, bundled_analysis, tmp_path: Path):
    """Chunks cut anywhere (DuckDB's batches are of any size) change no byte: CSV and JSON cells are
    written one by one, and a Parquet row group is a chunk (as row_group_size cuts the whole table)."""
    rows = 16
    reference_export(schema_tables(bundled_analysis), tmp_path / "reference", fmt, row_group_rows=rows)
    with stored(bundled_analysis, BUNDLED_PATHS, tmp_path / "store", part_rows=7) as store:
        export_chunks({name: store.chunks(name, rows) for name in TABLE_NAMES}, tmp_path / "streamed", fmt)
    assert_same_files(tmp_path / "streamed", tmp_path / "reference")


@pytest.mark.parametrize("path", corpus_params())
def test_export_from_a_store_of_a_corpus_capture(path: Path, tmp_path: Path):
    analysis = analyze_cached(str(path))
    with stored(analysis, [str(path)], tmp_path / "store", part_rows=11) as store:
        for fmt in FORMATS:
            reference_export(schema_tables(analysis), tmp_path / f"reference-{fmt}", fmt)
            store.export(tmp_path / f"streamed-{fmt}", fmt)
            assert_same_files(tmp_path / f"streamed-{fmt}", tmp_path / f"reference-{fmt}")


def test_chunks_have_the_rows_asked_for(bundled_analysis, tmp_path: Path):
    with stored(bundled_analysis, BUNDLED_PATHS, tmp_path / "store", part_rows=7) as store:
        for name in TABLE_NAMES:
            chunks = list(store.chunks(name, 10))
            table = bundled_analysis.tables[name]
            assert [len(chunk) for chunk in chunks] == [10] * (len(table) // 10) + ([len(table) % 10] if len(table) % 10 or not len(table) else [])
            pdt.assert_frame_equal(pd.concat(chunks, ignore_index=True), table.astype(SCHEMAS[name]), check_exact=True, obj=name)


def test_parts_out_of_row_order_are_read_in_the_analysis_order(bundled_analysis, tmp_path: Path):
    """A store written by workers holds parts of interleaved connections (each connection's rows in
    the order they were made): the tables read back, whole or in chunks, and their export, are
    still in the analysis's row order."""
    tables = schema_tables(bundled_analysis)
    with StoreWriter(tmp_path / "store") as writer:
        for name in TABLE_NAMES:
            table = tables[name]
            # two "workers", odd and even connections, the even one's parts first
            shards = [table[table["conn_id"].fillna(0) % 2 == odd] for odd in (0, 1)] if name in ROW_ORDER else [table]
            for shard in shards:
                for start in range(0, len(shard), 5):
                    writer.add_part(name, shard.iloc[start:start + 5])
        folder = writer.commit(store_inputs(BUNDLED_PATHS, ParserOptions()).meta())
    written = pd.concat([pd.read_parquet(part) for part in part_files(folder, "ws_frames")])
    assert not written["conn_id"].is_monotonic_increasing  # DuckDB has to sort them
    reference_export(tables, tmp_path / "reference", "parquet", row_group_rows=8)
    with open_store(folder) as store:
        for name in TABLE_NAMES:
            pdt.assert_frame_equal(store.table(name), tables[name], check_exact=True, obj=name)
            pdt.assert_frame_equal(pd.concat(list(store.chunks(name, 8)), ignore_index=True), tables[name], check_exact=True, obj=name)
        export_chunks({name: store.chunks(name, 8) for name in TABLE_NAMES}, tmp_path / "streamed", "parquet")
        assert store_summary(store) == format_summary(bundled_analysis)
    assert_same_files(tmp_path / "streamed", tmp_path / "reference")


def test_a_damaged_part_fails_the_export_with_one_line_and_leaves_no_file(bundled_analysis, tmp_path: Path):
    """All or nothing: a part that cannot be read half-way through the export leaves no table
    behind, not even those written before it, and an earlier export in the folder stays whole."""
    out = tmp_path / "out"
    with stored(bundled_analysis, BUNDLED_PATHS, tmp_path / "store", part_rows=7) as store:
        earlier = {path.name: path.read_bytes() for path in store.export(out, "csv")}
    [*_, last] = part_files(tmp_path / "store", "ws_messages")
    last.write_bytes(last.read_bytes()[:100])
    with open_store(tmp_path / "store") as store:
        with pytest.raises(StoreError, match=r"cannot read table ws_messages") as error:
            store.export(out, "csv")
    assert "\n" not in str(error.value)
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == earlier


def test_chunk_size_is_the_parquet_row_group(tmp_path: Path):
    """An in-memory table longer than a chunk is written as row groups of EXPORT_CHUNK_ROWS rows."""
    import pyarrow.parquet as pq

    frame = pd.DataFrame({"frame_id": range(EXPORT_CHUNK_ROWS + 3)})
    [path] = export_tables({"ws_frames": frame}, tmp_path, "parquet")
    metadata = pq.read_metadata(path)
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [EXPORT_CHUNK_ROWS, 3]
    pdt.assert_frame_equal(pd.read_parquet(path), frame)
