"""Server-Sent Events: a `text/event-stream` body split into events, sans-IO.

The rules are the WHATWG HTML standard's "Parsing an event stream" (section 9.2.6): the stream
is UTF-8 (bad bytes replaced), a BOM at its start is dropped, lines end with CRLF, LF or CR;
a blank line dispatches the event whose data lines came before it (none: nothing is
dispatched); a line starting with ":" is a comment; otherwise "field: value" (one space after
the colon dropped) for the fields event, data, id (not with a NUL) and retry (ASCII digits
only); other fields are ignored.  The stream's end discards an event without its blank line.

What the parser adds to the standard is the accounting: every byte of the body belongs to one
item it hands out, in order and without gap, an SseEvent (the lines of a dispatched event and
its blank line) or an SseControl (comments, which servers send as keep-alives, and lines that
dispatch nothing), so that the bytes of a stream reconcile.

A run of control lines is handed out as soon as the first byte of the line after it shows that
the run is over, so every item completes at a byte of the data that completed it (or at the
body's end): SseStream places items on the stream by that byte.

Payload bytes are hostile and bounded: a line is held up to `max_line_bytes` (the rest is
counted, not kept: SseProblem "sse-line-too-long"), an event's data only as far as its preview
needs (`data_bytes` and `data_chars` are counted line by line; past `max_data_bytes` an event is
marked truncated), and a line is found with bytes.find, so a 50 MB line or a million blank
lines cost time linear in their bytes and memory bounded by the limits.
"""

from __future__ import annotations

from inspector.events import SseControl, SseEvent, SseProblem

BOM = b"\xef\xbb\xbf"
DEFAULT_MAX_LINE_BYTES = 1 << 20
DEFAULT_MAX_DATA_BYTES = 1 << 24
DEFAULT_PREVIEW_CHARS = 200


class SseParser:
    """Feed a text/event-stream body with receive(data); each call returns the items (SseEvent,
    SseControl) and problems (SseProblem) its bytes completed; finish() at the body's end.

    Comments and the blank line after them are one SseControl (a keep-alive each); a run of
    blank lines outside an event is one, however long (a million blank lines, one item)."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
                 preview_chars: int = DEFAULT_PREVIEW_CHARS, *, last_event_id: str = "", at_start: bool = True) -> None:
        """last_event_id, at_start: where a parser takes over from one that lost its place (a
        capture gap): the stream's last event ID so far, and no BOM to drop."""
        self.max_line_bytes = max_line_bytes
        self.max_data_bytes = max_data_bytes
        self.preview_chars = preview_chars
        # Data held for the preview: a character is at most 4 bytes.
        self._held_data_bytes = min(max_data_bytes, 4 * preview_chars)
        self.offset = 0  # body bytes received
        self.last_event_id = last_event_id
        self._line = bytearray()  # the line being received, up to max_line_bytes
        self._line_start = 0
        self._line_cut = False  # the line is longer than what is held
        self._after_cr = False  # the last byte was a CR: an LF right after it ends no line
        self._at_start = at_start  # a BOM here is dropped
        self._item_start = 0  # where the item being gathered starts
        self._control_lines = 0  # comment or empty lines gathered (no event field yet)
        self._control_kind = ""
        self._reset_event()

    # -- the event being gathered ------------------------------------------------------

    def _reset_event(self) -> None:
        self._data: list[bytes] = []  # up to _held_data_bytes
        self._data_bytes = 0  # data lines' bytes, each with its LF
        self._data_chars = 0  # their characters (bad bytes read as U+FFFD), each with its LF
        self._data_held = 0
        self._event_type = b""
        self._retry: int | None = None
        self._event_lines = 0
        self._valid = True
        self._truncated = False

    # -- input -------------------------------------------------------------------------

    def receive(self, data: bytes) -> list:
        out: list = []
        view = memoryview(data)
        position, end = 0, len(data)
        if self._after_cr and end:
            # the line before ended with a CR at the end of the last receive: with this LF, a CRLF
            self._after_cr = False
            position = 1 if data[0] == 0x0A else 0
            self._end_line(self.offset + position, out)
        # The next CR and LF from `position`, each found again only once passed: a search for the
        # one that is absent would scan the rest of the data at every line.
        cr = lf = -2
        while position < end:
            if self._control_lines and not self._line and not self._line_cut:
                self._look_ahead(data[position], self.offset + position, out)
            if -1 < cr < position or cr == -2:
                cr = data.find(b"\r", position)
            if -1 < lf < position or lf == -2:
                lf = data.find(b"\n", position)
            if cr < 0 and lf < 0:
                self._take_part(view[position:end], position)
                break
            stop = lf if cr < 0 or (0 <= lf < cr) else cr
            if data[stop] == 0x0D and stop + 1 == end:
                self._take_part(view[position:stop], position)
                self._after_cr = True  # a CR or a CRLF: the next byte tells
                break
            ending = 2 if data[stop] == 0x0D and data[stop + 1] == 0x0A else 1
            if self._line or self._line_cut or stop - position > self.max_line_bytes:
                self._take_part(view[position:stop], position)
                self._end_line(self.offset + stop + ending, out)
            else:  # the common case: a whole line in this data, taken as it is
                self._line_start = self.offset + position
                self._line_done(data[position:stop], False, self.offset + stop + ending, out)
            position = stop + ending
        self.offset += end
        return out

    def finish(self) -> list:
        """The body ended: an event without its blank line is not dispatched (SseControl
        "unterminated", and a problem), nor is a last line without its end."""
        out: list = []
        if self._after_cr:
            self._after_cr = False
            self._end_line(self.offset, out)
        if self._line_cut:
            out.append(SseProblem(self._line_start, "sse-line-too-long",
                                  f"a line longer than {self.max_line_bytes:,} bytes: the rest of it is counted, not read"))
        if self._line or self._line_cut:  # a last line without its end: counted where it would go
            if self._line[:1] == b":":
                self._gather_control("comment", out)
            else:
                if self._control_lines:
                    self._hand_control(self._line_start, out)
                self._event_lines += 1
        self._line.clear()
        self._line_cut = False
        if self.offset > self._item_start:
            if self._event_lines:
                out.append(SseControl(self._item_start, self.offset, "unterminated", self._event_lines))
                out.append(SseProblem(self._item_start, "sse-unterminated-event",
                                      "the stream ended before the blank line that dispatches its last event"))
                self._item_start = self.offset
            else:
                self._hand_control(self.offset, out)
        self._control_lines, self._control_kind = 0, ""
        self._reset_event()
        return out

    # -- lines -----------------------------------------------------------------------

    def _take_part(self, part: memoryview, position: int) -> None:
        """Bytes of the line being received (no line end among them)."""
        if not self._line and not self._line_cut:
            self._line_start = self.offset + position
        room = self.max_line_bytes - len(self._line)
        if len(part) > room:
            self._line += part[:max(0, room)]
            self._line_cut = True
        else:
            self._line += part

    def _end_line(self, end: int, out: list) -> None:
        """The line held ended; `end` is the body offset after its line end."""
        line, cut = bytes(self._line), self._line_cut
        self._line.clear()
        self._line_cut = False
        self._line_done(line, cut, end, out)

    def _line_done(self, line: bytes, cut: bool, end: int, out: list) -> None:
        """A line (without its end) that started at self._line_start; `end`: after its line end."""
        if self._at_start:
            self._at_start = False
            if line.startswith(BOM):
                line = line[len(BOM):]
        if cut:
            out.append(SseProblem(self._line_start, "sse-line-too-long",
                                  f"a line longer than {self.max_line_bytes:,} bytes: the rest of it is counted, not read"))
        if not line:
            self._dispatch(end, out)
        elif line[0] == 0x3A:  # ":" a comment
            self._gather_control("comment", out)
        else:
            self._field(line, cut, out)

    def _gather_control(self, kind: str, out: list) -> None:
        """A comment line, or a blank line dispatching nothing, outside an event: gathered in a
        run of its kind (a run of blank lines is handed out as one, when something else comes)."""
        if self._event_lines:  # a comment inside an event: its bytes are the event's
            self._event_lines += 1
            return
        if self._control_lines and self._control_kind != kind:
            self._hand_control(self._line_start, out)
        self._control_kind = kind
        self._control_lines += 1

    def _look_ahead(self, first: int, at: int, out: list) -> None:
        """A line starts at `at` with byte `first` after a run of control lines: unless it is
        blank (CR, LF) or goes on a run of comments (":"), the run is over: handed out now."""
        if first != 0x0D and first != 0x0A and (first != 0x3A or self._control_kind != "comment"):
            self._hand_control(at, out)

    def _hand_control(self, end: int, out: list) -> None:
        if end > self._item_start:
            out.append(SseControl(self._item_start, end, self._control_kind or "empty", self._control_lines))
            self._item_start = end
        self._control_lines = 0
        self._control_kind = ""

    def _field(self, line: bytes, cut: bool, out: list) -> None:
        if self._control_lines:
            self._hand_control(self._line_start, out)
        self._event_lines += 1
        self._truncated |= cut
        if not _is_utf8(line):
            self._valid = False
            out.append(SseProblem(self._line_start, "sse-invalid-utf8", "a line that is not UTF-8: its bad bytes read as U+FFFD"))
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._add_data(value)
        elif name == b"event":
            self._event_type = value
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = _decoded(value)
        elif name == b"retry":
            if value and value.isdigit() and value.isascii():
                self._retry = int(value)

    def _add_data(self, value: bytes) -> None:
        self._data_bytes += len(value) + 1
        self._data_chars += (len(value) if value.isascii() else len(_decoded(value))) + 1
        if self._data_bytes - 1 > self.max_data_bytes:
            self._truncated = True
        room = self._held_data_bytes - self._data_held - 1  # held with its LF, as counted
        if room >= 0:
            value = value[:room]
            self._data.append(value)
            self._data_held += len(value) + 1

    def _dispatch(self, end: int, out: list) -> None:
        """A blank line: the event gathered is dispatched (none without data lines)."""
        if not self._event_lines:
            if self._control_kind == "comment":  # comments and the blank line after them: a keep-alive, one item
                self._control_lines += 1
                self._hand_control(end, out)
            else:
                self._gather_control("empty", out)
            return
        if not self._data_bytes:  # fields but no data: the standard dispatches nothing
            out.append(SseControl(self._item_start, end, "empty", self._event_lines + 1))
        else:
            data = b"\n".join(self._data)
            text = _decoded(data[:self.preview_chars * 4])[:self.preview_chars]
            out.append(SseEvent(self._item_start, end, _decoded(self._event_type) or "message", text, self._data_bytes - 1,
                                self._data_chars - 1, self.last_event_id, self._retry, self._event_lines + 1, self._valid,
                                self._truncated))
        self._item_start = end
        self._reset_event()



def _decoded(raw: bytes) -> str:
    """UTF-8 text, bad bytes replaced (U+FFFD), as the standard decodes the stream."""
    return raw.decode("ascii") if raw.isascii() else raw.decode("utf-8", errors="replace")


def _is_utf8(raw: bytes) -> bool:
    if raw.isascii():
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
