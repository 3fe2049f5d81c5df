"""One TCP connection: reassembly, role inference and protocol hand-off (sans-IO).

A TcpConnection takes the segments of one connection in capture order and
produces, in `events`, the application events of both directions:
HttpRequest/HttpResponse, WsHandshake, WsFrame/WsMessage (or WsOneFrameMessage
records, when asked for) and Findings.

The two endpoints are called sides 0 (sender of the first packet seen) and 1
until it is known which is the client: the side that sent the SYN, or,
without one, the side whose bytes look like requests (or masked WebSocket
frames).  The protocol is detected from content, never from port numbers.

Detection is incremental: each side's first contiguous bytes (at most
DETECTION_PREFIX) are searched once, as they come, however they are
segmented.  A side whose first bytes are a TLS record carrying a ClientHello
makes the connection TLS at once (that side the client), one whose first bytes
are the HTTP/2 client preface makes it HTTP/2 (prior-knowledge h2c; the preface
is looked for once per side, before the search for a request line that
"PRI * HTTP/2.0" would pass).  Until HTTP, HTTP/2 or TLS is
seen the stream events are held back, at most DETECTION_WINDOW stream bytes
(data and gaps) and MAX_HELD_EVENTS events; at either limit, or once neither
side can show more evidence, the connection is TLS if one side's bytes are TLS
records (a capture that missed the handshake), WebSocket if they are WebSocket
frames, else "other" (its bytes are then counted as unparsed).

A TLS connection with secrets for it (a key log) has its records decrypted by
its TLS parsers, which queue each side's plaintext (`_PlaintextQueue`), taken
here after each input (a queue, not a call back: no reference cycle);
`_start_plaintext_parsers` is the one place that decides which parser reads
it: by the ALPN protocol the handshake chose, else by content.  HTTP/1.1 (and a
WebSocket after its upgrade) and HTTP/2 are parsed as in cleartext, their
offsets in the side's plaintext, and the connection's kind becomes rest (then
websocket) or http2; a plaintext no parser takes (another protocol) stays kind
tls, its bytes unparsed.

A 101 answering an `Upgrade: websocket` request hands both sides' bytes after it
to WebSocket parsers; one answering `Upgrade: h2c` to HTTP/2 parsers (the
request's HTTP2-Settings hold for what the server sends; the server's response
to the upgraded request comes on stream 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from inspector.events import (
    NEED_DATA,
    Direction,
    Finding,
    HttpRequest,
    HttpResponse,
    StreamData,
    StreamEnd,
    StreamGap,
    WsHandshake,
)
from inspector.parse.budget import (
    DEFAULT_MAX_DECOMPRESSED_PER_CAPTURE,
    DEFAULT_MAX_DECOMPRESSED_PER_CONNECTION,
    DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE,
    DecompressionBudget,
)
from inspector.parse.keylog import KeyLog
from inspector.parse.http1 import Http1Parser, Role, StartLineFinder, is_status_code_prefix, looks_like_message_start
from inspector.parse.http2 import Http2Parser, Http2Session, find_frame_chain, settings_from_upgrade, starts_with_preface
from inspector.parse.tcp import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, SegmentFate, TcpStreamReassembler
from inspector.parse.tls import HandshakeType, TlsRecordParser, TlsSession, looks_like_tls_records, starts_with_client_hello
from inspector.parse.websocket import WebSocketParser, accept_for_key, parse_deflate_offer

_SYN_FIN_RST = TCP_SYN | TCP_FIN | TCP_RST

# Stream events of an undecided connection are held back until the two
# sides together have sent this many stream bytes (data, and gaps: a capture
# cut by snaplen has little else) ...
DETECTION_WINDOW = 64 * 1024
# ... or this many events (one-byte segments cost as much to hold as big ones).
MAX_HELD_EVENTS = 4096
# Evidence is looked for in this many first contiguous bytes of each side.
DETECTION_PREFIX = 8 * 1024
_WS_OPCODES = (0, 1, 2, 8, 9, 10)
# Payload a connection's events carry, for the tables (analysis/rows.py shows at most 200
# characters of a body or message): short, since a million frames must fit in memory. A
# parser used on its own keeps more (events.DEFAULT_PREVIEW_BYTES).
TABLE_PREVIEW_BYTES = 256


class Kind:
    REST = "rest"
    WEBSOCKET = "websocket"
    OTHER = "other"
    TLS = "tls"
    HTTP2 = "http2"


@dataclass(frozen=True)
class ParserOptions:
    max_ws_message_bytes: int = DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE
    # Payload kept per frame and message for display; the rest is only counted.
    preview_bytes: int = TABLE_PREVIEW_BYTES
    # Decompressed bytes, HTTP bodies and WebSocket messages together, per
    # connection and per capture (each worker process has the whole of the
    # capture's budget for its share): see inspector.parse.budget.
    max_decompressed_per_connection: int = DEFAULT_MAX_DECOMPRESSED_PER_CONNECTION
    max_decompressed_per_capture: int = DEFAULT_MAX_DECOMPRESSED_PER_CAPTURE
    # TLS secrets (inspector analyze --keylog): TLS connections whose secrets it holds are
    # decrypted, and their plaintext parsed as cleartext is.  Secrets a capture carries (pcapng
    # decryption secrets blocks) are added by the analysis.
    keylog: KeyLog | None = None


class TcpConnection:
    """Everything known about one TCP connection."""

    def __init__(self, conn_id: int, options: ParserOptions | None = None, *, client_hint: int = 0,
                 capture_budget: DecompressionBudget | None = None, one_frame_records: bool = False,
                 keylog: KeyLog | None = None) -> None:
        """client_hint: the side to call the client when nothing else tells
        (the caller knows the ports: the higher, ephemeral one is usually the client's).
        capture_budget: what the whole capture may still decompress.
        one_frame_records: WebSocket messages of one frame read whole come as one
        WsOneFrameMessage each instead of a WsFrame and a WsMessage (WebSocketParser).
        keylog: TLS secrets to decrypt with (default: the options'); the caller may add
        secrets to it later, until the connection's first encrypted record."""
        self.conn_id = conn_id
        self._one_frame_records = one_frame_records
        self._capture_budget = capture_budget
        self._budget: DecompressionBudget | None = None  # the connection's, made with its parsers
        self._client_hint = client_hint
        self.options = options or ParserOptions()
        self._keylog = keylog if keylog is not None else self.options.keylog
        self._plaintext_decided = False  # which parser reads the decrypted bytes: see _start_plaintext_parsers
        self.streams = (TcpStreamReassembler(Direction(0)), TcpStreamReassembler(Direction(1)))
        self.client_side: int | None = None
        self.kind: str | None = None
        self.events: list = []
        self.handshake: WsHandshake | None = None
        self.closed = False
        self._held: list = []  # stream events waiting for role/protocol detection
        self._held_bytes = 0  # stream bytes they span, data and gaps
        # Made on a side's first event and dropped once decided: a connection
        # that only sent a SYN pays nothing for detection.
        self._evidence: dict[int, _SideEvidence] = {}
        self._sides_by_first_data: tuple[int, ...] = ()
        # Each side's parser, by side: at most one of the two is set.  A
        # WebSocket parser appends its events straight to `events`; the HTTP
        # parsers' are taken after each input, since requests and responses
        # steer the other side's parser.
        self._http: list[Http1Parser | None] = [None, None]
        self._ws: list[WebSocketParser | None] = [None, None]
        self._tls: list[TlsRecordParser | None] = [None, None]
        self._plaintext: list[_PlaintextQueue | None] = [None, None]  # by side: what its TLS parser decrypted
        self.tls: TlsSession | None = None  # what the TLS parsers of both sides know
        self._h2: list[Http2Parser | None] = [None, None]
        self.h2: Http2Session | None = None  # what the HTTP/2 parsers of both sides share
        self._h2_mid_stream = False  # HTTP/2 found by its frames, the preface not captured
        self._upgrade_request: HttpRequest | None = None

    # -- input -----------------------------------------------------------------

    def receive_segment(self, side: int, ts_ns: int, seq: int, ack: int, flags: int, payload: bytes, payload_wire_len: int) -> SegmentFate:
        """Feed one segment sent by `side`; returns what became of its payload."""
        offset = self.receive_next(side, ts_ns, seq, ack, flags, payload, payload_wire_len)
        if offset >= 0:
            return SegmentFate(offset, payload_wire_len, 0, 0)
        stream = self.streams[side]
        if not payload_wire_len and not flags & _SYN_FIN_RST:
            # Nothing for this side's stream: its offset, and what the ACK tells the peer's.
            if flags & TCP_ACK:
                self._acknowledged(side, ack, ts_ns)
            return SegmentFate(stream.offset_of(seq), 0, 0, 0)
        if flags & TCP_SYN:
            self._note_syn(side, flags)
        fate = stream.receive_segment(seq, payload, payload_wire_len, ts_ns, syn=bool(flags & TCP_SYN))
        if flags & TCP_FIN:
            stream.receive_fin((seq + 1) % (1 << 32) if flags & TCP_SYN else seq, payload_wire_len)
        if flags & TCP_RST:
            stream.receive_rst()
        self._pump(side)
        if flags & TCP_ACK:
            self._acknowledged(side, ack, ts_ns)
        return fate

    def receive_next(self, side: int, ts_ns: int, seq: int, ack: int, flags: int, payload: bytes, payload_wire_len: int) -> int:
        """receive_segment's in-order fast path, for a caller that needs only the offset.

        If the segment (no SYN, FIN or RST, its payload all captured) carries the next
        bytes of `side`'s stream, nothing is waiting and the protocol is known, take it,
        as receive_segment would: return its stream offset (all its bytes are new).
        Otherwise change nothing and return -1: the caller then calls receive_segment.
        """
        if flags & _SYN_FIN_RST or not payload_wire_len or self.kind is None or len(payload) != payload_wire_len:
            return -1
        offset = self.streams[side].take_next(seq, payload_wire_len)
        if offset < 0:
            return -1
        # Straight to the parser, no stream event (a TLS side's HTTP or WebSocket parser reads its plaintext).
        tls = self._tls[side]
        if tls is not None:
            tls.receive_data(payload, ts_ns)
            if self._plaintext[side]:
                self._take_plaintext(side)
        else:
            ws = self._ws[side]
            if ws is not None:
                ws.receive_data(payload, ts_ns)
            else:
                http = self._http[side]
                if http is not None:
                    http.receive_data(payload, ts_ns)
                    self._drain(side)
                else:
                    h2 = self._h2[side]
                    if h2 is not None:
                        h2.receive_data(payload, ts_ns)
        if flags & TCP_ACK and self.streams[1 - side].has_pending:
            self._acknowledged(side, ack, ts_ns)
        return offset

    def receive_ack(self, side: int, ack: int, ts_ns: int) -> int:
        """A segment with the ACK flag and nothing else to act on (no payload, no SYN, FIN
        or RST): does what receive_segment does with it, and returns ack_offset (-1 for None)."""
        self._acknowledged(side, ack, ts_ns)
        offset = self.ack_offset(side, ack)
        return -1 if offset is None else offset

    def _acknowledged(self, side: int, ack: int, ts_ns: int) -> None:
        peer = self.streams[1 - side]
        # Only a peer waiting on a hole can learn something from an ACK.
        if peer.has_pending and not peer.closed:
            peer.acknowledged(peer.offset_of(ack), ts_ns)
            self._pump(1 - side)

    def ack_offset(self, acking_side: int, ack: int) -> int | None:
        """Offset in the other side's stream that `ack` acknowledges up to."""
        stream = self.streams[1 - acking_side]
        return stream.offset_of(ack) if stream.started else None

    @property
    def finished(self) -> bool:
        """Both directions done (FIN delivered or RST): a new SYN starts a new connection."""
        a, b = self.streams
        return a.reset or b.reset or (a.fin_complete and b.fin_complete)

    def close(self, ts_ns: int) -> None:
        """End of the connection or of the capture: flush everything. Afterwards kind and
        client_side are known, even for a connection that sent no SYN and no payload."""
        if self.closed:
            return
        for side in (0, 1):
            self.streams[side].close(ts_ns)
            self._pump(side)
        if self.kind is None and self._held:
            self._decide_without_http()
        self.closed = True

    # -- roles and protocol --------------------------------------------------------

    def _note_syn(self, side: int, flags: int) -> None:
        if self.client_side is None:
            self.client_side = side if not flags & TCP_ACK else 1 - side

    def direction_of(self, side: int) -> Direction:
        return Direction.CLIENT if side == self.client_side else Direction.SERVER

    def _pump(self, side: int) -> None:
        stream = self.streams[side]
        while True:
            event = stream.next_event()
            if event is NEED_DATA:
                return
            if self.kind is None:
                self._hold(side, event)
            else:
                self._dispatch(side, event)

    def _hold(self, side: int, event) -> None:
        """Keep `event` until the protocol is known; decide as soon as the evidence allows."""
        self._held.append((side, event))
        if isinstance(event, StreamData):
            self._held_bytes += len(event.data)
        elif isinstance(event, StreamGap):
            self._held_bytes += event.length
        evidence = self._evidence.get(side)
        if evidence is None:
            evidence = self._evidence[side] = _SideEvidence()
        if isinstance(event, StreamData) and side not in self._sides_by_first_data:
            self._sides_by_first_data += (side,)
        evidence.add(event)
        if evidence.client_hello:
            self._decide(Kind.TLS, side)
        elif evidence.h2_preface:
            self._decide(Kind.HTTP2, side)
        elif evidence.sends is not None:
            self._decide(Kind.REST, side if evidence.sends == Role.REQUEST else 1 - side)
        elif self._held_bytes >= DETECTION_WINDOW or len(self._held) >= MAX_HELD_EVENTS or self._both_sides_closed():
            self._decide_without_http()

    def _both_sides_closed(self) -> bool:
        return len(self._evidence) == 2 and all(evidence.closed for evidence in self._evidence.values())

    def _decide_without_http(self) -> None:
        """No HTTP seen and none to come: TLS records, WebSocket frames, or another protocol."""
        for side in self._sides_by_first_data:
            prefix = self._evidence[side].prefix
            if looks_like_tls_records(prefix):
                # Without the ClientHello: a side starting with a ServerHello is the server.
                server_hello = prefix[0] == 22 and len(prefix) > 5 and prefix[5] == HandshakeType.SERVER_HELLO
                self._decide(Kind.TLS, 1 - side if server_hello else None)
                return
        if self._found_h2_frames():
            return
        for side in self._sides_by_first_data:
            masked = _looks_like_ws_frames(self._evidence[side].prefix)
            if masked is not None:
                self._decide(Kind.WEBSOCKET, side if masked else 1 - side)
                return
        self._decide(Kind.OTHER, None)

    def _found_h2_frames(self) -> bool:
        """HTTP/2 frames in a row on a side whose preface (or first frames) the capture missed:
        decide HTTP/2, the client side by what the frames say (request or status fields) if they do."""
        chains = {side: find_frame_chain(self._evidence[side].prefix) for side in self._sides_by_first_data}
        if not any(chains.values()):
            return False
        senders = [(side, chain.sender) for side, chain in chains.items() if chain is not None and chain.sender is not None]
        client_side = None
        if senders:
            side, sender = senders[0]
            client_side = side if sender is Direction.CLIENT else 1 - side
        self._h2_mid_stream = True
        self._decide(Kind.HTTP2, client_side)
        return True

    def _decide(self, kind: str, client_side: int | None) -> None:
        """Settle client side and protocol, then replay the held events."""
        if self.client_side is None:
            self.client_side = client_side if client_side is not None else self._guess_client()
        self.kind = kind
        self._start_parsers()
        self._evidence = {}
        held, self._held = self._held, []
        for side, event in held:
            self._dispatch(side, event)

    def _guess_client(self) -> int:
        # Without a SYN or content evidence, go by the caller's hint, and
        # record the guess so that it is visible.
        self.events.append(Finding(0, None, "tcp-client-guessed", "no SYN and no request seen: client side guessed from the ports"))
        return self._client_hint

    def _start_parsers(self) -> None:
        options = self.options
        for side in (0, 1):
            direction = self.direction_of(side)
            evidence = self._evidence.get(side)
            start = self._first_offset(side)
            if self.kind == Kind.REST:
                role = Role.REQUEST if direction is Direction.CLIENT else Role.RESPONSE
                # Mid-stream, the first bytes may be the middle of a message.
                in_sync = evidence is None or evidence.starts_with_message(role)
                self._http[side] = Http1Parser(direction, role, start_offset=start, preview_bytes=options.preview_bytes, in_sync=in_sync,
                                               decompression_budget=self._decompression_budget())
            elif self.kind == Kind.WEBSOCKET:
                self._ws[side] = self._new_ws_parser(direction, start, deflate=None, negotiated=False)
            elif self.kind == Kind.TLS:
                if self.tls is None:
                    self.tls = TlsSession(self._keylog)
                plaintext = self._plaintext[side] = _PlaintextQueue() if self._keylog is not None else None
                self._tls[side] = TlsRecordParser(direction, self.tls, start_offset=start, events=self.events, plaintext=plaintext)
            elif self.kind == Kind.HTTP2:
                self._h2[side] = self._new_h2_parser(direction, start, mid_stream=self._h2_mid_stream)

    def _first_offset(self, side: int) -> int:
        """Where parsing of `side` starts: its first held data or gap, else what comes next."""
        evidence = self._evidence.get(side)
        if evidence is None or evidence.first_offset is None:
            return self.streams[side].next_offset
        return evidence.first_offset

    def _new_ws_parser(self, direction: Direction, start: int, deflate, negotiated: bool) -> WebSocketParser:
        return WebSocketParser(
            direction,
            start_offset=start,
            deflate=deflate,
            extensions_negotiated=negotiated,
            max_message_bytes=self.options.max_ws_message_bytes,
            preview_bytes=self.options.preview_bytes,
            decompression_budget=self._decompression_budget(),
            events=self.events,
            one_frame_records=self._one_frame_records,
        )

    def _new_h2_parser(self, direction: Direction, start: int, mid_stream: bool = False) -> Http2Parser:
        if self.h2 is None:
            self.h2 = Http2Session()
        return Http2Parser(direction, self.h2, start_offset=start, events=self.events, mid_stream=mid_stream, preview_bytes=self.options.preview_bytes,
                           decompression_budget=self._decompression_budget())

    def _decompression_budget(self) -> DecompressionBudget:
        if self._budget is None:
            limit = self.options.max_decompressed_per_connection
            self._budget = DecompressionBudget(limit, "connection", self._capture_budget)
        return self._budget

    # -- dispatch --------------------------------------------------------------------

    def _dispatch(self, side: int, event) -> None:
        parser = self._tls[side] or self._ws[side] or self._http[side] or self._h2[side]
        if parser is None:
            return  # another protocol or a tunnel: its bytes count as unparsed
        if isinstance(event, StreamData):
            parser.receive_data(event.data, event.ts_ns)
        elif isinstance(event, StreamGap):
            parser.receive_gap(event.length, event.ts_ns)
        elif isinstance(event, StreamEnd):
            parser.receive_eof(event.ts_ns)
        if parser is self._tls[side] and self._plaintext[side] is not None:
            if self._plaintext[side]:
                self._take_plaintext(side)
            plaintext = self._plaintext_parser(side)
            if type(event) is StreamEnd and plaintext is not None:
                plaintext.receive_eof(event.ts_ns)  # the end of the records is the end of their plaintext
        self._drain(side)

    # -- decrypted TLS -----------------------------------------------------------------

    def _start_plaintext_parsers(self, side: int, data: bytes) -> bool:
        """Choose the parsers of the decrypted bytes, on the first plaintext of either side:
        the one place that decides it.  By the ALPN protocol the handshake chose (h2: HTTP/2
        parsers on both sides, whichever speaks first), else by content: the client's HTTP/2
        preface, or an HTTP/1.x request line.  Returns whether `side` has a parser now."""
        self._plaintext_decided = True
        alpn = self.tls.alpn if self.tls is not None else ""
        client_speaks = self.direction_of(side) is Direction.CLIENT
        if alpn == "h2" or (not alpn and client_speaks and data and starts_with_preface(data) is not False):
            self.kind = Kind.HTTP2
            for parser_side in (0, 1):
                self._h2[parser_side] = self._new_h2_parser(self.direction_of(parser_side), 0)
            return True
        if alpn not in ("", "http/1.1", "http/1.0"):
            return False  # another protocol: decrypted, left unparsed
        if not client_speaks or not looks_like_message_start(data, Role.REQUEST):
            return False  # HTTP/1.x: the client speaks first, with a request line
        self.kind = Kind.REST
        options = self.options
        for parser_side in (0, 1):
            direction = self.direction_of(parser_side)
            role = Role.REQUEST if direction is Direction.CLIENT else Role.RESPONSE
            self._http[parser_side] = Http1Parser(direction, role, start_offset=0, preview_bytes=options.preview_bytes, in_sync=True,
                                                  decompression_budget=self._decompression_budget())
        return True

    def _take_plaintext(self, side: int) -> None:
        """Feed `side`'s decrypted bytes, queued by its TLS parser, to their parser."""
        queue = self._plaintext[side]
        items, queue[:] = list(queue), []
        for data, length, first_ts_ns, last_ts_ns in items:
            if data is None:
                self._receive_plaintext_gap(side, length, last_ts_ns)
            else:
                self._receive_plaintext(side, data, first_ts_ns, last_ts_ns)

    def _plaintext_parser(self, side: int) -> WebSocketParser | Http1Parser | Http2Parser | None:
        """The parser of `side`'s decrypted bytes (a WebSocket or HTTP/2 one after an upgrade)."""
        return self._ws[side] or self._http[side] or self._h2[side]

    def _receive_plaintext(self, side: int, data: bytes, first_ts_ns: int, last_ts_ns: int) -> None:
        parser = self._plaintext_parser(side)
        if parser is None:
            if self._plaintext_decided or not self._start_plaintext_parsers(side, data):
                return  # no parser reads it: its bytes count as unparsed
            parser = self._plaintext_parser(side)
        if first_ts_ns != last_ts_ns and len(data) > 1:
            # A message starting in this record started with the packet of its first byte.
            parser.receive_data(data[:1], first_ts_ns)
            self._drain(side)  # that byte may end a message (a 101 hands the rest to a WebSocket parser)
            parser = self._plaintext_parser(side)
            if parser is None:
                return
            data = data[1:]
        parser.receive_data(data, last_ts_ns)
        self._drain(side)

    def _receive_plaintext_gap(self, side: int, length: int, ts_ns: int) -> None:
        parser = self._plaintext_parser(side)
        if parser is not None:
            parser.receive_gap(length, ts_ns)
            self._drain(side)

    def _drain(self, side: int) -> None:
        """Take the events `side`'s HTTP parser made (a WebSocket parser's are in `events` already)."""
        parser = self._http[side]
        if parser is None:
            return
        events = self.events
        for event in parser.take_events():
            events.append(event)
            kind = type(event)
            if kind is HttpRequest:
                self._on_request(side, event)
            elif kind is HttpResponse:
                self._on_response(side, event)
                if self._http[side] is None:
                    return  # switched protocol: the events after it are the new parser's

    def _on_request(self, side: int, request: HttpRequest) -> None:
        response_parser = self._http[1 - side]
        if response_parser is not None:
            response_parser.expect_response_to(request.method)
        if self._http[side].paused:
            self._upgrade_request = request

    def _on_response(self, side: int, response: HttpResponse) -> None:
        request_side = 1 - side
        request_parser = self._http[request_side]
        upgrade = self._upgrade_request
        if response.status == 101 or (upgrade is not None and upgrade.method == "CONNECT" and 200 <= response.status < 300):
            self._switch_protocol(response, request_side, side)
            return
        if not (100 <= response.status < 200) and request_parser is not None and request_parser.paused:
            if not self._http[side].awaiting_responses:
                self._upgrade_request = None
                request_parser.resume(response.end_ts_ns)
                self._drain(request_side)

    def _switch_protocol(self, response: HttpResponse, client_side: int, server_side: int) -> None:
        request = self._upgrade_request
        self._upgrade_request = None
        is_websocket = request is not None and response.status == 101 and request.header("upgrade").lower() == "websocket"
        is_h2c = (not is_websocket and request is not None and response.status == 101 and response.header("upgrade").strip().lower() == "h2c")
        handshake = self._make_handshake(request, response) if is_websocket else None
        if is_h2c:
            self._start_h2c(request)
        for side in (client_side, server_side):
            parser = self._http[side]
            if parser is None:
                continue
            self._http[side] = None
            offset, trailing = parser.take_trailing_data()
            if handshake is not None:
                new = self._ws[side] = self._new_ws_parser(self.direction_of(side), offset, handshake.deflate, bool(handshake.extensions))
            elif is_h2c:
                new = self._h2[side] = self._new_h2_parser(self.direction_of(side), offset)
            else:
                continue
            if trailing:
                new.receive_data(trailing, response.end_ts_ns)
        if is_h2c:
            self.kind = Kind.HTTP2
        if handshake is not None:
            self.kind = Kind.WEBSOCKET
            self.handshake = handshake
            self.events.append(handshake)

    def _start_h2c(self, request: HttpRequest) -> None:
        """RFC 7540 3.2: the upgrade request's HTTP2-Settings are the client's first SETTINGS,
        acknowledged by the 101: they hold for what the server sends from the start."""
        self.h2 = Http2Session()
        raw = request.header("http2-settings")
        if raw:
            self.h2.apply(Direction.SERVER, settings_from_upgrade(raw))

    def _make_handshake(self, request: HttpRequest, response: HttpResponse) -> WsHandshake:
        key = request.header("sec-websocket-key")
        accept = response.header("sec-websocket-accept")
        valid = bool(key) and accept == accept_for_key(key)
        if not valid:
            self.events.append(Finding(response.ts_ns, Direction.SERVER, "ws-bad-accept", f"Sec-WebSocket-Accept {accept!r:.60} does not match the key {key!r:.40}"))
        version = request.header("sec-websocket-version")
        if version and version != "13":
            self.events.append(Finding(request.ts_ns, Direction.CLIENT, "ws-bad-version", f"Sec-WebSocket-Version {version!r:.20}; RFC 6455 requires 13"))
        extensions = response.header("sec-websocket-extensions")
        return WsHandshake(
            ts_ns=request.ts_ns,
            key=key,
            accept=accept,
            accept_valid=valid,
            version=version,
            subprotocol=response.header("sec-websocket-protocol"),
            extensions=extensions,
            deflate=parse_deflate_offer(extensions),
        )


class _PlaintextQueue(list):
    """A TLS parser's PlaintextReceiver: one side's decrypted bytes, as (data, length, first ts,
    last ts) entries (data None for a gap of `length`), until the connection takes them."""

    __slots__ = ()

    def receive_plaintext(self, data: bytes, first_ts_ns: int, last_ts_ns: int) -> None:
        self.append((data, len(data), first_ts_ns, last_ts_ns))

    def receive_plaintext_gap(self, length: int, ts_ns: int) -> None:
        self.append((None, length, ts_ns, ts_ns))


class _SideEvidence:
    """What one side's first contiguous bytes say about the protocol, gathered as they come.

    The bytes are searched once each, in DETECTION_PREFIX bytes at most; a
    gap after them, the end of the stream or a full prefix closes the evidence
    (a gap before any data does not: it only means the capture missed the start).
    """

    __slots__ = ("prefix", "first_offset", "gap_first", "closed", "sends", "client_hello", "h2_preface", "_requests", "_status_searched")

    def __init__(self) -> None:
        self.prefix = bytearray()
        self.first_offset: int | None = None  # of the first data or gap
        self.gap_first = False
        self.closed = False
        self.sends: str | None = None  # Role.REQUEST or Role.RESPONSE once a start line is seen
        # Whether the first bytes are a TLS record with a ClientHello (None: too few to tell).
        self.client_hello: bool | None = None
        # Whether the first bytes are the HTTP/2 client preface (None: too few to tell).
        self.h2_preface: bool | None = None
        self._requests = StartLineFinder(Role.REQUEST)
        self._status_searched = 0

    def add(self, event) -> None:
        if self.first_offset is None and isinstance(event, (StreamData, StreamGap)):
            self.first_offset = event.offset
            self.gap_first = isinstance(event, StreamGap)
        if self.closed:
            return
        if isinstance(event, StreamData):
            self.prefix += event.data[: DETECTION_PREFIX - len(self.prefix)]
            if self.client_hello is None and not self.gap_first:
                self.client_hello = starts_with_client_hello(self.prefix)
                if self.client_hello:
                    return
            if self.h2_preface is None and not self.gap_first:
                self.h2_preface = starts_with_preface(self.prefix)
                if self.h2_preface is not False:
                    return  # the preface, or its first bytes: its line "PRI * HTTP/2.0" is no HTTP/1.1 request
            self._look_for_http()
            self.closed = len(self.prefix) >= DETECTION_PREFIX
        elif not isinstance(event, StreamGap) or self.prefix:
            self.closed = True

    def _look_for_http(self) -> None:
        """A request line ending a line, or `HTTP/1.x NNN ` anywhere (a status line maybe cut short)."""
        prefix = self.prefix
        if self._requests.find(prefix, 0) >= 0:
            self.sends = Role.REQUEST
            return
        position = prefix.find(b"HTTP/1.", self._status_searched)
        while position >= 0 and position + 13 <= len(prefix):
            if is_status_code_prefix(prefix, position) and prefix[position + 12] == 0x20:
                self.sends = Role.RESPONSE
                return
            position = prefix.find(b"HTTP/1.", position + 1)
        self._status_searched = position if position >= 0 else max(len(prefix) - 6, 0)

    def starts_with_message(self, role: str) -> bool:
        """Whether parsing may start at the first byte (False mid-message, after a gap, or when unsure)."""
        if self.first_offset is None:
            return True
        return not self.gap_first and looks_like_message_start(self.prefix, role)


def _looks_like_ws_frames(data: bytes | bytearray) -> bool | None:
    """If `data` (a side's first bytes) is a run of WebSocket frames, return whether they are masked.

    At least one frame must be whole; the last may be cut short where the
    evidence ends (DETECTION_PREFIX, a gap, the window): segments can end anywhere.
    """
    pos = 0
    masked_seen: set[bool] = set()
    whole_frames = 0
    n = len(data)
    while pos + 2 <= n:
        b0, b1 = data[pos], data[pos + 1]
        if b0 & 0x70 or (b0 & 0x0F) not in _WS_OPCODES:
            return None
        masked_seen.add(bool(b1 & 0x80))
        length = b1 & 0x7F
        header = 2 + (4 if b1 & 0x80 else 0)
        if length >= 126:
            size_bytes = 2 if length == 126 else 8
            if pos + 2 + size_bytes > n:
                break
            length = int.from_bytes(data[pos + 2 : pos + 2 + size_bytes], "big")
            header += size_bytes
        pos += header + length
        if pos <= n:
            whole_frames += 1
    if whole_frames == 0 or len(masked_seen) != 1:
        return None
    return masked_seen.pop()
