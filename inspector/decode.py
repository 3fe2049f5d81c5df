"""Link layer -> IP -> TCP: turn one captured frame into a TcpPacket.

Supported link types: Ethernet (with 802.1Q/802.1ad VLAN tags), Linux cooked
capture v1 and v2 (what ``-i any`` gives), BSD NULL and OpenBSD LOOP
(macOS ``lo0``), and raw IP (several link type numbers mean raw IP).  Frames
that are not TCP over IPv4/IPv6 come back as a short reason string so the
caller can count them: nothing is dropped silently.

Byte accounting is exact: link_bytes + ip_header_bytes + tcp_header_bytes +
payload_wire_len + excess_bytes == wire_len for every packet.
"""

from __future__ import annotations

import struct
from typing import NamedTuple


LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_OPENBSD = 12
LINKTYPE_RAW_BSDOS = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SUPPORTED_LINK_TYPES = {
    LINKTYPE_NULL: "BSD loopback (NULL)",
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW_OPENBSD: "raw IP",
    LINKTYPE_RAW_BSDOS: "raw IP",
    LINKTYPE_RAW: "raw IP",
    LINKTYPE_LOOP: "OpenBSD loopback (LOOP)",
    LINKTYPE_LINUX_SLL: "Linux cooked (SLL)",
    LINKTYPE_IPV4: "raw IPv4",
    LINKTYPE_IPV6: "raw IPv6",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2 (SLL2)",
}

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100)
# BSD NULL link headers hold the host's AF_INET6, which differs by OS.
NULL_AF_INET = 2
NULL_AF_INET6 = (10, 24, 28, 30)
IPPROTO_TCP = 6
IPV6_EXTENSION_HEADERS = (0, 43, 60)
IPV6_FRAGMENT = 44


class TcpPacket(NamedTuple):
    """One TCP segment with the byte counts of every layer that carried it."""

    ts_ns: int
    src_ip: bytes
    src_port: int
    dst_ip: bytes
    dst_port: int
    seq: int
    ack: int
    flags: int  # the TCP flags byte (bits: inspector.parse.tcp.TCP_SYN, ...)
    payload: bytes  # captured payload; may be shorter than payload_wire_len
    payload_wire_len: int
    wire_len: int
    link_bytes: int
    ip_header_bytes: int
    tcp_header_bytes: int
    excess_bytes: int  # frame bytes claimed by orig_len beyond a complete IP packet


class TcpFields(NamedTuple):
    """What decode_segment finds in a frame: the TCP segment's fields and byte counts,
    with the places of its IP header and payload in the frame (offsets from its start).
    The addresses are the `address_bytes` bytes at src_ip_start and dst_ip_start."""

    ip_start: int
    address_bytes: int  # 4 (IPv4) or 16 (IPv6)
    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    payload_start: int
    payload_end: int  # captured payload: frame[payload_start:payload_end]
    payload_wire_len: int
    link_bytes: int
    ip_header_bytes: int
    tcp_header_bytes: int
    excess_bytes: int

    @property
    def src_ip_start(self) -> int:
        return self.ip_start + (12 if self.address_bytes == 4 else 8)

    @property
    def dst_ip_start(self) -> int:
        return self.src_ip_start + self.address_bytes


def decode_packet(ts_ns: int, link_type: int, wire_len: int, data: bytes) -> TcpPacket | str:
    """Decode a frame; returns a TcpPacket, or the reason it is not one."""
    fields = decode_segment(link_type, wire_len, data)
    if type(fields) is str:
        return fields
    src, dst, size = fields.src_ip_start, fields.dst_ip_start, fields.address_bytes
    return TcpPacket(ts_ns, bytes(data[src : src + size]), fields.src_port, bytes(data[dst : dst + size]), fields.dst_port,
                     fields.seq, fields.ack, fields.flags, bytes(data[fields.payload_start : fields.payload_end]),
                     fields.payload_wire_len, wire_len, fields.link_bytes, fields.ip_header_bytes, fields.tcp_header_bytes,
                     fields.excess_bytes)


def decode_segment(link_type: int, wire_len: int, data: bytes) -> TcpFields | str:
    """Decode a frame into TcpFields (numbers only: nothing copied), or the reason it is
    not a TCP segment.  decode_columns (inspector/decode_columns.py) gives the same fields
    for the common shapes of a whole chunk of frames at once."""
    ip_start, ethertype = _strip_link(link_type, data)
    if ip_start < 0:
        return "truncated-link-header" if ip_start == -1 else "unsupported-link-type"
    if ethertype == ETHERTYPE_IPV4:
        return _decode_ipv4(wire_len, data, ip_start)
    if ethertype == ETHERTYPE_IPV6:
        return _decode_ipv6(wire_len, data, ip_start)
    if ethertype == 0x0806:
        return "arp"
    return "not-ip"


def shard_of_ports(port_a: int, port_b: int, shards: int) -> int:
    """The worker of a connection, from its two ports: the same both ways and for a
    reused 4-tuple.  Not the plain sum mod shards: Linux hands out ephemeral ports of
    one parity, so against one server port every sum has the same parity and two
    workers would get all connections on one side.  The sum is mixed first
    (Fibonacci hashing: times 2^32/phi, upper bits)."""
    return (((port_a + port_b) * 0x9E3779B1) >> 16 & 0xFFFF) % shards


def _strip_link(link_type: int, data: bytes) -> tuple[int, int]:
    """Return (offset of the IP header, ethertype); offset -1 if cut short."""
    n = len(data)
    if link_type == LINKTYPE_ETHERNET:
        if n < 14:
            return -1, 0
        pos, ethertype = 14, (data[12] << 8) | data[13]
        while ethertype in ETHERTYPE_VLAN:
            if n < pos + 4:
                return -1, 0
            ethertype = (data[pos + 2] << 8) | data[pos + 3]
            pos += 4
        return pos, ethertype
    if link_type == LINKTYPE_LINUX_SLL:
        return (16, (data[14] << 8) | data[15]) if n >= 16 else (-1, 0)
    if link_type == LINKTYPE_LINUX_SLL2:
        return (20, (data[0] << 8) | data[1]) if n >= 20 else (-1, 0)
    if link_type in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if n < 4:
            return -1, 0
        # NULL stores the family in host byte order: accept either.
        family = struct.unpack_from("<I" if link_type == LINKTYPE_NULL and data[0] else ">I", data, 0)[0]
        if family == NULL_AF_INET:
            return 4, ETHERTYPE_IPV4
        if family in NULL_AF_INET6:
            return 4, ETHERTYPE_IPV6
        return 4, 0
    if link_type in (LINKTYPE_RAW, LINKTYPE_RAW_OPENBSD, LINKTYPE_RAW_BSDOS, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if n < 1:
            return -1, 0
        version = data[0] >> 4
        return 0, ETHERTYPE_IPV4 if version == 4 else ETHERTYPE_IPV6 if version == 6 else 0
    return -2, 0


def _decode_ipv4(wire_len: int, data: bytes, pos: int) -> TcpFields | str:
    if len(data) < pos + 20:
        return "truncated-ip-header"
    ihl = (data[pos] & 0x0F) * 4
    total_len = (data[pos + 2] << 8) | data[pos + 3]
    if data[pos + 9] != IPPROTO_TCP:
        return {17: "udp", 1: "icmp"}.get(data[pos + 9], "ip-other")
    if ((data[pos + 6] << 8) | data[pos + 7]) & 0x3FFF:
        return "ip-fragment"
    if total_len == 0:
        # Segmentation offload on the capturing host leaves 0 here.
        total_len = len(data) - pos
    if ihl < 20 or total_len < ihl:
        return "malformed-ip-header"
    return _decode_tcp(wire_len, data, pos, 4, ihl, total_len)


def _decode_ipv6(wire_len: int, data: bytes, pos: int) -> TcpFields | str:
    if len(data) < pos + 40:
        return "truncated-ip-header"
    payload_len = (data[pos + 4] << 8) | data[pos + 5]
    next_header = data[pos + 6]
    header_len = 40
    while next_header in IPV6_EXTENSION_HEADERS:
        ext = pos + header_len
        if len(data) < ext + 8:
            return "truncated-ip-header"
        next_header = data[ext]
        header_len += (data[ext + 1] + 1) * 8
    if next_header == IPV6_FRAGMENT:
        return "ip-fragment"
    if next_header != IPPROTO_TCP:
        return {17: "udp", 58: "icmp"}.get(next_header, "ip-other")
    total_len = 40 + payload_len if payload_len else len(data) - pos
    if total_len < header_len:
        return "malformed-ip-header"
    return _decode_tcp(wire_len, data, pos, 16, header_len, total_len)


_TCP_HEADER = struct.Struct("!HHII")


def _decode_tcp(wire_len, data, ip_pos, address_bytes, ip_header_len, ip_total_len) -> TcpFields | str:
    tcp_pos = ip_pos + ip_header_len
    if len(data) < tcp_pos + 20:
        return "truncated-tcp-header"
    src_port, dst_port, seq, ack = _TCP_HEADER.unpack_from(data, tcp_pos)
    tcp_header_len = (data[tcp_pos + 12] >> 4) * 4
    if tcp_header_len < 20 or len(data) < tcp_pos + tcp_header_len:
        return "malformed-tcp-header" if tcp_header_len < 20 else "truncated-tcp-header"
    payload_wire_len = ip_total_len - ip_header_len - tcp_header_len
    if payload_wire_len < 0:
        return "malformed-tcp-header"
    payload_start = tcp_pos + tcp_header_len
    ip_end = ip_pos + ip_total_len
    captured_frame_len = len(data)
    payload_end = min(ip_end, captured_frame_len)
    if captured_frame_len >= ip_end:
        # Complete IP packet: whatever follows it on the wire is link trailer
        # (Ethernet padding, FCS); orig_len beyond the captured bytes is bogus.
        link_bytes = ip_pos + (captured_frame_len - ip_end)
        excess = wire_len - captured_frame_len
    else:
        link_bytes = ip_pos
        excess = wire_len - ip_pos - ip_total_len
    if excess < 0:
        # orig_len smaller than the IP packet claims: trust the wire length.
        payload_wire_len = max(payload_end - payload_start, payload_wire_len + excess)
        excess = wire_len - link_bytes - ip_header_len - tcp_header_len - payload_wire_len
    return TcpFields(ip_pos, address_bytes, src_port, dst_port, seq, ack, data[tcp_pos + 13], payload_start, payload_end,
                     payload_wire_len, link_bytes, ip_header_len, tcp_header_len, excess)
