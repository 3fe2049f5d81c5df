"""Records read in bulk (chunks of arrays) are the records read one block at a time.

pcapng runs of enhanced packet blocks are read in bulk and checked column-wise; any other
block, and a run holding a bad block, is read block by block (the reference reading, which
names every error).  Forcing block-by-block reading everywhere (MIN_FAST_RUN beyond any run)
must give the same records, warnings and errors, whatever the chunk size.
"""

from __future__ import annotations

import random
import struct

import pytest

from inspector.capture import chunks
from inspector.capture.files import CaptureInfo, read_packets
from inspector.errors import CaptureError
from tests.factories import pcap_file

EPB = 6


def block(block_type: int, body: bytes, *, trailer: int | None = None) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length if trailer is None else trailer)


def idb(link_type: int, tsresol: int | None = None, tsoffset: int | None = None) -> bytes:
    options = b""
    if tsresol is not None:
        options += struct.pack("<HH", 9, 1) + bytes([tsresol, 0, 0, 0])
    if tsoffset is not None:
        options += struct.pack("<HHq", 14, 8, tsoffset)
    return block(1, struct.pack("<HHI", link_type, 0, 0) + options + struct.pack("<HH", 0, 0))


def epb(iface: int, units: int, frame: bytes, *, caplen: int | None = None, wire: int | None = None, trailer: int | None = None) -> bytes:
    caplen = len(frame) if caplen is None else caplen
    body = struct.pack("<IIIII", iface, units >> 32, units & 0xFFFFFFFF, caplen, len(frame) + 3 if wire is None else wire) + frame
    return block(EPB, body, trailer=trailer)


SHB = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
# Microseconds, nanoseconds, seconds (far beyond 64-bit nanoseconds: clamped), 2^-10 s,
# and microseconds 100 s late (if_tsoffset).
INTERFACES = [idb(1), idb(113, 9), idb(101, 0), idb(1, 0x8A), idb(228, 6, 100)]


def packets(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [epb(rng.randrange(len(INTERFACES)), rng.choice([0, 1, rng.getrandbits(40), rng.getrandbits(64)]),
                rng.randbytes(rng.randrange(0, 90))) for _ in range(count)]


def read(path, monkeypatch, *, bulk: bool, chunk_records: int = chunks.CHUNK_RECORDS):
    """(records, error, info) of reading `path`, in bulk or block by block."""
    monkeypatch.setattr(chunks, "MIN_FAST_RUN", 8 if bulk else 1 << 40)
    monkeypatch.setattr(chunks, "CHUNK_RECORDS", chunk_records)
    info = CaptureInfo(path=str(path))
    records, error = [], None
    try:
        for chunk in chunks.read_record_chunks(path, info, chunk_records=chunk_records):
            assert chunk.first_index == len(records)
            records += [(ts, link, wire, chunk.data[start : start + caplen])
                        for ts, link, wire, start, caplen in zip(chunk.ts_ns.tolist(), chunk.link_type.tolist(), chunk.wire_len.tolist(),
                                                                 chunk.start.tolist(), chunk.caplen.tolist())]
    except CaptureError as exc:
        error = str(exc)
    return records, error, (info.records, info.truncated, info.warnings, info.clamped_timestamps, sorted(info.link_types))


def assert_bulk_reads_as_block_by_block(path, monkeypatch):
    reference = read(path, monkeypatch, bulk=False)
    for chunk_records in (chunks.CHUNK_RECORDS, 50, 7):
        assert read(path, monkeypatch, bulk=True, chunk_records=chunk_records) == reference
    return reference


def test_pcapng_runs_read_in_bulk_as_block_by_block(tmp_path, monkeypatch):
    # Runs of packet blocks between other blocks: a second section, a late interface, a simple packet block.
    second_section = SHB + INTERFACES[2] + INTERFACES[0]
    spb = block(3, struct.pack("<I", 9) + b"123456789")
    data = SHB + b"".join(INTERFACES) + b"".join(packets(300, 1)) + spb + b"".join(packets(5, 2)) + idb(1) + b"".join(packets(100, 3))
    data += second_section + b"".join(epb(1, 7, b"x" * n) for n in range(40))
    path = tmp_path / "runs.pcapng"
    path.write_bytes(data)
    records, error, (count, truncated, warnings, clamped, _) = assert_bulk_reads_as_block_by_block(path, monkeypatch)
    assert error is None and count == len(records) == 300 + 1 + 5 + 100 + 40 and not truncated
    assert clamped > 0 and "clamped" in warnings[0]
    assert [bytes(r[3]) for r in records] == [bytes(r[3]) for r in read_packets(path)]


@pytest.mark.parametrize("damage", ["trailer", "caplen", "interface", "cut"])
def test_pcapng_bad_block_in_a_run_is_named_as_block_by_block(tmp_path, monkeypatch, damage):
    good = packets(200, 4)
    bad = {"trailer": epb(0, 1, b"abcd", trailer=999), "caplen": epb(0, 1, b"abcd", caplen=5), "interface": epb(9, 1, b"abcd"),
           "cut": epb(0, 1, b"abcdefgh")[:-6]}[damage]
    path = tmp_path / "bad.pcapng"
    path.write_bytes(SHB + b"".join(INTERFACES) + b"".join(good[:150]) + bad + (b"".join(good[150:]) if damage != "cut" else b""))
    records, error, (count, truncated, warnings, _, _) = assert_bulk_reads_as_block_by_block(path, monkeypatch)
    assert len(records) == 150
    if damage == "cut":
        assert error is None and truncated and "after 150 complete packets" in warnings[0]
    else:
        assert error is not None and f"offset {len(SHB + b''.join(INTERFACES) + b''.join(good[:150]))}" in error


def test_pcap_chunks_of_any_size_read_the_same(tmp_path, monkeypatch):
    rng = random.Random(5)
    frames = [(rng.getrandbits(61), rng.randbytes(rng.randrange(0, 70))) for _ in range(500)]
    for nano in (False, True):
        path = tmp_path / "many.pcap"
        path.write_bytes(pcap_file(frames, nano=nano, big_endian=nano)[:-10])  # the last record cut short
        records, error, (count, truncated, _, _, _) = assert_bulk_reads_as_block_by_block(path, monkeypatch)
        expected = [(ts if nano else ts // 1000 * 1000, frame) for ts, frame in frames[:-1]]
        assert [(ts, bytes(data)) for ts, _, _, data in records] == expected and truncated and count == 499
