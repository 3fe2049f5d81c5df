"""Tests for inspector.parse.websocket.

Every scenario goes through `feed_all_ways`: the same input fed whole, byte by
byte and in random chunks (gaps split too) must give the same events, and the
frames must tile the stream with the unparsed bytes after them.  Expected
values come from the factory inputs, never from the parser's output.
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.errors import ParseError
from inspector.events import NEED_DATA, DeflateParams, Direction, Finding, WsFrame, WsMessage, WsOneFrameMessage
from inspector.parse.websocket import (
    CloseCode,
    Opcode,
    WebSocketParser,
    accept_for_key,
    parse_deflate_offer,
)
from inspector.parse.budget import DecompressionBudget
from tests.factories import chunks, deflate_message, ws_frame

CLIENT = Direction.CLIENT
SERVER = Direction.SERVER
KEY = b"\x37\xfa\x21\x3d"


@dataclass(frozen=True)
class Gap:
    length: int


# --- feeding helpers ---------------------------------------------------------


def _whole(item, rng):
    return [item]


def _bytewise(item, rng):
    if isinstance(item, Gap):
        return [item]
    return [item[i:i + 1] for i in range(len(item))]


def _random_pieces(item, rng):
    size = item.length if isinstance(item, Gap) else len(item)
    cuts = sorted(rng.sample(range(1, size), min(size - 1, rng.randint(0, 6)))) if size > 1 else []
    bounds = [0, *cuts, size]
    if isinstance(item, Gap):
        return [Gap(b - a) for a, b in zip(bounds, bounds[1:])]
    return [item[a:b] for a, b in zip(bounds, bounds[1:])]


def run(items, direction, split, *, eof=True, seed=0, **options):
    """Feed `items` (bytes or Gap) cut by `split`; return (events, parser)."""
    rng = random.Random(seed)
    parser = WebSocketParser(direction, **options)
    events = []
    ts = 1_000
    for item in items:
        for piece in split(item, rng):
            if isinstance(piece, Gap):
                parser.receive_gap(piece.length, ts)
            else:
                parser.receive_data(piece, ts)
            ts += 1
            events.extend(drain(parser))
    if eof:
        parser.receive_eof(ts)
        events.extend(drain(parser))
    return events, parser


def drain(parser):
    out = []
    while (event := parser.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def without_ts(event):
    changes = {"ts_ns": 0}
    if isinstance(event, WsMessage):
        changes["end_ts_ns"] = 0
    return dataclasses.replace(event, **changes)


def feed_all_ways(items, direction=SERVER, *, eof=True, **options):
    """Run whole, byte by byte and in random chunks; all must agree."""
    items = [item for item in items if isinstance(item, Gap) or item]
    events, parser = run(items, direction, _whole, eof=eof, **options)
    expected = [without_ts(e) for e in events]
    splits = [(_bytewise, 0)] + [(_random_pieces, seed) for seed in range(3)]
    for split, seed in splits:
        other, other_parser = run(items, direction, split, eof=eof, seed=seed, **options)
        assert [without_ts(e) for e in other] == expected, split.__name__
        assert other_parser.unparsed_bytes == parser.unparsed_bytes
        assert other_parser.offset == parser.offset
    check_accounting(items, events, parser, options.get("start_offset", 0), eof)
    return events, parser


def check_accounting(items, events, parser, start_offset, eof):
    """Frames tile the stream from start_offset; unparsed bytes fill the rest."""
    fed = sum(i.length if isinstance(i, Gap) else len(i) for i in items)
    position = start_offset
    for frame in frames(events):
        assert frame.offset == position
        position += frame.wire_bytes
    if eof:
        assert position - start_offset + parser.unparsed_bytes == fed
        assert parser.offset == start_offset + fed


def frames(events):
    return [e for e in events if isinstance(e, WsFrame)]


def messages(events):
    return [e for e in events if isinstance(e, WsMessage)]


def rules(events):
    return [e.rule for e in events if isinstance(e, Finding)]


def header_size(payload_length, *, masked=False, length_bits=None):
    if length_bits is None:
        length_bits = 7 if payload_length < 126 else 16 if payload_length < 65536 else 64
    return 2 + {7: 0, 16: 2, 64: 8}[length_bits] + (4 if masked else 0)


# --- frames ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "length_bits"),
    [(0, 7), (5, 7), (125, 7), (126, 16), (200, 16), (65535, 16), (65536, 64), (70000, 64)],
)
@pytest.mark.parametrize("masked", [False, True])
def test_payload_length_encodings(size, length_bits, masked):
    payload = bytes(i % 251 for i in range(size))
    wire = ws_frame(payload, opcode=Opcode.BINARY, masked=masked, mask_key=KEY)
    direction = CLIENT if masked else SERVER
    events, parser = feed_all_ways([wire], direction, preview_bytes=100_000)
    assert rules(events) == []
    [frame] = frames(events)
    assert frame.payload_length == size
    assert frame.header_bytes == header_size(size, masked=masked)
    assert frame.wire_bytes == len(wire)
    assert frame.payload == payload
    assert frame.masked is masked
    assert frame.mask_key == (KEY if masked else b"")
    assert not frame.payload_truncated
    [message] = messages(events)
    assert message.payload == payload
    assert message.payload_bytes == message.wire_payload_bytes == size
    assert parser.unparsed_bytes == 0


def test_frame_fields_and_event_order():
    wire = ws_frame(b"hi", opcode=Opcode.TEXT)
    parser = WebSocketParser(SERVER, start_offset=500)
    parser.receive_data(wire[:1], 10)
    assert parser.next_event() is NEED_DATA
    assert parser.offset == 500  # a partial header is held back
    parser.receive_data(wire[1:], 20)
    frame, message = drain(parser)
    assert isinstance(frame, WsFrame) and isinstance(message, WsMessage)
    assert (frame.direction, frame.ts_ns, frame.offset) == (SERVER, 10, 500)
    assert (frame.fin, frame.rsv1, frame.rsv2, frame.rsv3, frame.opcode) == (True, False, False, False, 1)
    assert frame.missing_bytes == 0
    assert (message.ts_ns, message.end_ts_ns) == (10, 20)
    assert (message.offset, message.end_offset) == (500, 500 + len(wire))
    assert (message.frames, message.header_bytes, message.wire_payload_bytes) == (1, 2, 2)
    assert message.text_valid is True and message.complete and not message.compressed
    assert message.payload == b"hi" and not message.payload_truncated
    assert parser.offset == 500 + len(wire)


def test_masked_client_frames_are_unmasked_at_every_phase():
    text = "masking works across odd chunk boundaries: \u00e9\u4e2d\U0001f600".encode()
    wire = b"".join(ws_frame(text[i:], masked=True, mask_key=KEY) for i in range(5))
    events, _ = feed_all_ways([wire], CLIENT)
    assert [f.payload for f in frames(events)] == [text[i:] for i in range(5)]
    assert [m.payload for m in messages(events)] == [text[i:] for i in range(5)]
    assert all(m.text_valid for m in messages(events))


def test_preview_is_cut_to_preview_bytes():
    payload = bytes(range(100))
    wire = ws_frame(payload, opcode=Opcode.BINARY, masked=True, mask_key=KEY)
    events, _ = feed_all_ways([wire], CLIENT, preview_bytes=16)
    [frame] = frames(events)
    assert frame.payload == payload[:16] and frame.payload_truncated
    assert frame.payload_length == 100
    [message] = messages(events)
    assert message.payload == payload[:16] and message.payload_truncated
    assert message.payload_bytes == 100


def test_many_frames_tile_the_stream():
    payloads = [bytes([i]) * (i * 37 % 300) for i in range(40)]
    wires = [ws_frame(p, opcode=Opcode.BINARY) for p in payloads]
    events, parser = feed_all_ways([b"".join(wires)], SERVER, start_offset=1234)
    offsets = [1234]
    for wire in wires:
        offsets.append(offsets[-1] + len(wire))
    assert [f.offset for f in frames(events)] == offsets[:-1]
    assert [m.end_offset for m in messages(events)] == offsets[1:]
    assert [m.payload for m in messages(events)] == payloads
    assert parser.offset == offsets[-1] and parser.unparsed_bytes == 0


# --- messages ----------------------------------------------------------------


def test_fragmented_message_with_interleaved_ping():
    parts = [b"Hel", b"lo ", b"world"]
    wires = [
        ws_frame(parts[0], opcode=Opcode.TEXT, fin=False, masked=True, mask_key=KEY),
        ws_frame(b"p", opcode=Opcode.PING, masked=True, mask_key=KEY),
        ws_frame(parts[1], opcode=Opcode.CONTINUATION, fin=False, masked=True, mask_key=KEY),
        ws_frame(parts[2], opcode=Opcode.CONTINUATION, masked=True, mask_key=KEY),
    ]
    events, _ = feed_all_ways(wires, CLIENT)
    assert rules(events) == []
    assert [type(e) for e in events] == [WsFrame] * 4 + [WsMessage]
    assert [f.opcode for f in frames(events)] == [1, 9, 0, 0]
    assert frames(events)[1].payload == b"p"
    [message] = messages(events)
    assert message.payload == b"Hello world"
    assert message.opcode == Opcode.TEXT
    assert message.frames == 3
    assert message.header_bytes == 3 * header_size(3, masked=True)
    assert message.wire_payload_bytes == message.payload_bytes == 11
    assert message.offset == 0 and message.end_offset == sum(map(len, wires))
    assert message.complete and message.text_valid is True


def test_control_frames_are_not_messages():
    wires = [ws_frame(b"a", opcode=Opcode.PING), ws_frame(b"b", opcode=Opcode.PONG),
             ws_frame((1000).to_bytes(2, "big"), opcode=Opcode.CLOSE)]
    events, _ = feed_all_ways(wires, SERVER)
    assert messages(events) == [] and rules(events) == []
    assert [f.is_control for f in frames(events)] == [True] * 3


def test_utf8_split_across_fragments_is_valid():
    text = "\u00e9\u4e2d\U0001f600".encode()  # 2 + 3 + 4 bytes
    wires = [ws_frame(text[:1], fin=False), ws_frame(text[1:5], opcode=0, fin=False),
             ws_frame(text[5:], opcode=0)]
    events, _ = feed_all_ways(wires)
    [message] = messages(events)
    assert message.text_valid is True and message.payload == text


@pytest.mark.parametrize("bad", [b"\xff", b"ok\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"abc\xf4\x90\x80\x80"])
def test_invalid_utf8_text_message(bad):
    events, _ = feed_all_ways([ws_frame(bad[:2], fin=False), ws_frame(bad[2:], opcode=0)])
    [message] = messages(events)
    assert message.text_valid is False
    assert rules(events) == ["ws-invalid-utf8"]
    assert message.complete


def test_binary_message_has_no_text_validity():
    events, _ = feed_all_ways([ws_frame(b"\xff\xfe", opcode=Opcode.BINARY)])
    assert messages(events)[0].text_valid is None and rules(events) == []


def test_text_longer_than_max_message_bytes_is_not_checked():
    events, _ = feed_all_ways([ws_frame(b"a" * 50 + b"\xff")], max_message_bytes=20)
    [message] = messages(events)
    assert message.text_valid is None and rules(events) == []
    assert message.payload_bytes == 51


# --- close frames ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1000, "bye"), (1001, ""), (1011, "oops"), (1012, ""), (3000, "app"), (4999, "\u00e9t\u00e9")],
)
def test_close_code_and_reason(code, reason):
    payload = code.to_bytes(2, "big") + reason.encode()
    events, _ = feed_all_ways([ws_frame(payload, opcode=Opcode.CLOSE, masked=True, mask_key=KEY)], CLIENT)
    [frame] = frames(events)
    assert (frame.close_code, frame.close_reason) == (code, reason)
    assert rules(events) == []


def test_empty_close():
    events, _ = feed_all_ways([ws_frame(b"", opcode=Opcode.CLOSE)])
    [frame] = frames(events)
    assert (frame.close_code, frame.close_reason) == (None, "")
    assert rules(events) == []


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_invalid_close_codes(code):
    events, _ = feed_all_ways([ws_frame(code.to_bytes(2, "big"), opcode=Opcode.CLOSE)])
    assert frames(events)[0].close_code == code
    assert rules(events) == ["ws-invalid-close-code"]


def test_one_byte_close_payload():
    events, _ = feed_all_ways([ws_frame(b"\x03", opcode=Opcode.CLOSE)])
    assert frames(events)[0].close_code is None
    assert rules(events) == ["ws-invalid-close-code"]


def test_close_reason_not_utf8():
    payload = (1000).to_bytes(2, "big") + b"bad\xff"
    events, _ = feed_all_ways([ws_frame(payload, opcode=Opcode.CLOSE)])
    [frame] = frames(events)
    assert frame.close_code == CloseCode.NORMAL_CLOSURE
    assert frame.close_reason.startswith("bad")
    assert rules(events) == ["ws-invalid-utf8"]


def test_data_after_close():
    wires = [ws_frame((1000).to_bytes(2, "big"), opcode=Opcode.CLOSE), ws_frame(b"late"),
             ws_frame(b"", opcode=Opcode.PING)]
    events, _ = feed_all_ways(wires)
    assert rules(events) == ["ws-data-after-close", "ws-data-after-close"]
    assert messages(events)[0].payload == b"late"  # still parsed


# --- conformance findings ----------------------------------------------------


def test_unmasked_client_frame():
    events, _ = feed_all_ways([ws_frame(b"x", masked=False)], CLIENT)
    assert rules(events) == ["ws-unmasked-client-frame"]
    assert messages(events)[0].payload == b"x"


def test_masked_server_frame():
    events, _ = feed_all_ways([ws_frame(b"x", masked=True, mask_key=KEY)], SERVER)
    assert rules(events) == ["ws-masked-server-frame"]
    assert messages(events)[0].payload == b"x"


@pytest.mark.parametrize(
    ("frame_options", "deflate", "negotiated", "expected"),
    [
        ({"rsv1": True}, None, False, ["ws-rsv-without-extension"]),
        ({"rsv2": True}, None, False, ["ws-rsv-without-extension"]),
        ({"rsv3": True}, None, False, ["ws-rsv-without-extension"]),
        ({"rsv2": True}, DeflateParams(), False, ["ws-rsv-without-extension"]),
        ({"rsv3": True}, DeflateParams(), True, ["ws-rsv-without-extension"]),
        ({"rsv1": True, "opcode": Opcode.PING}, DeflateParams(), False, ["ws-rsv-without-extension"]),
        ({"rsv1": True}, None, True, []),
        ({"rsv2": True, "rsv3": True}, None, True, []),
    ],
)
def test_rsv_bits(frame_options, deflate, negotiated, expected):
    options = {"opcode": Opcode.BINARY, **frame_options}
    events, _ = feed_all_ways([ws_frame(b"", **options)], deflate=deflate, extensions_negotiated=negotiated)
    assert rules(events) == expected
    assert all(not m.compressed for m in messages(events))


def test_rsv1_on_continuation_with_deflate():
    payload = deflate_message(b"hello hello hello")
    wires = [ws_frame(payload[:3], opcode=Opcode.BINARY, fin=False, rsv1=True),
             ws_frame(payload[3:], opcode=0, rsv1=True)]
    events, _ = feed_all_ways(wires, deflate=DeflateParams())
    assert rules(events) == ["ws-rsv-without-extension"]
    [message] = messages(events)
    assert message.compressed and message.payload == b"hello hello hello"


def test_control_frame_too_long():
    wire = ws_frame(b"p" * 126, opcode=Opcode.PING)
    events, _ = feed_all_ways([wire])
    assert rules(events) == ["ws-control-frame-too-long"]
    assert frames(events)[0].payload_length == 126 and frames(events)[0].wire_bytes == len(wire)


def test_control_frame_fragmented():
    events, _ = feed_all_ways([ws_frame(b"p", opcode=Opcode.PONG, fin=False), ws_frame(b"after")])
    assert rules(events) == ["ws-control-frame-fragmented"]
    assert messages(events)[0].payload == b"after"


def test_unexpected_continuation():
    events, _ = feed_all_ways([ws_frame(b"orphan", opcode=0), ws_frame(b"ok")])
    assert rules(events) == ["ws-unexpected-continuation"]
    assert [m.payload for m in messages(events)] == [b"ok"]


def test_expected_continuation_closes_old_message_incomplete():
    first = ws_frame(b"start", opcode=Opcode.TEXT, fin=False)
    second = ws_frame(b"new", opcode=Opcode.BINARY)
    events, _ = feed_all_ways([first, second])
    assert rules(events) == ["ws-expected-continuation"]
    old, new = messages(events)
    assert (old.payload, old.complete, old.text_valid, old.frames) == (b"start", False, None, 1)
    assert old.end_offset == len(first)
    assert (new.payload, new.complete, new.offset, new.opcode) == (b"new", True, len(first), Opcode.BINARY)
    # The old message is reported before the new frame.
    assert [type(e) for e in events] == [WsFrame, Finding, WsMessage, WsFrame, WsMessage]


@pytest.mark.parametrize(("size", "bits"), [(0, 16), (125, 16), (65535, 64), (10, 64)])
def test_non_minimal_length(size, bits):
    wire = ws_frame(b"z" * size, opcode=Opcode.BINARY, length_bits=bits)
    events, _ = feed_all_ways([wire])
    assert rules(events) == ["ws-non-minimal-length"]
    [frame] = frames(events)
    assert frame.header_bytes == header_size(size, length_bits=bits)
    assert frame.payload_length == size


def test_length_msb_set_loses_sync():
    good = ws_frame(b"ok", opcode=Opcode.BINARY)
    bad = bytes([0x82, 127]) + (1 << 63 | 5).to_bytes(8, "big") + b"whatever follows"
    events, parser = feed_all_ways([good, bad, ws_frame(b"never")])
    assert rules(events) == ["ws-length-msb-set", "ws-lost-sync"]
    assert [f.offset for f in frames(events)] == [0]
    assert parser.unparsed_bytes == len(bad) + len(ws_frame(b"never"))


def test_reserved_opcode():
    events, _ = feed_all_ways([ws_frame(b"?", opcode=3), ws_frame(b"x")])
    assert rules(events) == ["ws-reserved-opcode"]
    assert [f.opcode for f in frames(events)] == [3, 1]
    assert [m.payload for m in messages(events)] == [b"x"]


# --- permessage-deflate ------------------------------------------------------


TEXTS = [b"hello websocket compression " * 20, b"hello websocket compression again " * 20, b"", b"x"]


@pytest.mark.parametrize("wbits", [-15, -12, -9])
def test_deflate_with_context_takeover(wbits):
    compressor = zlib.compressobj(wbits=wbits)
    payloads = [deflate_message(text, compressor) for text in TEXTS]
    wires = [ws_frame(p, rsv1=True, masked=True, mask_key=KEY) for p in payloads]
    events, _ = feed_all_ways(wires, CLIENT, deflate=DeflateParams(client_max_window_bits=-wbits))
    assert rules(events) == []
    got = messages(events)
    assert [m.payload for m in got] == TEXTS
    assert [m.payload_bytes for m in got] == [len(t) for t in TEXTS]
    assert [m.wire_payload_bytes for m in got] == [len(p) for p in payloads]
    assert all(m.compressed and m.complete and m.text_valid for m in got)
    # The second message leans on the first one's window.
    assert len(payloads[1]) < len(deflate_message(TEXTS[1]))


def test_deflate_without_context_takeover():
    payloads = [deflate_message(text) for text in TEXTS]
    wires = [ws_frame(p, rsv1=True) for p in payloads]
    events, _ = feed_all_ways(wires, SERVER, deflate=DeflateParams(server_no_context_takeover=True))
    assert rules(events) == []
    assert [m.payload for m in messages(events)] == TEXTS


def test_no_context_takeover_applies_to_its_direction_only():
    compressor = zlib.compressobj(wbits=-15)
    wires = [ws_frame(deflate_message(text, compressor), rsv1=True) for text in TEXTS[:2]]
    deflate = DeflateParams(client_no_context_takeover=True)  # server keeps its context
    events, _ = feed_all_ways(wires, SERVER, deflate=deflate)
    assert [m.payload for m in messages(events)] == TEXTS[:2]


def test_context_used_although_no_context_takeover_fails_cleanly():
    compressor = zlib.compressobj(wbits=-15)
    wires = [ws_frame(deflate_message(text, compressor), rsv1=True) for text in TEXTS[:2]]
    events, _ = feed_all_ways(wires, SERVER, deflate=DeflateParams(server_no_context_takeover=True))
    first, second = messages(events)
    assert first.payload == TEXTS[0]
    assert second.payload_bytes is None and second.text_valid is None and second.payload_truncated
    assert rules(events) == ["ws-decompression-failed"]


def test_fragmented_compressed_message_with_interleaved_ping():
    text = b"fragmented and compressed " * 50
    payload = deflate_message(text)
    thirds = [payload[: len(payload) // 3], payload[len(payload) // 3: 2 * len(payload) // 3],
              payload[2 * len(payload) // 3:]]
    wires = [ws_frame(thirds[0], fin=False, rsv1=True, masked=True, mask_key=KEY),
             ws_frame(b"", opcode=Opcode.PING, masked=True, mask_key=KEY),
             ws_frame(thirds[1], opcode=0, fin=False, masked=True, mask_key=KEY),
             ws_frame(thirds[2], opcode=0, masked=True, mask_key=KEY)]
    events, _ = feed_all_ways(wires, CLIENT, deflate=DeflateParams(), preview_bytes=64)
    assert rules(events) == []
    [message] = messages(events)
    assert message.compressed and message.frames == 3
    assert message.payload_bytes == len(text) and message.wire_payload_bytes == len(payload)
    assert message.payload == text[:64] and message.payload_truncated
    assert message.text_valid is True


def test_uncompressed_message_when_deflate_negotiated():
    events, _ = feed_all_ways([ws_frame(b"plain")], deflate=DeflateParams())
    [message] = messages(events)
    assert not message.compressed and message.payload == b"plain" and message.payload_bytes == 5


def test_compressed_invalid_utf8():
    events, _ = feed_all_ways([ws_frame(deflate_message(b"ab\xffcd"), rsv1=True)], deflate=DeflateParams())
    [message] = messages(events)
    assert message.text_valid is False and message.payload == b"ab\xffcd"
    assert rules(events) == ["ws-invalid-utf8"]


def test_corrupt_deflate_data():
    wires = [ws_frame(b"\xff\xff\xff\xff", rsv1=True), ws_frame(deflate_message(b"next"), rsv1=True)]
    events, _ = feed_all_ways(wires, deflate=DeflateParams())
    first, second = messages(events)
    assert first.payload_bytes is None and first.text_valid is None
    # With context takeover, the broken stream leaves later messages undecodable.
    assert second.payload_bytes is None and second.payload == b""
    assert rules(events) == ["ws-decompression-failed"]


ZEROS = 50 * 1024 * 1024
CAP = 1024 * 1024


@pytest.fixture(scope="module")
def bomb():
    return deflate_message(b"\x00" * ZEROS, zlib.compressobj(9, zlib.DEFLATED, -15))


@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_decompression_bomb_is_capped(bomb, no_context_takeover):
    deflate = DeflateParams(server_no_context_takeover=no_context_takeover)
    after = deflate_message(b"after the bomb")
    wires = [ws_frame(bomb, opcode=Opcode.BINARY, rsv1=True), ws_frame(after, rsv1=True)]
    events, _ = feed_all_ways(wires, deflate=deflate, max_message_bytes=CAP, preview_bytes=32)
    bombed, following = messages(events)
    assert bombed.payload_bytes is None
    assert bombed.payload == b"\x00" * 32
    assert bombed.wire_payload_bytes == len(bomb)
    assert rules(events) == ["ws-decompression-limit"]
    if no_context_takeover:
        assert following.payload == b"after the bomb"
    else:
        assert following.payload_bytes is None


# --- gaps ----------------------------------------------------------------------


def test_gap_inside_payload_is_skipped():
    payload = b"0123456789abcdefghij"
    wire = ws_frame(payload, masked=True, mask_key=KEY)
    head = header_size(len(payload), masked=True)
    after = ws_frame(b"next", masked=True, mask_key=KEY)
    items = [wire[: head + 5], Gap(7), wire[head + 12:], after]
    events, parser = feed_all_ways(items, CLIENT)
    assert rules(events) == []
    first, second = frames(events)
    assert first.missing_bytes == 7 and first.payload_length == 20
    assert first.payload == payload[:5] and first.payload_truncated  # never zero-filled
    assert second.offset == len(wire) and second.payload == b"next"
    broken, fine = messages(events)
    assert (broken.complete, broken.text_valid, broken.payload) == (False, None, payload[:5])
    assert broken.payload_bytes == 20 and broken.payload_truncated
    assert (fine.complete, fine.text_valid, fine.payload) == (True, True, b"next")
    assert parser.unparsed_bytes == 0


def test_gap_ending_exactly_at_frame_end_keeps_sync():
    wire = ws_frame(b"abcdef", opcode=Opcode.BINARY)
    events, parser = feed_all_ways([wire[:4], Gap(len(wire) - 4), ws_frame(b"ok")])
    assert rules(events) == []
    assert frames(events)[0].missing_bytes == len(wire) - 4
    assert messages(events)[1].payload == b"ok"
    assert parser.unparsed_bytes == 0


def test_gap_in_header_loses_sync():
    good = ws_frame(b"good")
    later = ws_frame(b"later") * 3
    items = [good, b"\x81", Gap(3), later]
    events, parser = feed_all_ways(items)
    assert rules(events) == ["ws-lost-sync"]
    assert [m.payload for m in messages(events)] == [b"good"]
    assert parser.unparsed_bytes == 1 + 3 + len(later)


def test_gap_between_frames_loses_sync():
    items = [ws_frame(b"one"), Gap(10), ws_frame(b"two")]
    events, parser = feed_all_ways(items)
    assert rules(events) == ["ws-lost-sync"]
    assert len(frames(events)) == 1
    assert parser.unparsed_bytes == 10 + len(ws_frame(b"two"))


def test_gap_past_frame_end_emits_frame_then_loses_sync():
    first = ws_frame(b"abcdefgh", fin=False)
    items = [first[:5], Gap(len(first) - 5 + 4), ws_frame(b"tail", opcode=0)]
    events, parser = feed_all_ways(items)
    assert rules(events) == ["ws-lost-sync"]
    [frame] = frames(events)
    assert frame.missing_bytes == len(first) - 5
    [message] = messages(events)  # the open message cannot finish any more
    assert not message.complete and message.frames == 1
    assert parser.unparsed_bytes == 4 + len(ws_frame(b"tail"))


def test_gap_in_compressed_message_breaks_later_messages_with_context_takeover():
    compressor = zlib.compressobj(wbits=-15)
    payloads = [deflate_message(text, compressor) for text in TEXTS[:2]]
    first = ws_frame(payloads[0], rsv1=True)
    items = [first[:10], Gap(5), first[15:], ws_frame(payloads[1], rsv1=True)]
    events, _ = feed_all_ways(items, deflate=DeflateParams())
    first_message, second_message = messages(events)
    assert not first_message.complete and first_message.payload_bytes is None
    assert second_message.complete and second_message.payload_bytes is None
    assert second_message.text_valid is None


def test_eof_mid_frame_counts_bytes_as_unparsed():
    complete = ws_frame(b"first part", fin=False)
    partial = ws_frame(b"second part that never ends", opcode=0)[:9]
    events, parser = feed_all_ways([complete, partial])
    assert [f.offset for f in frames(events)] == [0]
    [message] = messages(events)
    assert not message.complete and message.payload == b"first part" and message.frames == 1
    assert message.text_valid is None
    assert parser.unparsed_bytes == len(partial)


def test_eof_mid_first_frame_emits_no_message():
    events, parser = feed_all_ways([ws_frame(b"x" * 50)[:20]])
    assert events == []
    assert parser.unparsed_bytes == 20


def test_eof_mid_header():
    events, parser = feed_all_ways([ws_frame(b"x"), ws_frame(b"y" * 300)[:3]])
    assert len(frames(events)) == 1 and parser.unparsed_bytes == 3


def test_no_events_before_frame_is_complete():
    wire = ws_frame(b"a" * 1000, opcode=Opcode.BINARY)
    parser = WebSocketParser(SERVER)
    parser.receive_data(wire[:-1], 1)
    assert drain(parser) == []
    parser.receive_data(wire[-1:], 2)
    assert [type(e) for e in drain(parser)] == [WsFrame, WsMessage]


# --- API edges -----------------------------------------------------------------


def test_data_after_eof_raises_parse_error():
    parser = WebSocketParser(SERVER)
    parser.receive_data(b"\x81", 1)
    parser.receive_eof(2)
    parser.receive_eof(3)  # repeated end (FIN then RST) changes nothing
    assert parser.unparsed_bytes == 1 and parser.offset == 1
    for call in (lambda: parser.receive_data(b"x", 4), lambda: parser.receive_gap(1, 4)):
        with pytest.raises(ParseError):
            call()


def test_negative_gap_raises_parse_error():
    with pytest.raises(ParseError):
        WebSocketParser(SERVER).receive_gap(-1, 0)


def test_accept_for_key_rfc_example():
    # RFC 6455 section 1.3.
    assert accept_for_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("permessage-deflate", DeflateParams()),
        ("PerMessage-Deflate ; client_max_window_bits", DeflateParams()),
        ("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
         DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True)),
        ("permessage-deflate; server_max_window_bits=10; client_max_window_bits=\"12\"",
         DeflateParams(server_max_window_bits=10, client_max_window_bits=12)),
        ("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=8",
         DeflateParams(client_max_window_bits=8)),
        ("", None),
        ("x-webkit-deflate-frame", None),
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; client_max_window_bits=7", None),
        ("permessage-deflate; client_max_window_bits=010", None),
        ("permessage-deflate; client_max_window_bits=\u0661\u0662", None),
        ("permessage-deflate; server_no_context_takeover=1", None),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        ("permessage-deflate; mystery=1", None),
        ("permessage-deflate, permessage-deflate", None),
        ('foo; bar="a,permessage-deflate"', None),
    ],
)
def test_parse_deflate_offer(header, expected):
    assert parse_deflate_offer(header) == expected


@given(st.text(max_size=80))
def test_parse_deflate_offer_never_raises(header):
    result = parse_deflate_offer(header)
    assert result is None or isinstance(result, DeflateParams)


# --- properties ----------------------------------------------------------------


frame_specs = st.builds(
    dict,
    payload=st.binary(max_size=300),
    opcode=st.sampled_from([0, 1, 2, 8, 9, 10, 3]),
    fin=st.booleans(),
    masked=st.booleans(),
    mask_key=st.binary(min_size=4, max_size=4),
    rsv1=st.booleans(),
    length_bits=st.sampled_from([None, None, None, 16, 64]),
)


def _stream_items(specs, gaps):
    items = []
    for index, spec in enumerate(specs):
        items.append(ws_frame(**spec))
        if gaps and index in gaps:
            items.append(Gap(gaps[index]))
    return items


# A stream of frames with gaps, and how to parse and split it.
stream_cases = {
    "specs": st.lists(frame_specs, max_size=6),
    "gaps": st.dictionaries(st.integers(0, 5), st.integers(0, 20), max_size=2),
    "direction": st.sampled_from([CLIENT, SERVER]),
    "deflate": st.sampled_from([None, DeflateParams(), DeflateParams(True, True)]),
    "seed": st.integers(0, 2**32),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**stream_cases)
def test_any_segmentation_gives_the_same_events(specs, gaps, direction, deflate, seed):
    items = _stream_items(specs, gaps)
    options = {"deflate": deflate, "preview_bytes": 50}
    whole, parser = run(items, direction, _whole, **options)
    pieces, _ = run(items, direction, _random_pieces, seed=seed, **options)
    assert [without_ts(e) for e in pieces] == [without_ts(e) for e in whole]
    check_accounting(items, whole, parser, 0, True)


def expanded(events):
    """Records as the two events each stands for."""
    return [two for event in events for two in (event.events() if isinstance(event, WsOneFrameMessage) else [event])]


# Compressed (permessage-deflate) messages of one frame, text valid or not.
compressed_specs = st.builds(
    lambda text, opcode, masked: dict(payload=deflate_message(text), opcode=opcode, rsv1=True, masked=masked),
    text=st.one_of(st.text(max_size=80).map(str.encode), st.binary(max_size=80)),
    opcode=st.sampled_from([1, 2]),
    masked=st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**stream_cases, compressed=st.lists(compressed_specs, max_size=3))
def test_one_frame_records_stand_for_the_same_events(specs, gaps, direction, deflate, seed, compressed):
    items = _stream_items(specs + compressed, gaps)
    options = {"deflate": deflate, "preview_bytes": 50}
    plain, _ = run(items, direction, _whole, **options)
    for split in (_whole, _random_pieces):
        recorded, _ = run(items, direction, split, seed=seed, one_frame_records=True, **options)
        assert not any(isinstance(event, WsOneFrameMessage) for event in plain)
        assert [without_ts(e) for e in expanded(recorded)] == [without_ts(e) for e in plain]


def test_whole_one_frame_messages_come_as_records():
    text = ws_frame(b"hello", masked=True, mask_key=KEY)
    ping = ws_frame(b"?", opcode=Opcode.PING, masked=True, mask_key=KEY)
    packed = ws_frame(deflate_message(b"abc" * 40), opcode=Opcode.BINARY, rsv1=True, masked=True, mask_key=KEY)
    not_utf8 = ws_frame(b"\xff\xfe", masked=True, mask_key=KEY)
    parser = WebSocketParser(CLIENT, deflate=DeflateParams(), one_frame_records=True, preview_bytes=100)
    parser.receive_data(text + ping + packed + not_utf8, 7)
    events = drain(parser)
    assert [type(event) for event in events] == [WsOneFrameMessage, WsFrame, WsOneFrameMessage, WsFrame, Finding, WsMessage]
    first, _ping, second = events[:3]
    assert first == (CLIENT, 7, 0, Opcode.TEXT, False, True, KEY, 5, 6, b"hello", 5, True, b"hello")
    assert second.offset == len(text) + len(ping) and second.compressed and second.opcode == Opcode.BINARY
    assert second.payload_bytes == 120 and second.message_payload == b"abc" * 33 + b"a"  # the preview, 100 bytes
    assert second.text_valid is None and second.payload_length == len(packed) - 6
    assert rules(events) == ["ws-invalid-utf8"]  # invalid text comes as the two events, its finding between them


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.one_of(st.binary(min_size=1, max_size=200), st.integers(0, 30).map(Gap)), max_size=6),
    direction=st.sampled_from([CLIENT, SERVER]),
    deflate=st.sampled_from([None, DeflateParams()]),
    eof=st.booleans(),
)
def test_arbitrary_bytes_parse_or_raise_parse_error(data, direction, deflate, eof):
    try:
        events, parser = run(data, direction, _whole, eof=eof, deflate=deflate, max_message_bytes=1000)
    except ParseError:
        return
    for event in events:
        assert isinstance(event, (WsFrame, WsMessage, Finding))
    check_accounting(data, events, parser, 0, eof)


@settings(max_examples=100, deadline=None)
@given(payload=st.binary(max_size=2000), masked=st.booleans(), key=st.binary(min_size=4, max_size=4),
       cut=st.integers(0, 3000))
def test_masked_payload_round_trip(payload, masked, key, cut):
    wire = ws_frame(payload, opcode=Opcode.BINARY, masked=masked, mask_key=key)
    parser = WebSocketParser(CLIENT if masked else SERVER, preview_bytes=len(payload))
    parser.receive_data(wire[:cut], 0)
    parser.receive_data(wire[cut:], 1)
    frame, message = drain(parser)
    assert frame.payload == payload == message.payload


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(max_size=200).map(str.encode), min_size=1, max_size=5),
       no_takeover=st.booleans(), seed=st.integers(0, 2**32))
def test_deflate_round_trip(texts, no_takeover, seed):
    compressor = zlib.compressobj(wbits=-15)
    wires = []
    for text in texts:
        if no_takeover:
            compressor = zlib.compressobj(wbits=-15)
        wires.append(ws_frame(deflate_message(text, compressor), rsv1=True, masked=True, mask_key=KEY))
    options = {"deflate": DeflateParams(client_no_context_takeover=no_takeover), "preview_bytes": 10_000}
    events, _ = run(wires, CLIENT, _random_pieces, seed=seed, **options)
    assert [m.payload for m in messages(events)] == texts
    assert [m.payload_bytes for m in messages(events)] == [len(t) for t in texts]
    assert rules(events) == []


def _compressed_wire(kind, text, compressor):
    """A permessage-deflate payload, whole or damaged in one of several ways."""
    body = deflate_message(text, compressor)
    if kind == "cut" and len(body) > 1:
        return body[:len(body) // 2]  # ends inside the DEFLATE stream: the tail may fail
    if kind == "garbage":
        return bytes(byte ^ 0x5A for byte in body) or b"\xff"
    if kind == "final-block":
        return body + b"\x03\x00"  # an empty BFINAL block: the stream ends here
    return body


@settings(max_examples=120, deadline=None)
@given(
    messages_=st.lists(st.tuples(st.sampled_from(["whole", "cut", "garbage", "final-block"]),
                                 st.one_of(st.text(max_size=60).map(str.encode),
                                           st.binary(max_size=60),
                                           st.integers(0, 70_000).map(lambda n: b"a" * n))),
                       min_size=1, max_size=5),
    no_takeover=st.booleans(),
    max_message_bytes=st.sampled_from([100, 5000, 64 * 1024 * 1024]),
    budget=st.sampled_from([None, 300, 9000, 70_000]),
    masked=st.booleans(),
)
def test_whole_compressed_frames_take_the_same_path_as_split_ones(messages_, no_takeover, max_message_bytes,
                                                                  budget, masked):
    # Whole frames in one chunk go through the parser's fast path; a header
    # and its payload in two chunks through the general one, with the same
    # decompress calls.  Damaged streams and output near a cap must give the
    # same events and spend the same budget either way, and byte by byte
    # too (a corrupt stream spends nothing, however many calls it took).
    compressor = zlib.compressobj(wbits=-15)
    whole_frames, headers_apart = [], []
    for index, (kind, text) in enumerate(messages_):
        if no_takeover:
            compressor = zlib.compressobj(wbits=-15)
        opcode = Opcode.TEXT if index % 2 else Opcode.BINARY
        payload = _compressed_wire(kind, text, compressor)
        wire = ws_frame(payload, opcode=opcode, rsv1=True, masked=masked, mask_key=KEY)
        whole_frames.append(wire)
        header = header_size(len(payload), masked=masked)
        headers_apart += [wire[:header], wire[header:]]
    direction = CLIENT if masked else SERVER
    results = []
    for items, split in ((whole_frames, _whole), (headers_apart, _whole), (whole_frames, _bytewise)):
        spending = DecompressionBudget(budget, "connection") if budget is not None else None
        options = {"deflate": DeflateParams(client_no_context_takeover=no_takeover,
                                            server_no_context_takeover=no_takeover),
                   "max_message_bytes": max_message_bytes, "preview_bytes": 40,
                   "decompression_budget": spending}
        events, _ = run(items, direction, split, **options)
        results.append(([without_ts(e) for e in events], spending.room() if spending else None))
    assert results[0] == results[1] == results[2]


def test_chunks_factory():
    assert chunks(b"abcdefg", 3) == [b"abc", b"def", b"g"]


def test_decompression_budget_stops_inflating_and_leaves_sizes_unknown():
    params = DeflateParams(server_no_context_takeover=True)
    wire = b"".join(ws_frame(deflate_message(b"w" * 1000), opcode=2, rsv1=True) for _ in range(4))
    budget = DecompressionBudget(2500, "connection")
    events, _ = run([wire], SERVER, _whole, deflate=params, decompression_budget=budget)
    assert [m.payload_bytes for m in messages(events)] == [1000, 1000, None, None]
    assert rules(events) == ["ws-decompression-budget"]
    assert "the connection's decompression budget (2500 bytes) is spent" in [e for e in events if isinstance(e, Finding)][0].detail
    assert budget.room() == 0


@pytest.mark.parametrize("no_takeover", [True, False])
def test_a_corrupt_message_spends_the_same_budget_however_it_is_split(no_takeover):
    # zlib drops the output of the decompress call that fails, so a corrupt
    # message inflated in one call produces nothing while the same message
    # in pieces has produced what the earlier pieces gave: neither may count.
    text = bytes(range(256)) * 8  # barely compressible: output grows with each input byte
    body = deflate_message(text)
    corrupt = body[:len(body) // 2] + b"\xff" * 8 + body[len(body) // 2:]
    wire = ws_frame(corrupt, rsv1=True)
    params = DeflateParams(server_no_context_takeover=no_takeover)
    left = set()
    for cut in range(len(wire) + 1):
        budget = DecompressionBudget(100_000, "connection")
        events, _ = run([wire[:cut], wire[cut:]], SERVER, _whole, deflate=params, decompression_budget=budget)
        assert rules(events) == ["ws-decompression-failed"]
        left.add(budget.room())
    assert left == {100_000}
