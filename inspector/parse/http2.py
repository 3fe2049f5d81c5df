"""HTTP/2 frames of one direction, header blocks decoded (RFC 9113, RFC 7541; sans-IO).

Hand an Http2Parser the bytes one side sent with `receive_data`, capture holes
with `receive_gap` and the end with `receive_eof`, as the other parsers; it
makes an Http2Frame per frame (an Http2Preface for the client's connection
preface), an HttpRequest or HttpResponse per message (with its stream_id) once
its stream ends, and Findings.  The parsers of a connection's two directions
share one Http2Session: the SETTINGS each side sent and when the other
acknowledged them, and streams reset by either side.

Frames: hyperframe reads each 9-byte frame header, then the body of every
frame but DATA, held whole (control frames up to MAX_CONTROL_PAYLOAD, header
block frames up to MAX_HEADER_BLOCK_BYTES a block).  A DATA frame's payload is
never held: its Pad Length byte is read as it comes, its data counted, its
first bytes kept as the message's preview, gzip and deflate bodies measured in
steps as HTTP/1.1 bodies are (http1_body.inflate).

Header blocks (HEADERS or PUSH_PROMISE, then CONTINUATION until END_HEADERS)
go whole, in stream order, to the direction's own hpack Decoder.  An HPACK
encoder may only grow its dynamic table up to the SETTINGS_HEADER_TABLE_SIZE
the *other* side advertised (RFC 7541 4.2, RFC 9113 6.5.2), and a new value
holds from the moment the encoder's side acknowledges it (its SETTINGS frame
with ACK, in its own stream, so in order with its header blocks).  Decoding
itself never depends on the limit (the encoder announces every size change in
the block), so a table over the limit is a finding, not a reason to stop.

Protocol errors are findings (`h2-protocol-error`, `h2-frame-size-error`, ...)
and framing goes on wherever the frame's length tells where the next frame
starts.  A capture gap inside a frame's payload keeps framing (the length is
known): in DATA it is missing body bytes; in a header block it breaks HPACK for
the direction, since the decoder's table would miss what the block inserted:
`h2-hpack-desync`, then every later block of the direction is undecodable (an
`h2-headers-undecodable` finding each; the message's row has no method, path
or status) while its bytes are still counted.  A gap outside a payload loses
framing: the bytes after it are searched for the next frame header, one that
obeys every rule a header can be checked against and is followed by another
(`_plausible_header`); the bytes skipped are unparsed (`h2-resync` says how
many), HPACK is lost (a header block may have been in the gap), the messages
open then are incomplete.  Past MAX_RESYNC_BYTES without one, or without the
client preface, framing is lost for good (`h2-lost-sync`): the rest of the
direction is unparsed.

Byte accounting is exact, as in the TLS and WebSocket parsers: every byte fed
belongs to the preface, to exactly one Http2Frame (its 9-byte header and
length, missing bytes included), or to `unparsed_bytes` (after lost sync, or a
frame cut short by the end of the stream, which is not emitted).
"""

from __future__ import annotations

import base64
import enum
import weakref
from dataclasses import dataclass
from http import HTTPStatus

import hpack
from hyperframe.exceptions import HyperframeError
from hyperframe.frame import Frame, GoAwayFrame, SettingsFrame

from inspector.errors import ParseError
from inspector.events import DEFAULT_PREVIEW_BYTES, Direction, Finding, Http2Frame, Http2Preface, HttpRequest, HttpResponse
from inspector.parse.budget import DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE, DecompressionBudget
from inspector.parse.http1_body import INFLATED_ENCODINGS, Message, inflate
from inspector.parse.sse_body import SseBody, is_event_stream
from inspector.parse.pending import PendingEvents

__all__ = ["CLIENT_PREFACE", "ErrorCode", "FrameChain", "FrameType", "Http2Parser", "Http2Session", "find_frame_chain", "settings_from_upgrade",
           "starts_with_preface"]

CLIENT_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 3.4
FRAME_HEADER_BYTES = 9
# RFC 9113 6.5.2 initial values of the settings the parser follows.
DEFAULT_HEADER_TABLE_SIZE = 4096
DEFAULT_MAX_FRAME_SIZE = 1 << 14
# A header block (HEADERS or PUSH_PROMISE and its CONTINUATIONs) is held whole to be
# decoded; a bigger one (a CONTINUATION flood) is dropped, which breaks HPACK for the direction.
MAX_HEADER_BLOCK_BYTES = 256 * 1024
# What a decoded header list may hold (hpack's measure: name + value + 32 a field).
MAX_HEADER_LIST_BYTES = 256 * 1024
# The decoder's own cap on its dynamic table, whatever the SETTINGS say: a hostile
# encoder cannot make it hold more.
MAX_DECODER_TABLE_BYTES = 1 << 20
# Payload of a control frame held to be read (a SETTINGS frame has a few settings;
# a GOAWAY's debug data past its first 8 bytes is only counted).
MAX_CONTROL_PAYLOAD = 16 * 1024
# Messages open at once per direction (streams whose END_STREAM has not come);
# past this the oldest is closed, incomplete.
MAX_OPEN_MESSAGES = 4096
# After a gap between frames, the bytes searched for the next frame header (then framing is lost
# for good): a candidate is taken once the header after it is seen too, so this holds a frame of
# the default largest size and the next header several times over.
MAX_RESYNC_BYTES = DEFAULT_MAX_FRAME_SIZE * 4
# Frame headers that must follow each other, each where the one before it ends, before a side's
# first bytes seen mid-connection are taken for HTTP/2 (fewer when the bytes end exactly where
# the last of them does): one plausible header is 9 bytes that chance can make, three in a row are not.
MIN_CHAINED_FRAMES = 3
HTTP2_VERSION = "HTTP/2"


class FrameType(enum.IntEnum):
    """RFC 9113 section 6."""

    DATA = 0
    HEADERS = 1
    PRIORITY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PUSH_PROMISE = 5
    PING = 6
    GOAWAY = 7
    WINDOW_UPDATE = 8
    CONTINUATION = 9


class Flag(enum.IntFlag):
    """RFC 9113 section 6 (ACK shares END_STREAM's bit, on SETTINGS and PING)."""

    END_STREAM = 0x1
    ACK = 0x1
    END_HEADERS = 0x4
    PADDED = 0x8
    PRIORITY = 0x20


class ErrorCode(enum.IntEnum):
    """RFC 9113 section 7."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


_HEADER_BLOCK_FRAMES = (FrameType.HEADERS, FrameType.PUSH_PROMISE, FrameType.CONTINUATION)
# What a side may still send on a stream it reset (RFC 9113 5.1 "closed", 5.4.2): PRIORITY, and
# RST_STREAM again, the stream error its peer's frames in flight there are (as the h2 library does).
_AFTER_OWN_RESET = (FrameType.PRIORITY, FrameType.RST_STREAM)
_FRAME_NAMES = {t.value: t.name for t in FrameType}
_HPACK_ERRORS = (hpack.HPACKError, ValueError, IndexError, UnicodeDecodeError)
_PROMISED_STREAM_BYTES = 4
_PRIORITY_FIELD_BYTES = 5


def frame_type_name(frame_type: int) -> str:
    return _FRAME_NAMES.get(frame_type) or f"type 0x{frame_type:02X}"


def starts_with_preface(data: bytes | bytearray) -> bool | None:
    """Whether `data`, a side's first bytes, starts with the client connection preface;
    None while they are fewer than the preface and agree with it."""
    if len(data) >= len(CLIENT_PREFACE):
        return data[:len(CLIENT_PREFACE)] == CLIENT_PREFACE
    return None if CLIENT_PREFACE.startswith(data) else False


@dataclass(frozen=True)
class FrameChain:
    """HTTP/2 framing found in a side's first bytes of a connection whose start was not captured."""

    start: int  # offset of the first frame header in those bytes
    frames: int  # headers that follow each other from there
    sender: Direction | None  # who sends these frames, when a frame says so (a request or status field, a PUSH_PROMISE)


def find_frame_chain(data: bytes | bytearray, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> FrameChain | None:
    """The first offset of `data` (a side's first bytes, seen mid-connection: no preface) from which
    MIN_CHAINED_FRAMES plausible frame headers follow each other, or None.  Each start is tried once
    and its chain followed by the lengths, so this costs about one pass over `data`."""
    end = len(data)
    for start in range(end - FRAME_HEADER_BYTES + 1):
        frames, at, sender = 0, start, None
        while at + FRAME_HEADER_BYTES <= end and _plausible_header(data, at, max_frame_size, first=not frames):
            if sender is None:
                sender = _sender_of(data, at)
            frames += 1
            at += FRAME_HEADER_BYTES + int.from_bytes(data[at:at + 3], "big")
        if frames >= MIN_CHAINED_FRAMES or (frames >= 2 and at == end):
            return FrameChain(start, frames, sender)
    return None


def _sender_of(data: bytes | bytearray, at: int) -> Direction | None:
    """Who sends the frame at `at`: the server for a PUSH_PROMISE; for a HEADERS frame, by its
    block's first field when that names a static-table pseudo-header (RFC 7541 Appendix A:
    2-7 :method, :path, :scheme of a request; 8-14 :status of a response), which needs no
    dynamic table; else None."""
    frame_type, flags = data[at + 3], data[at + 4]
    if frame_type == FrameType.PUSH_PROMISE:
        return Direction.SERVER
    if frame_type != FrameType.HEADERS:
        return None
    pos = at + FRAME_HEADER_BYTES + (1 if flags & Flag.PADDED else 0) + (5 if flags & Flag.PRIORITY else 0)
    end = min(len(data), at + FRAME_HEADER_BYTES + int.from_bytes(data[at:at + 3], "big"))
    while pos < end and data[pos] & 0xE0 == 0x20:  # a dynamic table size update (5-bit prefix integer)
        pos += 1
        if data[pos - 1] & 0x1F == 0x1F:
            while pos < end and data[pos] & 0x80:
                pos += 1
            pos += 1
    if pos >= end:
        return None
    first = data[pos]
    # Indexed field (1xxxxxxx), literal with incremental indexing (01xxxxxx), else 0000xxxx / 0001xxxx.
    index = first & 0x7F if first & 0x80 else first & 0x3F if first & 0x40 else first & 0x0F
    if 2 <= index <= 7:
        return Direction.CLIENT
    return Direction.SERVER if 8 <= index <= 14 else None


def settings_from_upgrade(value: str) -> dict[int, int] | None:
    """The settings of an HTTP2-Settings header (RFC 9113 3.2.1 of RFC 7540: a SETTINGS
    frame's payload in base64url, no padding), None when it is not one."""
    try:
        payload = base64.urlsafe_b64decode(value.strip() + "=" * (-len(value.strip()) % 4))
        frame = SettingsFrame(0)
        frame.parse_body(memoryview(payload))
    except (ValueError, HyperframeError):
        return None
    return dict(frame.settings)


class Http2Session:
    """What the parsers of a connection's two directions share, by Direction.

    table_size_limit[d]: the dynamic table size d's HPACK encoder may use, the
    SETTINGS_HEADER_TABLE_SIZE the other side sent and d acknowledged;
    max_frame_size[d]: the largest frame d may send, the same way.  A SETTINGS
    frame waits in `_unacked` for the other side's ACK; an ACK seen before the
    SETTINGS it answers (the two directions are read apart) is owed and applied
    when that SETTINGS comes.  The parsers are held by weak reference: each parser
    holds its session, and the analysis runs with the cycle collector paused.
    """

    __slots__ = ("parsers", "table_size_limit", "max_frame_size", "_unacked", "_owed_acks")

    def __init__(self) -> None:
        self.parsers: list[weakref.ref[Http2Parser] | None] = [None, None]
        self.table_size_limit = [DEFAULT_HEADER_TABLE_SIZE, DEFAULT_HEADER_TABLE_SIZE]
        self.max_frame_size = [DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_FRAME_SIZE]
        self._unacked: tuple[list, list] = ([], [])  # by sender: settings dicts (None: lost in a gap)
        self._owed_acks = [0, 0]  # by acknowledging side

    def settings_sent(self, sender: Direction, settings: dict[int, int] | None) -> None:
        """`sender` sent a SETTINGS frame (None: one whose payload fell into a gap)."""
        acker = sender.other
        if self._owed_acks[acker]:
            self._owed_acks[acker] -= 1
            self.apply(acker, settings)
        else:
            self._unacked[sender].append(settings)

    def settings_acknowledged(self, acker: Direction) -> None:
        """`acker` sent a SETTINGS ACK: the other side's oldest SETTINGS holds for it from now."""
        waiting = self._unacked[acker.other]
        if waiting:
            self.apply(acker, waiting.pop(0))
        else:
            self._owed_acks[acker] += 1

    def apply(self, encoder: Direction, settings: dict[int, int] | None) -> None:
        """What `encoder` may send from now on, by the other side's settings; lost ones lift the limits."""
        if settings is None:
            self.table_size_limit[encoder] = MAX_DECODER_TABLE_BYTES
            self.max_frame_size[encoder] = (1 << 24) - 1
            return
        self.table_size_limit[encoder] = settings.get(SettingsFrame.HEADER_TABLE_SIZE, self.table_size_limit[encoder])
        self.max_frame_size[encoder] = settings.get(SettingsFrame.MAX_FRAME_SIZE, self.max_frame_size[encoder])

    def reset_stream(self, stream_id: int, ts_ns: int, sender: Direction) -> None:
        """RST_STREAM from `sender` ends the stream both ways."""
        for parser_ref in self.parsers:
            parser = None if parser_ref is None else parser_ref()
            if parser is not None:
                parser.end_stream_abruptly(stream_id, ts_ns, by_this_side=parser.direction is sender)


class _Frame:
    """The frame whose payload is being read."""

    __slots__ = ("ts_ns", "offset", "frame_type", "flags", "stream_id", "length", "parsed", "done", "missing", "held", "pad_length",
                 "data_bytes", "padding_bytes", "message")

    def __init__(self, ts_ns: int, offset: int, frame_type: int, flags: int, stream_id: int, length: int, parsed: Frame | None) -> None:
        self.ts_ns = ts_ns
        self.parsed = parsed  # hyperframe's frame of the header (None: the header breaks a rule)
        self.offset = offset
        self.frame_type = frame_type
        self.flags = flags
        self.stream_id = stream_id
        self.length = length
        self.done = 0  # payload bytes fed, missing ones included
        self.missing = 0
        self.held: bytearray | None = None  # the payload, for the frames read whole
        self.pad_length: int | None = None  # DATA: padding after the data, once its Pad Length byte is read
        self.data_bytes = 0  # DATA: captured data and padding bytes (the Pad Length byte included)
        self.padding_bytes = 0
        self.message: _Message | None = None  # DATA: the message it carries the body of


class _Message(Message):
    """An HTTP/2 message being read: what an HTTP/1.1 one holds, and its headers' HTTP/1.1 size."""

    __slots__ = ("http1_header_bytes", "is_request")


class _HeaderBlock:
    """A header block being gathered: its first frame's facts and its fragments."""

    __slots__ = ("ts_ns", "offset", "stream_id", "end_stream", "promise", "promised_stream_id", "fragments", "size", "broken")

    def __init__(self, ts_ns: int, offset: int, stream_id: int, end_stream: bool, promise: bool) -> None:
        self.ts_ns = ts_ns
        self.offset = offset
        self.stream_id = stream_id
        self.end_stream = end_stream
        self.promise = promise  # a PUSH_PROMISE's block: the request it promises, on promised_stream_id
        self.promised_stream_id = 0  # once the PUSH_PROMISE is read (0: it could not be)
        self.fragments: list[bytes] = []
        self.size = 0  # fragment bytes, held or not
        self.broken = ""  # why the block cannot be decoded ("" when it can)


class Http2Parser(PendingEvents):
    """HTTP/2 frames and messages of one direction.  Events go to `events` when given (as
    TcpConnection does: both directions into one list), else next_event()/take_events()."""

    def __init__(self, direction: Direction, session: Http2Session | None = None, *, start_offset: int = 0, events: list | None = None,
                 expect_preface: bool | None = None, mid_stream: bool = False, preview_bytes: int = DEFAULT_PREVIEW_BYTES,
                 max_decompressed: int = DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE,
                 decompression_budget: DecompressionBudget | None = None) -> None:
        """expect_preface: the bytes start with the client preface (default: for the client).
        mid_stream: the capture missed the connection's start, so the bytes may start anywhere:
        frames are looked for as after a gap, and header blocks decoded from an empty HPACK
        table.  That is sound: the entries the encoder added since are the newest of its table,
        at the indexes it refers to them by; a reference to an older one fails to decode
        (h2-hpack-desync), it is never read as another field."""
        self._direction = direction
        self.session = session if session is not None else Http2Session()
        self.session.parsers[direction] = weakref.ref(self)
        self._events: list = [] if events is None else events
        self._handed = 0
        self.preview_bytes = preview_bytes
        self.max_decompressed = max_decompressed
        self.decompression_budget = decompression_budget
        self._offset = start_offset
        preface = (direction is Direction.CLIENT if expect_preface is None else expect_preface) and not mid_stream
        self._preface_left = len(CLIENT_PREFACE) if preface else 0
        self._preface_ts = 0
        self._header = bytearray()  # a frame header split across chunks
        self._header_ts = 0
        self._frame: _Frame | None = None
        self._block: _HeaderBlock | None = None
        self._decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST_BYTES)
        self._decoder.max_allowed_table_size = MAX_DECODER_TABLE_BYTES
        self._table_size_reported = -1  # the table size last reported over the limit
        self._hpack_lost = ""  # why this direction's HPACK state was lost ("" while it is not)
        # Open messages by stream id (an interim response is never open: it ends with its headers).
        self._messages: dict[int, _Message] = {}
        # Recently reset streams: whether this side reset it (it may send nothing more there but
        # PRIORITY), or the other side did (frames in flight may still come).
        self._reset_streams: dict[int, bool] = {}
        self._unparsed = 0
        self._lost_sync = False
        # After a gap between frames, or from the start mid-stream: bytes being searched for a frame header.
        self._resync: bytearray | None = bytearray() if mid_stream else None
        self._mid_stream = mid_stream  # until framing is found: the search is the one from the capture's start
        self._unseen_start = mid_stream  # the HPACK table's oldest entries were never seen
        self._resynced = False  # framing was found again after a gap: streams may have opened unseen
        self._resync_ts: int | None = None  # of the bytes the search began with
        self._resync_searched = 0  # starts tried since the gap
        self._ended = False
        self._reported: set[str] = set()  # rules reported once per direction

    @property
    def direction(self) -> Direction:
        return self._direction

    @property
    def unparsed_bytes(self) -> int:
        return self._unparsed

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def hpack_lost(self) -> bool:
        return bool(self._hpack_lost)

    # --- input ---------------------------------------------------------------------

    def receive_data(self, data: bytes, ts_ns: int) -> None:
        if self._ended:
            raise ParseError(f"HTTP/2 {self._direction.label}: data after the end of the stream")
        if self._resync is not None:
            data = self._look_for_frames(data, ts_ns)
        end = len(data)
        pos = 0
        while pos < end:
            if self._lost_sync:
                self._skip(end - pos)
                return
            if self._preface_left:
                pos = self._take_preface(data, pos, ts_ns)
                continue
            frame = self._frame
            if frame is None:
                header = self._header
                if not header:
                    self._header_ts = ts_ns
                take = min(FRAME_HEADER_BYTES - len(header), end - pos)
                header += data[pos:pos + take]
                pos += take
                if len(header) == FRAME_HEADER_BYTES:
                    self._start_frame()
                continue
            take = min(frame.length - frame.done, end - pos)
            self._payload(frame, data, pos, pos + take, ts_ns)
            pos += take
            if frame.done == frame.length:
                self._finish_frame(frame, ts_ns)

    def receive_gap(self, length: int, ts_ns: int) -> None:
        """`length` bytes of the stream were never captured."""
        if self._ended:
            raise ParseError(f"HTTP/2 {self._direction.label}: gap after the end of the stream")
        if length < 0:
            raise ParseError(f"HTTP/2 {self._direction.label}: negative gap length {length}")
        frame = self._frame
        if frame is not None and not self._lost_sync:
            # The frame's length is known, so its end is: skip its missing bytes, stay in sync.
            taken = min(length, frame.length - frame.done)
            self._missing(frame, taken, ts_ns)
            length -= taken
            if frame.done == frame.length:
                self._finish_frame(frame, ts_ns)
        if not length:
            return
        if self._resync is not None:
            self._skip(len(self._resync))  # what was searched before this gap: no frame starts in it that we could finish
            self._resync.clear()
        elif self._preface_left and not self._lost_sync:
            self._lose_sync(ts_ns, f"a capture gap of {length} bytes in the client preface")
        elif not self._lost_sync:
            self._start_resync(ts_ns, length)
        self._skip(length)

    def receive_eof(self, ts_ns: int) -> None:
        """End of this direction: FIN, RST or end of capture.  Repeating it is harmless."""
        if self._ended:
            return
        if self._resync is not None:
            rest = self._look_for_frames(b"", ts_ns, final=True)
            if rest:
                self.receive_data(rest, ts_ns)
        self._ended = True
        frame = self._frame
        if frame is not None:
            # A frame cut short is not emitted: its header and payload so far are unparsed.
            self._frame = None
            self._unparsed += FRAME_HEADER_BYTES + frame.done
            self._finding(ts_ns, "h2-truncated-frame", f"{frame_type_name(frame.frame_type)} frame at offset {frame.offset} of "
                                                       f"{frame.length} bytes cut short by the end of the stream after {frame.done}")
        self._skip(len(self._header) + (len(CLIENT_PREFACE) - self._preface_left if self._preface_left else 0))
        self._header.clear()
        if self._resync is not None:
            self._skip(len(self._resync))
            self._resync = None
        if self._messages:
            self._finding(ts_ns, "h2-incomplete-stream", f"{len(self._messages)} streams had not ended when the stream did "
                                                         f"(first: stream {next(iter(self._messages))})")
            for stream_id in list(self._messages):
                self._emit(stream_id, ts_ns, complete=False)

    def end_stream_abruptly(self, stream_id: int, ts_ns: int, by_this_side: bool = False) -> None:
        """The stream was reset (by this side, or the other): its open message here ends incomplete."""
        if len(self._reset_streams) >= MAX_OPEN_MESSAGES:
            self._reset_streams.clear()
        self._reset_streams[stream_id] = self._reset_streams.get(stream_id, False) or by_this_side
        if stream_id in self._messages:
            self._emit(stream_id, ts_ns, complete=False)

    # --- the preface and frame headers ---------------------------------------------------

    def _take_preface(self, data: bytes, pos: int, ts_ns: int) -> int:
        done = len(CLIENT_PREFACE) - self._preface_left
        if not done:
            self._preface_ts = ts_ns
        take = min(self._preface_left, len(data) - pos)
        if data[pos:pos + take] != CLIENT_PREFACE[done:done + take]:
            self._lose_sync(ts_ns, "the client connection preface is not PRI * HTTP/2.0")
            self._preface_left = 0
            self._skip(done)  # what looked like a preface so far; the rest is skipped by receive_data
            return pos
        self._preface_left -= take
        if not self._preface_left:
            self._events.append(Http2Preface(self._direction, self._preface_ts, self._offset, len(CLIENT_PREFACE)))
            self._offset += len(CLIENT_PREFACE)
        return pos + take

    def _start_frame(self) -> None:
        header = self._header
        length = int.from_bytes(header[0:3], "big")
        frame_type, flags = header[3], header[4]
        stream_id = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
        ts_ns = self._header_ts
        try:
            parsed = Frame.parse_frame_header(memoryview(header))[0]  # checks the stream a frame of its type may be on
        except HyperframeError as error:
            parsed = None
            self._finding(ts_ns, "h2-protocol-error", f"{frame_type_name(frame_type)} frame at offset {self._offset}: {error}")
        frame = _Frame(ts_ns, self._offset, frame_type, flags, stream_id, length, parsed)
        self._offset += FRAME_HEADER_BYTES
        header.clear()
        if length > self.session.max_frame_size[self._direction]:
            self._finding(ts_ns, "h2-frame-size-error", f"{frame_type_name(frame_type)} frame at offset {frame.offset} of {length} bytes, "
                                                        f"over the {self.session.max_frame_size[self._direction]} the peer allows")
        block = self._block
        if block is not None and (frame_type != FrameType.CONTINUATION or stream_id != block.stream_id):
            self._finding(ts_ns, "h2-protocol-error", f"{frame_type_name(frame_type)} frame at offset {frame.offset} where a CONTINUATION "
                                                      f"of stream {block.stream_id} was due")
            self._block = None
            self._lose_hpack(ts_ns, f"the header block of stream {block.stream_id} was never finished")
        elif block is None and frame_type == FrameType.CONTINUATION:
            self._finding(ts_ns, "h2-protocol-error", f"CONTINUATION frame at offset {frame.offset} without a header block before it")
        if self._reset_streams.get(stream_id) and frame_type not in _AFTER_OWN_RESET:
            self._finding(ts_ns, "h2-frame-after-reset", f"{frame_type_name(frame_type)} frame at offset {frame.offset} on stream {stream_id}, "
                                                         f"which this side had reset and closed (RFC 9113 5.1)")
        if frame_type == FrameType.DATA:
            frame.message = self._messages.get(stream_id)
            if frame.message is not None and frame.message.sse is not None:
                frame.message.sse.framing(FRAME_HEADER_BYTES, frame.offset, ts_ns)
            if frame.message is None and parsed is not None and stream_id not in self._reset_streams and not self._resynced:
                self._finding(ts_ns, "h2-protocol-error", f"DATA frame at offset {frame.offset} on stream {stream_id}, which is not open")
        elif frame_type in _HEADER_BLOCK_FRAMES:
            gathered = 0 if self._block is None else self._block.size
            if gathered + length <= MAX_HEADER_BLOCK_BYTES:
                frame.held = bytearray()
        elif frame_type in _FRAME_NAMES and length <= MAX_CONTROL_PAYLOAD:
            frame.held = bytearray()
        elif frame_type == FrameType.GOAWAY:
            frame.held = bytearray()  # only its first MAX_CONTROL_PAYLOAD bytes (_payload)
        self._frame = frame
        if not length:
            self._finish_frame(frame, ts_ns)

    # --- payloads ------------------------------------------------------------------

    def _payload(self, frame: _Frame, data: bytes, start: int, end: int, ts_ns: int) -> None:
        if frame.frame_type == FrameType.DATA:
            self._data_payload(frame, data, start, end, ts_ns)
        elif frame.held is not None:
            room = MAX_CONTROL_PAYLOAD - len(frame.held) if frame.frame_type == FrameType.GOAWAY else end - start
            frame.held += data[start:start + min(room, end - start)]
        frame.done += end - start
        self._offset += end - start

    def _data_payload(self, frame: _Frame, data: bytes, start: int, end: int, ts_ns: int) -> None:
        """Count a piece of a DATA frame's payload (payload position frame.done on) as padding
        (the Pad Length byte too) or data; data goes to the frame's message."""
        padded = frame.flags & Flag.PADDED
        if frame.pad_length is None:
            pad_length = data[start] if padded else 0  # a padded frame's first piece starts at its Pad Length byte
            if pad_length >= frame.length:
                self._finding(frame.ts_ns, "h2-protocol-error", f"DATA frame at offset {frame.offset}: {pad_length} bytes of "
                                                                f"padding in a payload of {frame.length}")
                pad_length = frame.length - 1  # all the rest is padding
            frame.pad_length = pad_length
        first, last = frame.done, frame.done + end - start
        data_start = max(first, 1 if padded else 0)
        in_data = max(0, min(last, frame.length - frame.pad_length) - data_start)
        frame.data_bytes += in_data
        frame.padding_bytes += last - first - in_data
        message = frame.message
        if message is not None and message.sse is not None:
            self._sse_data(message.sse, frame, data[start + data_start - first:start + data_start - first + in_data], first, last, ts_ns)
        elif in_data and message is not None:
            chunk = data[start + data_start - first:start + data_start - first + in_data]
            if len(message.preview) < self.preview_bytes:
                message.preview += chunk[:self.preview_bytes - len(message.preview)]
            if message.inflating:
                inflate(message, chunk, self.max_decompressed, self.decompression_budget, self._events, self._direction)
            message.end_ts_ns = ts_ns

    def _sse_data(self, sse: SseBody, frame: _Frame, chunk: bytes, first: int, last: int, ts_ns: int) -> None:
        """A piece (payload positions first to last) of a DATA frame of a text/event-stream: its
        data to the body's SSE parser, its Pad Length byte and padding as framing."""
        message, at = frame.message, self._offset  # the stream offset of payload position `first`
        padded = frame.flags & Flag.PADDED
        if padded and first == 0:
            sse.framing(1, at, ts_ns)
        data_at = at + max(first, 1 if padded else 0) - first
        if chunk:
            if len(message.preview) < self.preview_bytes:
                message.preview += chunk[:self.preview_bytes - len(message.preview)]
            if message.inflating:
                sse.begin_coded(data_at, len(chunk), lambda _offset: ts_ns)
                inflate(message, chunk, self.max_decompressed, self.decompression_budget, self._events, self._direction)
                sse.end_coded()
            else:
                sse.content(chunk, data_at, lambda _offset: ts_ns)
            message.end_ts_ns = ts_ns
        if at + last - first > data_at + len(chunk):
            sse.framing(at + last - first - data_at - len(chunk), data_at + len(chunk), ts_ns)

    def _missing(self, frame: _Frame, count: int, ts_ns: int) -> None:
        if frame.frame_type == FrameType.DATA and frame.pad_length is None:
            frame.pad_length = 0  # the Pad Length byte is lost: the rest counts as data
        frame.done += count
        frame.missing += count
        self._offset += count
        frame.held = None  # cannot be read
        if frame.frame_type == FrameType.DATA:
            message = frame.message
            if message is not None:
                if message.sse is not None:
                    message.sse.gap(count, self._offset - count, ts_ns)
                message.missing_bytes += count
                message.complete = False
        elif frame.frame_type in _HEADER_BLOCK_FRAMES:
            self._lose_hpack(ts_ns, f"a capture gap of {count} bytes in the header block of stream {frame.stream_id}")

    # --- whole frames ----------------------------------------------------------------

    def _finish_frame(self, frame: _Frame, ts_ns: int) -> None:
        self._frame = None
        frame_type = frame.frame_type
        captured = frame.length - frame.missing
        block = padding = data = control = promised = 0
        if frame_type == FrameType.DATA:
            data, padding = frame.data_bytes, frame.padding_bytes
        elif frame_type in _HEADER_BLOCK_FRAMES:
            block, padding, control = self._header_block_frame(frame, captured)
            if self._block is not None:
                promised = self._block.promised_stream_id
        else:
            control = captured
        self._events.append(Http2Frame(self._direction, frame.ts_ns, frame.offset, frame_type, frame.flags, frame.stream_id, frame.length,
                                       frame.missing, block, padding, data, control, promised,
                                       frame_type == FrameType.DATA and frame.message is not None and frame.message.sse is not None))
        if frame_type == FrameType.DATA:
            self._data_frame_done(frame, ts_ns)
        elif frame_type in _HEADER_BLOCK_FRAMES:
            self._block_frame_done(frame, ts_ns)
        elif frame.parsed is not None:
            self._control_frame(frame)

    def _data_frame_done(self, frame: _Frame, ts_ns: int) -> None:
        message = frame.message
        if message is None:
            return
        message.wire_bytes += FRAME_HEADER_BYTES + frame.length
        message.framing_bytes += FRAME_HEADER_BYTES + frame.padding_bytes
        message.data_bytes += frame.data_bytes
        message.end_ts_ns = ts_ns
        if frame.flags & Flag.END_STREAM and self._messages.get(frame.stream_id) is message:
            self._emit(frame.stream_id, ts_ns, complete=message.complete)

    def _header_block_frame(self, frame: _Frame, captured: int) -> tuple[int, int, int]:
        """(fragment, padding, other) bytes of a HEADERS, PUSH_PROMISE or CONTINUATION frame
        (hyperframe parses its body); the fragment joins the block it belongs to.  A frame
        that cannot be read (bytes missing, past MAX_HEADER_BLOCK_BYTES, malformed) counts as
        fragment, and its block cannot be decoded."""
        frame_type = frame.frame_type
        if frame_type != FrameType.CONTINUATION:
            end_stream = bool(frame.flags & Flag.END_STREAM) and frame_type == FrameType.HEADERS
            self._block = _HeaderBlock(frame.ts_ns, frame.offset, frame.stream_id, end_stream, frame_type == FrameType.PUSH_PROMISE)
        block = self._block
        if block is None:
            return captured, 0, 0  # a stray CONTINUATION: read by nobody
        block.size += frame.length
        parsed = frame.parsed
        if frame.held is None or parsed is None:
            if frame.missing:
                block.broken = block.broken or f"bytes missing in the header block of stream {frame.stream_id}"
            elif parsed is None:
                block.broken = block.broken or f"a {frame_type_name(frame_type)} frame on stream 0"
            else:
                block.broken = block.broken or f"a header block of more than {MAX_HEADER_BLOCK_BYTES} bytes"
            return captured, 0, 0
        try:
            parsed.parse_body(memoryview(frame.held))
        except HyperframeError as error:
            self._finding(frame.ts_ns, "h2-protocol-error", f"{frame_type_name(frame_type)} frame at offset {frame.offset}: {error}")
            block.broken = block.broken or f"a malformed {frame_type_name(frame_type)} frame"
            return captured, 0, 0
        fragment = parsed.data
        if frame_type == FrameType.PUSH_PROMISE:
            block.promised_stream_id = parsed.promised_stream_id
        padding = (1 + parsed.pad_length) if frame.flags & Flag.PADDED and frame_type != FrameType.CONTINUATION else 0
        block.fragments.append(fragment)
        block.size += len(fragment) - frame.length
        return len(fragment), padding, frame.length - len(fragment) - padding

    def _block_frame_done(self, frame: _Frame, ts_ns: int) -> None:
        block = self._block
        if block is None or not frame.flags & Flag.END_HEADERS:
            if block is not None and block.size > MAX_HEADER_BLOCK_BYTES and "h2-header-block-limit" not in self._reported:
                self._reported.add("h2-header-block-limit")
                self._finding(frame.ts_ns, "h2-header-block-limit", f"header block of stream {block.stream_id} over "
                                                                    f"{MAX_HEADER_BLOCK_BYTES} bytes (a CONTINUATION flood?): not held")
            return
        self._block = None
        headers = self._decode(block, ts_ns)
        if block.promise:
            self._promised_request(block, headers, ts_ns)
        elif block.stream_id in self._reset_streams:
            pass  # on a reset stream (in flight, or trailers): decoded to keep the table in step, no message
        else:
            self._headers(block, headers, ts_ns)

    def _decode(self, block: _HeaderBlock, ts_ns: int) -> list[tuple[bytes, bytes]] | None:
        """The block's fields, or None when they cannot be decoded (a finding says why)."""
        if block.broken:
            self._lose_hpack(block.ts_ns, f"{block.broken}, which may have changed the HPACK table")
        if self._hpack_lost:
            self._finding(block.ts_ns, "h2-headers-undecodable", f"header block of stream {block.stream_id} at offset {block.offset} "
                                                                 f"({block.size} bytes) not decoded: {self._hpack_lost}")
            return None
        try:
            headers = self._decoder.decode(b"".join(block.fragments), raw=True)
        except _HPACK_ERRORS as error:
            unseen = "; the capture missed the connection's start, where the table's older entries came" if self._unseen_start else ""
            self._lose_hpack(block.ts_ns, f"HPACK decoding failed for the header block of stream {block.stream_id} ({error}{unseen})")
            self._finding(block.ts_ns, "h2-headers-undecodable", f"header block of stream {block.stream_id} at offset {block.offset} "
                                                                 f"({block.size} bytes) not decoded: {self._hpack_lost}")
            return None
        size, limit = self._decoder.header_table_size, self.session.table_size_limit[self._direction]
        if size > limit and size != self._table_size_reported:
            self._table_size_reported = size
            self._finding(block.ts_ns, "h2-hpack-table-size", f"HPACK dynamic table of {size} bytes from the block of stream {block.stream_id}, "
                                                              f"over the {limit} the peer's SETTINGS_HEADER_TABLE_SIZE allows")
        return headers

    def _lose_hpack(self, ts_ns: int, reason: str) -> None:
        if self._hpack_lost:
            return
        self._hpack_lost = f"HPACK state lost at offset {self._offset} ({reason})"
        self._finding(ts_ns, "h2-hpack-desync", f"{self._hpack_lost}: later header blocks of the {self._direction.label} are not decoded")

    # --- messages ----------------------------------------------------------------------

    def _headers(self, block: _HeaderBlock, headers: list[tuple[bytes, bytes]] | None, ts_ns: int) -> None:
        """A decoded block (None: undecodable) of a HEADERS frame: a message's headers, or its trailers
        when its stream has one open (interim responses end with their headers)."""
        stream_id = block.stream_id
        message = self._messages.get(stream_id)
        if message is not None:
            message.header_bytes += block.size
            if headers is None:
                message.http1_header_bytes = None
            elif message.http1_header_bytes is not None:
                message.http1_header_bytes += _http1_field_bytes(headers)
        else:
            message = self._open(block, headers, self._direction is Direction.CLIENT)
        message.end_ts_ns = ts_ns
        if block.end_stream or _interim(message):
            self._emit(stream_id, ts_ns, complete=message.complete)

    def _promised_request(self, block: _HeaderBlock, headers: list[tuple[bytes, bytes]] | None, ts_ns: int) -> None:
        """A PUSH_PROMISE's block: the request the server promises, a message of the promised
        stream sent by the server (RFC 9113 8.4), whole with its headers; the pushed response
        comes on that stream."""
        if not block.promised_stream_id:
            return  # the PUSH_PROMISE could not be read: decoded to keep the table in step only
        message = self._open(block, headers, True, block.promised_stream_id)
        self._emit(block.promised_stream_id, ts_ns, complete=message.complete)

    def _open(self, block: _HeaderBlock, headers: list[tuple[bytes, bytes]] | None, is_request: bool, stream_id: int = 0) -> Message:
        """A message opened by a header block, on its stream (`stream_id`: the promised one)."""
        stream_id = stream_id or block.stream_id
        if len(self._messages) >= MAX_OPEN_MESSAGES:
            oldest = next(iter(self._messages))
            if "h2-too-many-streams" not in self._reported:
                self._reported.add("h2-too-many-streams")
                self._finding(block.ts_ns, "h2-too-many-streams", f"more than {MAX_OPEN_MESSAGES} streams open at once: the oldest are "
                                                                  f"closed incomplete (first: stream {oldest})")
            self._emit(oldest, block.ts_ns, complete=False)
        if stream_id in self._messages:  # a promised stream this side has a message open on: it cannot be promised again
            self._emit(stream_id, block.ts_ns, complete=False)
        fields = _Fields(headers)
        start = (fields.method, fields.target, HTTP2_VERSION) if is_request else (HTTP2_VERSION, fields.status, "")
        message = _Message(block.ts_ns, block.ts_ns, block.offset, start, fields.http1_lines(), block.size)
        message.http1_header_bytes = None if headers is None else fields.http1_bytes(is_request)
        message.is_request = is_request
        message.content_encoding = fields.content_encoding
        message.preview = bytearray()
        if not is_request and headers is not None and is_event_stream(fields.regular_value(b"content-type")):
            message.sse = SseBody(self._direction, block.offset, block.offset, self, block.ts_ns, coding=message.content_encoding,
                                  stream_id=stream_id)
        if headers is None:
            message.complete = False
        elif is_request and not fields.valid_request():
            self._finding(block.ts_ns, "h2-malformed-headers", f"request on stream {stream_id} without :method and :path")
        elif not is_request and headers is not None and fields.status is None:
            self._finding(block.ts_ns, "h2-malformed-headers", f"response on stream {stream_id} without a valid :status")
        self._messages[stream_id] = message
        return message

    def _emit(self, stream_id: int, ts_ns: int, complete: bool) -> None:
        message = self._messages.pop(stream_id)
        if message.sse is not None:
            message.sse.finish(max(message.end_ts_ns, ts_ns))
        decompressed = message.decompressed if message.decompressed is not None and message.decompressed >= 0 and complete else None
        if message.decompressor is not None and decompressed is not None and not message.decompressor.eof:
            decompressed = None  # the compressed stream did not end cleanly
        event_class = HttpRequest if message.is_request else HttpResponse
        self._events.append(event_class(
            self._direction, message.ts_ns, max(message.end_ts_ns, message.ts_ns), message.offset, *message.start,
            message.raw_headers, message.header_bytes, message.wire_bytes, message.framing_bytes,
            message.data_bytes + message.missing_bytes, message.missing_bytes, message.content_encoding, decompressed,
            complete, bytes(message.preview), stream_id, message.http1_header_bytes,
        ))

    # --- control frames --------------------------------------------------------------

    def _control_frame(self, frame: _Frame) -> None:
        """A frame other than DATA and the header block ones, its header valid: read its body when held."""
        frame_type = frame.frame_type
        settings = frame_type == FrameType.SETTINGS and not frame.flags & Flag.ACK
        if frame.held is None:
            if settings:
                self.session.settings_sent(self._direction, None)  # not readable: the limits are lifted
            return
        parsed = frame.parsed
        try:
            if frame_type == FrameType.GOAWAY and frame.length > MAX_CONTROL_PAYLOAD:
                parsed = GoAwayFrame(0)
                parsed.parse_body(memoryview(frame.held[:8]))
            else:
                parsed.parse_body(memoryview(frame.held))
        except HyperframeError as error:
            rule = "h2-frame-size-error" if _wrong_size(frame_type, frame.length) else "h2-protocol-error"
            self._finding(frame.ts_ns, rule, f"{frame_type_name(frame_type)} frame at offset {frame.offset} of {frame.length} bytes: {error}")
            if settings:
                self.session.settings_sent(self._direction, None)
            return
        if frame_type == FrameType.SETTINGS:
            if frame.flags & Flag.ACK:
                self.session.settings_acknowledged(self._direction)
            else:
                self.session.settings_sent(self._direction, dict(parsed.settings))
        elif frame_type == FrameType.RST_STREAM:
            self.session.reset_stream(frame.stream_id, frame.ts_ns, self._direction)
        elif frame_type == FrameType.GOAWAY and parsed.error_code != ErrorCode.NO_ERROR:
            name = ErrorCode(parsed.error_code).name if parsed.error_code in ErrorCode._value2member_map_ else f"0x{parsed.error_code:X}"
            self._finding(frame.ts_ns, "h2-goaway-error", f"GOAWAY with {name} (last stream {parsed.last_stream_id}): "
                                                          f"{bytes(parsed.additional_data[:120])!r}")

    # --- sync ----------------------------------------------------------------------

    def _start_resync(self, ts_ns: int, gap: int) -> None:
        """A gap between frames (or running past one's end): look for the next frame header."""
        self._resync = bytearray()
        self._resync_ts = ts_ns
        self._resync_searched = 0
        self._skip(len(self._header))  # a header cut by the gap
        self._header.clear()
        self._lose_hpack(ts_ns, f"a capture gap of {gap} bytes between frames")
        if self._block is not None:
            self._block = None
        for message in self._messages.values():
            message.complete = False

    def _look_for_frames(self, data: bytes, ts_ns: int, final: bool = False) -> bytes:
        """Bytes after a gap: add them to those searched; the bytes from the first plausible frame
        header on (b"" while none is found yet).  Each byte is looked at as a start once.
        final: the stream ends here, so a frame ending with the bytes needs no header after it."""
        buf = self._resync
        buf += data
        if self._resync_ts is None:
            self._resync_ts = ts_ns
        max_length = max(self.session.max_frame_size[self._direction], DEFAULT_MAX_FRAME_SIZE)
        start = 0
        while start + FRAME_HEADER_BYTES <= len(buf):
            if _plausible_header(buf, start, max_length, first=True):
                after = start + FRAME_HEADER_BYTES + int.from_bytes(buf[start:start + 3], "big")
                if after + FRAME_HEADER_BYTES > len(buf) and len(buf) - start < MAX_RESYNC_BYTES and not final:
                    break  # wait for the header after it
                if (after == len(buf) if final else after + FRAME_HEADER_BYTES <= len(buf) and _plausible_header(buf, after, max_length, first=False)):
                    self._skip(start)
                    self._found_frames(self._resync_searched + start)
                    self._resynced = True
                    return bytes(buf[start:])
            start += 1
        self._skip(start)
        del buf[:start]
        self._resync_searched += start
        if self._resync_searched + len(buf) >= MAX_RESYNC_BYTES:
            self._resync = None
            self._lose_sync(ts_ns, f"no frame header in {MAX_RESYNC_BYTES} bytes "
                                   f"{'from the start of the capture' if self._mid_stream else 'after a capture gap'}")
            return bytes(buf)
        return b""

    def _found_frames(self, skipped: int) -> None:
        if self._mid_stream:
            self._finding(self._resync_ts, "h2-mid-stream", f"the capture starts mid-connection: frames from offset {self._offset} on, "
                                                            f"after {skipped} bytes that were not framed (unparsed); header blocks "
                                                            f"decoded from an empty HPACK table")
        else:
            self._finding(self._resync_ts, "h2-resync", f"framing found again at offset {self._offset} after "
                                                        f"{skipped} bytes that were not framed (unparsed)")
        self._mid_stream = False
        self._resync = None
        self._resync_ts = None

    def _skip(self, count: int) -> None:
        self._unparsed += count
        self._offset += count

    def _lose_sync(self, ts_ns: int, reason: str) -> None:
        if self._lost_sync:
            return
        self._lost_sync = True
        self._finding(ts_ns, "h2-lost-sync", f"{reason}; HTTP/2 framing lost, stream from offset {self._offset} on left unparsed")

    def _finding(self, ts_ns: int, rule: str, detail: str) -> None:
        self._events.append(Finding(ts_ns, self._direction, rule, detail))


# RFC 9113 section 6: payload sizes a frame must have (else FRAME_SIZE_ERROR).
_FIXED_SIZES = {FrameType.PRIORITY: 5, FrameType.RST_STREAM: 4, FrameType.PING: 8, FrameType.WINDOW_UPDATE: 4}


# Flags each frame type defines (RFC 9113 section 6); a header with others is not taken when resynchronising.
_DEFINED_FLAGS = {FrameType.DATA: 0x09, FrameType.HEADERS: 0x2D, FrameType.PRIORITY: 0, FrameType.RST_STREAM: 0, FrameType.SETTINGS: 0x01,
                  FrameType.PUSH_PROMISE: 0x0C, FrameType.PING: 0x01, FrameType.GOAWAY: 0, FrameType.WINDOW_UPDATE: 0,
                  FrameType.CONTINUATION: 0x04}
_CONNECTION_FRAMES = (FrameType.SETTINGS, FrameType.PING, FrameType.GOAWAY)


def _plausible_header(buf: bytearray, at: int, max_length: int, first: bool) -> bool:
    """Whether the 9 bytes at `at` can be a frame header: a known type with only its own flags,
    a length the peer allows and the type's size rules, the reserved bit clear, a stream its
    type may be on; not a CONTINUATION when `first` (its header block was lost)."""
    frame_type, flags = buf[at + 3], buf[at + 4]
    if frame_type > FrameType.CONTINUATION or flags & ~_DEFINED_FLAGS[frame_type] or buf[at + 5] & 0x80:
        return False
    if first and frame_type == FrameType.CONTINUATION:
        return False
    length = int.from_bytes(buf[at:at + 3], "big")
    if length > max_length or _wrong_size(frame_type, length) or (frame_type == FrameType.SETTINGS and flags and length):
        return False
    on_stream_0 = not int.from_bytes(buf[at + 5:at + 9], "big")
    return on_stream_0 if frame_type in _CONNECTION_FRAMES else (frame_type == FrameType.WINDOW_UPDATE or not on_stream_0)


def _wrong_size(frame_type: int, length: int) -> bool:
    if frame_type in _FIXED_SIZES:
        return length != _FIXED_SIZES[frame_type]
    if frame_type == FrameType.SETTINGS:
        return length % 6 != 0
    return frame_type == FrameType.GOAWAY and length < 8


def _interim(message: Message) -> bool:
    status = message.start[1]
    return isinstance(status, int) and 100 <= status < 200


class _Fields:
    """A decoded header list read as HTTP: pseudo-headers, the HTTP/1.1 form of the rest."""

    __slots__ = ("pseudo", "regular")

    def __init__(self, headers: list[tuple[bytes, bytes]] | None) -> None:
        self.pseudo: dict[bytes, bytes] = {}
        self.regular: list[tuple[bytes, bytes]] = []
        for name, value in headers or ():
            if name[:1] == b":":
                self.pseudo.setdefault(name, value)
            else:
                self.regular.append((name, value))

    def _text(self, name: bytes) -> str:
        return self.pseudo.get(name, b"").decode("latin-1")

    @property
    def method(self) -> str:
        return self._text(b":method")

    @property
    def target(self) -> str:
        """:path; a CONNECT has none, its target is :authority (RFC 9113 8.5)."""
        if self.method == "CONNECT":
            return self._text(b":path") or self._text(b":authority")
        return self._text(b":path")

    @property
    def status(self) -> int | None:
        raw = self.pseudo.get(b":status", b"")
        return int(raw) if raw.isdigit() and len(raw) == 3 else None

    @property
    def content_encoding(self) -> str:
        return self.regular_value(b"content-encoding").strip().lower()

    def regular_value(self, name: bytes) -> str:
        """The first value of a regular field `name` (lower case), as latin-1 text ("" without one)."""
        for field, value in self.regular:
            if field.lower() == name:
                return value.decode("latin-1")
        return ""

    def valid_request(self) -> bool:
        return bool(self.pseudo.get(b":method")) and (bool(self.pseudo.get(b":path")) or self.method == "CONNECT")

    def _http1_fields(self) -> list[tuple[bytes, bytes]]:
        """The fields as HTTP/1.1 sends them: Host from :authority first (RFC 9113 8.3.1), cookie
        crumbs joined into one Cookie (8.2.3)."""
        fields = []
        authority = self.pseudo.get(b":authority")
        if authority is not None and not any(name.lower() == b"host" for name, _ in self.regular):
            fields.append((b"host", authority))
        cookies = [value for name, value in self.regular if name.lower() == b"cookie"]
        fields += [(name, value) for name, value in self.regular if name.lower() != b"cookie"]
        if cookies:
            fields.append((b"cookie", b"; ".join(cookies)))
        return fields

    def http1_lines(self) -> str:
        return "".join(f"{name.decode('latin-1')}: {value.decode('latin-1')}\r\n" for name, value in self._http1_fields())

    def http1_bytes(self, is_request: bool) -> int:
        """Start line, `Name: value` lines and the blank line that end them, as HTTP/1.1 (RFC 9112)."""
        if is_request:
            start = len(self.pseudo.get(b":method", b"")) + 1 + len(self.target.encode("latin-1")) + len(" HTTP/1.1\r\n")
        else:
            status = self.status
            reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
            start = len("HTTP/1.1 000 \r\n") + len(reason)
        return start + _http1_field_bytes(self._http1_fields()) + 2


def _http1_field_bytes(fields: list[tuple[bytes, bytes]]) -> int:
    """`Name: value\\r\\n` per field."""
    return sum(len(name) + len(value) + 4 for name, value in fields)
