"""Link types -> IP -> TCP, with exact byte counts per layer."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1Q, Ether, Loopback

from inspector.decode import TcpPacket, decode_packet

PAYLOAD = b"GET / HTTP/1.1\r\n\r\n"
TCP_LAYER = TCP(sport=40000, dport=8080, seq=1000, ack=5, flags="PA", options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])


def decode(link_type: int, frame, wire_len=None):
    raw = bytes(frame)
    return decode_packet(7, link_type, wire_len or len(raw), raw)


def assert_counts(packet: TcpPacket, link: int, ip: int, tcp: int = 32):
    assert isinstance(packet, TcpPacket), packet
    assert (packet.link_bytes, packet.ip_header_bytes, packet.tcp_header_bytes) == (link, ip, tcp)
    assert packet.payload == PAYLOAD and packet.payload_wire_len == len(PAYLOAD)
    assert packet.link_bytes + packet.ip_header_bytes + packet.tcp_header_bytes + packet.payload_wire_len + packet.excess_bytes == packet.wire_len
    assert (packet.src_port, packet.dst_port, packet.seq, packet.ack) == (40000, 8080, 1000, 5)


@pytest.mark.parametrize(
    "link_type, frame, link",
    [
        (1, Ether() / IP() / TCP_LAYER / PAYLOAD, 14),
        (1, Ether() / Dot1Q(vlan=5) / IP() / TCP_LAYER / PAYLOAD, 18),
        (1, Ether() / Dot1Q(vlan=5) / Dot1Q(vlan=6) / IP() / TCP_LAYER / PAYLOAD, 22),
        (113, CookedLinux() / IP() / TCP_LAYER / PAYLOAD, 16),
        (276, CookedLinuxV2() / IP() / TCP_LAYER / PAYLOAD, 20),
        (0, Loopback(type=2) / IP() / TCP_LAYER / PAYLOAD, 4),
        (101, IP() / TCP_LAYER / PAYLOAD, 0),
        (228, IP() / TCP_LAYER / PAYLOAD, 0),
    ],
)
def test_ipv4_link_types(link_type, frame, link):
    assert_counts(decode(link_type, frame), link, 20)


def test_null_loopback_ipv6_macos_family():
    frame = struct.pack("<I", 30) + bytes(IPv6() / TCP_LAYER / PAYLOAD)
    assert_counts(decode(0, frame), 4, 40)


def test_loop_is_network_byte_order():
    frame = struct.pack(">I", 2) + bytes(IP() / TCP_LAYER / PAYLOAD)
    assert_counts(decode(108, frame), 4, 20)


def test_ipv6_extension_headers_count_as_ip():
    assert_counts(decode(229, IPv6() / IPv6ExtHdrDestOpt() / TCP_LAYER / PAYLOAD), 0, 48)


def test_ethernet_padding_is_link_bytes():
    frame = bytes(Ether() / IP() / TCP(flags="A"))
    padded = frame + b"\x00" * (60 - len(frame))
    packet = decode(1, padded)
    assert packet.link_bytes == 14 + 60 - len(frame) and packet.payload_wire_len == 0


def test_snaplen_cut_payload_keeps_wire_length():
    frame = bytes(Ether() / IP() / TCP_LAYER / PAYLOAD)
    packet = decode_packet(1, 1, len(frame), frame[:-10])
    assert packet.payload_wire_len == len(PAYLOAD) and packet.payload == PAYLOAD[:-10]
    assert packet.excess_bytes == 0


def test_bogus_orig_len_beyond_complete_ip_packet_is_excess():
    frame = bytes(Ether() / IP() / TCP_LAYER / PAYLOAD)
    packet = decode_packet(1, 1, len(frame) + 100, frame)
    assert packet.excess_bytes == 100 and packet.payload_wire_len == len(PAYLOAD)


@pytest.mark.parametrize(
    "frame, reason",
    [
        (Ether() / IP() / UDP() / b"x", "udp"),
        (Ether() / IP() / ICMP(), "icmp"),
        (Ether() / ARP(), "arp"),
        (Ether() / IP(flags="MF") / TCP_LAYER, "ip-fragment"),
        (Ether() / IPv6() / IPv6ExtHdrFragment() / TCP_LAYER, "ip-fragment"),
        (Ether(type=0x88CC) / b"lldp", "not-ip"),
        (Ether() / IP(), "ip-other"),
    ],
)
def test_non_tcp_frames_give_a_reason(frame, reason):
    assert decode(1, frame) == reason


def test_truncated_headers_give_a_reason():
    frame = bytes(Ether() / IP() / TCP_LAYER)
    assert decode_packet(1, 1, len(frame), frame[:30]) == "truncated-ip-header"
    assert decode_packet(1, 1, len(frame), frame[:40]) == "truncated-tcp-header"
