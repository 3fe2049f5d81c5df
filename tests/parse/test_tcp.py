"""TCP reassembly: order, duplicates, overlaps, gaps, wraparound, mid-stream."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.events import NEED_DATA, Direction, StreamData, StreamEnd, StreamGap
from inspector.parse.tcp import TcpStreamReassembler


def drain(stream: TcpStreamReassembler) -> list:
    events = []
    while (event := stream.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def delivered(events) -> tuple[bytes, list[tuple[int, int]]]:
    """Concatenated data and the (offset, length) of every gap."""
    data = bytearray()
    gaps = []
    for event in events:
        if isinstance(event, StreamData):
            assert event.offset == len(data) + sum(g[1] for g in gaps)
            data += event.data
        elif isinstance(event, StreamGap):
            gaps.append((event.offset, event.length))
    return bytes(data), gaps


def feed(segments, *, isn=1000, syn=True, close=True):
    """segments: (relative offset, bytes) pairs; returns events and fates."""
    stream = TcpStreamReassembler(Direction.CLIENT)
    if syn:
        stream.receive_segment(isn, b"", 0, 0, syn=True)
    fates = []
    for ts, (offset, data) in enumerate(segments, start=1):
        seq = (isn + 1 + offset) % (1 << 32)
        fates.append(stream.receive_segment(seq, data, len(data), ts))
    if close:
        stream.close(99)
    return drain(stream), fates


def test_in_order_segments_come_out_as_they_went_in():
    events, fates = feed([(0, b"hello "), (6, b"world")])
    assert [e.data for e in events if isinstance(e, StreamData)] == [b"hello ", b"world"]
    assert [f.new_bytes for f in fates] == [6, 5]
    assert isinstance(events[-1], StreamEnd) and events[-1].offset == 11


def test_out_of_order_segments_are_reordered():
    events, fates = feed([(6, b"world"), (0, b"hello ")])
    assert delivered(events) == (b"hello world", [])
    assert sum(f.new_bytes for f in fates) == 11


def test_retransmission_counted_once_as_duplicate():
    events, fates = feed([(0, b"abcd"), (0, b"abcd"), (4, b"ef")])
    assert delivered(events)[0] == b"abcdef"
    assert [(f.new_bytes, f.duplicate_bytes) for f in fates] == [(4, 0), (0, 4), (2, 0)]


def test_overlapping_segment_contributes_only_new_bytes():
    events, fates = feed([(0, b"abcd"), (2, b"cdef"), (8, b"ij"), (5, b"fgh")])
    assert delivered(events)[0] == b"abcdefghij"
    assert [(f.new_bytes, f.duplicate_bytes) for f in fates] == [(4, 0), (2, 2), (2, 0), (2, 1)]


def test_hole_never_filled_becomes_gap_not_zeros():
    events, _ = feed([(0, b"abc"), (10, b"xyz")])
    data, gaps = delivered(events)
    assert data == b"abcxyz"
    assert gaps == [(3, 7)]
    assert b"\x00" not in data


def test_acknowledged_unseen_bytes_become_gap_at_once():
    stream = TcpStreamReassembler(Direction.SERVER)
    stream.receive_segment(0, b"", 0, 0, syn=True)
    stream.receive_segment(1 + 100, b"later", 5, 1)
    assert drain(stream) == []
    stream.acknowledged(105, 2)
    data, gaps = delivered(drain(stream))
    assert (data, gaps) == (b"later", [(0, 100)])


def test_sequence_wraparound_is_invisible():
    isn = (1 << 32) - 3
    events, fates = feed([(0, b"ab"), (2, b"cd"), (4, b"ef")], isn=isn)
    assert delivered(events) == (b"abcdef", [])
    assert [f.offset for f in fates] == [0, 2, 4]


def test_mid_stream_capture_starts_at_first_segment_seen():
    events, fates = feed([(50, b"GET"), (53, b" /")], syn=False)
    assert delivered(events)[0] == b"GET /"
    assert fates[0].offset == 0


def test_late_segment_before_mid_stream_start_is_counted_not_delivered():
    events, fates = feed([(50, b"later"), (45, b"early")], syn=False)
    assert delivered(events)[0] == b"later"
    assert fates[1].before_start_bytes == 5


def test_uncaptured_tail_of_snaplen_cut_segment_is_a_gap():
    stream = TcpStreamReassembler(Direction.CLIENT)
    stream.receive_segment(0, b"", 0, 0, syn=True)
    fate = stream.receive_segment(1, b"abc", 10, 1)
    stream.receive_segment(11, b"next", 4, 2)
    stream.close(3)
    data, gaps = delivered(drain(stream))
    assert data == b"abcnext" and gaps == [(3, 7)]
    assert fate.new_bytes == 10


def test_buffer_limit_forces_gap():
    stream = TcpStreamReassembler(Direction.CLIENT, max_buffered=10)
    stream.receive_segment(0, b"", 0, 0, syn=True)
    stream.receive_segment(1 + 5, b"x" * 11, 11, 1)
    data, gaps = delivered(drain(stream))
    assert data == b"x" * 11 and gaps == [(0, 5)]


@st.composite
def segmented_stream(draw):
    data = draw(st.binary(min_size=1, max_size=300))
    cuts = sorted(draw(st.lists(st.integers(1, len(data)), max_size=20)))
    bounds = [0, *cuts, len(data)]
    segments = [(a, data[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]
    # Retransmissions: repeat some segments, and add overlapping re-sends.
    extra = draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 40)), max_size=5))
    for start, length in extra:
        segments.append((start, data[start : start + length]))
    seed = draw(st.integers(0, 2**32 - 1))
    isn = draw(st.sampled_from([0, 1000, (1 << 32) - 100, (1 << 32) - 1]))
    return data, segments, seed, isn


@settings(max_examples=300, deadline=None)
@given(segmented_stream())
def test_any_arrival_order_gives_the_same_stream(case):
    data, segments, seed, isn = case
    shuffled = segments[:]
    random.Random(seed).shuffle(shuffled)
    events, fates = feed(shuffled, isn=isn)
    assert delivered(events) == (data, [])
    total = sum(len(s) for _, s in segments)
    assert sum(f.new_bytes for f in fates) == len(data)
    assert sum(f.duplicate_bytes for f in fates) == total - len(data)


@settings(max_examples=200, deadline=None)
@given(segmented_stream(), st.integers(0, 299), st.integers(1, 50))
def test_missing_range_gives_the_same_gap_in_any_order(case, hole_start, hole_len):
    data, segments, seed, isn = case
    hole = range(hole_start, hole_start + hole_len)
    # Drop every segment touching the hole: those bytes were never captured.
    kept = [(o, s) for o, s in segments if o + len(s) <= hole.start or o >= hole.stop]
    if not kept:
        return
    a, _ = feed(kept, isn=isn)
    shuffled = kept[:]
    random.Random(seed).shuffle(shuffled)
    b, _ = feed(shuffled, isn=isn)
    assert delivered(a) == delivered(b)
    got, gaps = delivered(a)
    covered = set()
    for o, s in kept:
        covered.update(range(o, o + len(s)))
    last = max(covered) + 1
    assert len(got) == len(covered)
    assert sum(length for _, length in gaps) == last - len(covered)


# --- the reordering buffer: bounded work and memory, honest late bytes -----------


def feed_into(stream: TcpStreamReassembler, segments, *, isn=1000):
    """Feed (relative offset, bytes) pairs after a SYN; returns the fates."""
    stream.receive_segment(isn, b"", 0, 0, syn=True)
    return [stream.receive_segment(isn + 1 + offset, data, len(data), ts) for ts, (offset, data) in enumerate(segments, start=1)]


@pytest.mark.parametrize("count", [1000, 8000])
def test_reverse_one_byte_segments_coalesce_into_one_run(count):
    # Each piece arriving touches the run after it: the buffer holds one run,
    # so no insert or delivery ever walks a list that grows with the input.
    stream = TcpStreamReassembler(Direction.CLIENT)
    data = bytes(range(256)) * (count // 256 + 1)
    stream.receive_segment(1000, b"", 0, 0, syn=True)
    most_runs = 0
    for offset in reversed(range(1, count)):
        stream.receive_segment(1001 + offset, data[offset:offset + 1], 1, offset)
        most_runs = max(most_runs, len(stream._run_starts))
    # Its pieces are joined as they pile up: about one object per 64 bytes, not per byte.
    assert len(stream._runs[stream._run_starts[0]].chunks) <= 16 + count // 64
    stream.receive_segment(1001, data[:1], 1, count)
    events = drain(stream)
    assert most_runs == 1
    assert [type(e) for e in events] == [StreamData]  # one event, not one per byte
    assert events[0].data == data[:count]


def test_run_count_is_bounded_and_the_oldest_hole_is_given_up():
    # Every other byte, in order: no piece touches another, each is a run.
    stream = TcpStreamReassembler(Direction.CLIENT, max_runs=50)
    fates = feed_into(stream, [(offset, b"x") for offset in range(1, 400, 2)])
    assert len(stream._run_starts) <= 50
    assert stream.reorder_limit_hits == 200 - 50
    assert sum(f.new_bytes for f in fates) == 200


def test_bytes_of_a_given_up_hole_are_late_not_duplicates():
    # Windows of ten 10-byte segments sent last-first; the buffer holds 50 bytes,
    # so it gives up holes that are filled a moment later by what was sent.
    segments = [(offset, b"y" * 10) for window in range(0, 1000, 100) for offset in range(window + 90, window - 1, -10)]
    stream = TcpStreamReassembler(Direction.CLIENT, max_buffered=50)
    fates = feed_into(stream, segments)
    stream.close(9999)
    assert stream.reorder_limit_hits > 0
    assert sum(f.duplicate_bytes for f in fates) == 0
    late = sum(f.late_bytes for f in fates)
    assert late == stream.late_bytes > 0
    assert sum(f.new_bytes for f in fates) + late == 1000
    # A real retransmission of a byte that already came late is a duplicate.
    again = stream.receive_segment(1001, b"y" * 10, 10, 10_000)
    assert again.late_bytes == 0


def test_late_bytes_for_an_acknowledged_hole_are_late():
    stream = TcpStreamReassembler(Direction.SERVER)
    stream.receive_segment(0, b"", 0, 0, syn=True)
    stream.receive_segment(1 + 100, b"later", 5, 1)
    stream.acknowledged(105, 2)
    fate = stream.receive_segment(1 + 40, b"z" * 70, 70, 3)  # 60 late, 5 seen before, 5 new
    assert (fate.late_bytes, fate.duplicate_bytes, fate.new_bytes) == (60, 5, 5)
    assert stream.reorder_limit_hits == 0


@settings(max_examples=200, deadline=None)
@given(segmented_stream(), st.integers(1, 60), st.integers(1, 6))
def test_small_buffer_accounts_every_byte_once(case, max_buffered, max_runs):
    data, segments, seed, isn = case
    shuffled = segments[:]
    random.Random(seed).shuffle(shuffled)
    stream = TcpStreamReassembler(Direction.CLIENT, max_buffered=max_buffered, max_runs=max_runs)
    fates = feed_into(stream, shuffled, isn=isn)
    stream.close(999)
    got, gaps = delivered(drain(stream))
    assert len(got) + sum(length for _, length in gaps) == len(data)
    total = sum(len(s) for _, s in segments)
    assert sum(f.new_bytes + f.duplicate_bytes + f.late_bytes for f in fates) == total
    assert sum(f.new_bytes for f in fates) == len(got)
    # Late bytes are bytes of given-up holes, each counted once.
    assert sum(f.late_bytes for f in fates) <= sum(length for _, length in gaps)
