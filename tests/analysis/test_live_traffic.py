"""The analysis of real loopback traffic, recorded inside the tests.

Every scenario of tests/traffic.py is recorded once per session (the
`live_traffic` fixture in conftest.py) and analysed.  The tables are checked
against ground truth from the scenario itself (`Recording.expected`: what the
clients sent and the servers saw and answered) and against tshark; never
against numbers taken from our own output.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pytest

from inspector.analysis.export import export_tables
from inspector.analysis.pipeline import Analysis, analyze_captures
from inspector.analysis.texts import PREVIEW_HEX_BYTES
from inspector.analysis.tables import BYTE_CATEGORIES
from tests import traffic
from tests import tshark_oracle as oracle
from tests.conftest import live_traffic_unavailable
from tests.traffic import HOST, Recording

SCENARIOS = list(traffic.SCENARIOS)
DATA_OPCODES = (0, 1, 2)
# Every data packet on loopback Ethernet: 14 (Ethernet) + 20 (IPv4) + >= 20 (TCP).
MIN_ETHERNET_IPV4_TCP_OVERHEAD = 14 + 20 + 20

needs_tshark = pytest.mark.skipif(not oracle.tshark_available(), reason="tshark not installed (the README's test command installs it)")


class Live(NamedTuple):
    rec: Recording
    analysis: Analysis

    @property
    def expected(self) -> dict[str, Any]:
        return self.rec.expected

    def tshark_options(self) -> dict[str, Any]:
        # Every server port decoded as HTTP (WebSocket handshakes are HTTP).
        return {"decode_as_ports": tuple(self.rec.server_ports)}


@pytest.fixture(params=SCENARIOS)
def live(request: pytest.FixtureRequest, live_traffic) -> Live:
    return Live(live_traffic.recording(request.param), live_traffic.analysis(request.param))


def _live(live_traffic, name: str) -> Live:
    return Live(live_traffic.recording(name), live_traffic.analysis(name))


def _connection_by_client_port(analysis: Analysis) -> dict[int, pd.Series]:
    connections = analysis["connections"]
    assert connections["client_port"].is_unique
    return {int(row["client_port"]): row for _, row in connections.iterrows()}


def _ws_frame_header_size(size: int, masked: bool) -> int:
    """RFC 6455 section 5.2: 2 bytes, extended length, masking key."""
    extended = 0 if size <= 125 else 2 if size <= 0xFFFF else 8
    return 2 + extended + (4 if masked else 0)


def _ledger_messages(frames: list[dict[str, Any]]) -> list[list[int]]:
    """Indexes of each data message's frames in a ledger frame list."""
    messages: list[list[int]] = []
    current: list[int] = []
    for index, frame in enumerate(frames):
        if frame["opcode"] not in DATA_OPCODES:
            continue
        current.append(index)
        if frame["fin"]:
            messages.append(current)
            current = []
    assert not current, "ledger ends inside a fragmented message"
    return messages


# --- every scenario: ground truth --------------------------------------------------


def test_connections_ports_and_kind(live: Live) -> None:
    exp = live.expected
    connections = live.analysis["connections"]
    assert len(connections) == exp["tcp_connections"]
    assert sorted(int(p) for p in connections["client_port"]) == exp["client_ports"]
    assert set(connections["client_ip"]) == set(connections["server_ip"]) == {HOST}
    ws_server_port = {c["client_port"]: c["server_port"] for c in exp["ws_connections"]}
    by_port = _connection_by_client_port(live.analysis)
    for port, row in by_port.items():
        if port in ws_server_port:
            assert (row["server_port"], row["kind"]) == (ws_server_port[port], "websocket"), port
        else:
            assert (row["server_port"], row["kind"]) == (exp["server_ports"]["http"], "rest"), port
        assert row["handshake_seen"], port
        assert row["gap_bytes"] == 0, port


def test_capture_row_and_link_type(live: Live) -> None:
    exp = live.expected
    captures = live.analysis["captures"]
    assert len(captures) == 1
    row = captures.iloc[0]
    assert row["format"] == "pcap"
    assert row["link_types"] == str(exp["dlt"])
    if exp["interface"] == "any":
        assert exp["dlt"] == 276, "tcpdump -i any writes Linux cooked SLL2"
    else:
        assert exp["dlt"] == 1
    # tcpdump's own "N packets captured"; the capture filter is TCP only.
    assert row["packets"] == row["tcp_packets"] == exp["captured_packets"]
    assert row["non_tcp_packets"] == 0
    assert row["connections"] == exp["tcp_connections"]
    assert not row["truncated"] and row["warnings"] == ""


def test_http_methods_and_statuses(live: Live) -> None:
    exp = live.expected
    http = live.analysis["http_messages"]
    assert Counter(http["method"].dropna()) == Counter(exp["http_methods"])
    assert Counter(int(s) for s in http["status"].dropna()) == Counter({int(k): v for k, v in exp["http_statuses"].items()})
    assert http["complete"].all()
    assert (http["missing_bytes"] == 0).all()
    connections = live.analysis["connections"]
    assert connections["http_requests"].sum() == connections["http_responses"].sum() == exp["http_requests"]


def _exchanges(analysis: Analysis, conn_id: int) -> list[tuple[str, str, int]]:
    """(method, target, status) per exchange_id of a connection, in order."""
    http = analysis["http_messages"]
    http = http[http["conn_id"] == conn_id]
    requests = http[http["direction"] == "client"].set_index("exchange_id")
    responses = http[http["direction"] == "server"].set_index("exchange_id")
    assert requests.index.is_unique and responses.index.is_unique
    assert sorted(requests.index) == sorted(responses.index) == list(range(len(requests)))
    return [(requests.at[i, "method"], requests.at[i, "target"], int(responses.at[i, "status"])) for i in range(len(requests))]


def test_requests_paired_in_order_per_connection(live: Live) -> None:
    """exchange_id i pairs the i-th request with the i-th response (FIFO),
    checked against what the server logged, connection by connection."""
    exp = live.expected
    want: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
    for r in exp["requests"]:
        want[r["client_port"]].append((r["method"], r["path"], r["status"]))
    for c in exp["ws_connections"]:
        want[c["client_port"]].append(("GET", "/", 101))
    by_port = _connection_by_client_port(live.analysis)
    assert sorted(by_port) == sorted(want)
    for port, row in by_port.items():
        assert _exchanges(live.analysis, int(row["conn_id"])) == want[port], port


def test_websocket_frames_per_connection(live: Live) -> None:
    """Opcode, FIN, RSV1 and mask of every frame in send order; payload length
    where the wire length is the application length (uncompressed data
    frames, control frames)."""
    exp = live.expected
    frames = live.analysis["ws_frames"]
    by_port = _connection_by_client_port(live.analysis)
    for conn in exp["ws_connections"]:
        conn_id = by_port[conn["client_port"]]["conn_id"]
        for side in ("client", "server"):
            ours = frames[(frames["conn_id"] == conn_id) & (frames["direction"] == side)].sort_values("offset")
            want = conn["frames"][side]
            assert list(zip(ours["opcode"], ours["fin"], ours["rsv1"])) == [(f["opcode"], f["fin"], f["rsv1"]) for f in want], side
            assert (ours["masked"] == (side == "client")).all(), side
            assert not ours["rsv2"].any() and not ours["rsv3"].any()
            assert (ours["missing_bytes"] == 0).all()
            for got, f in zip(ours.itertuples(), want):
                if f["opcode"] >= 8 or not conn["extensions"]:
                    assert got.payload_length == f["size"], (side, f)
                header = _ws_frame_header_size(got.payload_length, side == "client")
                assert got.header_bytes == header, (side, f)
    for side in ("client", "server"):
        ours = frames[frames["direction"] == side]
        counts = Counter(ours["opcode_name"])
        assert {name: counts[name] for name in exp["ws_frames"][side]} == exp["ws_frames"][side], side


def test_websocket_messages_per_connection(live: Live) -> None:
    """Data messages per direction, their opcodes, frame counts and
    uncompressed sizes (permessage-deflate: payload_bytes, not the wire)."""
    exp = live.expected
    messages = live.analysis["ws_messages"]
    frames = live.analysis["ws_frames"]
    by_port = _connection_by_client_port(live.analysis)
    for conn in exp["ws_connections"]:
        row = by_port[conn["client_port"]]
        conn_id = row["conn_id"]
        assert row["ws_messages"] == sum(conn["messages"].values())
        for side in ("client", "server"):
            ours = messages[(messages["conn_id"] == conn_id) & (messages["direction"] == side)].sort_values("message_id")
            ledger = conn["frames"][side]
            want = _ledger_messages(ledger)
            assert len(ours) == conn["messages"][side] == len(want), side
            assert list(ours["opcode"]) == [ledger[m[0]]["opcode"] for m in want], side
            assert list(ours["frames"]) == [len(m) for m in want], side
            assert [int(n) for n in ours["payload_bytes"]] == [sum(ledger[i]["size"] for i in m) for m in want], side
            assert list(ours["compressed"]) == [bool(exp.get("compressed"))] * len(want), side
            assert ours["complete"].all()
            # Text messages of these scenarios are valid UTF-8; binary has no verdict.
            for message in ours.itertuples():
                if message.opcode == 1:
                    assert not pd.isna(message.text_valid) and message.text_valid, message
                else:
                    assert pd.isna(message.text_valid), message
            # Every data frame belongs to its message, control frames to none.
            side_frames = frames[(frames["conn_id"] == conn_id) & (frames["direction"] == side)]
            data = side_frames[side_frames["opcode"].isin(DATA_OPCODES)]
            assert Counter(int(m) for m in data["message_id"]) == Counter(dict(zip(ours["message_id"], ours["frames"])))
            assert side_frames[~side_frames["opcode"].isin(DATA_OPCODES)]["message_id"].isna().all()
    for side in ("client", "server"):
        assert int((messages["direction"] == side).sum()) == exp["ws_messages"][side]


def test_websocket_close_codes(live: Live) -> None:
    exp = live.expected
    frames = live.analysis["ws_frames"]
    by_port = _connection_by_client_port(live.analysis)
    codes = []
    for conn in exp["ws_connections"]:
        conn_id = by_port[conn["client_port"]]["conn_id"]
        closes = frames[(frames["conn_id"] == conn_id) & (frames["opcode"] == 8)].sort_values("ts")
        want = (conn["close"]["code"], conn["close"]["reason"])
        # Both sides send a Close with the same code and reason; the initiator first.
        assert list(closes["direction"]) == [conn["close"]["initiator"], "server" if conn["close"]["initiator"] == "client" else "client"]
        assert [(int(c), r) for c, r in zip(closes["close_code"], closes["close_reason"])] == [want, want]
        codes.append(want[0])
        assert frames[(frames["conn_id"] == conn_id) & (frames["opcode"] != 8)]["close_code"].isna().all()
    assert codes == exp["ws_close_codes"]


def test_websocket_handshake_columns(live: Live) -> None:
    exp = live.expected
    by_port = _connection_by_client_port(live.analysis)
    ws_ports = set()
    for conn in exp["ws_connections"]:
        row = by_port[conn["client_port"]]
        ws_ports.add(conn["client_port"])
        # The client library checked Sec-WebSocket-Accept, or it would not have connected.
        assert row["ws_accept_valid"] is True
        assert row["ws_deflate"] == bool(conn["extensions"])
        assert row["ws_extensions"] == (conn["extensions"] or "")
        assert row["ws_subprotocol"] == ""
    for port, row in by_port.items():
        if port not in ws_ports:
            assert row["ws_accept_valid"] is pd.NA and not row["ws_deflate"] and row["ws_messages"] == 0


def test_no_findings_on_conformant_traffic(live: Live) -> None:
    """aiohttp and websockets speak HTTP/1.1 and RFC 6455 correctly."""
    findings = live.analysis["findings"]
    assert findings.empty, findings[["rule", "detail"]].to_string()


# --- REST specifics ---------------------------------------------------------------


def test_pipelined_responses_paired_fifo(live_traffic) -> None:
    live = _live(live_traffic, "rest_pipelined")
    exp = live.expected
    connections = live.analysis["connections"]
    assert len(connections) == 1
    want = [(r["method"], r["path"], r["status"]) for r in exp["requests"]]
    assert len(want) == exp["pipelined_requests"] == 4
    assert _exchanges(live.analysis, int(connections.iloc[0]["conn_id"])) == want
    http = live.analysis["http_messages"]
    # All requests were sent in one send(): their bytes add up to it.
    requests = http[http["direction"] == "client"]
    assert int((requests["header_bytes"] + requests["body_wire_bytes"]).sum()) == exp["pipelined_bytes"]
    # The HEAD response (exchange 1) has no body although it has a Content-Length.
    head = http[(http["direction"] == "server") & (http["exchange_id"] == 1)].iloc[0]
    assert (head["body_bytes"], head["body_wire_bytes"], head["complete"]) == (0, 0, True)


def _single_connection_exchange_rows(analysis: Analysis, exchange_id: int, conn_id: int) -> tuple[pd.Series, pd.Series]:
    http = analysis["http_messages"]
    rows = http[(http["conn_id"] == conn_id) & (http["exchange_id"] == exchange_id)]
    request = rows[rows["direction"] == "client"].iloc[0]
    response = rows[rows["direction"] == "server"].iloc[0]
    return request, response


def test_chunked_bodies(live_traffic) -> None:
    """Chunk framing counted apart from the body; body = the chunks' data."""
    live = _live(live_traffic, "rest_chunked")
    exp = live.expected
    conn_id = int(live.analysis["connections"].iloc[0]["conn_id"])
    response_sizes = iter(exp["response_chunk_sizes"])
    request_sizes = iter(exp["request_chunk_sizes"])

    def framing(sizes: list[int]) -> int:
        # RFC 9112 7.1: "<hex size>CRLF <data> CRLF" per chunk, then "0CRLF CRLF".
        return sum(len(f"{s:x}") + 4 for s in sizes) + 5

    chunked_responses = chunked_requests = 0
    for exchange_id, r in enumerate(exp["requests"]):
        request, response = _single_connection_exchange_rows(live.analysis, exchange_id, conn_id)
        for row, chunked, sizes_iter in ((response, r["response_chunked"], response_sizes), (request, r["request_chunked"], request_sizes)):
            if chunked:
                sizes = next(sizes_iter)
                assert row["chunk_framing_bytes"] > 0
                assert row["body_bytes"] == sum(sizes)
                assert row["body_wire_bytes"] - row["chunk_framing_bytes"] == sum(sizes)
                assert row["chunk_framing_bytes"] == framing(sizes)
            else:
                assert row["chunk_framing_bytes"] == 0
        chunked_responses += r["response_chunked"]
        chunked_requests += r["request_chunked"]
    assert (chunked_responses, chunked_requests) == (exp["chunked_responses"], exp["chunked_requests"])
    connections = live.analysis["connections"]
    assert connections["http_chunk_framing_bytes"].sum() == sum(framing(s) for s in exp["response_chunk_sizes"] + exp["request_chunk_sizes"])


@pytest.mark.parametrize("name", ["rest_keepalive", "rest_per_request"])
def test_bodyless_responses(live_traffic, name: str) -> None:
    """HEAD responses, 204 and 304 have no body, whatever their headers say,
    and the parser carries on with the next message."""
    live = _live(live_traffic, name)
    http = live.analysis["http_messages"]
    by_port = _connection_by_client_port(live.analysis)
    seen: Counter = Counter()
    position: Counter = Counter()
    for r in live.expected["requests"]:
        conn_id = int(by_port[r["client_port"]]["conn_id"])
        exchange_id = position[conn_id]
        position[conn_id] += 1
        request, response = _single_connection_exchange_rows(live.analysis, exchange_id, conn_id)
        assert (request["method"], request["target"], int(response["status"])) == (r["method"], r["path"], r["status"])
        if r["method"] == "HEAD" or r["status"] in (204, 304):
            assert (response["body_bytes"], response["body_wire_bytes"], response["chunk_framing_bytes"]) == (0, 0, 0), r
            assert response["complete"]
            seen["HEAD" if r["method"] == "HEAD" else r["status"]] += 1
    assert set(seen) == {"HEAD", 204, 304}
    assert len(http) == 2 * len(live.expected["requests"])


# --- byte reconciliation ------------------------------------------------------------


def test_categories_sum_to_wire_bytes(live: Live) -> None:
    connections = live.analysis["connections"]
    categories = connections[list(BYTE_CATEGORIES)]
    assert (categories >= 0).all().all()
    assert (categories.sum(axis=1) == connections["wire_bytes"]).all()
    # Clean loopback traffic: nothing retransmitted, nothing left unparsed.
    assert (connections["retransmitted_bytes"] == 0).all()
    assert (connections["unparsed_bytes"] == 0).all()
    assert connections["wire_bytes"].sum() == live.analysis["captures"]["wire_bytes"].sum()


def test_message_costs_sum_to_wire_bytes(live: Live) -> None:
    costs = live.analysis["message_costs"]
    assert (costs[["app_header_bytes", "wire_payload_bytes", "transport_bytes", "ack_bytes", "wire_bytes"]] >= 0).all().all()
    for row in live.analysis["connections"].itertuples():
        mine = costs[costs["conn_id"] == row.conn_id]
        assert mine["wire_bytes"].sum() == pytest.approx(row.wire_bytes, rel=1e-6), row.conn_id
        parts = mine["app_header_bytes"] + mine["wire_payload_bytes"] + mine["transport_bytes"] + mine["ack_bytes"]
        assert (parts - mine["wire_bytes"]).abs().max() < 1e-6 * row.wire_bytes


def test_one_cost_row_per_message(live: Live) -> None:
    exp = live.expected
    costs = live.analysis["message_costs"]
    exchanges = costs[costs["item"] == "exchange"]
    messages = costs[costs["item"] == "ws_message"]
    assert len(exchanges) == len(exp["requests"])  # WebSocket upgrades are setup
    assert len(messages) == sum(exp["ws_messages"].values())
    ws_ports = {c["client_port"] for c in exp["ws_connections"]}
    kinds = {int(r.conn_id): ("websocket" if r.client_port in ws_ports else "rest") for r in live.analysis["connections"].itertuples()}
    assert all(kinds[int(r.conn_id)] == r.kind for r in costs.itertuples())
    for kind, group in live.analysis["overhead"].groupby("kind"):
        want = len(exchanges[exchanges["kind"] == kind]) + len(messages[messages["kind"] == kind])
        assert int(group["messages"].iloc[0]) == want


# --- tshark cross-checks --------------------------------------------------------------


@needs_tshark
def test_tshark_connection_count(live: Live) -> None:
    assert len(live.analysis["connections"]) == oracle.tcp_connections(live.rec.path, **live.tshark_options())


@needs_tshark
def test_tshark_bytes_per_connection(live: Live) -> None:
    ours = Counter()
    for row in live.analysis["connections"].itertuples():
        ours[tuple(sorted([(row.client_ip, row.client_port), (row.server_ip, row.server_port)]))] += row.wire_bytes
    theirs = Counter()
    for endpoints, wire, _packets in oracle.tcp_frame_bytes_by_stream(live.rec.path, **live.tshark_options()).values():
        theirs[tuple(sorted(tuple(e) for e in endpoints))] += wire
    assert ours == theirs
    assert live.analysis["captures"]["wire_bytes"].sum() == oracle.total_frame_bytes(live.rec.path)


@needs_tshark
def test_tshark_http_methods_and_statuses(live: Live) -> None:
    http = live.analysis["http_messages"]
    methods = Counter(http["method"].dropna())
    statuses = Counter(int(s) for s in http["status"].dropna())
    assert methods == oracle.http_request_methods(live.rec.path, **live.tshark_options())
    theirs = oracle.http_response_codes(live.rec.path, **live.tshark_options())
    if live.rec.name == "rest_pipelined":
        # tshark is wrong here and we are right: test_tshark_wrong_on_pipelined_head.
        assert statuses != theirs
    else:
        assert statuses == theirs


@needs_tshark
def test_tshark_wrong_on_pipelined_head(live_traffic) -> None:
    """tshark keeps only the last request method of a conversation, so it
    reads the pipelined HEAD response as having a body and swallows the
    responses after it.  We count what the server really sent."""
    live = _live(live_traffic, "rest_pipelined")
    want = Counter({int(k): v for k, v in live.expected["http_statuses"].items()})
    theirs = oracle.http_response_codes(live.rec.path, **live.tshark_options())
    ours = Counter(int(s) for s in live.analysis["http_messages"]["status"].dropna())
    assert theirs != want, "tshark got the pipelined responses right: fold this case into the generic check"
    assert sum(theirs.values()) < sum(want.values())
    assert ours == want


@needs_tshark
def test_tshark_websocket_frames_multiset(live: Live) -> None:
    analysis = live.analysis
    frames = analysis["ws_frames"]
    ours = Counter((r.direction, r.opcode, r.fin, r.payload_length) for r in frames.itertuples())
    clients = {(r.client_ip, r.client_port) for r in analysis["connections"].itertuples()}
    theirs = oracle.websocket_frames_by_direction(live.rec.path, clients, **live.tshark_options())
    assert ours == Counter({(d, int(o), bool(f), int(n)): c for (d, o, f, n), c in theirs.items()})
    assert len(frames) == sum(sum(side.values()) for side in live.expected["ws_frames"].values())


@needs_tshark
def test_tshark_header_bytes_per_connection(live: Live) -> None:
    """Link, IP and TCP header bytes of packets with payload, whole frames of
    packets without, and payload bytes, packet by packet from tshark."""
    packets = _tshark_packets(live.rec.path)
    by_stream: dict[int, list[Packet]] = defaultdict(list)
    for p in packets:
        by_stream[p.stream].append(p)
    by_port = _connection_by_client_port(live.analysis)
    assert len(by_stream) == len(by_port)
    app_categories = [c for c in BYTE_CATEGORIES if c.startswith(("http_", "ws_"))]
    for stream, mine in by_stream.items():
        client_port = next(p.src_port for p in mine if p.syn)  # the SYN (and the SYN-ACK's dst) is the client's
        assert all(client_port in (p.src_port, p.dst_port) for p in mine)
        row = by_port[client_port]
        data = [p for p in mine if p.length > 0]
        control = [p for p in mine if p.length == 0]
        assert row["packets"] == len(mine), stream
        assert row["link_header_bytes"] == sum(p.frame_len - p.ip_len for p in data), stream
        assert row["ip_header_bytes"] == sum(p.ip_header for p in data), stream
        assert row["tcp_header_bytes"] == sum(p.tcp_header for p in data), stream
        assert row["tcp_control_bytes"] == sum(p.frame_len for p in control), stream
        assert sum(row[c] for c in app_categories) == sum(p.length for p in data), stream
        assert row["start_ts"] == pytest.approx(min(p.time for p in mine), abs=1e-6)
        assert row["end_ts"] == pytest.approx(max(p.time for p in mine), abs=1e-6)
        # Setup holds at least the SYNs, teardown at least the FINs without payload.
        costs = live.analysis["message_costs"]
        costs = costs[costs["conn_id"] == row["conn_id"]].set_index("item")
        assert costs.at["setup", "wire_bytes"] >= sum(p.frame_len for p in mine if p.syn)
        assert costs.at["teardown", "wire_bytes"] >= sum(p.frame_len for p in control if p.fin)
        assert row["setup_bytes"] == pytest.approx(costs.at["setup", "wire_bytes"])
        assert row["teardown_bytes"] == pytest.approx(costs.at["teardown", "wire_bytes"])
    link = {1: 14, 276: 20}[live.expected["dlt"]]  # Ethernet, Linux cooked SLL2
    assert {p.frame_len - p.ip_len for p in packets} == {link}


# --- per-message overhead --------------------------------------------------------------


class Packet(NamedTuple):
    frame: int
    stream: int
    src_port: int
    dst_port: int
    offset: int  # stream offset of the first payload byte (relative seq - 1)
    length: int  # tcp.len
    frame_len: int
    ip_len: int
    ip_header: int
    tcp_header: int
    syn: bool
    fin: bool
    time: float


def _tshark_packets(path: Path) -> list[Packet]:
    """Every TCP packet of an IPv4 capture, as tshark sees it."""
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=tempfile.mkdtemp(prefix="tshark-conf-"))
    fields = ["frame.number", "tcp.stream", "tcp.srcport", "tcp.dstport", "tcp.seq", "tcp.len", "frame.len",
              "ip.len", "ip.hdr_len", "tcp.hdr_len", "tcp.flags.syn", "tcp.flags.fin", "frame.time_epoch"]
    cmd = ["tshark", "-r", str(path), "-n", "-o", "tcp.relative_sequence_numbers:TRUE", "-Y", "tcp", "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    packets = []
    for line in out.splitlines():
        *numbers, syn, fin, time = line.split("\t")
        frame, stream, sport, dport, seq, length, frame_len, ip_len, ip_header, tcp_header = (int(x) for x in numbers)
        flag = lambda v: v.strip().lower() in ("1", "true")  # noqa: E731 (tshark 4.0: 1/0, later True/False)
        packets.append(Packet(frame, stream, sport, dport, seq - 1, length, frame_len, ip_len, ip_header, tcp_header, flag(syn), flag(fin), float(time)))
    return packets


def _data_packets(path: Path) -> list[Packet]:
    return [p for p in _tshark_packets(path) if p.length > 0]


def _overlap(packet: Packet, ranges: list[tuple[int, int]]) -> int:
    return sum(max(0, min(packet.offset + packet.length, end) - max(packet.offset, start)) for start, end in ranges)


def _min_transport(packets: list[Packet], ranges: list[tuple[int, int]]) -> float:
    """Lower bound of the header bytes a message must carry: each packet's
    >= 54 header bytes, split in proportion to the bytes it carried of it."""
    return sum(MIN_ETHERNET_IPV4_TCP_OVERHEAD * _overlap(p, ranges) / p.length for p in packets)


@needs_tshark
def test_rest_keepalive_exchange_costs(live_traffic) -> None:
    """The client waits for each response before the next request, so each
    data packet belongs to exactly one exchange: exchange i is the i-th run
    of client packets and the run of server packets after it."""
    live = _live(live_traffic, "rest_keepalive")
    (conn,) = live.analysis["connections"].itertuples()
    turns: list[list[Packet]] = []
    previous = None
    for packet in _data_packets(live.rec.path):
        side = "client" if packet.src_port == conn.client_port else "server"
        if side == "client" and previous != "client":
            turns.append([])
        turns[-1].append(packet)
        previous = side
    assert len(turns) == len(live.expected["requests"])

    costs = live.analysis["message_costs"]
    exchanges = costs[costs["item"] == "exchange"].set_index("item_index")
    assert sorted(exchanges.index) == list(range(len(turns)))
    for exchange_id, packets in enumerate(turns):
        cost = exchanges.loc[exchange_id]
        request, response = _single_connection_exchange_rows(live.analysis, exchange_id, conn.conn_id)
        app = cost["app_header_bytes"] + cost["wire_payload_bytes"]
        assert app == sum(p.length for p in packets), exchange_id
        assert app == sum(r["header_bytes"] + r["body_wire_bytes"] for r in (request, response)), exchange_id
        assert cost["app_header_bytes"] == request["header_bytes"] + response["header_bytes"]
        assert cost["transport_bytes"] >= len(packets) * MIN_ETHERNET_IPV4_TCP_OVERHEAD, exchange_id


def _ws_layout(ledger_frames: list[dict[str, Any]], masked: bool, start: int) -> list[tuple[int, int, int]]:
    """(start, end, header size) of each ledger frame in the stream."""
    layout = []
    for frame in ledger_frames:
        header = _ws_frame_header_size(frame["size"], masked)
        layout.append((start, start + header + frame["size"], header))
        start += header + frame["size"]
    return layout


@needs_tshark
def test_ws_plain_message_costs(live_traffic) -> None:
    """Frame positions follow from the ledger (sizes in send order, RFC 6455
    header sizes), packet positions from tshark; each message's cost row must
    hold its frames' bytes and its share of the packets that carried them."""
    live = _live(live_traffic, "ws_plain")
    (conn,) = live.expected["ws_connections"]
    row = _connection_by_client_port(live.analysis)[conn["client_port"]]
    conn_id = row["conn_id"]
    packets = _data_packets(live.rec.path)
    costs = live.analysis["message_costs"]
    costs = costs[costs["conn_id"] == conn_id]
    frames = live.analysis["ws_frames"]
    handshake_bytes = 0
    setup_ranges: dict[str, list[tuple[int, int]]] = {}
    for side in ("client", "server"):
        side_packets = [p for p in packets if (p.src_port == conn["client_port"]) == (side == "client")]
        stream_length = sum(p.length for p in side_packets)
        ledger = conn["frames"][side]
        ws_bytes = sum(_ws_frame_header_size(f["size"], side == "client") + f["size"] for f in ledger)
        handshake = stream_length - ws_bytes
        assert handshake > 0, side
        handshake_bytes += handshake
        setup_ranges[side] = [(0, handshake)]
        layout = _ws_layout(ledger, side == "client", handshake)
        rows = costs[(costs["item"] == "ws_message") & (costs["direction"] == side)].sort_values("item_index")
        want = _ledger_messages(ledger)
        assert len(rows) == len(want), side
        for cost, message in zip(rows.itertuples(), want):
            header = sum(layout[i][2] for i in message)
            payload = sum(ledger[i]["size"] for i in message)
            assert (cost.app_header_bytes, cost.wire_payload_bytes, cost.app_payload_bytes) == (header, payload, payload), (side, cost.item_index)
            own = frames[(frames["conn_id"] == conn_id) & (frames["message_id"] == cost.item_index)]
            assert (own["header_bytes"].sum(), own["payload_length"].sum()) == (header, payload), (side, cost.item_index)
            ranges = [layout[i][:2] for i in message]
            carrying = [p for p in side_packets if _overlap(p, ranges)]
            assert carrying, (side, cost.item_index)
            assert cost.transport_bytes >= _min_transport(side_packets, ranges) - 1e-6, (side, cost.item_index)
    (setup,) = costs[costs["item"] == "setup"].itertuples()
    assert setup.app_header_bytes >= handshake_bytes
    http = live.analysis["http_messages"]
    upgrade = http[http["conn_id"] == conn_id]
    assert setup.app_header_bytes >= upgrade["header_bytes"].sum() == handshake_bytes
    min_setup = sum(_min_transport([p for p in packets if (p.src_port == conn["client_port"]) == (side == "client")], setup_ranges[side]) for side in setup_ranges)
    assert setup.transport_bytes >= min_setup - 1e-6


@needs_tshark
def test_ws_plain_timestamps_within_carrying_packets(live_traffic) -> None:
    """A frame's or message's ts lies between the capture times of the
    packets carrying its first and its last byte."""
    live = _live(live_traffic, "ws_plain")
    (conn,) = live.expected["ws_connections"]
    conn_id = _connection_by_client_port(live.analysis)[conn["client_port"]]["conn_id"]
    packets = _data_packets(live.rec.path)
    frames = live.analysis["ws_frames"]
    messages = live.analysis["ws_messages"]
    for side in ("client", "server"):
        side_packets = [p for p in packets if (p.src_port == conn["client_port"]) == (side == "client")]
        ledger = conn["frames"][side]
        ws_bytes = sum(_ws_frame_header_size(f["size"], side == "client") + f["size"] for f in ledger)
        layout = _ws_layout(ledger, side == "client", sum(p.length for p in side_packets) - ws_bytes)

        def window(start: int, end: int) -> tuple[float, float]:
            carrying = [p.time for p in side_packets if p.offset < end and p.offset + p.length > start]
            return min(carrying) - 1e-6, max(carrying) + 1e-6

        ours = frames[(frames["conn_id"] == conn_id) & (frames["direction"] == side)].sort_values("offset")
        assert len(ours) == len(layout)
        for frame, (start, end, _header) in zip(ours.itertuples(), layout):
            low, high = window(start, end)
            assert low <= frame.ts <= high, (side, frame.frame_id)
        mine = messages[(messages["conn_id"] == conn_id) & (messages["direction"] == side)].sort_values("message_id")
        for message, indexes in zip(mine.itertuples(), _ledger_messages(ledger)):
            low, high = window(layout[indexes[0]][0], layout[indexes[-1]][1])
            assert low <= message.ts <= message.end_ts <= high, (side, message.message_id)


# --- hostile payloads -------------------------------------------------------------------

HOSTILE_TEXT = "<img src=x onerror=alert(1)>"
ALL_BYTES = bytes(range(256))
CSV_HOSTILE_TEXT = '=cmd|\' /C calc\'!A0,"quoted"\r\nsecond line\x00'


def _record_ws_echoes(out_dir: Path, messages: list[str | bytes]) -> tuple[Path, int]:
    """Record one uncompressed WebSocket connection that sends `messages`
    (each echoed by traffic.WsServer) and closes; returns (pcap, client port)."""
    path = out_dir / "ws_echoes.pcap"
    with traffic.servers(rest=False, ws=[{"compression": None}]) as (lt, _, (wss,)):
        client_port = 0

        async def client() -> None:
            nonlocal client_port
            from websockets.asyncio.client import connect

            async with connect(f"ws://{HOST}:{wss.port}/", compression=None, ping_interval=None) as ws:
                client_port = ws.local_address[1]
                for message in messages:
                    await ws.send(message)
                    assert await ws.recv() == message
                await ws.close(1000, "done")

        with traffic.tcpdump_capture(path, [wss.port]):
            lt.run(client())
    return path, client_port


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, Analysis]:
    reason = live_traffic_unavailable()
    if reason:
        pytest.skip(reason)
    path, port = _record_ws_echoes(tmp_path_factory.mktemp("hostile"), [HOSTILE_TEXT, ALL_BYTES, CSV_HOSTILE_TEXT])
    return path, port, analyze_captures([path])


def test_hostile_payloads_kept_verbatim(hostile) -> None:
    _path, port, analysis = hostile
    frames = analysis["ws_frames"]
    data = frames[frames["opcode"].isin(DATA_OPCODES)].sort_values(["direction", "offset"])
    assert (data["conn_id"] == _connection_by_client_port(analysis)[port]["conn_id"]).all()
    for side in ("client", "server"):
        mine = data[data["direction"] == side]
        assert list(mine["opcode"]) == [1, 2, 1], side
        text, binary, csv_text = (row for _, row in mine.iterrows())
        # Text as text, exactly as sent (client frames are masked on the wire).
        assert text["payload_text"] == HOSTILE_TEXT, side
        assert bytes.fromhex(text["payload_hex"]) == HOSTILE_TEXT.encode(), side
        # The hex column is a preview of the first PREVIEW_HEX_BYTES bytes.
        assert bytes.fromhex(binary["payload_hex"]) == ALL_BYTES[:PREVIEW_HEX_BYTES], side
        assert binary["payload_length"] == 256
        assert csv_text["payload_text"] == CSV_HOSTILE_TEXT, side
    messages = analysis["ws_messages"]
    texts = messages[messages["opcode"] == 1]
    assert sorted(texts["payload_text"]) == sorted([HOSTILE_TEXT, CSV_HOSTILE_TEXT] * 2)


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_hostile_payloads_survive_export(hostile, tmp_path: Path, fmt: str) -> None:
    _path, _port, analysis = hostile
    export_tables(analysis.tables, tmp_path, fmt)
    file = tmp_path / f"ws_frames.{fmt}"
    if fmt == "csv":
        table = pd.read_csv(file, keep_default_na=False, dtype=str)
    elif fmt == "json":
        table = pd.DataFrame(json.loads(file.read_text(encoding="utf-8")))
    else:
        table = pd.read_parquet(file)
    texts = [t for t, o in zip(table["payload_text"], table["opcode"]) if int(o) == 1]
    # A spreadsheet would run a CSV cell starting with "=" as a formula: the CSV export
    # writes it after an apostrophe (the text survives, the formula does not run).
    csv_text = "'" + CSV_HOSTILE_TEXT if fmt == "csv" else CSV_HOSTILE_TEXT
    assert CSV_HOSTILE_TEXT.startswith("=")
    assert sorted(texts) == sorted([HOSTILE_TEXT, csv_text] * 2)
    hexes = [h for h, o in zip(table["payload_hex"], table["opcode"]) if int(o) == 2]
    assert [bytes.fromhex(h) for h in hexes] == [ALL_BYTES[:PREVIEW_HEX_BYTES]] * 2


# --- 4-tuple reuse ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_reused_four_tuple_is_two_connections(tmp_path: Path) -> None:
    """Two connections from the same client port to the same server, one
    after the other: two connections, each with its own exchange."""
    reason = live_traffic_unavailable()
    if reason:
        pytest.skip(reason)
    path = tmp_path / "reuse.pcap"
    client_port = _free_port()
    statuses = []
    with traffic.servers(rest=True) as (_lt, rest, _):
        assert rest is not None
        with traffic.tcpdump_capture(path, [rest.port]):
            for _ in range(2):
                with socket.socket() as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((HOST, client_port))
                    sock.settimeout(10)
                    sock.connect((HOST, rest.port))
                    # Connection: close makes the server close first, so the
                    # TIME_WAIT is on the server's side and the client port is free.
                    sock.sendall(f"GET /api/items/1 HTTP/1.1\r\nHost: {HOST}:{rest.port}\r\nConnection: close\r\n\r\n".encode())
                    reply = b""
                    while chunk := sock.recv(65536):
                        reply += chunk
                    statuses.append(int(reply.split(b" ", 2)[1]))
        assert statuses == [200, 200]
        assert [(r.method, r.path, r.client_port) for r in rest.log] == [("GET", "/api/items/1", client_port)] * 2
        server_port = rest.port

    analysis = analyze_captures([path])
    connections = analysis["connections"].sort_values("start_ts")
    assert len(connections) == 2
    assert list(connections["client_port"]) == [client_port] * 2
    assert list(connections["server_port"]) == [server_port] * 2
    assert connections["handshake_seen"].all()
    first, second = connections.itertuples()
    assert first.end_ts <= second.start_ts
    for row in (first, second):
        assert _exchanges(analysis, row.conn_id) == [("GET", "/api/items/1", 200)]
    # Both connections of the 4-tuple land in the same worker's shard.
    split = analyze_captures([path], jobs=2)
    pd.testing.assert_frame_equal(split["connections"], analysis["connections"])
    pd.testing.assert_frame_equal(split["http_messages"], analysis["http_messages"])
    if oracle.tshark_available():
        # tshark starts a new tcp.stream for the reused 4-tuple too.
        streams = oracle.tcp_frame_bytes_by_stream(path)
        assert len(streams) == 2
        assert [s.bytes for s in streams.values()] == [first.wire_bytes, second.wire_bytes]
        assert [s.packets for s in streams.values()] == [first.packets, second.packets]


# --- worker processes ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rest_per_request", "ws_close_codes", "ws_deflate", "any_interface"])
def test_worker_processes_give_the_same_tables(live_traffic, name: str) -> None:
    """Splitting a capture among processes by connection changes nothing
    (the single-process tables are checked against ground truth above)."""
    live = _live(live_traffic, name)
    split = analyze_captures([live.rec.path], jobs=3)
    for table, frame in live.analysis.tables.items():
        pd.testing.assert_frame_equal(split[table], frame, obj=table)
