"""The digest index (inspector.store.digests): a file unchanged since its digest was read is not
read again, and any change that a write, a replacement or a touch makes is read through again.

Whether the file was read is what the kernel saw (inotify: tests/filewatch.py), not a spy."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from inspector.parse.connection import ParserOptions
from inspector.store import cache_inputs, store_inputs
from inspector.store.cache import DIGESTS_FILE
from inspector.store.digests import INDEX_FORMAT, DigestIndex, file_sha256
from tests.conftest import BUNDLED
from tests.filewatch import FileWatch, settle

SIZE = 1 << 20


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


@pytest.fixture
def index(tmp_path: Path) -> DigestIndex:
    # no racy window: these files were written a moment ago (the window has a test of its own)
    return DigestIndex(tmp_path / "index" / DIGESTS_FILE, racy_ns=0)


def digest_reads(index: DigestIndex, path: Path) -> tuple[str, int]:
    """The index's digest of `path`, and how many times the file was opened meanwhile."""
    with FileWatch(path) as watch:
        digest = index.sha256(path)
        opened, _ = watch.events()
    return digest, opened


def test_an_unchanged_file_is_not_read_again(index: DigestIndex, data: Path):
    digest, opened = digest_reads(index, data)
    assert digest == file_sha256(data) and opened == 1
    for _ in range(3):
        assert digest_reads(index, data) == (digest, 0)
    # the same file by another path (a symlink): its real path is the key
    os.symlink(data, data.with_name("link.bin"))
    assert digest_reads(index, data.with_name("link.bin")) == (digest, 0)


def test_a_file_changed_in_place_with_its_size_and_mtime_restored_is_read_again(index: DigestIndex, data: Path):
    first, _ = digest_reads(index, data)
    before = data.stat()
    with open(data, "r+b") as f:
        f.write(b"changed")  # same size
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime set back: ctime moves on
    assert data.stat().st_size == before.st_size and data.stat().st_mtime_ns == before.st_mtime_ns
    digest, opened = digest_reads(index, data)
    assert opened == 1 and digest == file_sha256(data) != first


def test_a_touched_file_is_read_again(index: DigestIndex, data: Path):
    first, _ = digest_reads(index, data)
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 1_000_000_000))
    assert digest_reads(index, data) == (first, 1)  # read through, and the digest is what it was


def test_a_replaced_file_with_the_same_size_and_mtime_is_read_again(index: DigestIndex, data: Path, tmp_path: Path):
    first, _ = digest_reads(index, data)
    before = data.stat()
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(SIZE))
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(other, data)  # another inode under the same name, same size, same mtime
    assert (data.stat().st_size, data.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert data.stat().st_ino != before.st_ino
    digest, opened = digest_reads(index, data)
    assert opened == 1 and digest == file_sha256(data) != first


def test_a_grown_file_and_a_file_copied_over_are_read_again(index: DigestIndex, data: Path, tmp_path: Path):
    digest_reads(index, data)
    with open(data, "ab") as f:
        f.write(b"\0")
    digest, opened = digest_reads(index, data)
    assert opened == 1 and digest == file_sha256(data)
    shutil.copy2(BUNDLED / "chat.pcap", data)  # copy2 keeps the source's mtime
    digest, opened = digest_reads(index, data)
    assert opened == 1 and digest == file_sha256(BUNDLED / "chat.pcap")


def test_a_file_changed_a_moment_ago_is_not_remembered(tmp_path: Path, data: Path):
    """git's racily clean files: a write in the same clock tick as the read would leave mtime and
    ctime as they were, so a file younger than the racy window is read through each time."""
    index = DigestIndex(tmp_path / DIGESTS_FILE)  # the default window, 2 s: `data` was just written
    assert digest_reads(index, data)[1] == 1
    assert digest_reads(index, data)[1] == 1
    assert not (tmp_path / DIGESTS_FILE).exists()


def test_a_damaged_or_foreign_index_is_ignored(index: DigestIndex, data: Path):
    index.path.parent.mkdir(parents=True)
    for text in ("not json", "[]", json.dumps({"format": "other", "files": {}}),
                 json.dumps({"format": INDEX_FORMAT, "files": {str(data.resolve()): {"stat": "x", "sha256": 1}}})):
        index.path.write_text(text)
        digest, opened = digest_reads(index, data)
        assert digest == file_sha256(data) and opened == 1
    assert digest_reads(index, data) == (file_sha256(data), 0)  # and it was written anew


def test_an_index_that_cannot_be_written_costs_only_the_reading(tmp_path: Path, data: Path):
    (tmp_path / "file").write_text("")
    index = DigestIndex(tmp_path / "file" / DIGESTS_FILE, racy_ns=0)  # its folder is a file
    assert digest_reads(index, data) == (file_sha256(data), 1)
    assert digest_reads(index, data) == (file_sha256(data), 1)


def test_the_cache_inputs_use_the_index_and_give_the_same_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The cache's inputs are store_inputs' (the same key), the bundled capture (older than the
    racy window) and its sidecar read once, then found in the index beside the cache."""
    monkeypatch.setenv("INSPECTOR_CACHE_DIR", str(tmp_path / "cache"))
    chat = BUNDLED / "chat.pcap"
    settle(chat)
    settle(chat.with_suffix(".json"))
    with FileWatch(chat) as capture, FileWatch(chat.with_suffix(".json")) as sidecar:
        first = cache_inputs([str(chat)], ParserOptions())
        # The sidecar is read for its digest and for the TLS key log it may name (remembered together).
        assert capture.events()[0] == 1 and sidecar.events()[0] == 2
        again = cache_inputs([str(chat)], ParserOptions())
        assert capture.events()[0] == 1 and sidecar.events()[0] == 2
    assert first == again == store_inputs([str(chat)], ParserOptions())
    assert first.key is not None and (tmp_path / "cache" / DIGESTS_FILE).is_file()
