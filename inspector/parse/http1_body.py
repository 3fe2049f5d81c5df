"""HTTP/1.x message bodies: one reader per framing, in the manner of h11's `_readers.py` (sans-IO).

The header parser (`http1.py`) decides the framing from the start line and
the headers (RFC 9112 6.3) and gives the message a reader: ContentLengthReader,
ChunkedReader or ReadUntilCloseReader; a message without a body has none.  A
reader takes its body's bytes from the parser's receive buffer through a few
methods of the parser (`_buf`, `offset`, `take_body`, `find_line_end`,
`report_framing_error`, `end_chunked_message`), says when its message is
done, whether a capture gap can stand for body bytes, and whether the
connection closing ends the body cleanly.

Message holds what the event will report, gathered while the body is read;
`inflate` measures gzip and deflate content in bounded steps.
"""

from __future__ import annotations

import zlib

from inspector.events import Finding

# A header block; the trailer section of a chunked body (RFC 9112 7.1.2) is one too.
MAX_HEADER_BYTES = 64 * 1024
MAX_TRAILER_BYTES = MAX_HEADER_BYTES
# A chunk-size line, extensions included.
MAX_CHUNK_LINE_BYTES = 4 * 1024
# Significant digits of a Content-Length (decimal) or chunk size (hex): more
# than any real body (10**18 bytes is an exabyte; 16**15 is 2**60), and small
# enough for int64 columns.  A longer length is a framing error.
MAX_LENGTH_DIGITS = 18
MAX_CHUNK_SIZE_DIGITS = 15
# Output of one decompression step: what a body's inflating holds at once.
_INFLATE_STEP = 256 * 1024
INFLATED_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate"})
_HEX_DIGITS = b"0123456789abcdefABCDEF"


class Message:
    """A message whose head is parsed; its body's measurements as they are read."""

    __slots__ = ("ts_ns", "end_ts_ns", "offset", "start", "raw_headers", "header_bytes", "upgrade", "has_body", "reader",
                 "wire_bytes", "framing_bytes", "data_bytes", "missing_bytes", "complete", "preview",
                 "content_encoding", "decompressor", "decompressed", "sse")

    def __init__(self, ts_ns: int, end_ts_ns: int, offset: int, start: tuple, raw_headers: str, header_bytes: int) -> None:
        self.ts_ns = ts_ns
        self.end_ts_ns = end_ts_ns
        self.offset = offset
        self.start = start  # parsed start line fields
        self.raw_headers = raw_headers
        self.header_bytes = header_bytes
        self.upgrade = False  # an Upgrade header was sent
        self.has_body = False  # the framing gave it a body (a reader)
        self.reader = None
        self.wire_bytes = 0
        self.framing_bytes = 0
        self.data_bytes = 0
        self.missing_bytes = 0
        self.complete = True
        self.preview: bytes | bytearray = b""
        self.content_encoding = ""
        self.decompressor = None
        self.decompressed: int | None = None  # -1: unknown from here on
        self.sse = None  # a text/event-stream response's SseBody (parse/sse_body.py): it reads the body decoded

    @property
    def inflating(self) -> bool:
        return self.decompressed != -1 and self.content_encoding in INFLATED_ENCODINGS


class ContentLengthReader:
    """A body of Content-Length bytes (RFC 9112 6.3 item 6)."""

    __slots__ = ("remaining",)
    ends_at_close = False  # the connection closing before the end leaves the message incomplete

    def __init__(self, length: int) -> None:
        self.remaining = length

    def read(self, parser, message: Message) -> bool:
        """Take what the buffer holds of the body; True once it is all taken."""
        taken = min(self.remaining, len(parser._buf))
        parser.take_body(message, taken)
        self.remaining -= taken
        return self.remaining <= 0

    def take_gap(self, length: int) -> bool:
        """Whether `length` missing bytes fit in the body (then they are part of it)."""
        if length > self.remaining:
            return False
        self.remaining -= length
        return True

    def finished(self) -> bool:
        return self.remaining <= 0


_SIZE, _DATA, _DATA_END, _TRAILERS = "size", "data", "data-crlf", "trailers"


class ChunkedReader:
    """A chunked body (RFC 9112 7.1): chunk-size lines, chunk data with its CRLF, the last chunk, trailers."""

    __slots__ = ("state", "remaining", "trailer_bytes")
    ends_at_close = False

    def __init__(self) -> None:
        self.state = _SIZE
        self.remaining = 0  # bytes left of the chunk being read
        self.trailer_bytes = 0

    def read(self, parser, message: Message) -> bool:
        """Advance through the chunk framing; True when the last chunk and the trailers are taken."""
        buf = parser._buf
        while buf:
            state = self.state
            if state == _SIZE:
                if not self._read_size_line(parser, message):
                    return False
            elif state == _DATA:
                taken = min(self.remaining, len(buf))
                parser.take_body(message, taken)
                self.remaining -= taken
                if self.remaining == 0:
                    self.state = _DATA_END
            elif state == _DATA_END:
                if buf[:2] == b"\r\n":
                    parser.take_body(message, 0, 2)
                elif buf[:1] == b"\n":
                    parser.take_body(message, 0, 1)
                elif len(buf) < 2 and buf[:1] == b"\r":
                    return False
                else:
                    parser.report_framing_error(f"chunk data not followed by CRLF at offset {parser.offset}")
                self.state = _SIZE
            else:
                return self._read_trailers(parser, message)
        return False

    def _read_size_line(self, parser, message: Message) -> bool:
        """Take one chunk-size line; False if it is not all here or is bad (then the message has ended)."""
        buf = parser._buf
        newline = parser.find_line_end()
        if newline < 0 or newline >= MAX_CHUNK_LINE_BYTES:
            if newline >= 0 or len(buf) >= MAX_CHUNK_LINE_BYTES:
                parser.end_chunked_message(message, f"no chunk size line within {MAX_CHUNK_LINE_BYTES} bytes at offset {parser.offset}")
            return False
        digits = chunk_size_digits(bytes(buf[:newline]))
        if digits is None:
            parser.end_chunked_message(message, f"bad chunk size line at offset {parser.offset}")
            return False
        if len(digits.lstrip(b"0")) > MAX_CHUNK_SIZE_DIGITS:
            parser.end_chunked_message(message, f"chunk size of more than {MAX_CHUNK_SIZE_DIGITS} hex digits at offset {parser.offset}")
            return False
        size = int(digits, 16)
        parser.take_body(message, 0, newline + 1)
        self.remaining = size
        self.state = _DATA if size else _TRAILERS
        return True

    def _read_trailers(self, parser, message: Message) -> bool:
        """Take trailer lines (RFC 9112 7.1.2); True once the empty line that ends them is taken."""
        buf = parser._buf
        while True:
            newline = parser.find_line_end()
            pending = newline + 1 if newline >= 0 else len(buf)
            if self.trailer_bytes + pending > MAX_TRAILER_BYTES:
                parser.end_chunked_message(message, f"no end of trailers within {MAX_TRAILER_BYTES} bytes at offset {parser.offset}")
                return False
            if newline < 0:
                return False
            blank = not bytes(buf[:newline]).strip()
            self.trailer_bytes += pending
            parser.take_body(message, 0, pending)
            if blank:
                return True

    def take_gap(self, length: int) -> bool:
        """Missing bytes fit only inside one chunk's data."""
        if self.state != _DATA or length > self.remaining:
            return False
        self.remaining -= length
        if self.remaining == 0:
            self.state = _DATA_END
        return True

    def finished(self) -> bool:
        return False  # only the trailers' end, read from the buffer, finishes it


class ReadUntilCloseReader:
    """A response body that runs until the connection closes (RFC 9112 6.3 item 8)."""

    __slots__ = ()
    ends_at_close = True

    def read(self, parser, message: Message) -> bool:
        parser.take_body(message, len(parser._buf))
        return False

    def take_gap(self, length: int) -> bool:
        return True

    def finished(self) -> bool:
        return False


def chunk_size_digits(line: bytes) -> bytes | None:
    """The hex digits of a chunk-size line without its LF (RFC 9112 7.1), or None.

    The size, optional spaces or tabs, optional `;extensions`, an optional CR.
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    if b"\r" in line:
        return None
    digits = line.partition(b";")[0].rstrip(b" \t")
    return digits if digits and not digits.translate(None, _HEX_DIGITS) else None


def inflate(message: Message, data: bytes, limit: int, budget, findings: list, direction) -> None:
    """Measure the decompressed size of `data`, the next part of a gzip or deflate body
    (a text/event-stream body's SseBody is given each step's output and the bytes it read).

    At most `limit` bytes per body and what `budget` (a DecompressionBudget,
    or None) allows; past either, the size is unknown (-1) and a finding says why.
    A corrupt body spends none of the budget.
    """
    if message.decompressor is None:
        if message.decompressed is not None or message.missing_bytes:
            return
        # 32+15: accept gzip or zlib headers; raw deflate is retried below.
        message.decompressor = zlib.decompressobj(47 if message.content_encoding != "deflate" or data[:1] in (b"\x78",) else -15)
        message.decompressed = 0
    decompressor = message.decompressor
    while True:
        # In steps: a body that inflates to 60 MiB never sits in memory whole.
        room = limit - message.decompressed
        budget_room = budget.room() if budget is not None else room
        max_length = min(room + 1, budget_room + 1, _INFLATE_STEP)
        try:
            out = decompressor.decompress(data, max_length)
        except zlib.error:
            # zlib drops this call's output: give back what earlier calls
            # spent, or the budget left would depend on how the body was split.
            if budget is not None:
                budget.give_back(message.decompressed)
            message.decompressor = None
            message.decompressed = -1
            return
        message.decompressed += len(out)
        if budget is not None:
            budget.spend(len(out))
        if message.decompressed > limit:
            findings.append(Finding(message.ts_ns, direction, "http-decompression-limit", f"body at offset {message.offset} inflates beyond {limit} bytes"))
            break
        if len(out) > budget_room:
            if budget.first_report():
                findings.append(Finding(message.ts_ns, direction, "http-decompression-budget", f"body at offset {message.offset}: {budget.describe()}; decompressed sizes from here on are unknown"))
            break
        rest = decompressor.unconsumed_tail
        if message.sse is not None:
            message.sse.decoded(out, len(data) - len(rest))
        data = rest
        # A full output buffer may leave output pending with no input left.
        if len(out) < max_length and (not data or not out):
            return
    # Unknown (None), not the bytes counted so far.
    message.decompressor = None
    message.decompressed = -1
