"""Per-connection packet accounting, filled in while packets stream past.

Only counters and compact arrays are kept per packet (no objects), so that a
million-packet capture stays cheap.  The arrays let `overhead.py` split each
packet's header bytes among the application messages it carried.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from inspector.decode import TcpPacket
from inspector.parse.connection import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpConnection
from inspector.parse.tcp import SegmentFate

CONTROL_SYN = 1
CONTROL_FIN = 2
CONTROL_RST = 3
CONTROL_ACK = 4


@dataclass
class ConnectionAccount:
    """A connection plus the byte counts of every packet that belonged to it."""

    conn_id: int
    capture: str
    connection: TcpConnection
    endpoints: tuple[tuple[bytes, int], tuple[bytes, int]]  # side 0, side 1
    start_ns: int = 0
    end_ns: int = 0
    packets: int = 0
    wire_bytes: int = 0
    link_header_bytes: int = 0
    ip_header_bytes: int = 0
    tcp_header_bytes: int = 0
    tcp_control_bytes: int = 0
    retransmitted_bytes: int = 0
    new_payload_bytes: int = 0
    # Payload outside the reassembled stream: before its start, late for a hole
    # already given up as a gap, and bogus frame lengths.
    extra_unparsed_bytes: int = 0
    # Packets with payload: side, stream offset, wire payload length, overhead bytes.
    data_side: array = field(default_factory=lambda: array("b"))
    data_offset: array = field(default_factory=lambda: array("q"))
    data_length: array = field(default_factory=lambda: array("q"))
    data_overhead: array = field(default_factory=lambda: array("q"))
    # Packets without payload: side, kind, acknowledged offset (-1 none), bytes.
    ctrl_side: array = field(default_factory=lambda: array("b"))
    ctrl_kind: array = field(default_factory=lambda: array("b"))
    ctrl_ack: array = field(default_factory=lambda: array("q"))
    ctrl_bytes: array = field(default_factory=lambda: array("q"))

    def add_packet(self, packet: TcpPacket, side: int) -> None:
        if not self.packets:
            self.start_ns = packet.ts_ns
        self.packets += 1
        self.end_ns = max(self.end_ns, packet.ts_ns)
        self.wire_bytes += packet.wire_len
        flags = packet.flags
        fate: SegmentFate = self.connection.receive_segment(side, packet.ts_ns, packet.seq, packet.ack, flags, packet.payload, packet.payload_wire_len)
        if packet.payload_wire_len == 0:
            self._add_control(packet, side, flags)
            return
        self.link_header_bytes += packet.link_bytes
        self.ip_header_bytes += packet.ip_header_bytes
        self.tcp_header_bytes += packet.tcp_header_bytes
        self.retransmitted_bytes += fate.duplicate_bytes
        self.new_payload_bytes += fate.new_bytes
        extra = fate.before_start_bytes + fate.late_bytes + packet.excess_bytes
        self.extra_unparsed_bytes += extra
        self.data_side.append(side)
        self.data_offset.append(fate.offset)
        self.data_length.append(packet.payload_wire_len - fate.before_start_bytes)
        self.data_overhead.append(packet.link_bytes + packet.ip_header_bytes + packet.tcp_header_bytes + fate.duplicate_bytes + extra)

    def _add_control(self, packet: TcpPacket, side: int, flags: int) -> None:
        self.tcp_control_bytes += packet.wire_len
        if flags & TCP_SYN:
            kind = CONTROL_SYN
        elif flags & TCP_RST:
            kind = CONTROL_RST
        elif flags & TCP_FIN:
            kind = CONTROL_FIN
        else:
            kind = CONTROL_ACK
        ack = -1
        if flags & TCP_ACK:
            offset = self.connection.ack_offset(side, packet.ack)
            ack = offset if offset is not None else -1
        self.ctrl_side.append(side)
        self.ctrl_kind.append(kind)
        self.ctrl_ack.append(ack)
        self.ctrl_bytes.append(packet.wire_len)
