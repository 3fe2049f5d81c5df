"""HTTP/1.1 parser: framing, sizes from offsets, pipelining, gaps, robustness."""

from __future__ import annotations

import gzip
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.errors import ParseError
from inspector.events import NEED_DATA, Direction, Finding, HttpRequest, HttpResponse
from inspector.parse import connection, http1, http1_body
from inspector.parse.budget import DecompressionBudget
from inspector.parse.http1 import MAX_CHUNK_SIZE_DIGITS, MAX_LENGTH_DIGITS, MAX_START_LINE_BYTES, MAX_TRAILER_BYTES, Http1Parser, Role, StartLineFinder
from tests.factories import chunked_body, chunks, http_request, http_response
from tests.parse.work import SearchCountingBuffer, assert_linear_in, lines_executed


def parse(data: bytes, role: str = Role.REQUEST, *, pieces=None, methods=(), eof=True, gap_after=None):
    direction = Direction.CLIENT if role == Role.REQUEST else Direction.SERVER
    parser = Http1Parser(direction, role)
    for method in methods:
        parser.expect_response_to(method)
    events = []
    for i, piece in enumerate(pieces if pieces is not None else [data]):
        parser.receive_data(piece, i)
        events += _drain(parser)
    if eof:
        parser.receive_eof(10_000)
        events += _drain(parser)
    return parser, events


def _drain(parser):
    out = []
    while (event := parser.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def messages(events):
    return [e for e in events if isinstance(e, (HttpRequest, HttpResponse))]


def strip_ts(events):
    """Events compared without timing, which depends on segmentation."""
    out = []
    for e in events:
        if isinstance(e, (HttpRequest, HttpResponse)):
            out.append((type(e).__name__, e.offset, e.header_bytes, e.body_wire_bytes, e.chunk_framing_bytes, e.body_bytes, e.complete, e.raw_headers, getattr(e, "method", None), getattr(e, "status", None)))
        elif isinstance(e, Finding):
            out.append(("finding", e.rule))
    return out


def every_split(data: bytes, role=Role.REQUEST, methods=()):
    """Whole, byte by byte and in random chunks: the same events each way."""
    _, whole = parse(data, role, methods=methods)
    _, bytewise = parse(data, role, pieces=chunks(data, 1), methods=methods)
    rng = random.Random(len(data))
    cuts = sorted(rng.sample(range(1, len(data)), min(5, len(data) - 1))) if len(data) > 1 else []
    bounds = [0, *cuts, len(data)]
    _, random_chunks = parse(data, role, pieces=[data[a:b] for a, b in zip(bounds, bounds[1:])], methods=methods)
    assert strip_ts(whole) == strip_ts(bytewise) == strip_ts(random_chunks)
    return whole


def test_get_request_sizes_from_offsets():
    raw = http_request("GET", "/a?b=c", headers={"Host": "x", "Accept": "*/*"})
    (request,) = messages(every_split(raw))
    assert (request.method, request.target, request.version) == ("GET", "/a?b=c", "HTTP/1.1")
    assert request.header_bytes == len(raw)
    assert request.body_wire_bytes == 0 and request.complete
    assert request.header("host") == "x"


def test_content_length_body():
    body = b'{"hello": "world"}'
    raw = http_request("POST", "/echo", headers={"Host": "x"}, body=body)
    (request,) = messages(every_split(raw))
    assert request.body_bytes == request.body_wire_bytes == len(body)
    assert request.header_bytes == len(raw) - len(body)
    assert request.body_preview == body


def test_chunked_with_extensions_and_trailers_counts_framing():
    data_chunks = [b"hello", b" ", b"world" * 50]
    body = chunked_body(data_chunks, extension=";name=value", trailers={"X-Checksum": "abc"})
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    (response,) = messages(every_split(head + body, Role.RESPONSE, methods=["GET"]))
    payload = sum(len(c) for c in data_chunks)
    assert response.body_bytes == payload
    assert response.body_wire_bytes == len(body)
    assert response.chunk_framing_bytes == len(body) - payload
    assert response.header_bytes == len(head)


def test_read_until_close_body():
    raw = http_response(200, body=b"x" * 1000, content_length=False, version="HTTP/1.0")
    parser, events = parse(raw, Role.RESPONSE, methods=["GET"])
    (response,) = messages(events)
    assert response.body_bytes == 1000 and response.complete
    assert parser.unparsed_bytes == 0


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status):
    raw = http_response(status, "X", headers={"Content-Length": "99"}) + http_response(200, body=b"ok")
    events = every_split(raw, Role.RESPONSE, methods=["GET", "GET"])
    assert [(m.status, m.body_bytes) for m in messages(events)] == [(status, 0), (200, 2)]


def test_head_response_has_no_body_despite_length():
    raw = http_response(200, headers={"Content-Length": "5000"}) + http_response(404, "Not Found", body=b"nope")
    events = every_split(raw, Role.RESPONSE, methods=["HEAD", "GET"])
    assert [(m.status, m.body_bytes) for m in messages(events)] == [(200, 0), (404, 4)]


def test_interim_100_continue_then_final_response():
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" + http_response(201, "Created", body=b"done")
    events = every_split(raw, Role.RESPONSE, methods=["POST"])
    assert [(m.status, m.body_bytes) for m in messages(events)] == [(100, 0), (201, 4)]


def test_pipelined_requests_in_one_chunk():
    raw = http_request("GET", "/one") + http_request("POST", "/two", body=b"12345") + http_request("GET", "/three")
    events = every_split(raw)
    assert [(m.method, m.target, m.body_bytes) for m in messages(events)] == [("GET", "/one", 0), ("POST", "/two", 5), ("GET", "/three", 0)]
    offsets = [m.offset for m in messages(events)]
    sizes = [m.wire_bytes for m in messages(events)]
    assert offsets == [0, sizes[0], sizes[0] + sizes[1]]
    assert sum(sizes) == len(raw)


def test_trailing_partial_message_is_incomplete_and_unparsed():
    raw = http_request("GET", "/") + b"GET /half HTTP/1.1\r\nHost"
    parser, events = parse(raw)
    assert len(messages(events)) == 1
    assert any(isinstance(e, Finding) and e.rule == "http-incomplete-message" for e in events)
    assert parser.unparsed_bytes == len(b"GET /half HTTP/1.1\r\nHost")


def test_both_transfer_encoding_and_content_length_is_a_finding():
    raw = b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_body([b"abcdef"]) + http_request("GET", "/next")
    events = every_split(raw)
    assert [m.method for m in messages(events)] == ["POST", "GET"]
    assert messages(events)[0].body_bytes == 6
    assert any(isinstance(e, Finding) and e.rule == "http-te-and-cl" for e in events)


def test_gzip_body_decompressed_size():
    plain = b"abc" * 10_000
    packed = gzip.compress(plain)
    raw = http_response(200, headers={"Content-Encoding": "gzip"}, body=packed)
    (response,) = messages(every_split(raw, Role.RESPONSE, methods=["GET"]))
    assert response.content_encoding == "gzip"
    assert response.body_bytes == len(packed)
    assert response.decompressed_bytes == len(plain)


def test_gap_inside_body_keeps_framing():
    body = b"0123456789" * 10
    raw = http_request("POST", "/", body=body) + http_request("GET", "/after")
    split = raw.index(body) + 10
    parser = Http1Parser(Direction.CLIENT, Role.REQUEST)
    parser.receive_data(raw[:split], 1)
    parser.receive_gap(30, 2)
    parser.receive_data(raw[split + 30 :], 3)
    parser.receive_eof(4)
    got = messages(_drain(parser))
    assert [m.method for m in got] == ["POST", "GET"]
    assert got[0].missing_bytes == 30 and not got[0].complete and got[0].body_bytes == 100


def test_gap_in_headers_keeps_cut_head_and_resyncs():
    first = http_request("GET", "/first", headers={"Host": "x"})
    second = http_request("GET", "/second")
    parser = Http1Parser(Direction.CLIENT, Role.REQUEST)
    parser.receive_data(first[:10], 1)
    parser.receive_gap(5, 2)
    parser.receive_data(first[15:] + second, 3)
    parser.receive_eof(4)
    events = _drain(parser)
    # The head cut by the gap is kept, incomplete; parsing resumes at /second.
    assert [(m.target, m.complete) for m in messages(events)] == [("/first", False), ("/second", True)]
    assert messages(events)[0].header_bytes == 10
    assert parser.unparsed_bytes == len(first) - 5 - 10


def test_garbage_is_skipped_until_a_request_line():
    raw = b"\x16\x03\x01garbage\r\n\r\n" + http_request("GET", "/ok")
    parser, events = parse(raw)
    assert [m.target for m in messages(events)] == ["/ok"]
    assert any(isinstance(e, Finding) and e.rule == "http-framing-error" for e in events)


def test_upgrade_request_pauses_until_told():
    raw = http_request("GET", "/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade"}) + b"\x81\x85after"
    parser, events = parse(raw, eof=False)
    assert len(messages(events)) == 1 and parser.paused
    offset, trailing = parser.take_trailing_data()
    assert trailing == b"\x81\x85after" and offset == len(raw) - len(trailing)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([Role.REQUEST, Role.RESPONSE]))
def test_arbitrary_bytes_parse_or_raise_parse_error(data, role):
    try:
        parser, events = parse(data, role, pieces=chunks(data, 7))
    except ParseError:
        return
    consumed = sum(m.wire_bytes for m in messages(events)) + parser.unparsed_bytes
    assert consumed == len(data)


@st.composite
def http_conversation(draw):
    items = []
    for _ in range(draw(st.integers(1, 4))):
        body = draw(st.binary(max_size=60))
        if draw(st.booleans()):
            items.append(http_request("POST", "/p", body=body))
        else:
            items.append(http_request("PUT", "/c", chunked=[body[:10], body[10:]]))
    return b"".join(items)


@settings(max_examples=200, deadline=None)
@given(http_conversation(), st.lists(st.integers(1, 500), max_size=8))
def test_any_segmentation_gives_the_same_events(data, cuts):
    bounds = sorted({0, len(data), *[c for c in cuts if c < len(data)]})
    pieces = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    _, whole = parse(data)
    _, split = parse(data, pieces=pieces)
    assert strip_ts(whole) == strip_ts(split)
    assert sum(m.wire_bytes for m in messages(whole)) == len(data)


def test_decompression_budget_is_shared_by_bodies_and_then_sizes_are_unknown():
    plain = b"z" * 1000
    raw = b"".join(http_response(200, headers={"Content-Encoding": "gzip"}, body=gzip.compress(plain)) for _ in range(3))
    for bodies in (3, 24):  # more bodies, no more inflating: the budget bounds the work
        budget = DecompressionBudget(2500)
        parser = Http1Parser(Direction.SERVER, Role.RESPONSE, decompression_budget=budget.for_connection(10_000))
        for _ in range(bodies):
            parser.expect_response_to("GET")
        parser.receive_data(raw * (bodies // 3), 1)
        parser.receive_eof(2)
        events = _drain(parser)
        assert [m.decompressed_bytes for m in messages(events)] == [1000, 1000] + [None] * (bodies - 2)
        findings = [e for e in events if isinstance(e, Finding)]
        assert [f.rule for f in findings] == ["http-decompression-budget"]
        assert "the capture's decompression budget (2500 bytes) is spent" in findings[0].detail
        produced = budget.limit - budget.remaining
        assert produced <= 2500 + bodies  # each body may inflate one byte past the room


# --- hostile lengths ------------------------------------------------------------


def findings(events, rule="http-framing-error"):
    return [e.detail for e in events if isinstance(e, Finding) and e.rule == rule]


@pytest.mark.parametrize("value", [
    pytest.param("\u00b2", id="superscript-two"),
    pytest.param("1\u00b9", id="superscript-one"),
    pytest.param("9" * 5000, id="5000-digits"),
    pytest.param("1" * (MAX_LENGTH_DIGITS + 1), id="one-digit-too-many"),
    pytest.param("5, 6", id="disagreeing-values"),
    pytest.param("-1", id="negative"),
    pytest.param("0x10", id="hex"),
])
def test_content_length_that_is_not_a_bounded_ascii_number_is_a_framing_error(value):
    # '\u00b2' (superscript two) passes str.isdigit(); 5,000 digits exceed Python's int-string limit.
    request = http_request("POST", "/", headers={"Content-Length": value}) + http_request("GET", "/next")
    events = every_split(request)
    assert [m.target for m in messages(events)] == ["/", "/next"]
    assert any("Content-Length" in detail for detail in findings(events))
    response = http_response(200, headers={"Content-Length": value}) + b"until close"
    (message,) = messages(every_split(response, Role.RESPONSE, methods=["GET"]))
    assert message.body_bytes == len(b"until close")


def test_content_length_leading_zeros_are_not_significant_digits():
    request = http_request("POST", "/", headers={"Content-Length": "0" * 40 + "5"}, body=b"12345")
    (message,) = messages(every_split(request))
    assert message.body_bytes == 5 and message.complete


def test_chunk_size_with_too_many_hex_digits_is_a_framing_error():
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    parser, events = parse(head + b"1" * (MAX_CHUNK_SIZE_DIGITS + 1) + b"\r\nabc", Role.RESPONSE, methods=["GET"])
    (message,) = messages(events)
    assert not message.complete and any("hex digits" in detail for detail in findings(events))
    zeros = head + b"0" * 30 + b"3\r\nabc\r\n0\r\n\r\n"
    (message,) = messages(every_split(zeros, Role.RESPONSE, methods=["GET"]))
    assert message.body_bytes == 3 and message.complete


def test_chunk_size_line_longer_than_the_limit_is_a_framing_error():
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    data = head + b"5;" + b"x" * http1.MAX_CHUNK_LINE_BYTES + b"\r\nhello\r\n0\r\n\r\n"
    events = every_split(data, Role.RESPONSE, methods=["GET"])
    assert not messages(events)[0].complete
    assert any("chunk size line" in detail for detail in findings(events))


# --- work per byte: searches remember how far they got ---------------------------------


def feed_counting(data: bytes, role=Role.REQUEST, *, piece=1, methods=(), in_sync=True):
    """Parse `data` in pieces of `piece` bytes; (events, parser, bytes searched, lines executed)."""
    parser = Http1Parser(Direction.CLIENT if role == Role.REQUEST else Direction.SERVER, role, in_sync=in_sync)
    parser._buf = SearchCountingBuffer()
    for method in methods:
        parser.expect_response_to(method)
    events = []

    def run():
        for index, part in enumerate(chunks(data, piece)):
            parser.receive_data(part, index)
            events.extend(_drain(parser))
        parser.receive_eof(len(data))
        events.extend(_drain(parser))

    lines = lines_executed(run)
    return events, parser, parser._buf.searched, lines


def test_trailers_that_never_end_are_cut_at_the_limit_in_linear_work():
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_body([b"data"])[:-2] + b"X-Trailer: "

    def run(size):
        data = head + b"a" * size
        events, parser, searched, lines = feed_counting(data, Role.RESPONSE, piece=512, methods=["GET"])
        assert findings(events) == [f"no end of trailers within {MAX_TRAILER_BYTES} bytes at offset {len(head) - len(b'X-Trailer: ')}"]
        (message,) = messages(events)
        assert not message.complete and message.body_bytes == 4
        assert message.wire_bytes + parser.unparsed_bytes == len(data)
        return searched, lines

    assert_linear_in(run, 2 * MAX_TRAILER_BYTES)


def test_headers_arriving_a_byte_at_a_time_are_searched_once():
    def run(header_lines):
        data = http_request("GET", "/", headers={f"X-{i}": "v" * 20 for i in range(header_lines)})
        events, _, searched, lines = feed_counting(data, piece=1)
        (request,) = messages(events)
        assert request.header_bytes == len(data) and request.ts_ns == 0 and request.end_ts_ns == len(data) - 1
        return searched, lines

    assert_linear_in(run, 16)


def test_blank_lines_before_a_request_are_counted_once():
    def run(size):
        data = b"\r\n" * size + http_request("GET", "/after-blank-lines")
        events, _, searched, lines = feed_counting(data, piece=1)
        (request,) = messages(events)
        assert request.header_bytes == len(data)
        return searched, lines

    assert_linear_in(run, 500)


def test_resync_over_repeated_status_code_prefixes_is_linear():
    # A response direction out of sync, fed nothing but `HTTP/1.1 200 ` (no line end):
    # no start line can be found, and none is searched for twice.
    def run(size):
        garbage = b"HTTP/1.1 200 " * size
        data = garbage + b"\r\r\n" + http_response(204, "No Content")
        events, parser, searched, lines = feed_counting(data, Role.RESPONSE, piece=4096, methods=["GET"], in_sync=False)
        assert [m.status for m in messages(events)] == [204]
        assert parser.unparsed_bytes == len(garbage) + 3
        return searched, lines

    assert_linear_in(run, 2000)


def test_resync_does_not_find_a_start_line_longer_than_the_limit():
    target = b"/" + b"a" * MAX_START_LINE_BYTES
    data = b"garbage\r\n" + b"GET " + target + b" HTTP/1.1\r\n\r\n" + http_request("GET", "/short")
    parser = Http1Parser(Direction.CLIENT, Role.REQUEST, in_sync=False)
    for index, piece in enumerate(chunks(data, 1000)):
        parser.receive_data(piece, index)
    parser.receive_eof(99)
    assert [m.target for m in messages(_drain(parser))] == ["/short"]


def test_framing_header_with_a_long_run_of_white_space():
    # `Upgrade: a`, 60,000 spaces, `x`: a pattern with adjacent unbounded repeats took 27 s on this.
    value = "a" + " " * 60_000 + "x"
    raw = http_request("GET", "/", headers={"Upgrade": value + " \t", "Connection": "Upgrade"})
    parser, events = parse(raw, eof=False)
    (request,) = messages(events)
    assert parser.paused and request.header("upgrade") == value
    assert http1._framing_headers(request.raw_headers) == {"upgrade": value}


def test_parsers_use_no_regular_expressions():
    # Every byte they look at is the sender's: patterns with unbounded repeats
    # backtrack, and searched again on every segment they are quadratic.
    for module in (http1, connection):
        assert not [name for name, value in vars(module).items() if isinstance(value, re.Pattern)], module.__name__


# --- the bytes methods match the patterns they replaced -----------------------------------
# The patterns, kept as the reference on short inputs only.

_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) +(\S+)(?: +(HTTP/\d\.\d))?\Z")
_STATUS_LINE = re.compile(rb"(HTTP/\d\.\d) +(\d{3})(?: (.*))?\Z")
_CUT_REQUEST_LINE = re.compile(rb"([A-Z]{3,12}) +(\S+)(?: +(HTTP/\d\.\d|H[HTP/0-9.]*))?")
_CUT_STATUS_LINE = re.compile(rb"(HTTP/\d\.\d) +(\d{3})(?: (.*))?")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r?\n")
_REQUEST_START = re.compile(rb"([A-Z]{3,12} [^\s]+ HTTP/1\.[01]\r?\n)")
_RESPONSE_START = re.compile(rb"(HTTP/1\.[01] \d{3}[^\r\n]*\r?\n)")
_REQUEST_AT_START = re.compile(rb"\A(?:\r?\n)*[A-Z]{3,12} \S")
_FRAMING_HEADER = re.compile(r"^(content-length|transfer-encoding|content-encoding|upgrade)[ \t]*:[ \t]*(.*?)[ \t\r]*$", re.IGNORECASE | re.MULTILINE)

_REQUEST_SLOTS = [
    [b"", b"x", b"\r", b"\x00", b"GET", b"ABCDEFGHIJKLMNOP"],
    [b"GET", b"M-SEARCH", b"AB", b"ABCDEFGHIJKL", b"ABCDEFGHIJKLM", b"get", b"\xb2"],
    [b" ", b"  ", b"\t", b""],
    [b"/", b"/a?b", b"/a\rb", b"/x\tb", b"", b"*", b"/\x0b"],
    [b" ", b"  ", b"", b"\t"],
    [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/1.", b"HTTP/1.1 ", b"", b"HTTP/1.10", b"HTP"],
    [b"\r\n", b"\n", b"\r\r\n", b"", b"\r", b" \r\n"],
]
_STATUS_SLOTS = [
    [b"", b"x", b"\r", b"HTTP/1.1 ", b"HTTP/1.1 200 "],
    [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/1"],
    [b" ", b"  ", b"", b"\t"],
    [b"200", b"20", b"2000", b"20x", b"\xb2\xb2\xb2", b"101"],
    [b" OK", b"", b" ", b"OK", b" O\rK", b"  x", b" ;"],
    [b"\r\n", b"\n", b"\r\r\n", b"", b"\r"],
]
# Lines near request and status lines, valid or broken in one place or another.
line_pieces = st.lists(
    st.one_of(*(st.tuples(*map(st.sampled_from, slots)).map(b"".join) for slots in (_REQUEST_SLOTS, _STATUS_SLOTS))),
    min_size=1, max_size=4,
).map(b"".join)
chunk_lines = st.tuples(*map(st.sampled_from, [
    [b"0", b"5", b"00a", b"fF", b"g", b"", b"\xb2"], [b"", b" ", b"\t ", b"x"], [b"", b";", b";a=b", b";\r", b"; x\t"], [b"\r\n", b"\n", b"\r\r\n", b"", b"\r"],
])).map(b"".join)
header_blocks = st.lists(st.tuples(*map(st.sampled_from, [
    ["Content-Length", "upgrade", "UPGRADE ", " upgrade", "Transfer-Encoding", "content-encoding\t", "X-Other", "Content-Length2"],
    [":", " :", ""], ["", " ", "\t "], ["5", "a b", "\xb2", "", "chunked"], ["", " ", "\r", " \t\r"],
])).map("".join), max_size=5).map("\n".join)


# Each replaced pattern, the function now doing its work, and that function's result from the pattern's groups.
_START_LINE_PARSERS = [
    (_REQUEST_LINE, http1._parse_request_line, lambda method, target, version: (method.decode(), target.decode("latin-1"), (version or b"HTTP/0.9").decode())),
    (_STATUS_LINE, http1._parse_status_line, lambda version, status, reason: (version.decode(), int(status), (reason or b"").decode("latin-1"))),
    (_CUT_REQUEST_LINE, http1._parse_cut_request_line, lambda method, target, version: (method.decode(), target.decode("latin-1"), (version or b"").decode())),
    (_CUT_STATUS_LINE, http1._parse_cut_status_line, lambda version, status, reason: (version.decode(), int(status), (reason or b"").decode("latin-1"))),
]


@settings(max_examples=300, deadline=None)
@given(line_pieces)
def test_start_line_parsers_match_the_patterns(line):
    line = line.split(b"\n")[0]  # a start line never holds a LF
    for pattern, function, result in _START_LINE_PARSERS:
        match = pattern.match(line)
        assert function(line) == (None if match is None else result(*match.groups())), function.__name__
    assert http1.looks_like_message_start(line, Role.REQUEST) == bool(_REQUEST_AT_START.match(line))


@settings(max_examples=300, deadline=None)
@given(chunk_lines)
def test_chunk_size_line_matches_the_pattern(line):
    newline = line.find(b"\n")
    match = _CHUNK_SIZE.match(line)
    got = http1_body.chunk_size_digits(line[:newline]) if newline >= 0 else None
    assert got == (match.group(1) if match else None)


@settings(max_examples=300, deadline=None)
@given(header_blocks)
def test_framing_headers_match_the_pattern(text):
    expected: dict[str, str] = {}
    for name, value in _FRAMING_HEADER.findall(text):
        name = name.lower()
        expected[name] = f"{expected[name]}, {value}" if name in expected else value
    assert http1._framing_headers(text) == expected


@settings(max_examples=300, deadline=None)
@given(line_pieces, st.sampled_from([Role.REQUEST, Role.RESPONSE]), st.integers(1, 9))
def test_start_line_finder_matches_the_pattern(data, role, piece):
    # Fed in pieces, dropping what the caller may drop: the same first start line.
    pattern = _REQUEST_START if role == Role.REQUEST else _RESPONSE_START
    match = pattern.search(data)
    finder = StartLineFinder(role)
    base, buf, found = 0, b"", -1
    for part in chunks(data, piece):
        buf += part
        found = finder.find(buf, base)
        if found >= 0:
            break
        drop = finder.keep_from(buf, base)
        base, buf = base + drop, buf[drop:]
    assert (base + found if found >= 0 else None) == (match.start(1) if match else None)


def test_requests_and_responses_share_their_fields_order():
    # The parser builds both events with one positional call: only the start line's fields differ.
    from dataclasses import fields

    request, response = ([f.name for f in fields(cls)] for cls in (HttpRequest, HttpResponse))
    assert request[4:7] == ["method", "target", "version"] and response[4:7] == ["version", "status", "reason"]
    assert request[:4] + request[7:] == response[:4] + response[7:]


def test_a_corrupt_body_spends_the_same_budget_however_it_is_split():
    # zlib drops the output of the decompress call that fails: a corrupt body
    # inflated in one call produces nothing, the same body in pieces what the
    # earlier pieces gave.  Neither may count (inspector.parse.budget).
    packed = gzip.compress(bytes(range(256)) * 8)
    corrupt = packed[:len(packed) // 2] + b"\xff" * 8 + packed[len(packed) // 2:]
    raw = http_response(200, headers={"Content-Encoding": "gzip"}, body=corrupt)
    left = set()
    for cut in range(len(raw) + 1):
        budget = DecompressionBudget(100_000)
        parser = Http1Parser(Direction.SERVER, Role.RESPONSE, decompression_budget=budget.for_connection(50_000))
        parser.expect_response_to("GET")
        parser.receive_data(raw[:cut], 1)
        parser.receive_data(raw[cut:], 2)
        parser.receive_eof(3)
        assert [m.decompressed_bytes for m in messages(_drain(parser))] == [None]
        left.add(budget.room())
    assert left == {100_000}
