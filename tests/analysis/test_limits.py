"""Limits on what hostile or unlucky captures can make the analysis hold or do.

Each capture is generated here, packet by packet, at a size that shows the
limit at work; the byte categories must still add up to the wire bytes.
"""

from __future__ import annotations

import pandas as pd
import pytest

from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import BYTE_CATEGORIES
from inspector.parse.tcp import DEFAULT_MAX_RUNS
from tests.factories import deflate_message, http_request, http_response, pcap_file, tcp_frame, ws_frame
from tests.parse.work import lines_executed

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


# -- item 11: half-open connections are cheap, evicted when idle, and bounded -------


def syn_flood(count, step_ns=1000):
    """`count` connections that each send one SYN, from distinct ports."""
    return [tcp_frame((f"10.1.{i // 250}.{1 + i % 250}", 1024 + i % 60000), SERVER, i * 7, 0, SYN) for i in range(count)], step_ns


@pytest.fixture
def open_connections_watch(monkeypatch):
    """Track how many connections the pipeline holds open at once."""
    from inspector.analysis import pipeline

    watch = {"open": 0, "most": 0}

    class WatchedAccount(pipeline.ConnectionAccount):
        __slots__ = ()

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            watch["open"] += 1
            watch["most"] = max(watch["most"], watch["open"])

    finish = pipeline._finish

    def watched_finish(account, rows):
        watch["open"] -= 1
        finish(account, rows)

    monkeypatch.setattr(pipeline, "ConnectionAccount", WatchedAccount)
    monkeypatch.setattr(pipeline, "_finish", watched_finish)
    return watch


def test_open_connections_are_bounded_longest_idle_first(tmp_path, monkeypatch, open_connections_watch):
    from inspector.analysis import pipeline

    monkeypatch.setattr(pipeline, "MAX_OPEN_CONNECTIONS", 100)
    frames, step = syn_flood(1000)
    analysis = analyze_captures([write_capture(tmp_path / "syn.pcap", frames, step)], jobs=1)
    assert open_connections_watch["most"] <= 100
    assert len(analysis["connections"]) == 1000  # every one reported, none lost
    assert any("finished early because over 100 were open" in w for w in analysis.warnings)
    assert_reconciles(analysis)


def test_idle_half_open_connections_are_finished_in_capture_time(tmp_path, monkeypatch, open_connections_watch):
    from inspector.analysis import pipeline

    monkeypatch.setattr(pipeline, "SWEEP_EVERY_PACKETS", 50)
    second = 1_000_000_000
    frames, step = syn_flood(2000, step_ns=second)  # one SYN a second, half an hour
    analysis = analyze_captures([write_capture(tmp_path / "syn.pcap", frames, step)], jobs=1)
    # Quiet for NO_PAYLOAD_IDLE_NS (5 minutes): finished at the next sweep.
    assert open_connections_watch["most"] <= pipeline.NO_PAYLOAD_IDLE_NS // second + 50 + 1
    assert len(analysis["connections"]) == 2000 and not analysis.warnings


def test_a_quiet_connection_with_data_is_never_split(tmp_path, monkeypatch):
    from inspector.analysis import pipeline

    monkeypatch.setattr(pipeline, "SWEEP_EVERY_PACKETS", 1)
    hour = 3600 * 1_000_000_000
    frames = handshake() + [tcp_frame(CLIENT, SERVER, 1001, 5001, PSH | ACK, b"first"),
                            tcp_frame(CLIENT, SERVER, 1006, 5001, PSH | ACK, b"second")]
    path = tmp_path / "quiet.pcap"
    path.write_bytes(pcap_file([(T0 + i, f) for i, f in enumerate(frames[:-1])] + [(T0 + hour, frames[-1])]))
    connections = analyze_captures([path], jobs=1)["connections"]
    assert len(connections) == 1 and connections["unparsed_bytes"].tolist() == [11]


def test_a_fresh_connection_costs_little_memory():
    import tracemalloc

    from inspector.analysis.accounting import ConnectionAccount
    from inspector.decode import decode_packet
    from inspector.parse.connection import ParserOptions, TcpConnection

    frames, _ = syn_flood(2000)
    packets = [decode_packet(T0, 1, len(frame), frame) for frame in frames]
    options = ParserOptions()
    accounts = []
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for conn_id, packet in enumerate(packets):
            account = ConnectionAccount(conn_id, "x", TcpConnection(conn_id, options), ((packet.src_ip, packet.src_port), (packet.dst_ip, packet.dst_port)))
            account.add_packet(packet, 0)
            accounts.append(account)
        per_connection = (tracemalloc.get_traced_memory()[0] - before) / len(packets)
    finally:
        tracemalloc.stop()
    assert per_connection < 2500  # was about 4,000 bytes, 5.6 KB of RSS


# -- item 12: a connection's events become rows as they come; findings are capped ---

WS_KEY, WS_ACCEPT = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 1.3


def websocket_capture(path, server_stream: bytes, *, extensions: str = "", segment: int = 60_000):
    """A WebSocket upgrade, then `server_stream` sent by the server in big segments."""
    headers = {"Host": "x", "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": WS_KEY, "Sec-WebSocket-Version": "13"}
    if extensions:
        headers["Sec-WebSocket-Extensions"] = extensions
    request = http_request("GET", "/ws", headers=headers)
    answer = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": WS_ACCEPT}
    if extensions:
        answer["Sec-WebSocket-Extensions"] = extensions
    response = http_response(101, "Switching Protocols", headers=answer)
    client_next = 1001 + len(request)
    frames = handshake() + [tcp_frame(CLIENT, SERVER, 1001, 5001, PSH | ACK, request),
                            tcp_frame(SERVER, CLIENT, 5001, client_next, PSH | ACK, response)]
    seq = 5001 + len(response)
    for start in range(0, len(server_stream), segment):
        piece = server_stream[start:start + segment]
        frames.append(tcp_frame(SERVER, CLIENT, seq, client_next, PSH | ACK, piece))
        seq += len(piece)
    return write_capture(path, frames)


def test_findings_of_one_rule_are_capped_per_connection_with_the_true_count(tmp_path):
    from inspector.analysis.rows import MAX_FINDINGS_PER_RULE

    strays = 1000  # continuation frames with no message open: a finding each
    path = websocket_capture(tmp_path / "strays.pcap", ws_frame(b"", opcode=0, fin=False) * strays)
    analysis = analyze_captures([path], jobs=1)
    findings = analysis["findings"]
    rule = findings[findings["rule"] == "ws-unexpected-continuation"]
    assert len(rule) == MAX_FINDINGS_PER_RULE + 1
    assert rule["detail"].iloc[-1].startswith(f"{strays - MAX_FINDINGS_PER_RULE} more ws-unexpected-continuation findings")
    assert len(analysis["ws_frames"]) == strays  # every frame is still a row
    assert_reconciles(analysis)


def test_events_never_pile_up_and_rows_leave_in_chunks(tmp_path, monkeypatch):
    from inspector.analysis import rows

    monkeypatch.setattr(rows, "CHUNK_ROWS", 50)
    monkeypatch.setattr(rows, "CHECK_FULL_EVENTS", 10)
    held = {"events": 0, "rows": 0}
    take_events = rows.ShardRows.take_events

    def watched_take_events(self, account):
        take_events(self, account)
        held["events"] = max(held["events"], len(account.connection.events))
        held["rows"] = max(held["rows"], max(sink.held_rows() for sink in self.sinks.values()))

    monkeypatch.setattr(rows.ShardRows, "take_events", watched_take_events)
    frames = 2000
    path = websocket_capture(tmp_path / "fragments.pcap", ws_frame(b"", opcode=1, fin=False) + ws_frame(b"", opcode=0, fin=False) * (frames - 1), segment=130)
    analysis = analyze_captures([path], jobs=1)
    # At most a chunk, the rows of the events between two checks and one packet's frames (65) are held.
    assert held["events"] == 0 and 0 < held["rows"] < 50 + 10 + 65
    table = analysis["ws_frames"]
    assert len(table) == frames and table["frame_id"].tolist() == list(range(frames))
    assert table["message_id"].isna().sum() == 0 and len(analysis["ws_messages"]) == 1  # closed, incomplete, at the end
    assert_reconciles(analysis)


@pytest.mark.parametrize("frames", [20_000])
def test_memory_per_frame_is_about_its_table_row(tmp_path, monkeypatch, frames):
    import tracemalloc

    from inspector.analysis import rows

    monkeypatch.setattr(rows, "CHUNK_ROWS", 512)  # the rows dicts held at once: a small part at this size
    path = websocket_capture(tmp_path / "empty-frames.pcap", ws_frame(b"", opcode=1, fin=False) + ws_frame(b"", opcode=0, fin=False) * (frames - 1))
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        analysis = analyze_captures([path], jobs=1)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert len(analysis["ws_frames"]) == frames
    # Python-side peak (Arrow string buffers are not traced): about 1,700 bytes a
    # frame when every event object and row dict was held to the end.
    assert peak / frames < 600, peak / frames


# -- item 13: a total budget for decompression, per connection and per capture -------


def gzip_exchanges(connections: int, body: bytes):
    """`connections` connections, each one GET answered with a gzip body."""
    import gzip

    packed = gzip.compress(body)
    request, response = http_request("GET", "/"), http_response(200, headers={"Content-Encoding": "gzip"}, body=packed)
    frames = []
    for i in range(connections):
        client = (CLIENT[0], 41000 + i)
        frames += handshake(client) + [tcp_frame(client, SERVER, 1001, 5001, PSH | ACK, request),
                                       tcp_frame(SERVER, client, 5001, 1001 + len(request), PSH | ACK, response)]
    return frames


@pytest.mark.parametrize("connections", [5, 40])
def test_capture_decompression_budget_bounds_the_total(tmp_path, connections):
    from inspector.parse.connection import ParserOptions

    size = 100_000
    options = ParserOptions(max_decompressed_per_capture=3 * size + size // 2)
    path = write_capture(tmp_path / "gzip.pcap", gzip_exchanges(connections, b"g" * size))
    analysis = analyze_captures([path], options, jobs=1)
    responses = analysis["http_messages"].dropna(subset=["status"])
    sizes = responses.sort_values("conn_id")["decompressed_bytes"].tolist()
    assert sizes[:3] == [size] * 3 and all(pd.isna(s) for s in sizes[3:])  # unknown, never a partial count
    findings = analysis["findings"]
    budget = findings[findings["rule"] == "http-decompression-budget"]
    assert len(budget) == connections - 3  # one per connection that met it
    assert budget["detail"].str.contains("the capture's decompression budget").all()
    assert_reconciles(analysis)


def test_connection_decompression_budget_spans_http_and_websocket(tmp_path):
    from inspector.parse.connection import ParserOptions

    message = deflate_message(b"m" * 10_000)
    stream = ws_frame(message, opcode=2, rsv1=True) * 5
    path = websocket_capture(tmp_path / "deflate.pcap", stream, extensions="permessage-deflate; server_no_context_takeover")
    options = ParserOptions(max_decompressed_per_connection=25_000)
    analysis = analyze_captures([path], options, jobs=1)
    sizes = analysis["ws_messages"]["payload_bytes"].tolist()
    assert sizes[:2] == [10_000, 10_000] and all(pd.isna(s) for s in sizes[2:])
    assert analysis["findings"]["rule"].tolist() == ["ws-decompression-budget"]


def test_rows_of_requests_never_answered_take_linear_work(tmp_path):
    def work_for(requests):
        stream = http_request("GET", "/") * requests
        frames = handshake() + [tcp_frame(CLIENT, SERVER, 1001 + start, 5001, PSH | ACK, stream[start:start + 1400])
                                for start in range(0, len(stream), 1400)]
        path = write_capture(tmp_path / f"requests-{requests}.pcap", frames)
        return lines_executed(lambda: analyze_captures([path], jobs=1), "analysis/rows.py")

    small, large = work_for(300), work_for(2400)
    assert large < 10 * small  # 8x the requests; a quadratic path gives ~30x here


# -- item 6, TCP part: one-byte segments in reverse order take linear work ----------


def test_reverse_one_byte_segments_take_linear_work(tmp_path):
    def work_for(count):
        data = bytes(range(32, 127)) * (count // 95 + 1)
        frames = handshake() + [tcp_frame(CLIENT, SERVER, 1001 + i, 5001, PSH | ACK, data[i:i + 1]) for i in reversed(range(count))]
        path = write_capture(tmp_path / f"reverse-{count}.pcap", frames)
        analysis = {}
        lines = lines_executed(lambda: analysis.update(analyze_captures([path], jobs=1).tables), "/inspector/parse/")
        assert analysis["connections"]["unparsed_bytes"].tolist() == [count]  # not HTTP: all unparsed
        assert analysis["connections"]["retransmitted_bytes"].tolist() == [0]
        return lines

    small, large = work_for(1000), work_for(8000)
    assert large < 10 * small  # the held events were rescanned for each one: ~60x


def test_decompression_budgets_are_command_line_options(tmp_path, capsys):
    """`--max-decompressed` and `--max-decompressed-per-connection` set the budgets the summary
    and the exported findings then show being met."""
    from inspector.cli import main

    path = write_capture(tmp_path / "gzip.pcap", gzip_exchanges(4, b"g" * 100_000))
    for option, value, rule_count in (("--max-decompressed", "250K", 2), ("--max-decompressed-per-connection", "50K", 4)):
        export = tmp_path / option.strip("-")
        assert main(["analyze", str(path), option, value, "--export", str(export), "--format", "json"]) == 0
        assert "http-decompression-budget" in capsys.readouterr().out
        findings = pd.read_json(export / "findings.json")
        assert (findings["rule"] == "http-decompression-budget").sum() == rule_count, (option, findings)
