"""A text/event-stream body's events, placed on the TCP stream that carried them (sans-IO).

An HTTP parser that frames a response with Content-Type text/event-stream (http1.py; http2.py
for DATA frames) gives its body an SseBody and tells it, in stream order, what each of the
body's bytes is:

- content: body bytes as sent (`content`); a gzip- or deflate-coded body's pieces as sent are
  told with `begin_coded` and `end_coded` around their decompression, which hands each step's
  output and the bytes it read with `decoded`;
- framing (`framing`): chunk-size lines, the CRLF after chunk data, the last chunk and
  trailers; HTTP/2 DATA frame headers and padding;
- bytes not captured (`gap`);

and `finish` at the body's end.  The decoded body goes to an SseParser, and each item it
completes (an event; control lines: keep-alive comments, blank lines) is handed out at once,
as an SseItem with the stream ranges it owns, so that the items of a body own each of its
stream bytes once:

- an item owns the stream bytes from where the item before it ended to the byte after its
  last body byte.  With chunked framing, an item whose last byte ends a chunk's data owns the
  CRLF after it too, and a chunk-size line goes with the chunk's first byte: an event sent as
  one chunk owns the chunk whole;
- content-coded: zlib tells which bytes as sent a decompression step read, not which of them
  made which byte of its output, so an item ending in a step's output ends at the same
  fraction of the bytes the step read.  A server that flushes its compressor after each event
  (a streaming one must) has each event own the compressed bytes of its flush;
- the framing after a body's last item (the last chunk, trailers) goes to the item the body's
  end completes (an event the stream ended before dispatching), else to a control item "end";
- a capture gap loses the parser's place: the gap and the bytes after it up to the next blank
  line are a control item "lost" (not read as events), then a new parser goes on with the
  stream's last event ID.  A content-coded body cannot be decoded past a gap: the rest of it is
  one control item "undecoded", as is a body whose coding is not gzip or deflate, or whose
  decompression failed or hit its cap from there on.

Nothing is held but the parser's line and the last two bytes looked through for a blank line.
"""

from __future__ import annotations

from collections.abc import Callable

from inspector.events import Direction, Finding, SseControl, SseEvent, SseItem, SseProblem
from inspector.parse.http1_body import INFLATED_ENCODINGS
from inspector.parse.sse import SseParser

EVENT_STREAM = "text/event-stream"
IDENTITY_CODINGS = ("", "identity")
# What ends a blank line, and so an event: where a parser that lost its place starts again.
_BLANK_LINE_ENDS = (b"\n\n", b"\r\r", b"\n\r\n")

# ts_at(offset): the capture time of the packet that brought stream byte `offset`.
TimeOf = Callable[[int], int]


def is_event_stream(content_type: str) -> bool:
    """Whether a Content-Type value names text/event-stream (parameters such as charset aside)."""
    return content_type.partition(";")[0].strip().lower() == EVENT_STREAM


class SseBody:
    """The SSE items of one text/event-stream body (see the module's docstring).

    owner: the HTTP parser, whose `_events` items and findings go to (a list its take_events
    replaces: looked up each time); ts_ns: the response's time; chunked: the body is chunked (an
    item ending a chunk's data owns the CRLF after it); coding: its Content-Encoding."""

    def __init__(self, direction: Direction, message_offset: int, body_start: int, owner, ts_ns: int, *, coding: str = "",
                 chunked: bool = False, stream_id: int | None = None) -> None:
        self.direction = direction
        self.message_offset = message_offset
        self.stream_id = stream_id
        self._owner = owner
        self._chunked = chunked
        self._coded = coding in INFLATED_ENCODINGS
        self._parser: SseParser | None = SseParser()
        self._base = 0  # body offset where the parser started (a new one after a gap)
        self._body = 0  # body bytes read, by parsers or as lost
        self._last_event_id = ""  # the stream's, kept while no parser reads
        self._lost_kind = ""  # "lost" or "undecoded" while no parser reads
        self._lost_start = 0  # the body offset where the lost item starts
        self._tail = b""  # lost: the last bytes looked through for a blank line
        # The item being gathered: its stream ranges (flat start, end, ...) and their bytes by kind.
        # Every byte told is owned by it or by an item handed out: it owns up to `_cursor`.
        self._ranges = [body_start, body_start]
        self._framing = self._sent = self._missing = 0
        self._cursor = body_start
        self._held: SseItem | None = None  # ended with a chunk's data: waits for the CRLF after it
        # The piece of content being read: its bytes as sent (stream offset, length) and what they
        # decoded to (body offset, length), and the capture times of its bytes.
        self._piece = (body_start, 0, 0, 0)
        self._ts_at: TimeOf = lambda offset: 0
        self._coded_at = self._coded_end = body_start  # begin_coded .. end_coded: the bytes read so far
        if not self._coded and coding not in IDENTITY_CODINGS:
            self._lose("undecoded", ts_ns, f"the event stream at offset {message_offset} is {coding[:40]!r}-coded: not decoded, not read as events")

    # -- what the body's reader tells -------------------------------------------------

    def content(self, data: bytes, offset: int, ts_at: TimeOf) -> None:
        """Body bytes as sent, at stream `offset` (a coded body's only when not decoded)."""
        self._release_held()
        self._move_to(offset)
        if self._coded and not self._lost_kind:
            self._lose("undecoded", ts_at(offset), f"the event stream at offset {self.message_offset} is no longer decoded from "
                                                   f"offset {offset} (its decompression failed or hit a limit)")
        if self._lost_kind == "lost":
            data = self._resync(data, offset, ts_at)
            if data is None:
                return
            offset = self._cursor
        if self._lost_kind:
            self._own(offset + len(data))
            return
        self._read(data, offset, len(data), ts_at)

    def begin_coded(self, offset: int, length: int, ts_at: TimeOf) -> None:
        """`length` bytes as sent at `offset` go to the decompressor, which hands its output to `decoded`."""
        self._release_held()
        self._move_to(offset)
        self._coded_at, self._coded_end, self._ts_at = offset, offset + length, ts_at

    def decoded(self, out: bytes, consumed: int) -> None:
        """A decompression step made `out` from the next `consumed` bytes of the coded piece."""
        at = self._coded_at
        self._coded_at = at + consumed
        if self._lost_kind:
            return  # end_coded owns them
        self._read(out, at, consumed, self._ts_at)

    def end_coded(self) -> None:
        """The coded piece is done; what the decompressor did not read it could not decode."""
        if self._coded_at < self._coded_end:
            if not self._lost_kind:
                self._lose("undecoded", self._ts_at(self._coded_at), f"the event stream at offset {self.message_offset} is no longer "
                                                                     f"decoded from offset {self._coded_at} (its decompression failed or hit a limit)")
            self._own(self._coded_end)

    def framing(self, length: int, offset: int, ts_ns: int) -> None:
        """`length` bytes of framing at stream `offset`."""
        held = self._held
        if held is not None:
            self._held = None
            if held.ranges[-1] == offset:  # the CRLF after the chunk data that ended it
                held.ranges = held.ranges[:-1] + (offset + length,)
                held.framing_bytes += length
                self._owner._events.append(held)
                self._ranges = [offset + length, offset + length]
                self._cursor = offset + length
                return
            self._owner._events.append(held)
        self._move_to(offset)
        self._framing += length
        self._own_to(offset + length)

    def gap(self, length: int, offset: int, ts_ns: int) -> None:
        """`length` body bytes at stream `offset` were not captured."""
        self._release_held()
        self._move_to(offset)
        if not self._lost_kind:
            if self._coded:
                self._lose("undecoded", ts_ns, f"a capture gap of {length} bytes at offset {offset} in the event stream at offset "
                                               f"{self.message_offset}: the rest of it cannot be decoded")
            else:
                self._lose("lost", ts_ns, f"a capture gap of {length} bytes at offset {offset} broke the event stream at offset "
                                          f"{self.message_offset}: its bytes up to the next blank line are not read as events")
        self._tail = b""
        self._missing += length
        self._own_to(offset + length)

    def finish(self, ts_ns: int) -> None:
        """The body ended (its last byte's capture time `ts_ns`)."""
        self._release_held()
        if self._parser is not None:
            self._finish_parser(ts_ns)
        if self._framing or self._sent or self._missing:
            kind = self._lost_kind or "end"
            start = self._lost_start if self._lost_kind == "lost" else self._body
            self._hand(SseControl(start, self._body, kind, 0), ts_ns)

    # -- reading -----------------------------------------------------------------------

    def _read(self, decoded: bytes, offset: int, length: int, ts_at: TimeOf) -> None:
        """Give the parser `decoded`, what the `length` bytes as sent at stream `offset` decoded to."""
        self._piece = (offset, length, self._body, len(decoded))
        self._ts_at = ts_at
        parser = self._parser
        out = parser.receive(decoded)
        self._body += len(decoded)
        end = offset + length
        for thing in out:
            if type(thing) is SseProblem:
                self._finding(thing, ts_at(max(end - 1, offset)))
                continue
            at = self._stream_offset(self._base + thing.end)
            self._release_held()
            self._own(at)
            if self._chunked and at == end:
                self._held = self._item(thing, ts_at(max(at - 1, offset)))
                self._start_next(at)
            else:
                self._hand(thing, ts_at(max(at - 1, offset)))
        self._own(end)

    def _stream_offset(self, body_offset: int) -> int:
        """The stream offset after the piece's bytes that made the body up to `body_offset`."""
        offset, length, start, count = self._piece
        if body_offset <= start:
            return offset
        if length == count:
            return offset + body_offset - start
        return offset + (body_offset - start) * length // count

    def _finish_parser(self, ts_ns: int) -> None:
        """The parser's last items (it hands control runs at the next line's first byte, so at most
        one, which the end of what was told completes) and problems."""
        parser, self._parser = self._parser, None
        self._last_event_id = parser.last_event_id
        for thing in parser.finish():
            if type(thing) is SseProblem:
                self._finding(thing, ts_ns)
            else:
                self._hand(thing, ts_ns)

    def _lose(self, kind: str, ts_ns: int, detail: str) -> None:
        """No parser reads from here on: the one reading hands what it has (up to what it was told)."""
        if self._parser is not None:
            self._finish_parser(ts_ns)
        self._lost_kind = kind
        self._lost_start = self._body
        rule = "sse-lost-sync" if kind == "lost" else "sse-not-decoded"
        self._owner._events.append(Finding(ts_ns, self.direction, rule, detail))

    def _resync(self, data: bytes, offset: int, ts_at: TimeOf) -> bytes | None:
        """Lost: own `data` up to the end of its first blank line, hand the lost item, and start a new
        parser there; return the rest for it (None: no blank line, all of `data` is lost)."""
        window = self._tail + data
        ends = [found + len(end) for end in _BLANK_LINE_ENDS if (found := window.find(end)) >= 0]
        if not ends:
            self._own(offset + len(data))
            self._body += len(data)
            self._tail = window[-2:]
            return None
        taken = min(ends) - len(self._tail)
        self._own(offset + taken)
        self._body += taken
        self._hand(SseControl(self._lost_start, self._body, "lost", 0), ts_at(offset + taken - 1))
        self._lost_kind, self._tail = "", b""
        self._parser = SseParser(last_event_id=self._last_event_id, at_start=False)
        self._base = self._body
        return data[taken:]

    # -- owning bytes and handing items -----------------------------------------------

    def _move_to(self, offset: int) -> None:
        """The next bytes told are at `offset` (HTTP/2: maybe after other streams' frames)."""
        if offset == self._cursor:
            return
        if self._ranges[-1] == self._ranges[-2]:
            self._ranges[-2:] = [offset, offset]
        else:
            self._ranges += [offset, offset]
        self._cursor = offset

    def _own(self, offset: int) -> None:
        """The item being gathered owns the content bytes up to stream `offset`."""
        self._sent += offset - self._cursor
        self._own_to(offset)

    def _own_to(self, offset: int) -> None:
        self._ranges[-1] = offset
        self._cursor = offset

    def _release_held(self) -> None:
        if self._held is not None:
            self._owner._events.append(self._held)
            self._held = None

    def _item(self, item: SseEvent | SseControl, ts_ns: int) -> SseItem:
        ranges = self._ranges
        if len(ranges) > 2:  # ranges of no bytes left out (one kept when all are)
            ranges = [value for start, end in zip(ranges[::2], ranges[1::2]) if end > start for value in (start, end)] or ranges[:2]
        return SseItem(self.direction, ts_ns, self.message_offset, tuple(ranges), self._framing, self._sent, self._missing,
                       item.end - item.start, item, self.stream_id)

    def _hand(self, item: SseEvent | SseControl, ts_ns: int) -> None:
        self._owner._events.append(self._item(item, ts_ns))
        self._start_next(self._cursor)

    def _start_next(self, offset: int) -> None:
        self._ranges = [offset, offset]
        self._framing = self._sent = self._missing = 0

    def _finding(self, problem: SseProblem, ts_ns: int) -> None:
        self._owner._events.append(Finding(ts_ns, self.direction, problem.rule,
                                    f"{problem.detail} (byte {self._base + problem.offset} of the event stream at offset {self.message_offset})"))
