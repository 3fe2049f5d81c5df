"""The HTTP/2 parser on hand-built frames (tests/h2_factories.py): messages, header blocks across
CONTINUATION, padding, SETTINGS and the HPACK table size, RST_STREAM, GOAWAY, gaps, hostile
lengths; and its detection and h2c upgrade in a TcpConnection."""

from __future__ import annotations

import gc
import tracemalloc
import weakref

import hpack
from hypothesis import given, settings as hypothesis_settings, strategies as st

from inspector.errors import ParseError
from inspector.events import Direction, Finding, Http2Frame, Http2Preface, HttpRequest, HttpResponse
from inspector.parse.connection import Kind, TcpConnection
from inspector.parse.http2 import (CLIENT_PREFACE, MAX_HEADER_BLOCK_BYTES, MAX_RESYNC_BYTES, FrameChain, Http2Parser, Http2Session,
                                   find_frame_chain, settings_from_upgrade, starts_with_preface)
from inspector.parse.tcp import TCP_ACK
from tests import h2_factories as h2
from tests.h2_factories import REQUEST, RESPONSE

CLIENT, SERVER = Direction.CLIENT, Direction.SERVER


def parse(wire: bytes, direction: Direction = CLIENT, session: Http2Session | None = None, step: int | None = None) -> tuple[list, Http2Parser]:
    parser = Http2Parser(direction, session)
    step = step or len(wire) or 1
    for start in range(0, len(wire), step):
        parser.receive_data(wire[start:start + step], start)
    parser.receive_eof(len(wire))
    return parser.take_events(), parser


def of(events: list, kind) -> list:
    return [event for event in events if type(event) is kind]


def rules(events: list) -> list[str]:
    return [event.rule for event in of(events, Finding)]


def accounted(events: list, parser: Http2Parser) -> int:
    """Bytes the events and the parser's unparsed count stand for: all that was fed, gaps included."""
    return (sum(e.length for e in of(events, Http2Preface)) + sum(e.wire_bytes for e in of(events, Http2Frame))
            + parser.unparsed_bytes)


def split_parts(frame: Http2Frame) -> int:
    return frame.header_block_bytes + frame.padding_bytes + frame.data_bytes + frame.control_bytes + frame.missing_bytes


def request_wire(encoder: hpack.Encoder | None = None, body: bytes = b"") -> bytes:
    encoder = encoder or hpack.Encoder()
    if not body:
        return h2.client_start() + h2.headers(1, encoder.encode(REQUEST), "END_HEADERS", "END_STREAM")
    return h2.client_start() + h2.headers(1, encoder.encode(REQUEST), "END_HEADERS") + h2.data(1, body, "END_STREAM")


def test_a_request_and_its_sizes():
    block = hpack.Encoder().encode(REQUEST)
    wire = h2.client_start() + h2.headers(1, block, "END_HEADERS") + h2.data(1, b"x" * 100) + h2.data(1, b"y" * 50, "END_STREAM")
    events, parser = parse(wire)
    assert not rules(events)
    (request,) = of(events, HttpRequest)
    assert (request.method, request.target, request.version, request.stream_id) == ("GET", "/items?page=2", "HTTP/2", 1)
    assert request.header_bytes == len(block) and request.body_bytes == 150
    assert request.body_wire_bytes == 9 + 100 + 9 + 50 and request.chunk_framing_bytes == 18 and request.complete
    assert request.body_preview == b"x" * 100 + b"y" * 50
    assert request.header("host") == "example.test" and request.header("accept") == "application/json"
    # As HTTP/1.1: "GET /items?page=2 HTTP/1.1\r\n", Host from :authority, the other fields, the blank line.
    assert request.http1_header_bytes == len(b"GET /items?page=2 HTTP/1.1\r\nhost: example.test\r\nuser-agent: factory/1.0\r\n"
                                             b"accept: application/json\r\n\r\n")
    assert [e.frame_type for e in of(events, Http2Frame)] == [4, 1, 0, 0]
    assert all(split_parts(frame) == frame.length for frame in of(events, Http2Frame))
    assert accounted(events, parser) == len(wire)


def test_same_events_whatever_the_segmentation():
    encoder = hpack.Encoder()
    wire = request_wire(encoder, b"body" * 300)
    whole, _ = parse(wire)
    for step in (1, 7, 9, 100):
        events, parser = parse(wire, step=step)
        assert [(type(e), getattr(e, "offset", None), getattr(e, "length", None)) for e in events] == [
            (type(e), getattr(e, "offset", None), getattr(e, "length", None)) for e in whole]
        assert of(events, HttpRequest)[0].body_bytes == 1200 and accounted(events, parser) == len(wire)


def test_continuation_makes_one_header_block():
    block = hpack.Encoder().encode(REQUEST + [("x-long", "v" * 300)])
    wire = (h2.client_start() + h2.headers(1, block[:10], "END_STREAM") + h2.continuation(1, block[10:200])
            + h2.continuation(1, block[200:], "END_HEADERS"))
    events, parser = parse(wire)
    assert not rules(events)
    (request,) = of(events, HttpRequest)
    assert request.header_bytes == len(block) and request.header("x-long") == "v" * 300 and request.complete
    assert sum(f.header_block_bytes for f in of(events, Http2Frame)) == len(block)


def test_a_frame_between_header_block_fragments_is_a_protocol_error_and_breaks_hpack():
    encoder = hpack.Encoder()
    block = encoder.encode(REQUEST)
    wire = (h2.client_start() + h2.headers(1, block[:5]) + h2.ping() + h2.continuation(1, block[5:], "END_HEADERS")
            + h2.headers(3, encoder.encode(REQUEST), "END_HEADERS", "END_STREAM"))
    events, parser = parse(wire)
    assert rules(events)[:2] == ["h2-protocol-error", "h2-hpack-desync"]
    assert "h2-headers-undecodable" in rules(events)
    assert accounted(events, parser) == len(wire)


def test_padding_and_priority_are_counted_apart():
    block = hpack.Encoder().encode(REQUEST)
    wire = (h2.client_start() + h2.headers(1, block, "END_HEADERS", pad_length=7, depends_on=0)
            + h2.data(1, b"d" * 20, "END_STREAM", pad_length=30))
    events, _ = parse(wire)
    headers_frame, data_frame = of(events, Http2Frame)[1:]
    assert (headers_frame.header_block_bytes, headers_frame.padding_bytes, headers_frame.control_bytes) == (len(block), 8, 5)
    assert (data_frame.data_bytes, data_frame.padding_bytes) == (20, 31)
    (request,) = of(events, HttpRequest)
    assert request.body_bytes == 20 and request.chunk_framing_bytes == 9 + 31 and request.header_bytes == len(block)


def test_padding_longer_than_the_frame_is_a_protocol_error():
    wire = request_wire()[:-0 or None] + h2.raw_frame(0, 0x8, 1, bytes([200]) + b"abc")
    events, parser = parse(wire)
    assert "h2-protocol-error" in rules(events) and accounted(events, parser) == len(wire)


def test_interim_response_then_final_then_trailers():
    encoder = hpack.Encoder()
    wire = (h2.settings() + h2.headers(1, encoder.encode([(":status", "103"), ("link", "</a.css>")]), "END_HEADERS")
            + h2.headers(1, encoder.encode(RESPONSE), "END_HEADERS") + h2.data(1, b"ok")
            + h2.headers(1, encoder.encode([("grpc-status", "0")]), "END_HEADERS", "END_STREAM"))
    events, _ = parse(wire, SERVER)
    interim, final = of(events, HttpResponse)
    assert (interim.status, interim.stream_id, interim.complete) == (103, 1, True)
    assert (final.status, final.body_bytes, final.complete) == (200, 2, True)
    assert final.http1_header_bytes == len("HTTP/1.1 200 OK\r\n\r\n") + sum(len(n) + len(v) + 4 for n, v in RESPONSE[1:]) + len("grpc-status: 0\r\n")


def test_hpack_table_size_follows_the_other_sides_settings_once_acknowledged():
    """The server advertises a 64 KiB table; the client may grow its encoder's table to it only
    after acknowledging (its ACK is in its own stream, before the blocks that use it)."""
    session = Http2Session()
    server = Http2Parser(SERVER, session)
    client = Http2Parser(CLIENT, session)
    server.receive_data(h2.settings(header_table_size=65536), 1)
    encoder = hpack.Encoder()
    encoder.header_table_size = 65536  # the encoder announces the new size in its next block
    big = [("x-big-%d" % n, "v" * 1000) for n in range(10)]  # 10 KB of fields: over the default 4096
    client.receive_data(h2.client_start() + h2.settings(ack=True) + h2.headers(1, encoder.encode(REQUEST + big), "END_HEADERS", "END_STREAM"), 2)
    client.receive_eof(3)
    events = client.take_events()
    assert not rules(events) and of(events, HttpRequest)[0].header("x-big-9") == "v" * 1000
    assert session.table_size_limit[CLIENT] == 65536 and session.table_size_limit[SERVER] == 4096


def test_hpack_table_over_the_limit_is_a_finding_and_decoding_goes_on():
    # The same blocks without the ACK: the client's table outgrows what was agreed.
    session = Http2Session()
    Http2Parser(SERVER, session).receive_data(h2.settings(header_table_size=65536), 1)
    encoder = hpack.Encoder()
    encoder.header_table_size = 65536
    big = [("x-big-%d" % n, "v" * 1000) for n in range(10)]
    wire = h2.client_start() + h2.headers(1, encoder.encode(REQUEST + big), "END_HEADERS", "END_STREAM")
    wire += h2.headers(3, encoder.encode(REQUEST + big), "END_HEADERS", "END_STREAM")
    events, _ = parse(wire, CLIENT, session)
    assert rules(events) == ["h2-hpack-table-size"]
    assert [r.header("x-big-0") for r in of(events, HttpRequest)] == ["v" * 1000] * 2


def test_a_table_size_cut_applies_to_the_other_direction_only():
    """The client advertises HEADER_TABLE_SIZE 0: the server's encoder must empty its table (a size
    update) once it acknowledges; the client's own encoder keeps its 4096."""
    session = Http2Session()
    client, server = Http2Parser(CLIENT, session), Http2Parser(SERVER, session)
    client.receive_data(CLIENT_PREFACE + h2.settings(header_table_size=0), 1)
    server_encoder = hpack.Encoder()
    server.receive_data(h2.settings() + h2.headers(1, server_encoder.encode(RESPONSE), "END_HEADERS", "END_STREAM"), 2)  # before its ACK
    server.receive_data(h2.settings(ack=True), 3)
    server.receive_data(h2.headers(3, server_encoder.encode(RESPONSE), "END_HEADERS", "END_STREAM"), 4)  # table still 4096
    events = server.take_events()
    assert rules(events) == ["h2-hpack-table-size"] and "0 the peer" in of(events, Finding)[0].detail
    assert session.table_size_limit == [DEFAULT_TABLE, 0]
    server_encoder.header_table_size = 0
    server.receive_data(h2.headers(5, server_encoder.encode(RESPONSE), "END_HEADERS", "END_STREAM"), 5)
    assert not rules(server.take_events())
    client_encoder = hpack.Encoder()
    client.receive_data(h2.headers(1, client_encoder.encode(REQUEST), "END_HEADERS", "END_STREAM"), 6)
    client.receive_data(h2.headers(3, client_encoder.encode(REQUEST), "END_HEADERS", "END_STREAM"), 7)
    assert not rules(client.take_events())


DEFAULT_TABLE = 4096


def test_an_ack_seen_before_its_settings_is_applied_when_they_come():
    session = Http2Session()
    session.settings_acknowledged(CLIENT)
    assert session.table_size_limit[CLIENT] == DEFAULT_TABLE
    session.settings_sent(SERVER, {1: 100, 5: 32768})
    assert session.table_size_limit[CLIENT] == 100 and session.max_frame_size[CLIENT] == 32768


def test_rst_stream_ends_the_response_mid_body_and_later_data_is_no_error():
    session = Http2Session()
    client, server = Http2Parser(CLIENT, session), Http2Parser(SERVER, session)
    client.receive_data(request_wire(), 1)
    server.receive_data(h2.settings() + h2.headers(1, hpack.Encoder().encode(RESPONSE), "END_HEADERS") + h2.data(1, b"a" * 1000), 2)
    client.receive_data(h2.rst_stream(1), 3)
    server.receive_data(h2.data(1, b"b" * 1000), 4)  # in flight when the RST came
    server.receive_eof(5)
    events = server.take_events()
    (response,) = of(events, HttpResponse)
    assert not response.complete and response.body_bytes == 1000 and not rules(events)


def test_a_sessions_parsers_make_no_reference_cycle():
    """The analysis pauses the cycle collector: parsers sharing a session must be freed by reference counting."""
    gc.collect()
    gc.disable()
    try:
        session = Http2Session()
        client, server = Http2Parser(CLIENT, session), Http2Parser(SERVER, session)
        client.receive_data(request_wire(), 1)
        client.receive_data(h2.rst_stream(1), 2)
        freed = weakref.ref(client), weakref.ref(server)
        del session, client, server
        assert [ref() for ref in freed] == [None, None]
    finally:
        gc.enable()


def test_goaway_with_an_error_is_a_finding():
    events, _ = parse(h2.settings() + h2.goaway(0, 2, b"internal trouble") + h2.goaway(0), SERVER)
    assert rules(events) == ["h2-goaway-error"] and "INTERNAL_ERROR" in of(events, Finding)[0].detail


def test_frames_on_the_wrong_stream_and_of_the_wrong_size_are_findings():
    wire = (h2.client_start() + h2.raw_frame(0, 0x1, 0, b"data on 0") + h2.raw_frame(4, 0, 3, b"")
            + h2.raw_frame(6, 0, 0, b"1234567") + h2.raw_frame(8, 0, 0, b"12345") + h2.window_update(0, 1000))
    events, parser = parse(wire)
    assert rules(events) == ["h2-protocol-error", "h2-protocol-error", "h2-frame-size-error", "h2-frame-size-error"]
    assert accounted(events, parser) == len(wire) and len(of(events, Http2Frame)) == 6


def test_a_frame_over_the_max_frame_size_is_a_finding_and_framing_goes_on():
    wire = request_wire() + h2.raw_frame(0xFA, 0, 0, b"z" * 20_000) + h2.ping()
    events, parser = parse(wire)
    assert rules(events) == ["h2-frame-size-error"] and of(events, Http2Frame)[-1].frame_type == 6
    assert accounted(events, parser) == len(wire)


def test_a_gap_in_a_header_block_breaks_hpack_for_that_direction_only():
    encoder = hpack.Encoder()
    first = h2.headers(1, encoder.encode(REQUEST), "END_HEADERS", "END_STREAM")
    second = h2.headers(3, encoder.encode(REQUEST), "END_HEADERS", "END_STREAM")
    parser = Http2Parser(CLIENT)
    start = h2.client_start()
    parser.receive_data(start + first[:12], 1)
    parser.receive_gap(len(first) - 12 - 3, 2)
    parser.receive_data(first[-3:] + second, 3)
    parser.receive_eof(4)
    events = parser.take_events()
    assert rules(events) == ["h2-hpack-desync", "h2-headers-undecodable", "h2-headers-undecodable"]
    requests = of(events, HttpRequest)
    assert [r.stream_id for r in requests] == [1, 3] and all(not r.complete and r.method == "" for r in requests)
    assert [r.http1_header_bytes for r in requests] == [None, None] and requests[1].header_bytes == len(second) - 9
    assert accounted(events, parser) == len(start) + len(first) + len(second)


def test_a_gap_in_data_keeps_framing_and_hpack():
    encoder = hpack.Encoder()
    body = h2.data(1, b"q" * 500, "END_STREAM")
    wire_start = h2.client_start() + h2.headers(1, encoder.encode(REQUEST), "END_HEADERS")
    parser = Http2Parser(CLIENT)
    parser.receive_data(wire_start + body[:100], 1)
    parser.receive_gap(200, 2)
    rest = body[300:] + h2.headers(3, encoder.encode(REQUEST), "END_HEADERS", "END_STREAM")
    parser.receive_data(rest, 3)
    parser.receive_eof(4)
    events = parser.take_events()
    assert not rules(events)
    first, second = of(events, HttpRequest)
    assert (first.body_bytes, first.missing_bytes, first.complete) == (500, 200, False)
    assert second.method == "GET" and second.complete
    assert accounted(events, parser) == len(wire_start) + len(body) + len(rest) - len(body[300:])


def test_a_gap_between_frames_is_resynchronised_and_later_blocks_are_undecodable():
    server_encoder = hpack.Encoder()
    start = h2.settings() + h2.headers(1, server_encoder.encode(RESPONSE), "END_HEADERS") + h2.data(1, b"a" * 300)
    lost = h2.data(1, b"b" * 300) + h2.headers(3, server_encoder.encode(RESPONSE), "END_HEADERS", "END_STREAM") + h2.data(1, b"x" * 200)
    after = h2.data(1, b"c" * 300, "END_STREAM") + h2.headers(5, server_encoder.encode(RESPONSE), "END_HEADERS", "END_STREAM")
    for step in (len(after), 7):
        parser = Http2Parser(SERVER)
        parser.receive_data(start, 1)
        parser.receive_gap(len(lost) - 50, 2)  # the lost frames, but for the last 50 bytes of the last one
        wire = lost[-50:] + after
        for at in range(0, len(wire), step):
            parser.receive_data(wire[at:at + step], 3)
        parser.receive_eof(4)
        events = parser.take_events()
        assert rules(events) == ["h2-hpack-desync", "h2-resync", "h2-headers-undecodable"]
        assert parser.unparsed_bytes == len(lost)  # the gap and the end of the frame it cut
        responses = of(events, HttpResponse)
        assert [(r.stream_id, r.status, r.complete) for r in responses] == [(1, 200, False), (5, None, False)]
        assert responses[0].body_bytes == 600 and responses[0].body_preview == b"a" * 300 + b"c" * 300
        assert accounted(events, parser) == len(start) + len(lost) + len(after)


def test_a_frame_found_at_the_very_end_after_a_gap():
    parser = Http2Parser(CLIENT)
    parser.receive_data(request_wire(), 1)
    parser.receive_gap(50, 2)
    parser.receive_data(b"\xff" * 20 + h2.ping(), 3)
    parser.receive_eof(4)
    events = parser.take_events()
    assert rules(events) == ["h2-hpack-desync", "h2-resync"] and of(events, Http2Frame)[-1].frame_type == 6
    assert parser.unparsed_bytes == 50 + 20


def test_a_gap_with_no_frame_after_it_loses_sync():
    parser = Http2Parser(CLIENT)
    parser.receive_data(request_wire(), 1)
    parser.receive_gap(50, 2)
    parser.receive_data(b"\xff" * 70_000, 3)
    parser.receive_eof(4)
    events = parser.take_events()
    assert rules(events) == ["h2-hpack-desync", "h2-lost-sync"] and parser.unparsed_bytes == 50 + 70_000


def test_a_16_mib_frame_the_capture_does_not_hold_costs_nothing():
    tracemalloc.start()
    try:
        parser = Http2Parser(CLIENT)
        parser.receive_data(request_wire() + h2.raw_frame(1, 0x4, 3, b"", length=(1 << 24) - 1), 1)
        for n in range(40):  # 4 MB of it, then the capture ends
            parser.receive_data(b"\x00" * 100_000, 2 + n)
        parser.receive_eof(99)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    events = parser.take_events()
    assert peak < 2_000_000
    assert rules(events)[:1] == ["h2-frame-size-error"] and "h2-truncated-frame" in rules(events)
    assert accounted(events, parser) == len(request_wire()) + 9 + 4_000_000


def test_a_continuation_flood_is_bounded_and_breaks_hpack():
    parser = Http2Parser(CLIENT)
    encoder = hpack.Encoder()
    parser.receive_data(h2.client_start() + h2.headers(1, encoder.encode(REQUEST)), 1)
    flood = h2.continuation(1, b"\x00" * 16_000)
    tracemalloc.start()
    try:
        for n in range(200):  # 3.2 MB of fragments, never END_HEADERS
            parser.receive_data(flood, 2 + n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    parser.receive_data(h2.continuation(1, b"", "END_HEADERS") + h2.headers(3, encoder.encode(REQUEST), "END_HEADERS", "END_STREAM"), 999)
    parser.receive_eof(1000)
    events = parser.take_events()
    assert peak < MAX_HEADER_BLOCK_BYTES + 1_000_000
    assert rules(events)[:2] == ["h2-header-block-limit", "h2-hpack-desync"]
    # Stream 3 ends with its headers; stream 1, which had no END_STREAM, with the capture.
    assert [r.stream_id for r in of(events, HttpRequest)] == [3, 1]


PUSHED = [(":method", "GET"), (":path", "/style.css"), (":scheme", "http"), (":authority", "a")]


def test_push_promise_is_a_request_on_the_promised_stream_paired_with_the_pushed_response():
    encoder = hpack.Encoder()
    promised = encoder.encode(PUSHED)
    wire = (h2.settings() + h2.push_promise(1, 2, promised)
            + h2.headers(1, encoder.encode(RESPONSE), "END_HEADERS", "END_STREAM")
            + h2.headers(2, encoder.encode(RESPONSE), "END_HEADERS") + h2.data(2, b"body{}", "END_STREAM"))
    events, parser = parse(wire, SERVER)
    assert not rules(events) and accounted(events, parser) == len(wire)
    (request,) = of(events, HttpRequest)
    assert (request.direction, request.stream_id, request.method, request.target, request.version) == (SERVER, 2, "GET", "/style.css", "HTTP/2")
    assert request.header_bytes == len(promised) and request.body_bytes == 0 and request.complete
    assert request.http1_header_bytes == len("GET /style.css HTTP/1.1\r\nhost: a\r\n\r\n")
    assert [(r.stream_id, r.body_bytes) for r in of(events, HttpResponse)] == [(1, 0), (2, 6)]
    frames = of(events, Http2Frame)
    promise = frames[1]
    assert promise.control_bytes == 4 and promise.header_block_bytes == promise.length - 4
    assert [f.promised_stream_id for f in frames] == [0, 2, 0, 0, 0]


def test_a_promise_across_continuation_carries_its_stream_on_every_fragment():
    from hyperframe.frame import PushPromiseFrame

    encoder = hpack.Encoder()
    block = encoder.encode(PUSHED)
    wire = (PushPromiseFrame(3, promised_stream_id=4, data=block[:5]).serialize() + h2.continuation(3, block[5:], "END_HEADERS")
            + h2.headers(4, encoder.encode(RESPONSE), "END_HEADERS", "END_STREAM"))
    events, _ = parse(wire, SERVER)
    assert not rules(events)
    assert [(f.stream_id, f.promised_stream_id) for f in of(events, Http2Frame)] == [(3, 4), (3, 4), (4, 0)]
    (request,) = of(events, HttpRequest)
    assert (request.stream_id, request.target, request.header_bytes) == (4, "/style.css", len(block))


def test_frames_a_side_sends_after_its_own_rst_stream_are_findings_the_others_in_flight_are_not():
    session = Http2Session()
    client, server = Http2Parser(CLIENT, session), Http2Parser(SERVER, session)
    client_encoder, server_encoder = hpack.Encoder(), hpack.Encoder()
    client.receive_data(request_wire(client_encoder), 1)
    server.receive_data(h2.settings() + h2.headers(1, server_encoder.encode(RESPONSE), "END_HEADERS") + h2.data(1, b"a" * 100), 2)
    client.receive_data(h2.rst_stream(1), 3)
    # In flight from the server: more DATA, trailers; counted, no finding, no second message.
    server.receive_data(h2.data(1, b"b" * 100) + h2.headers(1, server_encoder.encode([("grpc-status", "0")]), "END_HEADERS", "END_STREAM"), 4)
    # The client resets stream 1 and then goes on sending on it: not allowed (RFC 9113 6.4).
    # (PRIORITY may still come, and RST_STREAM again: the stream error the peer's frames in flight are.)
    client.receive_data(h2.data(1, b"late") + h2.window_update(1, 10) + h2.priority(1, 0) + h2.rst_stream(1, 5), 5)
    client.receive_eof(6)
    server.receive_eof(6)
    client_events, server_events = client.take_events(), server.take_events()
    assert not rules(server_events)
    assert [r.stream_id for r in of(server_events, HttpResponse)] == [1] and not of(server_events, HttpResponse)[0].complete
    assert rules(client_events) == ["h2-frame-after-reset", "h2-frame-after-reset"]  # DATA and WINDOW_UPDATE
    assert len(of(client_events, HttpRequest)) == 1
    # The server's trailers were decoded all the same: its HPACK state goes on.
    server.receive_eof(7)
    assert not server.hpack_lost


def test_streams_open_at_the_end_are_incomplete():
    wire = h2.client_start() + h2.headers(1, hpack.Encoder().encode(REQUEST), "END_HEADERS") + h2.data(1, b"part")
    events, _ = parse(wire)
    assert rules(events) == ["h2-incomplete-stream"] and not of(events, HttpRequest)[0].complete


def test_no_preface_loses_sync():
    events, parser = parse(b"PRI * HTTP/1.1\r\n\r\nxx" + h2.settings())
    assert rules(events) == ["h2-lost-sync"] and parser.unparsed_bytes == 20 + 9


def test_after_the_end_data_is_an_error():
    parser = Http2Parser(SERVER)
    parser.receive_eof(1)
    try:
        parser.receive_data(b"x", 2)
    except ParseError:
        return
    raise AssertionError("data after the end was taken")


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 50))
def test_any_bytes_parse_or_are_findings_and_every_byte_is_accounted(tail, step):
    wire = request_wire(body=b"abc") + tail
    events, parser = parse(wire, step=step)
    assert accounted(events, parser) == len(wire)
    assert all(split_parts(frame) == frame.length for frame in of(events, Http2Frame))


def test_preface_detection():
    assert starts_with_preface(CLIENT_PREFACE[:5]) is None and starts_with_preface(CLIENT_PREFACE + b"x") is True
    assert starts_with_preface(b"GET / HTTP/1.1\r\n") is False and starts_with_preface(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n") is False


def test_settings_from_an_upgrade_header():
    import base64

    payload = h2.settings(header_table_size=1024, max_frame_size=32768)[9:]
    assert settings_from_upgrade(base64.urlsafe_b64encode(payload).decode().rstrip("=")) == {1: 1024, 5: 32768}
    assert settings_from_upgrade("not base64 !!") is None


# -- in a TcpConnection -----------------------------------------------------------------

def _feed(connection: TcpConnection, side: int, stream: bytes, seq: int, step: int, ts: int) -> int:
    for start in range(0, len(stream), step):
        connection.receive_segment(side, ts, seq, 0, TCP_ACK, stream[start:start + step], len(stream[start:start + step]))
        seq += len(stream[start:start + step])
        ts += 1
    return seq


def test_prior_knowledge_is_told_by_the_preface_even_cut_where_it_looks_like_a_request_line():
    encoder, server_encoder = hpack.Encoder(), hpack.Encoder()
    client_bytes, server_bytes = h2.exchange(encoder, server_encoder, 1, b'{"ok": true}')
    connection = TcpConnection(1)
    _feed(connection, 0, CLIENT_PREFACE[:16], 1000, 16, 1)  # "PRI * HTTP/2.0\r\n": a request line to HTTP/1.1
    _feed(connection, 0, CLIENT_PREFACE[16:] + h2.settings() + client_bytes, 1016, 5, 10)
    _feed(connection, 1, h2.settings() + h2.settings(ack=True) + server_bytes, 5000, 1000, 100)
    connection.close(200)
    assert connection.kind == Kind.HTTP2 and connection.client_side == 0
    request, response = of(connection.events, HttpRequest) + of(connection.events, HttpResponse)
    assert (request.stream_id, response.stream_id, response.body_preview) == (1, 1, b'{"ok": true}')
    assert not rules(connection.events)


def test_h2c_upgrade_hands_both_sides_to_http2_with_the_upgrade_settings():
    import base64

    upgrade_settings = base64.urlsafe_b64encode(h2.settings(header_table_size=0)[9:]).decode().rstrip("=")
    request = (b"GET /small HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               b"HTTP2-Settings: " + upgrade_settings.encode() + b"\r\n\r\n")
    switching = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    server_encoder = hpack.Encoder()
    server_encoder.header_table_size = 0
    response = h2.headers(1, server_encoder.encode(RESPONSE), "END_HEADERS") + h2.data(1, b"hello", "END_STREAM")
    connection = TcpConnection(1)
    _feed(connection, 0, request, 1000, 1000, 1)
    _feed(connection, 1, switching + h2.settings() + response, 5000, 30, 10)  # the frames in the 101's segments
    _feed(connection, 0, h2.client_start() + h2.settings(ack=True), 1000 + len(request), 7, 50)
    connection.close(100)
    assert connection.kind == Kind.HTTP2
    assert connection.h2.table_size_limit[SERVER] == 0
    messages = of(connection.events, HttpRequest) + of(connection.events, HttpResponse)
    assert [(m.version, m.stream_id) for m in messages] == [("HTTP/1.1", None), ("HTTP/1.1", None), ("HTTP/2", 1)]
    assert messages[2].body_preview == b"hello" and not rules(connection.events)


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.integers(0, 2000), st.integers(1, 3000), st.integers(1, 64))
def test_a_gap_anywhere_keeps_every_byte_accounted(gap_at, gap_length, step):
    encoder = hpack.Encoder()
    wire = h2.client_start()
    for stream_id in (1, 3, 5, 7):
        wire += (h2.headers(stream_id, encoder.encode(REQUEST), "END_HEADERS") + h2.data(stream_id, b"p" * 150, pad_length=stream_id)
                 + h2.window_update(stream_id, 100) + h2.data(stream_id, b"q" * 90, "END_STREAM"))
    gap_at = min(gap_at, len(wire))
    gap_length = min(gap_length, len(wire) - gap_at)
    parser = Http2Parser(CLIENT)
    for at in range(0, gap_at, step):
        parser.receive_data(wire[at:min(at + step, gap_at)], at)
    if gap_length:
        parser.receive_gap(gap_length, gap_at)
    for at in range(gap_at + gap_length, len(wire), step):
        parser.receive_data(wire[at:at + step], at)
    parser.receive_eof(len(wire))
    events = parser.take_events()
    assert accounted(events, parser) == len(wire)
    assert all(split_parts(frame) == frame.length for frame in of(events, Http2Frame))
    # Every stream the gap did not touch from its first frame on is a request row.
    assert len(of(events, HttpRequest)) <= 4


# --- a connection whose start the capture missed ---------------------------------------------


def test_a_parser_started_mid_stream_skips_to_the_first_frames_and_decodes_from_an_empty_table():
    """Before the cut, the server's encoder added `x-before` to its table; after it, a block that
    adds and reuses `x-after` decodes (the newest entries sit where the encoder says), and the block
    that refers to `x-before` is reported, never read as another field."""
    encoder, status = hpack.Encoder(), [(":status", "200")]  # static: adds nothing to the table
    before = h2.headers(1, encoder.encode(status + [("x-before", "seen")]), "END_HEADERS") + h2.data(1, b"a" * 300, "END_STREAM")
    first = encoder.encode(status + [("x-after", "one")])
    again = encoder.encode(status + [("x-after", "one")])
    older = encoder.encode(status + [("x-before", "seen")])
    assert len(again) == 2  # :status and x-after, each by its index
    after = (h2.headers(3, first, "END_HEADERS") + h2.data(3, b"b" * 10, "END_STREAM") + h2.headers(5, again, "END_HEADERS", "END_STREAM")
             + h2.headers(7, older, "END_HEADERS", "END_STREAM"))
    cut = 200  # inside stream 1's DATA frame
    for step in (len(before) + len(after), 5):
        parser = Http2Parser(SERVER, mid_stream=True)
        wire = before[cut:] + after
        for at in range(0, len(wire), step):
            parser.receive_data(wire[at:at + step], 10 + at)
        parser.receive_eof(99)
        events = parser.take_events()
        assert rules(events) == ["h2-mid-stream", "h2-hpack-desync", "h2-headers-undecodable"]
        start = of(events, Finding)[0]
        assert start.ts_ns == 10 and f"after {len(before) - cut} bytes that were not framed" in start.detail
        assert "missed the connection's start" in of(events, Finding)[1].detail
        responses = of(events, HttpResponse)
        assert [(r.stream_id, r.status, r.complete) for r in responses] == [(3, 200, True), (5, 200, True), (7, None, False)]
        assert [dict(r.headers).get("x-after") for r in responses[:2]] == ["one", "one"]
        assert not of(events, Http2Preface) and parser.unparsed_bytes == len(before) - cut
        assert accounted(events, parser) == len(wire)


def test_a_client_parser_started_mid_stream_expects_no_preface():
    encoder = hpack.Encoder()
    wire = h2.headers(3, encoder.encode(REQUEST), "END_HEADERS", "END_STREAM") + h2.window_update(0, 100) + h2.ping()
    parser = Http2Parser(CLIENT, mid_stream=True)
    parser.receive_data(wire, 1)
    parser.receive_eof(2)
    events = parser.take_events()
    assert rules(events) == ["h2-mid-stream"] and parser.unparsed_bytes == 0
    assert [(r.stream_id, r.method, r.target) for r in of(events, HttpRequest)] == [(3, "GET", "/items?page=2")]


def test_nothing_framed_from_the_start_loses_sync_saying_so():
    parser = Http2Parser(SERVER, mid_stream=True)
    parser.receive_data(b"\xff" * (MAX_RESYNC_BYTES + 10), 1)
    parser.receive_eof(2)
    events = parser.take_events()
    assert rules(events) == ["h2-lost-sync"] and "from the start of the capture" in of(events, Finding)[0].detail
    assert parser.unparsed_bytes == MAX_RESYNC_BYTES + 10


def test_frame_chains_and_who_sends_them():
    encoder, server_encoder = hpack.Encoder(), hpack.Encoder()
    requests = h2.headers(3, encoder.encode(REQUEST), "END_HEADERS") + h2.data(3, b"{}", "END_STREAM") + h2.window_update(0, 9)
    responses = h2.settings(ack=True) + h2.headers(3, server_encoder.encode(RESPONSE), "END_HEADERS") + h2.data(3, b"{}", "END_STREAM")
    assert find_frame_chain(b"\x17" * 11 + requests) == FrameChain(11, 3, CLIENT)
    assert find_frame_chain(responses) == FrameChain(0, 3, SERVER)
    assert find_frame_chain(h2.data(1, b"x" * 40) + h2.ping() + h2.settings()) == FrameChain(0, 3, None)
    assert find_frame_chain(h2.data(1, b"x" * 40) + h2.ping()) == FrameChain(0, 2, None)  # two frames that end the bytes exactly
    assert find_frame_chain(h2.push_promise(1, 2, server_encoder.encode(REQUEST)) + h2.ping() + h2.ping()).sender is SERVER


def test_what_is_not_a_frame_chain():
    assert find_frame_chain(bytes(4096)) is None  # DATA on stream 0, again and again
    assert find_frame_chain(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 20) is None
    assert find_frame_chain(bytes(range(256)) * 16) is None
    assert find_frame_chain(h2.data(1, b"x" * 40) + h2.ping() + b"\xff" * 30) is None  # two frames, then no third header


def test_a_connection_without_its_start_is_found_by_its_frames():
    """No SYN and no preface: each side's first segment is frames; the client side is the one whose
    HEADERS carries request fields, against the port hint."""
    encoder, server_encoder = hpack.Encoder(), hpack.Encoder()
    client = h2.headers(3, encoder.encode(REQUEST), "END_HEADERS", "END_STREAM") + h2.window_update(0, 100) + h2.ping()
    server = h2.headers(3, server_encoder.encode(RESPONSE), "END_HEADERS") + h2.data(3, b"{}", "END_STREAM") + h2.ping(b"87654321")
    conn = TcpConnection(0, client_hint=1)
    conn.receive_segment(0, 1, 1000, 5000, TCP_ACK, client, len(client))
    conn.receive_segment(1, 2, 5000, 1000 + len(client), TCP_ACK, server, len(server))
    conn.close(3)
    assert conn.kind == Kind.HTTP2 and conn.client_side == 0
    assert [e.rule for e in conn.events if type(e) is Finding] == ["h2-mid-stream", "h2-mid-stream"]
    assert [(type(e).__name__, e.stream_id) for e in conn.events if type(e) in (HttpRequest, HttpResponse)] == [
        ("HttpRequest", 3), ("HttpResponse", 3)]
