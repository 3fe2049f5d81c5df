"""Real cleartext HTTP/2 on loopback (hypercorn, httpx, curl, the h2 library; tests/h2_traffic.py),
analysed and checked against what the clients did and against tshark: streams, methods, paths,
statuses, frame counts by type, header block and DATA lengths, and exact byte accounting; server
push (PUSH_PROMISE) and frames in flight after a RST_STREAM."""

from __future__ import annotations

from collections import Counter

import pytest

from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import BYTE_CATEGORIES
from inspector.capture.files import read_packets
from inspector.decode import decode_packet
from inspector.events import Direction, Http2Frame, HttpRequest, HttpResponse
from inspector.parse.connection import TcpConnection
from inspector.parse.http2 import FrameType
from tests import tshark_oracle as oracle
from tests.conftest import connection_row, live_traffic_unavailable, recorded_and_analysed
from tests.factories import pcap_file
from tests.h2_traffic import CONCURRENT, LARGE_BYTES, PUSHED_PATH, record_h2c, record_h2c_push

needs_tshark = pytest.mark.skipif(not oracle.tshark_available(), reason="tshark not installed (the README's test command installs it)")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return recorded_and_analysed(record_h2c, tmp_path_factory, "h2c-live")


@pytest.fixture(scope="module")
def parsed(recorded):
    """Each connection's parser events by client port, straight from TcpConnection."""
    recording, _analysis = recorded
    return _connection_events(recording.path, recording.server_port)


def _connection_events(path, server_port: int) -> dict[int, list]:
    connections: dict[int, TcpConnection] = {}
    events: dict[int, list] = {}
    for ts_ns, link_type, wire_len, data in read_packets(path):
        packet = decode_packet(ts_ns, link_type, wire_len, data)
        client = packet.dst_port if packet.src_port == server_port else packet.src_port
        connection = connections.setdefault(client, TcpConnection(len(connections)))
        side = 0 if packet.src_port == client else 1
        connection.receive_segment(side, ts_ns, packet.seq, packet.ack, packet.flags, packet.payload, packet.payload_wire_len)
        events.setdefault(client, []).extend(connection.events)
        connection.events.clear()
    for client, connection in connections.items():
        connection.close(ts_ns)
        events[client].extend(connection.events)
    return events


def test_every_connection_is_http2_and_its_exchanges_are_what_the_clients_did(recorded):
    recording, analysis = recorded
    assert set(analysis["connections"]["kind"]) == {"http2"}
    assert analysis["findings"].empty, analysis["findings"][["rule", "detail"]].to_string()
    messages = analysis["http_messages"]
    for client_port, exchanges in recording.expected.items():
        row = connection_row(analysis, client_port)
        mine = messages[(messages["conn_id"] == row["conn_id"]) & (messages["version"] == "HTTP/2")]
        requests = mine[mine["direction"] == "client"]
        responses = mine[mine["direction"] == "server"].set_index("exchange_id")
        if client_port == recording.upgrade_port:
            # The h2c upgrade: the request is HTTP/1.1, its response comes on stream 1 with its exchange.
            http1 = messages[(messages["conn_id"] == row["conn_id"]) & (messages["version"] == "HTTP/1.1")]
            assert list(http1["status"].fillna(0)) == [0, 101] and list(http1["exchange_id"]) == [0, 0]
            assert http1["stream_id"].isna().all()
            assert list(responses.index) == [0] and list(responses["stream_id"]) == [1]
            assert responses["body_bytes"].tolist() == [exchanges[0].response_bytes]
            continue
        assert len(requests) == len(exchanges) == len(responses)
        # Requests in the order the client opened their streams: 1, 3, 5, ...
        assert list(requests["stream_id"]) == list(range(1, 2 * len(exchanges), 2))
        for (_, request), expected in zip(requests.sort_values("stream_id").iterrows(), exchanges):
            response = responses.loc[request["exchange_id"]]
            assert response["stream_id"] == request["stream_id"]
            assert (request["method"], request["target"], request["body_bytes"]) == (expected.method, expected.path, expected.request_bytes)
            assert (response["status"], response["body_bytes"], response["content_encoding"]) == (
                expected.status, expected.response_bytes, expected.content_encoding)
            assert request["complete"] and response["complete"]
            # Timing per stream: the request starts before its response, which ends last.
            assert request["ts"] <= request["end_ts"] <= response["end_ts"] and request["ts"] <= response["ts"] <= response["end_ts"]


def test_concurrent_streams_interleave_and_pair_by_stream(recorded):
    recording, analysis = recorded
    port = next(p for p, exchanges in recording.expected.items() if len(exchanges) == CONCURRENT + 1)
    messages = analysis["http_messages"]
    mine = messages[messages["conn_id"] == connection_row(analysis, port)["conn_id"]]
    waits = mine[mine["direction"] == "server"].merge(mine[mine["direction"] == "client"], on="exchange_id", suffixes=("", "_request"))
    waits = waits[waits["target_request"].str.startswith("/wait/")]
    assert len(waits) == CONCURRENT
    # The server answers the first asked last: responses end in the reverse order of their requests,
    # so FIFO pairing would have paired them wrongly; by stream each body names its path.
    assert list(waits.sort_values("end_ts")["target_request"]) == [f"/wait/{n}" for n in reversed(range(CONCURRENT))]
    assert all(body.endswith(path) for body, path in zip(waits["body_text"], waits["target_request"]))
    # All requests were sent before the first response ended: the streams were open at once.
    assert waits["ts_request"].max() < waits["end_ts"].min()


def test_hpack_saves_on_repeated_headers(recorded):
    _recording, analysis = recorded
    http2 = analysis["http_messages"][analysis["http_messages"]["version"] == "HTTP/2"]
    assert (http2["http1_header_bytes"] > http2["header_bytes"]).all()
    requests = http2[http2["direction"] == "client"].sort_values(["conn_id", "stream_id"])
    first, later = requests.iloc[0], requests[requests["conn_id"] == requests.iloc[0]["conn_id"]].iloc[1:]
    # The dynamic table makes later requests' blocks a fraction of the first one's.
    assert (later["header_bytes"] < first["header_bytes"] / 2).all()


def test_gzip_body_is_measured_decoded(recorded):
    _recording, analysis = recorded
    messages = analysis["http_messages"]
    gzipped = messages[messages["content_encoding"] == "gzip"]
    assert len(gzipped) == 1
    from tests.h2_traffic import GZIP_TEXT

    assert gzipped["decompressed_bytes"].tolist() == [len(GZIP_TEXT)]


def test_bytes_reconcile_exactly_per_connection(recorded):
    recording, analysis = recorded
    frame_bytes = oracle.tcp_frame_bytes_by_endpoints(recording.path)
    costs = analysis["message_costs"]
    for _, row in analysis["connections"].iterrows():
        endpoints = tuple(sorted([(row["client_ip"], int(row["client_port"])), (row["server_ip"], int(row["server_port"]))]))
        assert row["wire_bytes"] == frame_bytes[endpoints]
        assert sum(int(row[name]) for name in BYTE_CATEGORIES) == row["wire_bytes"]
        assert row["unparsed_bytes"] == 0  # (loopback under load may retransmit: those bytes are counted apart)
        mine = costs[costs["conn_id"] == row["conn_id"]]
        assert mine["wire_bytes"].sum() == pytest.approx(row["wire_bytes"], abs=1e-6)
        # Each exchange carries a share of the transport bytes, as HTTP/1.1 exchanges do.
        exchanges = mine[mine["item"] == "exchange"]
        assert len(exchanges) == row["http_requests"] and (exchanges["transport_bytes"] > 0).all()
    large = costs[(costs["item"] == "exchange") & (costs["wire_payload_bytes"] == LARGE_BYTES)]
    assert len(large) == 1 and large["wire_bytes"].iloc[0] > LARGE_BYTES


@needs_tshark
def test_frames_streams_and_lengths_against_tshark(recorded, parsed):
    recording, analysis = recorded
    seen = oracle.http2_connections(recording.path, recording.server_port)
    if recording.upgrade_port is not None:
        seen[recording.upgrade_port] = oracle.http2_connections(recording.path, recording.server_port, decode_as=False)[recording.upgrade_port]
    assert set(seen) == set(recording.expected)
    messages = analysis["http_messages"]
    for client_port, frames_seen in seen.items():
        row = connection_row(analysis, client_port)
        check_frames_against_tshark(parsed[client_port], frames_seen)
        for message in (e for e in parsed[client_port] if type(e) in (HttpRequest, HttpResponse) and e.stream_id is not None):
            sent = frames_seen[message.direction.label]
            data = [f for f in sent if f.stream_id == message.stream_id and f.frame_type == FrameType.DATA]
            assert message.body_bytes == sum(f.length - f.padding for f in data)
            assert message.body_wire_bytes == sum(9 + f.length for f in data)
        http1 = messages[(messages["conn_id"] == row["conn_id"]) & (messages["version"] == "HTTP/1.1")]
        check_categories_against_tshark(row, frames_seen, (http1["body_wire_bytes"] - http1["chunk_framing_bytes"]).sum())


def check_frames_against_tshark(events: list, frames_seen: dict[str, list]) -> None:
    """One connection's frames as tshark shows them, each direction in order (stream, type, flags,
    length, header block, padding, promised stream); each message's header block, method, path or
    status from tshark's HEADERS (a promised request's from its PUSH_PROMISE)."""
    for direction in (Direction.CLIENT, Direction.SERVER):
        mine = [e for e in events if type(e) is Http2Frame and e.direction is direction]
        theirs = frames_seen[direction.label]
        assert [(f.stream_id, f.frame_type, f.flags, f.length) for f in mine] == [
            (f.stream_id, f.frame_type, f.flags, f.length) for f in theirs], direction
        assert [f.header_block_bytes for f in mine] == [f.header_block for f in theirs]
        assert [f.padding_bytes for f in mine] == [f.padding for f in theirs]
        assert [f.promised_stream_id for f in mine if f.frame_type == FrameType.PUSH_PROMISE] == [
            f.promised_stream_id for f in theirs if f.frame_type == FrameType.PUSH_PROMISE]
        assert Counter(FrameType(f.frame_type).name for f in mine) == Counter(FrameType(f.frame_type).name for f in theirs)
    for message in (e for e in events if type(e) in (HttpRequest, HttpResponse) and e.stream_id is not None):
        sent = frames_seen[message.direction.label]
        headers = [f for f in sent if f.stream_id == message.stream_id and f.frame_type == FrameType.HEADERS]
        if type(message) is HttpRequest and message.direction is Direction.SERVER:  # promised
            headers = [f for f in sent if f.promised_stream_id == message.stream_id]
        elif type(message) is HttpResponse:
            headers = headers[:1] if not message.complete else headers  # a reset stream's trailers are none of the message's
        assert message.header_bytes == sum(f.header_block for f in headers)
        if type(message) is HttpRequest:
            assert (message.method, message.target) == (headers[0].method, headers[0].path)
        else:
            assert message.status == headers[0].status
    assert len(frames_seen["preface"]) == 1 and frames_seen["preface"] == ["client"]


def check_categories_against_tshark(row, frames_seen: dict[str, list], http1_body_bytes: int = 0) -> None:
    """A connection's HTTP/2 byte categories: tshark's frames, whole (and the preface's 24 bytes)."""
    frames = frames_seen["client"] + frames_seen["server"]
    assert row["http2_frame_header_bytes"] == 9 * len(frames)
    assert row["http2_hpack_bytes"] == sum(f.header_block for f in frames)
    assert row["http2_padding_bytes"] == sum(f.padding for f in frames)
    data = sum(f.length - f.padding for f in frames if f.frame_type == FrameType.DATA)
    assert row["http_body_bytes"] == data + http1_body_bytes
    assert row["http2_control_bytes"] == 24 + sum(f.length - f.header_block - f.padding for f in frames if f.frame_type != FrameType.DATA)


def test_same_tables_whatever_the_jobs(recorded):
    recording, analysis = recorded
    again = analyze_captures([recording.path], jobs=2)
    for name in ("connections", "http_messages", "message_costs"):
        assert again[name].equals(analysis[name]), name


# --- server push and RST_STREAM: the h2 library's client (tests/h2_traffic.record_h2c_push) --------


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    reason = live_traffic_unavailable()
    if reason:
        pytest.skip(reason)
    recording = record_h2c_push(tmp_path_factory.mktemp("h2c-push"))
    return recording, analyze_captures([recording.path], jobs=1), _connection_events(recording.path, recording.server_port)


def test_a_pushed_response_is_paired_with_the_request_its_push_promise_made(pushed):
    recording, analysis, _events = pushed
    assert recording.promised == {2: PUSHED_PATH}
    assert analysis["findings"].empty, analysis["findings"][["rule", "detail"]].to_string()
    row = connection_row(analysis, recording.client_port)
    assert row["kind"] == "http2" and row["unparsed_bytes"] == 0
    messages = analysis["http_messages"]
    mine = messages[messages["conn_id"] == row["conn_id"]]
    promised = mine[mine["stream_id"] == 2].set_index("direction", drop=False)
    # The server sent both: the promised request (PUSH_PROMISE on stream 1) and the pushed response.
    assert list(promised["direction"]) == ["server", "server"] and promised["exchange_id"].nunique() == 1
    (request,), (response,) = (promised[promised["method"].notna()].itertuples(), promised[promised["status"].notna()].itertuples())
    assert (request.method, request.target, request.body_bytes, request.complete) == ("GET", PUSHED_PATH, 0, True)
    assert (response.status, response.body_bytes, response.complete) == (200, recording.pushed_bytes[2], True)
    # Three exchanges, each a request and a response: stream 1, the pushed stream 2, the reset stream 3.
    assert row["http_requests"] == row["http_responses"] == 3 and sorted(mine["stream_id"].unique()) == [1, 2, recording.reset_stream]
    costs = analysis["message_costs"]
    pushed_cost = costs[(costs["conn_id"] == row["conn_id"]) & (costs["item"] == "exchange") & (costs["item_index"] == request.exchange_id)]
    assert pushed_cost["wire_payload_bytes"].tolist() == [recording.pushed_bytes[2]] and pushed_cost["payload_messages"].tolist() == [1]


def test_data_in_flight_after_the_rst_stream_is_counted_on_the_reset_stream(pushed):
    recording, analysis, _events = pushed
    stream = recording.reset_stream
    row = connection_row(analysis, recording.client_port)
    messages = analysis["http_messages"]
    response = messages[(messages["conn_id"] == row["conn_id"]) & (messages["stream_id"] == stream) & (messages["direction"] == "server")]
    assert response["complete"].tolist() == [False] and response["status"].tolist() == [200]
    costs = analysis["message_costs"]
    exchange = costs[(costs["conn_id"] == row["conn_id"]) & (costs["item"] == "exchange") & (costs["item_index"] == response["exchange_id"].iloc[0])]
    if oracle.tshark_available():
        frames = oracle.http2_frames_in_order(recording.path, recording.server_port)
        reset_at = next(i for i, (direction, f) in enumerate(frames) if direction == "client" and f.frame_type == FrameType.RST_STREAM)
        data = [(i, f.length - f.padding) for i, (direction, f) in enumerate(frames)
                if direction == "server" and f.frame_type == FrameType.DATA and f.stream_id == stream]
        # the response ends at the reset; every DATA frame of the stream, those after it too, is its exchange's
        assert response["body_bytes"].tolist() == [sum(n for i, n in data if i < reset_at)]
        assert exchange["wire_payload_bytes"].tolist() == [sum(n for _i, n in data)]
    assert exchange["wire_payload_bytes"].iloc[0] >= response["body_bytes"].iloc[0] > 0


def test_push_and_reset_bytes_reconcile_exactly(pushed):
    recording, analysis, _events = pushed
    row = connection_row(analysis, recording.client_port)
    endpoints = tuple(sorted([(row["client_ip"], int(row["client_port"])), (row["server_ip"], int(row["server_port"]))]))
    assert row["wire_bytes"] == oracle.tcp_frame_bytes_by_endpoints(recording.path)[endpoints]
    assert sum(int(row[name]) for name in BYTE_CATEGORIES) == row["wire_bytes"]
    costs = analysis["message_costs"]
    assert costs[costs["conn_id"] == row["conn_id"]]["wire_bytes"].sum() == pytest.approx(row["wire_bytes"], abs=1e-6)


@needs_tshark
def test_push_and_reset_frames_against_tshark(pushed):
    recording, analysis, events = pushed
    seen = oracle.http2_connections(recording.path, recording.server_port)
    assert set(seen) == {recording.client_port}
    frames_seen = seen[recording.client_port]
    assert [f.promised_stream_id for f in frames_seen["server"] if f.frame_type == FrameType.PUSH_PROMISE] == [2]
    check_frames_against_tshark(events[recording.client_port], frames_seen)
    check_categories_against_tshark(connection_row(analysis, recording.client_port), frames_seen)


# --- a capture that starts mid-connection ------------------------------------------------------


@pytest.fixture(scope="module")
def started_late(recorded, tmp_path_factory):
    """The recording without each prior-knowledge connection's packets before the server's first
    HEADERS (its preface, SETTINGS and first requests never captured), analysed."""
    recording, _analysis = recorded
    cut_ports = {port for port in recording.expected if port != recording.upgrade_port}
    path = tmp_path_factory.mktemp("h2c-late") / "late.pcap"
    path.write_bytes(_without_starts(recording.path, recording.server_port, cut_ports))
    return path, cut_ports, analyze_captures([path], jobs=1)


def _without_starts(path, server_port: int, client_ports: set[int]) -> bytes:
    """The capture's packets, less those of `client_ports`' connections before the first packet
    from the server that starts with a HEADERS frame (type 0x1 at byte 3 of the payload)."""
    kept, link, started = [], None, set()
    for ts_ns, link_type, _wire_len, data in read_packets(path):
        link = link_type
        packet = decode_packet(ts_ns, link_type, len(data), data)
        client = packet.dst_port if packet.src_port == server_port else packet.src_port
        if client in client_ports and client not in started:
            if packet.src_port != server_port or len(packet.payload) < 9 or packet.payload[3] != FrameType.HEADERS:
                continue
            started.add(client)
        kept.append((ts_ns, data))
    assert started == client_ports
    return pcap_file(kept, link_type=link, nano=True)


def test_a_connection_captured_late_is_found_by_its_frames(started_late):
    path, cut_ports, analysis = started_late
    findings = analysis["findings"]
    for client_port in cut_ports:
        row = connection_row(analysis, client_port)  # the client side told by the frames' request fields
        assert row["kind"] == "http2"
        mine = findings[findings["conn_id"] == row["conn_id"]]
        assert "tcp-client-guessed" not in set(mine["rule"])
        # Both sides start on a frame boundary here: found at once, nothing skipped.
        starts = mine[mine["rule"] == "h2-mid-stream"]
        assert sorted(starts["direction"]) == ["client", "server"]
        assert starts["detail"].str.contains("after 0 bytes that were not framed").all()
        assert sum(int(row[name]) for name in BYTE_CATEGORIES) == row["wire_bytes"] and row["unparsed_bytes"] == 0
    frame_bytes = oracle.tcp_frame_bytes_by_endpoints(path) if oracle.tshark_available() else None
    for _, row in analysis["connections"].iterrows():
        if frame_bytes is not None:
            endpoints = tuple(sorted([(row["client_ip"], int(row["client_port"])), (row["server_ip"], int(row["server_port"]))]))
            assert row["wire_bytes"] == frame_bytes[endpoints]


def test_headers_decode_from_an_empty_table_or_are_reported(recorded, started_late):
    """The server's blocks from its first on decode whole, as in the full capture; the client's
    blocks decode the same or are reported undecodable (HPACK entries added before the cut)."""
    _recording, full = recorded
    path, cut_ports, analysis = started_late
    findings = analysis["findings"]
    columns = ["stream_id", "method", "target", "status", "header_bytes", "body_bytes", "headers"]
    for client_port in cut_ports:
        late, whole = connection_row(analysis, client_port), connection_row(full, client_port)
        late_rows = _h2_messages(analysis, late["conn_id"])
        whole_rows = _h2_messages(full, whole["conn_id"])
        responses = late_rows[late_rows["direction"] == "server"]
        assert len(responses) and responses["complete"].all()
        expected = whole_rows[whole_rows["direction"] == "server"].tail(len(responses))
        assert responses[columns].reset_index(drop=True).equals(expected[columns].reset_index(drop=True))
        mine = findings[(findings["conn_id"] == late["conn_id"]) & (findings["rule"] == "h2-headers-undecodable")]
        undecodable = set(mine["detail"].str.extract(r"header block of stream (\d+)")[0].astype(int))
        for _, request in late_rows[late_rows["direction"] == "client"].iterrows():
            if int(request["stream_id"]) in undecodable:
                assert request["method"] == "" and not request["complete"]
            else:
                same = whole_rows[(whole_rows["direction"] == "client") & (whole_rows["stream_id"] == request["stream_id"])]
                assert request[columns].equals(same[columns].iloc[0])
        if undecodable:
            desync = findings[(findings["conn_id"] == late["conn_id"]) & (findings["rule"] == "h2-hpack-desync")]
            assert desync["detail"].str.contains("missed the connection's start").all() and len(desync)


def _h2_messages(analysis, conn_id: int):
    messages = analysis["http_messages"]
    return messages[(messages["conn_id"] == conn_id) & (messages["version"] == "HTTP/2")].sort_values(["direction", "stream_id"])


@needs_tshark
def test_frames_of_a_connection_captured_late_against_tshark(started_late):
    path, cut_ports, _analysis = started_late
    recording_port = int(_analysis["connections"]["server_port"].iloc[0])
    seen = oracle.http2_connections(path, recording_port)
    parsed = _connection_events(path, recording_port)
    for client_port in cut_ports:
        for direction in (Direction.CLIENT, Direction.SERVER):
            mine = [e for e in parsed[client_port] if type(e) is Http2Frame and e.direction is direction]
            theirs = seen[client_port][direction.label]
            assert [(f.stream_id, f.frame_type, f.flags, f.length, f.header_block_bytes) for f in mine] == [
                (f.stream_id, f.frame_type, f.flags, f.length, f.header_block) for f in theirs], direction
        assert seen[client_port]["preface"] == []
