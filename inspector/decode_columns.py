"""decode.py for a chunk of frames at once, column by column with numpy.

The common shapes are decoded here: Ethernet with up to two VLAN tags, Linux
cooked SLL and SLL2, BSD NULL and LOOP, and raw IP; then IPv4 (with or without
options) or IPv6 without extension headers; then TCP.  Every other frame
(three VLAN tags, an IPv6 extension header, a fragment, anything not TCP, any
header cut short or malformed) is left to `decode.decode_segment`, one frame
at a time: `TcpColumns.decoded` says which rows were decoded here.  Where a row
is decoded here its fields are exactly decode_segment's, positions counted from
the start of the frame (tests/test_decode_columns.py compares the two on every shape).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspector.decode import (
    ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, IPPROTO_TCP, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL, LINKTYPE_RAW, LINKTYPE_RAW_BSDOS, LINKTYPE_RAW_OPENBSD, NULL_AF_INET,
    NULL_AF_INET6,
)

RAW_IP_LINK_TYPES = (LINKTYPE_RAW, LINKTYPE_RAW_OPENBSD, LINKTYPE_RAW_BSDOS, LINKTYPE_IPV4, LINKTYPE_IPV6)


@dataclass(slots=True, eq=False)
class TcpColumns:
    """decode_segment's fields for every row of a chunk (int64 arrays); only the rows
    where `decoded` is True hold them, the others are decode_segment's to decode."""

    decoded: np.ndarray  # bool
    ip_start: np.ndarray
    address_bytes: np.ndarray  # 4 or 16
    src_port: np.ndarray
    dst_port: np.ndarray
    seq: np.ndarray
    ack: np.ndarray
    flags: np.ndarray
    payload_start: np.ndarray
    payload_end: np.ndarray
    payload_wire_len: np.ndarray
    link_bytes: np.ndarray
    ip_header_bytes: np.ndarray
    tcp_header_bytes: np.ndarray
    excess_bytes: np.ndarray

    FIELDS = ("ip_start", "address_bytes", "src_port", "dst_port", "seq", "ack", "flags", "payload_start", "payload_end",
              "payload_wire_len", "link_bytes", "ip_header_bytes", "tcp_header_bytes", "excess_bytes")


class _Frames:
    """Big-endian reads at per-row offsets into the rows' frames.  A read past a frame's
    captured bytes gives garbage, never an error: every use checks the length first."""

    def __init__(self, data: bytes, start: np.ndarray) -> None:
        self.raw = np.frombuffer(data, dtype=np.uint8)
        self.start = start
        self.top = len(data) - 1

    def u8(self, offset: np.ndarray | int) -> np.ndarray:
        return self.raw[np.minimum(self.start + offset, self.top)].astype(np.int64)

    def u16(self, offset: np.ndarray | int) -> np.ndarray:
        return (self.u8(offset) << 8) | self.u8(offset + 1)

    def u32(self, offset: np.ndarray | int) -> np.ndarray:
        return (self.u16(offset) << 16) | self.u16(offset + 2)


def decode_columns(data: bytes, start: np.ndarray, caplen: np.ndarray, wire_len: np.ndarray, link_type: np.ndarray) -> TcpColumns:
    """decode_segment of each frame data[start[i] : start[i] + caplen[i]] of the common
    shapes (see the module docstring); the other rows are left undecoded."""
    n = len(start)
    if n == 0 or len(data) == 0:
        empty = np.zeros(n, dtype=np.int64)
        return TcpColumns(np.zeros(n, dtype=bool), *([empty] * len(TcpColumns.FIELDS)))
    frames = _Frames(data, start)
    ip_start, version = _link_layer(frames, caplen, link_type)
    decoded = version > 0

    # IPv4 (decode._decode_ipv4): options allowed, no fragment, TCP.
    v4 = decoded & (version == 4) & (caplen >= ip_start + 20)
    ihl4 = (frames.u8(ip_start) & 0x0F) * 4
    total4 = frames.u16(ip_start + 2)
    total4 = np.where(total4 == 0, caplen - ip_start, total4)  # 0: segmentation offload
    v4 &= (frames.u8(ip_start + 9) == IPPROTO_TCP) & ((frames.u16(ip_start + 6) & 0x3FFF) == 0) & (ihl4 >= 20) & (total4 >= ihl4)
    # IPv6 (decode._decode_ipv6): TCP right after the fixed header.
    v6 = decoded & (version == 6) & (caplen >= ip_start + 40) & (frames.u8(ip_start + 6) == IPPROTO_TCP)
    payload6 = frames.u16(ip_start + 4)
    total6 = np.where(payload6 == 0, caplen - ip_start, 40 + payload6)

    ip_header = np.where(v4, ihl4, 40)
    ip_total = np.where(v4, total4, total6)
    decoded = v4 | v6

    # TCP (decode._decode_tcp)
    tcp_start = ip_start + ip_header
    decoded &= caplen >= tcp_start + 20
    tcp_header = (frames.u8(tcp_start + 12) >> 4) * 4
    payload_wire_len = ip_total - ip_header - tcp_header
    decoded &= (tcp_header >= 20) & (caplen >= tcp_start + tcp_header) & (payload_wire_len >= 0)
    payload_start = tcp_start + tcp_header
    ip_end = ip_start + ip_total
    payload_end = np.minimum(ip_end, caplen)
    complete = caplen >= ip_end
    # A complete IP packet: what follows it is link trailer, orig_len beyond the captured
    # bytes is bogus; else orig_len smaller than the IP packet claims is trusted.
    link_bytes = np.where(complete, ip_start + caplen - ip_end, ip_start)
    excess = np.where(complete, wire_len - caplen, wire_len - ip_end)
    short = excess < 0
    if short.any():
        payload_wire_len = np.where(short, np.maximum(payload_end - payload_start, payload_wire_len + excess), payload_wire_len)
        excess = np.where(short, wire_len - link_bytes - ip_header - tcp_header - payload_wire_len, excess)
    return TcpColumns(decoded, ip_start, np.where(v4, 4, 16), frames.u16(tcp_start), frames.u16(tcp_start + 2),
                      frames.u32(tcp_start + 4), frames.u32(tcp_start + 8), frames.u8(tcp_start + 13),
                      payload_start, payload_end, payload_wire_len, link_bytes, ip_header, tcp_header, excess)


def _link_layer(frames: _Frames, caplen: np.ndarray, link_type: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offset of the IP header, IP version) per row, as decode._strip_link finds them;
    version 0 for a row left to decode_segment (three VLAN tags, cut short, not IP, other link types)."""
    ip_start = np.zeros(len(caplen), dtype=np.int64)
    version = np.zeros(len(caplen), dtype=np.int64)

    def ethertype_at(rows: np.ndarray, header: np.ndarray | int, field: np.ndarray | int) -> None:
        if not rows.any():
            return
        ethertype = frames.u16(field)
        rows &= caplen >= header
        ip_start[rows] = header if isinstance(header, int) else header[rows]
        version[rows & (ethertype == ETHERTYPE_IPV4)] = 4
        version[rows & (ethertype == ETHERTYPE_IPV6)] = 6

    ethernet = link_type == LINKTYPE_ETHERNET
    if ethernet.any():
        # Up to two VLAN tags (802.1Q, QinQ) column-wise; a third, or a tag cut short, leaves
        # the ethertype a VLAN one: decode_segment's.
        header = np.full(len(caplen), 14, dtype=np.int64)
        for _ in range(2):
            tagged = ethernet & np.isin(frames.u16(header - 2), ETHERTYPE_VLAN) & (caplen >= header + 4)
            if not tagged.any():
                break
            header += 4 * tagged
        ethertype_at(ethernet, header, header - 2)
    ethertype_at(link_type == LINKTYPE_LINUX_SLL, 16, 14)
    ethertype_at(link_type == LINKTYPE_LINUX_SLL2, 20, 0)
    null = (link_type == LINKTYPE_NULL) | (link_type == LINKTYPE_LOOP)
    if null.any():
        null &= caplen >= 4
        big_endian = frames.u32(0)
        # NULL stores the family in host byte order (either); LOOP in network byte order.
        little_endian = frames.u8(0) | (frames.u8(1) << 8) | (frames.u8(2) << 16) | (frames.u8(3) << 24)
        family = np.where((link_type == LINKTYPE_NULL) & (frames.u8(0) != 0), little_endian, big_endian)
        ip_start[null] = 4
        version[null & (family == NULL_AF_INET)] = 4
        version[null & np.isin(family, NULL_AF_INET6)] = 6
    raw = np.isin(link_type, RAW_IP_LINK_TYPES)
    if raw.any():
        raw &= caplen >= 1
        ip_version = frames.u8(0) >> 4
        version[raw & ((ip_version == 4) | (ip_version == 6))] = ip_version[raw & ((ip_version == 4) | (ip_version == 6))]
    return ip_start, version
