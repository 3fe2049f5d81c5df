"""Split every captured byte of a connection among its application messages.

Each message owns byte ranges ("spans") of the reassembled streams: a REST
exchange its request and response(s), a WebSocket data message its data
frames.  A packet's own overhead (link, IP and TCP headers, retransmitted and
unparsed bytes) goes to the spans its payload covers, in proportion to the
bytes it carried of each.  A packet without payload goes to connection setup
(SYN, the ACK that completes the handshake), teardown (FIN, RST and ACKs of
the FIN) or to the message whose last acknowledged byte it acknowledges.

The result is a float per message; per connection they add up to the
captured bytes (within float rounding).
"""

from __future__ import annotations

import numpy as np

from inspector.analysis.accounting import CONTROL_ACK, CONTROL_FIN, CONTROL_RST, ConnectionAccount

ITEM_SETUP = 0
ITEM_TEARDOWN = 1
ITEM_WS_CONTROL = 2
ITEM_UNATTRIBUTED = 3
FIRST_MESSAGE_ITEM = 4


def attribute_packets(account: ConnectionAccount, spans: list[list[tuple[int, int, int]]], item_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (transport_bytes, ack_bytes) per item.

    spans[side] lists (start, end, item) stream ranges of that side's stream,
    disjoint; item numbers index the returned arrays.
    """
    transport = np.zeros(item_count)
    acks = np.zeros(item_count)
    segments = [_segments(spans[side]) for side in (0, 1)]
    sides = np.frombuffer(account.data_side, dtype=np.int8) if len(account.data_side) else np.zeros(0, np.int8)
    if len(sides):
        offsets = np.frombuffer(account.data_offset, dtype=np.int64)
        lengths = np.frombuffer(account.data_length, dtype=np.int64)
        weights = np.frombuffer(account.data_overhead, dtype=np.int64).astype(float)
        for side in (0, 1):
            mask = sides == side
            if mask.any():
                _spread(transport, segments[side], offsets[mask], lengths[mask], weights[mask])
    if len(account.ctrl_side):
        _assign_control(account, acks, segments)
    return transport, acks


def _segments(side_spans: list[tuple[int, int, int]]):
    """Boundaries and owners covering the whole stream, holes unattributed."""
    starts: list[int] = []
    owners: list[int] = []
    cursor = 0
    for start, end, item in sorted(side_spans):
        if end <= start:
            continue
        if start > cursor:
            starts.append(cursor)
            owners.append(ITEM_UNATTRIBUTED)
        elif start < cursor:
            start = cursor
            if end <= start:
                continue
        starts.append(start)
        owners.append(item)
        cursor = end
    starts.append(cursor)
    owners.append(ITEM_UNATTRIBUTED)  # everything after the last span
    return np.asarray(starts, dtype=np.int64), np.asarray(owners, dtype=np.int64)


def _owner_at(segments, points: np.ndarray) -> np.ndarray:
    starts, owners = segments
    index = np.searchsorted(starts, points, side="right") - 1
    result = np.full(len(points), ITEM_UNATTRIBUTED, dtype=np.int64)
    valid = index >= 0
    result[valid] = owners[index[valid]]
    return result


def _spread(out: np.ndarray, segments, offsets: np.ndarray, lengths: np.ndarray, weights: np.ndarray) -> None:
    order = np.argsort(offsets, kind="stable")
    x0, x1, w = offsets[order], offsets[order] + lengths[order], weights[order]
    # Clip each packet to the bytes not covered by earlier ones so that the
    # cumulative overhead function stays monotone; fully covered packets
    # (pure retransmissions) become point masses at their start.
    covered_until = np.maximum.accumulate(np.concatenate(([np.iinfo(np.int64).min], x1[:-1])))
    x0c = np.maximum(x0, covered_until)
    spread_mask = x1 > x0c
    points = ~spread_mask
    if points.any():
        np.add.at(out, _owner_at(segments, x0[points]), w[points])
    if not spread_mask.any():
        return
    a, b, ws = x0c[spread_mask], x1[spread_mask], w[spread_mask]
    cumulative = np.cumsum(ws)
    xp = np.empty(2 * len(a), dtype=np.float64)
    fp = np.empty(2 * len(a), dtype=np.float64)
    xp[0::2], xp[1::2] = a, b
    fp[0::2] = cumulative - ws
    fp[1::2] = cumulative
    starts, owners = segments
    bounds = np.concatenate((starts, [max(int(b.max()), int(starts[-1])) + 1]))
    values = np.interp(bounds.astype(np.float64), xp, fp, left=0.0, right=float(cumulative[-1]))
    shares = np.diff(values)
    np.add.at(out, owners, shares)


def _assign_control(account: ConnectionAccount, out: np.ndarray, segments) -> None:
    sides = np.frombuffer(account.ctrl_side, dtype=np.int8)
    kinds = np.frombuffer(account.ctrl_kind, dtype=np.int8)
    acked = np.frombuffer(account.ctrl_ack, dtype=np.int64)
    sizes = np.frombuffer(account.ctrl_bytes, dtype=np.int64).astype(float)
    # SYNs and ACKs of nothing yet (the handshake's last ACK) are setup.
    owners = np.full(len(sides), ITEM_SETUP, dtype=np.int64)
    owners[(kinds == CONTROL_FIN) | (kinds == CONTROL_RST)] = ITEM_TEARDOWN
    for side in (0, 1):
        other = account.connection.streams[1 - side]
        mask = (kinds == CONTROL_ACK) & (sides == side) & (acked > 0)
        if not mask.any():
            continue
        last_acked = acked[mask] - 1
        side_owners = _owner_at(segments[1 - side], last_acked)
        if other.fin_offset is not None:
            # An ACK of the FIN (one past the last data byte) is teardown.
            side_owners[acked[mask] > other.fin_offset] = ITEM_TEARDOWN
        owners[mask] = side_owners
    np.add.at(out, owners, sizes)
