"""Readers for pcap, pcapng and gzip-compressed captures.

Readers are generators over raw packet records so that a million-packet file
never becomes a million objects: each record is a plain tuple
``(ts_ns, link_type, wire_len, data)`` where `wire_len` is the frame length as
on the wire (tshark's ``frame.len``) and `data` the captured bytes, possibly
shorter.  Timestamps are integer nanoseconds since the epoch, whatever the
file's resolution, so nanosecond files lose nothing.  The records are read a
chunk at a time into arrays by `inspector.capture.chunks` (what the analysis
uses); `read_packets` gives them one by one.

Uncompressed regular files are memory-mapped.  What cannot be mapped as it is
(a gzip file, a pipe, a device) is copied block by block into an anonymous
temporary file first, inflating gzip on the way, so that memory stays flat
either way; that copy is capped (`DEFAULT_MAX_INFLATED_BYTES`, raised by the
`max_inflated_bytes` argument) so that a gzip bomb or an endless device cannot
fill the disk, and data that does not start like a capture is refused after
its first bytes.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

from inspector.errors import CaptureError

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAP_MAGICS = (PCAP_MAGIC_US, PCAP_MAGIC_NS)
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
GZIP_MAGIC = b"\x1f\x8b"
MAGIC_BYTES = 4
GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib reads the gzip header and checks the CRC and size trailer

# The most capture data copied into a temporary file: inflated from gzip, or read from a pipe
# or a device.  A gzip bomb (3 MB of zeros after a pcap header inflate to 3 GiB) or /dev/urandom
# stops here with a CaptureLimitError instead of filling the disk; a real capture that big
# needs a bigger cap (`inspector analyze --max-inflated BYTES`).  Regular uncompressed files
# are mapped, never copied, and have no such cap.
DEFAULT_MAX_INFLATED_BYTES = 1 << 30
COPY_BLOCK_BYTES = 1 << 20  # read and inflate in blocks of this size: memory stays flat

# pcapng block types (draft-ietf-opsawg-pcapng section 4).
BLOCK_IDB = 0x00000001
BLOCK_OBSOLETE_PACKET = 0x00000002
BLOCK_SPB = 0x00000003
BLOCK_EPB = 0x00000006
BLOCK_DSB = 0x0000000A  # decryption secrets block (section 4.7)
# The secrets type of a DSB holding a TLS key log ('TLSK'): NSS key log lines (parse/keylog.py).
SECRETS_TLS_KEY_LOG = 0x544C534B
OPTION_IF_TSRESOL = 9
OPTION_IF_TSOFFSET = 14
BLOCK_NAMES = {
    PCAPNG_SHB: "section header block",
    BLOCK_IDB: "interface description block",
    BLOCK_OBSOLETE_PACKET: "obsolete packet block",
    BLOCK_SPB: "simple packet block",
    BLOCK_EPB: "enhanced packet block",
    BLOCK_DSB: "decryption secrets block",
}
# Bytes of fixed fields each block's body holds before any packet data or options (draft-ietf-
# opsawg-pcapng 4.1-4.4, appendix A for the obsolete block); a shorter block is corrupt, as
# Wireshark says too.  SHB: byte-order magic, versions, section length; IDB: link type,
# reserved, snaplen; EPB/OPB: interface, timestamp (and OPB drops), captured and original
# lengths; SPB: original length; DSB: secrets type and length.
BLOCK_MIN_BODY_BYTES = {PCAPNG_SHB: 16, BLOCK_IDB: 8, BLOCK_OBSOLETE_PACKET: 20, BLOCK_SPB: 4, BLOCK_EPB: 20, BLOCK_DSB: 8}

PacketRecord = tuple[int, int, int, bytes]
# Packet times are integer nanoseconds since 1970 in 64 bits (the tables' arrays hold them).
MIN_TS_NS, MAX_TS_NS = -(1 << 63), (1 << 63) - 1


class CaptureLimitError(CaptureError):
    """The copy of a gzip file's inflated data, or of a pipe's or device's data, went over its cap."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit

    def __reduce__(self):  # raised in a worker process, it is pickled back to the parent
        return type(self), (str(self), self.limit)


@dataclass
class CaptureInfo:
    """What a reader learnt about the file while reading it."""

    path: str
    format: str = ""
    link_types: set[int] = field(default_factory=set)
    records: int = 0
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)
    size: int = 0  # bytes of capture data (after gzip inflation)
    position: int = 0  # bytes read so far: updated after each chunk of records (each record by read_packets), and at the end
    clamped_timestamps: int = 0  # packets whose time did not fit 64-bit nanoseconds
    nanosecond: bool = False  # a pcap of nanosecond timestamps (pcapng: per interface)
    # The TLS key logs of the pcapng decryption secrets blocks read so far, in file order (a
    # block's secrets apply to the packets after it: the analysis adds them as it reads).
    tls_key_logs: list[bytes] = field(default_factory=list)


def read_packets(path: str | os.PathLike, info: CaptureInfo | None = None, *,
                 max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES,
                 source: CaptureBytes | None = None) -> Iterator[PacketRecord]:
    """Yield packet records from a pcap, pcapng or gzip-compressed capture.

    The format is sniffed from the magic number, never the file name.  A file
    cut short (gzip data too) yields the complete records and notes a warning
    in `info`.  max_inflated_bytes caps the capture data copied to a temporary
    file (gzip inflated, or a pipe's or device's contents): CaptureLimitError
    beyond it.  `source`: the bytes of `path`, already opened with
    `open_capture` (so that several readers share one inflated copy).

    The records of `inspector.capture.chunks.read_record_chunks`, one by one.
    """
    # Imported here: records needs numpy, and the CLI imports this module to build its arguments.
    from inspector.capture.chunks import read_record_chunks

    info = info if info is not None else CaptureInfo(path=str(path))
    for chunk in read_record_chunks(path, info, max_inflated_bytes=max_inflated_bytes, source=source):
        data, base = chunk.data, chunk.base
        columns = (chunk.ts_ns, chunk.link_type, chunk.wire_len, chunk.start, chunk.caplen)
        for ts_ns, link_type, wire_len, start, caplen in zip(*(column.tolist() for column in columns)):
            info.position = base + start + caplen  # for progress reports while records are read one by one
            yield ts_ns, link_type, wire_len, data[start : start + caplen]


def open_capture(path: str | os.PathLike, max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES) -> CaptureBytes:
    """A context manager giving the capture's bytes, inflated when gzip (`.buffer`): what
    read_packets reads, opened once for several readers."""
    return CaptureBytes(path, max_inflated_bytes)


def capture_name(path: str | os.PathLike) -> str:
    """`path` as text a table can hold: the bytes of a file name that are not UTF-8 (which
    Python keeps as lone surrogates, and Arrow strings refuse) written as \\xff escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_regular_file(path: str | os.PathLike) -> bool:
    """A regular file can be read again (by several workers); a pipe or a device only once."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def sniff_format(head: bytes) -> str | None:
    if len(head) < MAGIC_BYTES:
        return None
    little, big = struct.unpack_from("<I", head)[0], struct.unpack_from(">I", head)[0]
    if little == PCAPNG_SHB:  # the same either way round
        return "pcapng"
    if little in PCAP_MAGICS or big in PCAP_MAGICS:
        return "pcap"
    return None


def not_a_capture(path, head) -> CaptureError:
    return CaptureError(f"{path}: not a pcap or pcapng capture (magic {bytes(head[:MAGIC_BYTES]).hex()})")


class CaptureBytes:
    """Context manager giving a capture's bytes (inflated) as one buffer: `.buffer`.

    A regular uncompressed file is memory-mapped as it is.  Anything else (gzip, a pipe, a
    device, a file that cannot be mapped) is read in blocks, inflated when it is gzip, checked
    to start like a capture, and copied into a temporary file of at most `limit` bytes, which
    is then mapped.  `.gzip_cut_short` tells whether the gzip data ended inside a member,
    `.gzip_trailing_garbage` whether something that is not gzip followed it."""

    def __init__(self, path: str | os.PathLike, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.buffer: mmap.mmap | bytes = b""
        self.gzip_cut_short = False
        self.gzip_trailing_garbage = False
        self._stack = ExitStack()

    def __enter__(self) -> CaptureBytes:
        with self._stack:
            raw = self._stack.enter_context(self._open())
            head = self._read(raw, MAGIC_BYTES)
            compressed = head.startswith(GZIP_MAGIC)
            mapped = None
            if not compressed and stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
                mapped = _map(raw)
                raw.seek(len(head))  # copied from there if it could not be mapped
            if mapped is None:
                blocks = self._blocks(raw, head)
                inflater = _GzipInflater(self.path) if compressed else None
                if inflater is not None:
                    blocks = inflater.inflate(blocks)
                mapped = _map(self._copy(_starting_like_a_capture(blocks, self.path), compressed)) or b""
                if inflater is not None:
                    self.gzip_cut_short, self.gzip_trailing_garbage = inflater.cut_short, inflater.trailing_garbage
            if isinstance(mapped, mmap.mmap):
                self._stack.callback(mapped.close)
            self.buffer = mapped
            self._stack = self._stack.pop_all()
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _open(self):
        try:
            return open(self.path, "rb")
        except FileNotFoundError:
            raise CaptureError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise CaptureError(f"{self.path}: is a directory, not a capture file") from None
        except OSError as exc:
            raise CaptureError(f"{self.path}: cannot open: {exc.strerror}") from None

    def _read(self, raw, size: int) -> bytes:
        try:
            return raw.read(size)
        except OSError as exc:
            raise CaptureError(f"{self.path}: cannot read: {exc.strerror}") from None

    def _blocks(self, raw, head: bytes) -> Iterator[bytes]:
        """`head`, then the rest of `raw` in blocks (a pipe or a device is read this once)."""
        yield head
        while block := self._read(raw, COPY_BLOCK_BYTES):
            yield block

    def _copy(self, blocks: Iterable[bytes], compressed: bool):
        """A temporary file holding `blocks`, at most `self.limit` bytes of them."""
        try:
            copy = self._stack.enter_context(tempfile.TemporaryFile())
        except OSError as exc:
            raise CaptureError(f"{self.path}: cannot create a temporary file in {tempfile.gettempdir()}: {exc.strerror}") from None
        written = 0
        try:
            for block in blocks:
                written += len(block)
                if written > self.limit:
                    raise self._over_limit(compressed)
                copy.write(block)
            copy.flush()
        except OSError as exc:
            raise self._write_error(exc, written) from None
        return copy

    def _over_limit(self, compressed: bool) -> CaptureLimitError:
        limit = f"{self.limit:,} bytes"
        if compressed:
            return CaptureLimitError(f"{self.path}: gzip data inflating to more than {limit}, the cap on inflated capture data "
                                     f"(a guard against gzip bombs); raise it with --max-inflated BYTES if the capture really is that big",
                                     self.limit)
        return CaptureLimitError(f"{self.path}: a pipe or device giving more than {limit}, the cap on capture data copied to a "
                                 f"temporary file; raise it with --max-inflated BYTES, or analyse a regular file", self.limit)

    def _write_error(self, exc: OSError, written: int) -> CaptureError:
        folder = tempfile.gettempdir()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return CaptureError(f"{self.path}: no space left in the temporary folder {folder} after {written:,} bytes of capture "
                                f"data; free some space there or set TMPDIR to a folder with more")
        return CaptureError(f"{self.path}: cannot write the temporary copy in {folder}: {exc.strerror}")


class _GzipInflater:
    """Inflates gzip members one after another, as gzip -d does, in bounded blocks.

    Unlike GzipFile, data cut short inside a member still gives everything inflated up
    to the cut (`cut_short` says so), as a capture file cut short does; bytes after the
    last member that are not gzip are ignored (`trailing_garbage`), as gzip -d does."""

    def __init__(self, path) -> None:
        self.path = path
        self.cut_short = False
        self.trailing_garbage = False

    def inflate(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        member, members = None, 0
        for data in blocks:
            while data:
                if member is None:
                    data = data.lstrip(b"\0")  # zero padding between members, which gzip -d allows
                    if not data:
                        break
                    member, members = zlib.decompressobj(GZIP_WBITS), members + 1
                try:
                    # At most a block out per call: the rest waits in unconsumed_tail.
                    out = member.decompress(data, COPY_BLOCK_BYTES)
                except zlib.error as exc:
                    if members > 1 and self._is_not_gzip(data):  # not a second member: what follows the gzip data
                        self.trailing_garbage = True
                        return
                    raise CaptureError(f"{self.path}: corrupt gzip data ({str(exc).rpartition(': ')[2]})") from None
                if out:
                    yield out
                if member.eof:
                    data, member = member.unused_data, None  # the next member, if any
                else:
                    data = member.unconsumed_tail
        if member is not None:
            self.cut_short = True
            if rest := member.flush():
                yield rest

    @staticmethod
    def _is_not_gzip(data: bytes) -> bool:
        return not GZIP_MAGIC.startswith(data[:2])


def _starting_like_a_capture(blocks: Iterable[bytes], path) -> Iterator[bytes]:
    """`blocks`, refused as soon as their first bytes show they are no capture (/dev/zero
    is refused after 4 bytes, not after the cap).  Fewer bytes than a magic number are
    passed on for the reader to name."""
    head = b""
    blocks = iter(blocks)
    for block in blocks:
        head += block
        if len(head) >= MAGIC_BYTES:
            break
    if len(head) >= MAGIC_BYTES and sniff_format(head) is None:
        raise not_a_capture(path, head)
    if head:
        yield head
    yield from blocks


def _map(fileobj) -> mmap.mmap | bytes | None:
    """The whole file as a read-only memory map (b"" when empty), or None if it cannot be mapped."""
    try:
        fileobj.seek(0, os.SEEK_END)
        if fileobj.tell() == 0:
            return b""
        return mmap.mmap(fileobj.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None  # some /proc files: copied instead
