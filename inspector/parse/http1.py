"""HTTP/1.1 message parser for one direction of a connection (sans-IO).

Pull parser in the style of h11: `receive_data(bytes, ts_ns)`, then
`next_event()` until it returns NEED_DATA.  One HttpRequest or HttpResponse
event is produced per message once its body is complete, with sizes measured
from stream offsets (never by re-serialising headers).

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
import zlib
from collections import deque
from dataclasses import dataclass, field

from inspector.events import DEFAULT_PREVIEW_BYTES, NEED_DATA, Direction, Finding, HttpRequest, HttpResponse
from inspector.parse.budget import DEFAULT_MAX_DECOMPRESSED_PER_MESSAGE, DecompressionBudget

MAX_HEADER_BYTES = 64 * 1024
# The trailer section of a chunked body (RFC 9112 7.1.2), like a header block.
MAX_TRAILER_BYTES = MAX_HEADER_BYTES
# A chunk-size line, extensions included.
MAX_CHUNK_LINE_BYTES = 4 * 1024
# A start line found where framing was lost, line end included: a longer one is not recognised.
MAX_START_LINE_BYTES = 8 * 1024
# Significant digits of a Content-Length (decimal) or chunk size (hex): more
# than any real body (10**18 bytes is an exabyte; 16**15 is 2**60), and small
# enough for int64 columns.  A longer length is a framing error.
MAX_LENGTH_DIGITS = 18
MAX_CHUNK_SIZE_DIGITS = 15
# Output of one decompression step: what a body's inflating holds at once.
_INFLATE_STEP = 256 * 1024

# Start lines are recognised with bytes methods and bounded checks, never a
# regular expression: the bytes are the attacker's, and a pattern with
# unbounded repeats searched again on every received segment is quadratic
# or worse.
_DIGITS = b"0123456789"
_HEX_DIGITS = _DIGITS + b"abcdefABCDEF"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TOKEN = _DIGITS + _UPPER + _UPPER.lower() + b"!#$%&'*+.^_`|~-"  # RFC 9110 5.6.2 tchar
_WHITESPACE = b" \t\n\r\x0b\x0c"  # what regular expressions call \s
_CUT_VERSION = b"HTP/0123456789."  # what a version cut short may hold
_MAX_METHOD = 12  # a method found by resync or in a cut line: 3 to 12 capitals


class Role:
    REQUEST = "request"
    RESPONSE = "response"


@dataclass
class _Body:
    """A message whose header is parsed and whose body is being read."""

    ts_ns: int
    offset: int
    start: tuple  # parsed start line fields
    raw_headers: str
    framing: dict[str, str]  # the few headers that decide framing, lower-cased names
    header_bytes: int
    mode: str  # "length", "chunked", "close", "none"
    remaining: int = 0
    wire_bytes: int = 0
    framing_bytes: int = 0
    data_bytes: int = 0
    missing_bytes: int = 0
    complete: bool = True
    end_ts_ns: int = 0
    chunk_state: str = "size"  # size, data, data-crlf, trailers
    trailer_bytes: int = 0
    preview: bytearray = field(default_factory=bytearray)
    content_encoding: str = ""
    decompressor: object = None
    decompressed: int | None = None


class Http1Parser:
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
        self._events: deque = deque()
        self._body: _Body | None = None
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
        self._times.add(self.offset + len(self._buf), ts_ns)
        self._buf += data
        self._parse(ts_ns)

    def receive_gap(self, length: int, ts_ns: int) -> None:
        """`length` stream bytes were never captured."""
        self._parse(ts_ns)
        body = self._body
        if body is not None and not self._buf and self._gap_fits_body(body, length):
            body.missing_bytes += length
            body.wire_bytes += length
            body.complete = False
            if body.mode != "close":
                body.remaining -= length
            if body.mode == "chunked" and body.remaining == 0:
                body.chunk_state = "data-crlf"
            self.offset += length
            body.decompressor = None
            body.decompressed = None
            self._finish_body_if_done(ts_ns)
            self._parse(ts_ns)
            return
        # Framing is lost: what is buffered and the gap itself are unparsed,
        # except a message head cut by the gap, which is kept as incomplete.
        if body is not None:
            body.complete = False
            self._emit_body(body, ts_ns)
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
        ts = self._ts_at(self.offset)
        body = _Body(ts_ns=ts, offset=self.offset, start=start, raw_headers=raw, framing={}, header_bytes=len(buf), mode="none", end_ts_ns=ts_ns, complete=False)
        self._consume(len(buf))
        if self.role == Role.RESPONSE and self._request_methods:
            self._request_methods.popleft()
        self._emit_body(body, ts_ns)
        self.paused = False  # framing is unknown: never wait for an upgrade here

    def _gap_fits_body(self, body: _Body, length: int) -> bool:
        if body.mode == "length":
            return length <= body.remaining
        if body.mode == "chunked":
            return body.chunk_state == "data" and length <= body.remaining
        return body.mode == "close"

    def receive_eof(self, ts_ns: int) -> None:
        self._eof = True
        self._parse(ts_ns)
        body = self._body
        if body is not None:
            if body.mode != "close":
                body.complete = False
                self._events.append(Finding(ts_ns, self.direction, "http-incomplete-message", f"stream ended inside a message body at offset {self.offset}"))
            self._emit_body(body, ts_ns)
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

    def next_event(self):
        return self._events.popleft() if self._events else NEED_DATA

    # -- parsing ---------------------------------------------------------------

    def _parse(self, ts_ns: int) -> None:
        while self._buf and not self.paused and not self.switched:
            if self._lost_sync and not self._resync():
                return
            if self._body is not None:
                if not self._read_body(ts_ns) and self._body is not None:
                    return
                continue
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
        self._times.forget_before(self.offset)

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
        header_block = bytes(buf[lead:block_end])
        start_line, _, raw_headers = header_block.partition(b"\n")
        start_line = start_line.rstrip(b"\r")
        start = self._parse_start_line(start_line)
        if start is None:
            shown = repr(start_line[:60])
            self._framing_error(f"not an HTTP {self.role} line at offset {self.offset}: {shown}")
            return True
        raw_text = raw_headers.decode("latin-1")
        ts_ns = self._ts_at(self.offset + lead)
        end_ts_ns = self._ts_at(self.offset + header_len - 1)
        message_offset = self.offset
        self._consume(header_len)
        body = _Body(ts_ns=ts_ns, offset=message_offset, start=start, raw_headers=raw_text, framing=_framing_headers(raw_text), header_bytes=header_len, mode="none", end_ts_ns=end_ts_ns)
        self._frame_body(body)
        self._body = body
        self._finish_body_if_done(body.end_ts_ns)
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

        Lines may end in CRLF or, tolerated as by most servers, a bare LF.
        Each line end is looked at once, however the bytes arrive.
        """
        buf = self._buf
        newline = buf.find(b"\n", max(lead, self._header_searched - self.offset))
        while newline >= 0:
            following = buf[newline + 1 : newline + 3]
            if following[:1] == b"\n":
                blank_end = newline + 2
                break
            if following == b"\r\n":
                blank_end = newline + 3
                break
            if following in (b"", b"\r"):
                # What follows this LF has not all come yet: look at it again then.
                self._header_searched = self.offset + newline
                return -1, -1
            newline = buf.find(b"\n", newline + 1)
        else:
            self._header_searched = self.offset + len(buf)
            return -1, -1
        block_end = newline - 1 if newline > lead and buf[newline - 1] == 0x0D else newline
        return block_end, blank_end

    def _find_line_end(self) -> int:
        """Index of the first LF in the buffer, or -1; bytes searched before are not searched again."""
        newline = self._buf.find(b"\n", max(self._line_searched - self.offset, 0))
        self._line_searched = self.offset + (newline if newline >= 0 else len(self._buf))
        return newline

    def _framing_error(self, detail: str) -> None:
        self._events.append(Finding(self._ts_at(self.offset), self.direction, "http-framing-error", detail))
        self._lost_sync = True
        self._skip(1)

    def _parse_start_line(self, line: bytes):
        return (_parse_request_line if self.role == Role.REQUEST else _parse_status_line)(line)

    # -- body framing (RFC 9112 section 6.3) -------------------------------------

    def _frame_body(self, body: _Body) -> None:
        headers = body.framing
        body.content_encoding = headers.get("content-encoding", "").strip().lower()
        transfer_encoding = headers.get("transfer-encoding", "").lower()
        content_length = headers.get("content-length")
        if self.role == Role.RESPONSE:
            status = body.start[1]
            interim = 100 <= status < 200 and status != 101
            # Interim (1xx) responses precede the final one to the same request.
            method = self._request_methods.popleft() if self._request_methods and not interim else ""
            if not interim:
                self._last_method = method
            if 100 <= status < 200 or status in (204, 304) or method == "HEAD":
                # 1xx, 204, 304 and responses to HEAD never have a body.
                body.mode = "none"
                return
            if method == "CONNECT" and 200 <= status < 300:
                body.mode = "none"
                return
        if transfer_encoding:
            if content_length is not None:
                self._events.append(Finding(body.ts_ns, self.direction, "http-te-and-cl", f"message at offset {body.offset} has both Transfer-Encoding and Content-Length; Transfer-Encoding wins"))
            if transfer_encoding.replace(" ", "").split(",")[-1] == "chunked":
                body.mode = "chunked"
                return
            # A final encoding other than chunked: the body runs to close (RFC 9112 6.3 item 4).
            body.mode = "close" if self.role == Role.RESPONSE else "none"
            return
        if content_length is not None:
            digits = _content_length_digits(content_length)
            if digits is None or len(digits.lstrip("0")) > MAX_LENGTH_DIGITS:
                problem = "invalid" if digits is None else f"more than {MAX_LENGTH_DIGITS} digits in"
                self._events.append(Finding(body.ts_ns, self.direction, "http-framing-error", f"{problem} Content-Length {content_length!r:.60} at offset {body.offset}"))
                body.mode = "close" if self.role == Role.RESPONSE else "none"
                return
            body.remaining = int(digits)
            body.mode = "length" if body.remaining else "none"
            return
        # No length: requests have no body; responses run until the connection closes.
        body.mode = "close" if self.role == Role.RESPONSE else "none"

    def _read_body(self, ts_ns: int) -> bool:
        body = self._body
        assert body is not None
        if body.mode == "length":
            taken = min(body.remaining, len(self._buf))
            self._take_body_data(body, taken)
            body.remaining -= taken
        elif body.mode == "close":
            self._take_body_data(body, len(self._buf))
            return False
        elif body.mode == "chunked":
            if not self._read_chunked(body):
                return False
        return self._finish_body_if_done(ts_ns)

    def _take_body_data(self, body: _Body, n: int, framing: int = 0) -> None:
        if n <= 0 and framing <= 0:
            return
        body.end_ts_ns = self._ts_at(self.offset + n + framing - 1)
        if n:
            data = bytes(self._buf[:n])
            self._feed_body_content(body, data)
            body.data_bytes += n
        body.wire_bytes += n + framing
        body.framing_bytes += framing
        self._consume(n + framing)

    def _feed_body_content(self, body: _Body, data: bytes) -> None:
        room = self.preview_bytes - len(body.preview)
        if room > 0:
            body.preview += data[:room]
        if body.content_encoding in ("gzip", "x-gzip", "deflate") and body.decompressed != -1:
            self._decompress(body, data)

    def _decompress(self, body: _Body, data: bytes) -> None:
        if body.decompressor is None:
            if body.decompressed is not None or body.missing_bytes:
                return
            # 32+15: accept gzip or zlib headers; raw deflate is retried below.
            body.decompressor = zlib.decompressobj(47 if body.content_encoding != "deflate" or data[:1] in (b"\x78",) else -15)
            body.decompressed = 0
        budget = self.decompression_budget
        decompressor = body.decompressor
        while True:
            # In steps: a body that inflates to 60 MiB never sits in memory whole.
            room = self.max_decompressed - body.decompressed
            budget_room = budget.room() if budget is not None else room
            max_length = min(room + 1, budget_room + 1, _INFLATE_STEP)
            try:
                out = decompressor.decompress(data, max_length)
            except zlib.error:
                body.decompressor = None
                body.decompressed = -1
                return
            body.decompressed += len(out)
            if budget is not None:
                budget.spend(len(out))
            if body.decompressed > self.max_decompressed:
                self._events.append(Finding(body.ts_ns, self.direction, "http-decompression-limit", f"body at offset {body.offset} inflates beyond {self.max_decompressed} bytes"))
                break
            if len(out) > budget_room:
                if budget.first_report():
                    self._events.append(Finding(body.ts_ns, self.direction, "http-decompression-budget", f"body at offset {body.offset}: {budget.describe()}; decompressed sizes from here on are unknown"))
                break
            data = decompressor.unconsumed_tail
            # A full output buffer may leave output pending with no input left.
            if len(out) < max_length and (not data or not out):
                return
        # Unknown (None), not the bytes counted so far.
        body.decompressor = None
        body.decompressed = -1

    def _read_chunked(self, body: _Body) -> bool:
        """Advance through chunk framing; True when the last chunk and trailers are done."""
        while self._buf:
            if body.chunk_state == "size":
                if not self._read_chunk_size(body):
                    return False
            elif body.chunk_state == "data":
                taken = min(body.remaining, len(self._buf))
                self._take_body_data(body, taken)
                body.remaining -= taken
                if body.remaining == 0:
                    body.chunk_state = "data-crlf"
            elif body.chunk_state == "data-crlf":
                if self._buf[:2] == b"\r\n":
                    self._take_body_data(body, 0, 2)
                elif self._buf[:1] == b"\n":
                    self._take_body_data(body, 0, 1)
                elif len(self._buf) < 2 and self._buf[:1] == b"\r":
                    return False
                else:
                    self._events.append(Finding(self._ts_at(self.offset), self.direction, "http-framing-error", f"chunk data not followed by CRLF at offset {self.offset}"))
                body.chunk_state = "size"
            else:
                if not self._read_trailers(body):
                    return False
                body.remaining = -1
                return True
        return False

    def _read_chunk_size(self, body: _Body) -> bool:
        """Take one chunk-size line (RFC 9112 7.1); False if it is not all here or is bad."""
        newline = self._find_line_end()
        if newline < 0 or newline >= MAX_CHUNK_LINE_BYTES:
            if newline >= 0 or len(self._buf) >= MAX_CHUNK_LINE_BYTES:
                self._chunked_framing_error(body, f"no chunk size line within {MAX_CHUNK_LINE_BYTES} bytes at offset {self.offset}")
            return False
        digits = _chunk_size_digits(bytes(self._buf[:newline]))
        if digits is None:
            self._chunked_framing_error(body, f"bad chunk size line at offset {self.offset}")
            return False
        if len(digits.lstrip(b"0")) > MAX_CHUNK_SIZE_DIGITS:
            self._chunked_framing_error(body, f"chunk size of more than {MAX_CHUNK_SIZE_DIGITS} hex digits at offset {self.offset}")
            return False
        size = int(digits, 16)
        self._take_body_data(body, 0, newline + 1)
        body.remaining = size
        body.chunk_state = "data" if size else "trailers"
        return True

    def _read_trailers(self, body: _Body) -> bool:
        """Take trailer lines (RFC 9112 7.1.2); True once the empty line that ends them is taken."""
        while True:
            newline = self._find_line_end()
            pending = newline + 1 if newline >= 0 else len(self._buf)
            if body.trailer_bytes + pending > MAX_TRAILER_BYTES:
                self._chunked_framing_error(body, f"no end of trailers within {MAX_TRAILER_BYTES} bytes at offset {self.offset}")
                return False
            if newline < 0:
                return False
            blank = not bytes(self._buf[:newline]).strip()
            body.trailer_bytes += pending
            self._take_body_data(body, 0, pending)
            if blank:
                return True

    def _chunked_framing_error(self, body: _Body, detail: str) -> None:
        """Chunk framing cannot go on: the message ends here, incomplete, and sync is lost."""
        ts_ns = self._ts_at(self.offset)
        body.complete = False
        self._events.append(Finding(ts_ns, self.direction, "http-framing-error", detail))
        self._emit_body(body, ts_ns)
        self._lost_sync = True

    def _finish_body_if_done(self, ts_ns: int) -> bool:
        body = self._body
        if body is None:
            return True
        done = body.mode == "none" or (body.mode == "length" and body.remaining <= 0) or (body.mode == "chunked" and body.chunk_state == "trailers" and self._chunked_finished(body))
        if done:
            self._emit_body(body, ts_ns)
        return done

    @staticmethod
    def _chunked_finished(body: _Body) -> bool:
        return body.remaining == -1

    def _emit_body(self, body: _Body, ts_ns: int) -> None:
        self._body = None
        decompressed = body.decompressed if body.decompressed is not None and body.decompressed >= 0 and body.complete else None
        if body.decompressor is not None and decompressed is not None and not body.decompressor.eof:
            decompressed = None  # the compressed stream did not end cleanly
        common = dict(
            direction=self.direction,
            ts_ns=body.ts_ns,
            end_ts_ns=max(body.end_ts_ns, body.ts_ns),
            offset=body.offset,
            raw_headers=body.raw_headers,
            header_bytes=body.header_bytes,
            body_wire_bytes=body.wire_bytes,
            chunk_framing_bytes=body.framing_bytes,
            body_bytes=body.data_bytes + body.missing_bytes,
            missing_bytes=body.missing_bytes,
            content_encoding=body.content_encoding,
            decompressed_bytes=decompressed,
            complete=body.complete,
            body_preview=bytes(body.preview),
        )
        if self.role == Role.REQUEST:
            method, target, version = body.start
            self._events.append(HttpRequest(method=method, target=target, version=version, **common))
            if method == "CONNECT" or "upgrade" in body.framing:
                self.paused = True
        else:
            version, status, reason = body.start
            self._events.append(HttpResponse(version=version, status=status, reason=reason, **common))
            if status == 101 or (body.mode == "none" and 200 <= status < 300 and body.start and self._last_method == "CONNECT"):
                # The connection decides what the bytes after this belong to.
                self.paused = True


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
        if self._first >= len(self._offsets):
            return 0
        index = bisect.bisect_right(self._offsets, offset, self._first) - 1
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
    values = {v.strip(" \t") for v in value.split(",")}
    digits = values.pop() if len(values) == 1 else ""
    return digits if digits.isascii() and digits.isdigit() else None


def _chunk_size_digits(line: bytes) -> bytes | None:
    """The hex digits of a chunk-size line without its LF (RFC 9112 7.1), or None.

    The size, optional spaces or tabs, optional `;extensions`, an optional CR.
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    if b"\r" in line:
        return None
    digits = line.partition(b";")[0].rstrip(b" \t")
    return digits if _only(digits, _HEX_DIGITS) else None


_FRAMING_NAMES = frozenset({"content-length", "transfer-encoding", "content-encoding", "upgrade"})


def _framing_headers(raw: str) -> dict[str, str]:
    """Only the headers that decide framing; repeated ones joined with ", "."""
    found: dict[str, str] = {}
    for line in raw.split("\n"):
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t").lower()
        if colon and name in _FRAMING_NAMES:
            value = value.lstrip(" \t").rstrip(" \t\r")
            found[name] = f"{found[name]}, {value}" if name in found else value
    return found
