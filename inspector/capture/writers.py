"""Streaming pcap and pcapng writers (no scapy, nothing kept per packet).

Each packet goes into a small buffer of whole records that is written out
when it grows past `buffer_bytes` or when `flush_interval` seconds have passed
since the last flush, and on `flush()`/`close()`.  The file only ever
receives whole records, so it is a valid capture after every flush: a pcap
file needs nothing after its last record, and pcapng blocks are
self-contained (SHB and IDB first, then one EPB per packet).

Timestamps come in as integer nanoseconds since the epoch; pcap files are
written with the microsecond magic (0xa1b2c3d4) or, with ``nanosecond=True``,
the nanosecond one (0xa1b23c4d); pcapng interfaces say ``if_tsresol=9`` for
nanoseconds (the default resolution, microseconds, needs no option).
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import BinaryIO

from inspector.capture.files import (
    BLOCK_EPB,
    BLOCK_IDB,
    OPTION_IF_TSRESOL,
    PCAP_MAGIC_NS,
    PCAP_MAGIC_US,
    PCAPNG_BYTE_ORDER_MAGIC,
    PCAPNG_SHB,
)
from inspector.errors import CaptureError

DEFAULT_SNAPLEN = 262144
FLUSH_INTERVAL_S = 0.5
BUFFER_BYTES = 1 << 20

# pcapng options (draft-ietf-opsawg-pcapng 3.5, 4.1, 4.2).
OPTION_END = 0
OPTION_SHB_USERAPPL = 4
OPTION_IF_NAME = 2

_PCAP_FILE_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")
_EPB_HEAD = struct.Struct("<IIIIIII")  # type, length, interface, ts high, ts low, caplen, wire length
_U32 = struct.Struct("<I")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


class _Writer:
    """Shared buffering and file handling; subclasses encode records."""

    def __init__(
        self,
        fileobj_or_path: str | os.PathLike | BinaryIO,
        link_type: int,
        snaplen: int = DEFAULT_SNAPLEN,
        nanosecond: bool = False,
        *,
        flush_interval: float = FLUSH_INTERVAL_S,
        buffer_bytes: int = BUFFER_BYTES,
    ) -> None:
        if not 0 <= link_type <= 0xFFFF:
            raise ValueError(f"link type {link_type} out of range")
        if snaplen <= 0:
            raise ValueError(f"snaplen must be positive, not {snaplen}")
        self.link_type = link_type
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        self.packets = 0
        self._flush_interval = flush_interval
        self._buffer_bytes = buffer_bytes
        self._buf = bytearray()
        self._last_flush = time.monotonic()
        self._closed = False
        if isinstance(fileobj_or_path, (str, os.PathLike)):
            self.path: str | None = os.fspath(fileobj_or_path)
            try:
                # Unbuffered: our own buffer holds whole records only.
                self._file: BinaryIO = open(self.path, "wb", buffering=0)
            except OSError as exc:
                raise CaptureError(f"{self.path}: cannot write: {exc.strerror}") from None
            self._owns_file = True
        else:
            self.path = getattr(fileobj_or_path, "name", None)
            self._file = fileobj_or_path
            self._owns_file = False
        self._buf += self._file_header()
        self.flush()

    def _file_header(self) -> bytes:
        raise NotImplementedError

    def write(self, ts_ns: int, data: bytes | bytearray | memoryview, wire_len: int) -> None:
        """Append one packet; `data` is cut to the snap length."""
        raise NotImplementedError

    def _after_write(self) -> None:
        self.packets += 1
        if len(self._buf) >= self._buffer_bytes or time.monotonic() - self._last_flush >= self._flush_interval:
            self.flush()

    def flush(self) -> None:
        """Write out every buffered record; the file is then a valid capture."""
        if self._buf:
            self._file.write(self._buf)
            self._buf.clear()
        self._file.flush()
        self._last_flush = time.monotonic()

    @property
    def pending_bytes(self) -> int:
        """Bytes buffered and not yet written to the file."""
        return len(self._buf)

    def close(self) -> None:
        """Flush and, when the writer opened the file, close it; idempotent."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            if self._owns_file:
                self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PcapWriter(_Writer):
    """Classic pcap (little-endian, version 2.4), microsecond or nanosecond."""

    def _file_header(self) -> bytes:
        magic = PCAP_MAGIC_NS if self.nanosecond else PCAP_MAGIC_US
        return _PCAP_FILE_HEADER.pack(magic, 2, 4, 0, 0, self.snaplen, self.link_type)

    def write(self, ts_ns: int, data: bytes | bytearray | memoryview, wire_len: int) -> None:
        if len(data) > self.snaplen:
            data = memoryview(data)[: self.snaplen]
        sec, ns = divmod(ts_ns, 1_000_000_000)
        frac = ns if self.nanosecond else ns // 1000
        self._buf += _PCAP_RECORD.pack(sec, frac, len(data), max(wire_len, len(data)))
        self._buf += data
        self._after_write()


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + _PAD[len(value) % 4]


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + _U32.pack(length)


class PcapngWriter(_Writer):
    """pcapng: one section (SHB), one interface (IDB), one EPB per packet."""

    def __init__(self, fileobj_or_path, link_type: int, snaplen: int = DEFAULT_SNAPLEN, nanosecond: bool = False,
                 *, if_name: str | None = None, **kwargs) -> None:
        self.if_name = if_name
        self._units = 1 if nanosecond else 1000
        super().__init__(fileobj_or_path, link_type, snaplen, nanosecond, **kwargs)

    def _file_header(self) -> bytes:
        shb_options = _option(OPTION_SHB_USERAPPL, b"wire-inspector") + _option(OPTION_END, b"")
        # Byte-order magic, version 1.0, section length unknown (-1).
        shb = _block(PCAPNG_SHB, struct.pack("<IHHq", PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1) + shb_options)
        idb_options = b""
        if self.if_name:
            idb_options += _option(OPTION_IF_NAME, self.if_name.encode())
        if self.nanosecond:
            idb_options += _option(OPTION_IF_TSRESOL, bytes([9]))
        if idb_options:
            idb_options += _option(OPTION_END, b"")
        idb = _block(BLOCK_IDB, struct.pack("<HHI", self.link_type, 0, self.snaplen) + idb_options)
        return shb + idb

    def write(self, ts_ns: int, data: bytes | bytearray | memoryview, wire_len: int) -> None:
        if len(data) > self.snaplen:
            data = memoryview(data)[: self.snaplen]
        caplen = len(data)
        pad = _PAD[caplen % 4]
        length = 32 + caplen + len(pad)
        units = ts_ns // self._units
        buf = self._buf
        buf += _EPB_HEAD.pack(BLOCK_EPB, length, 0, units >> 32, units & 0xFFFFFFFF, caplen, max(wire_len, caplen))
        buf += data
        buf += pad
        buf += _U32.pack(length)
        self._after_write()


def open_writer(path: str | os.PathLike, link_type: int, snaplen: int = DEFAULT_SNAPLEN, nanosecond: bool = False,
                *, if_name: str | None = None, **kwargs) -> PcapWriter | PcapngWriter:
    """A pcapng writer for ``*.pcapng`` (any case), a pcap writer otherwise."""
    if Path(path).suffix.lower() == ".pcapng":
        return PcapngWriter(path, link_type, snaplen, nanosecond, if_name=if_name, **kwargs)
    return PcapWriter(path, link_type, snaplen, nanosecond, **kwargs)
