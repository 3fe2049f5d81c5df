"""analysis/texts.py: the text columns taken as rows are written are each value's text."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from inspector.analysis.rows import ShardRows
from inspector.analysis.sinks import MISSING
from inspector.analysis.texts import (FRAME_PREVIEW_TEXT_CHARS, MAX_HEADER_VALUE_CHARS, PREVIEW_HEX_BYTES, PREVIEW_TEXT_CHARS, capped_header_lines,
                                      decoded_head, payload_text)
from inspector.events import Direction, HttpRequest, HttpResponse, WsFrame, WsMessage

# Pieces whose joins put every kind of UTF-8 trouble at a cut: characters of 1 to 4
# bytes, sequences cut short, stray continuation bytes, bytes that never start one,
# overlong forms and surrogates.
PIECES = [b"a", b" ", "\u00e9".encode(), "\u20ac".encode(), "\U0001f600".encode(), b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98",
          b"\x80", b"\xbf", b"\xff", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]
troubled = st.lists(st.sampled_from(PIECES), max_size=120).map(b"".join)
payloads = troubled | st.binary(max_size=400) | st.text(max_size=300).map(str.encode)


def reference_text(data: bytes, limit: int) -> str:
    """What a preview is, by definition: the first `limit` characters of the data decoded,
    bad bytes replaced (a character is at most 4 bytes)."""
    return data[: limit * 4].decode("utf-8", errors="replace")[:limit]


@given(troubled, st.integers(min_value=0, max_value=60))
@example("aaa\u20acb".encode(), 4)  # the cut (5 bytes) ends in the euro sign: 4 characters, the last one wrong
def test_a_head_decoded_from_a_shorter_cut_is_the_texts_head(data, limit):
    assert decoded_head(data, limit) == reference_text(data, limit)


@given(payloads, st.sampled_from([0, 1, 2, 3, 7, FRAME_PREVIEW_TEXT_CHARS, PREVIEW_TEXT_CHARS]))
def test_payload_text_is_the_reference_text(data, limit):
    assert payload_text(data, limit) == reference_text(data, limit)


def test_characters_cut_at_the_limit_are_whole_or_not_there():
    euro = "\u20ac".encode()
    assert payload_text(b"a" * 79 + euro * 3, FRAME_PREVIEW_TEXT_CHARS) == "a" * 79 + "\u20ac"
    assert payload_text(b"a" * 80 + euro, FRAME_PREVIEW_TEXT_CHARS) == "a" * 80
    # The limit's last character is a sequence cut short by the payload's end: one U+FFFD.
    assert payload_text(b"a" * 79 + euro[:2], FRAME_PREVIEW_TEXT_CHARS) == "a" * 79 + "\ufffd"
    # Bytes that are not text at all (a compressed payload): a character a byte.
    assert payload_text(bytes(range(128, 256)) * 2, FRAME_PREVIEW_TEXT_CHARS) == "\ufffd" * 80


def frame(payload: bytes, opcode: int = 1, mask_key: bytes = b"", close_reason: str = "") -> WsFrame:
    return WsFrame(Direction.CLIENT, 0, 0, True, False, False, False, opcode, bool(mask_key), mask_key, len(payload), 2, 0,
                   payload, False, 1000 if opcode == 8 else None, close_reason)


def message(payload: bytes, opcode: int = 1) -> WsMessage:
    return WsMessage(Direction.SERVER, 0, 0, 0, 0, opcode, 1, 2, len(payload), len(payload), False, None, True, payload, False)


def request(method: str, target: str, body: bytes, version: str = "HTTP/1.1", encoding: str = "", headers: str = "") -> HttpRequest:
    return HttpRequest(Direction.CLIENT, 0, 0, 0, method, target, version, headers, 0, len(body), 0, len(body), 0, encoding, None, True, body)


def response(status: int, reason: str, body: bytes, version: str = "HTTP/1.1", encoding: str = "", headers: str = "") -> HttpResponse:
    return HttpResponse(Direction.SERVER, 0, 0, 0, version, status, reason, headers, 0, len(body), 0, len(body), 0, encoding, None, True, body)


def write(sinks: ShardRows, table: str, event, flush: bool, **numbers) -> None:
    """Write the event's row as the rows' writer does: its numbers packed, its texts held."""
    sink = getattr(sinks, table)
    sink.rows += sink.pack(*[numbers.get(column, 0) for column in sink.packed])
    if table == "ws_frames":
        sink.column("message_id").append(MISSING)
    if table == "ws_messages":
        sinks.hold_message_payload(event.payload)  # a message's texts come from its payload
    else:
        {"ws_frames": sinks.hold_frame, "http_messages": sinks.hold_http_message}[table](event)
    if flush:
        sink.flush()


MASK_KEYS = st.sampled_from([b"", b"\x00\x01\x02\x03", b"\xff\xfe\xfd\xfc"])
frames = st.builds(frame, payloads, st.sampled_from([0, 1, 2, 8, 9, 10]), MASK_KEYS, st.sampled_from(["", "bye", "\u00e9t\u00e9"]))


@given(st.lists(st.tuples(frames, st.booleans()), max_size=12))
@example([(frame(b""), False), (frame(b"\xff\xfe", 2, b"\x00\x01\x02\x03"), True), (frame(b"", 8, b"\xff\xfe\xfd\xfc", "bye"), False),
          (frame("\u20ac".encode() * 100), False), (frame(b"x" * 300, 9), False)])
def test_frame_texts_are_each_frames_own(written):
    """Whatever the payloads, the chunks (a True flushes after the row) and the mask keys."""
    sinks = ShardRows()
    for event, flush in written:
        write(sinks, "ws_frames", event, flush, opcode=event.opcode, masked=event.masked)
    table = sinks.ws_frames.table()
    events = [event for event, _flush in written]
    assert list(table["payload_text"]) == [payload_text(event.payload, FRAME_PREVIEW_TEXT_CHARS) for event in events]
    assert list(table["payload_hex"]) == [event.payload[:PREVIEW_HEX_BYTES].hex(" ") for event in events]
    assert list(table["mask_key"]) == [event.mask_key.hex() for event in events]
    assert [None if value != value else value for value in table["close_reason"]] == [
        event.close_reason if event.opcode == 8 else None for event in events]
    assert all(str(table[column].dtype) == "str" for column in ("payload_text", "payload_hex", "mask_key", "close_reason"))


@given(st.lists(st.tuples(payloads, st.sampled_from([1, 2]), st.booleans()), max_size=12))
@example([(b"", 1, False), (b"\xff" * 900, 2, False), ("\U0001f600".encode() * 300, 1, True), (b"plain", 2, False)])
def test_message_texts_are_each_messages_own(written):
    """The text preview of every message; the hex of a binary one's first bytes."""
    sinks = ShardRows()
    for payload, opcode, flush in written:
        write(sinks, "ws_messages", message(payload, opcode), flush, opcode=opcode)
    table = sinks.ws_messages.table()
    assert list(table["payload_text"]) == [payload_text(payload, PREVIEW_TEXT_CHARS) for payload, _opcode, _flush in written]
    assert missing_as_none(table["payload_hex"]) == [payload[:PREVIEW_TEXT_CHARS].hex() if opcode == 2 else None
                                                     for payload, opcode, _flush in written]


header_blocks = st.sampled_from(["", "Host: a\r\nAccept: */*", "x-long: " + "v" * (MAX_HEADER_VALUE_CHARS + 5) + "\r\nb: c\r\n",
                                 "\x00\x1b: \xff\x7f\r\nno colon", "a: b\nc:" + "\u00e9" * 9000])
http_messages = (st.builds(request, st.sampled_from(["GET", "POST", "\u00e9"]), st.sampled_from(["/", "/a?b=c", ""]), payloads,
                           st.sampled_from(["HTTP/1.1", "HTTP/1.0"]), st.sampled_from(["", "gzip"]), header_blocks)
                 | st.builds(response, st.sampled_from([101, 200, 404]), st.sampled_from(["OK", "", "Not Found"]), payloads,
                             st.sampled_from(["HTTP/1.1", "HTTP/1.0"]), st.sampled_from(["", "gzip"]), header_blocks))


def missing_as_none(column) -> list:
    return [None if value != value else value for value in column]


@given(st.lists(st.tuples(http_messages, st.booleans()), max_size=12))
@example([(request("GET", "/", b""), False), (response(200, "OK", b"\xc3"), True), (request("GET", "/a?b=c", b"{}"), False),
          (response(404, "Not Found", b"x" * 300, "HTTP/1.0", "gzip"), False)])
def test_http_texts_are_each_messages_own(written):
    """A combination of repeated fields seen in one chunk is coded anew in the next."""
    sinks = ShardRows()
    for event, flush in written:
        write(sinks, "http_messages", event, flush, status=MISSING if type(event) is HttpRequest else event.status)
    table = sinks.http_messages.table()
    events = [event for event, _flush in written]
    requests = [type(event) is HttpRequest for event in events]
    assert missing_as_none(table["method"]) == [event.method if is_request else None for event, is_request in zip(events, requests)]
    assert missing_as_none(table["target"]) == [event.target if is_request else None for event, is_request in zip(events, requests)]
    assert missing_as_none(table["reason"]) == [None if is_request else event.reason for event, is_request in zip(events, requests)]
    assert list(table["version"]) == [event.version for event in events]
    assert list(table["content_encoding"]) == [event.content_encoding for event in events]
    assert list(table["body_text"]) == [payload_text(event.body_preview, PREVIEW_TEXT_CHARS) for event in events]
    assert list(table["headers"]) == [capped_header_lines(event.raw_headers) for event in events]


def test_header_values_are_capped_and_the_lines_kept():
    long = "v" * (MAX_HEADER_VALUE_CHARS + 1)
    assert capped_header_lines("A: b\r\nB:" + long + "\r\nC: d") == "A: b\r\nB:" + long[:MAX_HEADER_VALUE_CHARS] + "\r\nC: d"
    assert capped_header_lines(long + "\nx: y\n") == long[:MAX_HEADER_VALUE_CHARS] + "\nx: y\n"
    short = "A: b\r\nC: d\r\n"
    assert capped_header_lines(short) is short
    assert capped_header_lines("A: " + "\u00e9" * 10, limit=4) == "A: \u00e9\u00e9\u00e9"
