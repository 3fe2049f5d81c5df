"""A store read back is the analysis that was written: every table, dtypes and row order included;
SQL over it agrees with pandas over the same tables; a folder that is not a current store is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import SCHEMA_VERSION, SCHEMAS, TABLE_NAMES
from inspector.errors import CaptureError, OutdatedStoreError, StoreError
from inspector.parse.connection import ParserOptions
from inspector.store import open_store, store_inputs, write_analysis
from inspector.store.layout import LAYOUT_VERSION, META_FILE, part_files
from tests import hostile
from tests.conftest import BUNDLED, analyze_cached, bundled_files, corpus_params
from tests.hostile import small

BUNDLED_PATHS = [str(path) for path in bundled_files()]


def stored(analysis, paths: list[str], folder: Path, **options):
    return open_store(write_analysis(analysis, folder, store_inputs(paths, ParserOptions()), **options))


def assert_same_tables(store, analysis) -> None:
    """Every table equal, values and row order, with the dtypes of tables.SCHEMAS.  (The analysis
    itself gives findings.conn_id as int64, not the schema's Int64, when there are findings: the
    same values, and the store gives the schema's dtype.)"""
    for name in TABLE_NAMES:
        pdt.assert_frame_equal(store.table(name), analysis.tables[name].astype(SCHEMAS[name]), check_exact=True, obj=name)


@pytest.mark.parametrize("path", bundled_files(), ids=lambda p: p.name)
def test_every_table_of_a_bundled_capture_reads_back_exactly(path: Path, tmp_path: Path):
    analysis = analyze_cached(str(path))
    with stored(analysis, [str(path)], tmp_path / "store") as store:
        assert_same_tables(store, analysis)
        assert store.analysis().warnings == analysis.warnings


@pytest.mark.parametrize("path", corpus_params())
def test_every_table_of_a_corpus_capture_reads_back_exactly(path: Path, tmp_path: Path):
    analysis = analyze_cached(str(path))
    with stored(analysis, [str(path)], tmp_path / "store") as store:
        assert_same_tables(store, analysis)
        assert store.meta["rows"] == {name: len(analysis.tables[name]) for name in TABLE_NAMES}


@pytest.mark.parametrize("name", list(hostile.CLASSES))
def test_every_table_of_a_hostile_capture_reads_back_exactly(name: str, tmp_path: Path):
    """Whatever the capture holds (bad UTF-8 made U+FFFD, control characters, huge counts), the store keeps it."""
    path = str(small(name).write(tmp_path))
    try:
        analysis = analyze_captures([path], jobs=1)
    except CaptureError as exc:
        pytest.skip(f"refused as bad input, so no tables to store: {exc}")
    with stored(analysis, [path], tmp_path / "store") as store:
        assert_same_tables(store, analysis)
        assert store.analysis().warnings == analysis.warnings


def test_several_captures_in_parts_of_a_few_rows_keep_the_row_order(tmp_path: Path):
    """Parts of 7 rows: rows tied on a table's order columns (message_costs: conn_id only) come
    back in the order they were written, across parts."""
    analysis = analyze_captures(BUNDLED_PATHS)
    with stored(analysis, BUNDLED_PATHS, tmp_path / "store", part_rows=7) as store:
        assert len(part_files(store.folder, "message_costs")) > 10
        assert_same_tables(store, analysis)


def test_store_json_says_what_the_store_was_made_from(tmp_path: Path):
    paths = [str(BUNDLED / "chat.pcap")]
    with stored(analyze_cached(paths[0]), paths, tmp_path / "store") as store:
        meta = store.meta
    assert (meta["format"], meta["layout_version"], meta["schema_version"]) == ("wire-inspector-store", LAYOUT_VERSION, SCHEMA_VERSION)
    [capture] = meta["captures"]
    assert capture["name"] == paths[0]
    assert capture["size"] == (BUNDLED / "chat.pcap").stat().st_size
    import hashlib

    assert capture["sha256"] == hashlib.sha256((BUNDLED / "chat.pcap").read_bytes()).hexdigest()
    assert capture["sidecar_sha256"] == hashlib.sha256((BUNDLED / "chat.json").read_bytes()).hexdigest()
    assert meta["parameters"]["max_ws_message_bytes"] == ParserOptions().max_ws_message_bytes
    assert len(meta["key"]) == 64


@pytest.fixture(scope="module")
def bundled_store(tmp_path_factory):
    analysis = analyze_captures(BUNDLED_PATHS)
    store = stored(analysis, BUNDLED_PATHS, tmp_path_factory.mktemp("bundled") / "store")
    yield store, analysis.tables
    store.close()


def test_sql_aggregates_equal_pandas_aggregates(bundled_store):
    store, tables = bundled_store
    by_sql = store.sql("SELECT kind, count(*) AS connections, sum(wire_bytes) AS wire_bytes, sum(app_payload_bytes) AS payload, "
                       "avg(efficiency) AS efficiency FROM connections GROUP BY kind ORDER BY kind")
    connections = tables["connections"]
    by_pandas = connections.groupby("kind").agg(connections=("conn_id", "size"), wire_bytes=("wire_bytes", "sum"),
                                                payload=("app_payload_bytes", "sum"), efficiency=("efficiency", "mean")).reset_index()
    assert by_sql["kind"].tolist() == by_pandas["kind"].tolist()
    assert by_sql["connections"].tolist() == by_pandas["connections"].tolist()
    assert [int(v) for v in by_sql["wire_bytes"]] == by_pandas["wire_bytes"].tolist()
    assert [int(v) for v in by_sql["payload"]] == by_pandas["payload"].tolist()
    assert by_sql["efficiency"].tolist() == pytest.approx(by_pandas["efficiency"].tolist())


def test_sql_joins_tables_by_conn_id(bundled_store):
    store, tables = bundled_store
    by_sql = store.sql("SELECT c.variant, count(*) AS frames, sum(f.payload_length) AS payload FROM ws_frames f "
                       "JOIN connections c USING (conn_id) GROUP BY c.variant ORDER BY c.variant")
    frames = tables["ws_frames"].merge(tables["connections"][["conn_id", "variant"]], on="conn_id")
    by_pandas = frames.groupby("variant").agg(frames=("frame_id", "size"), payload=("payload_length", "sum")).reset_index()
    assert by_sql["variant"].tolist() == by_pandas["variant"].tolist()
    assert by_sql["frames"].tolist() == by_pandas["frames"].tolist()
    assert [int(v) for v in by_sql["payload"]] == by_pandas["payload"].tolist()


def test_nulls_are_null_in_sql(bundled_store):
    """Missing values (a NaN efficiency, an NA status) are SQL NULLs, skipped by aggregates as pandas skips them."""
    store, tables = bundled_store
    http = tables["http_messages"]
    counted = store.sql("SELECT count(status) AS statuses, count(*) - count(method) AS responses FROM http_messages")
    assert counted["statuses"].tolist() == [int(http["status"].notna().sum())]
    assert counted["responses"].tolist() == [int(http["method"].isna().sum())]


def test_values_are_bound_never_spliced(bundled_store):
    store, tables = bundled_store
    hostile = "x' OR '1'='1"
    assert store.sql("SELECT count(*) AS n FROM connections WHERE variant = ?", [hostile])["n"].tolist() == [0]
    variant = tables["connections"]["variant"].dropna().iloc[0]
    expected = int((tables["connections"]["variant"] == variant).sum())
    assert store.sql("SELECT count(*) AS n FROM connections WHERE variant = $v", {"v": variant})["n"].tolist() == [expected]


def test_an_empty_table_still_has_its_columns(bundled_store):
    store, tables = bundled_store
    assert len(tables["findings"]) == 0
    assert list(store.sql("SELECT * FROM findings").columns) == list(SCHEMAS["findings"])
    pdt.assert_frame_equal(store.table("findings"), tables["findings"])


def test_a_failing_query_is_one_line(bundled_store):
    store, _ = bundled_store
    for query in ("SELECT nope FROM connections", "SELEC 1", "SELECT * FROM no_such_table"):
        with pytest.raises(StoreError) as caught:
            store.sql(query)
        assert str(caught.value).startswith("query failed: ") and "\n" not in str(caught.value)


def test_a_store_under_a_name_duckdb_would_read_as_a_pattern(tmp_path: Path):
    """Folders named with * ? [ ] ' hold stores too, and a look-alike folder next to one is not read with it."""
    path = str(BUNDLED / "chat.pcap")
    analysis = analyze_cached(path)
    other = stored(analyze_cached(str(BUNDLED / "feed.pcap")), [str(BUNDLED / "feed.pcap")], tmp_path / "sXa'Z")
    other.close()
    with stored(analysis, [path], tmp_path / "s*[a]'?") as store:
        assert_same_tables(store, analysis)
        assert store.sql("SELECT count(*) AS n FROM connections")["n"].tolist() == [len(analysis.tables["connections"])]
    # DuckDB reads \\ in a pattern as a folder separator: alone it is no pattern and reads as itself
    with stored(analysis, [path], tmp_path / "back\\slash") as store:
        assert_same_tables(store, analysis)
    with stored(analysis, [path], tmp_path / "back\\slash*") as store, pytest.raises(StoreError, match="cannot be read"):
        store.sql("SELECT count(*) FROM connections")


# --- folders that are not a current store -----------------------------------------------


@pytest.fixture
def chat_store(tmp_path: Path) -> Path:
    path = str(BUNDLED / "chat.pcap")
    return write_analysis(analyze_cached(path), tmp_path / "store", store_inputs([path], ParserOptions()))


def _edit_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / META_FILE).read_text())
    meta.update(changes)
    (folder / META_FILE).write_text(json.dumps(meta))


def _refusal(folder: Path) -> str:
    with pytest.raises(StoreError) as caught:
        open_store(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder}: ") and "\n" not in message
    return message


def test_not_a_store(tmp_path: Path):
    assert "no such folder" in _refusal(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    assert "not a folder" in _refusal(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    assert "not a store (no store.json)" in _refusal(tmp_path / "empty")
    for content in ("not json", "[1, 2]", '{"format": "something-else"}', "\xff"):
        folder = tmp_path / f"other{len(content)}"
        folder.mkdir()
        (folder / META_FILE).write_text(content, errors="surrogateescape")
        assert "not a store" in _refusal(folder)


def test_a_newer_store_is_refused(chat_store: Path):
    _edit_meta(chat_store, schema_version=SCHEMA_VERSION + 1)
    assert "written by a newer wire-inspector" in _refusal(chat_store)
    _edit_meta(chat_store, schema_version=SCHEMA_VERSION, layout_version=LAYOUT_VERSION + 1)
    assert "written by a newer wire-inspector" in _refusal(chat_store)


def test_an_older_store_is_outdated_not_misread(chat_store: Path):
    _edit_meta(chat_store, schema_version=SCHEMA_VERSION - 1)
    with pytest.raises(OutdatedStoreError, match="written by an older wire-inspector"):
        open_store(chat_store)


def test_a_half_written_store_is_refused(chat_store: Path):
    temporary = chat_store.with_name(f".{chat_store.name}.tmp-12345-0badcafe")
    shutil.copytree(chat_store, temporary)
    assert "half-written store" in _refusal(temporary)
    (chat_store / META_FILE).unlink()
    assert "half-written store" in _refusal(chat_store)


def test_a_store_missing_a_table_is_damaged(chat_store: Path):
    shutil.rmtree(chat_store / "ws_frames")
    assert "damaged store: no parts for table ws_frames" in _refusal(chat_store)


def test_a_partial_part_is_never_read(chat_store: Path):
    """A writer killed while writing a part leaves `.part-....parquet.partial`, which no query sees."""
    rows = open_store(chat_store).sql("SELECT count(*) AS n FROM connections")["n"].tolist()
    (chat_store / "connections" / ".part-x-00000000.parquet.partial").write_bytes(b"PAR1 half")
    with open_store(chat_store) as store:
        assert store.sql("SELECT count(*) AS n FROM connections")["n"].tolist() == rows
        assert len(store.table("connections")) == rows[0]


def test_table_dtypes_are_the_schema(chat_store: Path):
    with open_store(chat_store) as store:
        for name in TABLE_NAMES:
            table = store.table(name)
            assert {column: str(dtype) for column, dtype in table.dtypes.items()} == SCHEMAS[name], name
            assert isinstance(table.index, pd.RangeIndex)
