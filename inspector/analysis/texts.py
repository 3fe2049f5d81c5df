"""The text columns of the big tables: taken from each event as its row is written, made
into Arrow strings a chunk at a time.

A row's texts are taken when the event comes (`TextHolder.hold`), while the event and
what it points to are in the CPU's cache, into a few buffers per chunk: a payload
preview as its UTF-8 bytes, hex previews and mask keys as raw bytes, and short strings
that repeat (an HTTP message's version, content encoding, method or reason) as the
code of their combination.  Made per chunk from those buffers, the columns cost no
pass over the chunk's events: done then, each pass met events written long ago, out of
the cache, and cost more than the text itself (ws_frames: 0.8 us a row for the
payload preview alone).

Payloads are hostile: a preview is never evaluated, bytes that are not UTF-8 are
replaced, and it is cut to a number of characters (`payload_text`).  ASCII bytes are
their own UTF-8, so most previews are the first bytes of their payload as they are.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from inspector.analysis.sinks import Column, Derived, Held, coded_text, text_array
from inspector.events import HttpRequest, HttpResponse, WsFrame, WsMessage

# Table previews stay short: a million frames must fit in memory.
PREVIEW_TEXT_CHARS = 200  # messages and HTTP bodies
FRAME_PREVIEW_TEXT_CHARS = 80  # frames: their message row has the longer preview
PREVIEW_HEX_BYTES = 32
OPCODE_NAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
OPCODE_LABELS = pa.array([OPCODE_NAMES.get(opcode, f"reserved-{opcode}") for opcode in range(16)], pa.large_string())
CLOSE = 8
MASK_KEY_BYTES = 4


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


def preview_utf8(payload: bytes, limit: int) -> bytes:
    """payload_text(payload, limit) as UTF-8: the payload's first bytes where they are ASCII."""
    head = payload[:limit]
    return head if head.isascii() else decoded_head(payload, limit).encode()


def _values(data: bytes, ends, kind: pa.DataType) -> pa.Array:
    """Arrow values of `kind` (binary, or strings of valid UTF-8) that `data` holds one after
    the other, each ending at its `ends` (the array uses `data` as it is)."""
    offsets = np.zeros(len(ends) + 1, dtype=np.int64)
    offsets[1:] = ends
    return pa.Array.from_buffers(kind, len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _hex_strings(data: bytes | memoryview, ends, separator: bool) -> pa.Array:
    """The hex of values joined, each ending at its `ends`: the digits of all at once
    (`bytes.hex` of the join); with a separator each byte is " xx" and each text's first
    space is trimmed."""
    if not separator:
        return _values(data.hex().encode("ascii"), np.asarray(ends) * 2, pa.large_string())
    return pc.utf8_ltrim(_values((" " + data.hex(" ")).encode("ascii"), np.asarray(ends) * 3, pa.large_string()), characters=" ")


def _held(held: dict, name: str, kind: pa.DataType = pa.large_string()) -> pa.Array:
    """A holder's buffer `name` (bytes, and where each row's end) as Arrow values, copied:
    the sink empties its buffers in place once the chunk is made."""
    return _values(bytes(held[name]), np.array(held[name + "_ends"], dtype=np.int64), kind)


def _texts_at(values: list, rows: np.ndarray, count: int) -> pd.api.extensions.ExtensionArray:
    """A text column of `count` rows: value i is row rows[i]'s, the other rows are missing."""
    index = np.full(count, -1, dtype=np.int64)
    index[rows] = np.arange(len(rows))
    return text_array(pa.array(values, pa.large_string()).take(pa.array(index, mask=index < 0)))


class TextHolder:
    """The text columns of one big table: what the sink holds for them (`held`, each
    emptied with its chunk), what a row's event gives them as it is written
    (`holder(values)` makes the function the rows' writer calls with the event), and how
    they are made per chunk (`derived`)."""

    held: dict[str, Column]
    derived: dict[str, Derived]

    @staticmethod
    def holder(values: dict) -> Callable:
        raise NotImplementedError


def _held_buffer(name: str) -> dict[str, Column]:
    """A buffer of the rows' bytes one after the other, and where each row's end."""
    return {name: Held(bytearray), name + "_ends": Held(partial(array, "q"))}


class FrameTexts(TextHolder):
    """ws_frames: the payload's text and hex previews, the mask key, the close reason.

    A frame's first FRAME_PREVIEW_TEXT_CHARS payload bytes are held as they are: they
    are its text where they are ASCII, and its hex preview is their first
    PREVIEW_HEX_BYTES.  A frame whose head is not ASCII also holds its decoded text."""

    held = {**_held_buffer("head"), **_held_buffer("decoded"), "decoded_rows": Held(partial(array, "q")), "mask_keys": Held(bytearray),
            "close_reasons": Held()}
    derived = {
        "opcode_name": lambda built, held: coded_text(built["opcode"], OPCODE_LABELS),
        "mask_key": lambda built, held: text_array(_mask_key_hex(bytes(held["mask_keys"]), held["masked"])),
        "close_reason": lambda built, held: _texts_at(held["close_reasons"], np.flatnonzero(built["opcode"] == CLOSE), len(built["opcode"])),
        "payload_text": lambda built, held: text_array(_frame_texts(held)),
        "payload_hex": lambda built, held: text_array(_frame_hex(held)),
    }

    @staticmethod
    def holder(values: dict) -> Callable[[WsFrame], None]:
        heads, head_ends, decoded = values["head"], values["head_ends"], values["decoded"]
        add_head, add_head_end = heads.extend, head_ends.append
        add_decoded, add_decoded_end, add_decoded_row = decoded.extend, values["decoded_ends"].append, values["decoded_rows"].append
        add_mask_key, add_close_reason = values["mask_keys"].extend, values["close_reasons"].append

        def hold(frame: WsFrame) -> None:
            payload = frame.payload
            head = payload[:FRAME_PREVIEW_TEXT_CHARS]
            if not head.isascii():
                add_decoded(decoded_head(payload, FRAME_PREVIEW_TEXT_CHARS).encode())
                add_decoded_end(len(decoded))
                add_decoded_row(len(head_ends))
            add_head(head)
            add_head_end(len(heads))
            add_mask_key(frame.mask_key)  # MASK_KEY_BYTES if masked, else none
            if frame.opcode == CLOSE:
                add_close_reason(frame.close_reason)
        return hold


def _frame_texts(held: dict) -> pa.Array:
    """The heads where ASCII, the decoded texts elsewhere."""
    heads = _held(held, "head", pa.large_binary())
    rows = np.array(held["decoded_rows"], dtype=np.int64)
    if len(rows):
        pick = np.arange(len(heads))
        pick[rows] = len(heads) + np.arange(len(rows))
        heads = pa.concat_arrays([heads, _held(held, "decoded", pa.large_binary())]).take(pa.array(pick))
    # Valid UTF-8 by construction (ASCII, or encoded by Python).
    return heads.view(pa.large_string())


def _frame_hex(held: dict) -> pa.Array:
    firsts = pc.binary_slice(_held(held, "head", pa.large_binary()), 0, PREVIEW_HEX_BYTES)
    offsets = np.frombuffer(firsts.buffers()[1], dtype=np.int64)[firsts.offset:firsts.offset + len(firsts) + 1]
    return _hex_strings(memoryview(firsts.buffers()[2])[offsets[0]:offsets[-1]], offsets[1:] - offsets[0], separator=True)


def _mask_key_hex(keys: bytes, masked: np.ndarray) -> pa.Array:
    """Hex of the frames' mask keys: a masked frame's has MASK_KEY_BYTES, an unmasked one's none."""
    ends = np.cumsum(masked.astype(np.int64) * MASK_KEY_BYTES)
    if len(ends) and ends[-1] != len(keys):
        raise ValueError(f"{len(keys)} bytes of mask keys held for {ends[-1] // MASK_KEY_BYTES} masked frames")
    return _hex_strings(keys, ends, separator=False)


class MessageTexts(TextHolder):
    """ws_messages: the payload's text preview."""

    held = _held_buffer("text")
    derived = {"payload_text": lambda built, held: text_array(_held(held, "text"))}

    @staticmethod
    def holder(values: dict) -> Callable[[WsMessage], None]:
        add_text, text, add_text_end = values["text"].extend, values["text"], values["text_ends"].append

        def hold(message: WsMessage) -> None:
            add_text(preview_utf8(message.payload, PREVIEW_TEXT_CHARS))
            add_text_end(len(text))
        return hold


# The fields of an HTTP message that repeat (a chunk has few of their combinations),
# held as the code of their combination.
HTTP_REPEATED = ("version", "content_encoding", "method", "reason")


class Combinations(list):
    """The distinct combinations of values a chunk's rows have, in the order they came:
    a combination's index is its code (`code_of`).  Emptied with the chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.code_of: dict[tuple, int] = {}

    def __delitem__(self, index) -> None:
        super().__delitem__(index)
        self.code_of = {combination: code for code, combination in enumerate(self)}


class HttpTexts(TextHolder):
    """http_messages: the body's text preview, the target, and the fields that repeat
    (HTTP_REPEATED; method is a request's, reason a response's)."""

    held = {**_held_buffer("text"), "targets": Held(), "repeated": Held(Combinations), "repeated_codes": Held(partial(array, "q"))}
    derived = {
        "method": lambda built, held: _repeated(held, "method"),
        "target": lambda built, held: text_array(pa.array(held["targets"], pa.large_string())),
        "reason": lambda built, held: _repeated(held, "reason"),
        "version": lambda built, held: _repeated(held, "version"),
        "content_encoding": lambda built, held: _repeated(held, "content_encoding"),
        "body_text": lambda built, held: text_array(_held(held, "text")),
    }

    @staticmethod
    def holder(values: dict) -> Callable[[HttpRequest | HttpResponse], None]:
        add_text, text, add_text_end = values["text"].extend, values["text"], values["text_ends"].append
        add_target, combinations, add_code = values["targets"].append, values["repeated"], values["repeated_codes"].append

        def hold(message: HttpRequest | HttpResponse) -> None:
            if type(message) is HttpRequest:
                repeated = (message.version, message.content_encoding, message.method, None)
                add_target(message.target)
            else:
                repeated = (message.version, message.content_encoding, None, message.reason)
                add_target(None)
            code = combinations.code_of.get(repeated)
            if code is None:
                code = combinations.code_of[repeated] = len(combinations)
                combinations.append(repeated)
            add_code(code)
            add_text(preview_utf8(message.body_preview, PREVIEW_TEXT_CHARS))
            add_text_end(len(text))
        return hold


def _repeated(held: dict, field: str) -> pd.api.extensions.ExtensionArray:
    """The column of one of HTTP_REPEATED: its value in each combination held, taken by
    the rows' codes."""
    index = HTTP_REPEATED.index(field)
    labels = pa.array([combination[index] for combination in held["repeated"]], pa.large_string())
    return text_array(labels.take(np.array(held["repeated_codes"], dtype=np.int64)))
