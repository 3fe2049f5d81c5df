"""Whether a file is opened or read, seen by the kernel (inotify), whichever process does it:
`FileWatch(path)` collects the IN_OPEN and IN_ACCESS events on `path` from its creation on.

Root reads any file whatever its mode, so "it was not read" cannot be shown by taking the
permission away; the kernel's file events show it."""

from __future__ import annotations

import ctypes
import os
import struct

IN_ACCESS = 0x00000001
IN_OPEN = 0x00000020
IN_NONBLOCK = os.O_NONBLOCK
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name: none for a file's own watch)

_libc = ctypes.CDLL(None, use_errno=True)


class FileWatch:
    def __init__(self, path: str | os.PathLike) -> None:
        self.fd = _libc.inotify_init1(IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if _libc.inotify_add_watch(self.fd, os.fsencode(path), IN_OPEN | IN_ACCESS) < 0:
            error = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(error, f"inotify_add_watch {path}")
        self.opened = 0
        self.read = 0

    def events(self) -> tuple[int, int]:
        """(opens, reads) seen so far."""
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return self.opened, self.read
            offset = 0
            while offset < len(data):
                _wd, mask, _cookie, length = EVENT.unpack_from(data, offset)
                self.opened += bool(mask & IN_OPEN)
                self.read += bool(mask & IN_ACCESS)
                offset += EVENT.size + length

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> "FileWatch":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def settle(path: str | os.PathLike) -> None:
    """Wait until `path` is older than the digest index's racy window (inspector.store.digests):
    a file younger than that is read through at every look, by design."""
    import time

    from inspector.store.digests import RACY_NS

    stat = os.stat(path)
    young = RACY_NS - (time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns))
    if young > 0:
        time.sleep(young / 1e9 + 0.01)
