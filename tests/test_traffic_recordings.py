"""Check that every traffic.py scenario records what its `expected` says.

tshark is the black-box oracle here: nothing of the inspector is used.
Needs root (tcpdump) plus tcpdump, tshark and capinfos on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from typing import Any

import pytest

from tests import traffic
from tests.traffic import Recording

pytestmark = [
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in ("tcpdump", "tshark", "capinfos")),
        reason="needs tcpdump, tshark and capinfos",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="tcpdump needs root"),
]

REST = ["rest_keepalive", "rest_per_request", "rest_chunked", "rest_pipelined", "any_interface"]
WS = ["ws_plain", "ws_deflate", "ws_close_codes", "any_interface"]
ENCAP = {1: "ether", 113: "linux-sll", 276: "linux-sll2"}


@pytest.fixture(scope="module")
def recordings() -> dict[str, Recording]:
    return {}


@pytest.fixture
def rec(request: pytest.FixtureRequest, recordings: dict[str, Recording],
        tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """Each scenario is recorded once per module run, into its own tmp dir."""
    name = request.param
    if name not in recordings:
        recordings[name] = traffic.SCENARIOS[name](tmp_path_factory.mktemp(name))
    return recordings[name]


def tshark(rec: Recording, *args: str) -> str:
    cmd = ["tshark", "-r", str(rec.path), "-n", *rec.tshark_decode_as(), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def field_rows(rec: Recording, display_filter: str, *fields: str) -> list[list[str]]:
    args = ["-Y", display_filter, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        args += ["-e", f]
    out = tshark(rec, *args)
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def server_ports(rec: Recording) -> set[int]:
    return set(rec.server_ports)


# --- every scenario ------------------------------------------------------------


@pytest.mark.parametrize("rec", list(traffic.SCENARIOS), indirect=True)
def test_file_small_readable_and_link_type(rec: Recording) -> None:
    exp = rec.expected
    assert rec.path.stat().st_size < 1_000_000
    out = subprocess.run(["capinfos", "-T", "-c", "-E", str(rec.path)],
                         capture_output=True, text=True, check=True).stdout
    _name, encap, packets = out.splitlines()[1].split("\t")
    assert encap == ENCAP[exp["dlt"]]
    assert int(packets) == exp["captured_packets"] > 0
    if exp["interface"] == "any":
        assert exp["link_type"] in ("LINUX_SLL", "LINUX_SLL2") and exp["dlt"] in (113, 276)
    else:
        assert (exp["link_type"], exp["dlt"]) == ("EN10MB", 1)
    # Only the scenario's own ports, only loopback.
    for src, dst, sport, dport in field_rows(rec, "ip", "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport"):
        assert src == dst == "127.0.0.1"
        assert {int(sport), int(dport)} & server_ports(rec)


@pytest.mark.parametrize("rec", list(traffic.SCENARIOS), indirect=True)
def test_tcp_connections_open_and_close_cleanly(rec: Recording) -> None:
    exp = rec.expected
    syns = field_rows(rec, "tcp.flags.syn==1 && tcp.flags.ack==0", "tcp.srcport", "tcp.dstport")
    assert len(syns) == exp["tcp_connections"]
    assert sorted(int(s) for s, _ in syns) == exp["client_ports"]
    fins: dict[str, set[str]] = defaultdict(set)
    for stream, sport in field_rows(rec, "tcp.flags.fin==1", "tcp.stream", "tcp.srcport"):
        fins[stream].add(sport)
    assert len(fins) == exp["tcp_connections"]
    assert all(len(sides) == 2 for sides in fins.values()), fins  # FIN both ways
    assert field_rows(rec, "tcp.flags.reset==1", "frame.number") == []


@pytest.mark.parametrize("rec", list(traffic.SCENARIOS), indirect=True)
def test_http_request_methods(rec: Recording) -> None:
    exp = rec.expected
    got: list[tuple[str, str]] = []
    for methods, uris in field_rows(rec, "http.request", "http.request.method", "http.request.uri"):
        got += zip(methods.split("|"), uris.split("|"))
    assert len(got) == exp["http_requests"]
    assert dict(Counter(m for m, _ in got)) == exp["http_methods"]
    handshakes = [("GET", "/")] * len(exp["ws_connections"])
    want = [(r["method"], r["path"]) for r in exp["requests"]] + handshakes
    assert got == want


@pytest.mark.parametrize("rec", list(traffic.SCENARIOS), indirect=True)
def test_http_response_statuses(rec: Recording) -> None:
    exp = rec.expected
    if exp["scenario"] == "rest_pipelined":
        # tshark remembers only the last request method of a conversation, so
        # it reads a pipelined HEAD response as having a body and swallows
        # what follows.  Count the status lines in the raw server stream.
        codes = [int(c) for c in re.findall(rb"HTTP/1\.1 (\d{3}) ", server_stream_bytes(rec))]
    else:
        codes = [int(c) for (row,) in field_rows(rec, "http.response", "http.response.code")
                 for c in row.split("|")]
    assert dict(Counter(codes)) == exp["http_statuses"]
    want = [r["status"] for r in exp["requests"]] + [101] * len(exp["ws_connections"])
    assert codes == want


# --- REST specifics --------------------------------------------------------------


def server_stream_bytes(rec: Recording, stream: int = 0) -> bytes:
    """The server->client bytes of one TCP stream (tshark follow, raw)."""
    out = tshark(rec, "-q", "-z", f"follow,tcp,raw,{stream}")
    body = out.split("=" * 67)[1]
    data = b""
    for line in body.splitlines()[5:]:  # skip Follow/Filter/Node lines
        if line.startswith("\t"):  # second node = the server
            data += bytes.fromhex(line.strip())
    return data


@pytest.mark.parametrize("rec", ["rest_pipelined"], indirect=True)
def test_pipelining(rec: Recording) -> None:
    exp = rec.expected
    # All requests travel in ONE client segment.
    rows = field_rows(rec, "http.request", "frame.number", "http.request.method", "tcp.len")
    assert len(rows) == 1
    _frame, methods, tcp_len = rows[0]
    assert len(methods.split("|")) == exp["pipelined_requests"]
    assert int(tcp_len) == exp["pipelined_bytes"]
    # Responses: see test_http_response_statuses.


@pytest.mark.parametrize("rec", ["rest_chunked"], indirect=True)
def test_chunked_bodies(rec: Recording) -> None:
    exp = rec.expected
    port = exp["server_ports"]["http"]
    by_dir: dict[str, list[list[int]]] = {"request": [], "response": []}
    for sport, sizes in field_rows(rec, "http.chunk_size", "tcp.srcport", "http.chunk_size"):
        kind = "response" if int(sport) == port else "request"
        by_dir[kind].append([int(x) for x in sizes.split("|")])
    # tshark lists the closing zero-size chunk too.
    assert by_dir["response"] == [s + [0] for s in exp["response_chunk_sizes"]]
    assert by_dir["request"] == [s + [0] for s in exp["request_chunk_sizes"]]
    assert len(by_dir["response"]) == exp["chunked_responses"]
    assert len(by_dir["request"]) == exp["chunked_requests"]
    te = [row for row in field_rows(rec, "http.transfer_encoding", "http.transfer_encoding")]
    assert len(te) == exp["chunked_responses"] + exp["chunked_requests"]


# --- WebSocket specifics -------------------------------------------------------


def ws_frames(rec: Recording) -> dict[int, dict[str, list[dict[str, Any]]]]:
    """client port -> {"client": [frame...], "server": [...]}, from tshark PDML."""
    root = ET.fromstring(tshark(rec, "-Y", "websocket", "-T", "pdml"))
    ws_ports = set(rec.expected["server_ports"]["ws"])
    conns: dict[int, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: {"client": [], "server": []})
    for pkt in root.iter("packet"):
        tcp = {f.get("name"): f.get("show") for f in pkt.iter("field")
               if f.get("name") in ("tcp.srcport", "tcp.dstport")}
        sport, dport = int(tcp["tcp.srcport"]), int(tcp["tcp.dstport"])
        side, client_port = ("server", dport) if sport in ws_ports else ("client", sport)
        for proto in pkt.findall("proto"):
            if proto.get("name") != "websocket":
                continue
            f = {}
            for el in proto.iter("field"):
                name = el.get("name", "")
                if name.startswith("websocket.") and name not in f:
                    f[name] = el.get("show")
            length = int(f["websocket.payload_length"])
            if length == 126:
                length = int(f["websocket.payload_length_ext_16"])
            elif length == 127:
                length = int(f["websocket.payload_length_ext_64"])
            conns[client_port][side].append({
                "opcode": int(f["websocket.opcode"]),
                "fin": f["websocket.fin"] in ("1", "True"),
                "rsv1": f.get("websocket.pmc") in ("1", "True"),
                "masked": f["websocket.mask"] in ("1", "True"),
                "wire_size": length,
                "close_code": int(f["websocket.payload.close.status_code"])
                if "websocket.payload.close.status_code" in f else None,
                "close_reason": f.get("websocket.payload.close.reason", ""),
            })
    return conns


@pytest.mark.parametrize("rec", WS, indirect=True)
def test_websocket_frames(rec: Recording) -> None:
    exp = rec.expected
    got = ws_frames(rec)
    assert sorted(got) == sorted(c["client_port"] for c in exp["ws_connections"])
    counts: dict[str, Counter] = {"client": Counter(), "server": Counter()}
    names = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
    for conn in exp["ws_connections"]:
        frames = got[conn["client_port"]]
        for side in ("client", "server"):
            want = conn["frames"][side]
            have = frames[side]
            assert [(f["opcode"], f["fin"], f["rsv1"]) for f in have] == \
                   [(f["opcode"], f["fin"], f["rsv1"]) for f in want], side
            assert all(f["masked"] == (side == "client") for f in have)
            if not exp.get("compressed"):
                assert [f["wire_size"] for f in have] == [f["size"] for f in want], side
            counts[side].update(names[f["opcode"]] for f in have)
            closes = [(f["close_code"], f["close_reason"]) for f in have if f["opcode"] == 8]
            assert closes == [(conn["close"]["code"], conn["close"]["reason"])]
    for side in ("client", "server"):
        assert {k: counts[side][k] for k in exp["ws_frames"][side]} == exp["ws_frames"][side]
    assert [c["close"]["code"] for c in exp["ws_connections"]] == exp["ws_close_codes"]


@pytest.mark.parametrize("rec", ["ws_plain"], indirect=True)
def test_websocket_length_classes(rec: Recording) -> None:
    sizes = {f["wire_size"] for conn in ws_frames(rec).values() for f in conn["client"]}
    assert any(s <= 125 for s in sizes)
    assert any(126 <= s <= 65535 for s in sizes)
    assert any(s > 65535 for s in sizes)


@pytest.mark.parametrize("rec", ["ws_deflate"], indirect=True)
def test_websocket_deflate_context_takeover(rec: Recording) -> None:
    """The repeated 280-byte text shrinks on its second sending only with
    context takeover (first connection), not without (second connection)."""
    exp = rec.expected
    got = ws_frames(rec)
    assert exp["ws_connections"][0]["extensions"].startswith("permessage-deflate")
    for conn, nct in zip(exp["ws_connections"], exp["no_context_takeover"]):
        want = conn["frames"]["client"]
        have = got[conn["client_port"]]["client"]
        idx = [i for i, f in enumerate(want) if f["opcode"] == 1 and f["size"] == 280]
        assert len(idx) == 2
        first, second = (have[i]["wire_size"] for i in idx)
        assert first < 280
        assert (second == first) if nct else (second < first)
        big = [have[i]["wire_size"] for i, f in enumerate(want) if f["size"] == 70000]
        assert all(s > 65535 for s in big)  # random bytes stay 64-bit long
