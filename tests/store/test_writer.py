"""Writing a store is all or nothing: an exception or Ctrl-C mid-write leaves the target as it was and
no temporary folder; a store replaces a store, never someone's folder; writers of the same analysis
at once end with one store; several writers can put parts into one store."""

from __future__ import annotations

import os
from pathlib import Path

import pandas.testing as pdt
import pytest

from inspector.analysis.pipeline import Analysis
from inspector.analysis.tables import SCHEMAS, TABLE_NAMES, make_table
from inspector.errors import StoreError
from inspector.parse.connection import ParserOptions
from inspector.store import PartWriter, StoreWriter, open_store, store_inputs, write_analysis
from inspector.store.layout import META_FILE
from tests.conftest import BUNDLED, analyze_cached

CHAT = str(BUNDLED / "chat.pcap")
FEED = str(BUNDLED / "feed.pcap")


def inputs(path: str = CHAT):
    return store_inputs([path], ParserOptions())


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


class TablesThatStop(dict):
    """An analysis's tables that raise `error` when the writer takes the `after`-th table."""

    def __init__(self, tables: dict, error: BaseException, after: int) -> None:
        super().__init__(tables)
        self.error, self.left = error, after

    def __getitem__(self, name):
        self.left -= 1
        if self.left < 0:
            raise self.error
        return super().__getitem__(name)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), OSError(28, "No space left on device"), RuntimeError("bug")],
                         ids=["ctrl-c", "oserror", "bug"])
def test_a_write_stopped_half_way_leaves_nothing(tmp_path: Path, error: BaseException):
    analysis = analyze_cached(CHAT)
    stopping = Analysis(tables=TablesThatStop(analysis.tables, error, after=4), warnings=[])
    with pytest.raises(type(error)):
        write_analysis(stopping, tmp_path / "store", inputs())
    assert os.listdir(tmp_path) == []


def test_a_write_stopped_half_way_leaves_the_previous_store(tmp_path: Path):
    target = write_analysis(analyze_cached(CHAT), tmp_path / "store", inputs())
    before = folder_contents(target)
    feed = analyze_cached(FEED)
    with pytest.raises(KeyboardInterrupt):
        write_analysis(Analysis(tables=TablesThatStop(feed.tables, KeyboardInterrupt(), after=6), warnings=[]), target, inputs(FEED))
    assert folder_contents(target) == before
    assert os.listdir(tmp_path) == ["store"]


def test_leaving_the_block_without_commit_writes_nothing(tmp_path: Path):
    with StoreWriter(tmp_path / "store") as writer:
        writer.add_part("connections", make_table("connections"))
        assert writer.folder.parent == tmp_path and writer.folder.name.startswith(".store.tmp-")
    assert os.listdir(tmp_path) == []


def test_a_part_that_breaks_the_schema_is_refused(tmp_path: Path):
    connections = analyze_cached(CHAT).tables["connections"]
    with StoreWriter(tmp_path / "store") as writer:
        with pytest.raises(ValueError, match="columns"):
            writer.add_part("connections", connections.drop(columns=["kind"]))
        with pytest.raises(ValueError, match="non-nullable"):
            writer.add_part("connections", connections.astype({"packets": "Int64"}).assign(packets=None))
    assert os.listdir(tmp_path) == []


def test_a_store_replaces_a_store(tmp_path: Path):
    target = write_analysis(analyze_cached(CHAT), tmp_path / "store", inputs())
    write_analysis(analyze_cached(FEED), target, inputs(FEED))
    with open_store(target) as store:
        assert store.meta["captures"][0]["name"] == FEED
        pdt.assert_frame_equal(store.table("connections"), analyze_cached(FEED).tables["connections"])
    assert os.listdir(tmp_path) == ["store"]


def test_an_empty_folder_becomes_a_store(tmp_path: Path):
    (tmp_path / "store").mkdir()
    write_analysis(analyze_cached(CHAT), tmp_path / "store", inputs())
    assert open_store(tmp_path / "store").meta["rows"]["connections"] == len(analyze_cached(CHAT).tables["connections"])


def test_a_folder_that_is_not_a_store_is_never_written_over(tmp_path: Path):
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(StoreError, match="not a store, left as it is"):
        write_analysis(analyze_cached(CHAT), precious, inputs())
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is not a folder"):
        write_analysis(analyze_cached(CHAT), tmp_path / "file", inputs())
    assert (precious / "thesis.txt").read_text() == "years of work"
    assert sorted(os.listdir(tmp_path)) == ["documents", "file"]


def test_a_folder_that_turns_up_during_the_write_is_not_written_over(tmp_path: Path):
    with StoreWriter(tmp_path / "store") as writer:
        (tmp_path / "store").mkdir()
        (tmp_path / "store" / "notes.txt").write_text("mine")
        with pytest.raises(StoreError, match="not a store"):
            writer.commit(inputs().meta())
    assert os.listdir(tmp_path) == ["store"]
    assert os.listdir(tmp_path / "store") == ["notes.txt"]


def test_writers_of_the_same_analysis_at_once_end_with_one_store(tmp_path: Path):
    """Two writers of one cache key, committing one after the other: the first store stays (the same
    folder, not rewritten), the second is dropped, and no temporary folder is left."""
    analysis, key_inputs = analyze_cached(CHAT), inputs()
    target = tmp_path / "entry"
    first, second = StoreWriter(target, keep_existing=True), StoreWriter(target, keep_existing=True)
    for writer in (first, second):
        for name in TABLE_NAMES:
            writer.add_part(name, analysis.tables[name])
    first.commit({**key_inputs.meta(), "warnings": []})
    inode, before = os.stat(target).st_ino, folder_contents(target)
    second.commit({**key_inputs.meta(), "warnings": []})
    assert os.stat(target).st_ino == inode and folder_contents(target) == before
    assert os.listdir(tmp_path) == ["entry"]


def test_keep_existing_replaces_what_is_not_the_same_current_store(tmp_path: Path):
    target = write_analysis(analyze_cached(FEED), tmp_path / "entry", inputs(FEED))
    write_analysis(analyze_cached(CHAT), target, inputs(), keep_existing=True)
    assert open_store(target).meta["key"] == inputs().key
    (target / META_FILE).unlink()  # damaged: replaced too
    write_analysis(analyze_cached(CHAT), target, inputs(), keep_existing=True)
    assert open_store(target).meta["key"] == inputs().key
    assert os.listdir(tmp_path) == ["entry"]


def test_several_writers_put_parts_into_one_store(tmp_path: Path):
    """As shards or Dask tasks will: each under its own writer id, into the folder being written.
    A writer run again with its id (a retried task) writes the same part names over its own."""
    connections = analyze_cached(CHAT).tables["connections"]
    with StoreWriter(tmp_path / "store") as writer:
        odd, even = PartWriter(writer.folder, "shard_1"), PartWriter(writer.folder, "shard_0")
        odd.add_part("connections", connections[connections["conn_id"] % 2 == 1])
        even.add_part("connections", connections[connections["conn_id"] % 2 == 0])
        PartWriter(writer.folder, "shard_0").add_part("connections", connections[connections["conn_id"] % 2 == 0])
        writer.commit(inputs().meta())
    with open_store(tmp_path / "store") as store:
        pdt.assert_frame_equal(store.table("connections"), connections)
        assert store.meta["rows"]["connections"] == len(connections)
        assert len(store.table("ws_frames")) == 0
        assert list(store.table("ws_frames").columns) == list(SCHEMAS["ws_frames"])


def test_a_writer_id_is_a_plain_name(tmp_path: Path):
    for bad in ("", "a/b", "a*", "-x", "x" * 65):
        with pytest.raises(ValueError):
            PartWriter(tmp_path, bad)
