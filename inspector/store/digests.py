"""The SHA-256 of a file without reading it again when it has not changed, as git's index does.

The cache of analyses is keyed by the captures' SHA-256 (inspector.store.inputs), and a
capture of gigabytes takes seconds to read through.  A `DigestIndex` (a small JSON file beside
the cache's entries) remembers, per file (by its real path), the digest it read and what
`stat` said of the file then: device, inode, size, mtime_ns and ctime_ns.  When all five are
the same, the file is taken as unchanged and its digest is the one remembered; when any
differs, the file is read through again.  Writing a file changes its mtime and ctime, replacing
it changes its inode, and ctime cannot be set back by anyone (utime sets mtime, and ctime to
now): only a change that keeps all five (a clock set back, a write under the filesystem, such
as to the block device) goes unseen.

A file whose mtime or ctime is less than RACY_NS old is not remembered (git's "racily clean"
files): a write in the same clock tick as the one it was read after would leave both as they
were, so such a file is read through again next time, and remembered once it is older.  A file
that changed while it was read is not remembered either.

The index holds at most MAX_ENTRIES files (the oldest remembered go first).  Several processes
may update it at once: each writes a new file and renames it over the index, so the index is
always whole, and an entry lost to a concurrent write only costs reading that file again.  An
index that cannot be read or written (damaged, not JSON, no permission, a full disk) is
ignored: the files are read through, as without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, Callable

INDEX_FORMAT = "wire-inspector-digests/1"
MAX_ENTRIES = 1000
MAX_INDEX_BYTES = 4 * 1024 * 1024
RACY_NS = 2_000_000_000  # 2 s: the coarsest timestamps of a common filesystem (FAT)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of the file's bytes, read through."""
    with open(path, "rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def signature(stat: os.stat_result) -> list[int]:
    """What a file's digest is remembered with: device, inode, size, mtime and ctime (ns)."""
    return [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]


class DigestIndex:
    """Digests of files remembered in the JSON file `path` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, racy_ns: int = RACY_NS) -> None:
        self.path = Path(path)
        self.racy_ns = racy_ns

    def sha256(self, file: str | os.PathLike) -> str:
        """The SHA-256 of `file`: the remembered one when its stat signature is unchanged, else
        read through (and remembered when the file is not racy and did not change meanwhile)."""
        return self.sha256_with(file)[0]

    def sha256_with(self, file: str | os.PathLike, what: str | None = None,
                    derive: Callable[[str | os.PathLike], Any] | None = None) -> tuple[str, Any]:
        """sha256(file), and `derive(file)` (a JSON value that only the file's content decides,
        named `what`), remembered with it: a sidecar's digest and the key log it names are both
        known without opening it while it is unchanged."""
        before = signature(os.stat(file))
        key = os.path.realpath(file)
        entries = self._read()
        entry = entries.get(key)
        if entry is not None and entry["stat"] == before and (what is None or what in entry.get("derived", {})):
            return entry["sha256"], None if what is None else entry["derived"][what]
        digest = file_sha256(file)
        derived = None if derive is None else derive(file)
        after = os.stat(file)
        if signature(after) == before and not self._racy(after):
            entries.pop(key, None)
            entries[key] = {"stat": before, "sha256": digest, **({"derived": {what: derived}} if what is not None else {})}
            self._write(dict(list(entries.items())[-MAX_ENTRIES:]))
        return digest, derived

    def _racy(self, stat: os.stat_result) -> bool:
        return time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) < self.racy_ns

    def _read(self) -> dict[str, dict]:
        try:
            with open(self.path, "rb") as source:
                data = source.read(MAX_INDEX_BYTES + 1)
            document = json.loads(data) if len(data) <= MAX_INDEX_BYTES else None
        except (OSError, ValueError):
            return {}
        if not isinstance(document, dict) or document.get("format") != INDEX_FORMAT or not isinstance(document.get("files"), dict):
            return {}
        return {key: entry for key, entry in document["files"].items() if _valid(entry)}

    def _write(self, entries: dict[str, dict]) -> None:
        temporary = self.path.with_name(f".{self.path.name}-{os.getpid()}-{secrets.token_hex(4)}.partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "w", encoding="utf-8") as target:
                json.dump({"format": INDEX_FORMAT, "files": entries}, target)
            os.replace(temporary, self.path)
        except OSError:
            try:
                temporary.unlink(missing_ok=True)
            except OSError:
                pass


def _valid(entry) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and isinstance(entry.get("stat"), list)
            and len(entry["stat"]) == 5 and all(type(n) is int for n in entry["stat"]) and isinstance(entry.get("derived", {}), dict))
