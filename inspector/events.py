"""Events produced by the sans-IO parsers.

The events made per segment or per message (stream data, HTTP messages, WebSocket
frames and messages, findings) are plain slotted dataclasses, not frozen ones: a frozen
dataclass sets each field through object.__setattr__, which made a WsFrame cost 1.8 us
to build against 0.29 us (measured, Python 3.11).  Nothing changes an event once its
parser has handed it out; treat them as values.

Every event carries a timestamp in integer nanoseconds since the epoch
(`ts_ns`; the one timestamp type used throughout) and the stream offsets or
wire byte counts that overhead attribution is computed from.  Offsets are
positions in one direction's reassembled TCP byte stream, counted from the
first byte after the SYN (or from the first byte seen, mid-stream).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple


class Direction(enum.IntEnum):
    """Which side of a TCP connection sent something."""

    CLIENT = 0
    SERVER = 1

    @property
    def label(self) -> str:
        return "client" if self is Direction.CLIENT else "server"

    @property
    def other(self) -> "Direction":
        return Direction.SERVER if self is Direction.CLIENT else Direction.CLIENT


class _NeedData:
    """Sentinel returned by `next_event()` when more bytes are needed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()

# Payload an event carries when a parser is used on its own (HttpRequest/HttpResponse
# .body_preview, WsFrame/WsMessage.payload); the rest is only counted. A TcpConnection
# carries less, what the tables show (parse.connection.TABLE_PREVIEW_BYTES).
DEFAULT_PREVIEW_BYTES = 4096


# --- TCP stream events -------------------------------------------------------


@dataclass(slots=True)
class StreamData:
    """In-order bytes of one direction, starting at `offset`."""

    direction: Direction
    offset: int
    data: bytes
    ts_ns: int


@dataclass(slots=True)
class StreamGap:
    """`length` bytes at `offset` were never captured; they are not zero-filled."""

    direction: Direction
    offset: int
    length: int
    ts_ns: int


@dataclass(slots=True)
class StreamEnd:
    """The direction ended (FIN, RST or end of capture) at `offset`."""

    direction: Direction
    offset: int
    ts_ns: int
    reset: bool = False


# --- HTTP/1.1 ----------------------------------------------------------------


def parse_header_lines(raw: str) -> tuple[tuple[str, str], ...]:
    """Split raw header lines into (name, value) pairs; obs-fold lines are joined."""
    headers: list[tuple[str, str]] = []
    for line in raw.split("\n"):
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t") and headers:
            # obs-fold (RFC 9112 5.2): a continuation of the previous value.
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return tuple(headers)


class _HttpMessage:
    """What requests and responses share: sizes and header lookup."""

    __slots__ = ()

    @property
    def wire_bytes(self) -> int:
        return self.header_bytes + self.body_wire_bytes

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return parse_header_lines(self.raw_headers)

    def header(self, name: str) -> str:
        """First value of header `name` (case-insensitive), or ""."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return ""


@dataclass(slots=True)
class HttpRequest(_HttpMessage):
    """One request: start line + headers + body, measured from stream offsets.

    header_bytes: start line, header lines and the blank line.
    body_wire_bytes: body as it crossed the wire, chunk framing included
        (and missing bytes included: this is the span in the stream).
    chunk_framing_bytes: chunk-size lines, their CRLFs, last chunk, trailers.
    body_bytes: decoded body length (chunked framing removed).
    missing_bytes: bytes of the body span that fell into capture gaps.

    An HTTP/2 message (parse/http2.py) has a stream_id (None for HTTP/1.x) and
    measures its frames instead: header_bytes is its HPACK header blocks
    (HEADERS and CONTINUATION fragments, trailers' too), body_wire_bytes its
    DATA frames whole, chunk_framing_bytes their 9-byte headers, Pad Length
    fields and padding, body_bytes their data; http1_header_bytes is what the
    same headers would take as HTTP/1.1 text (None when the block could not
    be decoded); raw_headers are the decoded fields as HTTP/1.1 lines.  A
    request a server promised (PUSH_PROMISE: RFC 9113 8.4) is sent by the
    server: its direction is SERVER, its stream the promised one, its
    header_bytes the PUSH_PROMISE's header block, and it has no body.
    """

    direction: Direction
    ts_ns: int
    end_ts_ns: int
    offset: int
    method: str
    target: str
    version: str
    raw_headers: str  # header lines after the start line, as sent (latin-1)
    header_bytes: int
    body_wire_bytes: int
    chunk_framing_bytes: int
    body_bytes: int
    missing_bytes: int
    content_encoding: str
    decompressed_bytes: int | None
    complete: bool
    body_preview: bytes = b""
    stream_id: int | None = None
    http1_header_bytes: int | None = None


@dataclass(slots=True)
class HttpResponse(_HttpMessage):
    """One response; same measurements as HttpRequest."""

    direction: Direction
    ts_ns: int
    end_ts_ns: int
    offset: int
    version: str
    status: int
    reason: str
    raw_headers: str  # header lines after the start line, as sent (latin-1)
    header_bytes: int
    body_wire_bytes: int
    chunk_framing_bytes: int
    body_bytes: int
    missing_bytes: int
    content_encoding: str
    decompressed_bytes: int | None
    complete: bool
    body_preview: bytes = b""
    stream_id: int | None = None
    http1_header_bytes: int | None = None


# --- WebSocket ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WsHandshake:
    """The HTTP upgrade exchange that switched a connection to WebSocket."""

    ts_ns: int
    key: str
    accept: str
    accept_valid: bool
    version: str
    subprotocol: str
    extensions: str
    deflate: "DeflateParams | None"


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """Negotiated permessage-deflate parameters (RFC 7692 section 7.1)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15


@dataclass(slots=True)
class WsFrame:
    """One WebSocket frame (RFC 6455 section 5.2).

    header_bytes counts the 2-byte base header, the extended length and the
    4-byte masking key.  payload_length is the length field's value;
    missing_bytes of those fell into capture gaps.  `payload` is the unmasked
    payload, possibly cut to a preview length (`payload_truncated`).
    """

    direction: Direction
    ts_ns: int
    offset: int
    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    opcode: int
    masked: bool
    mask_key: bytes
    payload_length: int
    header_bytes: int
    missing_bytes: int
    payload: bytes
    payload_truncated: bool
    close_code: int | None = None
    close_reason: str = ""

    @property
    def is_control(self) -> bool:
        return self.opcode >= 0x8

    @property
    def wire_bytes(self) -> int:
        return self.header_bytes + self.payload_length


@dataclass(slots=True)
class WsMessage:
    """A data message assembled from one or more frames.

    wire_payload_bytes: payload bytes on the wire over all its frames.
    payload_bytes: size after permessage-deflate decompression (equal to
        wire_payload_bytes when not compressed); None if it could not be
        decompressed (gap, corrupt stream).
    """

    direction: Direction
    ts_ns: int
    end_ts_ns: int
    offset: int
    end_offset: int
    opcode: int
    frames: int
    header_bytes: int
    wire_payload_bytes: int
    payload_bytes: int | None
    compressed: bool
    text_valid: bool | None
    complete: bool
    payload: bytes
    payload_truncated: bool


class WsOneFrameMessage(NamedTuple):
    """A whole data message of one final frame: its WsFrame and WsMessage in one record.

    What a WebSocket parser hands a caller that asked for records (`one_frame_records`)
    for the common case its fast path reads whole, instead of the two events: the
    fields the two have in common once, and no fields whose values such a message
    fixes (fin, one frame, nothing missing, complete, no close code).  A parser
    builds it with `tuple.__new__(WsOneFrameMessage, fields)`, a third of the
    NamedTuple constructor's cost; `events()` gives the two events it stands for.

    payload: the frame's payload (unmasked, cut to the preview length);
    message_payload: the message's (decompressed when compressed).  Where a
    WsFrame's mask_key, payload, opcode and close_reason are read, a record
    may stand for its frame.
    """

    direction: Direction
    ts_ns: int
    offset: int
    opcode: int
    compressed: bool  # RSV1 of a permessage-deflate message
    masked: bool
    mask_key: bytes
    payload_length: int
    header_bytes: int
    payload: bytes
    payload_bytes: int
    text_valid: bool | None
    message_payload: bytes

    close_reason = ""  # as its WsFrame's (a class attribute, not a field)

    def events(self) -> tuple[WsFrame, WsMessage]:
        """The WsFrame and the WsMessage this record stands for."""
        (direction, ts_ns, offset, opcode, compressed, masked, mask_key, length, header_bytes, payload, payload_bytes,
         text_valid, message_payload) = self
        return (WsFrame(direction, ts_ns, offset, True, compressed, False, False, opcode, masked, mask_key, length, header_bytes, 0,
                        payload, len(payload) < length, None, ""),
                WsMessage(direction, ts_ns, ts_ns, offset, offset + header_bytes + length, opcode, 1, header_bytes, length,
                          payload_bytes, compressed, text_valid, True, message_payload, len(message_payload) < payload_bytes))


@dataclass(slots=True)
class Finding:
    """A protocol conformance finding; never fatal."""

    ts_ns: int
    direction: Direction | None
    rule: str
    detail: str


# --- TLS (record layer, without keys) -----------------------------------------


@dataclass(slots=True)
class TlsRecord:
    """One TLS record (RFC 8446 section 5.1, RFC 5246 section 6.2).

    content_type and version are the header's fields as sent (TLS 1.3 records
    say 0x0303); length is the header's length field, of which missing_bytes
    fell into capture gaps.  header_bytes is the 5-byte record header.
    encrypted: the payload cannot be read without keys (application data,
    anything after this side's ChangeCipherSpec in TLS 1.2 and earlier).
    handshake: the payload counts as handshake (handshake, ChangeCipherSpec and
    alert records, and the encrypted handshake records of TLS 1.3 as told from
    their place in the conversation, see parse/tls.py); otherwise as encrypted data.
    messages: what was read of it in clear (or decrypted): handshake message names, an alert.
    decrypted: the payload was decrypted with logged secrets (parse/tls_decrypt.py); then
    handshake is told by its real content type, and for application data
    plaintext_offset is where its plaintext_bytes start in the direction's plaintext
    (what the HTTP/WebSocket parsers read), prefix_bytes the payload bytes before them
    (TLS 1.2's explicit nonce), and aead_overhead_bytes the payload that is not plaintext
    (prefix, tag, TLS 1.3's inner content type and padding).
    """

    direction: Direction
    ts_ns: int
    offset: int
    content_type: int
    version: int
    length: int
    header_bytes: int
    missing_bytes: int
    encrypted: bool
    handshake: bool
    messages: str = ""
    decrypted: bool = False
    plaintext_offset: int = -1
    plaintext_bytes: int = 0
    prefix_bytes: int = 0
    aead_overhead_bytes: int = 0

    @property
    def wire_bytes(self) -> int:
        return self.header_bytes + self.length


@dataclass(frozen=True, slots=True)
class TlsClientHello:
    """What a ClientHello offers (RFC 8446 section 4.1.2); GREASE values left out.

    supported_versions: the supported_versions extension (empty without one);
    server_name: the first host_name of server_name (SNI), "" without one;
    alpn: the protocols offered by application_layer_protocol_negotiation.
    """

    direction: Direction
    ts_ns: int
    legacy_version: int
    supported_versions: tuple[int, ...]
    cipher_suites: tuple[int, ...]
    server_name: str
    alpn: tuple[str, ...]
    random: bytes = b""  # the 32-byte client random: what a key log is keyed by


@dataclass(frozen=True, slots=True)
class TlsServerHello:
    """What a ServerHello chose (RFC 8446 section 4.1.3).

    version: supported_versions' selected version when present (TLS 1.3), else
    legacy_version; alpn: the protocol chosen, "" when not in the ServerHello
    (TLS 1.3 sends it in the encrypted EncryptedExtensions).
    retry_request: a HelloRetryRequest (a ServerHello with the special random).
    """

    direction: Direction
    ts_ns: int
    legacy_version: int
    version: int
    cipher_suite: int
    alpn: str
    retry_request: bool
    random: bytes = b""  # the 32-byte server random (TLS 1.2 key derivation)


# --- HTTP/2 --------------------------------------------------------------------


@dataclass(slots=True)
class Http2Frame:
    """One HTTP/2 frame (RFC 9113 section 4.1): a 9-byte header and `length` payload bytes.

    The payload's captured bytes are split by what they are (the four add up
    to length - missing_bytes): header_block_bytes the HPACK fragment of a
    HEADERS, CONTINUATION or PUSH_PROMISE frame; padding_bytes the Pad Length
    field and the padding; data_bytes a DATA frame's data; control_bytes the
    rest (SETTINGS, PING, WINDOW_UPDATE, PRIORITY, RST_STREAM, GOAWAY and
    unknown frames' payloads, HEADERS' priority fields, PUSH_PROMISE's
    promised stream id).  promised_stream_id: for a PUSH_PROMISE and the
    CONTINUATIONs of its header block, the stream it promises, whose request
    they carry (0 for other frames, and when it could not be read).  sse: a DATA
    frame of a text/event-stream response, whose bytes its SseItems own.
    """

    direction: Direction
    ts_ns: int
    offset: int
    frame_type: int
    flags: int
    stream_id: int
    length: int
    missing_bytes: int
    header_block_bytes: int
    padding_bytes: int
    data_bytes: int
    control_bytes: int
    promised_stream_id: int = 0
    sse: bool = False

    HEADER_BYTES = 9  # a class attribute, not a field

    @property
    def wire_bytes(self) -> int:
        return self.HEADER_BYTES + self.length


@dataclass(slots=True)
class Http2Preface:
    """The client connection preface (RFC 9113 section 3.4), `length` bytes at `offset`."""

    direction: Direction
    ts_ns: int
    offset: int
    length: int


# --- Server-Sent Events (a text/event-stream body: parse.sse) -------------------------
#
# Offsets are positions in the body as delivered (after chunked framing and content coding are
# undone), counted from its first byte; consecutive items cover the body without gap.


@dataclass(slots=True)
class SseEvent:
    """An event dispatched (WHATWG HTML, "Parsing an event stream"): its lines up to and with
    the blank line that ended it, [start, end) in the body.

    data_bytes: the UTF-8 length of its data as dispatched (the data lines joined by LF; of the
    bytes read, when a line was longer than the parser holds); data_chars: its characters (bad
    bytes read as U+FFFD, as the standard decodes them);
    data: its first characters (`preview_chars`); last_event_id: the stream's last event ID
    after it (what a reconnecting client sends as Last-Event-ID); retry_ms: a valid retry field
    in it, else None; text_valid: every line of it was UTF-8; truncated: a line of it was
    longer than the parser holds (its bytes counted, not read), or its data longer than the
    parser's max_data_bytes."""

    start: int
    end: int
    event_type: str
    data: str
    data_bytes: int
    data_chars: int
    last_event_id: str
    retry_ms: int | None
    lines: int
    text_valid: bool
    truncated: bool


@dataclass(slots=True)
class SseControl:
    """Bytes of the stream that carry no event, [start, end): comment lines (":" lines, which
    servers send as keep-alives) and blank lines or fields that dispatch nothing (kind
    "comment", "empty"), or an event the stream ended before its blank line ("unterminated").
    On the stream (SseItem, parse/sse_body.py) also: the framing after a body's last item
    ("end"), bytes after a capture gap up to the next blank line ("lost"), and content-coded
    bytes that could not be decoded ("undecoded")."""

    start: int
    end: int
    kind: str
    lines: int


@dataclass(slots=True)
class SseProblem:
    """What in the stream breaks the rules or the parser's bounds, at body offset `offset`."""

    offset: int
    rule: str
    detail: str


@dataclass(slots=True)
class SseItem:
    """An SseEvent or SseControl of a text/event-stream response, placed on the stream that
    carried it (parse/sse_body.py).

    ranges: the stream ranges it owns, flat (start, end, start, end, ...; one range but for an
    HTTP/2 stream whose frames other streams' interleave), its body bytes and the framing around
    them: framing_bytes of chunk framing (HTTP/2: DATA frame headers and padding), sent_bytes of
    its body as sent (content-coded: its share of the compressed bytes), missing_bytes not
    captured; decoded_bytes: its length in the decoded body (0 where not decoded).
    message_offset: the stream offset of the response (http_messages.offset); ts_ns: the capture
    time of the byte that completed it."""

    direction: Direction
    ts_ns: int
    message_offset: int
    ranges: tuple[int, ...]
    framing_bytes: int
    sent_bytes: int
    missing_bytes: int
    decoded_bytes: int
    item: SseEvent | SseControl
    stream_id: int | None = None
