"""A text/event-stream response read by the HTTP/1.1 parser (parse/sse_body.py): its events come as
its body arrives, each owning the stream bytes around it, so that the items of a body own each of
its bytes once, whatever its framing (chunked, Content-Length, read to the close), its coding
(gzip flushed per event, a coding not decoded) and its segmentation; a capture gap loses the
parser's place until the next blank line."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.events import Direction, Finding, HttpResponse, SseControl, SseEvent, SseItem
from inspector.parse.http1 import Http1Parser, Role
from tests.factories import chunked_body, http_response

EVENTS = [b": connected\n\n", b"id: 1\nevent: tick\ndata: {\"n\": 1}\n\n", b"id: 2\ndata: two\ndata: lines\n\n", b"data: \xe2\x9c\x93\n\n"]
HEAD = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


def sse_response(chunks: list[bytes], **headers) -> bytes:
    return http_response(200, headers={**HEAD, **headers, "Transfer-Encoding": "chunked"}, body=chunked_body(chunks), content_length=False)


def read(data: bytes, pieces: list[int] | None = None, *, eof: bool = True, gap: tuple[int, int] | None = None) -> list:
    """Every event of the response parser, `data` given in pieces of the sizes listed (then the
    rest), the i-th at time i; gap: (position, length) of bytes of `data` never captured."""
    parser = Http1Parser(Direction.SERVER, Role.RESPONSE)
    parser.expect_response_to("GET")
    events, position = [], 0
    for index, size in enumerate([*(pieces or []), len(data)]):
        piece = data[position:position + size]
        if gap is not None and position <= gap[0] < position + size:
            parser.receive_data(piece[:gap[0] - position], index)
            parser.receive_gap(gap[1], index)
            piece = piece[gap[0] - position + gap[1]:]
        parser.receive_data(piece, index)
        events += parser.take_events()
        position += size
        if position >= len(data):
            break
    if eof:
        parser.receive_eof(1000)
        events += parser.take_events()
    return events


def items(events: list) -> list[SseItem]:
    return [event for event in events if isinstance(event, SseItem)]


def placed(events: list) -> list[tuple]:
    """Each item where it is on the stream and what it is, times aside."""
    return [(i.ranges, i.framing_bytes, i.sent_bytes, i.missing_bytes, i.decoded_bytes, type(i.item).__name__,
             getattr(i.item, "data", None), getattr(i.item, "kind", None), getattr(i.item, "last_event_id", None)) for i in items(events)]


def assert_owns_the_body(events: list, data: bytes) -> None:
    """The items own the response's body whole, once: their ranges follow each other from the
    end of its head to its end, and their bytes by kind add up to the response's."""
    (response,) = [event for event in events if isinstance(event, HttpResponse)]
    found = items(events)
    ranges = [(start, end) for item in found for start, end in zip(item.ranges[::2], item.ranges[1::2])]
    assert ranges[0][0] == response.offset + response.header_bytes
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:])), ranges
    assert ranges[-1][1] == response.offset + response.header_bytes + response.body_wire_bytes
    assert sum(i.framing_bytes for i in found) == response.chunk_framing_bytes
    assert sum(i.sent_bytes for i in found) == response.body_bytes - response.missing_bytes
    assert sum(i.missing_bytes for i in found) == response.missing_bytes
    for item in found:
        assert item.framing_bytes + item.sent_bytes + item.missing_bytes == sum(e - s for s, e in zip(item.ranges[::2], item.ranges[1::2]))


def test_a_chunked_stream_an_event_a_chunk_each_event_owns_its_chunk():
    data = sse_response(EVENTS)
    events = read(data)
    assert_owns_the_body(events, data)
    found = items(events)
    assert [type(i.item) for i in found] == [SseControl, SseEvent, SseEvent, SseEvent, SseControl]
    assert [i.item.kind for i in found if isinstance(i.item, SseControl)] == ["comment", "end"]
    # An event sent as one chunk: its chunk-size line, its bytes and the CRLF after them.
    for item, chunk in zip(found, EVENTS):
        assert (item.sent_bytes, item.framing_bytes) == (len(chunk), len(b"%x\r\n" % len(chunk)) + 2)
    assert found[-1].framing_bytes == len(b"0\r\n\r\n")  # the last chunk: control "end"
    event = found[1].item
    assert (event.event_type, event.data, event.data_bytes, event.last_event_id) == ("tick", '{"n": 1}', 8, "1")
    assert (found[2].item.data, found[3].item.data, found[3].item.data_bytes, found[3].item.data_chars) == ("two\nlines", "\u2713", 3, 1)


def test_events_come_as_the_body_arrives_not_at_its_end():
    data = sse_response(EVENTS)
    parser = Http1Parser(Direction.SERVER, Role.RESPONSE)
    parser.expect_response_to("GET")
    head_end = data.index(b"\r\n\r\n") + 4
    parser.receive_data(data[:head_end], 0)
    seen = []
    position = head_end
    for index, chunk in enumerate(EVENTS, start=1):
        framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        parser.receive_data(framed, index)
        position += len(framed)
        got = parser.take_events()
        assert not any(isinstance(event, HttpResponse) for event in got)  # the response is still open
        seen += items(got)
        assert len(seen) == index and seen[-1].ts_ns == index  # its item, at once, timed by its packet
    assert data[position:] == b"0\r\n\r\n"


@pytest.mark.parametrize("framing", ["chunked", "content-length", "to-close"])
def test_every_segmentation_places_the_items_the_same(framing):
    stream = b"".join(EVENTS) + b": keep-alive\n\n\r\ndata: crlf\r\n\r\ndata: cr\r\rdata: last"
    if framing == "chunked":
        data = sse_response([stream[:17], stream[17:40], stream[40:41], stream[41:]])
    else:
        data = http_response(200, headers=HEAD, body=stream, content_length=framing == "content-length")
    whole = read(data)
    assert_owns_the_body(whole, data)
    assert placed(read(data, [1] * len(data))) == placed(whole)
    for size in (3, 7, 50):
        assert placed(read(data, [size] * (len(data) // size + 1))) == placed(whole)
    assert [i.item.kind for i in items(whole) if isinstance(i.item, SseControl)][-1] == "unterminated"
    findings = [event.rule for event in whole if isinstance(event, Finding)]
    assert findings == ["sse-unterminated-event"] if framing != "content-length" else findings[-1] == "sse-unterminated-event"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), max_size=30))
def test_any_segmentation_of_a_chunked_stream(sizes):
    data = sse_response([b"data: a\n", b"\ndata: b\n\n: x\n\n", b"id: 9\ndata: c\r\n\r\n"])
    assert placed(read(data, sizes)) == placed(read(data))


def _gzip_per_event(events: list[bytes]) -> list[bytes]:
    """A gzip stream flushed after each event (Z_SYNC_FLUSH), one piece per event, the trailer with the last."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    pieces = [compressor.compress(event) + compressor.flush(zlib.Z_SYNC_FLUSH) for event in events]
    pieces[-1] += compressor.flush()
    return pieces


def test_a_gzip_stream_flushed_per_event_gives_each_event_its_flush():
    pieces = _gzip_per_event(EVENTS)
    data = sse_response(pieces, **{"Content-Encoding": "gzip"})
    whole = items(read(data))
    # Each chunk (a flush) read at once: its event owns it, the gzip header going with the first.
    assert [getattr(i.item, "data", None) for i in whole[:4]] == [None, '{"n": 1}', "two\nlines", "\u2713"]
    assert [i.sent_bytes for i in whole[:4]] == [len(piece) for piece in pieces]
    for sizes in ([], [3] * 200, [1] * len(data)):
        # Read in other pieces, an event owns the bytes zlib read up to its last byte's output:
        # bytes read without output (a flush's end, the gzip trailer) go to the item after it.
        events = read(data, sizes)
        assert_owns_the_body(events, data)
        found = items(events)
        assert [getattr(i.item, "data", None) for i in found] == [getattr(i.item, "data", None) for i in whole]
        assert [i.decoded_bytes for i in found[:4]] == [len(event) for event in EVENTS]


def test_a_coding_not_decoded_is_one_undecoded_item():
    data = sse_response([b"\x8b\x01\x80garbage", b"more"], **{"Content-Encoding": "br"})
    events = read(data)
    assert_owns_the_body(events, data)
    (item,) = items(events)
    assert (item.item.kind, item.sent_bytes, item.decoded_bytes) == ("undecoded", 14, 0)
    assert [event.rule for event in events if isinstance(event, Finding)] == ["sse-not-decoded"]


def test_corrupt_gzip_stops_the_events_where_it_breaks():
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    first = compressor.compress(EVENTS[0]) + compressor.flush(zlib.Z_SYNC_FLUSH)
    second = compressor.compress(b"data: ne") + compressor.flush(zlib.Z_SYNC_FLUSH)
    # After a flush, a deflate block header of the reserved type 3: zlib fails there.
    data = sse_response([first, second, b"\xff" * 20, b"after"], **{"Content-Encoding": "gzip"})
    events = read(data)
    assert_owns_the_body(events, data)
    found = items(events)
    assert [(type(i.item).__name__, i.item.kind) for i in found] == [("SseControl", "comment"), ("SseControl", "unterminated"),
                                                                    ("SseControl", "undecoded")]
    assert (found[1].decoded_bytes, found[2].sent_bytes, found[2].decoded_bytes) == (8, 25, 0)
    assert [e.rule for e in events if isinstance(e, Finding)] == ["sse-unterminated-event", "sse-not-decoded"]


def test_a_gap_loses_the_place_until_the_next_blank_line_and_the_ids_go_on():
    stream = b"id: 7\ndata: before\n\ndata: cut by the gap, this is lost\ndata: so is this\n\nid: 8\ndata: after\n\ndata: same id\n\n"
    data = http_response(200, headers=HEAD, body=stream)
    at = data.index(b"by the gap")
    events = read(data, [at + 3], gap=(at + 3, 4))
    assert_owns_the_body(events, data)
    found = items(events)
    kinds = [(type(i.item).__name__, getattr(i.item, "kind", None), getattr(i.item, "data", None), getattr(i.item, "last_event_id", None)) for i in found]
    assert kinds == [("SseEvent", None, "before", "7"), ("SseControl", "unterminated", None, None), ("SseControl", "lost", None, None),
                     ("SseEvent", None, "after", "8"), ("SseEvent", None, "same id", "8")]
    assert found[2].missing_bytes == 4 and found[2].decoded_bytes == found[2].sent_bytes
    assert [event.rule for event in events if isinstance(event, Finding)] == ["sse-unterminated-event", "sse-lost-sync"]


def test_a_response_that_is_not_an_event_stream_has_no_items():
    data = http_response(200, headers={"Content-Type": "text/plain"}, body=b"data: x\n\n")
    assert items(read(data)) == []
    data = http_response(204, "No Content", headers=HEAD)
    assert items(read(data)) == []
