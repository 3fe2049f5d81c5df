"""Limits on what hostile or unlucky captures can make the analysis hold or do.

Each capture is generated here, packet by packet, at a size that shows the
limit at work; the byte categories must still add up to the wire bytes.
"""

from __future__ import annotations

import pytest

from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import BYTE_CATEGORIES
from inspector.parse.tcp import DEFAULT_MAX_RUNS
from tests.factories import pcap_file, tcp_frame

CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 8080)
SYN, ACK, PSH = 0x02, 0x10, 0x08
T0 = 1_700_000_000_000_000_000


def write_capture(path, frames, step_ns=1000):
    path.write_bytes(pcap_file([(T0 + i * step_ns, frame) for i, frame in enumerate(frames)]))
    return path


def handshake(client=CLIENT, server=SERVER, c_isn=1000, s_isn=5000):
    return [tcp_frame(client, server, c_isn, 0, SYN), tcp_frame(server, client, s_isn, c_isn + 1, SYN | ACK),
            tcp_frame(client, server, c_isn + 1, s_isn + 1, ACK)]


def assert_reconciles(analysis):
    connections = analysis["connections"]
    assert (connections[list(BYTE_CATEGORIES)].sum(axis=1) == connections["wire_bytes"]).all()
    costs = analysis["message_costs"].groupby("conn_id")["wire_bytes"].sum()
    assert costs.reindex(connections["conn_id"]).to_numpy() == pytest.approx(connections["wire_bytes"].to_numpy())


# -- item 14: bytes of holes the reordering buffer gave up are late, not resent ------


def test_bytes_after_the_reorder_limit_are_unparsed_with_a_finding(tmp_path):
    # Every other 10-byte segment first: each is a run of its own, so the buffer
    # reaches its run limit and gives up holes; the other half comes after.
    count = DEFAULT_MAX_RUNS + 500
    segment = 10
    odd = [tcp_frame(CLIENT, SERVER, 1001 + i * segment, 5001, PSH | ACK, b"o" * segment) for i in range(1, 2 * count, 2)]
    even = [tcp_frame(CLIENT, SERVER, 1001 + i * segment, 5001, PSH | ACK, b"e" * segment) for i in range(0, 2 * count, 2)]
    path = write_capture(tmp_path / "reordered.pcap", handshake() + odd + even)
    analysis = analyze_captures([path], jobs=1)
    connection = analysis["connections"].iloc[0]
    assert connection["retransmitted_bytes"] == 0  # nothing was sent twice
    assert connection["unparsed_bytes"] == 2 * count * segment  # not HTTP: all of it unparsed
    assert connection["gap_bytes"] > 0
    findings = analysis["findings"]
    limit = findings[findings["rule"] == "tcp-reorder-limit"]
    assert len(limit) == 1 and limit["direction"].tolist() == ["client"]
    assert_reconciles(analysis)
