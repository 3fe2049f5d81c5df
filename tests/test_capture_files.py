"""Capture readers: pcap variants, pcapng, gzip, truncation, bad input."""

from __future__ import annotations

import gzip
import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import CookedLinux, Ether

from inspector.capture.files import CaptureInfo, read_packets
from inspector.errors import CaptureError
from tests.factories import pcap_file, pcapng_file

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
