"""TCP reassembly for one direction of a connection (sans-IO).

Segments go in with their 32-bit sequence numbers in capture order; in-order
stream bytes come out as StreamData events, holes that were never filled as
StreamGap events (never zero-filled).  Each byte enters the stream once:
`receive_segment` reports, for accounting, how many of a segment's bytes were
new, how many were already seen (retransmissions and overlaps), how many lie
before the start of the stream (a capture that started mid-stream and got
an earlier segment late) and how many came late, for a hole already given up
as a gap.

Out-of-order bytes wait in a reordering buffer of coalesced runs: adjacent
pieces are merged as they arrive, so a stream sent in tiny segments in any
order costs one run per hole, not one object per segment; a run comes out
as one StreamData stamped with the time its last piece arrived.  The buffer holds
at most `max_buffered` bytes in at most `max_runs` runs; past either limit
the oldest hole is given up as a gap (counted in `reorder_limit_hits`), and
bytes that arrive for it later are reported as late, never as duplicates.

Stream offsets are 64-bit and unwrapped, so 32-bit sequence wraparound is
invisible above this module.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from operator import itemgetter
from typing import NamedTuple

from inspector.events import Direction, StreamData, StreamEnd, StreamGap
from inspector.parse.pending import PendingEvents

# Bits of the TCP header's flags byte (RFC 9293 3.1), as segments carry them.
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10

SEQ_MOD = 1 << 32
HALF_SEQ = 1 << 31
# Reordering buffer: out-of-order bytes held while waiting for a hole to fill.
DEFAULT_MAX_BUFFERED = 8 * 1024 * 1024
# ...and the number of disjoint runs they form (adjacent pieces are merged):
# each run is a few Python objects, and finding a run's place costs a list
# insert, so both stay small whatever the pattern of holes.
DEFAULT_MAX_RUNS = 4096
# Holes given up as gaps that late bytes may still land in (merged when adjacent);
# past this many, the two oldest are merged into one.
MAX_GIVEN_UP_RANGES = 1024

_chunk_offset = itemgetter(0)
# A run whose pieces average fewer bytes than this is joined into one piece.
_MIN_CHUNK_BYTES = 64
_MIN_CHUNKS_TO_JOIN = 16
# Shared by every stream with nothing buffered (most of them): a fresh
# connection should cost little, since a SYN flood opens one per packet.
_NO_RUN_STARTS: tuple[int, ...] = ()
_NO_RUNS: dict[int, "_Run"] = {}  # never written to: see _add_run


class SegmentFate(NamedTuple):
    """What became of a segment's payload bytes (they add up to its wire length)."""

    offset: int  # stream offset of the segment's first payload byte
    new_bytes: int
    duplicate_bytes: int
    before_start_bytes: int
    late_bytes: int = 0  # landed in a hole already given up as a gap


class _Run:
    """Adjacent out-of-order bytes waiting for the hole before them to fill."""

    __slots__ = ("start", "end", "chunks", "ts_ns")

    def __init__(self, start: int, end: int, data: bytes | None, ts_ns: int) -> None:
        self.start = start
        self.end = end
        # (offset, bytes) in arrival order, sorted only when delivered; None:
        # bytes on the wire that were not captured (snaplen).
        self.chunks: list[tuple[int, bytes]] | None = None if data is None else [(start, data)]
        self.ts_ns = ts_ns  # when its last piece arrived

    @property
    def captured(self) -> bool:
        return self.chunks is not None

    def absorb(self, other: "_Run") -> None:
        """Take the run that follows or precedes this one (adjacent, same kind)."""
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)
        self.ts_ns = max(self.ts_ns, other.ts_ns)
        if self.chunks is not None and other.chunks is not None:
            # Extend the longer list by the shorter: merging stays O(n log n) overall.
            if len(self.chunks) < len(other.chunks):
                self.chunks, other.chunks = other.chunks, self.chunks
            self.chunks.extend(other.chunks)
            if len(self.chunks) > _MIN_CHUNKS_TO_JOIN and len(self.chunks) * _MIN_CHUNK_BYTES > self.end - self.start:
                # Tiny pieces cost ~100 bytes of objects each: join them.  The
                # next join waits until the run has that many tiny pieces again
                # (in proportion to its size), so joining stays linear.
                self.chunks = [(self.start, self.data())]

    def data(self) -> bytes:
        chunks = self.chunks
        assert chunks is not None
        if len(chunks) == 1:
            return chunks[0][1]
        chunks.sort(key=_chunk_offset)
        return b"".join([data for _, data in chunks])


class _GivenUpRanges:
    """Stream ranges delivered as gaps, to recognise bytes that arrive for them late."""

    __slots__ = ("starts", "ends")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __bool__(self) -> bool:
        return bool(self.starts)

    def add(self, start: int, end: int) -> None:
        """A range after every one already held (gaps are given up in stream order)."""
        if self.ends and self.ends[-1] == start:
            self.ends[-1] = end
            return
        self.starts.append(start)
        self.ends.append(end)
        if len(self.starts) > MAX_GIVEN_UP_RANGES:
            # Merge the two oldest: bytes between them then also count as late.
            del self.starts[1], self.ends[0]

    def take(self, start: int, end: int) -> int:
        """Remove the part of [start, end) held here; return its size."""
        starts, ends = self.starts, self.ends
        index = max(bisect_right(starts, start) - 1, 0)
        taken = 0
        while index < len(starts) and starts[index] < end:
            a, b = starts[index], ends[index]
            lo, hi = max(a, start), min(b, end)
            if lo >= hi:
                index += 1
                continue
            taken += hi - lo
            if a < lo and hi < b:  # a hole in the middle: split the range in two
                ends[index] = lo
                starts.insert(index + 1, hi)
                ends.insert(index + 1, b)
                break
            if a < lo:
                ends[index] = lo
                index += 1
            elif hi < b:
                starts[index] = hi
                break
            else:
                del starts[index], ends[index]
        return taken


class TcpStreamReassembler(PendingEvents):
    """Reassembles the bytes one side of a TCP connection sent."""

    __slots__ = (
        "direction", "max_buffered", "max_runs", "_base_seq", "next_offset", "_run_starts", "_runs",
        "_pending_bytes", "_events", "_handed", "syn_seen", "_fin_seq", "reset", "closed",
        "gap_bytes", "reorder_limit_hits", "reorder_limit_ts_ns", "late_bytes", "late_ts_ns", "_given_up",
    )

    def __init__(self, direction: Direction, *, max_buffered: int = DEFAULT_MAX_BUFFERED, max_runs: int = DEFAULT_MAX_RUNS) -> None:
        self.direction = direction
        self.max_buffered = max_buffered
        self.max_runs = max_runs
        self._base_seq: int | None = None
        self.next_offset = 0  # everything before this has been delivered (or gapped)
        # Sorted starts of the buffered runs (at most max_runs + 1, so inserting
        # into the list stays cheap) and the runs by start.
        self._run_starts: list[int] | tuple[int, ...] = _NO_RUN_STARTS
        self._runs: dict[int, _Run] = _NO_RUNS
        self._pending_bytes = 0
        self._events: list = []  # read from _handed on (PendingEvents); emptied when all are read
        self._handed = 0
        self.syn_seen = False
        self._fin_seq: int | None = None
        self.reset = False
        self.closed = False
        self.gap_bytes = 0
        self.reorder_limit_hits = 0  # holes given up because the buffer was full
        self.reorder_limit_ts_ns = 0  # when that first happened
        self.late_bytes = 0  # bytes that arrived for a hole already given up
        self.late_ts_ns = 0  # when the first of them did
        self._given_up: _GivenUpRanges | None = None  # created at the first gap given up

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
        if start == self.next_offset and not self._run_starts and len(payload) == end - start:
            # Fast path: the next bytes, fully captured, nothing buffered.
            self._events.append(StreamData(self.direction, start, payload, ts_ns))
            self.next_offset = end
            return SegmentFate(start, end - start, 0, before)
        late = 0
        if start < self.next_offset and self._given_up is not None:
            late = self._given_up.take(start, min(end, self.next_offset))
            if late and not self.late_bytes:
                self.late_ts_ns = ts_ns
            self.late_bytes += late
        new = self._insert(start, end, payload, ts_ns)
        self._deliver_in_order()
        while self._pending_bytes > self.max_buffered or len(self._run_starts) > self.max_runs:
            if not self.reorder_limit_hits:
                self.reorder_limit_ts_ns = ts_ns
            self.reorder_limit_hits += 1
            self._force_gap(ts_ns)
        return SegmentFate(start, new, (end - start) - new - late, before, late)

    def take_next(self, seq: int, length: int) -> int:
        """The in-order fast path, for a caller that hands the bytes on itself.

        If a segment (no SYN, its `length` payload bytes all captured) carries exactly
        the next bytes of the stream and nothing is waiting (no buffered run, no event
        not yet read, not closed), take it: return its stream offset.  Otherwise change
        nothing and return -1; the caller then goes through receive_segment.  On
        loopback traffic this is nearly every data segment, and it saves the
        StreamData event and the reading of it.
        """
        if self._base_seq is None or self._run_starts or self._events or self.closed:
            return -1
        start = self.next_offset
        if (seq - self._base_seq - start) % SEQ_MOD:
            return -1
        self.next_offset = start + length
        return start

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
            first = self._run_starts[0] if self._run_starts else offset
            if first > self.next_offset:
                self._give_up(min(first, offset), ts_ns)
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
        while self._run_starts:
            self._force_gap(ts_ns)
        self.closed = True
        self._events.append(StreamEnd(self.direction, self.next_offset, ts_ns, self.reset))

    @property
    def has_pending(self) -> bool:
        """Out-of-order bytes are waiting for a hole to be filled."""
        return bool(self._run_starts)

    @property
    def fin_complete(self) -> bool:
        """True once every byte before the FIN has been delivered."""
        return self.fin_offset is not None and self.next_offset >= self.fin_offset and not self._run_starts

    # -- internals -------------------------------------------------------------

    def _insert(self, start: int, end: int, payload: bytes, ts_ns: int) -> int:
        """Buffer the parts of [start, end) not seen before; return their size."""
        if end <= self.next_offset:
            return 0
        if start < self.next_offset:
            payload = payload[self.next_offset - start :]
            start = self.next_offset
        # Find the holes between buffered runs that [start, end) covers.
        starts, runs = self._run_starts, self._runs
        index = bisect_right(starts, start) - 1
        cursor = start
        if index >= 0 and runs[starts[index]].end > cursor:
            cursor = runs[starts[index]].end
        index += 1
        holes = []
        while cursor < end:
            next_start = starts[index] if index < len(starts) else end
            if min(next_start, end) > cursor:
                holes.append((cursor, min(next_start, end)))
            if next_start >= end:
                break
            cursor = max(cursor, runs[next_start].end)
            index += 1
        new = 0
        for hole_start, hole_end in holes:
            new += hole_end - hole_start
            self._store(hole_start, hole_end, payload, start, ts_ns)
        return new

    def _store(self, piece_start: int, piece_end: int, payload: bytes, payload_start: int, ts_ns: int) -> None:
        captured_end = payload_start + len(payload)
        if piece_start < captured_end:
            data_end = min(piece_end, captured_end)
            self._add_run(_Run(piece_start, data_end, payload[piece_start - payload_start : data_end - payload_start], ts_ns))
            piece_start = data_end
        if piece_start < piece_end:
            self._add_run(_Run(piece_start, piece_end, None, ts_ns))

    def _add_run(self, run: _Run) -> None:
        """Buffer a piece that fills a hole, merged with the runs it touches."""
        if self._run_starts is _NO_RUN_STARTS:
            self._run_starts, self._runs = [], {}
        starts, runs = self._run_starts, self._runs
        self._pending_bytes += run.end - run.start
        after = runs.get(run.end)
        if after is not None and after.captured == run.captured:
            del runs[after.start]
            del starts[bisect_left(starts, after.start)]
            run.absorb(after)
        index = bisect_left(starts, run.start) - 1
        if index >= 0:
            before = runs[starts[index]]
            if before.end == run.start and before.captured == run.captured:
                before.absorb(run)
                return
        insort(starts, run.start)
        runs[run.start] = run

    def _deliver_in_order(self) -> None:
        starts = self._run_starts
        while starts and starts[0] == self.next_offset:
            run = self._runs.pop(starts.pop(0))  # short list: see _run_starts
            length = run.end - run.start
            self._pending_bytes -= length
            if run.captured:
                self._events.append(StreamData(self.direction, run.start, run.data(), run.ts_ns))
            else:
                self.gap_bytes += length
                self._events.append(StreamGap(self.direction, run.start, length, run.ts_ns))
            self.next_offset = run.end

    def _give_up(self, end: int, ts_ns: int) -> None:
        """Deliver the hole from next_offset to `end` as a gap."""
        length = end - self.next_offset
        self.gap_bytes += length
        self._events.append(StreamGap(self.direction, self.next_offset, length, ts_ns))
        if self._given_up is None:
            self._given_up = _GivenUpRanges()
        self._given_up.add(self.next_offset, end)
        self.next_offset = end

    def _force_gap(self, ts_ns: int) -> None:
        """Give up waiting for the hole before the first buffered run."""
        first = self._run_starts[0]
        if first > self.next_offset:
            self._give_up(first, ts_ns)
        self._deliver_in_order()
