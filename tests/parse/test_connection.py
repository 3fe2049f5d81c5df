"""TcpConnection: protocol and client detection, incremental and bounded, however segments fall."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.events import Finding, HttpRequest, HttpResponse, WsFrame, WsOneFrameMessage
from inspector.parse.connection import DETECTION_PREFIX, DETECTION_WINDOW, MAX_HELD_EVENTS, TCP_ACK, TCP_SYN, Kind, TcpConnection
from inspector.parse.keylog import KeyLog
from inspector.parse.websocket import accept_for_key
from tests.factories import http_request, http_response, ws_frame
from tests.parse.work import assert_linear_in, lines_executed

CLIENT, SERVER = 0, 1


class Conversation:
    """Feeds one TcpConnection the segments both sides send, keeping their sequence numbers."""

    def __init__(self, *, syn: bool = True, one_frame_records: bool = False, keylog: KeyLog | None = None) -> None:
        self.conn = TcpConnection(1, one_frame_records=one_frame_records, keylog=keylog)
        self.seq = [1000, 5000]
        self.ts = 0
        if syn:
            self._segment(CLIENT, TCP_SYN, b"", 0)
            self._segment(SERVER, TCP_SYN | TCP_ACK, b"", 0)

    def _segment(self, side: int, flags: int, payload: bytes, wire_len: int) -> None:
        self.ts += 1
        if not flags & TCP_SYN:
            flags |= TCP_ACK  # acknowledging all the peer sent: a hole in it is given up at once
        self.conn.receive_segment(side, self.ts, self.seq[side], self.seq[1 - side], flags, payload, wire_len)
        self.seq[side] = (self.seq[side] + wire_len + (1 if flags & TCP_SYN else 0)) % (1 << 32)

    def send(self, side: int, data: bytes, sizes=None) -> None:
        """`data` in segments of the given sizes (cycled), or in one."""
        sizes = sizes or [len(data)]
        start, turn = 0, 0
        while start < len(data):
            size = sizes[turn % len(sizes)]
            self._segment(side, 0, data[start : start + size], size if start + size <= len(data) else len(data) - start)
            start, turn = start + size, turn + 1

    def send_headers_only(self, side: int, wire_len: int) -> None:
        """A segment whose payload the capture cut off (snaplen)."""
        self._segment(side, 0, b"", wire_len)

    def skip(self, side: int, length: int) -> None:
        """`length` bytes sent but never captured."""
        self.seq[side] = (self.seq[side] + length) % (1 << 32)

    def close(self) -> TcpConnection:
        self.conn.close(self.ts + 1)
        return self.conn


def without_times(events) -> list:
    """Events as comparable values, without the timestamps that depend on segmentation."""
    return [(type(e).__name__, {k: v for k, v in dataclasses.asdict(e).items() if not k.endswith("ts_ns")}) for e in events]


def messages(conn: TcpConnection) -> list:
    return [e for e in conn.events if isinstance(e, (HttpRequest, HttpResponse))]


EXCHANGES = [
    (http_request("GET", "/a", headers={"Host": "x"}), http_response(200, body=b"hello")),
    (http_request("POST", "/b", headers={"Host": "x"}, body=b"12345"), http_response(201, "Created", chunked=[b"ab", b"cdef"])),
    (http_request("HEAD", "/c"), http_response(200, headers={"Content-Length": "99"})),
]


def converse(sizes, *, syn: bool) -> TcpConnection:
    conversation = Conversation(syn=syn)
    for request, response in EXCHANGES:
        conversation.send(CLIENT, request, sizes)
        conversation.send(SERVER, response, sizes)
    return conversation.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=6), st.booleans())
def test_http_in_small_segments_gives_the_same_events_as_unsplit(sizes, syn):
    # Detection used to look at each side's first segment only: HTTP sent in
    # 7-byte segments was "other", with no exchanges.
    whole = converse(None, syn=syn)
    split = converse(sizes, syn=syn)
    assert whole.kind == split.kind == Kind.REST and whole.client_side == split.client_side == CLIENT
    assert [m.target if isinstance(m, HttpRequest) else m.status for m in messages(split)] == ["/a", 200, "/b", 201, "/c", 200]
    assert without_times(split.events) == without_times(whole.events)


def test_websocket_frames_in_one_byte_segments_are_detected_mid_stream():
    client = b"".join(ws_frame(b"question %d" % i, masked=True) for i in range(20))
    server = b"".join(ws_frame(b"answer %d" % i) for i in range(20))

    def run(sizes):
        conversation = Conversation(syn=False)
        conversation.send(SERVER, server, sizes)
        conversation.send(CLIENT, client, sizes)
        return conversation.close()

    whole, split = run(None), run([1])
    assert whole.kind == split.kind == Kind.WEBSOCKET and whole.client_side == split.client_side == CLIENT
    assert sum(isinstance(e, WsFrame) for e in split.events) == 40
    assert without_times(split.events) == without_times(whole.events)


def test_one_frame_records_stand_for_the_events_of_an_upgraded_connection():
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    upgrade = http_request("GET", "/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"})
    switch = http_response(101, "Switching Protocols", headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": accept_for_key(key)})
    client = b"".join(ws_frame(b"question %d" % i, masked=True, fin=i % 3 != 1, opcode=0 if i % 3 == 2 else 1) for i in range(9))

    def run(records, sizes):
        conversation = Conversation(one_frame_records=records)
        conversation.send(CLIENT, upgrade)
        conversation.send(SERVER, switch + ws_frame(b"hi"))  # a frame in the 101's segment
        conversation.send(CLIENT, client, sizes)
        conversation.send(SERVER, b"".join(ws_frame(b"answer %d" % i) for i in range(5)), sizes)
        return conversation.close().events

    plain = run(False, None)
    for sizes in (None, [13], [1]):
        recorded = run(True, sizes)
        expanded = [two for e in recorded for two in (e.events() if isinstance(e, WsOneFrameMessage) else [e])]
        assert without_times(expanded) == without_times(plain)
    assert sum(isinstance(e, WsOneFrameMessage) for e in run(True, None)) == 1 + 3 + 5  # the fragmented messages are not


def test_http_after_a_hole_at_the_start_is_still_detected():
    conversation = Conversation()
    conversation.skip(CLIENT, 100)
    conversation.send(CLIENT, b"x" * 20 + http_request("GET", "/after-hole"), [3])
    conversation.send(SERVER, http_response(204, "No Content"), [3])
    conn = conversation.close()
    assert conn.kind == Kind.REST
    assert [m.target if isinstance(m, HttpRequest) else m.status for m in messages(conn)] == ["/after-hole", 204]


def test_status_line_cut_short_by_snaplen_is_evidence_enough():
    conversation = Conversation(syn=False)
    conversation._segment(SERVER, 0, b"HTTP/1.1 200 O", 1400)
    conn = conversation.close()
    assert conn.kind == Kind.REST and conn.client_side == CLIENT


def test_closing_settles_the_client_side_even_without_syn_or_payload():
    """The analysis reads client_side once a connection is closed: with nothing else to go
    by (bare ACKs), it is the caller's hint, and the guess is a finding."""
    for hint in (CLIENT, SERVER):
        conn = TcpConnection(1, client_hint=hint)
        conn.receive_segment(SERVER, 1, 5000, 1000, TCP_ACK, b"", 0)
        conn.receive_segment(CLIENT, 2, 1000, 5000, TCP_ACK, b"", 0)
        assert conn.client_side is None
        conn.close(3)
        assert (conn.kind, conn.client_side) == (Kind.OTHER, hint)
        assert [event.rule for event in conn.events] == ["tcp-client-guessed"]


# --- bounded work and memory ---------------------------------------------------------------


def lines_to_feed(feed, kind: str | None = Kind.OTHER) -> tuple[int]:
    """Lines executed by `feed(conversation)`, which leaves the connection of `kind`."""
    conversation = Conversation()
    lines = lines_executed(lambda: feed(conversation))
    assert conversation.conn.kind == kind and not messages(conversation.conn)
    return (lines,)


def test_one_byte_segments_of_another_protocol_cost_linear_work():
    assert_linear_in(lambda count: lines_to_feed(lambda c: c.send(CLIENT, b"x" * count, [1]), None), 256)
    conn = Conversation()
    conn.send(CLIENT, b"x" * (MAX_HELD_EVENTS - 1), [1])
    assert conn.conn.kind is None  # still waiting for evidence
    conn.send(CLIENT, b"x", [1])
    assert conn.conn.kind == Kind.OTHER  # held events are bounded: decided without waiting for the end


def test_header_only_capture_is_decided_in_linear_work():
    # Payload cut by snaplen: nothing but gaps, which count toward the window.
    def run(count):
        # 2048 * 100 bytes of gaps pass DETECTION_WINDOW, 256 * 100 do not
        return lines_to_feed(lambda c: [c.send_headers_only(CLIENT, 100) for _ in range(count)], Kind.OTHER if count > 256 else None)

    assert_linear_in(run, 256)
    conversation = Conversation()
    for _ in range(DETECTION_WINDOW // 1024 - 1):
        conversation.send_headers_only(CLIENT, 1024)
    assert conversation.conn.kind is None
    conversation.send_headers_only(CLIENT, 1024)
    assert conversation.conn.kind == Kind.OTHER


def test_hole_then_one_byte_segments_is_decided_in_linear_work():
    def feed(conversation, count):
        conversation.skip(CLIENT, 1000)
        conversation.send(CLIENT, b"x" * count, [1])
        conversation.close()  # the hole is given up at the end: then everything is delivered at once

    assert_linear_in(lambda count: lines_to_feed(lambda c: feed(c, count)), 256)


def test_evidence_is_searched_once_in_the_first_bytes_of_each_side():
    # A long prefix of text that is almost HTTP, in one-byte segments: each byte looked at once.
    almost = b"GET /x HTTP/1.1 HTTP/1.1 20"
    assert len(almost) * 512 > DETECTION_PREFIX  # at 8x, held events reach the limit: "other" without HTTP seen
    assert_linear_in(lambda count: lines_to_feed(lambda c: c.send(CLIENT, almost * count, [1]), Kind.OTHER if count > 64 else None), 64)


def test_connection_without_evidence_is_other_and_says_client_was_guessed():
    conversation = Conversation(syn=False)
    conversation.send(CLIENT, b"\x16\x03\x01" + b"\x00" * 50)
    conversation.send(SERVER, b"\x16\x03\x03" + b"\x00" * 50)
    conn = conversation.close()
    assert conn.kind == Kind.OTHER
    assert [e.rule for e in conn.events if isinstance(e, Finding)] == ["tcp-client-guessed"]


def test_window_bits_of_thousands_of_digits_leave_the_extension_unnegotiated():
    # int() of a 5,000-digit string raises ValueError (Python's int-string limit).
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    conversation = Conversation()
    conversation.send(CLIENT, http_request("GET", "/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}))
    extensions = "permessage-deflate; server_max_window_bits=" + "9" * 5000
    conversation.send(SERVER, http_response(101, "Switching Protocols", headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": accept_for_key(key), "Sec-WebSocket-Extensions": extensions}))
    conversation.send(SERVER, ws_frame(b"hello"))
    conn = conversation.close()
    assert conn.kind == Kind.WEBSOCKET and conn.handshake.accept_valid and conn.handshake.deflate is None
    assert [e.payload for e in conn.events if isinstance(e, WsFrame)] == [b"hello"]


def _with_a_hole_acknowledged(bare_ack) -> tuple[TcpConnection, int]:
    """A request whose middle was never captured, then the server's bare ACK of all of it,
    fed by `bare_ack(conn, ack)`, which returns the offset acknowledged."""
    conversation = Conversation()
    request = http_request("POST", "/upload", headers={"Host": "x"}, body=b"x" * 300)
    conversation.send(CLIENT, request[:100])
    conversation.skip(CLIENT, 100)
    conversation.send(CLIENT, request[200:])
    conn = conversation.conn
    before = without_times(conn.events)
    acked = bare_ack(conn, conversation.seq[CLIENT])
    assert without_times(conn.events) != before  # the hole was given up: the request came out
    return conversation.close(), acked


def test_bare_ack_short_way_does_what_receive_segment_does():
    def through_receive_segment(conn: TcpConnection, ack: int) -> int:
        fate = conn.receive_segment(SERVER, 100, 5001, ack, TCP_ACK, b"", 0)
        assert fate.new_bytes == fate.duplicate_bytes == fate.before_start_bytes == fate.late_bytes == 0
        return conn.ack_offset(SERVER, ack)

    def through_receive_ack(conn: TcpConnection, ack: int) -> int:
        return conn.receive_ack(SERVER, ack, 100)

    long_way, long_acked = _with_a_hole_acknowledged(through_receive_segment)
    short_way, short_acked = _with_a_hole_acknowledged(through_receive_ack)
    assert long_acked == short_acked == len(http_request("POST", "/upload", headers={"Host": "x"}, body=b"x" * 300))
    assert without_times(short_way.events) == without_times(long_way.events)
    assert [s.gap_bytes for s in short_way.streams] == [s.gap_bytes for s in long_way.streams] == [100, 0]


def test_bare_ack_before_the_peer_sent_data_acknowledges_no_offset():
    conn = TcpConnection(1)
    assert conn.receive_ack(CLIENT, 12345, 1) == -1
    assert conn.ack_offset(CLIENT, 12345) is None


def test_receive_next_takes_only_the_next_bytes_and_otherwise_changes_nothing():
    conversation = Conversation()
    request = http_request("GET", "/a", headers={"Host": "x"})
    conversation.send(CLIENT, request[:10])  # the protocol is not known yet: held for detection
    conn = conversation.conn
    seq = conversation.seq[CLIENT]
    assert conn.receive_next(CLIENT, 5, seq, 5001, TCP_ACK, request[10:], len(request) - 10) == -1
    conversation.send(CLIENT, request[10:])
    assert conn.kind == Kind.REST
    response = http_response(200, body=b"hello")
    server_seq = conversation.seq[SERVER]
    assert conn.receive_next(SERVER, 6, server_seq + 1, seq, TCP_ACK, response[1:], len(response) - 1) == -1  # not the next bytes
    assert conn.receive_next(SERVER, 6, server_seq, seq, TCP_ACK, response[:-1], len(response)) == -1  # not all captured
    assert conn.streams[SERVER].next_offset == 0
    assert conn.receive_next(SERVER, 6, server_seq, seq, TCP_ACK, response, len(response)) == 0
    assert conn.streams[SERVER].next_offset == len(response)
    assert [e.status for e in messages(conn) if isinstance(e, HttpResponse)] == [200]
