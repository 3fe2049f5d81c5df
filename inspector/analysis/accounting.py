"""Per-connection packet accounting, filled in while packets stream past.

Only counters and compact arrays are kept per packet (no objects), so that a
million-packet capture stays cheap.  The arrays let `overhead.py` split each
packet's header bytes among the application messages it carried.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass

from inspector.decode import TcpPacket
from inspector.parse.connection import TcpConnection
from inspector.parse.tcp import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, SegmentFate

CONTROL_SYN = 1
CONTROL_FIN = 2
CONTROL_RST = 3
CONTROL_ACK = 4
_CONTROL_FLAGS = TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK


# Fields of one record in ConnectionAccount.data_packets and .control_packets.
RECORD_FIELDS = 4
# A record's bytes, added with array.frombytes: array.extend of a tuple parses each number
# twice with a format string (PyArg_Parse), 2,400 instructions a record against 300.
_pack_record = struct.Struct(f"<{RECORD_FIELDS}q").pack


def _records(packets: array | None) -> zip:
    """The records of a flat array, as tuples of RECORD_FIELDS values."""
    if packets is None:
        return zip()
    return zip(*(packets[field::RECORD_FIELDS] for field in range(RECORD_FIELDS)))


@dataclass(slots=True)
class ConnectionAccount:
    """A connection plus the byte counts of every packet that belonged to it.

    Cheap while a connection is new (a SYN flood opens hundreds of thousands):
    slots, and the per-packet arrays only once a packet of their kind comes.
    """

    conn_id: int
    capture: str
    connection: TcpConnection
    endpoints: tuple[tuple[bytes, int], tuple[bytes, int]]  # side 0, side 1
    # The direction (analysis.segments.flow_of) of side 0's packets: a packet's side is its
    # direction XOR this.
    side0_direction: int = 0
    first_index: int = -1  # the capture's record number (from 0) of its first packet
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
    # Packets with payload, one flat record each: side, stream offset, wire
    # payload length, overhead bytes (see `data_records`).
    data_packets: array | None = None
    # Packets without payload: side, kind, acknowledged offset (-1 none), bytes.
    control_packets: array | None = None
    rows: object = None  # the connection's rows so far (analysis.rows), once it has events
    # A long connection's records, spans and items moved to disk (long_connections.SpilledConnection).
    spilled: object = None

    @property
    def carried_payload(self) -> bool:
        return self.data_packets is not None

    def data_records(self) -> zip:
        """(side, offset, length, overhead) per packet with payload."""
        return _records(self.data_packets)

    def control_records(self) -> zip:
        """(side, kind, acknowledged offset, bytes) per packet without payload."""
        return _records(self.control_packets)

    def add_packet(self, packet: TcpPacket, side: int) -> None:
        self.add_segment(side, packet.ts_ns, packet.seq, packet.ack, packet.flags, packet.payload, packet.payload_wire_len,
                         packet.wire_len, packet.link_bytes, packet.ip_header_bytes, packet.tcp_header_bytes, packet.excess_bytes)

    def add_segment(self, side: int, ts_ns: int, seq: int, ack: int, flags: int, payload: bytes, payload_wire_len: int,
                    wire_len: int, link_bytes: int, ip_header_bytes: int, tcp_header_bytes: int, excess_bytes: int) -> None:
        """A packet of the connection sent by `side`: the fields of a TcpPacket, as numbers
        (the pipeline's per-packet call, which builds no TcpPacket)."""
        if not self.packets:
            self.start_ns = ts_ns
        self.packets += 1
        if ts_ns > self.end_ns:
            self.end_ns = ts_ns
        self.wire_bytes += wire_len
        connection = self.connection
        if not payload_wire_len:
            if flags & _CONTROL_FLAGS == TCP_ACK:  # a bare ACK, a fifth of all packets: the short way
                self.tcp_control_bytes += wire_len
                self._add_control_record(side, CONTROL_ACK, connection.receive_ack(side, ack, ts_ns), wire_len)
            else:
                connection.receive_segment(side, ts_ns, seq, ack, flags, payload, payload_wire_len)
                self._add_control(side, flags, ack, wire_len)
            return
        self.link_header_bytes += link_bytes
        self.ip_header_bytes += ip_header_bytes
        self.tcp_header_bytes += tcp_header_bytes
        if self.data_packets is None:
            self.data_packets = array("q")
        offset = connection.receive_next(side, ts_ns, seq, ack, flags, payload, payload_wire_len)
        if offset >= 0:  # in order, all new: no SegmentFate
            self.new_payload_bytes += payload_wire_len
            self.extra_unparsed_bytes += excess_bytes
            self.data_packets.frombytes(_pack_record(side, offset, payload_wire_len, link_bytes + ip_header_bytes + tcp_header_bytes + excess_bytes))
            return
        fate: SegmentFate = connection.receive_segment(side, ts_ns, seq, ack, flags, payload, payload_wire_len)
        duplicate = fate.duplicate_bytes
        before_start = fate.before_start_bytes
        self.retransmitted_bytes += duplicate
        self.new_payload_bytes += fate.new_bytes
        extra = before_start + fate.late_bytes + excess_bytes
        self.extra_unparsed_bytes += extra
        overhead = link_bytes + ip_header_bytes + tcp_header_bytes + duplicate + extra
        self.data_packets.frombytes(_pack_record(side, fate.offset, payload_wire_len - before_start, overhead))

    def _add_control(self, side: int, flags: int, ack: int, wire_len: int) -> None:
        self.tcp_control_bytes += wire_len
        if flags & TCP_SYN:
            kind = CONTROL_SYN
        elif flags & TCP_RST:
            kind = CONTROL_RST
        elif flags & TCP_FIN:
            kind = CONTROL_FIN
        else:
            kind = CONTROL_ACK
        acked = -1
        if flags & TCP_ACK:
            offset = self.connection.ack_offset(side, ack)
            acked = offset if offset is not None else -1
        self._add_control_record(side, kind, acked, wire_len)

    def _add_control_record(self, side: int, kind: int, acked: int, wire_len: int) -> None:
        if self.control_packets is None:
            self.control_packets = array("q")
        self.control_packets.frombytes(_pack_record(side, kind, acked, wire_len))
