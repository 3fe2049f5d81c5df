"""Capture readers: pcap variants, pcapng, gzip, truncation, bad input."""

from __future__ import annotations

import gzip
import inspect
import os
import struct
import tempfile
import threading
import zlib

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import CookedLinux, Ether

from inspector.capture import files
from inspector.capture.files import CaptureInfo, read_packets
from inspector.errors import CaptureError
from tests.factories import gzip_bomb, pcap_file, pcapng_file

FRAME = bytes(Ether() / IP(src="127.0.0.1", dst="127.0.0.2") / TCP(sport=1234, dport=80, flags="S"))
TS = 1_700_000_000_123_456_789


def read_all(path):
    info = CaptureInfo(path=str(path))
    return list(read_packets(path, info)), info


@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_resolutions_and_byte_orders(tmp_path, nano, big_endian):
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap_file([(TS, FRAME), (TS + 1000, FRAME)], nano=nano, big_endian=big_endian))
    records, info = read_all(path)
    expected_ts = TS if nano else TS - TS % 1000
    assert [(r[0], r[1], r[2], bytes(r[3])) for r in records] == [(expected_ts, 1, len(FRAME), FRAME), (expected_ts + 1000, 1, len(FRAME), FRAME)]
    assert info.format == "pcap" and not info.truncated


def test_pcapng_several_interfaces_and_link_types(tmp_path):
    sll = bytes(CookedLinux() / IP() / TCP())
    data = pcapng_file([(1, 6), (113, 9)], [(0, 1_700_000_000_000_001, FRAME), (1, 1_700_000_000_000_000_002, sll)])
    path = tmp_path / "x.pcapng"
    path.write_bytes(data)
    records, info = read_all(path)
    assert [(r[0], r[1], bytes(r[3])) for r in records] == [(1_700_000_000_000_001_000, 1, FRAME), (1_700_000_000_000_000_002, 113, sll)]
    assert info.link_types == {1, 113}


def test_pcapng_big_endian_section(tmp_path):
    path = tmp_path / "be.pcapng"
    path.write_bytes(pcapng_file([(1, 6)], [(0, 5_000_000, FRAME)], big_endian=True))
    records, _ = read_all(path)
    assert [(r[0], bytes(r[3])) for r in records] == [(5_000_000_000, FRAME)]


def test_pcapng_timestamp_beyond_64_bit_nanoseconds_is_clamped_with_a_warning(tmp_path):
    """if_tsresol 0 (units of a second) lets 64 timestamp bits mean 1e19 seconds: such a packet
    is still read, its time clamped to what 64-bit nanoseconds hold, and the capture warns.
    (It used to crash the analysis: OverflowError in the tables' int64 arrays.)"""
    from inspector.analysis.pipeline import analyze_captures

    path = tmp_path / "far.pcapng"
    syn = bytes(Ether() / IP(src="127.0.0.1", dst="127.0.0.2") / TCP(sport=1234, dport=80, flags="S", seq=1))
    synack = bytes(Ether() / IP(src="127.0.0.2", dst="127.0.0.1") / TCP(sport=80, dport=1234, flags="SA", seq=9, ack=2))
    path.write_bytes(pcapng_file([(1, 0)], [(0, 1_700_000_000, syn), (0, 1 << 62, synack)]))
    records, info = read_all(path)
    assert [r[0] for r in records] == [1_700_000_000 * 10**9, (1 << 63) - 1]
    assert info.clamped_timestamps == 1
    (warning,) = info.warnings
    assert "1 packets have timestamps outside the years 1678 to 2262" in warning
    analysis = analyze_captures([path], jobs=1)
    assert analysis["connections"]["packets"].tolist() == [2] and any("1678 to 2262" in w for w in analysis.warnings)


def test_gzip_compressed_capture_is_sniffed_not_named(tmp_path):
    path = tmp_path / "looks-plain.pcap"
    path.write_bytes(gzip.compress(pcap_file([(TS, FRAME)])))
    records, _ = read_all(path)
    assert len(records) == 1 and bytes(records[0][3]) == FRAME


def test_truncated_capture_reads_up_to_the_cut_with_warning(tmp_path):
    data = pcap_file([(TS, FRAME)] * 3)
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-10])
    records, info = read_all(path)
    assert len(records) == 2
    assert info.truncated and "cut short after 2 complete packets" in info.warnings[0]


def test_missing_file(tmp_path):
    with pytest.raises(CaptureError, match="no such file"):
        read_all(tmp_path / "nope.pcap")


def test_not_a_capture(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a capture\n")
    with pytest.raises(CaptureError, match="not a pcap or pcapng capture"):
        read_all(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    with pytest.raises(CaptureError, match="not a capture file"):
        read_all(path)


# --- pcapng blocks too short for their fixed fields ------------------------------------------

EMPTY_SECTION = pcapng_file([], [])
WITH_PACKET = pcapng_file([(1, 6)], [(0, 5, FRAME)])


def pcapng_block(block_type: int, body: bytes, *, length: int | None = None, trailer: int | None = None) -> bytes:
    length = 12 + len(body) if length is None else length
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length if trailer is None else trailer)


@pytest.mark.parametrize("block_type, name", [(6, "enhanced packet block"), (2, "obsolete packet block"),
                                              (3, "simple packet block"), (1, "interface description block")])
@pytest.mark.parametrize("where", ["at the end", "mid-file"])
def test_pcapng_block_too_short_for_its_fields_is_corrupt(tmp_path, block_type, name, where):
    """A block whose length (12: no body at all) cannot hold its fixed fields is a damaged file,
    as tshark says too, wherever it is: one CaptureError naming the file, the block and its offset."""
    short = pcapng_block(block_type, b"")
    data = WITH_PACKET + short + (WITH_PACKET[len(EMPTY_SECTION):] if where == "mid-file" else b"")
    path = tmp_path / "short-block.pcapng"
    path.write_bytes(data)
    with pytest.raises(CaptureError) as error:
        read_all(path)
    message = str(error.value)
    assert str(path) in message and name in message and f"offset {len(WITH_PACKET)}" in message and "\n" not in message


def test_pcapng_section_header_too_short_is_corrupt(tmp_path):
    path = tmp_path / "short-shb.pcapng"
    path.write_bytes(WITH_PACKET + pcapng_block(0x0A0D0D0A, struct.pack("<I", 0x1A2B3C4D)))
    with pytest.raises(CaptureError, match=f"section header block at offset {len(WITH_PACKET)}"):
        read_all(path)


def test_pcapng_packet_longer_than_its_block_is_corrupt(tmp_path):
    # An EPB claiming 1000 captured bytes but holding 4.
    epb = pcapng_block(6, struct.pack("<IIIII", 0, 0, 5, 1000, 1000) + b"abcd")
    path = tmp_path / "long-caplen.pcapng"
    path.write_bytes(WITH_PACKET + epb)
    with pytest.raises(CaptureError, match=f"enhanced packet block at offset {len(WITH_PACKET)}.*1000"):
        read_all(path)


def test_pcapng_option_running_past_its_block_is_corrupt(tmp_path):
    # An IDB whose if_tsoffset option (8 bytes) is cut by the end of the block, at the end of the file.
    idb = pcapng_block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 14, 8) + b"\0\0\0\0")
    path = tmp_path / "long-option.pcapng"
    path.write_bytes(EMPTY_SECTION + idb)
    with pytest.raises(CaptureError, match=f"interface description block at offset {len(EMPTY_SECTION)}"):
        read_all(path)


def test_pcapng_block_lengths_that_disagree_are_corrupt(tmp_path):
    epb = WITH_PACKET[-(len(WITH_PACKET) - len(pcapng_file([(1, 6)], []))):]
    bad = epb[:-4] + struct.pack("<I", len(epb) + 4)
    path = tmp_path / "trailer.pcapng"
    path.write_bytes(pcapng_file([(1, 6)], []) + bad)
    with pytest.raises(CaptureError, match="block lengths"):
        read_all(path)


# --- gzip: inflation cap, cut short, trailing bytes; pipes and devices ----------------------------

class CountingTemporaryFile:
    """tempfile.TemporaryFile standing in for the copy, counting the bytes written to it."""

    written = 0

    def __init__(self, real=tempfile.TemporaryFile):
        self.real = real

    def __call__(self, *args, **kwargs):
        copy = self.real(*args, **kwargs)
        write = copy.write

        def counted(data):
            self.written += len(data)
            return write(data)

        copy.write = counted
        return copy


@pytest.fixture
def copies(monkeypatch):
    counter = CountingTemporaryFile()
    monkeypatch.setattr(files.tempfile, "TemporaryFile", counter)
    return counter


def test_gzip_bomb_stops_at_the_inflation_cap(tmp_path, copies):
    path = tmp_path / "bomb.pcap.gz"
    compressed = gzip_bomb(path, 16 << 20)
    assert compressed < 50_000  # 16 MiB of capture from a few dozen KB
    with pytest.raises(files.CaptureLimitError) as error:
        read_all_capped(path, 1 << 20)
    message = str(error.value)
    assert str(path) in message and "1,048,576 bytes" in message and "--max-inflated" in message and "\n" not in message
    assert error.value.limit == 1 << 20
    assert copies.written <= 1 << 20  # stopped at the cap, not after inflating everything
    # Under a cap big enough, the same file is read: after the header, zeros are empty records.
    records, info = read_all_capped(path, 16 << 20)
    assert info.size == 16 << 20 and len(records) == ((16 << 20) - 24) // 16 and info.truncated


def read_all_capped(path, cap):
    info = CaptureInfo(path=str(path))
    return list(read_packets(path, info, max_inflated_bytes=cap)), info


def test_default_inflation_cap_is_named():
    assert files.DEFAULT_MAX_INFLATED_BYTES == 1 << 30
    assert inspect.signature(read_packets).parameters["max_inflated_bytes"].default == files.DEFAULT_MAX_INFLATED_BYTES


def test_gzip_of_something_else_is_refused_before_it_is_copied(tmp_path, copies):
    path = tmp_path / "zeros.gz"
    path.write_bytes(gzip.compress(bytes(16 << 20)))
    with pytest.raises(CaptureError, match="not a pcap or pcapng capture \\(magic 00000000\\)"):
        read_all(path)
    assert copies.written == 0


CUT_CAPTURE = pcap_file([(TS + i, FRAME + bytes([i]) * i) for i in range(200)])


def gzip_cut_at(data: bytes, cut: int) -> bytes:
    """gzip data whose member ends (unfinished) right after data[:cut]: flushed there and stopped."""
    member = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return member.compress(data[:cut]) + member.flush(zlib.Z_SYNC_FLUSH)


def test_gzip_cut_short_reads_up_to_the_cut(tmp_path):
    compressed = gzip.compress(CUT_CAPTURE)
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    records, info = read_all(path)
    whole, _ = read_all_bytes(tmp_path / "whole.pcap", CUT_CAPTURE)
    assert 0 < len(records) < len(whole) and records == whole[: len(records)]
    assert info.truncated and len(info.warnings) == 1 and f"cut short after {len(records)} complete packets" in info.warnings[0]


def test_gzip_cut_short_is_read_like_the_same_capture_cut_short_uncompressed(tmp_path):
    cut = len(CUT_CAPTURE) // 2 + 7  # inside a record
    gz_records, gz_info = read_all_bytes(tmp_path / "cut.pcap.gz", gzip_cut_at(CUT_CAPTURE, cut))
    plain_records, plain_info = read_all_bytes(tmp_path / "cut.pcap", CUT_CAPTURE[:cut])
    assert gz_records == plain_records and gz_info.size == plain_info.size == cut
    assert gz_info.truncated and plain_info.truncated
    assert [w.replace(".pcap.gz", ".pcap") for w in gz_info.warnings] == plain_info.warnings


def read_all_bytes(path, data: bytes):
    """Records (with bytes, not views) and info of `data` written to `path`."""
    path.write_bytes(data)
    records, info = read_all(path)
    return [(r[0], r[1], r[2], bytes(r[3])) for r in records], info


def test_gzip_cut_short_on_a_record_boundary_is_still_cut_short(tmp_path):
    data = pcap_file([(TS, FRAME)] * 3)
    records, info = read_all_bytes(tmp_path / "unfinished.pcap.gz", gzip_cut_at(data, len(data)))
    assert len(records) == 3 and info.truncated and "cut short after 3 complete packets" in info.warnings[0]


def test_gzip_members_padding_and_trailing_bytes(tmp_path):
    first, second = pcap_file([(TS, FRAME)]), struct.pack("<IIII", 1, 0, len(FRAME), len(FRAME)) + FRAME
    path = tmp_path / "members.pcap.gz"
    path.write_bytes(gzip.compress(first) + bytes(100) + gzip.compress(second) + b"not gzip at all")
    records, info = read_all(path)
    assert [bytes(r[3]) for r in records] == [FRAME, FRAME]
    assert not info.truncated and len(info.warnings) == 1 and "not gzip; ignored" in info.warnings[0]


def test_corrupt_gzip_is_one_line(tmp_path):
    data = bytearray(gzip.compress(pcap_file([(TS, FRAME)] * 50)))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "corrupt.pcap.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(CaptureError, match=r"corrupt gzip data \((invalid|incorrect)") as error:
        read_all(path)
    assert "Error -3" not in str(error.value)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_is_its_own_message(tmp_path, monkeypatch):
    """The copy is written to /dev/full, whose writes fail with ENOSPC as a full disk's do."""
    monkeypatch.setattr(files.tempfile, "TemporaryFile", lambda *a, **k: open("/dev/full", "w+b"))
    path = tmp_path / "big.pcap.gz"
    gzip_bomb(path, 16 << 20)
    with pytest.raises(CaptureError) as error:
        read_all(path)
    message = str(error.value)
    assert message.startswith(f"{path}: no space left in the temporary folder") and "TMPDIR" in message
    assert "Errno" not in message


def test_pipe_is_copied_in_blocks_up_to_the_cap(tmp_path, copies):
    """A pipe cannot be mapped: it is copied, block by block, and no further than the cap."""
    data = pcap_file([(TS + i, FRAME) for i in range(2000)])
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=_feed, args=(write_end, data), daemon=True)
    writer.start()
    try:
        records, info = read_all(f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)
        writer.join(timeout=30)
    assert len(records) == 2000 and info.size == len(data) and copies.written == len(data)

    read_end, write_end = os.pipe()
    endless = threading.Thread(target=_feed, args=(write_end, data, 1000), daemon=True)
    endless.start()
    try:
        with pytest.raises(files.CaptureLimitError, match="a pipe or device giving more than 100,000 bytes"):
            read_all_capped(f"/dev/fd/{read_end}", 100_000)
    finally:
        os.close(read_end)
        endless.join(timeout=30)
    assert copies.written - len(data) <= 100_000


def _feed(write_end: int, data: bytes, times: int = 1) -> None:
    try:
        with os.fdopen(write_end, "wb") as pipe:
            for _ in range(times):
                pipe.write(data)
    except BrokenPipeError:
        pass  # the reader stopped reading
