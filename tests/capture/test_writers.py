"""Streaming pcap/pcapng writers: read back by our reader and by Wireshark's tools."""

from __future__ import annotations

import io

import pytest

from inspector.capture.files import CaptureInfo, read_packets
from inspector.capture.writers import PcapngWriter, PcapWriter, open_writer
from tests.capture.tools import require_wireshark_tools, run_tool

TS = 1_700_000_000_123_456_789
# Ethernet / IPv4 / TCP SYN 127.0.0.1:1234 -> 127.0.0.2:80, then frames of every padding length.
FRAME = bytes.fromhex(
    "000000000000000000000000080045000028000100004006"
    "7cca7f0000017f00000204d200500000000000000000500220"
    "00917c0000"
)
PACKETS = [(TS + i * 1_001, FRAME + b"\0" * i, len(FRAME) + i) for i in range(5)]
WRITERS = {"pcap": PcapWriter, "pcapng": PcapngWriter}


def read_all(path):
    info = CaptureInfo(path=str(path))
    records = [(ts, link, wire, bytes(data)) for ts, link, wire, data in read_packets(path, info)]
    return records, info


def expected(nanosecond: bool, link_type: int = 1):
    return [(ts if nanosecond else ts - ts % 1000, link_type, wire, data) for ts, data, wire in PACKETS]


@pytest.mark.parametrize("nanosecond", [False, True], ids=["us", "ns"])
@pytest.mark.parametrize("kind", WRITERS)
def test_round_trip_through_our_reader(tmp_path, kind, nanosecond):
    path = tmp_path / f"x.{kind}"
    with WRITERS[kind](path, 1, nanosecond=nanosecond) as writer:
        for ts, data, wire in PACKETS:
            writer.write(ts, data, wire)
    records, info = read_all(path)
    assert records == expected(nanosecond)
    assert info.format == kind and not info.truncated and not info.warnings


@pytest.mark.parametrize("kind", WRITERS)
def test_snaplen_cuts_data_but_keeps_wire_length(tmp_path, kind):
    path = tmp_path / f"x.{kind}"
    with WRITERS[kind](path, 1, snaplen=40, nanosecond=True) as writer:
        writer.write(TS, FRAME + b"x" * 100, len(FRAME) + 100)
    (record,), _ = read_all(path)
    assert record == (TS, 1, len(FRAME) + 100, (FRAME + b"x" * 100)[:40])


@pytest.mark.parametrize("kind", WRITERS)
def test_file_is_valid_after_every_flush(tmp_path, kind):
    """A capture killed after a flush leaves a file that reads back whole."""
    path = tmp_path / f"x.{kind}"
    writer = WRITERS[kind](path, 1, nanosecond=True, flush_interval=3600)
    assert read_all(path)[0] == []  # the header alone is written at once
    for n, (ts, data, wire) in enumerate(PACKETS, 1):
        writer.write(ts, data, wire)
        assert writer.pending_bytes > 0  # buffered until the flush...
        writer.flush()
        records, info = read_all(path)  # ...after which the file is complete, without close()
        assert records == expected(True)[:n] and not info.truncated
    writer.close()
    writer.close()  # idempotent


@pytest.mark.parametrize("kind", WRITERS)
def test_flushes_by_itself_after_the_interval(tmp_path, kind):
    path = tmp_path / f"x.{kind}"
    writer = WRITERS[kind](path, 1, flush_interval=0.0)
    writer.write(*PACKETS[0])
    assert writer.pending_bytes == 0
    assert len(read_all(path)[0]) == 1
    writer.close()


def test_writes_to_a_file_object_without_closing_it():
    out = io.BytesIO()
    writer = PcapWriter(out, 113, nanosecond=True)
    writer.write(TS, FRAME, len(FRAME))
    writer.close()
    assert not out.closed
    assert out.getvalue()[:4] == b"\x4d\x3c\xb2\xa1" and out.getvalue()[20:24] == (113).to_bytes(4, "little")


def test_open_writer_picks_format_by_extension(tmp_path):
    for name, cls in [("a.pcapng", PcapngWriter), ("b.PCAPNG", PcapngWriter), ("c.pcap", PcapWriter), ("d.cap", PcapWriter), ("e", PcapWriter)]:
        writer = open_writer(tmp_path / name, 1)
        writer.close()
        assert type(writer) is cls, name
        assert read_all(tmp_path / name)[1].format == ("pcapng" if cls is PcapngWriter else "pcap")


def test_pcapng_names_the_interface_and_resolution(tmp_path):
    require_wireshark_tools()
    path = tmp_path / "x.pcapng"
    with PcapngWriter(path, 1, nanosecond=True, if_name="lo") as writer:
        writer.write(*PACKETS[0])
    out = run_tool("tshark", "-r", str(path), "-T", "fields", "-e", "frame.interface_name", "-e", "frame.time_epoch").split()
    assert out == ["lo", "1700000000.123456789"]


@pytest.mark.parametrize("nanosecond", [False, True], ids=["us", "ns"])
@pytest.mark.parametrize("kind", WRITERS)
def test_wireshark_tools_read_it(tmp_path, kind, nanosecond):
    require_wireshark_tools()
    path = tmp_path / f"x.{kind}"
    with WRITERS[kind](path, 1, nanosecond=nanosecond) as writer:
        for ts, data, wire in PACKETS:
            writer.write(ts, data, wire)
    info = run_tool("capinfos", "-M", "-c", "-d", "-t", "-E", str(path))
    assert "Number of packets:   5\n" in info
    assert f"Data size:           {sum(w for _, _, w in PACKETS)} bytes\n" in info
    file_type = {"pcapng": "pcapng", "pcap": "nsecpcap" if nanosecond else "pcap"}[kind]
    assert f"File type:           {file_type}\n" in info and "File encapsulation:  ether\n" in info
    fields = run_tool("tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len", "-e", "tcp.dstport")
    rows = [line.split("\t") for line in fields.splitlines()]
    assert rows == [[_epoch(ts, nanosecond), str(wire), str(len(data)), "80"] for ts, data, wire in PACKETS]


def _epoch(ts: int, nanosecond: bool) -> str:
    """frame.time_epoch as tshark prints it: always nine digits."""
    if not nanosecond:
        ts -= ts % 1000
    return f"{ts // 10**9}.{ts % 10**9:09d}"
