"""Real Server-Sent Events on loopback (tests/sse_traffic.py: aiohttp streaming text/event-stream,
read by httpx-sse), analysed and checked against what the clients received and against tshark:
the events of every response (chunked, gzip-coded, Content-Length, read to the close, dropped and
resumed), the HTTP messages and each response's body, each event's bytes against the chunk that
carried it, exact byte accounting, the reconnection, and the store, query and export."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pandas as pd
import pytest

from inspector.store import open_store
from tests import tshark_oracle as oracle
from tests.analysis import test_reconciliation
from tests.conftest import recorded_and_analysed
from tests.sse_traffic import DROP_AFTER, RETRY_MS, SPLIT_EVENT, record_sse, record_sse_h2

needs_tshark = pytest.mark.skipif(not oracle.tshark_available(), reason="tshark not installed (the README's test command installs it)")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return recorded_and_analysed(record_sse, tmp_path_factory, "sse-live")


def _streams(analysis) -> dict[int, list[pd.DataFrame]]:
    """Per client port, the sse_events rows of each of its responses, in order."""
    events, connections = analysis["sse_events"], analysis["connections"].set_index("conn_id")
    out: dict[int, list[pd.DataFrame]] = {}
    for (conn_id, _exchange), rows in events.groupby(["conn_id", "exchange_id"], sort=True):
        out.setdefault(int(connections.loc[conn_id, "client_port"]), []).append(rows)
    return out


@pytest.fixture(scope="module")
def recorded_h2(tmp_path_factory):
    return recorded_and_analysed(record_sse_h2, tmp_path_factory, "sse-h2-live")


@pytest.fixture(params=["http1", "http2"])
def either(request, recorded, recorded_h2):
    return recorded if request.param == "http1" else recorded_h2


def test_the_events_are_what_the_clients_received(either):
    recording, analysis = either
    streams = _streams(analysis)
    assert set(streams) == set(recording.received)
    for port, responses in recording.received.items():
        assert len(streams[port]) == len(responses), port
        for rows, (url, received) in zip(streams[port], responses):
            events = rows[rows["kind"] == "event"]
            ours = list(zip(events["event_type"], events["data_text"], events["last_event_id"],
                            [None if pd.isna(r) else int(r) for r in events["retry_ms"]]))
            # httpx-sse also dispatches a block without data lines (a keep-alive comment and its
            # blank line) once an ID was seen, with empty data; the standard dispatches nothing.
            # This server sends no event with empty data, so those are its keep-alives.
            assert ours == [event for event in received if event[1] != ""], (port, url)
            assert (events["data_bytes"] == [len(data.encode()) for _, data, *_ in ours]).all()
            assert (events["data_chars"] == [len(data) for _, data, *_ in ours]).all()
            assert events["text_valid"].all() and not events["truncated"].any()
    if recording.dropped:
        assert [len(events) for _, events in recording.received[recording.dropped]] == [DROP_AFTER + 1]  # 3 events, a keep-alive


def test_every_byte_reconciles(either):
    """The checks every bundled and corpus capture goes through, on this one."""
    recording, _analysis = either
    for check in (test_reconciliation.test_categories_sum_to_wire_bytes, test_reconciliation.test_message_costs_sum_to_wire_bytes,
                  test_reconciliation.test_total_wire_bytes_match_capture, test_reconciliation.test_http_categories_match_messages):
        check(str(recording.path))


def test_each_response_owns_its_body_through_its_items(either):
    """Per response: its head is its exchange's, the items own the rest, every byte of it once; an
    event's data is its payload, the rest of its lines and its chunk framing (HTTP/2: DATA frame
    headers) its headers."""
    _recording, analysis = either
    events, http, costs = analysis["sse_events"], analysis["http_messages"], analysis["message_costs"]
    responses = http[(http["direction"] == "server")].set_index(["conn_id", "exchange_id"])
    for (conn_id, exchange), rows in events.groupby(["conn_id", "exchange_id"]):
        response = responses.loc[(conn_id, exchange)]
        if response["version"] != "HTTP/2":  # whose DATA frames other streams' interleave
            assert rows["offset"].iloc[0] == response["offset"] + response["header_bytes"]
            assert ((rows["offset"] + rows["wire_bytes"]).iloc[:-1].to_numpy() == rows["offset"].iloc[1:].to_numpy()).all()
        assert rows["wire_bytes"].sum() == response["body_wire_bytes"]
        assert rows["framing_bytes"].sum() == response["chunk_framing_bytes"]
        assert rows["wire_payload_bytes"].sum() == response["body_bytes"]
        decoded = response["body_bytes"] if response["content_encoding"] == "" else response["decompressed_bytes"]
        if response["complete"]:
            assert rows["decoded_bytes"].sum() == decoded
    mine = costs[costs["item"].isin(["sse_event", "sse_control"])].set_index(["conn_id", "item_index"])
    rows = events.set_index(["conn_id", "item_id"]).loc[mine.index]
    assert (mine["app_header_bytes"] + mine["wire_payload_bytes"] == rows["framing_bytes"] + rows["wire_payload_bytes"]).all()
    event_costs = mine[mine["item"] == "sse_event"]
    assert (event_costs["app_payload_bytes"] == rows.loc[event_costs.index, "data_bytes"]).all()
    assert (event_costs["payload_messages"] == 1).all() and (mine.loc[mine["item"] == "sse_control", "app_payload_bytes"] == 0).all()
    assert (mine["transport_bytes"] > 0).all()  # each its share of the packets that carried it


@needs_tshark
def test_http_messages_and_bodies_equal_tsharks(recorded):
    recording, analysis = recorded
    options = {"decode_as_ports": (recording.server_port,)}
    http, connections = analysis["http_messages"], analysis["connections"].set_index("conn_id")
    assert oracle.http_request_methods(recording.path, **options) == Counter(http["method"].dropna())
    # tshark shows a response only once its body is whole: the dropped stream's is not.
    complete = http[(http["direction"] == "server") & http["complete"]]
    assert oracle.http_response_codes(recording.path, **options) == Counter(complete["status"].astype(int))
    theirs = sorted(oracle.http_response_bodies(recording.path, **options), key=lambda body: body.frame)
    assert len(theirs) == len(complete) == len(http[http["direction"] == "server"]) - 1
    events = analysis["sse_events"]
    for body, (_, ours) in zip(theirs, complete.sort_values("end_ts").iterrows()):
        assert body.client_port == connections.loc[ours["conn_id"], "client_port"]
        # tshark's body is de-chunked and decoded, as our decoded sizes are
        assert len(body.body) == (ours["decompressed_bytes"] if ours["content_encoding"] else ours["body_bytes"])
        items = events[(events["conn_id"] == ours["conn_id"]) & (events["exchange_id"] == ours["exchange_id"])]
        if body.chunk_sizes:
            # Each write was a chunk and an item (the last chunk is the "end" item's, with the gzip
            # stream's final flush when coded): the same sizes.
            assert sorted([size for size in items["wire_payload_bytes"] if size] + [0]) == body.chunk_sizes
            assert ours["chunk_framing_bytes"] == sum(len(f"{size:x}") + 2 + (2 if size else 0) for size in body.chunk_sizes) + 2


@needs_tshark
def test_wire_bytes_per_connection_equal_tsharks(recorded):
    recording, analysis = recorded
    theirs = oracle.tcp_frame_bytes_by_endpoints(recording.path)
    for row in analysis["connections"].itertuples():
        key = tuple(sorted([(row.client_ip, row.client_port), (row.server_ip, row.server_port)]))
        assert theirs[key] == row.wire_bytes


def test_the_reconnection_and_its_gap(recorded):
    recording, analysis = recorded
    connections = analysis["connections"].set_index("client_port")
    (row,) = analysis["sse_reconnections"].itertuples()
    dropped, resumed = connections.loc[recording.dropped], connections.loc[recording.resumed]
    assert (row.conn_id, row.previous_conn_id, row.last_event_id) == (resumed["conn_id"], dropped["conn_id"], recording.last_event_id)
    assert (row.previous_last_event_id, row.first_event_id, row.id_check) == (str(DROP_AFTER), str(DROP_AFTER + 1), "next")
    events = analysis["sse_events"]
    last = events[(events["conn_id"] == dropped["conn_id"]) & (events["kind"] == "event")]["ts"].max()
    first = events[(events["conn_id"] == resumed["conn_id"]) & (events["kind"] == "event")]["ts"].min()
    assert row.gap_s == first - last and row.gap_s > RETRY_MS / 1000  # the client waited the retry the server asked for
    assert not analysis["findings"]["rule"].str.startswith("sse-").any()


def test_the_store_query_and_export_carry_the_tables(recorded, tmp_path):
    recording, analysis = recorded
    store = tmp_path / "store"
    run = [sys.executable, "-m", "inspector"]
    subprocess.run([*run, "analyze", str(recording.path), "--store", str(store), "--jobs", "2"], check=True, capture_output=True)
    opened = open_store(store)  # written by two workers, in another process
    for name in ("sse_events", "sse_reconnections", "findings", "connections", "message_costs", "overhead"):
        pd.testing.assert_frame_equal(opened.table(name), analysis[name], check_exact=True)
    out = subprocess.run([*run, "query", str(store), "SELECT count(*) AS events FROM sse_events WHERE kind = 'event'"],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    assert out[0].split() == ["events"] and out[2].strip() == str((analysis["sse_events"]["kind"] == "event").sum())
    subprocess.run([*run, "analyze", str(recording.path), "--export", str(tmp_path / "csv"), "--no-cache"], check=True, capture_output=True)
    exported = pd.read_csv(tmp_path / "csv" / "sse_events.csv")
    assert len(exported) == len(analysis["sse_events"])
    assert (tmp_path / "csv" / "sse_reconnections.csv").exists()


@needs_tshark
def test_http2_streams_items_own_their_data_frames_as_tshark_reads_them(recorded_h2):
    recording, analysis = recorded_h2
    (frames,) = oracle.http2_connections(recording.path, recording.server_port).values()
    events = analysis["sse_events"]
    for stream_id, rows in events.groupby("stream_id"):
        data = [frame for frame in frames["server"] if frame.stream_id == stream_id and frame.frame_type == 0]
        assert rows["wire_payload_bytes"].sum() == sum(frame.length - frame.padding for frame in data)
        assert rows["framing_bytes"].sum() == sum(9 + frame.padding for frame in data)
    # The event sent in two DATA frames, with the other stream's frames between them, owns both.
    split = events[events["data_text"].str.startswith('{"seq": 2')]
    assert len(split) == 2 and (split["framing_bytes"] == 18).all()
    assert SPLIT_EVENT.startswith(b"event: tick") and (split["event_type"] == "tick").all()
