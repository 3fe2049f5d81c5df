"""Split every captured byte of a connection among its application messages.

Each message owns byte ranges ("spans") of the reassembled streams: a REST
exchange its request and response(s), a WebSocket data message its data
frames.  A packet's own overhead (link, IP and TCP headers, retransmitted and
unparsed bytes) goes to the spans its payload covers, in proportion to the
bytes it carried of each.  A packet without payload goes to connection setup
(SYN, the ACK that completes the handshake), teardown (FIN, RST and ACKs of
the FIN) or to the message whose last acknowledged byte it acknowledges.

The result is a float per message; per connection they add up to the
captured bytes (within float rounding).  Plain Python for most connections,
which are small: there numpy's per-call overhead would dominate.  A connection
of many packets has its packets spread with numpy (`_spread_arrays`), to the
same floats, and a long one, whose records, spans and items went to disk as it grew
(long_connections.py), from there, a chunk at a time (`attribute_spilled`), to the same
floats again.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_right
from collections.abc import Iterator

import numpy as np

from inspector.analysis.accounting import CONTROL_ACK, CONTROL_FIN, CONTROL_RST, RECORD_FIELDS, ConnectionAccount
from inspector.analysis.long_connections import FloatTotals, SpilledConnection

ITEM_SETUP = 0
ITEM_TEARDOWN = 1
ITEM_WS_CONTROL = 2
ITEM_UNATTRIBUTED = 3
# Below every stream offset: before the first packet nothing is covered.
NOTHING_COVERED = -(1 << 62)
# Connections with at least this many packets with payload have them spread with
# numpy, the others in plain Python (measured: numpy costs ~80 us a connection plus
# ~0.06 us a packet, Python ~0.4 us a packet; even at ~200-250 packets).
ARRAY_PACKETS = 256
_ZERO = array("d", [0.0])  # times n: n zeros
# One range's three numbers as bytes: array.frombytes of them is twice as quick as extend.
pack_range = struct.Struct("<3q").pack


class Spans:
    """The stream ranges of one side and the item owning each, disjoint.

    Kept flat, three numbers a range, and a range that continues the last one
    for the same item extends it: a message of a million frames is one range.
    A range of an item that has none yet continues no range: a writer adds it
    with `add_packed(pack_range(start, end, item))`, C calls only (700 fewer
    instructions per message than `add`, 4 % of writing a REST message's rows).
    """

    __slots__ = ("_flat", "add_packed")

    def __init__(self) -> None:
        self._flat = array("q")  # start, end, item; start, end, item; ...
        self.add_packed = self._flat.frombytes

    def add(self, start: int, end: int, item: int) -> None:
        flat = self._flat
        if flat and flat[-2] == start and flat[-1] == item:
            flat[-2] = end
        else:
            flat.frombytes(pack_range(start, end, item))

    def relabel(self, item: int, new_item: int) -> None:
        flat = self._flat
        for index in range(2, len(flat), 3):
            if flat[index] == item:
                flat[index] = new_item

    def __len__(self) -> int:
        return len(self._flat) // 3

    def last_item(self) -> int:
        return self._flat[-1]

    def take(self, keep_last: bool = False) -> np.ndarray:
        """The ranges as an (n, 3) array, which are let go; keep_last: but for the last, which
        `add` may still extend."""
        flat = self._flat
        upto = len(flat) - 3 if keep_last else len(flat)
        if upto <= 0:
            return np.empty((0, 3), np.int64)
        ranges = np.array(flat[:upto], np.int64).reshape(-1, 3)
        del flat[:upto]
        return ranges

    def in_order(self):
        """(start, end, item) by start (they are added in stream order but for
        control frames, whose messages come later)."""
        flat = self._flat
        ranges = zip(flat[0::3], flat[1::3], flat[2::3])
        starts = flat[0::3]
        if all(a <= b for a, b in zip(starts, starts[1:])):
            return ranges
        return sorted(ranges)


def attribute_packets(account: ConnectionAccount, spans: tuple[Spans, Spans], item_count: int) -> tuple[array, array]:
    """Return (transport_bytes, ack_bytes) per item.

    spans[side]: the ranges of that side's stream; item numbers index the
    returned arrays.
    """
    segments = (_Segments(spans[0]), _Segments(spans[1]))
    records = account.data_packets  # flat: side, offset, length, weight; side, ...
    if records is not None and len(records) >= ARRAY_PACKETS * RECORD_FIELDS:
        transport = _spread_arrays(records, segments, item_count)
    else:
        transport = _ZERO * item_count
        if records is not None:
            packets: tuple[list, list] = ([], [])
            fields = iter(records)
            for side, offset, length, weight in zip(fields, fields, fields, fields):
                packets[side].append((offset, offset + length, weight))
            for side in (0, 1):
                if packets[side]:
                    _spread(transport, segments[side], packets[side])
    acks = _ZERO * item_count
    _assign_control(account, acks, segments)
    return transport, acks


class _Segments:
    """Boundaries and owners covering the whole stream; holes are unattributed.

    starts[0] is 0 and starts only grow: the owner of a stream offset x is
    owners[i] for the last i with starts[i] <= x."""

    __slots__ = ("starts", "owners")

    def __init__(self, side_spans: Spans) -> None:
        flat = side_spans._flat
        if flat and flat[0] >= 0 and flat[3::3] == flat[1:-3:3]:
            # Common case: each range starts where the last one ended.  Ranges of no
            # bytes stay, as boundaries equal to the next: the last of equal starts owns.
            self.starts, self.owners = flat[0::3], flat[2::3]
            self.starts.append(flat[-2])
            self.owners.append(ITEM_UNATTRIBUTED)
            if flat[0] > 0:
                self.starts.insert(0, 0)
                self.owners.insert(0, ITEM_UNATTRIBUTED)
            return
        starts = array("q")
        owners = array("q")
        cursor = 0
        for start, end, item in side_spans.in_order():
            start = max(start, cursor)
            if end <= start:
                continue
            if start > cursor:
                starts.append(cursor)
                owners.append(ITEM_UNATTRIBUTED)
            starts.append(start)
            owners.append(item)
            cursor = end
        starts.append(cursor)
        owners.append(ITEM_UNATTRIBUTED)  # everything after the last span
        self.starts = starts
        self.owners = owners

    def index_at(self, point: int) -> int:
        return max(bisect_right(self.starts, point) - 1, -1)

    def owner_at(self, point: int) -> int:
        index = self.index_at(point)
        return self.owners[index] if index >= 0 else ITEM_UNATTRIBUTED


def _spread(out: array, segments: _Segments, packets: list[tuple[int, int, int]]) -> None:
    packets.sort()
    starts, owners = segments.starts, segments.owners
    last = len(starts) - 1
    covered_until = NOTHING_COVERED
    first = 0  # the segment where the last packet's new bytes started: they never go back
    for x0, x1, weight in packets:
        # Clip each packet to the bytes no earlier packet covered; a packet
        # wholly covered (a pure retransmission) goes to where it starts.
        a = x0 if x0 >= covered_until else covered_until
        if x1 <= a:
            out[segments.owner_at(x0)] += weight
            continue
        covered_until = x1
        while first < last and starts[first + 1] <= a:
            first += 1
        density = weight / (x1 - a)
        if first == last or x1 <= starts[first + 1]:
            # The common case: the new bytes lie in one segment (the same sum as below).
            out[owners[first]] += density * (x1 - a)
            continue
        index = first
        while a < x1:
            end = starts[index + 1] if index < last else x1
            piece_end = end if end < x1 else x1
            if piece_end > a:
                out[owners[index]] += density * (piece_end - a)
                a = piece_end
            index += 1
            if index > last:
                out[owners[last]] += density * (x1 - a)
                break


def _spread_arrays(records: array, segments: tuple[_Segments, _Segments], item_count: int) -> array:
    """What `_spread` adds for each side's packets (side 0's first), with numpy: the
    same pieces in the same order, each the same product, summed per item by
    np.bincount, which adds its weights one by one in order from 0.0 as `_spread`
    does, so the sums are the same floats."""
    packets = np.frombuffer(records, np.int64).reshape(-1, RECORD_FIELDS)
    owners, amounts = [], []
    for side in (0, 1):
        sent = packets[packets[:, 0] == side]
        if len(sent):
            side_owners, side_amounts = _pieces(sent[:, 1], sent[:, 1] + sent[:, 2], sent[:, 3],
                                                np.frombuffer(segments[side].starts, np.int64), np.frombuffer(segments[side].owners, np.int64))
            owners.append(side_owners)
            amounts.append(side_amounts)
    transport = np.bincount(np.concatenate(owners), np.concatenate(amounts), minlength=item_count)
    return array("d", transport.tobytes())


def _pieces(x0: np.ndarray, x1: np.ndarray, weight: np.ndarray, starts: np.ndarray, owners: np.ndarray,
            covered: int = NOTHING_COVERED) -> tuple[np.ndarray, np.ndarray]:
    """The (owner, amount) pairs `_spread` adds for one side's packets, in its order.

    starts, owners: the side's segments (_Segments), or those from the one holding the first
    packet's start on to one starting at or past the packets' furthest end (a window of them:
    `attribute_spilled`); covered: how far earlier packets covered the stream."""
    if not (x0[1:] > x0[:-1]).all():  # sorted as _spread sorts its tuples
        order = np.lexsort((weight, x1, x0))
        x0, x1, weight = x0[order], x1[order], weight[order]
    # The bytes no earlier packet covered start at a: the packet's start, or the
    # furthest end of the packets before it (a packet covering nothing new does not
    # move that furthest end past where the next one starts).
    covered_until = np.empty_like(x1)
    covered_until[0] = covered
    np.maximum.accumulate(np.maximum(x1[:-1], covered), out=covered_until[1:])
    a = np.maximum(x0, covered_until)
    covered = x1 <= a
    # The segments of the new bytes: from the one a lies in to the one x1 - 1 lies in.
    first = np.maximum(np.searchsorted(starts, a, "right") - 1, 0)
    final = np.maximum(np.searchsorted(starts, x1, "left") - 1, first)
    if not covered.any() and (final == first).all():
        # The common case: every packet's new bytes lie in one segment (as _spread adds them).
        return owners[first], weight / (x1 - a) * (x1 - a)
    counts = np.where(covered, 1, final - first + 1)
    packet = np.repeat(np.arange(len(x0)), counts)
    segment = first[packet] + np.arange(len(packet)) - np.repeat(np.cumsum(counts) - counts, counts)
    piece_start = np.where(segment == first[packet], a[packet], starts[segment])
    next_starts = np.append(starts[1:], x1.max(initial=0))
    piece_end = np.minimum(x1[packet], next_starts[segment])
    density = weight / np.where(covered, 1, x1 - a)
    amounts = density[packet] * (piece_end - piece_start)
    piece_owners = owners[segment]
    # A packet wholly covered (a pure retransmission) goes whole to where it starts.
    retransmitted = covered[packet]
    start_index = np.searchsorted(starts, x0[packet[retransmitted]], "right") - 1
    piece_owners[retransmitted] = np.where(start_index >= 0, owners[start_index], ITEM_UNATTRIBUTED)
    amounts[retransmitted] = weight[packet[retransmitted]]
    # Pieces of no bytes (segments of no bytes) are not added.
    added = retransmitted | (piece_end > piece_start)
    return piece_owners[added], amounts[added]


def _assign_control(account: ConnectionAccount, out: array, segments: tuple[_Segments, _Segments]) -> None:
    records = account.control_packets  # flat: side, kind, acknowledged offset, bytes; side, ...
    if records is None:
        return
    streams = account.connection.streams
    # What a side acknowledges: the peer's stream, its segments and FIN.
    peer = ((segments[1].starts, segments[1].owners, streams[1].fin_offset),
            (segments[0].starts, segments[0].owners, streams[0].fin_offset))
    fields = iter(records)
    for side, kind, acked, size in zip(fields, fields, fields, fields):
        if kind == CONTROL_ACK and acked > 0:  # about every other packet
            starts, owners, fin = peer[side]
            if fin is not None and acked > fin:
                # An ACK of the FIN (one past the last data byte) is teardown.
                out[ITEM_TEARDOWN] += size
            else:
                # owner_at(acked - 1), inline (acked - 1 >= 0 = starts[0])
                out[owners[bisect_right(starts, acked - 1) - 1]] += size
        elif kind == CONTROL_FIN or kind == CONTROL_RST:
            out[ITEM_TEARDOWN] += size
        else:
            # SYNs and ACKs of nothing yet (the handshake's last ACK) are setup.
            out[ITEM_SETUP] += size


def attribute_spilled(spilled: SpilledConnection, fin_offsets: tuple[int | None, int | None], item_count: int) -> tuple[FloatTotals, FloatTotals]:
    """attribute_packets for a connection whose records and spans went to disk, all of them, and
    its items numbered from its start: (transport_bytes, ack_bytes) per item, the same floats.

    Each side's packets are read back sorted, as _spread_arrays sorts them, their pieces made by
    the same `_pieces` against the segments of the stretch of stream they cover, with how far
    the earlier packets covered carried from chunk to chunk, and added to the totals in the same
    order (side 0's first).  ACK bytes are whole numbers, whose sums are the same in any order.
    fin_offsets: by side, its stream's FIN offset (TcpStream.fin_offset)."""
    transport = FloatTotals(item_count, spilled.folder)
    acks = FloatTotals(item_count, spilled.folder)
    for side in (0, 1):
        covered = NOTHING_COVERED
        window = _SegmentWindow(spilled.spans[side].chunks())
        for packets in spilled.packets[side].chunks():
            x0, x1, weight = packets[:, 0], packets[:, 1], packets[:, 2]
            furthest = np.maximum.accumulate(x1)
            for first, end, starts, owners in window.batches(x0, furthest):
                transport.add_at(*_pieces(x0[first:end], x1[first:end], weight[first:end], starts, owners, covered))
                covered = max(covered, int(furthest[end - 1]))
    for side in (0, 1):
        fin = fin_offsets[side]
        window = _SegmentWindow(spilled.spans[side].chunks())
        for records in spilled.acks[side].chunks():
            acked, size = records[:, 0], records[:, 1]
            if fin is not None:  # an ACK of the FIN (one past the last data byte) is teardown
                of_fin = acked > fin
                acks.values[ITEM_TEARDOWN] += int(size[of_fin].sum())
                acked, size = acked[~of_fin], size[~of_fin]
            # Each goes to the owner of the last byte it acknowledges (acked - 1).
            for first, end, starts, owners in window.batches(acked - 1, acked):
                acks.add_at(owners[np.searchsorted(starts, acked[first:end] - 1, "right") - 1], size[first:end])
    acks.values[ITEM_SETUP] += spilled.setup_control_bytes
    acks.values[ITEM_TEARDOWN] += spilled.teardown_control_bytes
    return transport, acks


class _SegmentWindow:
    """The segments of a side (as _Segments makes them) from sorted spans given a chunk at a
    time, held from the one at a point of the stream to one past another (`cover`), a stretch
    at a time (`batches`)."""

    def __init__(self, span_chunks: Iterator[np.ndarray]) -> None:
        self._segments = _segment_chunks(span_chunks)
        self._starts = np.empty(0, np.int64)
        self._owners = np.empty(0, np.int64)
        self._all_read = False

    def cover(self, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts, owners) from the segment holding `low` on, to one starting at or past `high`
        or the last (which goes on to the end of the stream); `low` never goes back."""
        while not self._all_read and (not len(self._starts) or self._starts[-1] < high):
            more = next(self._segments, None)
            if more is None:
                self._all_read = True
            else:
                self._starts = np.concatenate((self._starts, more[0]))
                self._owners = np.concatenate((self._owners, more[1]))
        first = max(int(np.searchsorted(self._starts, low, "right")) - 1, 0)
        if first:
            self._starts, self._owners = self._starts[first:], self._owners[first:]
        return self._starts, self._owners

    def batches(self, lows: np.ndarray, highs: np.ndarray) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """Packets (or points) sorted by where they start, `lows`, as batches [first, end) and the
        segments from the one holding lows[first] to one starting at or past highs[end - 1]:
        highs[i], how far packet i and those before it reach, never decreases.  So the window
        holds a stretch of a few packets (or one chunk of segments) at a time, however far a
        chunk of packets reaches (a few ACKs can acknowledge a whole stream)."""
        first, count = 0, len(lows)
        while first < count:
            starts, owners = self.cover(int(lows[first]), int(highs[first]))
            end = count if self._all_read else max(int(np.searchsorted(highs, starts[-1], "right")), first + 1)
            yield first, end, starts, owners
            first = end


def _segment_chunks(span_chunks: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """What _Segments makes of a side's spans, given sorted a chunk at a time as (start, end, item)
    rows: (starts, owners) a chunk at a time, the last being the segment after the last span."""
    cursor = 0  # where the last span taken ended
    for spans in span_chunks:
        spans = spans[spans[:, 1] > spans[:, 0]]  # a range of no bytes is no segment
        if not len(spans):
            continue
        start, end, item = spans[:, 0], spans[:, 1], spans[:, 2]
        # The cursor before each span: the furthest end before it (a span that ends before the
        # cursor is not taken, and leaves it where it was).
        before = np.maximum.accumulate(np.concatenate(([cursor], end[:-1])))
        clipped = np.maximum(start, before)
        taken = end > clipped
        gap = (start > before)[taken]  # a hole before the span: unattributed
        counts = 1 + gap
        at = np.cumsum(counts) - 1
        starts = np.empty(int(counts.sum()), np.int64)
        owners = np.empty_like(starts)
        starts[at], owners[at] = clipped[taken], item[taken]
        starts[at[gap] - 1], owners[at[gap] - 1] = before[taken][gap], ITEM_UNATTRIBUTED
        cursor = max(cursor, int(end.max()))
        yield starts, owners
    yield np.array([cursor], np.int64), np.array([ITEM_UNATTRIBUTED], np.int64)  # everything after the last span
