"""Events handed out by the parsers: one at a time, all at once, or into the caller's list."""

from __future__ import annotations

import zlib

from inspector.events import NEED_DATA, DeflateParams, Direction
from inspector.parse import http1
from inspector.parse.http1 import Http1Parser, Role
from inspector.parse.websocket import WebSocketParser
from tests.factories import deflate_message, http_request, ws_frame


def _pulled(parser) -> list:
    events = []
    while (event := parser.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def _http_stream() -> bytes:
    # Two whole messages, one cut across chunks, a chunked one and garbage: fast and general paths.
    return (http_request("GET", "/a", headers={"Host": "x"}) + http_request("POST", "/b", body=b"x" * 300)
            + http_request("PUT", "/c", chunked=[b"ab", b"cde"]) + b"junk\r\n" + http_request("GET", "/d"))


def _ws_stream() -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return b"".join([
        ws_frame(b"hello", masked=True, mask_key=b"abcd"),
        ws_frame(deflate_message(b"squeezed " * 40, compressor), masked=True, mask_key=b"wxyz", rsv1=True),
        ws_frame(b"\xff\xfe", masked=True, mask_key=b"1234"),  # not UTF-8: a finding
        ws_frame(b"part", fin=False, masked=True, mask_key=b"abcd"),
        ws_frame(b"rest", opcode=0, masked=True, mask_key=b"abcd"),
        ws_frame(b"\x03\xe8bye", opcode=8, masked=True, mask_key=b"abcd"),
    ])


def _feed(parser, data: bytes, take) -> list:
    """Feed `data` in 7-byte pieces, collecting events after each with `take`."""
    events = []
    for ts, start in enumerate(range(0, len(data), 7)):
        parser.receive_data(data[start:start + 7], ts)
        events += take(parser)
    parser.receive_eof(10_000)
    return events + take(parser)


def _http_parser():
    return Http1Parser(Direction.CLIENT, Role.REQUEST)


def _ws_parser(**options):
    return WebSocketParser(Direction.CLIENT, deflate=DeflateParams(), extensions_negotiated=True, **options)


def test_take_events_gives_what_next_event_gives():
    for make, data in ((_http_parser, _http_stream()), (_ws_parser, _ws_stream())):
        pulled = _feed(make(), data, _pulled)
        assert len(pulled) >= 5
        assert _feed(make(), data, lambda parser: parser.take_events()) == pulled
        # The whole stream in one chunk; one event pulled before the rest are taken.
        reference, parser = make(), make()
        reference.receive_data(data, 0)
        parser.receive_data(data, 0)
        expected = _pulled(reference)
        assert [parser.next_event(), *parser.take_events()] == expected
        assert parser.next_event() is NEED_DATA
        assert parser.take_events() == []


def test_websocket_events_go_straight_into_the_callers_list():
    data = _ws_stream()
    pulled = _feed(_ws_parser(), data, _pulled)
    sink: list = []
    parser = _ws_parser(events=sink)
    for ts, start in enumerate(range(0, len(data), 7)):
        parser.receive_data(data[start:start + 7], ts)
    parser.receive_eof(10_000)
    assert sink == pulled


def test_start_line_memo_parses_each_line_once_and_stays_bounded(monkeypatch):
    monkeypatch.setattr(http1, "_MEMO_MAX_ENTRIES", 8)
    calls = []
    lookup = http1._Memo(lambda key: calls.append(key) or key.upper()).__getitem__
    assert [lookup(b"get / http/1.1") for _ in range(3)] == [b"GET / HTTP/1.1"] * 3
    assert len(calls) == 1
    long_line = b"x" * (http1._MEMO_MAX_KEY + 1)
    lookup(long_line)
    lookup(long_line)
    assert calls.count(long_line) == 2  # too long to keep
    for index in range(20):
        lookup(b"%d" % index)
    lookup(b"19")
    assert calls.count(b"19") == 1  # still known after the memo started again
    assert calls.count(b"0") == 1
    lookup(b"0")
    assert calls.count(b"0") == 2  # forgotten when the memo started again
