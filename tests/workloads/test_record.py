"""`inspector record SCENARIO` end to end: record, analyse, compare with the sidecar.

Each scenario is recorded once per module by the CLI in a subprocess, with
small counts, then analysed.  Connections are matched to variants by client
port (the sidecar lists every port each variant's clients used); what the
analysis counts on the wire must be what the scenario says it sent, and the
REST and WebSocket variants of a scenario must carry the same application
payload.  Recording needs root (live capture on lo); CI runs as root.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from statistics import mean
from typing import NamedTuple

import pandas as pd
import pytest

from inspector.analysis.pipeline import Analysis, analyze_captures
from tests.conftest import REPO

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="recording captures live on lo: needs root (CI runs as root)")

# Small enough for a few seconds each.
PUSH_VARIANTS = "rest-polling,rest-long-polling,sse,rest-h2,ws,ws-deflate"
SCENARIO_ARGS = {
    "chat": ["--messages", "6", "--size", "80,300"],
    "feed": ["--messages", "10", "--rate", "40", "--variants", PUSH_VARIANTS],  # the sse stream dropped after update 5
    "bulk": ["--messages", "3"],  # default sizes 100, 1000, 70000
    "idle": ["--messages", "3", "--rate", "10", "--variants", PUSH_VARIANTS],
}
VARIANTS = {
    "chat": ["rest-keepalive", "rest-per-request", "ws", "ws-deflate"],
    "feed": PUSH_VARIANTS.split(","),
    "bulk": ["rest-keepalive", "rest-per-request", "ws", "ws-deflate"],
    "idle": PUSH_VARIANTS.split(","),
}
SIDES = ("client", "server")


class Recorded(NamedTuple):
    pcap: Path
    sidecar: dict
    analysis: Analysis
    stdout: str


def run_cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory):
    if os.geteuid() != 0:
        pytest.skip("recording captures live on lo: needs root (CI runs as root)")
    cache: dict[str, Recorded] = {}

    def get(scenario: str) -> Recorded:
        if scenario not in cache:
            pcap = tmp_path_factory.mktemp(f"record-{scenario}") / f"{scenario}.pcap"
            proc = run_cli("record", scenario, "-o", pcap, *SCENARIO_ARGS[scenario])
            assert proc.returncode == 0, proc.stderr
            assert proc.stderr == ""  # no warning: nothing dropped
            sidecar = json.loads(pcap.with_suffix(".json").read_text(encoding="utf-8"))
            cache[scenario] = Recorded(pcap, sidecar, analyze_captures([pcap]), proc.stdout)
        return cache[scenario]

    return get


def variant_tables(rec: Recorded, variant: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """connections, http_messages, ws_messages, ws_frames of one variant (by client port)."""
    a = rec.analysis
    conns = a["connections"][a["connections"]["client_port"].isin(variant["client_ports"])]
    ids = set(conns["conn_id"])
    pick = lambda t: t[t["conn_id"].isin(ids)]  # noqa: E731
    return conns, pick(a["http_messages"]), pick(a["ws_messages"]), pick(a["ws_frames"])


def connection_kind(variant: dict) -> str:
    """The kind the analysis gives a variant's connections (rest-h2: HTTP/2; sse: HTTP/1.1, kind rest)."""
    return "http2" if variant["name"] == "rest-h2" else "websocket" if variant["protocol"] == "websocket" else "rest"


def wire_counts(rec: Recorded, variant: dict) -> tuple[dict[str, int], dict[str, int]]:
    """Application messages and payload bytes per direction, as the analysis sees them (not sse:
    its events are in HTTP bodies the analysis does not split yet)."""
    assert variant["protocol"] != "sse", "sse: see sse_wire_counts"
    _conns, http, ws, _frames = variant_tables(rec, variant)
    if variant["protocol"] == "rest":
        messages = {"client": int(http["method"].notna().sum()), "server": int(http["status"].notna().sum())}
        payload = {side: int(http.loc[http["direction"] == side, "body_bytes"].sum()) for side in SIDES}
    else:
        messages = {side: int((ws["direction"] == side).sum()) for side in SIDES}
        payload = {side: int(ws.loc[ws["direction"] == side, "payload_bytes"].sum()) for side in SIDES}
    return messages, payload


SCENARIOS = list(SCENARIO_ARGS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sidecar_shape(scenario: str, recorded) -> None:
    rec = recorded(scenario)
    side = rec.sidecar
    assert list(side) == ["format", "scenario", "parameters", "created", "variants", "staleness"]
    assert side["format"] == "inspector-recording/1"
    assert side["scenario"] == scenario
    assert datetime.fromisoformat(side["created"]).tzinfo is not None
    assert [v["name"] for v in side["variants"]] == VARIANTS[scenario]
    for v in side["variants"]:
        assert list(v) == ["name", "protocol", "server_port", "client_ports", "messages_sent", "payload_bytes"] + (["sse"] if v["name"] == "sse" else [])
        assert v["protocol"] == ("rest" if v["name"].startswith("rest") else "sse" if v["name"] == "sse" else "websocket")
        assert list(v["messages_sent"]) == list(SIDES) and list(v["payload_bytes"]) == list(SIDES)
        for stream in v.get("sse", {}).get("streams", []):
            assert list(stream) == ["client_port", "last_event_id", "opened_ts", "ended_ts", "events", "keepalives", "body_bytes", "dropped"]
    # Variants have their own servers, so connections are attributable either way.
    assert len({v["server_port"] for v in side["variants"]}) == len(side["variants"])
    for entry in side["staleness"]:
        assert list(entry) == ["variant", "seq", "published_ts", "received_ts"]
    # The CLI prints one row per variant.
    for v in side["variants"]:
        assert any(line.split()[:2] == [v["name"], str(len(v["client_ports"]))] for line in rec.stdout.splitlines()), rec.stdout


def retransmitted_by_tshark(pcap: Path, ports: list[int]) -> dict[int, int]:
    """TCP payload bytes tshark flags as retransmitted, by client port (loopback under load: the
    kernel's tail loss probes when an ACK is late), 0 for the ports without."""
    if shutil.which("tshark") is None:
        return dict.fromkeys(ports, 0)  # the analysis must then see none
    flagged = "tcp.analysis.retransmission or tcp.analysis.fast_retransmission or tcp.analysis.spurious_retransmission"
    out = subprocess.run(["tshark", "-r", str(pcap), "-Y", flagged, "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.len"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    counts = dict.fromkeys(ports, 0)
    for line in out.splitlines():
        src, dst, length = map(int, line.split("\t"))
        counts[src if src in counts else dst] += length
    return counts


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_connection_belongs_to_one_variant(scenario: str, recorded) -> None:
    rec = recorded(scenario)
    connections = rec.analysis["connections"]
    by_port = {port: v for v in rec.sidecar["variants"] for port in v["client_ports"]}
    retransmitted = retransmitted_by_tshark(rec.pcap, list(by_port))
    assert sum(len(v["client_ports"]) for v in rec.sidecar["variants"]) == len(by_port), "a port in two variants"
    assert sorted(connections["client_port"]) == sorted(by_port)
    for row in connections.itertuples():
        variant = by_port[row.client_port]
        assert row.server_port == variant["server_port"]
        assert row.kind == connection_kind(variant)
        assert row.variant == variant["name"]  # the analysis read the sidecar
        assert row.handshake_seen and row.gap_bytes == 0 and row.retransmitted_bytes == retransmitted[row.client_port]
    assert len(rec.analysis["findings"]) == 0
    counts = {v["name"]: len(v["client_ports"]) for v in rec.sidecar["variants"]}
    for name, n in counts.items():
        if name == "rest-per-request":
            assert n == int(rec.sidecar["parameters"]["messages"])
        elif name == "sse":  # dropped once in the feed: the reconnection is a second connection
            assert n == (2 if scenario == "feed" else 1)
        else:
            assert n == 1


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_messages_per_variant_as_the_scenario_sent_them(scenario: str, recorded) -> None:
    rec = recorded(scenario)
    for variant in rec.sidecar["variants"]:
        conns, http, ws, _frames = variant_tables(rec, variant)
        if variant["protocol"] == "sse":
            check_sse_on_the_wire(rec, variant)
            continue
        messages, payload = wire_counts(rec, variant)
        assert messages == variant["messages_sent"], variant["name"]
        assert payload == variant["payload_bytes"], variant["name"]
        if variant["protocol"] == "rest":
            assert http["complete"].all() and len(ws) == 0
            assert int(conns["http_requests"].sum()) == variant["messages_sent"]["client"]
        else:
            # One upgrade per connection; then data messages only.
            assert list(http["status"].dropna()) == [101] * len(conns)
            assert ws["complete"].all()
            assert bool(conns["ws_deflate"].all()) is (variant["name"] == "ws-deflate")
            if variant["name"] == "ws-deflate":
                assert ws["compressed"].all()
            else:
                assert not ws["compressed"].any()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rest_and_websocket_carry_the_same_payload(scenario: str, recorded) -> None:
    rec = recorded(scenario)
    on_wire = {v["name"]: sse_wire_counts(rec, v)[1] if v["protocol"] == "sse" else wire_counts(rec, v)[1] for v in rec.sidecar["variants"]}
    assert len({tuple(p.values()) for p in on_wire.values()}) == 1, on_wire
    (payload,) = {tuple(p.values()) for p in on_wire.values()}
    params = rec.sidecar["parameters"]
    if scenario in ("chat", "bulk"):
        assert payload[0] > 0 and payload[1] > 0
    if scenario == "chat":
        n, sizes = params["messages"], params["sizes"]
        assert payload == (sum(sizes[i % len(sizes)] for i in range(n)),) * 2
    if scenario == "bulk":
        assert payload[1] == sum(params["sizes"][i % len(params["sizes"])] for i in range(params["messages"]))
    if scenario == "feed":
        assert payload[0] == 0 and payload[1] == params["messages"] * params["sizes"][0]
    if scenario == "idle":
        assert payload == (0, 0)


def test_feed_staleness(recorded) -> None:
    rec = recorded("feed")
    n = rec.sidecar["parameters"]["messages"]
    stale: dict[str, list[float]] = {}
    for entry in rec.sidecar["staleness"]:
        assert entry["received_ts"] >= entry["published_ts"]
        stale.setdefault(entry["variant"], []).append(entry["received_ts"] - entry["published_ts"])
    assert sorted(stale) == sorted(VARIANTS["feed"])
    for name in stale:
        assert sorted(e["seq"] for e in rec.sidecar["staleness"] if e["variant"] == name) == list(range(1, n + 1))
    # Polling (over HTTP/1.1 or HTTP/2) waits up to a poll interval; a push arrives at once.
    # Noise allowance: 2 ms.
    push = mean(stale["ws"] + stale["ws-deflate"])
    for polling in ("rest-polling", "rest-h2"):
        assert mean(stale[polling]) >= push - 0.002, stale
    assert push < rec.sidecar["parameters"]["poll_interval"]
    table = rec.analysis["staleness"]
    assert len(table) == n * len(VARIANTS["feed"])
    assert sorted(set(table["variant"])) == sorted(VARIANTS["feed"])
    # Each update a REST poll returned is on the wire as a 200; the others were 204s.
    for polling in (v for v in rec.sidecar["variants"] if v["protocol"] == "rest"):
        _conns, http, _ws, _frames = variant_tables(rec, polling)
        statuses = http["status"].dropna().astype(int)
        assert (statuses == 200).sum() == n, polling["name"]
        assert set(statuses) <= {200, 204}
        assert len(statuses) == polling["messages_sent"]["server"]


# --- long polling and Server-Sent Events --------------------------------------------------


def variant_named(rec: Recorded, name: str) -> dict:
    return next(v for v in rec.sidecar["variants"] if v["name"] == name)


def http_by_tshark(rec: Recorded, variant: dict, *fields: str) -> list[dict]:
    """The HTTP messages of a variant's server port as tshark decodes them (told it is HTTP), one
    dict per packet that ends a message: each field's values (a list) by name, with the ports."""
    port = variant["server_port"]
    command = ["tshark", "-r", str(rec.pcap), "-d", f"tcp.port=={port},http", "-Y", f"http and tcp.port=={port}", "-T", "json",
               *[arg for field in ("tcp.srcport", "tcp.dstport", *fields) for arg in ("-e", field)]]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    return [packet["_source"]["layers"] for packet in json.loads(out or "[]")]


def sse_blocks(body: str) -> tuple[list[tuple[str, str]], int]:
    """A workload's event stream as the server wrote it: its events (id, data) and keep-alives.
    Every block must be one of the two shapes the server writes, nothing else."""
    assert body.endswith("\n\n") or body == "", body[-40:]
    events, keepalives = [], 0
    for block in body.split("\n\n")[:-1]:
        if block == ": keep-alive":
            keepalives += 1
            continue
        id_line, data_line = block.split("\n")
        assert id_line.startswith("id: ") and data_line.startswith("data: "), block[:80]
        events.append((id_line[len("id: "):], data_line[len("data: "):]))
    return events, keepalives


def sse_streams_by_tshark(rec: Recorded, variant: dict) -> dict[int, dict]:
    """Per client port of the sse variant, as tshark sees the capture: the request's header lines,
    the response's status, chunk sizes and body (de-chunked by tshark)."""
    streams: dict[int, dict] = {}
    for packet in http_by_tshark(rec, variant, "http.request.line", "http.response.code", "http.chunk_size", "http.file_data"):
        if "http.request.line" in packet:
            streams.setdefault(int(packet["tcp.srcport"][0]), {})["request"] = packet["http.request.line"]
        else:
            stream = streams.setdefault(int(packet["tcp.dstport"][0]), {})
            stream.update(status=packet["http.response.code"], chunks=[int(c) for c in packet.get("http.chunk_size", [])],
                          body="".join(packet.get("http.file_data", [])))
    return streams


def sse_wire_counts(rec: Recorded, variant: dict) -> tuple[dict[str, int], dict[str, int]]:
    """The sse variant's application messages and payload per direction, from the capture: a
    request per stream; the events of the response bodies, and their data."""
    streams = sse_streams_by_tshark(rec, variant)
    events = [event for stream in streams.values() for event in sse_blocks(stream["body"])[0]]
    return {"client": len(streams), "server": len(events)}, {"client": 0, "server": sum(len(data.encode()) for _id, data in events)}


def check_sse_on_the_wire(rec: Recorded, variant: dict) -> None:
    """The sse variant in the capture is what its sidecar says: per stream (connection) one GET
    /feed/events carrying the Last-Event-ID the client sent, one chunked 200 text/event-stream
    response whose body is the server's count of bytes, made of the events the client received
    (ids and the feed's very payloads) and the keep-alives the server sent; by tshark and by the
    analysis (which, until it splits SSE, sees each stream as one HTTP body)."""
    from inspector.workloads.payloads import feed_update

    sidecar_streams = variant["sse"]["streams"]
    params = rec.sidecar["parameters"]
    conns, http, _ws, _frames = variant_tables(rec, variant)
    by_tshark = sse_streams_by_tshark(rec, variant)
    assert sorted(by_tshark) == sorted(variant["client_ports"]) == sorted(s["client_port"] for s in sidecar_streams)
    assert variant["messages_sent"] == {"client": len(sidecar_streams), "server": sum(len(s["events"]) for s in sidecar_streams)}
    for stream in sidecar_streams:
        seen = by_tshark[stream["client_port"]]
        resume = [line for line in seen["request"] if line.lower().startswith("last-event-id:")]
        assert resume == ([] if stream["last_event_id"] is None else [f"Last-Event-ID: {stream['last_event_id']}\r\n"])
        assert seen["status"] == ["200"] and sum(seen["chunks"]) == len(seen["body"].encode()) == stream["body_bytes"]
        events, keepalives = sse_blocks(seen["body"])
        assert [int(event_id) for event_id, _data in events] == [seq for seq, _received in stream["events"]]
        assert [data.encode() for _id, data in events] == [feed_update(seq, params["sizes"][0]) for seq, _received in stream["events"]]
        assert keepalives == stream["keepalives"]
        conn = conns[conns["client_port"] == stream["client_port"]]
        mine = http[http["conn_id"].isin(conn["conn_id"])]
        request, response = mine[mine["direction"] == "client"], mine[mine["direction"] == "server"]
        assert list(request["method"]) == ["GET"] and list(request["target"]) == ["/feed/events"]
        assert list(response["status"]) == [200] and list(response["body_bytes"]) == [stream["body_bytes"]]
        assert mine["complete"].all() and int(conn["http_chunk_framing_bytes"].iloc[0]) > 0


def test_sse_reconnects_with_the_last_event_id(recorded) -> None:
    """The feed's stream is dropped once, after update sse_drop_after: the server ends it and
    closes the connection; the client reconnects on a new connection with Last-Event-ID the last
    id it received, and the server resumes right after it: every update once, in order."""
    rec = recorded("feed")
    sse = variant_named(rec, "sse")
    n, drop = rec.sidecar["parameters"]["messages"], rec.sidecar["parameters"]["sse_drop_after"]
    assert drop == n // 2
    first, second = sse["sse"]["streams"]
    assert (first["last_event_id"], first["dropped"], second["dropped"]) == (None, True, False)
    assert [seq for seq, _ts in first["events"]] == list(range(1, drop + 1))
    assert second["last_event_id"] == str(first["events"][-1][0]) == str(drop)
    assert [seq for seq, _ts in second["events"]] == list(range(drop + 1, n + 1))
    assert first["opened_ts"] <= first["ended_ts"] <= second["opened_ts"] <= second["ended_ts"]
    # In the capture: two connections one after the other, both labelled sse; the request of the
    # second carries Last-Event-ID (the analysis keeps the request's headers).
    conns, http, _ws, _frames = variant_tables(rec, sse)
    conns = conns.sort_values("start_ts")
    assert list(conns["client_port"]) == [first["client_port"], second["client_port"]] and set(conns["variant"]) == {"sse"}
    assert conns["end_ts"].iloc[0] <= conns["start_ts"].iloc[1]
    requests = http[http["direction"] == "client"].set_index("conn_id").loc[conns["conn_id"], "headers"]
    assert "last-event-id" not in requests.iloc[0].lower() and f"Last-Event-ID: {drop}" in requests.iloc[1]
    check_sse_on_the_wire(rec, sse)


def test_idle_sse_is_one_stream_of_keepalives(recorded) -> None:
    rec = recorded("idle")
    sse = variant_named(rec, "sse")
    (stream,) = sse["sse"]["streams"]
    n = rec.sidecar["parameters"]["messages"]
    assert (stream["events"], stream["keepalives"], stream["last_event_id"], stream["dropped"]) == ([], n, None, False)
    assert stream["body_bytes"] == n * len(b": keep-alive\n\n")
    check_sse_on_the_wire(rec, sse)


@pytest.mark.parametrize("scenario", ["feed", "idle"])
def test_long_polling_as_tshark_sees_it(scenario: str, recorded) -> None:
    """rest-long-polling: one connection of GET /feed/wait, each answered by a 200 with the next
    update or, once the hold (one poll interval) passed without one, a 204; tshark counts what
    the clients' ledger says was sent."""
    rec = recorded(scenario)
    variant = variant_named(rec, "rest-long-polling")
    n, hold = rec.sidecar["parameters"]["messages"], rec.sidecar["parameters"]["poll_interval"]
    packets = http_by_tshark(rec, variant, "http.request.method", "http.request.uri", "http.response.code", "http.content_length", "http.time")
    requests = [p for p in packets if "http.request.method" in p]
    responses = [p for p in packets if "http.response.code" in p]
    assert [p["http.request.method"] for p in requests] == [["GET"]] * variant["messages_sent"]["client"]
    assert {p["http.request.uri"][0].split("?")[0] for p in requests} == {"/feed/wait"}
    codes = [p["http.response.code"][0] for p in responses]
    assert len(codes) == variant["messages_sent"]["server"]
    assert codes.count("200") == (n if scenario == "feed" else 0) and codes.count("204") == len(codes) - codes.count("200")
    assert sum(int(p.get("http.content_length", ["0"])[0]) for p in responses) == variant["payload_bytes"]["server"]
    if scenario == "idle":  # every hold ran out: a 204 about a poll interval after its request
        assert codes == ["204"] * n
        held = [float(p["http.time"][0]) for p in responses]
        assert all(0.8 * hold <= seconds <= hold + 5.0 for seconds in held), (hold, held)


def test_bulk_covers_every_websocket_length_encoding(recorded) -> None:
    rec = recorded("bulk")
    for variant in rec.sidecar["variants"]:
        if variant["protocol"] != "websocket":
            continue
        _conns, _http, ws, frames = variant_tables(rec, variant)
        server = frames[(frames["direction"] == "server") & (frames["opcode"] == 2)]
        # Header sizes of unmasked frames: 2 (7-bit length), 4 (16-bit), 10 (64-bit).
        if variant["name"] == "ws":
            assert sorted(server["header_bytes"]) == [2, 4, 10]
            assert sorted(server["payload_length"]) == sorted(rec.sidecar["parameters"]["sizes"])
        assert sorted(ws.loc[ws["direction"] == "server", "payload_bytes"]) == sorted(rec.sidecar["parameters"]["sizes"])


def test_idle_keepalive_is_ping_pong_or_a_comment_against_polls(recorded) -> None:
    rec = recorded("idle")
    n = rec.sidecar["parameters"]["messages"]
    assert rec.sidecar["staleness"] == []
    for variant in rec.sidecar["variants"]:
        _conns, http, ws, frames = variant_tables(rec, variant)
        if variant["protocol"] == "rest":  # a poll a round, or a long poll held a round
            assert list(http["status"].dropna()) == [204] * n
            assert variant["messages_sent"] == {"client": n, "server": n}
        elif variant["protocol"] == "sse":  # one stream, a keep-alive a round (test_idle_sse_is_one_stream_of_keepalives)
            assert list(http["status"].dropna()) == [200] and len(ws) == 0
            assert variant["messages_sent"] == {"client": 1, "server": 0}
        else:
            assert len(ws) == 0 and variant["messages_sent"] == {"client": 0, "server": 0}
            pings = frames[frames["opcode"] == 9]
            pongs = frames[frames["opcode"] == 10]
            assert list(pings["direction"]) == ["client"] * n
            assert list(pongs["direction"]) == ["server"] * n


# --- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize(("args", "complaint"), [
    (["chat", "--variants", "rest-polling"], "no variant rest-polling"),
    (["feed", "--variants", "ws,nope"], "no variant nope"),
    (["chat", "--size", "10"], "--size 10"),
    (["chat", "--size", "big"], "--size 'big'"),
    (["chat", "--messages", "0"], "--messages"),
    (["feed", "--rate", "-1"], "--rate"),
    (["chat", "--poll-interval", "1"], "--poll-interval"),
    (["idle", "--size", "100"], "--size"),
    (["chat", "--variants", "sse"], "no variant sse"),
    (["bulk", "--variants", "rest-long-polling"], "no variant rest-long-polling"),
    (["idle", "--sse-drop-after", "1"], "--sse-drop-after is for the feed"),
    (["feed", "--messages", "4", "--sse-drop-after", "4"], "--sse-drop-after must be 0 (never) to 3"),
    (["feed", "--sse-drop-after", "-1"], "--sse-drop-after must be"),
])
def test_bad_parameters_are_one_line_and_exit_2(args: list[str], complaint: str, tmp_path: Path) -> None:
    out = tmp_path / "x.pcap"
    proc = run_cli("record", *args, "-o", out)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and complaint in lines[0], lines
    assert not out.exists() and not out.with_suffix(".json").exists()


@needs_root
def test_subset_of_variants_in_the_order_given(tmp_path: Path) -> None:
    out = tmp_path / "chat.pcapng"
    proc = run_cli("record", "chat", "-o", out, "--messages", "2", "--variants", "ws,rest-keepalive")
    assert proc.returncode == 0, proc.stderr
    sidecar = json.loads((tmp_path / "chat.json").read_text(encoding="utf-8"))
    assert [v["name"] for v in sidecar["variants"]] == ["ws", "rest-keepalive"]
    assert out.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"  # pcapng by extension
    analysis = analyze_captures([out])
    assert sorted(analysis["connections"]["variant"]) == ["rest-keepalive", "ws"]


@needs_root
def test_without_capture_privileges_one_line_and_exit_2(tmp_path: Path) -> None:
    """Root without any capability (empty bounding set): the servers start, the capture cannot."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) not installed")
    out = tmp_path / "x.pcap"
    proc = subprocess.run([setpriv, "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-m", "inspector.cli",
                           "record", "chat", "-o", str(out), "--messages", "1"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == ["inspector: error: live capture needs root or CAP_NET_RAW"]
    assert not out.exists() and not out.with_suffix(".json").exists()


@needs_root
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_recording_leaves_a_complete_capture_and_no_sidecar(sig: int, tmp_path: Path) -> None:
    out = tmp_path / "chat.pcap"
    # a long chat: it is still running when the signal comes
    proc = subprocess.Popen([sys.executable, "-m", "inspector.cli", "record", "chat", "-o", str(out), "--messages", "100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size > 20_000):  # the capture has started and has traffic
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.splitlines() == [f"inspector: record interrupted: {out} holds what was captured so far, no sidecar written"]
    assert not out.with_suffix(".json").exists()
    analysis = analyze_captures([out])
    assert analysis.warnings == []  # no cut last record
    assert analysis["captures"]["packets"].iloc[0] > 0
    tshark = subprocess.run(["tshark", "-r", str(out), "-q"], capture_output=True, text=True, timeout=60)
    assert tshark.returncode == 0 and "cut short" not in tshark.stderr, tshark.stderr


# --- --tls: every variant over TLS, the key log next to the capture --------------------------

TLS_MESSAGES = 4


@pytest.fixture(scope="module")
def recorded_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    if os.geteuid() != 0:
        pytest.skip("recording captures live on lo: needs root (CI runs as root)")
    pcap = tmp_path_factory.mktemp("record-tls") / "chat.pcap"
    proc = run_cli("record", "chat", "-o", pcap, "--tls", "--messages", str(TLS_MESSAGES), "--size", "80,300",
                   "--variants", "rest-keepalive,rest-per-request,rest-h2,ws,ws-deflate")
    assert proc.returncode == 0, proc.stderr
    assert f"TLS key log {pcap.with_suffix('.keylog')}" in proc.stdout
    return pcap, json.loads(pcap.with_suffix(".json").read_text(encoding="utf-8"))


def _tshark_rows(pcap: Path, fields: list[str], display_filter: str, *options: str) -> pd.DataFrame:
    """One row per packet that `display_filter` keeps (every occurrence of a field, joined by |)."""
    command = ["tshark", "-r", str(pcap), *options, "-Y", display_filter, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
               *[arg for field in fields for arg in ("-e", field)]]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    return pd.DataFrame([line.split("\t") for line in out.splitlines()], columns=fields)


def _decrypted_by_tshark(pcap: Path, keylog: Path) -> pd.DataFrame:
    """Per decrypted HTTP/1.1 message or WebSocket frame: ports, method, status, body and payload lengths."""
    fields = ["tcp.srcport", "tcp.dstport", "http.request.method", "http.response.code", "http.content_length",
              "websocket.opcode", "websocket.payload_length", "websocket.payload_length_ext_16", "websocket.rsv"]
    return _tshark_rows(pcap, fields, "http or websocket", "-o", f"tls.keylog_file:{keylog}")


def _http2_frames(pcap: Path, *options: str) -> pd.DataFrame:
    """One row per HTTP/2 frame: source port, type, stream, length, method, status."""
    packets = _tshark_rows(pcap, ["tcp.srcport", "http2.type", "http2.streamid", "http2.length"], "http2", *options)
    frames = [(port, int(kind), int(stream), int(length)) for port, kinds, streams, lengths in packets.itertuples(index=False)
              for kind, stream, length in zip(kinds.split("|"), streams.split("|"), lengths.split("|"))]
    return pd.DataFrame(frames, columns=["port", "type", "stream", "length"])


def check_http2_variant(pcap: Path, variant: dict, *options: str, method: str = "POST", statuses: tuple[str, ...] = ("200",)) -> None:
    """rest-h2 as tshark decodes it: one connection, a request and a response per message, each
    on its own stream (requests by `method`, responses of `statuses`), the bodies (DATA frames)
    the clients' payload."""
    assert len(variant["client_ports"]) == 1
    port = str(variant["client_ports"][0])
    frames = _http2_frames(pcap, *options)
    sent, received = frames[frames["port"] == port], frames[frames["port"] == str(variant["server_port"])]
    heads = _tshark_rows(pcap, ["tcp.srcport", "http2.headers.method", "http2.headers.status"], "http2.type == 1", *options)
    methods = "|".join(heads.loc[heads["tcp.srcport"] == port, "http2.headers.method"]).split("|")
    answered = "|".join(heads.loc[heads["tcp.srcport"] != port, "http2.headers.status"]).split("|")
    expected = variant["messages_sent"]
    assert methods.count(method) == expected["client"]
    assert sum(answered.count(status) for status in statuses) == expected["server"]
    requests = sent[sent["type"] == 1]
    assert requests["stream"].nunique() == len(requests) == expected["client"]  # a stream per request
    assert sent.loc[sent["type"] == 0, "length"].sum() == variant["payload_bytes"]["client"]
    assert received.loc[received["type"] == 0, "length"].sum() == variant["payload_bytes"]["server"]


def _without_sidecar(pcap: Path, folder: Path) -> Path:
    """A copy of the capture alone (no sidecar, no key log)."""
    copy = folder / "alone" / pcap.name
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(pcap, copy)
    return copy


def test_tls_recording_names_its_key_log_and_only_tls_on_the_wire(recorded_tls, tmp_path: Path) -> None:
    pcap, sidecar = recorded_tls
    assert sidecar["tls"] == {"keylog": "chat.keylog"}
    keylog = pcap.with_suffix(".keylog")
    ports = [port for variant in sidecar["variants"] for port in variant["client_ports"]]
    # TLS 1.3 by default: one CLIENT_TRAFFIC_SECRET_0 per session, one session per connection.
    secrets = [line.split()[0] for line in keylog.read_text().splitlines() if line and not line.startswith("#")]
    assert secrets.count("CLIENT_TRAFFIC_SECRET_0") == len(ports)
    # Without the key log, no HTTP or WebSocket is visible on the wire: it is all TLS.
    plain = subprocess.run(["tshark", "-r", str(pcap), "-Y", "http or websocket"], capture_output=True, text=True, timeout=60)
    assert plain.stdout == ""
    analysis = analyze_captures([_without_sidecar(pcap, tmp_path)])  # the sidecar's key log would decrypt it
    conns = analysis["connections"]
    assert sorted(conns["client_port"]) == sorted(ports)
    # (TLS 1.3 sends the chosen ALPN encrypted: without the keys only the offer is seen; httpx
    # offers both, and the HTTP/2 server takes h2.)
    h2_port = next(v["client_ports"][0] for v in sidecar["variants"] if v["name"] == "rest-h2")
    offered = dict(zip(conns["client_port"], conns["tls_alpn_offered"]))
    assert offered.pop(h2_port) == "http/1.1,h2" and set(offered.values()) == {"http/1.1"}
    assert set(conns["kind"]) == {"tls"} and set(conns["tls_version"]) == {"TLS 1.3"}


def test_tls_recording_decrypted_by_tshark_carries_what_the_clients_sent(recorded_tls) -> None:
    pcap, sidecar = recorded_tls
    seen = _decrypted_by_tshark(pcap, pcap.with_suffix(".keylog"))
    for variant in sidecar["variants"]:
        ports = {str(port) for port in variant["client_ports"]}
        sent = seen[seen["tcp.srcport"].isin(ports)]
        received = seen[seen["tcp.dstport"].isin(ports)]
        expected = variant["messages_sent"]
        if variant["name"] == "rest-h2":
            check_http2_variant(pcap, variant, "-o", f"tls.keylog_file:{pcap.with_suffix('.keylog')}")
        elif variant["protocol"] == "rest":
            assert (sent["http.request.method"] == "POST").sum() == expected["client"] == TLS_MESSAGES
            assert (received["http.response.code"] == "200").sum() == expected["server"] == TLS_MESSAGES
            assert sent["http.content_length"].astype(int).sum() == variant["payload_bytes"]["client"]
            assert received["http.content_length"].astype(int).sum() == variant["payload_bytes"]["server"]
        else:
            for frames, side in ((sent, "client"), (received, "server")):
                text = frames[frames["websocket.opcode"] == "1"]
                assert len(text) == expected[side] == TLS_MESSAGES
                if variant["name"] == "ws":  # uncompressed: the payload on the wire is what was sent
                    lengths = text["websocket.payload_length"].astype(int)
                    lengths = lengths.where(lengths < 126, text["websocket.payload_length_ext_16"].replace("", "0").astype(int))
                    assert lengths.sum() == variant["payload_bytes"][side]
                else:  # permessage-deflate: every data frame compressed (RSV1)
                    assert set(text["websocket.rsv"]) == {"0x04"}


def test_tls_recording_decrypted_is_what_the_clients_did(recorded_tls, tmp_path: Path) -> None:
    """With the recording's key log, every variant is its cleartext kind (rest-h2: http2) with the
    ledger's messages and payload, and every message carries a TLS cost."""
    from inspector.parse.connection import ParserOptions
    from inspector.parse.keylog import KeyLog

    pcap, sidecar = recorded_tls
    keylog = KeyLog.from_text(pcap.with_suffix(".keylog").read_bytes())
    analysis = analyze_captures([_without_sidecar(pcap, tmp_path)], ParserOptions(keylog=keylog))
    assert analysis["findings"].empty, analysis["findings"].to_dict("records")
    rec = Recorded(pcap, sidecar, analysis, "")
    costs = analysis["message_costs"]
    for variant in sidecar["variants"]:
        conns, http, _ws, _frames = variant_tables(rec, variant)
        kind = connection_kind(variant)
        assert set(conns["kind"]) == {kind} and (conns["unparsed_bytes"] == 0).all() and (conns["tls_encrypted_bytes"] == 0).all()
        messages, payload = wire_counts(rec, variant)
        assert (messages, payload) == (variant["messages_sent"], variant["payload_bytes"]), variant["name"]
        if kind == "http2":
            assert len(conns) == 1 and conns["tls_alpn"].tolist() == ["h2"]
            assert http["stream_id"].nunique() == variant["messages_sent"]["client"] and http["complete"].all()
        mine = costs[costs["conn_id"].isin(conns["conn_id"]) & costs["item"].isin(["exchange", "ws_message"])]
        assert len(mine) and (mine["tls_overhead_bytes"] > 0).all()


def _exported(folder: Path, *args: str | Path) -> dict[str, pd.DataFrame]:
    proc = run_cli("analyze", *args, "--no-cache", "--export", folder, "--format", "parquet")
    assert proc.returncode == 0, proc.stderr
    return {path.stem: pd.read_parquet(path) for path in sorted(folder.glob("*.parquet"))}


def test_analyze_decrypts_with_the_key_log_its_sidecar_names(recorded_tls, tmp_path: Path) -> None:
    """inspector analyze FILE finds the recording's key log through the sidecar: the same tables as
    with --keylog; a named key log gone is a warning, and the capture is analysed as encrypted."""
    pcap, _sidecar = recorded_tls
    keylog = pcap.with_suffix(".keylog")
    found = _exported(tmp_path / "found", pcap)
    given = _exported(tmp_path / "given", pcap, "--keylog", keylog)
    assert found.keys() == given.keys() and "http2" in set(found["connections"]["kind"])
    for name, table in found.items():
        pd.testing.assert_frame_equal(table, given[name], obj=name)
    # Moved away: a warning naming it, no error; the key log it names is part of the cache key.
    from inspector.parse.connection import ParserOptions
    from inspector.store.inputs import store_inputs

    folder = tmp_path / "moved"
    folder.mkdir()
    for path in (pcap, pcap.with_suffix(".json"), keylog):
        shutil.copyfile(path, folder / path.name)
    copy = folder / pcap.name
    key_with = store_inputs([copy], ParserOptions()).key
    (folder / keylog.name).write_text("# no secrets\n")
    assert store_inputs([copy], ParserOptions()).key != key_with
    (folder / keylog.name).unlink()
    proc = run_cli("analyze", copy, "--no-cache")
    assert proc.returncode == 0 and f"{folder / keylog.name}" in proc.stderr and "cannot be read" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@needs_root
def test_rest_h2_is_one_http2_connection_of_concurrent_streams(tmp_path: Path) -> None:
    out = tmp_path / "chat.pcap"
    proc = run_cli("record", "chat", "-o", out, "--messages", "12", "--variants", "rest-h2,rest-keepalive")
    assert proc.returncode == 0, proc.stderr
    sidecar = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    h2, keepalive = sidecar["variants"]
    assert h2["name"] == "rest-h2" and h2["messages_sent"] == {"client": 12, "server": 12}
    assert h2["payload_bytes"] == keepalive["payload_bytes"]  # the same work
    # h2c with prior knowledge: tshark needs telling that the port is HTTP/2.
    check_http2_variant(out, h2, "-d", f"tcp.port=={h2['server_port']},http2")


@pytest.mark.parametrize("scenario", ["feed", "idle"])
def test_rest_h2_polls_over_http2_as_tshark_sees_it(scenario: str, recorded) -> None:
    """feed and idle's rest-h2: the polls of rest-polling (GET, 200 with an update or 204), each
    on its own stream of one HTTP/2 connection; tshark counts the same requests, responses and
    DATA bytes as the clients' ledger."""
    rec = recorded(scenario)
    h2 = next(v for v in rec.sidecar["variants"] if v["name"] == "rest-h2")
    polling = next(v for v in rec.sidecar["variants"] if v["name"] == "rest-polling")
    assert h2["payload_bytes"] == polling["payload_bytes"]  # the same updates
    check_http2_variant(rec.pcap, h2, "-d", f"tcp.port=={h2['server_port']},http2", method="GET", statuses=("200", "204"))
    _conns, http, _ws, _frames = variant_tables(rec, h2)
    requests = http[http["direction"] == "client"]
    assert requests["stream_id"].is_unique and set(requests["target"].str.split("?").str[0]) == {"/feed/next"}


def test_rest_h2_is_optional_in_every_scenario() -> None:
    """rest-h2 runs only when --variants names it (the bundled captures name it), in every scenario."""
    from inspector.workloads.scenarios import SCENARIOS

    for scenario in SCENARIOS.values():
        assert "rest-h2" not in [v.name for v in scenario.check_variants(None)], scenario.name
        assert [v.name for v in scenario.check_variants(["rest-h2", "ws"])] == ["rest-h2", "ws"]
