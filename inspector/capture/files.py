"""Readers for pcap, pcapng and gzip-compressed captures.

Readers are generators over raw packet records so that a million-packet file
never becomes a million objects: each record is a plain tuple
``(ts_ns, link_type, wire_len, data)`` where `wire_len` is the frame length as
on the wire (tshark's ``frame.len``) and `data` the captured bytes, possibly
shorter.  Timestamps are integer nanoseconds since the epoch, whatever the
file's resolution, so nanosecond files lose nothing.

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
OPTION_IF_TSRESOL = 9
OPTION_IF_TSOFFSET = 14
BLOCK_NAMES = {
    PCAPNG_SHB: "section header block",
    BLOCK_IDB: "interface description block",
    BLOCK_OBSOLETE_PACKET: "obsolete packet block",
    BLOCK_SPB: "simple packet block",
    BLOCK_EPB: "enhanced packet block",
}
# Bytes of fixed fields each block's body holds before any packet data or options (draft-ietf-
# opsawg-pcapng 4.1-4.4, appendix A for the obsolete block); a shorter block is corrupt, as
# Wireshark says too.  SHB: byte-order magic, versions, section length; IDB: link type,
# reserved, snaplen; EPB/OPB: interface, timestamp (and OPB drops), captured and original
# lengths; SPB: original length.
BLOCK_MIN_BODY_BYTES = {PCAPNG_SHB: 16, BLOCK_IDB: 8, BLOCK_OBSOLETE_PACKET: 20, BLOCK_SPB: 4, BLOCK_EPB: 20}

PacketRecord = tuple[int, int, int, bytes]
# Packet times are integer nanoseconds since 1970 in 64 bits (the tables' arrays hold them).
MIN_TS_NS, MAX_TS_NS = -(1 << 63), (1 << 63) - 1
# How often a reader notes how far into the file it is (CaptureInfo.position), in records.
POSITION_EVERY_RECORDS = 4096


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
    position: int = 0  # bytes read so far: updated every POSITION_EVERY_RECORDS records, and at the end
    clamped_timestamps: int = 0  # packets whose time did not fit 64-bit nanoseconds


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
    """
    info = info if info is not None else CaptureInfo(path=str(path))
    with ExitStack() as stack:
        if source is None:
            source = stack.enter_context(open_capture(path, max_inflated_bytes))
        buf = source.buffer
        info.size = len(buf)
        if len(buf) < MAGIC_BYTES:
            raise CaptureError(f"{path}: not a capture file (only {len(buf)} bytes)")
        capture_format = _format_of(bytes(buf[:MAGIC_BYTES]))
        if capture_format == "pcapng":
            info.format = "pcapng"
            yield from _read_pcapng(buf, path, info)
        elif capture_format == "pcap":
            info.format = "pcap"
            yield from _read_pcap(buf, path, info)
        else:
            raise _not_a_capture(path, buf)
        if source.gzip_cut_short:
            _note_truncated(info, path, info.records)
        if info.clamped_timestamps:
            info.warnings.append(f"{path}: {info.clamped_timestamps} packets have timestamps outside the years 1678 to 2262 "
                                 "(what 64-bit nanoseconds since 1970 hold: a damaged timestamp or if_tsresol?); "
                                 "clamped to that range")
        if source.gzip_trailing_garbage:
            info.warnings.append(f"{path}: bytes after the end of the gzip data are not gzip; ignored, as gzip -d does")


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


def _format_of(head: bytes) -> str | None:
    if len(head) < MAGIC_BYTES:
        return None
    little, big = struct.unpack_from("<I", head)[0], struct.unpack_from(">I", head)[0]
    if little == PCAPNG_SHB:  # the same either way round
        return "pcapng"
    if little in PCAP_MAGICS or big in PCAP_MAGICS:
        return "pcap"
    return None


def _not_a_capture(path, head) -> CaptureError:
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
    if len(head) >= MAGIC_BYTES and _format_of(head) is None:
        raise _not_a_capture(path, head)
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


def _read_pcap(buf, path, info: CaptureInfo) -> Iterator[PacketRecord]:
    size = len(buf)
    if size < 24:
        raise CaptureError(f"{path}: pcap file header cut short ({size} of 24 bytes)")
    endian = "<" if struct.unpack_from("<I", buf, 0)[0] in PCAP_MAGICS else ">"
    magic = struct.unpack_from(endian + "I", buf, 0)[0]
    frac_scale = 1000 if magic == PCAP_MAGIC_US else 1
    # The upper bits of the link type field carry FCS information (pcap spec 8.2).
    link_type = struct.unpack_from(endian + "I", buf, 20)[0] & 0x0FFFFFFF
    info.link_types.add(link_type)
    record_header = struct.Struct(endian + "IIII")
    unpack = record_header.unpack_from
    pos = 24
    count = 0
    while pos + 16 <= size:
        sec, frac, caplen, wire_len = unpack(buf, pos)
        pos += 16
        if pos + caplen > size:
            _note_truncated(info, path, count)
            break
        count += 1
        if not count % POSITION_EVERY_RECORDS:
            info.position = pos
        yield sec * 1_000_000_000 + frac * frac_scale, link_type, wire_len, buf[pos : pos + caplen]
        pos += caplen
    else:
        if pos != size:
            _note_truncated(info, path, count)
    info.records += count
    info.position = size


def _note_truncated(info: CaptureInfo, path, count: int) -> None:
    if info.truncated:
        return  # once per file: gzip data cut short inside a record is one cut
    info.truncated = True
    info.warnings.append(f"{path}: capture is cut short after {count} complete packets; analysed up to the cut")


@dataclass
class _Interface:
    link_type: int
    ts_units_per_second: int = 1_000_000
    ts_offset_s: int = 0


def _read_pcapng(buf, path, info: CaptureInfo) -> Iterator[PacketRecord]:
    size = len(buf)
    pos = 0
    endian = "<"
    interfaces: list[_Interface] = []
    count = 0
    while pos + 12 <= size:
        block_type = struct.unpack_from(endian + "I", buf, pos)[0]
        if block_type == PCAPNG_SHB:
            # Each section may switch byte order; its magic tells.
            bom = struct.unpack_from("<I", buf, pos + 8)[0]
            endian = "<" if bom == PCAPNG_BYTE_ORDER_MAGIC else ">"
            if struct.unpack_from(endian + "I", buf, pos + 8)[0] != PCAPNG_BYTE_ORDER_MAGIC:
                raise CaptureError(f"{path}: pcapng section header with bad byte-order magic at offset {pos}")
            interfaces = []
        block_len = struct.unpack_from(endian + "I", buf, pos + 4)[0]
        if block_len < 12 or block_len % 4:
            raise CaptureError(f"{path}: corrupt pcapng block length {block_len} at offset {pos}")
        if pos + block_len > size:
            _note_truncated(info, path, count)
            break
        body = pos + 8
        end = pos + block_len - 4
        if block_len - 12 < BLOCK_MIN_BODY_BYTES.get(block_type, 0) or struct.unpack_from(endian + "I", buf, end)[0] != block_len:
            raise _corrupt_block(buf, pos, block_type, block_len, endian, path)
        if block_type == BLOCK_IDB:
            interfaces.append(_parse_idb(buf, body, end, endian, path, info, pos))
        elif block_type == BLOCK_EPB:
            iface_id, ts_hi, ts_lo, caplen, wire_len = struct.unpack_from(endian + "IIIII", buf, body)
            iface = _interface(interfaces, iface_id, path, pos)
            if body + 20 + caplen > end:
                raise _longer_than_block(block_type, pos, caplen, end - body - 20, path)
            data = buf[body + 20 : body + 20 + caplen]
            count += 1
            yield _pcapng_ts(iface, (ts_hi << 32) | ts_lo, info), iface.link_type, wire_len, data
        elif block_type == BLOCK_SPB:
            iface = _interface(interfaces, 0, path, pos)
            wire_len = struct.unpack_from(endian + "I", buf, body)[0]
            # No captured length: the block holds min(original length, snaplen) bytes, then padding.
            data = buf[body + 4 : min(body + 4 + wire_len, end)]
            count += 1
            yield 0, iface.link_type, wire_len, data
        elif block_type == BLOCK_OBSOLETE_PACKET:
            iface_id, _drops, ts_hi, ts_lo, caplen, wire_len = struct.unpack_from(endian + "HHIIII", buf, body)
            iface = _interface(interfaces, iface_id, path, pos)
            if body + 20 + caplen > end:
                raise _longer_than_block(block_type, pos, caplen, end - body - 20, path)
            data = buf[body + 20 : body + 20 + caplen]
            count += 1
            yield _pcapng_ts(iface, (ts_hi << 32) | ts_lo, info), iface.link_type, wire_len, data
        pos += block_len
        if not count % POSITION_EVERY_RECORDS:
            info.position = pos
    else:
        if pos != size:
            _note_truncated(info, path, count)
    info.records += count
    info.position = size


def _corrupt_block(buf, pos: int, block_type: int, block_len: int, endian: str, path) -> CaptureError:
    """What is wrong with a complete block: too short for its fixed fields, or not ending with its length again."""
    needed = BLOCK_MIN_BODY_BYTES.get(block_type, 0)
    if block_len - 12 < needed:
        return CaptureError(f"{path}: corrupt pcapng: {BLOCK_NAMES[block_type]} at offset {pos} is {block_len} bytes long, "
                            f"too short for its fixed fields ({12 + needed} bytes at least)")
    trailer = struct.unpack_from(endian + "I", buf, pos + block_len - 4)[0]
    return CaptureError(f"{path}: corrupt pcapng: block lengths at offset {pos} disagree ({block_len} at its start, {trailer} at its end)")


def _longer_than_block(block_type: int, pos: int, caplen: int, room: int, path) -> CaptureError:
    return CaptureError(f"{path}: corrupt pcapng: {BLOCK_NAMES[block_type]} at offset {pos} claims {caplen} captured bytes but holds {room}")


def _interface(interfaces: list[_Interface], iface_id: int, path, pos: int) -> _Interface:
    if iface_id >= len(interfaces):
        raise CaptureError(f"{path}: packet at offset {pos} names interface {iface_id}, which was never described")
    return interfaces[iface_id]


def _pcapng_ts(iface: _Interface, units: int, info: CaptureInfo) -> int:
    units_per_s = iface.ts_units_per_second
    seconds, rest = divmod(units, units_per_s)
    ts_ns = (seconds + iface.ts_offset_s) * 1_000_000_000 + rest * 1_000_000_000 // units_per_s
    if MIN_TS_NS <= ts_ns <= MAX_TS_NS:
        return ts_ns
    # 64 timestamp bits in units of a second (if_tsresol 0) or offset by if_tsoffset reach
    # far beyond what the tables' 64-bit nanoseconds hold: counted, warned about, clamped.
    info.clamped_timestamps += 1
    return min(max(ts_ns, MIN_TS_NS), MAX_TS_NS)


def _parse_idb(buf, body: int, end: int, endian: str, path, info: CaptureInfo, pos: int) -> _Interface:
    link_type = struct.unpack_from(endian + "H", buf, body)[0]
    info.link_types.add(link_type)
    iface = _Interface(link_type=link_type)
    opt = body + 8
    while opt + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, opt)
        if code == 0:
            break
        if opt + 4 + length > end:
            raise CaptureError(f"{path}: corrupt pcapng: option {code} of the {BLOCK_NAMES[BLOCK_IDB]} at offset {pos} "
                               f"runs past the end of the block")
        value = buf[opt + 4 : opt + 4 + length]
        if code == OPTION_IF_TSRESOL and length >= 1:
            resolution = value[0]
            # MSB clear: negative power of 10; set: negative power of 2.
            exponent = resolution & 0x7F
            iface.ts_units_per_second = 2**exponent if resolution & 0x80 else 10**exponent
        elif code == OPTION_IF_TSOFFSET and length == 8:
            iface.ts_offset_s = struct.unpack_from(endian + "q", value, 0)[0]
        opt += 4 + ((length + 3) & ~3)
    return iface
