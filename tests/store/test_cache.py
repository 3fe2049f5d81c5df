"""Where the cache is, and what its key depends on: the captures' names and bytes, their sidecars,
the parameters that change the tables, and the schema and tool versions."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from inspector.parse.connection import ParserOptions
from inspector.store import cache_dir, cache_key, store_inputs
from tests.conftest import BUNDLED


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("INSPECTOR_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("INSPECTOR_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "wire-inspector"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "wire-inspector"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "wire-inspector"


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    shutil.copy(BUNDLED / "chat.pcap", tmp_path / "chat.pcap")
    shutil.copy(BUNDLED / "chat.json", tmp_path / "chat.json")
    return tmp_path / "chat.pcap"


def key(paths, options: ParserOptions | None = None) -> str:
    return store_inputs([str(p) for p in paths], options or ParserOptions()).key


def test_the_key_is_the_same_for_the_same_inputs(capture: Path):
    inputs = store_inputs([str(capture)], ParserOptions())
    assert inputs.key == key([capture]) == cache_key(inputs.captures, inputs.parameters)
    assert len(inputs.key) == 64


def test_the_key_changes_with_what_changes_the_tables(capture: Path, tmp_path: Path):
    keys = {key([capture])}
    keys.add(key([capture], ParserOptions(max_ws_message_bytes=1 << 20)))
    keys.add(key([capture], ParserOptions(max_decompressed_per_connection=1 << 20)))
    keys.add(store_inputs([str(capture)], ParserOptions(), max_inflated_bytes=1 << 20).key)  # refused or not: the same answer
    keys.add(key([capture, BUNDLED / "feed.pcap"]))
    keys.add(key([BUNDLED / "feed.pcap", capture]))  # connection ids follow the order of the captures
    os.symlink(capture, tmp_path / "other-name.pcap")  # the tables hold the name
    keys.add(key([tmp_path / "other-name.pcap"]))
    assert len(keys) == 7
    # the sidecar labels the variants: its bytes count, and whether there is one
    with open(tmp_path / "chat.json", "a") as sidecar:
        sidecar.write(" ")
    keys.add(key([capture]))
    (tmp_path / "chat.json").unlink()
    keys.add(key([capture]))
    # the capture's bytes
    with open(capture, "ab") as data:
        data.write(b"\0")
    keys.add(key([capture]))
    assert len(keys) == 10


def test_a_pipe_or_a_missing_file_has_no_key(tmp_path: Path):
    os.mkfifo(tmp_path / "fifo")
    for path in (tmp_path / "fifo", tmp_path / "missing.pcap", tmp_path):
        inputs = store_inputs([str(path)], ParserOptions())
        assert inputs.key is None
        assert inputs.captures[0].sha256 is None


def test_inputs_without_digests_name_and_size_the_captures_and_have_no_key(capture: Path):
    inputs = store_inputs([str(capture)], ParserOptions(), digests=False)
    assert inputs.key is None
    assert (inputs.captures[0].name, inputs.captures[0].size, inputs.captures[0].sha256) == (str(capture), capture.stat().st_size, None)
