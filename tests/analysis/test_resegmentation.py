"""Any segmentation of the same bytes gives the same message tables.

Each conversation (tests/conversations.py: HTTP keep-alive with chunked and
gzip bodies, pipelining, WebSocket with masked, fragmented, control and
permessage-deflate frames, and the small connections of captures/, HTTP/2 and
TLS ones too, decrypted with the key logs of the recordings) is written
once in its plain segmentation and once as hypothesis draws it: each turn cut
at drawn points, some neighbouring segments swapped (reordering) and some
segments sent again later in the turn (retransmission).  Every segment of a
turn carries the turn's timestamp (conversations.capture_of), so the time of a
message does not depend on the segment its bytes fell into.

Compared exactly, as the plain segmentation gives them:

- http_messages, ws_frames, ws_messages, sse_events and sse_reconnections: every
  column (times, stream offsets, sizes, text, flags);
- connections: every column that describes the messages (MESSAGE_COLUMNS:
  kind, counts, the HTTP and WebSocket byte categories, payload and
  compression, gaps, handshake and WebSocket negotiation, start and end);
- findings, and message_costs without its transport columns.

Left out, because segmentation legitimately changes them: the packet and
wire byte accounting (packets, wire_bytes, link/IP/TCP header bytes,
tcp_control_bytes, retransmitted_bytes, setup_bytes, teardown_bytes) and
what is divided by it (efficiency, wire_payload_efficiency); in
message_costs transport_bytes, ack_bytes, wire_bytes and efficiency (a
message's share of the packets).  Those are checked instead: the byte
categories add up to wire_bytes, wire_bytes and packets are those of the
frames written, and retransmitted_bytes is exactly the payload sent twice.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.analysis.recording import with_recording_keylog
from inspector.analysis.tables import BYTE_CATEGORIES, SCHEMAS
from inspector.parse.connection import ParserOptions
from inspector.parse.http2 import CLIENT_PREFACE
from tests import conversations, reference_tables
from tests.conftest import bundled_files

PACKET_COLUMNS = ["packets", "wire_bytes", "link_header_bytes", "ip_header_bytes", "tcp_header_bytes", "tcp_control_bytes",
                  "retransmitted_bytes", "setup_bytes", "teardown_bytes", "efficiency", "wire_payload_efficiency"]
MESSAGE_COLUMNS = [column for column in SCHEMAS["connections"] if column not in PACKET_COLUMNS]
COST_TRANSPORT_COLUMNS = ["transport_bytes", "ack_bytes", "wire_bytes", "efficiency"]
MESSAGE_TABLES = ["http_messages", "ws_frames", "ws_messages", "sse_events", "sse_reconnections", "findings"]
MAX_REAL_BYTES = 12_000  # the connections of captures/ small enough for many examples


@functools.lru_cache(maxsize=None)
def conversations_by_name() -> dict[str, list[conversations.Turn]]:
    named = {name: build() for name, build in conversations.NAMED.items()}
    real = [conversations.as_turns(segments) for segments in conversations.real_connections()]
    real = [turns for turns in real if sum(len(data) for _side, data in turns) <= MAX_REAL_BYTES]
    return named | {f"captures-{index}-{_label(turns)}": turns for index, turns in enumerate(real)}


def _label(turns: list[conversations.Turn]) -> str:
    """What a real connection starts with: TLS, the HTTP/2 preface or an HTTP/1.1 request's target."""
    first = turns[0][1]
    if first.startswith(CLIENT_PREFACE):
        return "h2c"
    if first[:1] == b"\x16":  # a TLS handshake record
        return "tls"
    return first.split(b" ", 2)[1].decode()


@functools.lru_cache(maxsize=None)
def recording_keys() -> ParserOptions:
    """The secrets of the key logs the bundled recordings name: their TLS connections decrypt
    written anywhere, as `inspector analyze --keylog` would decrypt them."""
    options = ParserOptions()
    for path in bundled_files():
        options = with_recording_keylog(path, options, [])
    assert options.keylog, "no bundled recording names a key log: the TLS connections would not be decrypted"
    return options


def analyze(pcap: bytes) -> dict[str, pd.DataFrame]:
    """The tables without the temporary folder in them (see tests/reference_tables.py)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "resegmented.pcap"
        path.write_bytes(pcap)
        tables, _warnings = reference_tables.analyze(path, options=recording_keys())
        return tables


@functools.lru_cache(maxsize=None)
def plain(name: str) -> dict[str, pd.DataFrame]:
    return analyze(conversations.capture_of(conversations_by_name()[name]))


@st.composite
def turn_segments(draw, data: bytes) -> conversations.Segments:
    """`data` cut at drawn points, neighbours swapped, some pieces sent again later."""
    cuts = sorted(draw(st.sets(st.integers(1, len(data) - 1), max_size=min(8, len(data) - 1)))) if len(data) > 1 else []
    starts = [0, *cuts]
    pieces = [(start, data[start:end]) for start, end in zip(starts, [*cuts, len(data)])]
    for index in draw(st.lists(st.integers(0, len(pieces) - 2), max_size=3)) if len(pieces) > 1 else []:
        pieces[index], pieces[index + 1] = pieces[index + 1], pieces[index]
    for index in draw(st.lists(st.integers(0, len(pieces) - 1), max_size=2)):
        pieces.insert(draw(st.integers(index + 1, len(pieces))), pieces[index])
    return pieces


@st.composite
def resegmented(draw) -> tuple[str, list[conversations.Segments]]:
    name = draw(st.sampled_from(sorted(conversations_by_name())))
    return name, [draw(turn_segments(data)) for _side, data in conversations_by_name()[name]]


def message_tables(analysis: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {
        **{name: analysis[name] for name in MESSAGE_TABLES},
        "connections": analysis["connections"][MESSAGE_COLUMNS],
        "message_costs": analysis["message_costs"].drop(columns=COST_TRANSPORT_COLUMNS),
    }


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=resegmented())
def test_any_segmentation_gives_the_same_messages(case):
    name, segments = case
    turns = conversations_by_name()[name]
    pcap = conversations.capture_of(turns, segments)
    analysis = analyze(pcap)
    expected = message_tables(plain(name))
    for table, frame in message_tables(analysis).items():
        pdt.assert_frame_equal(frame, expected[table], check_exact=True, obj=f"{name} {table}")

    (connection,) = analysis["connections"].to_dict("records")
    assert connection["tls_encrypted_bytes"] == 0  # a TLS connection's messages are compared decrypted
    assert sum(connection[category] for category in BYTE_CATEGORIES) == connection["wire_bytes"]
    assert all(connection[category] >= 0 for category in BYTE_CATEGORIES)
    frames = _frame_lengths(pcap)
    assert (connection["packets"], connection["wire_bytes"]) == (len(frames), sum(frames))
    sent = sum(len(piece) for pieces in segments for _offset, piece in pieces)
    assert connection["retransmitted_bytes"] == sent - sum(len(data) for _side, data in turns)


def _frame_lengths(pcap: bytes) -> list[int]:
    """Wire lengths of a classic little-endian pcap's records, read here, not by the code under test."""
    lengths, position = [], 24
    while position < len(pcap):
        captured, wire = int.from_bytes(pcap[position + 8:position + 12], "little"), int.from_bytes(pcap[position + 12:position + 16], "little")
        lengths.append(wire)
        position += 16 + captured
    return lengths
