"""Recording sidecars label connections with their variant."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from inspector.analysis import recording as recording_module
from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.recording import load_recording
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


# --- hostile or broken sidecars: a warning naming the file, never a crash ------------------------

GOOD_VARIANT = {"name": "ws", "protocol": "websocket", "server_port": 8080, "client_ports": [40000, 40001]}


def sidecar_text(variants=(GOOD_VARIANT,), staleness=()) -> str:
    return json.dumps({"format": "inspector-recording/1", "scenario": "chat", "variants": list(variants), "staleness": list(staleness)})


def loaded(capture, text: str):
    capture.with_suffix(".json").write_text(text, encoding="utf-8")
    warnings: list[str] = []
    return load_recording(capture, warnings), warnings


def assert_ignored(capture, text: str, problem: str) -> None:
    recording, warnings = loaded(capture, text)
    assert recording is None
    assert len(warnings) == 1 and warnings[0].startswith(f"{capture.with_suffix('.json')}: recording sidecar ignored: "), warnings
    assert problem in warnings[0] and "\n" not in warnings[0]


def test_a_good_sidecar_loads(capture):
    recording, warnings = loaded(capture, sidecar_text())
    assert warnings == [] and recording.variants[0].client_ports == {40000, 40001} and recording.variants[0].server_port == 8080


@pytest.mark.parametrize("port", ["1e999", "-1e999", "65536", "-1", "8080.0", "8080.5", "true", "\"8080\"", "null"])
@pytest.mark.parametrize("field", ["server_port", "client_port"])
def test_port_out_of_range_or_not_a_whole_number(capture, field, port):
    """JSON's 1e999 is float('inf'): int() of it raised OverflowError."""
    variant = dict(GOOD_VARIANT, client_ports=[40000, "PORT"]) if field == "client_port" else dict(GOOD_VARIANT, server_port="PORT")
    text = sidecar_text([variant]).replace('"PORT"', port)
    if field == "server_port" and port == "null":
        recording, warnings = loaded(capture, text)  # no server port is allowed: labelled by client port
        assert warnings == [] and recording.variants[0].server_port is None
        return
    assert_ignored(capture, text, "is not a port number (a whole number 0 to 65535)")


def test_deep_nesting_is_a_warning(capture):
    """200,000 nested arrays: RecursionError in json.loads."""
    assert_ignored(capture, '{"format": "inspector-recording/1", "variants": ' + "[" * 200_000 + "]" * 200_000 + "}", "nested too deeply")


@pytest.mark.parametrize("depth", [recording_module.MAX_SIDECAR_NESTING + 1, 2_000])
def test_nesting_limit_does_not_depend_on_the_recursion_limit(capture, depth):
    """2,000 levels raised RecursionError under the default recursion limit (1,000) but were
    read under pytest's (3,000): the limit is now the sidecar's own."""
    assert_ignored(capture, '{"format": "inspector-recording/1", "variants": ' + "[" * depth + "]" * depth + "}", "nested too deeply")


def test_brackets_inside_strings_are_not_nesting(capture):
    """Brackets, escaped quotes and backslashes inside a string are text, not nesting."""
    deep_name = "[" * 500 + '\\"{' * 200 + "\\"
    recording, warnings = loaded(capture, sidecar_text([dict(GOOD_VARIANT, name=deep_name)]))
    assert warnings == [] and recording.variants[0].name == deep_name


def test_huge_integer_is_a_warning(capture):
    """Beyond Python's 4300-digit limit for int(str): ValueError, which is no JSONDecodeError."""
    assert_ignored(capture, sidecar_text().replace("8080", "9" * 5000), "not JSON")


def test_oversized_sidecar_is_not_read(capture, monkeypatch):
    monkeypatch.setattr(recording_module, "MAX_SIDECAR_BYTES", 1000)
    assert_ignored(capture, sidecar_text(staleness=[{"variant": "ws", "seq": i, "published_ts": 1.0, "received_ts": 2.0} for i in range(50)]),
                   "larger than 1,000 bytes")


@pytest.mark.parametrize("document, problem", [
    ('{"format": "inspector-recording/1", "variants": "ws"}', "variants is 'ws', not a list"),
    ('{"format": "inspector-recording/1", "variants": [42]}', "variant 1 is 42, not an object"),
    ('{"format": "inspector-recording/1", "variants": [{"name": {"x": 1}}]}', "variant 1 name {'x': 1} is not text"),
    ('{"format": "inspector-recording/1", "variants": [{"name": "a", "client_ports": 8080}]}', "variant 1 client_ports is 8080, not a list"),
    ('{"format": "inspector-recording/1", "scenario": 7, "variants": []}', "scenario 7 is not text"),
])
def test_wrong_types_are_a_warning(capture, document, problem):
    assert_ignored(capture, document, problem)


def test_bad_staleness_entries_are_dropped_with_a_warning(capture):
    entries = [{"variant": "ws", "seq": 1, "published_ts": 10.0, "received_ts": 10.5},
               {"variant": "ws", "seq": 1e999, "published_ts": 10.0, "received_ts": 10.5},
               {"variant": "ws", "seq": 3, "published_ts": 1e999, "received_ts": 10.5},
               {"variant": "ws", "seq": 4, "published_ts": 10**400, "received_ts": 10.5},
               "not an entry"]
    recording, warnings = loaded(capture, sidecar_text(staleness=entries))
    assert [e.seq for e in recording.staleness] == [1]
    assert len(warnings) == 1 and "4 of 5 staleness entries ignored" in warnings[0] and "entry 2 seq inf is not a whole number" in warnings[0]


def test_hostile_sidecar_through_the_command_line(capture):
    """The whole run goes on: exit 0, the summary, one warning line naming the sidecar."""
    variant = dict(GOOD_VARIANT, server_port="INF")
    capture.with_suffix(".json").write_text(sidecar_text([variant]).replace('"INF"', "1e999"), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "inspector.cli", "analyze", str(capture)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [f"inspector: warning: {capture.with_suffix('.json')}: recording sidecar ignored: "
                                        f"variant 1 server_port inf is not a port number (a whole number 0 to 65535)"]
    assert f"{capture}: pcap" in proc.stdout
