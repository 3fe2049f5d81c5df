"""Readers for pcap, pcapng and gzip-compressed captures.

Readers are generators over raw packet records so that a million-packet file
never becomes a million objects: each record is a plain tuple
``(ts_ns, link_type, wire_len, data)`` where `wire_len` is the frame length as
on the wire (tshark's ``frame.len``) and `data` the captured bytes, possibly
shorter.  Timestamps are integer nanoseconds since the epoch, whatever the
file's resolution, so nanosecond files lose nothing.

Uncompressed files are memory-mapped; gzip files are inflated to an anonymous
temporary file first so that memory stays flat either way.
"""

from __future__ import annotations

import gzip
import mmap
import os
import shutil
import stat
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from inspector.errors import CaptureError

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
GZIP_MAGIC = b"\x1f\x8b"

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
# How often a reader notes how far into the file it is (CaptureInfo.position), in records.
POSITION_EVERY_RECORDS = 4096


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


def read_packets(path: str | os.PathLike, info: CaptureInfo | None = None) -> Iterator[PacketRecord]:
    """Yield packet records from a pcap, pcapng or gzip-compressed capture.

    The format is sniffed from the magic number, never the file name.  A file
    cut short yields the complete records and notes a warning in `info`.
    """
    info = info if info is not None else CaptureInfo(path=str(path))
    with _open_mapped(path) as buf:
        info.size = len(buf)
        if len(buf) < 4:
            raise CaptureError(f"{path}: not a capture file (only {len(buf)} bytes)")
        magic_le = struct.unpack_from("<I", buf, 0)[0]
        if magic_le == PCAPNG_SHB:
            info.format = "pcapng"
            yield from _read_pcapng(buf, path, info)
        elif magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or struct.unpack_from(">I", buf, 0)[0] in (
            PCAP_MAGIC_US,
            PCAP_MAGIC_NS,
        ):
            info.format = "pcap"
            yield from _read_pcap(buf, path, info)
        else:
            raise CaptureError(f"{path}: not a pcap or pcapng capture (magic {bytes(buf[:4]).hex()})")


class _open_mapped:
    """Context manager giving the (decompressed) file contents as a buffer."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path
        self._files: list = []
        self._map: mmap.mmap | bytes | None = None

    def __enter__(self):
        try:
            raw = open(self.path, "rb")
        except FileNotFoundError:
            raise CaptureError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise CaptureError(f"{self.path}: is a directory, not a capture file") from None
        except OSError as exc:
            raise CaptureError(f"{self.path}: cannot open: {exc.strerror}") from None
        self._files.append(raw)
        if not stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
            # A pipe or device: no mmap, no seek; spool it first.
            raw = self._spool(raw, raw.read())
        source = raw
        if raw.read(2) == GZIP_MAGIC:
            raw.seek(0)
            source = self._inflate_to_tempfile(raw)
        try:
            self._map = self._map_file(source)
        except (OSError, ValueError):
            # Files that cannot be mapped (some /proc files): read them instead.
            source.seek(0)
            self._map = self._map_file(self._spool(source, source.read()))
        return self._map

    def _spool(self, raw, data: bytes):
        spool = tempfile.TemporaryFile()
        self._files.append(spool)
        spool.write(data)
        spool.seek(0)
        return spool

    def _inflate_to_tempfile(self, raw):
        spool = tempfile.TemporaryFile()
        self._files.append(spool)
        try:
            with gzip.GzipFile(fileobj=raw) as inflated:
                shutil.copyfileobj(inflated, spool, 1 << 20)
        except (OSError, EOFError, zlib.error) as exc:
            # A cut-short gzip file still gives what was inflated so far.
            if not isinstance(exc, EOFError):
                raise CaptureError(f"{self.path}: corrupt gzip data: {exc}") from None
        spool.flush()
        return spool

    @staticmethod
    def _map_file(fileobj):
        fileobj.seek(0, os.SEEK_END)
        if fileobj.tell() == 0:
            return b""
        fileobj.seek(0)
        return mmap.mmap(fileobj.fileno(), 0, access=mmap.ACCESS_READ)

    def __exit__(self, *exc) -> None:
        if isinstance(self._map, mmap.mmap):
            self._map.close()
        for f in self._files:
            f.close()


def _read_pcap(buf, path, info: CaptureInfo) -> Iterator[PacketRecord]:
    size = len(buf)
    if size < 24:
        raise CaptureError(f"{path}: pcap file header cut short ({size} of 24 bytes)")
    endian = "<" if struct.unpack_from("<I", buf, 0)[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS) else ">"
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
        _check_block(buf, pos, block_type, block_len, endian, path)
        body = pos + 8
        end = pos + block_len - 4
        if block_type == BLOCK_IDB:
            interfaces.append(_parse_idb(buf, body, end, endian, path, info, pos))
        elif block_type == BLOCK_EPB:
            iface_id, ts_hi, ts_lo, caplen, wire_len = struct.unpack_from(endian + "IIIII", buf, body)
            iface = _interface(interfaces, iface_id, path, pos)
            data = _packet_data(buf, body + 20, caplen, end, block_type, pos, path)
            count += 1
            yield _pcapng_ts(iface, (ts_hi << 32) | ts_lo), iface.link_type, wire_len, data
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
            data = _packet_data(buf, body + 20, caplen, end, block_type, pos, path)
            count += 1
            yield _pcapng_ts(iface, (ts_hi << 32) | ts_lo), iface.link_type, wire_len, data
        pos += block_len
        if not count % POSITION_EVERY_RECORDS:
            info.position = pos
    else:
        if pos != size:
            _note_truncated(info, path, count)
    info.records += count
    info.position = size


def _check_block(buf, pos: int, block_type: int, block_len: int, endian: str, path) -> None:
    """A complete block must hold its fixed fields and end with its length again."""
    needed = BLOCK_MIN_BODY_BYTES.get(block_type, 0)
    if block_len - 12 < needed:
        raise CaptureError(f"{path}: corrupt pcapng: {BLOCK_NAMES[block_type]} at offset {pos} is {block_len} bytes long, "
                           f"too short for its fixed fields ({12 + needed} bytes at least)")
    trailer = struct.unpack_from(endian + "I", buf, pos + block_len - 4)[0]
    if trailer != block_len:
        raise CaptureError(f"{path}: corrupt pcapng: block lengths at offset {pos} disagree ({block_len} at its start, {trailer} at its end)")


def _packet_data(buf, start: int, caplen: int, end: int, block_type: int, pos: int, path):
    if start + caplen > end:
        raise CaptureError(f"{path}: corrupt pcapng: {BLOCK_NAMES[block_type]} at offset {pos} claims {caplen} captured bytes "
                           f"but holds {end - start}")
    return buf[start : start + caplen]


def _interface(interfaces: list[_Interface], iface_id: int, path, pos: int) -> _Interface:
    if iface_id >= len(interfaces):
        raise CaptureError(f"{path}: packet at offset {pos} names interface {iface_id}, which was never described")
    return interfaces[iface_id]


def _pcapng_ts(iface: _Interface, units: int) -> int:
    units_per_s = iface.ts_units_per_second
    seconds, rest = divmod(units, units_per_s)
    return (seconds + iface.ts_offset_s) * 1_000_000_000 + rest * 1_000_000_000 // units_per_s


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
