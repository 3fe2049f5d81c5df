"""Capture readers: pcap variants, pcapng, gzip, truncation, bad input."""

from __future__ import annotations

import gzip

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
