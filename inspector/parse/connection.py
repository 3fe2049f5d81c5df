"""One TCP connection: reassembly, role inference and protocol hand-off (sans-IO).

A TcpConnection takes the segments of one connection in capture order and
produces, in `events`, the application events of both directions:
HttpRequest/HttpResponse, WsHandshake, WsFrame/WsMessage and Findings.

The two endpoints are called sides 0 (sender of the first packet seen) and 1
until it is known which is the client: the side that sent the SYN, or,
without one, the side whose bytes look like requests (or masked WebSocket
frames).  The protocol is detected from content, never from port numbers.
"""

from __future__ import annotations

import re
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
from inspector.parse.budget import DEFAULT_MAX_DECOMPRESSED_PER_CAPTURE, DEFAULT_MAX_DECOMPRESSED_PER_CONNECTION, DecompressionBudget
from inspector.parse.http1 import Http1Parser, Role
from inspector.parse.tcp import SegmentFate, TcpStreamReassembler
from inspector.parse.websocket import WebSocketParser, accept_for_key, parse_deflate_offer

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10

# Undecided streams are held back until this much evidence has been seen.
DETECTION_WINDOW = 64 * 1024
# The first bytes of a request (its line may be cut short by snaplen or a gap).
_HTTP_REQUEST_AT_START = re.compile(rb"\A(?:\r?\n)*[A-Z]{3,12} \S")
_HTTP_REQUEST_ANYWHERE = re.compile(rb"[A-Z]{3,12} [^\s]+ HTTP/1\.[01]\r?\n")
_HTTP_RESPONSE_ANYWHERE = re.compile(rb"HTTP/1\.[01] \d{3} ")
_WS_OPCODES = (0, 1, 2, 8, 9, 10)


class Kind:
    REST = "rest"
    WEBSOCKET = "websocket"
    OTHER = "other"


@dataclass(frozen=True)
class ParserOptions:
    max_ws_message_bytes: int = 64 * 1024 * 1024
    # Payload kept per frame and message for display; the rest is only counted.
    preview_bytes: int = 256
    # Decompressed bytes, HTTP bodies and WebSocket messages together, per
    # connection and per capture (each worker process has the whole of the
    # capture's budget for its share): see inspector.parse.budget.
    max_decompressed_per_connection: int = DEFAULT_MAX_DECOMPRESSED_PER_CONNECTION
    max_decompressed_per_capture: int = DEFAULT_MAX_DECOMPRESSED_PER_CAPTURE


class TcpConnection:
    """Everything known about one TCP connection."""

    def __init__(self, conn_id: int, options: ParserOptions | None = None, *, client_hint: int = 0,
                 capture_budget: DecompressionBudget | None = None) -> None:
        """client_hint: the side to call the client when nothing else tells
        (the caller knows the ports: the higher, ephemeral one is usually the client's).
        capture_budget: what the whole capture may still decompress."""
        self.conn_id = conn_id
        self._capture_budget = capture_budget
        self._budget: DecompressionBudget | None = None  # the connection's, made with its parsers
        self._client_hint = client_hint
        self.options = options or ParserOptions()
        self.streams = (TcpStreamReassembler(Direction(0)), TcpStreamReassembler(Direction(1)))
        self.client_side: int | None = None
        self.kind: str | None = None
        self.events: list = []
        self.handshake: WsHandshake | None = None
        self.closed = False
        self._held: list = []  # stream events waiting for role/protocol detection
        self._held_bytes = 0
        self._http: dict[int, Http1Parser] = {}
        self._ws: dict[int, WebSocketParser] = {}
        self._ended = [False, False]
        self._upgrade_request: HttpRequest | None = None

    # -- input -----------------------------------------------------------------

    def receive_segment(self, side: int, ts_ns: int, seq: int, ack: int, flags: int, payload: bytes, payload_wire_len: int) -> SegmentFate:
        """Feed one segment sent by `side`; returns what became of its payload."""
        stream = self.streams[side]
        if flags & TCP_SYN:
            self._note_syn(side, flags)
        fate = stream.receive_segment(seq, payload, payload_wire_len, ts_ns, syn=bool(flags & TCP_SYN))
        if flags & TCP_FIN:
            stream.receive_fin((seq + 1) % (1 << 32) if flags & TCP_SYN else seq, payload_wire_len)
        if flags & TCP_RST:
            stream.receive_rst()
        self._pump(side)
        if flags & TCP_ACK:
            peer = self.streams[1 - side]
            # Only a peer waiting on a hole can learn something from an ACK.
            if peer.has_pending and not peer.closed:
                peer.acknowledged(peer.offset_of(ack), ts_ns)
                self._pump(1 - side)
        return fate

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
        """End of the connection or of the capture: flush everything."""
        if self.closed:
            return
        for side in (0, 1):
            self.streams[side].close(ts_ns)
            self._pump(side)
        if self._held:
            self._decide(force=True)
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
                self._held.append((side, event))
                if isinstance(event, StreamData):
                    self._held_bytes += len(event.data)
                self._decide(force=isinstance(event, StreamEnd) and self._ended_both(side))
            else:
                self._dispatch(side, event)

    def _ended_both(self, side: int) -> bool:
        self._ended[side] = True
        return all(self._ended)

    def _decide(self, force: bool = False) -> None:
        """Pick client side and protocol from held data, then replay it."""
        kind, client_side = self._detect()
        if kind is None:
            if not force and self._held_bytes < DETECTION_WINDOW:
                return
            kind = Kind.OTHER
        if self.client_side is None:
            self.client_side = client_side if client_side is not None else self._guess_client()
        self.kind = kind
        self._start_parsers()
        held, self._held = self._held, []
        for side, event in held:
            self._dispatch(side, event)

    def _guess_client(self) -> int:
        # Without a SYN or content evidence, go by the caller's hint, and
        # record the guess so that it is visible.
        self.events.append(Finding(0, None, "tcp-client-guessed", "no SYN and no request seen: client side guessed from the ports"))
        return self._client_hint

    def _detect(self) -> tuple[str | None, int | None]:
        first: dict[int, bytes] = {}
        for side, event in self._held:
            if isinstance(event, StreamData) and side not in first:
                first[side] = event.data
        for side, data in first.items():
            if _HTTP_REQUEST_ANYWHERE.search(data[:8192]):
                return Kind.REST, side
            if _HTTP_RESPONSE_ANYWHERE.search(data[:8192]):
                return Kind.REST, 1 - side
        for side, data in first.items():
            masked = _looks_like_ws_frames(data)
            if masked is not None:
                return Kind.WEBSOCKET, side if masked else 1 - side
        return None, None

    def _start_parsers(self) -> None:
        options = self.options
        for side in (0, 1):
            direction = self.direction_of(side)
            start = self._first_offset(side)
            if self.kind == Kind.REST:
                role = Role.REQUEST if direction is Direction.CLIENT else Role.RESPONSE
                # Mid-stream, the first bytes may be the middle of a message.
                in_sync = self._starts_with_message(side, role)
                self._http[side] = Http1Parser(direction, role, start_offset=start, preview_bytes=options.preview_bytes, in_sync=in_sync,
                                               decompression_budget=self._decompression_budget())
            elif self.kind == Kind.WEBSOCKET:
                self._ws[side] = self._new_ws_parser(direction, start, deflate=None, negotiated=False)

    def _first_offset(self, side: int) -> int:
        for held_side, event in self._held:
            if held_side == side and isinstance(event, (StreamData, StreamGap)):
                return event.offset
        return self.streams[side].next_offset

    def _starts_with_message(self, side: int, role: str) -> bool:
        for held_side, event in self._held:
            if held_side == side and isinstance(event, StreamData):
                data = event.data
                if role == Role.REQUEST:
                    return bool(_HTTP_REQUEST_AT_START.match(data))
                return data.lstrip(b"\r\n")[:5] == b"HTTP/"
            if held_side == side and isinstance(event, StreamGap):
                return False
        return True

    def _new_ws_parser(self, direction: Direction, start: int, deflate, negotiated: bool) -> WebSocketParser:
        return WebSocketParser(
            direction,
            start_offset=start,
            deflate=deflate,
            extensions_negotiated=negotiated,
            max_message_bytes=self.options.max_ws_message_bytes,
            preview_bytes=self.options.preview_bytes,
            decompression_budget=self._decompression_budget(),
        )

    def _decompression_budget(self) -> DecompressionBudget:
        if self._budget is None:
            limit = self.options.max_decompressed_per_connection
            self._budget = DecompressionBudget(limit, "connection", self._capture_budget)
        return self._budget

    # -- dispatch --------------------------------------------------------------------

    def _dispatch(self, side: int, event) -> None:
        parser = self._ws.get(side) or self._http.get(side)
        if parser is None:
            return  # another protocol or a tunnel: its bytes count as unparsed
        if isinstance(event, StreamData):
            parser.receive_data(event.data, event.ts_ns)
        elif isinstance(event, StreamGap):
            parser.receive_gap(event.length, event.ts_ns)
        elif isinstance(event, StreamEnd):
            parser.receive_eof(event.ts_ns)
        self._drain(side)

    def _drain(self, side: int) -> None:
        if side in self._ws:
            self._drain_ws(side)
            return
        parser = self._http[side]
        while True:
            event = parser.next_event()
            if event is NEED_DATA:
                break
            self.events.append(event)
            if isinstance(event, HttpRequest):
                self._on_request(side, event)
            elif isinstance(event, HttpResponse):
                self._on_response(side, event)
                if side in self._ws:
                    return

    def _drain_ws(self, side: int) -> None:
        parser = self._ws[side]
        while True:
            event = parser.next_event()
            if event is NEED_DATA:
                return
            self.events.append(event)

    def _on_request(self, side: int, request: HttpRequest) -> None:
        response_parser = self._http.get(1 - side)
        if response_parser is not None:
            response_parser.expect_response_to(request.method)
        if self._http[side].paused:
            self._upgrade_request = request

    def _on_response(self, side: int, response: HttpResponse) -> None:
        request_side = 1 - side
        request_parser = self._http.get(request_side)
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
        handshake = self._make_handshake(request, response) if is_websocket else None
        for side in (client_side, server_side):
            parser = self._http.pop(side, None)
            if parser is None:
                continue
            offset, trailing = parser.take_trailing_data()
            if handshake is not None:
                ws = self._new_ws_parser(self.direction_of(side), offset, handshake.deflate, bool(handshake.extensions))
                self._ws[side] = ws
                if trailing:
                    ws.receive_data(trailing, response.end_ts_ns)
                    self._drain_ws(side)
        if handshake is not None:
            self.kind = Kind.WEBSOCKET
            self.handshake = handshake
            self.events.append(handshake)

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


def _looks_like_ws_frames(data: bytes) -> bool | None:
    """If `data` is a run of whole WebSocket frames, return whether they are masked."""
    pos = 0
    masked_seen: set[bool] = set()
    frames = 0
    n = len(data)
    while pos < n:
        if pos + 2 > n:
            return None
        b0, b1 = data[pos], data[pos + 1]
        if b0 & 0x70 or (b0 & 0x0F) not in _WS_OPCODES:
            return None
        length = b1 & 0x7F
        header = 2
        if length == 126:
            if pos + 4 > n:
                return None
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            header = 4
        elif length == 127:
            if pos + 10 > n:
                return None
            length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            header = 10
        masked = bool(b1 & 0x80)
        header += 4 if masked else 0
        masked_seen.add(masked)
        pos += header + length
        frames += 1
    if pos != n or len(masked_seen) != 1 or frames == 0:
        return None
    return masked_seen.pop()
