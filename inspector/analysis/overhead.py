"""Split every captured byte of a connection among its application messages.

Each message owns byte ranges ("spans") of the reassembled streams: a REST
exchange its request and response(s), a WebSocket data message its data
frames.  A packet's own overhead (link, IP and TCP headers, retransmitted and
unparsed bytes) goes to the spans its payload covers, in proportion to the
bytes it carried of each.  A packet without payload goes to connection setup
(SYN, the ACK that completes the handshake), teardown (FIN, RST and ACKs of
the FIN) or to the message whose last acknowledged byte it acknowledges.

The result is a float per message; per connection they add up to the
captured bytes (within float rounding).  Plain Python on purpose: most
connections are small, where numpy's per-call overhead would dominate.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right

from inspector.analysis.accounting import CONTROL_ACK, CONTROL_FIN, CONTROL_RST, ConnectionAccount

ITEM_SETUP = 0
ITEM_TEARDOWN = 1
ITEM_WS_CONTROL = 2
ITEM_UNATTRIBUTED = 3


class Spans:
    """The stream ranges of one side and the item owning each, disjoint.

    Kept flat, three numbers a range, and a range that continues the last one
    for the same item extends it: a message of a million frames is one range.
    """

    __slots__ = ("_flat",)

    def __init__(self) -> None:
        self._flat = array("q")  # start, end, item; start, end, item; ...

    def add(self, start: int, end: int, item: int) -> None:
        flat = self._flat
        if flat and flat[-2] == start and flat[-1] == item:
            flat[-2] = end
        else:
            flat.extend((start, end, item))

    def relabel(self, item: int, new_item: int) -> None:
        flat = self._flat
        for index in range(2, len(flat), 3):
            if flat[index] == item:
                flat[index] = new_item

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
    transport = array("d", [0.0]) * item_count
    acks = array("d", [0.0]) * item_count
    segments = [_Segments(spans[side]) for side in (0, 1)]
    packets: list[list[tuple[int, int, int]]] = [[], []]
    for side, offset, length, weight in account.data_records():
        packets[side].append((offset, offset + length, weight))
    for side in (0, 1):
        _spread(transport, segments[side], packets[side])
    _assign_control(account, acks, segments)
    return transport, acks


class _Segments:
    """Boundaries and owners covering the whole stream; holes are unattributed."""

    def __init__(self, side_spans: Spans) -> None:
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
    covered_until = None
    for x0, x1, weight in packets:
        # Clip each packet to the bytes no earlier packet covered; a packet
        # wholly covered (a pure retransmission) goes to where it starts.
        a = x0 if covered_until is None or x0 >= covered_until else covered_until
        if x1 <= a:
            out[segments.owner_at(x0)] += weight
            continue
        covered_until = x1
        index = segments.index_at(a)
        if index < 0:
            index = 0
        density = weight / (x1 - a)
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


def _assign_control(account: ConnectionAccount, out: array, segments: list[_Segments]) -> None:
    streams = account.connection.streams
    fin_offsets = [streams[0].fin_offset, streams[1].fin_offset]
    for side, kind, acked, size in account.control_records():
        if kind == CONTROL_FIN or kind == CONTROL_RST:
            out[ITEM_TEARDOWN] += size
        elif kind == CONTROL_ACK and acked > 0:
            fin = fin_offsets[1 - side]
            if fin is not None and acked > fin:
                # An ACK of the FIN (one past the last data byte) is teardown.
                out[ITEM_TEARDOWN] += size
            else:
                out[segments[1 - side].owner_at(acked - 1)] += size
        else:
            # SYNs and ACKs of nothing yet (the handshake's last ACK) are setup.
            out[ITEM_SETUP] += size
