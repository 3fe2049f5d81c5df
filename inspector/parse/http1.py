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

import re
import zlib
from collections import deque
from dataclasses import dataclass, field

from inspector.events import NEED_DATA, Direction, Finding, HttpRequest, HttpResponse

MAX_HEADER_BYTES = 64 * 1024
# Significant digits of a Content-Length: more than any real body (10**18
# bytes is an exabyte), and small enough for int64 columns.  A longer length
# is a framing error, never an int() of thousands of digits.
MAX_LENGTH_DIGITS = 18
DEFAULT_PREVIEW_BYTES = 4096
DEFAULT_MAX_DECOMPRESSED = 64 * 1024 * 1024

_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) +(\S+)(?: +(HTTP/\d\.\d))?\Z")
_STATUS_LINE = re.compile(rb"(HTTP/\d\.\d) +(\d{3})(?: (.*))?\Z")
# Where parsing resumes after lost framing: the start of a plausible message.
# Anywhere, not only at a line start: what precedes it is garbage anyway
# (a keep-alive probe byte, the tail of a message cut by a gap).
_REQUEST_START = re.compile(rb"([A-Z]{3,12} [^\s]+ HTTP/1\.[01]\r?\n)")
_RESPONSE_START = re.compile(rb"(HTTP/1\.[01] \d{3}[^\r\n]*\r?\n)")
# A start line cut short by a capture gap: enough to name the message.
_CUT_REQUEST_LINE = re.compile(rb"([A-Z]{3,12}) +(\S+)(?: +(HTTP/\d\.\d|H[HTP/0-9.]*))?")
_CUT_STATUS_LINE = re.compile(rb"(HTTP/\d\.\d) +(\d{3})(?: (.*))?")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r?\n")


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
        max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
        in_sync: bool = True,
    ) -> None:
        self.direction = direction
        self.role = role
        self.preview_bytes = preview_bytes
        self.max_decompressed = max_decompressed
        self._buf = bytearray()
        self._buf_ts: list[tuple[int, int]] = []  # (stream offset, ts) of each chunk received
        self.offset = start_offset  # stream offset of _buf[0]
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
        self._buf_ts.append((self.offset + len(self._buf), ts_ns))
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
        pattern = _CUT_REQUEST_LINE if self.role == Role.REQUEST else _CUT_STATUS_LINE
        match = pattern.match(first_line)
        if match is None:
            return
        if self.role == Role.REQUEST:
            start = (match.group(1).decode("ascii"), match.group(2).decode("latin-1"), (match.group(3) or b"").decode("ascii"))
        else:
            start = (match.group(1).decode("ascii"), int(match.group(2)), (match.group(3) or b"").decode("latin-1"))
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
        self._buf_ts.clear()
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
        chosen = self._buf_ts[0][1] if self._buf_ts else 0
        for chunk_offset, ts in self._buf_ts:
            if chunk_offset > offset:
                break
            chosen = ts
        return chosen

    def _skip(self, n: int) -> None:
        self.unparsed_bytes += n
        self._consume(n)

    def _consume(self, n: int) -> None:
        del self._buf[:n]
        self.offset += n
        timestamps = self._buf_ts
        while len(timestamps) > 1 and timestamps[1][0] <= self.offset:
            timestamps.pop(0)

    def _resync(self) -> bool:
        pattern = _REQUEST_START if self.role == Role.REQUEST else _RESPONSE_START
        match = pattern.search(self._buf)
        if match is None:
            # Keep a short tail: a start line may straddle two chunks.
            keep = min(len(self._buf), 256)
            if len(self._buf) > keep:
                self._skip(len(self._buf) - keep)
            if self._eof:
                self._skip(len(self._buf))
            return False
        self._skip(match.start(1))
        self._lost_sync = False
        return True

    def _read_header(self) -> bool:
        buf = self._buf
        # RFC 9112 2.2: ignore empty lines before a start line; they count as
        # header bytes of the message that follows.
        lead = 0
        if buf[0] in (0x0D, 0x0A):
            while lead < len(buf) and buf[lead] in (0x0D, 0x0A):
                lead += 1
        block_end, header_len = _find_header_end(buf, lead)
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

    def _framing_error(self, detail: str) -> None:
        self._events.append(Finding(self._ts_at(self.offset), self.direction, "http-framing-error", detail))
        self._lost_sync = True
        self._skip(1)

    def _parse_start_line(self, line: bytes):
        if self.role == Role.REQUEST:
            match = _REQUEST_LINE.match(line)
            if match is None:
                return None
            version = (match.group(3) or b"HTTP/0.9").decode("ascii")
            return (match.group(1).decode("ascii"), match.group(2).decode("latin-1"), version)
        match = _STATUS_LINE.match(line)
        if match is None:
            return None
        return (match.group(1).decode("ascii"), int(match.group(2)), (match.group(3) or b"").decode("latin-1"))

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
        room = self.max_decompressed - body.decompressed
        try:
            out = body.decompressor.decompress(data, room + 1)
        except zlib.error:
            body.decompressor = None
            body.decompressed = -1
            return
        body.decompressed += len(out)
        if body.decompressed > self.max_decompressed:
            self._events.append(Finding(body.ts_ns, self.direction, "http-decompression-limit", f"body at offset {body.offset} inflates beyond {self.max_decompressed} bytes"))
            body.decompressor = None
            body.decompressed = -1

    def _read_chunked(self, body: _Body) -> bool:
        """Advance through chunk framing; True when the last chunk and trailers are done."""
        while self._buf:
            if body.chunk_state == "size":
                match = _CHUNK_SIZE.match(self._buf)
                if match is None:
                    if len(self._buf) > 1024 or (b"\n" in self._buf[:1024]):
                        body.complete = False
                        self._events.append(Finding(self._ts_at(self.offset), self.direction, "http-framing-error", f"bad chunk size line at offset {self.offset}"))
                        self._emit_body(body, self._ts_at(self.offset))
                        self._lost_sync = True
                    return False
                size = int(match.group(1), 16)
                self._take_body_data(body, 0, match.end())
                body.remaining = size
                body.chunk_state = "data" if size else "trailers"
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
            else:  # trailers: header lines until an empty line
                newline = self._buf.find(b"\n")
                if newline < 0:
                    return False
                line = self._buf[: newline + 1]
                self._take_body_data(body, 0, newline + 1)
                if line.strip() == b"":
                    body.remaining = -1
                    return True
        return False

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


_FRAMING_HEADER = re.compile(r"^(content-length|transfer-encoding|content-encoding|upgrade)[ \t]*:[ \t]*(.*?)[ \t\r]*$", re.IGNORECASE | re.MULTILINE)


def _find_header_end(buf: bytearray, start: int) -> tuple[int, int]:
    """(end of the header block, end of the blank line) or (-1, -1).

    Lines may end in CRLF or, tolerated as by most servers, a bare LF.
    """
    crlf = buf.find(b"\n\r\n", start)
    bare = buf.find(b"\n\n", start)
    if crlf < 0 and bare < 0:
        return -1, -1
    if bare < 0 or 0 <= crlf < bare:
        newline, blank_end = crlf, crlf + 3
    else:
        newline, blank_end = bare, bare + 2
    block_end = newline - 1 if newline > start and buf[newline - 1] == 0x0D else newline
    return block_end, blank_end


def _content_length_digits(value: str) -> str | None:
    """The one value of a Content-Length (RFC 9110 8.6: 1*DIGIT, repeats must agree), or None."""
    values = {v.strip(" \t") for v in value.split(",")}
    digits = values.pop() if len(values) == 1 else ""
    return digits if digits.isascii() and digits.isdigit() else None


def _framing_headers(raw: str) -> dict[str, str]:
    """Only the headers that decide framing; repeated ones joined with ", "."""
    found: dict[str, str] = {}
    for name, value in _FRAMING_HEADER.findall(raw):
        name = name.lower()
        found[name] = f"{found[name]}, {value}" if name in found else value
    return found
