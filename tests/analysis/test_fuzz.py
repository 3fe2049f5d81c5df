"""Hostile input end to end: whatever the bytes, analyse or raise our own error.

Frames are real TCP packets whose payloads, sequence numbers and flags come
from hypothesis, plus frames of random bytes; the analysis must not raise
anything but InspectorError, and byte accounting must still reconcile.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import BYTE_CATEGORIES
from inspector.errors import InspectorError
from tests.factories import http_request, http_response, pcap_file, ws_frame

SEEDS = [
    http_request("GET", "/chat", headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}),
    http_response(101, "Switching Protocols", headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Sec-WebSocket-Extensions": "permessage-deflate"}),
    http_request("POST", "/x", chunked=[b"abc", b"def"]),
    http_response(200, body=b"hello"),
    ws_frame(b"hi", masked=True),
    ws_frame(b"x" * 200, opcode=2),
    b"",
]


@st.composite
def segments(draw):
    frames = []
    for _ in range(draw(st.integers(1, 12))):
        from_client = draw(st.booleans())
        seed = draw(st.sampled_from(SEEDS))
        payload = draw(st.one_of(st.just(seed), st.binary(max_size=64), st.builds(lambda s, cut: s[:cut], st.just(seed), st.integers(0, 80))))
        flags = draw(st.sampled_from(["S", "SA", "A", "PA", "FA", "R", "RA", "PA", "PA"]))
        seq = draw(st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 400)))
        src, dst = (("127.0.0.1", 40000), ("127.0.0.2", 80)) if from_client else (("127.0.0.2", 80), ("127.0.0.1", 40000))
        packet = Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], seq=seq, ack=draw(st.integers(0, 2**32 - 1)), flags=flags) / payload
        frames.append(bytes(packet))
    if draw(st.booleans()):
        frames.append(draw(st.binary(max_size=80)))
    return frames


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments())
def test_any_packets_analyse_or_raise_inspector_error(frames):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.pcap"
        path.write_bytes(pcap_file([(1_700_000_000_000_000_000 + i, f) for i, f in enumerate(frames)]))
        try:
            analysis = analyze_captures([path], jobs=1)
        except InspectorError:
            return
    connections = analysis["connections"]
    categories = connections[list(BYTE_CATEGORIES)]
    assert (categories >= 0).all().all()
    assert (categories.sum(axis=1) == connections["wire_bytes"]).all()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_any_file_bytes_analyse_or_raise_inspector_error(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "junk.pcap"
        path.write_bytes(data)
        try:
            analyze_captures([path], jobs=1)
        except InspectorError:
            pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([b"\xd4\xc3\xb2\xa1", b"\x0a\x0d\x0d\x0a", b"\x4d\x3c\xb2\xa1"]))
def test_valid_magic_then_junk_analyses_or_raises_inspector_error(data, magic):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "junk.pcap"
        path.write_bytes(magic + data)
        try:
            analyze_captures([path], jobs=1)
        except InspectorError:
            pass
