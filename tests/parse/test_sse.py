"""The Server-Sent Events parser (inspector.parse.sse) against the WHATWG HTML standard's own
examples of an event stream (section 9.2.6, "Parsing an event stream", and 9.2.4-9.2.5), its line
endings and BOM rule, and hostile streams: every byte of a body is in exactly one item, whatever
the receives it comes in, and memory stays bounded by the parser's limits."""

from __future__ import annotations

import tracemalloc

import pytest

from inspector.events import SseControl, SseEvent, SseProblem
from inspector.parse.sse import SseParser


def parse(body: bytes, sizes: tuple[int, ...] = (), **limits) -> list:
    """Items and problems of `body` fed in pieces of `sizes` (then the rest), then finish()."""
    parser, out, position = SseParser(**limits), [], 0
    for size in sizes:
        out += parser.receive(body[position:position + size])
        position += size
    out += parser.receive(body[position:])
    return out + parser.finish()


def events(body: bytes, **limits) -> list[tuple[str, str, str]]:
    """(type, data, last event id) of each event dispatched."""
    return [(e.event_type, e.data, e.last_event_id) for e in parse(body, **limits) if isinstance(e, SseEvent)]


def items(out: list) -> list:
    return [item for item in out if not isinstance(item, SseProblem)]


def test_the_standards_examples():
    # "data: YHOO / data: +2 / data: 10": one event, its data lines joined by LF
    assert events(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [("message", "YHOO\n+2\n10", "")]
    # a comment, an id, an empty id resetting it, and only one space after the colon dropped
    stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"
    assert events(stream) == [("message", "first event", "1"), ("message", "second event", ""), ("message", " third event", "")]
    # "data" alone is an empty data line: the first event's data is empty, the second's one LF;
    # the last line never ends with a blank line, so no event
    assert events(b"data\n\ndata\ndata\n\ndata:") == [("message", "", ""), ("message", "\n", "")]
    # a space after the colon is optional
    assert events(b"data:test\n\ndata: test\n\n") == [("message", "test", ""), ("message", "test", "")]
    # event names the type; fields it does not know are ignored
    assert events(b"event: add\ndata: 73857293\nunknown: x\n\nevent: remove\ndata: 2153\n\n") == [("add", "73857293", ""), ("remove", "2153", "")]


def test_line_endings_and_the_bom():
    lf = b"\xef\xbb\xbfdata: a\nid: 7\n\ndata: b\n\n"
    expected = [("message", "a", "7"), ("message", "b", "7")]
    for ending in (b"\r\n", b"\r"):
        assert events(lf.replace(b"\n", ending)) == expected
    assert events(lf) == expected
    assert events(b"data: a\r\n\rdata: b\n\r\n") == [("message", "a", ""), ("message", "b", "")]  # mixed in one stream
    # a BOM anywhere but at the start is part of the line: here a field name that is not "data"
    assert events(b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [("message", "a", "")]


def test_fields_that_are_ignored():
    assert events(b"id: a\0b\ndata: x\n\n") == [("message", "x", "")]  # an id with a NUL is ignored
    retries = [(e.retry_ms, e.data) for e in parse(b"retry: 250\ndata: x\n\nretry: 2s\ndata: y\n\nretry: -1\ndata: z\n\n") if isinstance(e, SseEvent)]
    assert retries == [(250, "x"), (None, "y"), (None, "z")]  # only ASCII digits
    out = parse(b"id: 5\n\nevent: x\n\n")  # fields without data dispatch nothing, but the id stays
    assert [type(i) for i in items(out)] == [SseControl, SseControl] and all(i.kind == "empty" for i in items(out))
    assert events(b"id: 5\n\ndata: y\n\n") == [("message", "y", "5")]


STREAMS = [
    b"\xef\xbb\xbf: hello\n\nid: 1\nevent: tick\ndata: a\ndata: b\r\n\r\ndata:x\r\rretry: 300\ndata\n\n\n\n\ndata: tail",
    b": keep-alive\n\n: keep-alive\n\ndata: {\"seq\": 1}\n\n\n\n\n: a\n: b\n\ndata: \xff\xfe\n\n:x",
    b"\r\r\n\n\r\ndata: a\r\r",
]


@pytest.mark.parametrize("body", STREAMS)
def test_every_byte_is_in_one_item_whatever_the_receives(body: bytes):
    whole = parse(body)
    got = items(whole)
    assert got[0].start == 0 and got[-1].end == len(body)
    assert all(a.end == b.start for a, b in zip(got, got[1:]))
    for first in range(1, len(body)):
        for second in range(first + 1, len(body), 3):
            assert parse(body, (first, second - first)) == whole, (first, second)


def test_keep_alives_and_blank_lines_are_control_items():
    out = items(parse(b": ping\n\n: ping\n\ndata: x\n\n\n\n\n\ndata: y\n\n"))
    assert [(type(i).__name__, getattr(i, "kind", None), i.end - i.start) for i in out] == [
        ("SseControl", "comment", 8), ("SseControl", "comment", 8), ("SseEvent", None, 9), ("SseControl", "empty", 4), ("SseEvent", None, 9)]


def test_an_unterminated_event_and_invalid_utf8_are_problems():
    out = parse(b"data: \xff\xfe ok\n\ndata: never dispatched")
    (event,) = [i for i in out if isinstance(i, SseEvent)]
    assert event.text_valid is False and event.data == "\ufffd\ufffd ok"
    assert [p.rule for p in out if isinstance(p, SseProblem)] == ["sse-invalid-utf8", "sse-unterminated-event"]
    assert items(out)[-1].kind == "unterminated" and items(out)[-1].end == len(b"data: \xff\xfe ok\n\ndata: never dispatched")


def test_a_50_mb_line_without_an_end_is_counted_in_bounded_memory():
    parser = SseParser(max_line_bytes=1 << 20)
    piece = b"x" * 65536
    tracemalloc.start()
    try:
        out = parser.receive(b"data: ")
        for _ in range(50 * 16):  # 50 MiB
            out += parser.receive(piece)
        out += parser.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak  # the line held is 1 MiB at most
    assert [p.rule for p in out if isinstance(p, SseProblem)] == ["sse-line-too-long", "sse-unterminated-event"]
    assert items(out)[-1].end == 6 + 50 * 16 * 65536


def test_an_event_past_the_data_limit_is_cut_and_says_so():
    (event,) = [i for i in parse(b"data: 0123456789\ndata: abcdefghij\n\n", max_data_bytes=15) if isinstance(i, SseEvent)]
    assert event.truncated and event.data == "0123456789\nabc" and event.data_bytes == 21


def test_a_million_events_and_a_million_blank_lines():
    out = parse(b"data:\n\n" * 1_000_000, tuple([65536] * 106))
    assert sum(isinstance(i, SseEvent) for i in out) == 1_000_000
    (blank,) = parse(b"\n" * 1_000_000, tuple([65536] * 15))  # one run of blank lines, one item
    assert (blank.kind, blank.lines, blank.end) == ("empty", 1_000_000, 1_000_000)
