"""Every captured byte of a connection lands in exactly one category.

Checked on every capture in the corpus and in captures/: per connection the
byte categories add up to the captured frame bytes, the per-message costs add
up to the same total, and the categories agree with the parsed events.
"""

from __future__ import annotations

import pytest

from inspector.analysis.tables import BYTE_CATEGORIES
from tests.conftest import analyze_cached, bundled_files, corpus_params


def _all_captures():
    return corpus_params() + [pytest.param(p, id=f"bundled-{p.name}") for p in bundled_files()]


@pytest.mark.parametrize("path", _all_captures())
def test_categories_sum_to_wire_bytes(path):
    connections = analyze_cached(str(path))["connections"]
    assert len(connections) > 0
    categories = connections[list(BYTE_CATEGORIES)]
    assert (categories >= 0).all().all(), connections[list(BYTE_CATEGORIES)][(categories < 0).any(axis=1)]
    assert (categories.sum(axis=1) == connections["wire_bytes"]).all()


@pytest.mark.parametrize("path", _all_captures())
def test_message_costs_sum_to_wire_bytes(path):
    analysis = analyze_cached(str(path))
    costs = analysis["message_costs"].groupby("conn_id")["wire_bytes"].sum()
    wire = analysis["connections"].set_index("conn_id")["wire_bytes"]
    assert costs.reindex(wire.index).fillna(0).sub(wire).abs().max() < 1e-6 * max(1, wire.max())


@pytest.mark.parametrize("path", _all_captures())
def test_total_wire_bytes_match_capture(path):
    analysis = analyze_cached(str(path))
    captures = analysis["captures"]
    tcp_bytes = analysis["connections"]["wire_bytes"].sum()
    # Non-TCP packets are counted in the capture row, never lost.
    assert captures["packets"].sum() == captures["tcp_packets"].sum() + captures["non_tcp_packets"].sum()
    assert captures["tcp_packets"].sum() == analysis["connections"]["packets"].sum()
    assert tcp_bytes <= captures["wire_bytes"].sum()


@pytest.mark.parametrize("path", _all_captures())
def test_http_categories_match_messages(path):
    analysis = analyze_cached(str(path))
    http = analysis["http_messages"]
    connections = analysis["connections"]
    # An HTTP/2 message's header_bytes are its HPACK blocks, its chunk_framing_bytes its DATA
    # frames' headers and padding (counted with the other frames' in the http2_* categories);
    # an HTTP/1.1 message (an h2c upgrade's request too) is text in the http_* ones.
    h2 = http["version"] == "HTTP/2"
    assert connections["http_header_bytes"].sum() == http.loc[~h2, "header_bytes"].sum()
    assert connections["http2_hpack_bytes"].sum() == http.loc[h2, "header_bytes"].sum()
    assert connections["http_chunk_framing_bytes"].sum() == http.loc[~h2, "chunk_framing_bytes"].sum()
    assert http.loc[h2, "chunk_framing_bytes"].sum() <= connections["http2_frame_header_bytes"].sum() + connections["http2_padding_bytes"].sum()
    # http_body_bytes: the body as sent, without chunk framing, DATA frame headers or padding, both versions.
    body = http["body_wire_bytes"] - http["chunk_framing_bytes"] - http["missing_bytes"]
    assert connections["http_body_bytes"].sum() == body.sum()


@pytest.mark.parametrize("path", _all_captures())
def test_ws_categories_match_frames(path):
    analysis = analyze_cached(str(path))
    frames = analysis["ws_frames"]
    connections = analysis["connections"]
    captured = frames["payload_length"] - frames["missing_bytes"]
    control = frames["opcode"] >= 8
    assert connections["ws_frame_header_bytes"].sum() == frames["header_bytes"].sum()
    assert connections["ws_control_payload_bytes"].sum() == captured[control].sum()
    assert connections["ws_data_payload_bytes"].sum() == captured[~control].sum()
