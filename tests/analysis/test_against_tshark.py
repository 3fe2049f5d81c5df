"""Cross-check the analysis against tshark on every capture we have.

For each capture in the corpus and in captures/: number of TCP connections,
total captured bytes (frame.len), HTTP request methods and response codes
(HTTP/1.1 and HTTP/2), and WebSocket frames (direction, opcode, fin, payload
length) as multisets.  A recording is read by tshark as the analysis reads it
(oracle.capture_options): decrypted with the key log its sidecar names, its
h2c ports decoded as HTTP/2.
Where we differ from tshark, tshark is demonstrably wrong, and the
exceptions below say why.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests import tshark_oracle as oracle
from tests.conftest import analyze_cached, bundled_files, corpus_params

pytestmark = pytest.mark.skipif(not oracle.tshark_available(), reason="tshark not installed (the README's test command installs it)")


def _all_captures():
    return corpus_params() + [pytest.param(p, id=f"bundled-{p.name}") for p in bundled_files()]


def _options(path: Path):
    return oracle.capture_options(path).kwargs()


def test_total_wire_bytes_equal_frame_len_sum():
    for path in [p.values[0] for p in _all_captures() if p.values[0] is not None]:
        analysis = analyze_cached(str(path))
        assert int(analysis["captures"]["wire_bytes"].sum()) == oracle.total_frame_bytes(path), path.name


@pytest.mark.parametrize("path", _all_captures())
def test_tcp_connection_count(path):
    ours = len(analyze_cached(str(path))["connections"])
    assert ours == oracle.tcp_connections(path, **_options(path))


@pytest.mark.parametrize("path", _all_captures())
def test_tcp_bytes_per_connection(path):
    connections = analyze_cached(str(path))["connections"]
    ours = Counter()
    for row in connections.itertuples():
        key = tuple(sorted([(row.client_ip, row.client_port), (row.server_ip, row.server_port)]))
        ours[key] += row.wire_bytes
    theirs = Counter()
    for four_tuple, wire, _packets in oracle.tcp_frame_bytes_by_stream(path, **_options(path)).values():
        theirs[tuple(sorted(tuple(e) for e in four_tuple))] += wire
    assert ours == theirs


# Where tshark's HTTP counts are wrong, what is really on the wire:
HTTP_EXPECTED_DIFFERENCES = {
    # A 200 header with Content-Length 181348 is on the wire, but its body
    # never completes (lost segments, RST), so tshark hides the response
    # unless body desegmentation is turned off (the oracle's per-file option
    # does that); with the option tshark and we agree, so nothing here.
}


@pytest.mark.parametrize("path", _all_captures())
def test_http_methods_and_status_codes(path):
    http = analyze_cached(str(path))["http_messages"]
    methods = Counter(http["method"].dropna())
    statuses = Counter(int(s) for s in http["status"].dropna())
    assert methods == oracle.http_request_methods(path, **_options(path))
    assert statuses == oracle.http_response_codes(path, **_options(path))


@pytest.mark.parametrize("path", _all_captures())
def test_websocket_frames_multiset(path):
    analysis = analyze_cached(str(path))
    frames = analysis["ws_frames"].merge(analysis["connections"][["conn_id", "client_ip", "client_port"]], on="conn_id")
    ours = Counter((row.direction, row.opcode, row.fin, row.payload_length) for row in frames.itertuples())
    clients = {(row.client_ip, row.client_port) for row in analysis["connections"].itertuples()}
    theirs = oracle.websocket_frames_by_direction(path, clients, **_options(path))
    assert ours == Counter({(d, int(o), bool(f), int(n)): c for (d, o, f, n), c in theirs.items()})
