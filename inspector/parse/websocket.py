"""WebSocket frames and messages of one direction (RFC 6455, RFC 7692).

A sans-IO pull parser in the style of h11 and wsproto: hand it the bytes one
side sent with `receive_data`, capture holes with `receive_gap` and the end
with `receive_eof`, then drain `next_event()` until it returns NEED_DATA.

It is an inspector, not an endpoint: protocol violations become `Finding`
events and parsing goes on.  When the framing itself can no longer be
followed (a capture gap outside a payload of known length, an impossible
length) the rest of the direction is counted as unparsed bytes.

Two paths produce the same events.  The common case, a whole final text
or binary frame already in the chunk, is read in one go
(`_whole_data_frames`): no per-frame state objects, the payload unmasked once
and only as far as someone reads it, ASCII text never decoded, and for a
caller that asks (`one_frame_records`, the analysis) one WsOneFrameMessage
record instead of the two events.  Everything else (split frames, fragments,
control frames, findings, gaps) goes through the general frame and message
state below.

Byte accounting is exact: every byte fed (data and gaps) belongs either to
exactly one WsFrame (its `wire_bytes`, missing bytes included) or to
`unparsed_bytes`.  Frames tile the stream from `start_offset`; unparsed
bytes only ever come after the last frame.
"""

from __future__ import annotations

import codecs
import zlib
from struct import unpack_from
from typing import TYPE_CHECKING

from inspector.errors import ParseError
from inspector.parse.pending import PendingEvents
from inspector.parse.budget import DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE, DecompressionBudget
from inspector.events import (
    DEFAULT_PREVIEW_BYTES,
    DeflateParams,
    Direction,
    Finding,
    WsFrame,
    WsMessage,
    WsOneFrameMessage,
)
from inspector.parse.ws_frames import (
    BINARY as _BINARY,
    CLOSE as _CLOSE,
    CONTINUATION as _CONTINUATION,
    FIN_BIT,
    KNOWN_CONTROL_OPCODES as _KNOWN_CONTROL_OPCODES,
    LENGTH_16,
    LENGTH_BITS,
    MASK_BIT,
    OPCODE_BITS,
    MAX_CONTROL_PAYLOAD as _MAX_CONTROL_PAYLOAD,
    MAX_HEADER_BYTES as _MAX_HEADER_BYTES,
    RSV1_BIT,
    RSV2_BIT,
    RSV3_BIT,
    TEXT as _TEXT,
    CloseCode,
    Opcode,
    close_code_problem,
    unmask,
)
# The handshake half lives in ws_handshake; connection.py and the tests take
# it from here together with the parser.
from inspector.parse.ws_handshake import accept_for_key, parse_deflate_offer

if TYPE_CHECKING:
    Event = WsFrame | WsMessage | WsOneFrameMessage | Finding

__all__ = ["CloseCode", "Opcode", "WebSocketParser", "accept_for_key", "parse_deflate_offer"]

_Utf8Decoder = codecs.getincrementaldecoder("utf-8")
_new_tuple = tuple.__new__  # read once: reading it off `tuple` costs 80 ns

# RFC 7692 section 7.2.2: the sender strips this empty stored block from the
# end of every compressed message; the receiver appends it back.
_DEFLATE_TAIL = b"\x00\x00\xff\xff"

# Inflate output is produced in steps of this size so a single call never
# allocates much more than this, whatever max_message_bytes is.
_INFLATE_STEP = 256 * 1024

# RFC 1951: the most a DEFLATE bit can yield is a 258-byte match coded in 2
# bits (1-bit length and distance codes), 1032 bytes per input byte.  The
# 4-byte tail appended to a message may add up to this many bytes.
_MAX_TAIL_OUTPUT = 4 * 1032


def _utf8_problem(*pieces: bytes) -> str:
    """Why the pieces, one after the other, are not UTF-8; "" if they are.

    Checks with the incremental decoder, piece by piece as the general path
    feeds it, so the reason is the one it would give.
    """
    decoder = _Utf8Decoder()
    try:
        for piece in pieces:
            decoder.decode(piece, False)
        decoder.decode(b"", True)
    except UnicodeDecodeError as exc:
        return exc.reason
    return ""


def _invalid_utf8_detail(offset: int, reason: str) -> str:
    return f"message at offset {offset}: text is not UTF-8 ({reason})"


class _Frame:
    """The frame whose payload is being consumed."""

    __slots__ = (
        "offset", "ts_ns", "first", "fin", "rsv1", "rsv2", "rsv3", "opcode", "masked",
        "mask_key", "length", "header_bytes", "done", "missing", "kept",
        "keep_limit", "keeping", "in_message",
    )

    def __init__(self, offset: int, ts_ns: int, first: int, masked: bool,
                 mask_key: bytes, length: int, header_bytes: int, keep_limit: int) -> None:
        self.offset = offset
        self.ts_ns = ts_ns
        self.first = first  # the header's first byte
        self.fin = bool(first & 0x80)
        self.rsv1 = bool(first & 0x40)
        self.rsv2 = bool(first & 0x20)
        self.rsv3 = bool(first & 0x10)
        self.opcode = first & 0x0F
        self.masked = masked
        self.mask_key = mask_key
        self.length = length
        self.header_bytes = header_bytes
        self.done = 0  # payload bytes consumed so far, missing ones included
        self.missing = 0
        self.kept = bytearray()  # unmasked payload prefix, up to keep_limit
        self.keep_limit = keep_limit
        self.keeping = keep_limit > 0  # False once the preview is full or hit a gap
        self.in_message = False


class _Message:
    """A data message whose frames are still arriving."""

    __slots__ = (
        "opcode", "ts_ns", "end_ts_ns", "offset", "end_offset", "frames",
        "header_bytes", "wire_payload_bytes", "compressed", "complete",
        "preview", "preview_open", "inflater", "inflated", "inflate_problem",
        "utf8", "utf8_checked", "text_valid", "utf8_error",
    )

    def __init__(self, frame: _Frame, compressed: bool) -> None:
        self.opcode = frame.opcode
        self.ts_ns = frame.ts_ns
        self.end_ts_ns = frame.ts_ns
        self.offset = frame.offset
        self.end_offset = frame.offset
        self.frames = 0  # complete data frames
        self.header_bytes = 0
        self.wire_payload_bytes = 0
        self.compressed = compressed
        self.complete = True  # until a gap, EOF or a protocol error cuts it
        self.preview = bytearray()
        self.preview_open = True  # False after a gap: a preview never skips bytes
        self.inflater: zlib._Decompress | None = None
        self.inflated = 0
        self.inflate_problem = ""  # "", "limit", "budget", "error", "gap", "lost context"
        text = frame.opcode == _TEXT
        self.utf8 = _Utf8Decoder() if text else None
        self.utf8_checked = 0
        # True while valid so far; False once invalid; None when unknown.
        self.text_valid: bool | None = True if text else None
        self.utf8_error = ""


class WebSocketParser(PendingEvents):
    """Parses ONE direction of a WebSocket connection (the bytes one side sent).

    deflate: the negotiated permessage-deflate parameters, if any.
    extensions_negotiated: the 101 response accepted some extension
        (Sec-WebSocket-Extensions not empty).  Without `deflate` that is an
        extension this parser does not know, which may use any RSV bit, so
        RSV bits are then not reported.  With `deflate`, permessage-deflate
        is taken to be the only extension.
    max_message_bytes: cap on decompressed size of one message and on the
        bytes of one text message that are UTF-8 checked.
    preview_bytes: how much payload events carry.
    decompression_budget: what the connection and the capture may still
        decompress in total (inspector.parse.budget); None: no total.
    events: a list of the caller's that the events are appended to as they
        are made (then the caller reads them there); None: the parser's own.
    one_frame_records: hand a whole message of one frame that the fast path
        reads (the common case) as one WsOneFrameMessage record instead of a
        WsFrame and a WsMessage, for a caller that writes them as rows.

    Work happens in receive_*; next_event() hands out queued events in
    stream order: a frame's header findings, the WsFrame, then for a final
    frame the message's findings and the WsMessage.

    Choices the event fields leave open:
    - WsMessage.end_ts_ns is the timestamp of the chunk that completed its
      last frame.
    - A message that decompresses past max_message_bytes gets payload_bytes
      None (not the cap: the real size is unknown) and a
      "ws-decompression-limit" finding.  One that meets a spent
      decompression budget gets payload_bytes None too, and the first such
      message of a connection a "ws-decompression-budget" finding.  A corrupt DEFLATE stream gives
      payload_bytes None, an empty payload and "ws-decompression-failed",
      and spends none of the budget.
    - With context takeover, once any message could not be fully
      decompressed (gap, limit, corrupt, unfinished), every later compressed
      message of this direction has payload_bytes None.
    - Previews stop at the first missing byte; payload_truncated is set
      whenever the preview is shorter than the payload.
    """

    def __init__(
        self,
        direction: Direction,
        *,
        start_offset: int = 0,
        deflate: DeflateParams | None = None,
        extensions_negotiated: bool = False,
        max_message_bytes: int = DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE,
        preview_bytes: int = DEFAULT_PREVIEW_BYTES,
        decompression_budget: DecompressionBudget | None = None,
        events: list | None = None,
        one_frame_records: bool = False,
    ) -> None:
        if max_message_bytes < 0 or preview_bytes < 0:
            raise ValueError("max_message_bytes and preview_bytes must be >= 0")
        self._direction = direction
        self._deflate = deflate
        self._extensions_negotiated = extensions_negotiated
        self._max_message_bytes = max_message_bytes
        self._budget = decompression_budget  # shared with the rest of the connection
        self._preview_bytes = preview_bytes
        self._control_keep = max(preview_bytes, _MAX_CONTROL_PAYLOAD)
        # RFC 6455 5.1: clients mask every frame, servers never do.
        self._expect_masked = direction is Direction.CLIENT
        if deflate is None:
            self._context_takeover = False
        elif direction is Direction.CLIENT:
            self._context_takeover = not deflate.client_no_context_takeover
        else:
            self._context_takeover = not deflate.server_no_context_takeover
        # With context takeover one inflater spans all messages; once any of
        # its input went missing, later messages reference unknown history.
        self._inflater: zlib._Decompress | None = None
        self._inflater_lost = False
        # First header bytes of the frames the fast path takes, with their opcode and
        # whether they are compressed: a whole final text or binary frame, RSV1 only
        # where it means permessage-deflate.
        self._simple_frames = {FIN_BIT | _TEXT: (_TEXT, False), FIN_BIT | _BINARY: (_BINARY, False)}
        if deflate is not None:
            self._simple_frames.update({FIN_BIT | RSV1_BIT | _TEXT: (_TEXT, True), FIN_BIT | RSV1_BIT | _BINARY: (_BINARY, True)})
        self._one_frame_records = one_frame_records
        self._expected_mask_bit = MASK_BIT if self._expect_masked else 0

        # Events in stream order.  A caller that passes its own list reads
        # them from it (TcpConnection shares its `events`) and calls neither
        # next_event nor take_events; otherwise those hand them out.
        self._events: list[Event] = [] if events is None else events
        self._handed = 0  # events of the list next_event already handed out
        self._offset = start_offset  # next byte not yet part of a frame or unparsed
        self._held = bytearray()  # start of a frame header split across chunks
        self._held_ts = 0
        self._unparsed = 0
        self._frame: _Frame | None = None
        self._message: _Message | None = None
        self._close_sent = False
        self._lost_sync = False
        self._ended = False

    # --- public interface ----------------------------------------------------

    @property
    def offset(self) -> int:
        """Stream offset of the next unconsumed byte (held partial headers excluded)."""
        return self._offset

    @property
    def unparsed_bytes(self) -> int:
        """Bytes consumed without belonging to any frame."""
        return self._unparsed

    def receive_data(self, data: bytes, ts_ns: int) -> None:
        if self._ended:
            self._check_open("receive_data")
        if type(data) is not bytes:
            data = bytes(data)  # slices of it become event fields
        end = len(data)
        pos = 0
        while pos < end:
            if self._frame is not None:
                pos = self._consume_payload(data, pos, end, ts_ns)
            elif self._lost_sync:
                self._skip(end - pos)
                return
            elif self._held:
                pos = self._complete_held_header(data, pos, end, ts_ns)
            else:
                if self._message is None and not self._close_sent:
                    used = self._whole_data_frames(data, pos, end, ts_ns)
                    if used:
                        pos += used
                        continue
                used = self._start_frame(data, pos, end, ts_ns, ts_ns)
                if not used:
                    self._held += data[pos:end]
                    self._held_ts = ts_ns
                    return
                pos += used

    def receive_gap(self, length: int, ts_ns: int) -> None:
        """`length` bytes of the stream were never captured."""
        self._check_open("receive_gap")
        if length < 0:
            raise ParseError(f"{self._direction.label}: negative gap length {length}")
        while length:
            frame = self._frame
            if frame is None:
                self._gap_outside_payload(length, ts_ns)
                return
            # The payload length is known, so the frame's end is known:
            # skip its missing bytes and stay in sync.
            taken = min(length, frame.length - frame.done)
            self._gap_in_payload(frame, taken)
            length -= taken
            if frame.done == frame.length:
                self._finish_frame(ts_ns)

    def receive_eof(self, ts_ns: int) -> None:
        """End of this direction: FIN, RST or end of capture.  Repeating it is harmless."""
        if self._ended:
            return
        self._ended = True
        frame = self._frame
        if frame is not None:
            # An unfinished frame is never emitted: its bytes become unparsed.
            self._frame = None
            self._unparsed += frame.header_bytes + frame.done
        self._skip(len(self._held))
        self._held.clear()
        if self._message is not None:
            self._finish_message(ts_ns, complete=False)

    # --- framing -------------------------------------------------------------

    def _check_open(self, method: str) -> None:
        if self._ended:
            raise ParseError(f"{self._direction.label} WebSocket parser: {method} after receive_eof")

    def _skip(self, length: int) -> None:
        """Consume bytes that belong to no frame."""
        self._unparsed += length
        self._offset += length

    def _complete_held_header(self, data: bytes, pos: int, end: int, ts_ns: int) -> int:
        """Finish a header split across chunks; return the new position in `data`."""
        held = len(self._held)
        self._held += data[pos:pos + _MAX_HEADER_BYTES]
        used = self._start_frame(self._held, 0, len(self._held), self._held_ts, ts_ns)
        if not used:
            # Still short, so all of data[pos:end] fitted into the 14 bytes taken.
            return end
        self._held.clear()
        return pos + used - held

    def _whole_data_frames(self, data: bytes, pos: int, end: int, ts_ns: int) -> int:
        """The common case in one go: final text or binary frames, each all in `data`.

        Takes such frames from data[pos:] one after the other and returns
        how many bytes they held; stops (0 if at once) at the first frame
        that is anything else: split, fragmented, a control frame, 64-bit
        length or one with findings; _start_frame then takes it.  Events
        and state end up exactly as the general path leaves them; each
        message is one WsOneFrameMessage, handed out as such or as its two
        events.
        """
        events = self._events
        direction = self._direction
        simple_frames = self._simple_frames
        masked = self._expect_masked
        expected_mask_bit = self._expected_mask_bit
        preview_bytes = self._preview_bytes
        max_message_bytes = self._max_message_bytes
        records = self._one_frame_records
        began = pos
        offset = self._offset
        while end - pos >= 2:
            kind = simple_frames.get(data[pos])
            second = data[pos + 1]
            if kind is None or second & MASK_BIT != expected_mask_bit:
                break
            opcode, compressed = kind
            length = second & LENGTH_BITS
            start = pos + 2
            if length >= LENGTH_16:
                if length > LENGTH_16 or end - pos < 4:
                    break  # 64-bit lengths are rare and big: the general path
                length = (data[start] << 8) | data[start + 1]
                if length < LENGTH_16:
                    break  # non-minimal length: a finding
                start += 2
            if masked:
                mask_key = data[start:start + 4]
                start += 4
            else:
                mask_key = b""
            stop = start + length
            if stop > end or length > max_message_bytes or (compressed and self._inflater_lost):
                break  # split, too big, or a "lost context" message
            # Unmask what someone reads: all of a text or compressed payload, a
            # preview of a binary one.
            wanted = stop if compressed or opcode == _TEXT else min(stop, start + preview_bytes)
            payload = unmask(data[start:wanted], mask_key) if masked else data[start:wanted]
            header_bytes = start - pos
            if compressed:
                self._offset = offset + header_bytes + length
                inflated = self._inflate_whole(payload, offset, ts_ns, data[pos], mask_key, length, header_bytes)
                if inflated is None:
                    return stop - began  # the general path took the rest of this frame
                out, tail = inflated
                content = out + tail if tail else out
                payload_bytes = len(content)
                preview = content if payload_bytes <= preview_bytes else content[:preview_bytes]
                frame_payload = payload if length <= preview_bytes else payload[:preview_bytes]
            else:
                content = payload
                payload_bytes = length
                # (a payload no longer than the preview is its own preview: no slice to make)
                preview = frame_payload = payload if length <= preview_bytes else payload[:preview_bytes]
            utf8_error = ""
            if opcode == _TEXT:
                # ASCII is valid UTF-8: most text never meets a decoder.
                if not content.isascii():
                    utf8_error = _utf8_problem(out, tail) if compressed else _utf8_problem(content)
                text_valid = not utf8_error
            else:
                text_valid = None
            record = _new_tuple(WsOneFrameMessage, (direction, ts_ns, offset, opcode, compressed, masked, mask_key, length,
                                                    header_bytes, frame_payload, payload_bytes, text_valid, preview))
            if records and not utf8_error:
                events.append(record)
            else:
                frame, message = record.events()
                events.append(frame)
                if utf8_error:
                    self._finding(ts_ns, "ws-invalid-utf8", _invalid_utf8_detail(offset, utf8_error))
                events.append(message)
            offset += header_bytes + length
            pos = stop
        self._offset = offset
        return pos - began

    def _inflate_whole(self, payload: bytes, offset: int, ts_ns: int, first: int, mask_key: bytes,
                       length: int, header_bytes: int) -> tuple[bytes, bytes] | None:
        """Decompress a one-frame message with the calls _inflate makes for it.

        Returns the output of the payload and of the tail, or None when an
        outcome other than a whole, small enough message (corrupt stream,
        output near a cap) made the general path take over the frame.
        """
        if not self._context_takeover:
            inflater = zlib.decompressobj(-15)
        else:
            inflater = self._inflater
            if inflater is None or inflater.eof:
                # As _open_message: a stream ended by BFINAL restarts.
                inflater = self._inflater = zlib.decompressobj(-15)
        budget = self._budget
        room = self._max_message_bytes
        budget_room = budget.room() if budget is not None else room
        limit = room if room < budget_room else budget_room
        max_length = limit + 1 if limit < _INFLATE_STEP else _INFLATE_STEP
        try:
            out = inflater.decompress(payload, max_length)
        except zlib.error as exc:
            message = self._adopt_whole_frame(offset, ts_ns, first, mask_key, length, header_bytes, payload, inflater)
            self._inflate_failed(message, exc)
            self._finish_frame(ts_ns)
            return None
        rest = inflater.unconsumed_tail
        produced = len(out)
        tail_length = limit - produced + 1 if limit - produced < _INFLATE_STEP else _INFLATE_STEP
        if produced >= max_length or rest or tail_length <= _MAX_TAIL_OUTPUT:
            # More output than one step, or close enough to a cap that the
            # tail could cross it: _inflate goes on from here.
            message = self._adopt_whole_frame(offset, ts_ns, first, mask_key, length, header_bytes, payload, inflater)
            if not self._took_inflated(message, out, max_length, budget_room, rest):
                self._inflate(message, rest)
            self._finish_frame(ts_ns)
            return None
        try:
            tail = inflater.decompress(_DEFLATE_TAIL, tail_length)
        except zlib.error as exc:
            message = self._adopt_whole_frame(offset, ts_ns, first, mask_key, length, header_bytes, payload, inflater)
            self._took_inflated(message, out, max_length, budget_room, rest)
            self._inflate_failed(message, exc)
            self._finish_frame(ts_ns)
            return None
        if budget is not None:
            budget.spend(produced + len(tail))
        return out, tail

    def _adopt_whole_frame(self, offset: int, ts_ns: int, first: int, mask_key: bytes, length: int,
                           header_bytes: int, payload: bytes, inflater: zlib._Decompress) -> _Message:
        """The frame and message objects of the general path for a compressed
        frame the fast path read whole, before its payload is decompressed."""
        frame = _Frame(offset, ts_ns, first, bool(mask_key), mask_key, length, header_bytes, self._preview_bytes)
        frame.kept += payload[:self._preview_bytes]
        frame.done = length
        frame.in_message = True
        message = _Message(frame, compressed=True)
        message.inflater = inflater
        self._frame = frame
        self._message = message
        return message

    def _start_frame(self, buf: bytes | bytearray, pos: int, end: int,
                     first_ts: int, ts_ns: int) -> int:
        """Parse the header at buf[pos:]; return its length, or 0 if incomplete."""
        available = end - pos
        if available < 2:
            return 0
        first = buf[pos]
        second = buf[pos + 1]
        short_length = second & 0x7F
        masked = second >= 0x80
        extended = 2 if short_length == 126 else 8 if short_length == 127 else 0
        header_bytes = 2 + extended + (4 if masked else 0)
        if available < header_bytes:
            return 0
        offset = self._offset
        if extended == 0:
            length = short_length
        elif extended == 2:
            (length,) = unpack_from("!H", buf, pos + 2)
        else:
            (length,) = unpack_from("!Q", buf, pos + 2)
            if length >> 63:
                # RFC 6455 5.2: the most significant bit MUST be 0.  No sane
                # sender produces this; the bytes are probably not a header.
                self._skip(header_bytes)
                self._finding(ts_ns, "ws-length-msb-set",
                              f"64-bit payload length with top bit set at offset {offset}")
                self._lose_sync(ts_ns, f"impossible frame length at offset {offset}", offset)
                return header_bytes
        key_at = pos + 2 + extended
        mask_key = bytes(buf[key_at:key_at + 4]) if masked else b""
        opcode = first & 0x0F
        keep_limit = self._control_keep if opcode >= 0x8 else self._preview_bytes
        frame = _Frame(offset, first_ts, first, masked, mask_key, length, header_bytes, keep_limit)
        self._offset += header_bytes
        self._check_header(frame, extended, ts_ns)
        self._track_message(frame, ts_ns)
        self._frame = frame
        if not length:
            self._finish_frame(ts_ns)
        return header_bytes

    def _check_header(self, frame: _Frame, extended: int, ts_ns: int) -> None:
        """Conformance findings a frame header alone can show."""
        # Runs for every frame: cheap tests first, text only for findings.
        if self._close_sent:
            self._finding(ts_ns, "ws-data-after-close",
                          f"frame at offset {frame.offset} (opcode {frame.opcode:#x}) "
                          "sent after this side's Close")
        if frame.masked != self._expect_masked:
            if self._expect_masked:
                self._finding(ts_ns, "ws-unmasked-client-frame",
                              f"frame at offset {frame.offset} from the client is not masked")
            else:
                self._finding(ts_ns, "ws-masked-server-frame",
                              f"frame at offset {frame.offset} from the server is masked")
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            self._check_rsv(frame, ts_ns)
        opcode = frame.opcode
        if 0x3 <= opcode <= 0x7 or opcode >= 0xB:
            self._finding(ts_ns, "ws-reserved-opcode",
                          f"frame at offset {frame.offset} uses reserved opcode {opcode:#x}")
        # RFC 6455 5.2: "the minimal number of bytes MUST be used to encode the length".
        if (extended == 2 and frame.length < 126) or (extended == 8 and frame.length < 65536):
            self._finding(ts_ns, "ws-non-minimal-length",
                          f"frame at offset {frame.offset} encodes length {frame.length} "
                          f"in {extended * 8} bits")
        if opcode in _KNOWN_CONTROL_OPCODES:
            # RFC 6455 5.5: control frames are at most 125 bytes and never fragmented.
            if frame.length > _MAX_CONTROL_PAYLOAD:
                self._finding(ts_ns, "ws-control-frame-too-long",
                              f"control frame at offset {frame.offset} has a "
                              f"{frame.length}-byte payload (max 125)")
            if not frame.fin:
                self._finding(ts_ns, "ws-control-frame-fragmented",
                              f"control frame at offset {frame.offset} without FIN")

    def _check_rsv(self, frame: _Frame, ts_ns: int) -> None:
        # An extension we do not know may give meaning to any RSV bit.
        unknown_extension = self._extensions_negotiated and self._deflate is None
        problems = []
        if frame.rsv1:
            if self._deflate is None:
                if not unknown_extension:
                    problems.append("RSV1 set without permessage-deflate")
            elif frame.opcode >= 0x8:
                # RFC 7692 6.1: never on control frames or non-first fragments.
                problems.append("RSV1 set on a control frame")
            elif frame.opcode == _CONTINUATION:
                problems.append("RSV1 set on a continuation frame")
        if (frame.rsv2 or frame.rsv3) and not unknown_extension:
            problems.append("RSV2/RSV3 set without a negotiated extension")
        if problems:
            self._finding(ts_ns, "ws-rsv-without-extension",
                          f"frame at offset {frame.offset}: {'; '.join(problems)}")

    def _track_message(self, frame: _Frame, ts_ns: int) -> None:
        """Attach a data frame to the open message, or open one."""
        opcode = frame.opcode
        if opcode == _CONTINUATION:
            if self._message is None:
                self._finding(ts_ns, "ws-unexpected-continuation",
                              f"continuation frame at offset {frame.offset} with no message open")
                return
        elif opcode == _TEXT or opcode == _BINARY:
            if self._message is not None:
                self._finding(ts_ns, "ws-expected-continuation",
                              f"new message at offset {frame.offset} while the message started at "
                              f"offset {self._message.offset} is unfinished")
                self._finish_message(ts_ns, complete=False)
            self._message = self._open_message(frame)
        else:
            return
        frame.in_message = True

    def _consume_payload(self, data: bytes, pos: int, end: int, ts_ns: int) -> int:
        frame = self._frame
        assert frame is not None
        taken = min(end - pos, frame.length - frame.done)
        self._keep_payload(frame, data, pos, taken)
        frame.done += taken
        self._offset += taken
        if frame.done == frame.length:
            self._finish_frame(ts_ns)
        return pos + taken

    def _keep_payload(self, frame: _Frame, data: bytes, pos: int, length: int) -> None:
        """Unmask only the part of data[pos:pos+length] that someone needs."""
        frame_room = frame.keep_limit - len(frame.kept) if frame.keeping else 0
        message = self._message if frame.in_message else None
        message_room = self._message_wants(message, length) if message is not None else 0
        wanted = min(length, max(frame_room, message_room))
        if not wanted:
            return
        piece = data[pos:pos + wanted]
        if frame.masked:
            piece = unmask(piece, frame.mask_key, frame.done % 4)
        if frame_room:
            frame.kept += piece[:frame_room]
            if len(frame.kept) >= frame.keep_limit:
                frame.keeping = False
        if message_room:
            assert message is not None
            self._message_payload(message, piece[:message_room])

    def _gap_in_payload(self, frame: _Frame, length: int) -> None:
        frame.done += length
        frame.missing += length
        self._offset += length
        frame.keeping = False  # a preview never jumps over missing bytes
        if frame.in_message and self._message is not None:
            self._message_gap(self._message)

    def _gap_outside_payload(self, length: int, ts_ns: int) -> None:
        """A gap in a header or between frames: where the next frame starts is unknown."""
        # The detail names no gap length: a gap may arrive in several calls.
        where = "inside a frame header" if self._held else "between frames"
        lost_from = self._offset
        gap_offset = lost_from + len(self._held)
        self._skip(len(self._held) + length)
        self._held.clear()
        self._lose_sync(ts_ns, f"capture gap at offset {gap_offset} {where}", lost_from)

    def _lose_sync(self, ts_ns: int, reason: str, lost_from: int) -> None:
        if self._lost_sync:
            return
        self._lost_sync = True
        self._finding(ts_ns, "ws-lost-sync",
                      f"{reason}; framing lost, stream from offset {lost_from} on left unparsed")
        if self._message is not None:
            self._finish_message(ts_ns, complete=False)

    def _finish_frame(self, ts_ns: int) -> None:
        frame = self._frame
        assert frame is not None
        self._frame = None
        payload = bytes(frame.kept[:self._preview_bytes])
        close_code: int | None = None
        close_reason = ""
        if frame.opcode == _CLOSE:
            close_code, close_reason = self._read_close(frame, ts_ns)
        self._frame_event(frame.offset, frame.ts_ns, frame.first, frame.mask_key, frame.length,
                          frame.header_bytes, frame.missing, payload, close_code, close_reason)
        if frame.opcode == _CLOSE:
            self._close_sent = True
        if frame.in_message:
            message = self._message
            assert message is not None
            message.frames += 1
            message.header_bytes += frame.header_bytes
            message.wire_payload_bytes += frame.length
            message.end_ts_ns = ts_ns
            message.end_offset = frame.offset + frame.header_bytes + frame.length
            if frame.fin:
                self._finish_message(ts_ns, complete=True)

    def _frame_event(self, offset: int, ts_ns: int, first: int, mask_key: bytes, length: int,
                     header_bytes: int, missing: int, payload: bytes, close_code: int | None,
                     close_reason: str) -> None:
        self._events.append(WsFrame(
            direction=self._direction,
            ts_ns=ts_ns,
            offset=offset,
            fin=bool(first & FIN_BIT),
            rsv1=bool(first & RSV1_BIT),
            rsv2=bool(first & RSV2_BIT),
            rsv3=bool(first & RSV3_BIT),
            opcode=first & OPCODE_BITS,
            masked=bool(mask_key),
            mask_key=mask_key,
            payload_length=length,
            header_bytes=header_bytes,
            missing_bytes=missing,
            payload=payload,
            payload_truncated=len(payload) < length,
            close_code=close_code,
            close_reason=close_reason,
        ))

    def _read_close(self, frame: _Frame, ts_ns: int) -> tuple[int | None, str]:
        """Status code and reason of a Close frame (RFC 6455 5.5.1)."""
        at = f"Close frame at offset {frame.offset}"
        if frame.length == 0:
            return None, ""
        if frame.length == 1:
            self._finding(ts_ns, "ws-invalid-close-code", f"{at} has a 1-byte payload")
            return None, ""
        kept = frame.kept
        if len(kept) < 2:
            return None, ""  # the code fell into a gap
        code = (kept[0] << 8) | kept[1]
        problem = close_code_problem(code)
        if problem:
            self._finding(ts_ns, "ws-invalid-close-code", f"{at}: code {code}: {problem}")
        raw_reason = bytes(kept[2:])
        if len(kept) < frame.length:
            # Only part of the reason is here; a cut character proves nothing.
            return code, raw_reason.decode("utf-8", "replace")
        try:
            return code, raw_reason.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._finding(ts_ns, "ws-invalid-utf8",
                          f"{at}: reason is not UTF-8 ({exc.reason} at reason byte {exc.start})")
            return code, raw_reason.decode("utf-8", "replace")

    # --- messages ------------------------------------------------------------

    def _open_message(self, frame: _Frame) -> _Message:
        compressed = frame.rsv1 and self._deflate is not None
        message = _Message(frame, compressed)
        if not compressed:
            return message
        if not self._context_takeover:
            message.inflater = zlib.decompressobj(-15)
        elif self._inflater_lost:
            message.inflate_problem = "lost context"
        else:
            if self._inflater is None or self._inflater.eof:
                # A sender may end its DEFLATE stream with a BFINAL block
                # (RFC 7692 7.2.3.4); what follows is a fresh stream.
                self._inflater = zlib.decompressobj(-15)
            message.inflater = self._inflater
        return message

    def _message_wants(self, message: _Message, length: int) -> int:
        """How many leading bytes of a payload piece the message needs unmasked."""
        if message.compressed:
            return length if message.inflater is not None else 0
        if message.utf8 is not None:
            return length
        if message.preview_open:
            return min(length, self._preview_bytes - len(message.preview))
        return 0

    def _message_payload(self, message: _Message, data: bytes) -> None:
        if message.compressed:
            self._inflate(message, data)
        else:
            self._message_content(message, data)

    def _message_content(self, message: _Message, content: bytes) -> None:
        """Payload after decompression: fills the preview and feeds the UTF-8 check."""
        if message.preview_open:
            room = self._preview_bytes - len(message.preview)
            if room > 0:
                message.preview += content[:room]
            else:
                message.preview_open = False
        decoder = message.utf8
        if decoder is None:
            return
        message.utf8_checked += len(content)
        if message.utf8_checked > self._max_message_bytes:
            message.utf8 = None
            message.text_valid = None
            return
        try:
            decoder.decode(content, False)
        except UnicodeDecodeError as exc:
            message.utf8 = None
            message.text_valid = False
            message.utf8_error = exc.reason

    def _inflate(self, message: _Message, data: bytes) -> None:
        """Stream-decompress `data`, never producing more than the message cap."""
        inflater = message.inflater
        assert inflater is not None
        budget = self._budget
        try:
            while True:
                room = self._max_message_bytes - message.inflated
                budget_room = budget.room() if budget is not None else room
                max_length = min(room + 1, budget_room + 1, _INFLATE_STEP)
                out = inflater.decompress(data, max_length)
                data = inflater.unconsumed_tail
                if self._took_inflated(message, out, max_length, budget_room, data):
                    return
        except zlib.error as exc:
            self._inflate_failed(message, exc)

    def _took_inflated(self, message: _Message, out: bytes, max_length: int, budget_room: int,
                       rest: bytes) -> bool:
        """Count one decompress call's output; True when this input is done with."""
        message.inflated += len(out)
        if self._budget is not None:
            self._budget.spend(len(out))
        self._message_content(message, out)
        if message.inflated > self._max_message_bytes:
            self._stop_inflating(message, "limit")
            return True
        if len(out) > budget_room:
            self._stop_inflating(message, "budget")
            return True
        # A full output buffer may leave output pending inside zlib
        # even with no input left: call again to drain it.
        return len(out) < max_length and (not rest or not out)

    def _inflate_failed(self, message: _Message, exc: zlib.error) -> None:
        # zlib drops the output of the call that failed, so how much was
        # decompressed before the error depends on how the bytes were
        # chunked.  Keep nothing of it: neither the events nor the budget
        # left may depend on that (inspector.parse.budget).
        if self._budget is not None:
            self._budget.give_back(message.inflated)
        message.preview = bytearray()
        message.preview_open = False
        message.utf8 = None
        message.text_valid = None
        self._stop_inflating(message, f"error: {exc}")

    def _stop_inflating(self, message: _Message, problem: str) -> None:
        message.inflater = None
        message.inflate_problem = message.inflate_problem or problem
        if self._context_takeover:
            self._inflater = None
            self._inflater_lost = True

    def _message_gap(self, message: _Message) -> None:
        message.complete = False
        message.preview_open = False
        if message.utf8 is not None:
            message.utf8 = None
            message.text_valid = None
        if message.inflater is not None:
            self._stop_inflating(message, "gap")

    def _finish_message(self, ts_ns: int, *, complete: bool) -> None:
        message = self._message
        assert message is not None
        self._message = None
        if not complete:
            message.complete = False
        if message.inflater is not None:
            if message.complete:
                self._inflate(message, _DEFLATE_TAIL)
            else:
                self._stop_inflating(message, "incomplete")
        if message.utf8 is not None:
            if message.complete and not (message.compressed and message.inflate_problem):
                try:
                    message.utf8.decode(b"", True)
                except UnicodeDecodeError as exc:
                    message.text_valid = False
                    message.utf8_error = exc.reason
            else:
                message.text_valid = None  # unknown: content missing or not decompressed
        if message.frames == 0:
            return  # no frame of it was ever complete: nothing to report
        self._message_findings(message, ts_ns)
        payload_bytes: int | None
        if not message.compressed:
            payload_bytes = message.wire_payload_bytes
            # Streaming may have previewed bytes of a frame that never completed.
            preview = bytes(message.preview[:payload_bytes])
        else:
            payload_bytes = message.inflated if message.complete and not message.inflate_problem else None
            preview = bytes(message.preview)
        self._message_event(message.ts_ns, message.end_ts_ns, message.offset, message.end_offset,
                            message.opcode, message.frames, message.header_bytes,
                            message.wire_payload_bytes, payload_bytes, message.compressed,
                            message.text_valid, message.complete, preview)

    def _message_findings(self, message: _Message, ts_ns: int) -> None:
        at = f"message at offset {message.offset}"
        problem = message.inflate_problem
        if problem == "limit":
            self._finding(ts_ns, "ws-decompression-limit",
                          f"{at} decompresses to more than {self._max_message_bytes} bytes; "
                          "decompression stopped")
        elif problem == "budget":
            assert self._budget is not None
            if self._budget.first_report():
                self._finding(ts_ns, "ws-decompression-budget",
                              f"{at}: {self._budget.describe()}; decompressed sizes from here on are unknown")
        elif problem.startswith("error"):
            self._finding(ts_ns, "ws-decompression-failed", f"{at}: {problem}")
        if message.text_valid is False:
            self._finding(ts_ns, "ws-invalid-utf8", _invalid_utf8_detail(message.offset, message.utf8_error))

    def _message_event(self, ts_ns: int, end_ts_ns: int, offset: int, end_offset: int, opcode: int,
                       frames: int, header_bytes: int, wire_payload_bytes: int, payload_bytes: int | None,
                       compressed: bool, text_valid: bool | None, complete: bool, preview: bytes) -> None:
        self._events.append(WsMessage(
            direction=self._direction,
            ts_ns=ts_ns,
            end_ts_ns=end_ts_ns,
            offset=offset,
            end_offset=end_offset,
            opcode=opcode,
            frames=frames,
            header_bytes=header_bytes,
            wire_payload_bytes=wire_payload_bytes,
            payload_bytes=payload_bytes,
            compressed=compressed,
            text_valid=text_valid,
            complete=complete,
            payload=preview,
            payload_truncated=payload_bytes is None or len(preview) < payload_bytes,
        ))

    def _finding(self, ts_ns: int, rule: str, detail: str) -> None:
        self._events.append(Finding(ts_ns=ts_ns, direction=self._direction, rule=rule, detail=detail))

