"""TCP reassembly for one direction of a connection (sans-IO).

Segments go in with their 32-bit sequence numbers in capture order; in-order
stream bytes come out as StreamData events, holes that were never filled as
StreamGap events (never zero-filled).  Each byte enters the stream once:
`receive_segment` reports, for accounting, how many of a segment's bytes were
new, how many were already seen (retransmissions and overlaps) and how many
lie before the start of the stream (a capture that started mid-stream and got
an earlier segment late).

Stream offsets are 64-bit and unwrapped, so 32-bit sequence wraparound is
invisible above this module.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import NamedTuple

from inspector.events import NEED_DATA, Direction, StreamData, StreamEnd, StreamGap

SEQ_MOD = 1 << 32
HALF_SEQ = 1 << 31
DEFAULT_MAX_BUFFERED = 8 * 1024 * 1024


class SegmentFate(NamedTuple):
    """What became of a segment's payload bytes."""

    offset: int  # stream offset of the segment's first payload byte
    new_bytes: int
    duplicate_bytes: int
    before_start_bytes: int


class _Piece(NamedTuple):
    start: int
    end: int
    data: bytes | None  # None: bytes on the wire but not captured (snaplen)
    ts_ns: int


class TcpStreamReassembler:
    """Reassembles the bytes one side of a TCP connection sent."""

    def __init__(self, direction: Direction, *, max_buffered: int = DEFAULT_MAX_BUFFERED) -> None:
        self.direction = direction
        self.max_buffered = max_buffered
        self._base_seq: int | None = None
        self.next_offset = 0  # everything before this has been delivered (or gapped)
        self._pending_starts: list[int] = []
        self._pending: dict[int, _Piece] = {}
        self._pending_bytes = 0
        self._events: deque = deque()
        self.syn_seen = False
        self._fin_seq: int | None = None
        self.reset = False
        self.closed = False
        self.gap_bytes = 0

    # -- sequence numbers ----------------------------------------------------

    @property
    def started(self) -> bool:
        return self._base_seq is not None

    def receive_syn(self, seq: int) -> None:
        """A SYN from this side: the stream starts right after it."""
        if self._base_seq is None:
            self._base_seq = (seq + 1) % SEQ_MOD
            self.syn_seen = True

    def offset_of(self, seq: int) -> int:
        """Unwrapped stream offset of a 32-bit sequence number (near the frontier)."""
        if self._base_seq is None:
            return 0
        relative = (seq - self._base_seq) % SEQ_MOD
        diff = (relative - self.next_offset) % SEQ_MOD
        if diff >= HALF_SEQ:
            diff -= SEQ_MOD
        return self.next_offset + diff

    # -- input -----------------------------------------------------------------

    def receive_segment(self, seq: int, payload: bytes, payload_wire_len: int, ts_ns: int, *, syn: bool = False) -> SegmentFate:
        """Take one segment's payload; `payload` may be shorter than on the wire."""
        if syn:
            self.receive_syn(seq)
            seq = (seq + 1) % SEQ_MOD
        if self._base_seq is None:
            if payload_wire_len == 0:
                # Mid-stream: only a segment with data may define offset 0; an
                # ACK or FIN may precede data sent (and captured) earlier.
                return SegmentFate(0, 0, 0, 0)
            self._base_seq = seq
        start = self.offset_of(seq)
        if payload_wire_len == 0:
            return SegmentFate(start, 0, 0, 0)
        end = start + payload_wire_len
        before = 0
        if start < 0:
            before = min(end, 0) - start
            payload = payload[before:]
            start = 0
        if self.closed or start >= end:
            return SegmentFate(start, 0, end - start if end > start else 0, before)
        if start == self.next_offset and not self._pending_starts and len(payload) == end - start:
            # Fast path: the next bytes, fully captured, nothing buffered.
            self._events.append(StreamData(self.direction, start, payload, ts_ns))
            self.next_offset = end
            return SegmentFate(start, end - start, 0, before)
        new = self._insert(start, end, payload, ts_ns)
        self._deliver_in_order()
        if self._pending_bytes > self.max_buffered:
            self._force_gap(ts_ns)
        return SegmentFate(start, new, (end - start) - new, before)

    def acknowledged(self, offset: int, ts_ns: int) -> None:
        """The peer acknowledged everything before `offset`.

        Bytes it acknowledged that we never saw will not be retransmitted:
        report them as a gap now instead of buffering until the end.
        """
        if offset <= self.next_offset or self.closed:
            return
        if self.fin_offset is not None and offset > self.fin_offset:
            offset = self.fin_offset  # the FIN's own sequence number is no data
        while self.next_offset < offset:
            first = self._pending_starts[0] if self._pending_starts else offset
            if first > self.next_offset:
                length = min(first, offset) - self.next_offset
                self.gap_bytes += length
                self._events.append(StreamGap(self.direction, self.next_offset, length, ts_ns))
                self.next_offset += length
            self._deliver_in_order()

    def receive_fin(self, seq: int, payload_wire_len: int) -> None:
        self._fin_seq = (seq + payload_wire_len) % SEQ_MOD

    @property
    def fin_offset(self) -> int | None:
        """Stream offset where the FIN sits, once both it and offset 0 are known."""
        if self._fin_seq is None:
            return None
        if self._base_seq is None:
            return 0
        return self.offset_of(self._fin_seq)

    def receive_rst(self) -> None:
        self.reset = True

    def close(self, ts_ns: int) -> None:
        """No more segments will come: fill holes with gaps and end the stream."""
        if self.closed:
            return
        while self._pending_starts:
            self._force_gap(ts_ns)
        self.closed = True
        self._events.append(StreamEnd(self.direction, self.next_offset, ts_ns, self.reset))

    def next_event(self):
        return self._events.popleft() if self._events else NEED_DATA

    @property
    def has_pending(self) -> bool:
        """Out-of-order bytes are waiting for a hole to be filled."""
        return bool(self._pending_starts)

    @property
    def fin_complete(self) -> bool:
        """True once every byte before the FIN has been delivered."""
        return self.fin_offset is not None and self.next_offset >= self.fin_offset and not self._pending_starts

    # -- internals -------------------------------------------------------------

    def _insert(self, start: int, end: int, payload: bytes, ts_ns: int) -> int:
        """Store the parts of [start, end) not seen before; return their size."""
        if end <= self.next_offset:
            return 0
        if start < self.next_offset:
            payload = payload[self.next_offset - start :]
            start = self.next_offset
        new = 0
        cursor = start
        # Walk pending pieces that overlap [start, end) and fill between them.
        index = bisect.bisect_right(self._pending_starts, start) - 1
        if index >= 0:
            piece = self._pending[self._pending_starts[index]]
            if piece.end > cursor:
                cursor = piece.end
        index += 1
        while cursor < end:
            next_start = self._pending_starts[index] if index < len(self._pending_starts) else end
            fill_end = min(next_start, end)
            if fill_end > cursor:
                new += fill_end - cursor
                self._store(cursor, fill_end, payload, start, ts_ns)
                index += 1  # the piece just stored sits before next_start
            if next_start >= end:
                break
            cursor = max(cursor, self._pending[next_start].end)
            index += 1
        return new

    def _store(self, piece_start: int, piece_end: int, payload: bytes, payload_start: int, ts_ns: int) -> None:
        captured_end = payload_start + len(payload)
        if piece_start < captured_end:
            data_end = min(piece_end, captured_end)
            self._add_piece(_Piece(piece_start, data_end, payload[piece_start - payload_start : data_end - payload_start], ts_ns))
            piece_start = data_end
        if piece_start < piece_end:
            self._add_piece(_Piece(piece_start, piece_end, None, ts_ns))

    def _add_piece(self, piece: _Piece) -> None:
        bisect.insort(self._pending_starts, piece.start)
        self._pending[piece.start] = piece
        self._pending_bytes += piece.end - piece.start

    def _deliver_in_order(self) -> None:
        starts = self._pending_starts
        while starts and starts[0] == self.next_offset:
            piece = self._pending.pop(starts.pop(0))
            self._pending_bytes -= piece.end - piece.start
            if piece.data is None:
                self.gap_bytes += piece.end - piece.start
                self._events.append(StreamGap(self.direction, piece.start, piece.end - piece.start, piece.ts_ns))
            else:
                self._events.append(StreamData(self.direction, piece.start, piece.data, piece.ts_ns))
            self.next_offset = piece.end

    def _force_gap(self, ts_ns: int) -> None:
        """Give up waiting for the hole before the first buffered piece."""
        first = self._pending_starts[0]
        if first > self.next_offset:
            length = first - self.next_offset
            self.gap_bytes += length
            self._events.append(StreamGap(self.direction, self.next_offset, length, ts_ns))
            self.next_offset = first
        self._deliver_in_order()
