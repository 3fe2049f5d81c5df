"""The column decoder (decode_columns) and the frame-by-frame one (decode_segment) never disagree.

Every frame is decoded both ways inside one chunk; where decode_columns decodes a row, its
fields must be decode_segment's, and the common shapes must be decoded column-wise.  The
flow numbers given column-wise (analysis.segments) must be flow_of's.
"""

from __future__ import annotations

import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1Q, Ether, Loopback

from inspector.analysis.segments import flow_of, shard_segments
from inspector.capture.chunks import RecordChunk
from inspector.decode import TcpFields, decode_segment, shard_of_ports
from inspector.decode_columns import TcpColumns, decode_columns

PAYLOAD = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
TCP_OPTIONS = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]


def tcp(**fields):
    return TCP(sport=40000, dport=8080, seq=1000, ack=5, flags="PA", options=TCP_OPTIONS, **fields)


def eth(**fields):
    # Addresses given: scapy would otherwise look them up (slowly) in the host's tables.
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **fields)


def ipv4(**fields):
    return IP(src="10.0.0.1", dst="10.0.0.2", **fields)


def ipv6(**fields):
    return IPv6(src="fd00::1", dst="fd00::2", **fields)


# (link type, frame): one of each shape decode_columns decodes itself ...
COMMON = [
    (1, eth() / ipv4() / tcp() / PAYLOAD),
    (1, eth() / ipv4(options=b"\x01\x01\x01\x00") / tcp() / PAYLOAD),  # IP options
    (1, eth() / ipv4() / TCP(flags="S")),
    (1, eth() / ipv4() / TCP(flags="A")),  # 54 bytes: padded to 60 below too
    (1, eth() / ipv6() / tcp() / PAYLOAD),
    (113, CookedLinux() / ipv4() / tcp() / PAYLOAD),
    (113, CookedLinux() / ipv6() / tcp() / PAYLOAD),
    (276, CookedLinuxV2() / ipv4() / tcp() / PAYLOAD),
    (0, Loopback(type=2) / ipv4() / tcp() / PAYLOAD),
    (0, struct.pack(">I", 2) + bytes(ipv4() / tcp() / PAYLOAD)),  # NULL written big-endian
    (0, struct.pack("<I", 30) + bytes(ipv6() / tcp() / PAYLOAD)),  # macOS AF_INET6
    (0, struct.pack("<I", 24) + bytes(ipv6() / tcp() / PAYLOAD)),
    (108, struct.pack(">I", 2) + bytes(ipv4() / tcp() / PAYLOAD)),
    (108, struct.pack(">I", 10) + bytes(ipv6() / tcp() / PAYLOAD)),
    (101, ipv4() / tcp() / PAYLOAD),
    (101, ipv6() / tcp() / PAYLOAD),
    (12, ipv4() / tcp() / PAYLOAD),
    (14, ipv6() / tcp() / PAYLOAD),
    (228, ipv4() / tcp() / PAYLOAD),
    (229, ipv6() / tcp() / PAYLOAD),
    (1, eth() / Dot1Q(vlan=5) / ipv4() / tcp() / PAYLOAD),
    (1, eth() / Dot1Q(vlan=5) / Dot1Q(vlan=6) / ipv6() / tcp() / PAYLOAD),
    (1, eth(type=0x88A8) / Dot1Q(vlan=5) / ipv4() / tcp() / PAYLOAD),  # QinQ
]
# ... and the shapes it leaves to decode_segment.
RARE = [
    (1, eth() / Dot1Q(vlan=5) / Dot1Q(vlan=6) / Dot1Q(vlan=7) / ipv4() / tcp() / PAYLOAD),
    (1, eth() / ipv6() / IPv6ExtHdrDestOpt() / tcp() / PAYLOAD),
    (229, ipv6() / IPv6ExtHdrDestOpt() / tcp() / PAYLOAD),
    (1, eth() / ipv4(flags="MF") / tcp() / PAYLOAD),
    (1, eth() / ipv4(frag=100) / tcp() / PAYLOAD),
    (1, eth() / ipv6() / IPv6ExtHdrFragment() / tcp() / PAYLOAD),
    (1, eth() / ipv4() / UDP() / b"x"),
    (1, eth() / ipv4() / ICMP()),
    (1, eth() / ARP()),
    (1, eth(type=0x88CC) / b"lldp"),
    (1, eth() / ipv4()),
    (1, eth() / ipv6() / UDP() / b"x"),
    (0, struct.pack("<I", 7) + bytes(ipv4() / tcp())),  # an unknown family
    (101, b"\x50" + bytes(40)),  # IP version 5
    (147, eth() / ipv4() / tcp() / PAYLOAD),  # a link type decode.py does not know
]
COMMON = [(link_type, bytes(frame)) for link_type, frame in COMMON]  # built once: scapy is slow
RARE = [(link_type, bytes(frame)) for link_type, frame in RARE]


def frame_variants(link_type: int, raw: bytes) -> list[tuple[int, int, bytes]]:
    """(link type, wire length, captured bytes): the frame as it is, cut short at every
    length, with a trailer, with bogus wire lengths, with IPv4 total length 0 (offload)."""
    variants = [(link_type, len(raw), raw), (link_type, len(raw) + 100, raw), (link_type, len(raw) - 7, raw),
                (link_type, len(raw) + 4, raw + b"\0\0\0\0"), (link_type, 60, raw.ljust(60, b"\0")), (link_type, 3, raw)]
    variants += [(link_type, len(raw), raw[:cut]) for cut in range(len(raw))]
    variants += [(link_type, len(raw) - 3, raw[:cut]) for cut in range(0, len(raw), 5)]
    version_at = raw.find(b"\x45\x00")
    if version_at >= 0:  # an IPv4 header: its total length zeroed, with and without a trailer
        zeroed = raw[: version_at + 2] + b"\0\0" + raw[version_at + 4 :]
        variants += [(link_type, len(zeroed), zeroed), (link_type, len(zeroed) + 6, zeroed + bytes(6)), (link_type, len(zeroed), zeroed[:-3])]
    return variants


def chunk_of(frames: list[tuple[int, int, bytes]]) -> RecordChunk:
    """The frames as one chunk, each after a few bytes of something else (as record headers are)."""
    data, starts = b"", []
    for _, _, raw in frames:
        data += b"\xee" * 5
        starts.append(len(data))
        data += raw
    column = lambda values: np.array(values, dtype=np.int64)  # noqa: E731
    return RecordChunk(data, 0, 0, column(starts), column([len(raw) for _, _, raw in frames]), column([wire for _, wire, _ in frames]),
                       column(range(len(frames))), column([link for link, _, _ in frames]))


def column_rows(chunk: RecordChunk) -> list[TcpFields | None]:
    """decode_columns' fields of each row, None where it leaves the row to decode_segment."""
    columns = decode_columns(chunk.data, chunk.start, chunk.caplen, chunk.wire_len, chunk.link_type)
    values = zip(*(getattr(columns, name).tolist() for name in TcpColumns.FIELDS))
    return [TcpFields(*row) if decoded else None for decoded, row in zip(columns.decoded.tolist(), values)]


def assert_agree(frames: list[tuple[int, int, bytes]]) -> list[TcpFields | None]:
    rows = column_rows(chunk_of(frames))
    for (link_type, wire_len, raw), row in zip(frames, rows):
        if row is not None:
            assert row == decode_segment(link_type, wire_len, raw), (link_type, wire_len, raw.hex())
    return rows


def test_columns_agree_with_decode_segment_on_every_shape_and_cut():
    frames = [variant for link_type, frame in COMMON + RARE for variant in frame_variants(link_type, frame)]
    rows = assert_agree(frames)
    decoded = sum(row is not None for row in rows)
    assert decoded > len(COMMON) * 4  # the common shapes, whole and with trailers, are decoded column-wise


def test_common_shapes_are_decoded_column_wise_and_rare_ones_are_not():
    common = [(link_type, len(frame), frame) for link_type, frame in COMMON]
    rare = [(link_type, len(frame), frame) for link_type, frame in RARE]
    assert all(row is not None for row in assert_agree(common))
    assert all(row is None for row in assert_agree(rare))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(range(len(COMMON))), st.integers(0, 2**16 - 1), st.binary(min_size=1, max_size=4),
                          st.integers(-8, 200)), min_size=1, max_size=8))
def test_columns_agree_on_mutated_frames(mutations):
    """Bytes overwritten anywhere in a common frame, wire lengths off either way."""
    frames = []
    for which, where, patch, wire_delta in mutations:
        link_type, frame = COMMON[which]
        raw = bytearray(frame)
        at = where % len(raw)
        raw[at : at + len(patch)] = patch
        frames.append((link_type, max(0, len(raw) + wire_delta), bytes(raw)))
    assert_agree(frames)


def test_flow_numbers_and_shards_column_wise_are_flow_of_and_shard_of_ports():
    frames = []
    for sport, dport in ((40000, 8080), (8080, 40000), (5, 5), (65535, 1)):
        for src, dst in (("10.0.0.1", "10.0.0.2"), ("10.0.0.2", "10.0.0.1"), ("10.0.0.1", "10.0.0.1")):
            frames.append((1, eth() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport)))
        for src, dst in (("fd00::2", "fd00::1"), ("fd00::1", "fd00::2"), ("fd00::1", "fd00::1"), ("fd00::1:0", "fd00::1"),
                         ("2001:db8::1", "fd00::1"), ("fd00::1", "2001:db8::1")):
            frames.append((1, eth() / IPv6(src=src, dst=dst) / TCP(sport=sport, dport=dport)))
        frames.append((1, eth() / Dot1Q(vlan=3) / IP(src="10.0.0.9", dst="10.0.0.1") / TCP(sport=sport, dport=dport)))
    raws = [(link_type, len(raw), raw) for link_type, raw in ((link_type, bytes(frame)) for link_type, frame in frames)]
    chunk = chunk_of(raws)
    for shards in (1, 2, 3):
        for shard in range(shards):
            segments = shard_segments(chunk, shard, shards, None)
            for row, index in enumerate(segments.index):
                packet = decode_segment(*raws[index])
                assert shard_of_ports(packet.src_port, packet.dst_port, shards) == shard
                (src_ip, src_port), (dst_ip, dst_port) = segments.endpoints(row)
                raw = raws[index][2]
                assert (src_ip, dst_ip) == (raw[packet.src_ip_start :][: packet.address_bytes], raw[packet.dst_ip_start :][: packet.address_bytes])
                assert (src_port, dst_port) == (packet.src_port, packet.dst_port)
                assert (segments.flow[row], segments.direction[row]) == flow_of(src_ip, src_port, dst_ip, dst_port)
            if shards == 1:
                assert len(segments) == len(frames)


def test_flow_of_is_the_same_both_ways_and_tells_the_direction():
    a, b = (b"\x0a\0\0\x01", 40000), (b"\x0a\0\0\x02", 80)
    assert flow_of(*a, *b)[0] == flow_of(*b, *a)[0]
    assert {flow_of(*a, *b)[1], flow_of(*b, *a)[1]} == {0, 1}
    assert flow_of(*a, *a) == (flow_of(*a, *a)[0], 0)
    v6 = (bytes(12) + a[0], a[1]), (bytes(12) + b[0], b[1])
    assert flow_of(*v6[0], *v6[1])[0] != flow_of(*a, *b)[0]  # IPv4 and IPv6 flows never meet
