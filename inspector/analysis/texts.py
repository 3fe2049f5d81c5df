"""The text columns of the big tables: taken from each event as its row is written, made
into Arrow strings a chunk at a time.

A row's texts are taken when the event comes (the tables' `holder`s), while the event
and what it points to are in the CPU's cache, into a few buffers per chunk: a payload's
first bytes (its preview where they are ASCII, as most are) and their length, the
decoded preview of the others, mask keys, and short strings that repeat (an HTTP
message's version, content encoding, method or reason) as the code of their
combination.  Made per chunk from those buffers with Arrow, the columns cost no pass
over the chunk's events: done then, each pass met events written long ago, out of the
cache, and cost about as much as the text itself.

Payloads are hostile: a preview is never evaluated, bytes that are not UTF-8 are
replaced, and it is cut to a number of characters (`payload_text`).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from functools import partial
from operator import attrgetter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from inspector.analysis.sinks import Column, Derived, Held, coded_text, text_array
from inspector.events import HttpRequest, HttpResponse, WsFrame

# Table previews stay short: a million frames must fit in memory.
PREVIEW_TEXT_CHARS = 200  # messages and HTTP bodies
FRAME_PREVIEW_TEXT_CHARS = 80  # frames: their message row has the longer preview
PREVIEW_HEX_BYTES = 32
# A header's value is kept to this many characters (http_messages.headers): header values are
# hostile text, and a message's headers are a row's, whatever a peer sends.
MAX_HEADER_VALUE_CHARS = 8192
OPCODE_NAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
BINARY = 2
OPCODE_LABELS = pa.array([OPCODE_NAMES.get(opcode, f"reserved-{opcode}") for opcode in range(16)], pa.large_string())
CLOSE = 8
MASK_KEY_BYTES = 4
# A payload's first bytes are held with their length in one byte; the hex preview is the
# hex of the text preview's first bytes.
assert PREVIEW_HEX_BYTES <= FRAME_PREVIEW_TEXT_CHARS and max(PREVIEW_TEXT_CHARS, FRAME_PREVIEW_TEXT_CHARS) < 256


def payload_text(data: bytes, limit: int = PREVIEW_TEXT_CHARS) -> str:
    """Hostile payload as plain text: never evaluated, bad bytes replaced."""
    head = data[:limit]
    if head.isascii():
        # ASCII bytes decode to themselves whatever follows them: the same text, without a UTF-8 decoder.
        return head.decode("ascii")
    return decoded_head(data, limit)


def decoded_head(data: bytes, limit: int) -> str:
    """The first `limit` characters of data decoded, bad bytes replaced."""
    # A character is at most 4 bytes: the first `limit` are within the first 4 * limit
    # bytes.  Most heads that are not ASCII are not text at all (compressed or binary
    # payloads), nearly a character a byte: their first `limit` characters are in a
    # shorter cut.  A cut changes at most the last character decoded (a sequence cut
    # short is one U+FFFD): the ones before it are those of the whole data.
    cut = limit + limit // 4
    if len(data) > cut:
        text = data[:cut].decode("utf-8", errors="replace")
        if len(text) > limit:
            return text[:limit]
    return data[: limit * 4].decode("utf-8", errors="replace")[:limit]


# -- previews --------------------------------------------------------------------------

def _preview_held(name: str) -> dict[str, Column]:
    """What a preview column `name` holds: each row's first payload bytes and their length
    (a byte), and for the rows whose first bytes are not ASCII, the row and its decoded
    text (and where it ends)."""
    return {name: Held(bytearray), name + "_lengths": Held(bytearray), name + "_decoded": Held(bytearray),
            name + "_decoded_ends": Held(partial(array, "q")), name + "_decoded_rows": Held(partial(array, "q"))}


def _preview_holder(values: dict, name: str, limit: int, payload_of: Callable[[object], bytes] | None = None) -> Callable[[object], None]:
    """What holds the preview column `name` of an event's row, `limit` characters of its
    `payload_of(event)` (of the value it is given, a payload, without `payload_of`)."""
    lengths, decoded = values[name + "_lengths"], values[name + "_decoded"]
    add_head, add_length = values[name].extend, lengths.append
    add_decoded, add_end, add_row = decoded.extend, values[name + "_decoded_ends"].append, values[name + "_decoded_rows"].append

    def hold_preview(event: object) -> None:
        payload = payload_of(event) if payload_of is not None else event
        head = payload[:limit]
        if not head.isascii():
            add_decoded(decoded_head(payload, limit).encode())
            add_end(len(decoded))
            add_row(len(lengths))
        add_head(head)
        add_length(len(head))
    return hold_preview


def _values(data: bytes, ends: np.ndarray, kind: pa.DataType) -> pa.Array:
    """Arrow values of `kind` (binary, or strings of valid UTF-8) that `data` holds one after
    the other, each ending at its `ends` (the array uses `data` as it is)."""
    offsets = np.zeros(len(ends) + 1, dtype=np.int64)
    offsets[1:] = ends
    return pa.Array.from_buffers(kind, len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


# What a sink holds is copied (bytes(), np.array()): it is emptied in place once the chunk is made.

def _heads(held: dict, name: str) -> pa.Array:
    """The rows' first payload bytes held for a preview column, as Arrow binary values."""
    ends = np.cumsum(np.frombuffer(bytes(held[name + "_lengths"]), dtype=np.uint8), dtype=np.int64)
    return _values(bytes(held[name]), ends, pa.large_binary())


def _previews(held: dict, name: str) -> pd.api.extensions.ExtensionArray:
    """A preview column: the rows' first payload bytes where ASCII, their decoded text elsewhere."""
    heads = _heads(held, name)
    rows = np.array(held[name + "_decoded_rows"], dtype=np.int64)
    if len(rows):
        pick = np.arange(len(heads))
        pick[rows] = len(heads) + np.arange(len(rows))
        decoded = _values(bytes(held[name + "_decoded"]), np.array(held[name + "_decoded_ends"], dtype=np.int64), pa.large_binary())
        heads = pa.concat_arrays([heads, decoded]).take(pa.array(pick))
    # Valid UTF-8 by construction (ASCII, or encoded by Python).
    return text_array(heads.view(pa.large_string()))


def _hex_texts(data: bytes | memoryview, ends: np.ndarray, separator: bool) -> pd.api.extensions.ExtensionArray:
    """The hex of values joined, each ending at its `ends`: the digits of all at once
    (`bytes.hex` of the join); with a separator each byte is " xx" and each text's first
    space is trimmed."""
    if not separator:
        return text_array(_values(data.hex().encode("ascii"), ends * 2, pa.large_string()))
    return text_array(pc.utf8_ltrim(_values((" " + data.hex(" ")).encode("ascii"), ends * 3, pa.large_string()), characters=" "))


def _texts_at(values: list, rows: np.ndarray, count: int) -> pd.api.extensions.ExtensionArray:
    """A text column of `count` rows: value i is row rows[i]'s, the other rows are missing."""
    index = np.full(count, -1, dtype=np.int64)
    index[rows] = np.arange(len(rows))
    return text_array(pa.array(values, pa.large_string()).take(pa.array(index, mask=index < 0)))


# -- the tables ---------------------------------------------------------------------------

class TextHolder:
    """The text columns of one big table: what its sink holds for them (`held`, emptied with
    each chunk), what a row's event gives them as the row is written (`holder(values)`
    makes the function the rows' writer calls with the event), and how they are made per
    chunk (`derived`)."""

    held: dict[str, Column]
    derived: dict[str, Derived]

    @staticmethod
    def holder(values: dict) -> Callable:
        raise NotImplementedError


class FrameTexts(TextHolder):
    """ws_frames: the payload's text and hex previews, the mask key, the close reason."""

    held = {**_preview_held("text"), "mask_keys": Held(bytearray), "close_reasons": Held()}
    derived = {
        "opcode_name": lambda built, held: coded_text(built["opcode"], OPCODE_LABELS),
        "mask_key": lambda built, held: _mask_key_hex(bytes(held["mask_keys"]), held["masked"]),
        "close_reason": lambda built, held: _texts_at(held["close_reasons"], np.flatnonzero(built["opcode"] == CLOSE), len(built["opcode"])),
        "payload_text": lambda built, held: _previews(held, "text"),
        "payload_hex": lambda built, held: _payload_hex(_heads(held, "text")),
    }

    @staticmethod
    def holder(values: dict) -> Callable[[WsFrame], None]:
        hold_preview = _preview_holder(values, "text", FRAME_PREVIEW_TEXT_CHARS, attrgetter("payload"))
        add_mask_key, add_close_reason = values["mask_keys"].extend, values["close_reasons"].append

        def hold(frame: WsFrame) -> None:
            hold_preview(frame)
            add_mask_key(frame.mask_key)  # MASK_KEY_BYTES if masked, else none
            if frame.opcode == CLOSE:
                add_close_reason(frame.close_reason)
        return hold


def _payload_hex(heads: pa.Array) -> pd.api.extensions.ExtensionArray:
    """Hex of the first PREVIEW_HEX_BYTES of the payloads' first bytes."""
    firsts = pc.binary_slice(heads, 0, PREVIEW_HEX_BYTES)
    offsets = np.frombuffer(firsts.buffers()[1], dtype=np.int64)[firsts.offset:firsts.offset + len(firsts) + 1]
    return _hex_texts(memoryview(firsts.buffers()[2])[offsets[0]:offsets[-1]], offsets[1:] - offsets[0], separator=True)


def _mask_key_hex(keys: bytes, masked: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Hex of the frames' mask keys: a masked frame's has MASK_KEY_BYTES, an unmasked one's none."""
    ends = np.cumsum(masked.astype(np.int64) * MASK_KEY_BYTES)
    if len(ends) and ends[-1] != len(keys):
        raise ValueError(f"{len(keys)} bytes of mask keys held for {ends[-1] // MASK_KEY_BYTES} masked frames")
    return _hex_texts(keys, ends, separator=False)


class MessageTexts(TextHolder):
    """ws_messages: the payload's text preview, and a binary message's first bytes as hex."""

    held = _preview_held("text")
    derived = {"payload_text": lambda built, held: _previews(held, "text"),
               "payload_hex": lambda built, held: _binary_hex(_heads(held, "text"), built["opcode"])}

    @staticmethod
    def holder(values: dict) -> Callable[[bytes], None]:
        """Holds a message's texts from its payload (a WsMessage's, or a record's message_payload)."""
        return _preview_holder(values, "text", PREVIEW_TEXT_CHARS)


def _binary_hex(heads: pa.Array, opcodes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """The hex of binary messages' first payload bytes (PREVIEW_TEXT_CHARS of them); missing for the others."""
    rows = np.flatnonzero(opcodes == BINARY)
    return _texts_at([head.hex() for head in heads.take(pa.array(rows)).to_pylist()], rows, len(opcodes))


def capped_header_lines(lines: str, limit: int = MAX_HEADER_VALUE_CHARS) -> str:
    """Header lines ("Name: value" each, LF or CRLF after each but maybe the last) with every
    value cut to `limit` characters (a line without a colon, to `limit` too)."""
    if len(lines) <= limit:  # no value is longer than the whole
        return lines
    capped = []
    for line in lines.split("\n"):
        end = "\r" if line.endswith("\r") else ""
        name, colon, value = line.removesuffix(end).partition(":")
        capped.append(f"{name[:limit]}{colon}{value[:limit]}{end}")
    return "\n".join(capped)


# The fields of an HTTP message that repeat (a chunk has few of their combinations),
# held as the code of their combination.
HTTP_REPEATED = ("version", "content_encoding", "method", "reason")


class Combinations(list):
    """The distinct combinations of values a chunk's rows have, in the order they came:
    a combination's index is its code (`code_of`).  Emptied with the chunk (as a whole)."""

    def __init__(self) -> None:
        super().__init__()
        self.code_of: dict[tuple, int] = {}

    def __delitem__(self, index) -> None:
        if index != slice(None):
            raise ValueError("the codes of the combinations left would change")
        super().__delitem__(index)
        self.code_of.clear()


class HttpTexts(TextHolder):
    """http_messages: the body's text preview, the target, the header lines (values capped), and
    the fields that repeat (HTTP_REPEATED; method is a request's, reason a response's)."""

    held = {**_preview_held("text"), "targets": Held(), "header_lines": Held(), "repeated": Held(Combinations), "repeated_codes": Held()}
    derived = {
        "method": lambda built, held: _repeated(held, "method"),
        "target": lambda built, held: text_array(pa.array(held["targets"], pa.large_string())),
        "reason": lambda built, held: _repeated(held, "reason"),
        "version": lambda built, held: _repeated(held, "version"),
        "content_encoding": lambda built, held: _repeated(held, "content_encoding"),
        "body_text": lambda built, held: _previews(held, "text"),
        "headers": lambda built, held: text_array(pa.array(held["header_lines"], pa.large_string())),
    }

    @staticmethod
    def holder(values: dict) -> Callable[[HttpRequest | HttpResponse], None]:
        hold_preview = _preview_holder(values, "text", PREVIEW_TEXT_CHARS, attrgetter("body_preview"))
        add_target, add_code = values["targets"].append, values["repeated_codes"].append  # codes: mostly small, cached ints
        add_header_lines = values["header_lines"].append
        combinations = values["repeated"]
        code_of, add_combination = combinations.code_of, combinations.append

        def hold(message: HttpRequest | HttpResponse) -> None:
            if type(message) is HttpRequest:
                repeated = (message.version, message.content_encoding, message.method, None)
                add_target(message.target)
            else:
                repeated = (message.version, message.content_encoding, None, message.reason)
                add_target(None)
            code = code_of.get(repeated)
            if code is None:
                code = code_of[repeated] = len(combinations)
                add_combination(repeated)
            add_code(code)
            raw = message.raw_headers
            add_header_lines(raw if len(raw) <= MAX_HEADER_VALUE_CHARS else capped_header_lines(raw))
            hold_preview(message)
        return hold


def _repeated(held: dict, field: str) -> pd.api.extensions.ExtensionArray:
    """The column of one of HTTP_REPEATED: its value in each combination held, taken by
    the rows' codes."""
    index = HTTP_REPEATED.index(field)
    labels = pa.array([combination[index] for combination in held["repeated"]], pa.large_string())
    return text_array(labels.take(np.array(held["repeated_codes"], dtype=np.int64)))
