"""pcap and pcapng records, read a chunk at a time into arrays.

One Python step per record walks the record headers (their lengths chain them:
nothing else can find the next one) and notes where each record starts; numpy
then reads the fixed fields of the whole chunk at once (lengths, timestamps,
interfaces) and checks them.  A chunk holds a copy of the file bytes its
records span (`RecordChunk.data`) and arrays of at most `CHUNK_RECORDS`
records, so memory stays flat whatever the file size; no numpy array ever
views the memory map, which can then always be closed.

pcapng blocks other than enhanced packet blocks, and enhanced packet blocks
whose fields fail a check, go through `_PcapngReader.read_block`, one block at
a time: the reference reading, with every check and its error message.  The
fast walk only ever takes blocks that reading would take the same way.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from inspector.capture.files import (
    BLOCK_DSB, BLOCK_EPB, BLOCK_IDB, BLOCK_MIN_BODY_BYTES, BLOCK_NAMES, BLOCK_OBSOLETE_PACKET, BLOCK_SPB, DEFAULT_MAX_INFLATED_BYTES,
    MAGIC_BYTES, MAX_TS_NS, MIN_TS_NS, OPTION_IF_TSOFFSET, OPTION_IF_TSRESOL, PCAP_MAGIC_US, PCAP_MAGICS, PCAPNG_BYTE_ORDER_MAGIC,
    PCAPNG_SHB, SECRETS_TLS_KEY_LOG, CaptureBytes, CaptureInfo, not_a_capture, open_capture, sniff_format,
)
from inspector.errors import CaptureError

# Records per chunk, and file bytes a chunk spans (a chunk of big records ends sooner).
CHUNK_RECORDS = 16384
CHUNK_BYTES = 16 << 20
# pcapng: a run of fewer enhanced packet blocks between other blocks is read block by block
# (a file alternating packet block kinds must not become a chunk per record).
MIN_FAST_RUN = 64
NS_PER_S = 1_000_000_000
# Pages of a memory-mapped capture already read are let go in steps of at least this.
RELEASE_BYTES = 16 * 1024 * 1024
_EPB_HEADER_BYTES = 28  # block type and length, interface, timestamp (2 words), captured and original lengths


@dataclass(slots=True, eq=False)
class RecordChunk:
    """Consecutive records of a capture: record i is data[start[i] : start[i] + caplen[i]]."""

    data: bytes  # the file bytes the records span
    base: int  # offset of data[0] in the capture
    first_index: int  # number of the first record in the capture, from 0
    start: np.ndarray  # int64, offset of each record's captured bytes in `data`
    caplen: np.ndarray  # int64
    wire_len: np.ndarray  # int64, the frame length on the wire (tshark's frame.len)
    ts_ns: np.ndarray  # int64, nanoseconds since 1970
    link_type: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.start)


def read_record_chunks(path: str | os.PathLike, info: CaptureInfo | None = None, *,
                       max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES, source: CaptureBytes | None = None,
                       chunk_records: int = CHUNK_RECORDS) -> Iterator[RecordChunk]:
    """The records of a pcap, pcapng or gzip-compressed capture, as RecordChunks:
    what read_packets yields record by record (see there), with the same checks,
    warnings and errors."""
    info = info if info is not None else CaptureInfo(path=str(path))
    with ExitStack() as stack:
        if source is None:
            source = stack.enter_context(open_capture(path, max_inflated_bytes))
        buf = source.buffer
        info.size = len(buf)
        if len(buf) < MAGIC_BYTES:
            raise CaptureError(f"{path}: not a capture file (only {len(buf)} bytes)")
        capture_format = sniff_format(bytes(buf[:MAGIC_BYTES]))
        if capture_format == "pcapng":
            info.format = "pcapng"
            yield from _let_go_behind(buf, _PcapngReader(buf, path, info, chunk_records).chunks())
        elif capture_format == "pcap":
            info.format = "pcap"
            yield from _let_go_behind(buf, _pcap_chunks(buf, path, info, chunk_records))
        else:
            raise not_a_capture(path, buf)
        if source.gzip_cut_short:
            _note_truncated(info, path, info.records)
        if info.clamped_timestamps:
            info.warnings.append(f"{path}: {info.clamped_timestamps} packets have timestamps outside the years 1678 to 2262 "
                                 "(what 64-bit nanoseconds since 1970 hold: a damaged timestamp or if_tsresol?); "
                                 "clamped to that range")
        if source.gzip_trailing_garbage:
            info.warnings.append(f"{path}: bytes after the end of the gzip data are not gzip; ignored, as gzip -d does")


def _let_go_behind(buf, chunks: Iterator[RecordChunk]) -> Iterator[RecordChunk]:
    """`chunks`; once each is used, the pages of the memory-mapped file it came from are dropped
    from this process (MADV_DONTNEED: the file stays in the page cache, and a page read again is
    mapped again).  A chunk's data is a copy, so nothing points into them; without this, every
    page read stays counted in the process's resident memory, the whole file by the end, in
    every worker."""
    if not isinstance(buf, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        yield from chunks
        return
    released = 0
    for chunk in chunks:
        yield chunk
        end = (chunk.base + len(chunk.data)) // mmap.PAGESIZE * mmap.PAGESIZE
        if end - released >= RELEASE_BYTES:
            buf.madvise(mmap.MADV_DONTNEED, released, end - released)
            released = end


def _note_truncated(info: CaptureInfo, path, count: int) -> None:
    if info.truncated:
        return  # once per file: gzip data cut short inside a record is one cut
    info.truncated = True
    info.warnings.append(f"{path}: capture is cut short after {count} complete packets; analysed up to the cut")


def _words(data: bytes, positions: np.ndarray, count: int, dtype: str) -> np.ndarray:
    """The `count` 32-bit words (of byte order `dtype`) at each of `positions` in `data`, as
    an int64 array of shape (len(positions), count); the positions need no alignment."""
    raw = np.frombuffer(data, dtype=np.uint8)
    picked = raw[positions[:, None] + np.arange(4 * count)]  # one row of bytes per position
    return picked.view(dtype).astype(np.int64)


# -- pcap ------------------------------------------------------------------------------------


def _pcap_chunks(buf, path, info: CaptureInfo, chunk_records: int) -> Iterator[RecordChunk]:
    size = len(buf)
    if size < 24:
        raise CaptureError(f"{path}: pcap file header cut short ({size} of 24 bytes)")
    endian = "<" if struct.unpack_from("<I", buf, 0)[0] in PCAP_MAGICS else ">"
    magic = struct.unpack_from(endian + "I", buf, 0)[0]
    frac_scale = 1000 if magic == PCAP_MAGIC_US else 1
    info.nanosecond = frac_scale == 1
    # The upper bits of the link type field carry FCS information (pcap spec 8.2).
    link_type = struct.unpack_from(endian + "I", buf, 20)[0] & 0x0FFFFFFF
    info.link_types.add(link_type)
    caplen_at = struct.Struct(endian + "I").unpack_from
    dtype = endian + "u4"
    pos = 24
    count = 0
    while True:
        first = pos
        starts, pos, cut = _walk_pcap(buf, pos, size, chunk_records, caplen_at)
        if starts:
            data = buf[first:pos]
            start = np.array(starts, dtype=np.int64) - first
            sec, frac, caplen, wire_len = _words(data, start - 16, 4, dtype).T
            yield RecordChunk(data, first, count, start, caplen, wire_len, sec * NS_PER_S + frac * frac_scale,
                              np.full(len(start), link_type, dtype=np.int64))
            count += len(starts)
            info.position = pos
        if cut:
            _note_truncated(info, path, count)
            break
        if pos + 16 > size:
            if pos != size:
                _note_truncated(info, path, count)
            break
    info.records += count
    info.position = size


def _walk_pcap(buf, pos: int, size: int, limit: int, caplen_at) -> tuple[list[int], int, bool]:
    """Starts of the captured bytes of up to `limit` records from `pos` (spanning about
    CHUNK_BYTES at most), the position after them, and whether the next record is cut short."""
    starts: list[int] = []
    append = starts.append
    last = min(size - 16, pos + CHUNK_BYTES)  # a record header starting beyond this ends the walk
    for _ in range(limit):
        if pos > last:
            break
        data = pos + 16
        end = data + caplen_at(buf, pos + 8)[0]
        if end > size:
            return starts, pos, True
        append(data)
        pos = end
    return starts, pos, False


# -- pcapng ----------------------------------------------------------------------------------


@dataclass
class _Interface:
    link_type: int
    ts_units_per_second: int = 1_000_000
    ts_offset_s: int = 0


class _PcapngRecords:
    """Records read block by block, collected into a chunk."""

    def __init__(self) -> None:
        self.start: list[int] = []  # in the capture
        self.caplen: list[int] = []
        self.wire_len: list[int] = []
        self.ts_ns: list[int] = []
        self.link_type: list[int] = []
        self.first_block = 0  # where the block of the first record starts

    def add(self, block: int, start: int, caplen: int, wire_len: int, ts_ns: int, link_type: int) -> None:
        if not self.start:
            self.first_block = block
        self.start.append(start)
        self.caplen.append(caplen)
        self.wire_len.append(wire_len)
        self.ts_ns.append(ts_ns)
        self.link_type.append(link_type)

    def __len__(self) -> int:
        return len(self.start)

    def take(self, buf, first_index: int) -> RecordChunk:
        base = self.first_block
        end = self.start[-1] + self.caplen[-1]
        chunk = RecordChunk(buf[base:end], base, first_index, np.array(self.start, dtype=np.int64) - base,
                            *(np.array(column, dtype=np.int64) for column in (self.caplen, self.wire_len, self.ts_ns, self.link_type)))
        self.__init__()
        return chunk


class _PcapngReader:
    """Reads the blocks of a pcapng file: runs of enhanced packet blocks in bulk, the rest
    (and any block that fails a check) one block at a time with `read_block`."""

    def __init__(self, buf, path, info: CaptureInfo, chunk_records: int) -> None:
        self.buf = buf
        self.size = len(buf)
        self.path = path
        self.info = info
        self.chunk_records = chunk_records
        self.endian = "<"
        self.interfaces: list[_Interface] = []
        self.pos = 0
        self.count = 0  # records read so far
        self.cut = False  # a block runs past the end of the file

    def chunks(self) -> Iterator[RecordChunk]:
        pending = _PcapngRecords()  # records read block by block, not yet in a chunk
        while self.pos + 12 <= self.size and not self.cut:
            run = self._walk_packet_blocks()
            chunk = self._run_chunk(run) if len(run) >= MIN_FAST_RUN else None
            if chunk is not None:
                if pending:
                    yield pending.take(self.buf, self.count - len(pending))
                self.count += len(chunk)
                self.pos = run[-1] + self._block_len(run[-1])
                self.info.position = self.pos
                yield chunk
                continue
            try:
                # The run, then the block that stopped it: one at a time.
                for _ in range(len(run) + 1):
                    if self.pos + 12 > self.size or self.cut:
                        break
                    self.read_block(pending)
            except CaptureError:
                if pending:  # the records before the bad block, as a reader record by record gives them
                    yield pending.take(self.buf, self.count - len(pending))
                raise
            if len(pending) >= self.chunk_records or (pending and self.pos - pending.first_block > CHUNK_BYTES):
                yield pending.take(self.buf, self.count - len(pending))
                self.info.position = self.pos
        if pending:
            yield pending.take(self.buf, self.count - len(pending))
        if not self.cut and self.pos != self.size:
            _note_truncated(self.info, self.path, self.count)
        self.info.records += self.count
        self.info.position = self.size

    def _block_len(self, pos: int) -> int:
        return struct.unpack_from(self.endian + "I", self.buf, pos + 4)[0]

    def _walk_packet_blocks(self) -> list[int]:
        """Where the enhanced packet blocks from self.pos start, up to the first other block
        or one whose length is odd, too short or beyond the file (self.pos is not moved)."""
        buf, pos, size = self.buf, self.pos, self.size
        header_at = struct.Struct(self.endian + "II").unpack_from
        last = min(size - 12, pos + CHUNK_BYTES)
        starts: list[int] = []
        append = starts.append
        for _ in range(self.chunk_records):
            if pos > last:
                break
            block_type, block_len = header_at(buf, pos)
            if block_type != BLOCK_EPB or block_len < 12 + _EPB_HEADER_BYTES - 8 or block_len & 3 or pos + block_len > size:
                break
            append(pos)
            pos += block_len
        return starts

    def _run_chunk(self, run: list[int]) -> RecordChunk | None:
        """The records of a run of enhanced packet blocks, or None if a block fails a check
        (read_block then reads them one by one and names the error)."""
        first = run[0]
        data = self.buf[first : run[-1] + self._block_len(run[-1])]
        blocks = np.array(run, dtype=np.int64) - first
        words = np.frombuffer(data, dtype=self.endian + "u4", count=len(data) // 4)
        at = blocks // 4  # blocks start on 4-byte boundaries
        block_len = words[at + 1].astype(np.int64)
        interface = words[at + 2].astype(np.int64)
        caplen = words[at + 5].astype(np.int64)
        ok = (words[at + block_len // 4 - 1] == block_len) & (caplen <= block_len - 4 - _EPB_HEADER_BYTES) & (interface < len(self.interfaces))
        if not ok.all():
            return None
        units = (words[at + 3].astype(np.uint64) << np.uint64(32)) | words[at + 4].astype(np.uint64)
        link_types = np.array([iface.link_type for iface in self.interfaces], dtype=np.int64)
        return RecordChunk(data, first, self.count, blocks + _EPB_HEADER_BYTES, caplen, words[at + 6].astype(np.int64),
                           self._timestamps(units, interface), link_types[interface])

    def _timestamps(self, units: np.ndarray, interface: np.ndarray) -> np.ndarray:
        """_pcapng_ts of each record, in bulk where the interface's resolution divides a
        nanosecond and the result fits 64 bits, else one by one (which counts clamping)."""
        ts_ns = np.zeros(len(units), dtype=np.int64)
        for number in np.unique(interface).tolist():
            iface = self.interfaces[number]
            mine = interface == number
            exact = np.zeros(len(units), dtype=bool)
            units_per_s = iface.ts_units_per_second
            if NS_PER_S % units_per_s == 0:
                ns_per_unit = NS_PER_S // units_per_s
                offset_ns = iface.ts_offset_s * NS_PER_S
                # units * ns_per_unit + offset_ns, computed in int64: both the product and the
                # sum in range.  Bounds in Python integers, compared as uint64.
                lowest = max(0, -(-(MIN_TS_NS - offset_ns) // ns_per_unit))
                highest = min(MAX_TS_NS // ns_per_unit, (MAX_TS_NS - offset_ns) // ns_per_unit)
                if lowest <= highest and MIN_TS_NS <= offset_ns <= MAX_TS_NS:
                    exact = mine & (units >= np.uint64(lowest)) & (units <= np.uint64(highest))
                    ts_ns[exact] = units[exact].astype(np.int64) * ns_per_unit + offset_ns
            for row in np.flatnonzero(mine & ~exact).tolist():
                ts_ns[row] = _pcapng_ts(iface, int(units[row]), self.info)
        return ts_ns

    def read_block(self, records: _PcapngRecords) -> None:
        """Read the block at self.pos into `records`, checking everything; move past it
        (or note the file cut short and set self.cut)."""
        buf, pos, path, endian = self.buf, self.pos, self.path, self.endian
        block_type = struct.unpack_from(endian + "I", buf, pos)[0]
        if block_type == PCAPNG_SHB:
            # Each section may switch byte order; its magic tells.
            bom = struct.unpack_from("<I", buf, pos + 8)[0]
            endian = self.endian = "<" if bom == PCAPNG_BYTE_ORDER_MAGIC else ">"
            if struct.unpack_from(endian + "I", buf, pos + 8)[0] != PCAPNG_BYTE_ORDER_MAGIC:
                raise CaptureError(f"{path}: pcapng section header with bad byte-order magic at offset {pos}")
            self.interfaces = []
        block_len = struct.unpack_from(endian + "I", buf, pos + 4)[0]
        if block_len < 12 or block_len % 4:
            raise CaptureError(f"{path}: corrupt pcapng block length {block_len} at offset {pos}")
        if pos + block_len > self.size:
            _note_truncated(self.info, path, self.count)
            self.cut = True
            return
        body = pos + 8
        end = pos + block_len - 4
        if block_len - 12 < BLOCK_MIN_BODY_BYTES.get(block_type, 0) or struct.unpack_from(endian + "I", buf, end)[0] != block_len:
            raise _corrupt_block(buf, pos, block_type, block_len, endian, path)
        if block_type == BLOCK_IDB:
            self.interfaces.append(_parse_idb(buf, body, end, endian, path, self.info, pos))
        elif block_type == BLOCK_EPB:
            iface_id, ts_hi, ts_lo, caplen, wire_len = struct.unpack_from(endian + "IIIII", buf, body)
            iface = _interface(self.interfaces, iface_id, path, pos)
            if body + 20 + caplen > end:
                raise _longer_than_block(block_type, pos, caplen, end - body - 20, path)
            records.add(pos, body + 20, caplen, wire_len, _pcapng_ts(iface, (ts_hi << 32) | ts_lo, self.info), iface.link_type)
            self.count += 1
        elif block_type == BLOCK_SPB:
            iface = _interface(self.interfaces, 0, path, pos)
            wire_len = struct.unpack_from(endian + "I", buf, body)[0]
            # No captured length: the block holds min(original length, snaplen) bytes, then padding.
            records.add(pos, body + 4, min(wire_len, end - body - 4), wire_len, 0, iface.link_type)
            self.count += 1
        elif block_type == BLOCK_OBSOLETE_PACKET:
            iface_id, _drops, ts_hi, ts_lo, caplen, wire_len = struct.unpack_from(endian + "HHIIII", buf, body)
            iface = _interface(self.interfaces, iface_id, path, pos)
            if body + 20 + caplen > end:
                raise _longer_than_block(block_type, pos, caplen, end - body - 20, path)
            records.add(pos, body + 20, caplen, wire_len, _pcapng_ts(iface, (ts_hi << 32) | ts_lo, self.info), iface.link_type)
            self.count += 1
        elif block_type == BLOCK_DSB:
            self._read_secrets(body, end, pos)
        self.pos = pos + block_len

    def _read_secrets(self, body: int, end: int, pos: int) -> None:
        """A decryption secrets block: a TLS key log is kept in `info` (other kinds are not used)."""
        secrets_type, length = struct.unpack_from(self.endian + "II", self.buf, body)
        if body + 8 + length > end:
            raise CaptureError(f"{self.path}: corrupt pcapng: {BLOCK_NAMES[BLOCK_DSB]} at offset {pos} claims {length} bytes "
                               f"of secrets but holds {end - body - 8}")
        if secrets_type == SECRETS_TLS_KEY_LOG:
            self.info.tls_key_logs.append(bytes(self.buf[body + 8 : body + 8 + length]))


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
    ts_ns = (seconds + iface.ts_offset_s) * NS_PER_S + rest * NS_PER_S // units_per_s
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
