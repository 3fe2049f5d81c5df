"""HTTP/1.1 message parser for one direction of a connection (sans-IO).

Pull parser in the style of h11: `receive_data(bytes, ts_ns)`, then
`next_event()` until it returns NEED_DATA.  One HttpRequest or HttpResponse
event is produced per message once its body is complete, with sizes measured
from stream offsets (never by re-serialising headers).  The body is read by
one reader per framing (`http1_body.py`).

Common cases first: while nothing is buffered, the messages a chunk of data
holds whole (headers, and a body of Content-Length bytes or none) are taken
straight from that chunk, each body in one slice; only what is left goes
into the receive buffer, whose searches remember how far they got.

A request parser pauses after a request that may switch protocols (Upgrade,
CONNECT) until the connection tells it what the response said; a response
parser stops for good after a 101 or a successful CONNECT.  The bytes left
over then belong to whatever comes next (`take_trailing_data`).

Bytes that cannot be framed (garbage, bytes after a gap that broke framing)
are skipped until something that looks like a start line appears again, and
counted in `unparsed_bytes` so byte accounting still adds up.
"""

from __future__ import annotations

import bisect
from collections import deque

from inspector.events import DEFAULT_PREVIEW_BYTES, NEED_DATA, Direction, Finding, HttpRequest, HttpResponse
from inspector.parse.pending import PendingEvents
from inspector.parse.budget import DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE, DecompressionBudget
from inspector.parse.http1_body import (
    INFLATED_ENCODINGS,
    MAX_CHUNK_LINE_BYTES,
    MAX_CHUNK_SIZE_DIGITS,
    MAX_HEADER_BYTES,
    MAX_LENGTH_DIGITS,
    MAX_TRAILER_BYTES,
    ChunkedReader,
    ContentLengthReader,
    Message,
    ReadUntilCloseReader,
    inflate,
)
from inspector.parse.sse_body import SseBody, is_event_stream

__all__ = [
    "MAX_CHUNK_LINE_BYTES", "MAX_CHUNK_SIZE_DIGITS", "MAX_HEADER_BYTES",
    "MAX_LENGTH_DIGITS", "MAX_START_LINE_BYTES", "MAX_TRAILER_BYTES", "Http1Parser", "Role", "StartLineFinder",
    "is_status_code_prefix", "looks_like_message_start",
]

# A start line found where framing was lost, line end included: a longer one is not recognised.
MAX_START_LINE_BYTES = 8 * 1024

# Start lines are recognised with bytes methods and bounded checks, never a
# regular expression: the bytes are the attacker's, and a pattern with
# unbounded repeats searched again on every received segment is quadratic
# or worse.
_DIGITS = b"0123456789"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TOKEN = _DIGITS + _UPPER + _UPPER.lower() + b"!#$%&'*+.^_`|~-"  # RFC 9110 5.6.2 tchar
_WHITESPACE = b" \t\n\r\x0b\x0c"  # what regular expressions call \s
_CUT_VERSION = b"HTP/0123456789."  # what a version cut short may hold
_MAX_METHOD = 12  # a method found by resync or in a cut line: 3 to 12 capitals
_COMMON_VERSIONS = {b"HTTP/1.1": "HTTP/1.1", b"HTTP/1.0": "HTTP/1.0"}


class Role:
    REQUEST = "request"
    RESPONSE = "response"


class Http1Parser(PendingEvents):
    """Parses the HTTP/1.x messages one side of a connection sent."""

    def __init__(
        self,
        direction: Direction,
        role: str,
        *,
        start_offset: int = 0,
        preview_bytes: int = DEFAULT_PREVIEW_BYTES,
        max_decompressed: int = DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE,
        in_sync: bool = True,
        decompression_budget: DecompressionBudget | None = None,
    ) -> None:
        self.direction = direction
        self.role = role
        self._responses = role == Role.RESPONSE
        # HttpRequest and HttpResponse share their fields' order; only the start line's three differ.
        self._event_class = HttpResponse if self._responses else HttpRequest
        self.preview_bytes = preview_bytes
        self.max_decompressed = max_decompressed
        self.decompression_budget = decompression_budget  # shared with the rest of the connection
        self._buf = bytearray()
        self._times = _ChunkTimes()
        self.offset = start_offset  # stream offset of _buf[0]
        # How far searches in the buffer got, as stream offsets, so that bytes
        # arriving a few at a time are never searched again (h11's receive buffer).
        self._blank_end = start_offset  # the CR/LF run before a start line ends here or later
        self._header_searched = start_offset  # no end of headers starts before this
        self._line_searched = start_offset  # no LF before this (chunk-size and trailer lines)
        self._start_lines = StartLineFinder(role)
        self._start_lines_known = _known_request_lines if role == Role.REQUEST else _known_status_lines
        self._events: list = []  # in stream order; next_event hands them out, take_events all at once
        self._handed = 0  # events of the list next_event already handed out
        self._message: Message | None = None  # its head is parsed, its body is being read
        self._request_methods: deque[str] = deque()
        self.unparsed_bytes = 0
        self.paused = False  # request side: waiting to learn if the protocol switched
        self.switched = False  # no more HTTP in this direction
        # Out of sync: skip to the next start line before parsing.
        self._lost_sync = not in_sync
        self._eof = False
        self._last_method = ""

    # -- input -----------------------------------------------------------------

    def receive_data(self, data: bytes, ts_ns: int) -> None:
        if not data:
            return
        if not self._buf and not (self.paused or self.switched or self._lost_sync):
            if type(data) is not bytes:
                data = bytes(data)  # slices of it become event fields
            taken = self._take_from_chunk(data, ts_ns)
            if taken:
                if taken == len(data):
                    return
                data = data[taken:]
        self._times.add(self.offset + len(self._buf), ts_ns)
        self._buf += data
        self._parse(ts_ns)

    def receive_gap(self, length: int, ts_ns: int) -> None:
        """`length` stream bytes were never captured."""
        self._parse(ts_ns)
        message = self._message
        if message is not None and not self._buf and message.reader.take_gap(length):
            if message.sse is not None:
                message.sse.gap(length, self.offset, ts_ns)
            message.missing_bytes += length
            message.wire_bytes += length
            message.complete = False
            self.offset += length
            message.decompressor = None
            message.decompressed = None
            if message.reader.finished():
                self._emit(message)
            self._parse(ts_ns)
            return
        # Framing is lost: what is buffered and the gap itself are unparsed,
        # except a message head cut by the gap, which is kept as incomplete.
        if message is not None:
            message.complete = False
            self._emit(message)
        elif self._buf and not self.switched and not self._lost_sync:
            self._emit_cut_head(ts_ns)
        if self._buf and not self.switched:
            self._events.append(Finding(ts_ns, self.direction, "http-lost-sync", f"gap of {length} bytes at offset {self.offset + len(self._buf)} broke HTTP framing"))
        self._skip(len(self._buf))
        self.offset += length
        self._lost_sync = not self.switched

    def _emit_cut_head(self, ts_ns: int) -> None:
        """A start line (maybe partial) and headers cut short by a gap."""
        buf = bytes(self._buf)
        lead = len(buf) - len(buf.lstrip(b"\r\n"))
        first_line = buf[lead:].split(b"\n", 1)[0].rstrip(b"\r")
        start = (_parse_cut_request_line if self.role == Role.REQUEST else _parse_cut_status_line)(first_line)
        if start is None:
            return
        raw = buf[lead:].partition(b"\n")[2].decode("latin-1")
        message = Message(self._ts_at(self.offset), ts_ns, self.offset, start, raw, len(buf))
        message.complete = False
        self._consume(len(buf))
        if self.role == Role.RESPONSE and self._request_methods:
            self._request_methods.popleft()
        self._emit(message)
        self.paused = False  # framing is unknown: never wait for an upgrade here

    def receive_eof(self, ts_ns: int) -> None:
        self._eof = True
        self._parse(ts_ns)
        message = self._message
        if message is not None:
            if not message.reader.ends_at_close:
                message.complete = False
                self._events.append(Finding(ts_ns, self.direction, "http-incomplete-message", f"stream ended inside a message body at offset {self.offset}"))
            self._emit(message)
        if self._buf and not self.paused and not self.switched:
            if not self._lost_sync:
                self._events.append(Finding(ts_ns, self.direction, "http-incomplete-message", f"{len(self._buf)} bytes at offset {self.offset} do not form a complete HTTP message"))
            self._skip(len(self._buf))

    def expect_response_to(self, method: str) -> None:
        """Response side: a request was sent; responses are paired FIFO."""
        self._request_methods.append(method)

    @property
    def awaiting_responses(self) -> bool:
        """Response side: requests were seen whose responses have not come yet."""
        return bool(self._request_methods)

    def resume(self, ts_ns: int) -> None:
        """Request side: the upgrade was refused; go on parsing HTTP."""
        self.paused = False
        self._parse(ts_ns)

    def take_trailing_data(self) -> tuple[int, bytes]:
        """After a protocol switch: (stream offset, bytes) not yet parsed."""
        self.switched = True
        self.paused = False
        data = bytes(self._buf)
        offset = self.offset
        self.offset += len(data)
        self._buf.clear()
        self._times.clear()
        return offset, data

    def _take_from_chunk(self, data: bytes, ts_ns: int) -> int:
        """With nothing buffered: take from `data` the rest of a Content-Length body being
        read and the messages it holds whole; how many bytes were taken.

        Every byte taken here came in this chunk, so every time is `ts_ns`.
        What is left (a message not all here, or anything unusual) goes the
        general way, through the buffer.
        """
        position = 0
        end = len(data)
        message = self._message
        if message is not None:
            reader = message.reader
            if type(reader) is not ContentLengthReader or message.sse is not None:
                return 0
            taken = min(reader.remaining, end)
            self._take_body_from_chunk(message, data, 0, taken, ts_ns)
            reader.remaining -= taken
            if reader.remaining > 0:
                return taken
            self._emit(message)
            position = taken
        known_start_lines = self._start_lines_known
        responses = self._responses
        while position < end and not self.paused:
            if data[position] in b"\r\n":
                break  # blank lines before a start line: counted the general way
            # The first LF followed by an empty line (CRLF, or a bare LF as most servers tolerate).
            crlf = data.find(b"\n\r\n", position)
            lf = data.find(b"\n\n", position, crlf + 1 if crlf >= 0 else end)
            if lf >= 0:
                newline, header_end = lf, lf + 2
            elif crlf >= 0:
                newline, header_end = crlf, crlf + 3
            else:
                break
            block_end = newline - 1 if data[newline - 1] == 0x0D else newline
            line_end = data.find(b"\n", position, block_end)
            if line_end < 0:
                line_end = block_end  # a start line and no header lines
            start = known_start_lines[data[position:line_end]]
            if start is None:
                break  # a framing error: reported the general way
            raw, length, encoding, upgrade, event_stream = _known_header_blocks[data[line_end + 1:block_end]]
            if event_stream and responses:
                break  # a text/event-stream body is read the general way, its events as they come
            offset = self.offset
            header_bytes = header_end - position
            if responses and self._response_without_body(start[1]):
                body = 0
            elif length >= 0 and (length <= end - header_end and encoding not in INFLATED_ENCODINGS or not length):
                body = length
            elif length == NO_LENGTH and not responses:
                body = 0
            else:
                reader = self._reader_of_headers(ts_ns, offset, length, raw)
                if reader is None:
                    body = 0
                else:
                    # The body goes on past this chunk, is chunked or compressed: a Message reads it.
                    message = Message(ts_ns, ts_ns, offset, start, raw, header_bytes)
                    message.upgrade = upgrade
                    message.content_encoding = encoding
                    message.reader = reader
                    message.has_body = True
                    self.offset = offset + header_bytes
                    position = header_end
                    if type(reader) is not ContentLengthReader:
                        self._message = message
                        break
                    taken = min(reader.remaining, end - position)
                    self._take_body_from_chunk(message, data, position, taken, ts_ns)
                    reader.remaining -= taken
                    position += taken
                    if reader.remaining > 0:
                        self._message = message
                        break
                    self._emit(message)
                    continue
            # The whole message is here: its event straight away, as _emit would make it.
            position = header_end + body
            self.offset = offset + header_bytes + body
            first, second, third = start  # (positional arguments: a call with *start costs more)
            self._events.append(self._event_class(
                self.direction, ts_ns, ts_ns, offset, first, second, third, raw, header_bytes, body, 0, body, 0, encoding, None, True,
                data[header_end:header_end + (body if body < self.preview_bytes else self.preview_bytes)],
            ))
            if responses:
                if start[1] == 101 or (not body and 200 <= start[1] < 300 and self._last_method == "CONNECT"):
                    self.paused = True
            elif start[0] == "CONNECT" or upgrade:
                self.paused = True
        return position

    def _take_body_from_chunk(self, message: Message, data: bytes, start: int, length: int, ts_ns: int) -> None:
        if length <= 0:
            return
        body = data[start : start + length] if start or length < len(data) else data
        room = self.preview_bytes - len(message.preview)
        if room > 0:
            message.preview = message.preview + body[:room] if message.preview else body[:room]
        if message.content_encoding and message.inflating:
            self._inflate(message, body)
        message.data_bytes += length
        message.wire_bytes += length
        message.end_ts_ns = ts_ns
        self.offset += length

    # -- parsing through the buffer ----------------------------------------------

    def _parse(self, ts_ns: int) -> None:
        while self._buf and not self.paused and not self.switched:
            if self._lost_sync and not self._resync():
                return
            message = self._message
            if message is not None:
                if message.reader.read(self, message):
                    self._emit(message)
                elif self._message is not None:
                    return  # the body goes on in data not here yet
                continue  # else the reader ended the message early (a framing error)
            if not self._read_header():
                return

    def _ts_at(self, offset: int) -> int:
        """Capture time of the chunk that carried stream byte `offset`."""
        return self._times.at(offset)

    def _skip(self, n: int) -> None:
        self.unparsed_bytes += n
        self._consume(n)

    def _consume(self, n: int) -> None:
        del self._buf[:n]  # bytearray drops its front in constant time
        self.offset += n
        if self._buf:
            self._times.forget_before(self.offset)
        else:
            self._times.clear()  # no earlier chunk's time is needed again

    def _resync(self) -> bool:
        start = self._start_lines.find(self._buf, self.offset)
        if start < 0:
            # Bytes that can no longer begin a start line are unparsed now: the
            # buffer keeps at most one start line's worth, and at least its last
            # byte, so that a gap coming next still finds bytes it left unframed.
            keep_from = min(self._start_lines.keep_from(self._buf, self.offset), len(self._buf) - 1)
            self._skip(len(self._buf) if self._eof else keep_from)
            return False
        self._skip(start)
        self._lost_sync = False
        return True

    def _read_header(self) -> bool:
        buf = self._buf
        # RFC 9112 2.2: ignore empty lines before a start line; they count as
        # header bytes of the message that follows.
        lead = self._blank_lead()
        block_end, header_len = self._find_header_end(lead)
        if block_end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                self._framing_error(f"no end of headers within {MAX_HEADER_BYTES} bytes at offset {self.offset}")
            return False
        start_line, _, raw_headers = bytes(buf[lead:block_end]).partition(b"\n")
        start_line = start_line.rstrip(b"\r")
        start = self._start_lines_known[start_line]
        if start is None:
            shown = repr(start_line[:60])
            self._framing_error(f"not an HTTP {self.role} line at offset {self.offset}: {shown}")
            return True
        framing = _known_header_blocks[raw_headers]
        message = Message(self._ts_at(self.offset + lead), self._ts_at(self.offset + header_len - 1), self.offset, start,
                          framing[0], header_len)
        self._consume(header_len)
        if self._frame(message, framing) is None:
            self._emit(message)
        else:
            self._message = message
        return True

    def _blank_lead(self) -> int:
        """Number of CR and LF bytes at the front of the buffer (each counted once)."""
        buf = self._buf
        lead = max(self._blank_end - self.offset, 0)
        while lead < len(buf) and buf[lead] in (0x0D, 0x0A):
            lead += 1
        self._blank_end = self.offset + lead
        return lead

    def _find_header_end(self, lead: int) -> tuple[int, int]:
        """(end of the header block, end of the blank line) or (-1, -1).

        The block ends at the first LF followed by an empty line: a CRLF or,
        tolerated as by most servers, a bare LF.  A search that finds none
        starts again two bytes before where it stopped, so however the bytes
        arrive each is looked at a bounded number of times.
        """
        buf = self._buf
        searched = max(lead, self._header_searched - self.offset)
        crlf = buf.find(b"\n\r\n", searched)
        lf = buf.find(b"\n\n", searched, crlf + 1 if crlf >= 0 else len(buf))
        if lf >= 0:
            newline, blank_end = lf, lf + 2
        elif crlf >= 0:
            newline, blank_end = crlf, crlf + 3
        else:
            self._header_searched = self.offset + max(len(buf) - 2, searched)
            return -1, -1
        block_end = newline - 1 if newline > lead and buf[newline - 1] == 0x0D else newline
        return block_end, blank_end

    # -- what body readers use ------------------------------------------------------

    def find_line_end(self) -> int:
        """Index of the first LF in the buffer, or -1; bytes searched before are not searched again."""
        newline = self._buf.find(b"\n", max(self._line_searched - self.offset, 0))
        self._line_searched = self.offset + (newline if newline >= 0 else len(self._buf))
        return newline

    def take_body(self, message: Message, n: int, framing: int = 0) -> None:
        """Take `n` bytes of body content, then `framing` bytes of chunk framing, from the buffer."""
        if n <= 0 and framing <= 0:
            return
        message.end_ts_ns = self._ts_at(self.offset + n + framing - 1)
        sse = message.sse
        if n:
            room = self.preview_bytes - len(message.preview)
            if room > 0:
                if type(message.preview) is bytes:
                    message.preview = bytearray(message.preview)
                message.preview += self._buf[: min(room, n)]
            if sse is not None:
                self._sse_content(message, sse, bytes(self._buf[:n]))
            elif message.content_encoding and message.inflating:
                self._inflate(message, bytes(self._buf[:n]))
            message.data_bytes += n
        if framing and sse is not None:
            sse.framing(framing, self.offset + n, message.end_ts_ns)
        message.wire_bytes += n + framing
        message.framing_bytes += framing
        self._consume(n + framing)

    def _sse_content(self, message: Message, sse: SseBody, data: bytes) -> None:
        """Body bytes at the front of the buffer, to the body's SSE parser (decoded when they are
        gzip or deflate and can be)."""
        if message.content_encoding and message.inflating:
            sse.begin_coded(self.offset, len(data), self._ts_at)
            self._inflate(message, data)
            sse.end_coded()
        else:
            sse.content(data, self.offset, self._ts_at)

    def report_framing_error(self, detail: str) -> None:
        """A framing error that parsing can step over."""
        self._events.append(Finding(self._ts_at(self.offset), self.direction, "http-framing-error", detail))

    def end_chunked_message(self, message: Message, detail: str) -> None:
        """Chunk framing cannot go on: the message ends here, incomplete, and sync is lost."""
        ts_ns = self._ts_at(self.offset)
        message.complete = False
        self._events.append(Finding(ts_ns, self.direction, "http-framing-error", detail))
        self._emit(message)
        self._lost_sync = True

    def _framing_error(self, detail: str) -> None:
        self.report_framing_error(detail)
        self._lost_sync = True
        self._skip(1)

    # -- body framing (RFC 9112 section 6.3) -------------------------------------

    def _frame(self, message: Message, framing: tuple[str, int, str, bool]):
        """Decide how the body of `message` is framed (its header block's `framing`, as
        _header_block gives it): its reader, or None when it has no body."""
        raw_headers, length, message.content_encoding, message.upgrade, event_stream = framing
        if self._responses and self._response_without_body(message.start[1]):
            reader = None
        else:
            reader = self._reader_of_headers(message.ts_ns, message.offset, length, raw_headers)
        message.reader = reader
        message.has_body = reader is not None
        if event_stream and reader is not None and self._responses:
            message.sse = SseBody(self.direction, message.offset, message.offset + message.header_bytes, self, message.ts_ns,
                                  coding=message.content_encoding, chunked=type(reader) is ChunkedReader)
        return reader

    def _response_without_body(self, status: int) -> bool:
        """Whether a response of `status` has no body whatever its headers say; pairs
        it with its request (call once per response)."""
        interim = 100 <= status < 200 and status != 101
        # Interim (1xx) responses precede the final one to the same request.
        method = self._request_methods.popleft() if self._request_methods and not interim else ""
        if not interim:
            self._last_method = method
        if 100 <= status < 200 or status in (204, 304) or method == "HEAD":
            return True  # 1xx, 204, 304 and responses to HEAD never have a body.
        return method == "CONNECT" and 200 <= status < 300

    def _reader_of_headers(self, ts_ns: int, offset: int, length: int, raw_headers: str):
        """The body's reader as the headers frame it (None: no body); `length` as _header_block gives it."""
        if length >= 0:
            return ContentLengthReader(length) if length else None
        # No length, or a final encoding other than chunked: requests have no body;
        # responses run until the connection closes (RFC 9112 6.3 items 4 and 8).
        to_close = _READ_UNTIL_CLOSE if self._responses else None
        if length == NO_LENGTH:
            return to_close
        headers = _framing_headers(raw_headers)
        content_length = headers.get("content-length")
        transfer_encoding = headers.get("transfer-encoding")
        if transfer_encoding:
            if content_length is not None:
                self._events.append(Finding(ts_ns, self.direction, "http-te-and-cl", f"message at offset {offset} has both Transfer-Encoding and Content-Length; Transfer-Encoding wins"))
            if transfer_encoding.lower().replace(" ", "").split(",")[-1] == "chunked":
                return ChunkedReader()
            return to_close
        # A Content-Length that is no number (OTHER_FRAMING without Transfer-Encoding).
        digits = _content_length_digits(content_length)
        problem = "invalid" if digits is None else f"more than {MAX_LENGTH_DIGITS} digits in"
        self._events.append(Finding(ts_ns, self.direction, "http-framing-error", f"{problem} Content-Length {content_length!r:.60} at offset {offset}"))
        return to_close

    # -- body content and the event -------------------------------------------------

    def _inflate(self, message: Message, data: bytes) -> None:
        inflate(message, data, self.max_decompressed, self.decompression_budget, self._events, self.direction)

    def _emit(self, message: Message) -> None:
        self._message = None
        if message.sse is not None:
            message.sse.finish(max(message.end_ts_ns, message.ts_ns))
        decompressed = message.decompressed if message.decompressed is not None and message.decompressed >= 0 and message.complete else None
        if message.decompressor is not None and decompressed is not None and not message.decompressor.eof:
            decompressed = None  # the compressed stream did not end cleanly
        self._events.append(self._event_class(
            self.direction, message.ts_ns, max(message.end_ts_ns, message.ts_ns), message.offset, *message.start,
            message.raw_headers, message.header_bytes, message.wire_bytes, message.framing_bytes,
            message.data_bytes + message.missing_bytes, message.missing_bytes, message.content_encoding, decompressed,
            message.complete, bytes(message.preview),
        ))
        if not self._responses:
            if message.start[0] == "CONNECT" or message.upgrade:
                self.paused = True
        else:
            status = message.start[1]
            if status == 101 or (not message.has_body and 200 <= status < 300 and self._last_method == "CONNECT"):
                # The connection decides what the bytes after this belong to.
                self.paused = True


_READ_UNTIL_CLOSE = ReadUntilCloseReader()  # it holds no state


class _ChunkTimes:
    """Capture time of each chunk received, found by bisection (never a linear scan)."""

    def __init__(self) -> None:
        self._offsets: list[int] = []  # stream offset of each chunk's first byte, increasing
        self._times: list[int] = []
        self._first = 0  # chunks before this index are no longer needed

    def add(self, offset: int, ts_ns: int) -> None:
        self._offsets.append(offset)
        self._times.append(ts_ns)

    def at(self, offset: int) -> int:
        """Time of the chunk that carried stream byte `offset` (the first chunk's before it, 0 if none)."""
        offsets = self._offsets
        if self._first >= len(offsets):
            return 0
        if offset >= offsets[-1]:
            return self._times[-1]  # the newest chunk: most lookups
        index = bisect.bisect_right(offsets, offset, self._first) - 1
        return self._times[max(index, self._first)]

    def forget_before(self, offset: int) -> None:
        """Bytes before `offset` are gone: keep only the chunk holding it and those after."""
        index = bisect.bisect_right(self._offsets, offset, self._first) - 1
        if index > self._first:
            self._first = index
            if index > 64 and 2 * index > len(self._offsets):
                del self._offsets[:index], self._times[:index]
                self._first = 0

    def clear(self) -> None:
        if self._offsets:
            self._offsets.clear()
            self._times.clear()
            self._first = 0


class StartLineFinder:
    """Finds where the next request or status line starts in a stream (bounded, linear work).

    A start line is the end of a line: `METHOD target HTTP/1.x` (3 to 12
    capitals, a target without white space) or `HTTP/1.x NNN reason`, line
    end included, at most MAX_START_LINE_BYTES long.  What precedes it on its
    line is garbage (a keep-alive probe byte, the tail of a message cut by a
    gap).  Positions are kept as stream offsets, so the caller may drop bytes
    from the front of its buffer between calls; no line is looked through twice
    unless the caller skipped only part of it.
    """

    __slots__ = ("role", "_line_start", "_searched", "_line")

    def __init__(self, role: str) -> None:
        self.role = role
        self._line_start = 0  # stream offset where the line being searched starts
        self._searched = 0  # stream offset: no LF from the line start up to here
        self._line: tuple[int, tuple[int, int] | None] = (-1, None)  # (offset of its LF, where starts may lie)

    def find(self, buf: bytes | bytearray, base: int) -> int:
        """Index in `buf` (stream bytes from offset `base`) where the first start line begins, or -1."""
        position = max(self._searched - base, 0)
        while True:
            newline = buf.find(b"\n", position)
            if newline < 0:
                self._searched = base + len(buf)
                return -1
            start = self._start_in_line(buf, base, newline)
            if start >= 0:
                self._searched = base + newline  # a caller that skips part of the line looks at it again
                return start
            position = newline + 1
            self._line_start = self._searched = base + position

    def keep_from(self, buf: bytes | bytearray, base: int) -> int:
        """After `find` returned -1: no start line can begin before this index of `buf`."""
        return max(self._line_start - base, len(buf) + 1 - MAX_START_LINE_BYTES, 0)

    def _start_in_line(self, buf, base: int, newline: int) -> int:
        if self._line[0] != base + newline:
            lo = max(self._line_start - base, newline + 1 - MAX_START_LINE_BYTES, 0)
            end = newline - 1 if newline > lo and buf[newline - 1] == 0x0D else newline
            span = (_request_line_span if self.role == Role.REQUEST else _status_line_span)(buf, lo, end)
            self._line = (base + newline, None if span is None else (base + span[0], base + span[1]))
        span = self._line[1]
        if span is None:
            return -1
        first, last = max(span[0], base) - base, span[1] - base
        if self.role == Role.REQUEST:
            return first if first <= last else -1
        return _status_start(buf, first, last)


def looks_like_message_start(data: bytes | bytearray, role: str) -> bool:
    """Whether a stream's first bytes begin a message: `HTTP/`, or capitals, a space and a target.

    Blank lines may come first; a request line may be cut short (snaplen, a gap).
    """
    data = bytes(data)
    if role == Role.RESPONSE:
        return data.lstrip(b"\r\n")[:5] == b"HTTP/"
    position = 0
    while data[position : position + 1] == b"\n" or data[position : position + 2] == b"\r\n":
        position += 1 if data[position] == 0x0A else 2
    method = _leading(data[position : position + _MAX_METHOD + 1], _UPPER)
    after = data[position + len(method) : position + len(method) + 2]
    return 3 <= len(method) <= _MAX_METHOD and len(after) == 2 and after[0] == 0x20 and after[1] not in _WHITESPACE


def _request_line_span(buf, lo: int, end: int) -> tuple[int, int] | None:
    """Where in buf[lo:end] (one line, its end left out) a request line ending the line may start.

    The line ends in ` HTTP/1.0` or ` HTTP/1.1`, preceded by a target
    without white space, one space and 3 to 12 capitals: any start from the
    first of those capitals (at most 12 back) to the third last is a match.
    """
    if end - lo < 14 or bytes(buf[end - 9 : end - 1]) != b" HTTP/1." or buf[end - 1] not in b"01":
        return None
    target_end = end - 9
    space = max(buf.rfind(byte, lo, target_end) for byte in _WHITESPACE)
    if space < 0 or space == target_end - 1 or buf[space] != 0x20:
        return None
    capitals = space
    while capitals > max(lo, space - _MAX_METHOD) and buf[capitals - 1] in _UPPER:
        capitals -= 1
    return (capitals, space - 3) if space - capitals >= 3 else None


def _status_line_span(buf, lo: int, end: int) -> tuple[int, int] | None:
    """Where in buf[lo:end] (one line, its end left out) a status line ending the line may start.

    A status line holds no CR before its line end, so it starts after the last one.
    """
    lo = max(lo, buf.rfind(b"\r", lo, end) + 1)
    return (lo, end) if end - lo >= 12 else None


def _status_start(buf, start: int, end: int) -> int:
    """First index in buf[start:end] where `HTTP/1.x NNN` begins within the range, or -1."""
    position = buf.find(b"HTTP/1.", start, end)
    while position >= 0 and position + 12 <= end:
        if is_status_code_prefix(buf, position):
            return position
        position = buf.find(b"HTTP/1.", position + 1, end)
    return -1


def is_status_code_prefix(buf, position: int) -> bool:
    """buf[position:] begins with `HTTP/1.0 NNN` or `HTTP/1.1 NNN`."""
    return bytes(buf[position : position + 7]) == b"HTTP/1." and bytes(buf[position + 7 : position + 9]) in (b"0 ", b"1 ") and _only(bytes(buf[position + 9 : position + 12]), _DIGITS)


def _only(data: bytes, alphabet: bytes) -> bool:
    """`data` is not empty and holds only bytes of `alphabet`."""
    return bool(data) and not data.translate(None, alphabet)


def _leading(data: bytes, alphabet: bytes) -> bytes:
    """The longest prefix of `data` made of bytes of `alphabet`."""
    return data[: len(data) - len(data.lstrip(alphabet))]


def _is_version(data: bytes) -> bool:
    """`HTTP/d.d` (RFC 9112 2.3)."""
    return len(data) == 8 and data.startswith(b"HTTP/") and data[5] in _DIGITS and data[6] == 0x2E and data[7] in _DIGITS


def _split_target(rest: bytes) -> tuple[bytes, bytes] | None:
    """(target, what follows it) from what follows a method: spaces, then no white space."""
    rest = rest.lstrip(b" ")
    if not rest or rest[0] in _WHITESPACE:
        return None
    target = rest.split(None, 1)[0]
    return target, rest[len(target) :]


def _parse_request_line(line: bytes) -> tuple[str, str, str] | None:
    """`method SP+ target [SP+ HTTP/d.d]`, the whole line; no version is HTTP/0.9."""
    parts = line.split(b" ")
    if len(parts) == 3 and parts[2] in _COMMON_VERSIONS:
        # The usual `METHOD target HTTP/1.x`, one space apart: only the method and target to check.
        method, target, version = parts
        if method and not method.translate(None, _TOKEN) and target.split() == [target]:
            return method.decode("ascii"), target.decode("latin-1"), _COMMON_VERSIONS[version]
    method, space, rest = line.partition(b" ")
    parts = _split_target(rest) if space and _only(method, _TOKEN) else None
    if parts is None:
        return None
    target, after = parts
    version = after.lstrip(b" ")
    if after and (after[0] != 0x20 or not _is_version(version)):
        return None
    return method.decode("ascii"), target.decode("latin-1"), (version or b"HTTP/0.9").decode("ascii")


def _parse_cut_request_line(line: bytes) -> tuple[str, str, str] | None:
    """What a gap left of a request line: `METHOD SP+ target`, then maybe a version or its start."""
    method = _leading(line[: _MAX_METHOD + 1], _UPPER)
    parts = _split_target(line[len(method) :]) if 3 <= len(method) <= _MAX_METHOD and line[len(method) : len(method) + 1] == b" " else None
    if parts is None:
        return None
    target, after = parts
    version = b""
    if after[:1] == b" ":
        after = after.lstrip(b" ")
        version = after[:8] if _is_version(after[:8]) else _leading(after, _CUT_VERSION) if after[:1] == b"H" else b""
    return method.decode("ascii"), target.decode("latin-1"), version.decode("ascii")


def _status_parts(line: bytes) -> tuple[bytes, int, bytes] | None:
    """(version, status, what follows the code) of `HTTP/d.d SP+ NNN...`."""
    version, rest = line[:8], line[8:]
    if not _is_version(version) or rest[:1] != b" ":
        return None
    rest = rest.lstrip(b" ")
    code = rest[:3]
    if len(code) != 3 or not _only(code, _DIGITS):
        return None
    return version, int(code), rest[3:]


def _parse_status_line(line: bytes) -> tuple[str, int, str] | None:
    """`HTTP/d.d SP+ NNN [SP reason]`, the whole line."""
    version = _COMMON_VERSIONS.get(line[:8])
    code = line[9:12]
    if version is not None and line[8:9] == b" " and len(code) == 3 and code.isdigit() and line[12:13] in (b"", b" "):
        return version, int(code), line[13:].decode("latin-1")  # the usual `HTTP/1.x NNN reason`
    parts = _status_parts(line)
    if parts is None or parts[2][:1] not in (b"", b" "):
        return None
    return _status_fields(*parts)


def _parse_cut_status_line(line: bytes) -> tuple[str, int, str] | None:
    """What a gap left of a status line: `HTTP/d.d SP+ NNN`, then maybe a reason."""
    parts = _status_parts(line)
    return None if parts is None else _status_fields(*parts)


def _status_fields(version: bytes, status: int, after: bytes) -> tuple[str, int, str]:
    reason = after[1:] if after[:1] == b" " else b""
    return version.decode("ascii"), status, reason.decode("latin-1")


def _content_length_digits(value: str) -> str | None:
    """The one value of a Content-Length (RFC 9110 8.6: 1*DIGIT, repeats must agree), or None."""
    if value.isdigit() and value.isascii():
        return value  # one plain number, the usual case
    values = {v.strip(" \t") for v in value.split(",")}
    digits = values.pop() if len(values) == 1 else ""
    return digits if digits.isascii() and digits.isdigit() else None


_FRAMING_NAMES = ("content-length", "transfer-encoding", "content-encoding", "upgrade", "content-type")
# Each name as found at the start of a line of the block with a LF put before it.
_FRAMING_LINE_STARTS = tuple(("\n" + name, name) for name in _FRAMING_NAMES)


def _framing_headers(raw: str) -> dict[str, str]:
    """Only the headers that decide framing; repeated ones joined with ", ".

    A header line is `name`, optional spaces or tabs, `:`, the value; names
    match case-insensitively.  Each name is looked for at line starts with
    one search over the lower-cased block (latin-1 text keeps its length when
    lower-cased), so the other header lines are never split apart.
    """
    found: dict[str, str] = {}
    lowered = "\n" + raw.lower()  # index i of `lowered` is index i - 1 of `raw`
    for line_start, name in _FRAMING_LINE_STARTS:
        at = lowered.find(line_start)
        while at >= 0:
            line_end = lowered.find("\n", at + 1)
            if line_end < 0:
                line_end = len(lowered)
            after_name = raw[at + len(name) : line_end - 1].lstrip(" \t")
            if after_name[:1] == ":":
                value = after_name[1:].lstrip(" \t").rstrip(" \t\r")
                found[name] = f"{found[name]}, {value}" if name in found else value
            at = lowered.find(line_start, line_end)
    return found


# What a header block alone says of a body's length (_header_block), when it is not the Content-Length:
NO_LENGTH = -1  # neither Content-Length nor Transfer-Encoding
OTHER_FRAMING = -2  # Transfer-Encoding, or a Content-Length that is no number: _reader_of_headers decides, with findings


def _header_block(block: bytes) -> tuple[str, int, str, bool, bool]:
    """(text, body length, content coding, Upgrade sent, text/event-stream) of a header block
    (the header lines after the start line, as sent).

    The text is the block decoded as latin-1; the body length is the Content-Length
    when it alone frames the body, else NO_LENGTH or OTHER_FRAMING; the content
    coding as compared ("" for none); whether the Content-Type is text/event-stream
    (a response's body is then read as Server-Sent Events: parse/sse_body.py).
    """
    raw = block.decode("latin-1")
    headers = _framing_headers(raw)
    encoding = headers["content-encoding"].strip().lower() if "content-encoding" in headers else ""
    upgrade = "upgrade" in headers
    event_stream = "content-type" in headers and is_event_stream(headers["content-type"])
    if headers.get("transfer-encoding"):
        return raw, OTHER_FRAMING, encoding, upgrade, event_stream
    content_length = headers.get("content-length")
    if content_length is None:
        return raw, NO_LENGTH, encoding, upgrade, event_stream
    digits = _content_length_digits(content_length)
    if digits is None or len(digits.lstrip("0")) > MAX_LENGTH_DIGITS:
        return raw, OTHER_FRAMING, encoding, upgrade, event_stream
    return raw, int(digits), encoding, upgrade, event_stream


def _request_line(line: bytes) -> tuple[str, str, str] | None:
    """_parse_request_line of a line that may still end in CRs."""
    return _parse_request_line(line.rstrip(b"\r"))


def _status_line(line: bytes) -> tuple[str, int, str] | None:
    """_parse_status_line of a line that may still end in CRs."""
    return _parse_status_line(line.rstrip(b"\r"))


# Start lines and header blocks recur across a capture's connections (most carry
# one message or a few): each is parsed once per process and looked up after.
_MEMO_MAX_ENTRIES = 4096  # then the memo starts again, so hostile variety costs bounded memory
_MEMO_MAX_KEY = 512  # longer lines and blocks are parsed every time


class _Memo(dict):
    """`parse` (a pure function of one bytes or str argument) with a bounded memo of
    short arguments: `memo[key]` is `parse(key)`, looked up in C when known.

    Results are shared by every caller, so they are read, never changed.
    """

    __slots__ = ("parse",)

    def __init__(self, parse) -> None:
        super().__init__()
        self.parse = parse

    def __missing__(self, key):
        value = self.parse(key)
        if len(key) <= _MEMO_MAX_KEY:
            if len(self) >= _MEMO_MAX_ENTRIES:
                self.clear()
            self[key] = value
        return value


_known_request_lines = _Memo(_request_line)
_known_status_lines = _Memo(_status_line)
_known_header_blocks = _Memo(_header_block)
