"""Recording sidecars label connections with their variant."""

from __future__ import annotations

import json
import shutil

import pytest

from inspector.analysis.pipeline import analyze_captures
from tests.conftest import BUNDLED


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "work.pcap"
    # Without its sidecar: 20 connections to the rest-per-request server, 3 to others.
    shutil.copy(BUNDLED / "chat.pcap", path)
    return path


def write_sidecar(capture, document):
    capture.with_suffix(".json").write_text(json.dumps(document))


def test_variants_by_client_port_then_server_port(capture):
    plain = analyze_captures([capture])["connections"]
    server = int(plain["server_port"].mode().iloc[0])
    ports = sorted(plain.loc[plain["server_port"] == server, "client_port"])
    write_sidecar(capture, {
        "format": "inspector-recording/1",
        "scenario": "chat",
        "variants": [
            {"name": "first-two", "protocol": "rest", "server_port": server, "client_ports": ports[:2]},
            {"name": "the-rest", "protocol": "rest", "server_port": server, "client_ports": []},
        ],
        "staleness": [{"variant": "first-two", "seq": 1, "published_ts": 10.0, "received_ts": 10.25}],
    })
    analysis = analyze_captures([capture])
    labels = dict(zip(analysis["connections"]["client_port"], analysis["connections"]["variant"]))
    assert {port for port, v in labels.items() if v == "first-two"} == set(ports[:2])
    assert {port for port, v in labels.items() if v == "the-rest"} == set(ports[2:])
    overhead = analysis["overhead"].set_index("variant")
    assert overhead.loc["first-two", "connections"] == 2
    assert overhead.loc["the-rest", "connections"] == len(ports) - 2
    assert analysis["staleness"]["staleness_s"].tolist() == [0.25]


def test_other_json_next_to_capture_is_ignored(capture):
    write_sidecar(capture, {"workload": {"something": 1}})
    analysis = analyze_captures([capture])
    assert set(analysis["connections"]["variant"]) == {""}
    assert analysis.warnings == []


def test_broken_sidecar_is_a_warning(capture):
    capture.with_suffix(".json").write_text("{not json")
    analysis = analyze_captures([capture])
    assert set(analysis["connections"]["variant"]) == {""}
    assert len(analysis.warnings) == 1 and "work.json" in analysis.warnings[0] and "sidecar ignored" in analysis.warnings[0]
