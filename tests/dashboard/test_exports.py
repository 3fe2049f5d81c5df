"""CSV exports as plain functions: each parses back with pandas to the numbers of the analysis tables."""

from __future__ import annotations

from datetime import datetime, timezone

import io
from pathlib import Path

import pandas as pd
import pytest

from dashboard import exports
from dashboard.components import PAGE_SIZE, send_csv
from inspector.analysis.tables import make_table
from tests.dashboard.conftest import capture_name

HOSTILE = "<img src=x onerror=alert(1)>"


def parsed(page, tables, state=None) -> tuple[str, pd.DataFrame]:
    filename, text = exports.export_csv(page, tables, state)
    return filename, pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])


def short(capture) -> str:
    return Path(str(capture)).name


def test_overview_is_the_per_capture_table(tables):
    filename, csv = parsed("overview", tables)
    assert filename == "overview-captures.csv"
    captures = tables["captures"]
    assert sorted(csv["capture"]) == sorted(captures["capture"].map(short))
    conns = tables["connections"]
    for row in captures.itertuples(index=False):
        got = csv[csv["capture"] == short(row.capture)].iloc[0]
        assert (got["packets"], got["connections"], got["wire_bytes"]) == (row.packets, row.connections, row.wire_bytes)
        mine = conns[conns["capture"] == row.capture]
        assert got["ws_messages"] == mine["ws_messages"].sum()
        assert got["rest_exchanges"] == mine.loc[mine["kind"].isin(["rest", "http2"]), "http_requests"].sum()
        assert got["efficiency"] == pytest.approx(mine["app_payload_bytes"].sum() / mine["wire_bytes"].sum())
        assert got["wire_payload_efficiency"] == pytest.approx(mine["wire_payload_bytes"].sum() / mine["wire_bytes"].sum())


def test_compare_is_the_cost_split_of_the_selected_capture(tables):
    capture = capture_name("chat")
    filename, csv = parsed("compare", tables, {"capture": capture})
    assert filename == "compare-cost-per-message-chat.pcap.csv"
    assert set(csv["capture"]) == {"chat.pcap"}
    # expectations straight from message_costs: application items, weighted 2 per REST exchange
    conns = tables["connections"].set_index("conn_id")
    costs = tables["message_costs"]
    costs = costs[costs["item"].isin(["exchange", "ws_message"])]
    costs = costs[costs["conn_id"].map(conns["capture"]) == capture]
    group = costs["conn_id"].map(conns["variant"])
    messages = costs["item"].map({"exchange": 2, "ws_message": 1}).groupby(group).sum()
    wire = costs["wire_bytes"].groupby(group).sum()
    payload = costs["app_payload_bytes"].groupby(group).sum()
    assert sorted(csv["group"]) == sorted(messages.index)
    assert len(messages) >= 2
    for row in csv.itertuples(index=False):
        assert row.messages == messages[row.group]
        assert row.wire_bytes * row.messages == pytest.approx(wire[row.group])
        assert row.app_payload_bytes * row.messages == pytest.approx(payload[row.group])
        assert row.efficiency == pytest.approx(payload[row.group] / wire[row.group])
    # another selection, another export
    _, bulk = parsed("compare", tables, {"capture": capture_name("bulk")})
    assert set(bulk["capture"]) == {"bulk.pcap"} and not bulk.equals(csv)


def test_push_is_the_variants_of_the_selected_push_recording(tables):
    filename, csv = parsed("push", tables, {"capture": capture_name("feed")})
    assert filename == "push-variants-feed.pcap.csv" and set(csv["capture"]) == {"feed.pcap"}
    conns = tables["connections"][tables["connections"]["capture"] == capture_name("feed")]
    staleness = tables["staleness"][tables["staleness"]["capture"] == capture_name("feed")]
    assert sorted(csv["group"]) == sorted(conns["variant"].unique())
    for row in csv.itertuples(index=False):
        mine = conns[conns["variant"] == row.group]
        assert row.wire_bytes == mine["wire_bytes"].sum() and row.updates == (staleness["variant"] == row.group).sum()
        assert row.bytes_per_update == pytest.approx(mine["wire_bytes"].sum() / row.updates)
    # a capture that is no push recording: the columns, no rows
    filename, chat = parsed("push", tables, {"capture": capture_name("chat")})
    assert filename == "push-variants-chat.pcap.csv" and chat.empty and list(chat.columns) == list(csv.columns)


def test_connections_export_every_page_with_the_filter_and_sort(tables):
    conns = tables["connections"]
    filename, everything = parsed("connections", tables, {})
    assert filename == "connections.csv"
    assert len(everything) == len(conns) > PAGE_SIZE  # every page, not the one shown
    assert everything["wire_bytes"].sum() == conns["wire_bytes"].sum()

    state = {"filterModel": {"kind": {"filterType": "text", "type": "equals", "filter": "websocket"}},
             "sortModel": [{"colId": "wire_bytes", "sort": "desc"}]}
    _, ws = parsed("connections", tables, state)
    expected = conns[conns["kind"] == "websocket"].sort_values("wire_bytes", ascending=False, kind="stable")
    assert list(ws["conn_id"]) == list(expected["conn_id"])
    assert list(ws["wire_bytes"]) == list(expected["wire_bytes"])
    assert list(ws["packets"]) == list(expected["packets"])
    assert ws["duration_ms"].to_numpy() == pytest.approx((expected["end_ts"] - expected["start_ts"]).to_numpy() * 1000.0)


def test_frames_export_times_since_the_capture_start_and_absolute_in_utc(tables):
    """t_s counts from the capture's first TCP packet (its connections' earliest start); ts and
    utc are the absolute time, as epoch seconds and as UTC text to the microsecond."""
    _, everything = parsed("frames", tables, {})
    conns = tables["connections"]
    capture_of = conns.set_index("conn_id")["capture"]
    first = conns.groupby("capture")["start_ts"].min()
    assert everything["t_s"].to_numpy() == pytest.approx((everything["ts"] - everything["conn_id"].map(capture_of).map(first)).to_numpy(), abs=1e-9)
    assert (everything["t_s"] >= 0).all() and (everything.groupby(everything["conn_id"].map(capture_of))["t_s"].min() < 1.0).all()
    assert list(everything["utc"]) == [datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC") for ts in everything["ts"]]


def test_frames_export_every_row_without_payloads(tables):
    frames, http = tables["ws_frames"], tables["http_messages"]
    filename, everything = parsed("frames", tables, {})
    assert filename == "frames.csv"
    assert len(everything) == len(frames) + len(http) > PAGE_SIZE
    assert not any("payload_text" in c or "hex" in c for c in everything.columns)

    conn = int(frames["conn_id"].iloc[0])
    _, one = parsed("frames", tables, {"filterModel": {"conn_id": {"filterType": "number", "type": "equals", "filter": conn}}})
    mine = frames[frames["conn_id"] == conn]
    assert set(one["conn_id"]) == {conn}
    assert len(one) == len(mine) + (http["conn_id"] == conn).sum()
    ws = one[one["protocol"] == "websocket"]
    assert ws["payload_bytes"].sum() == mine["payload_length"].sum()
    assert ws["header_bytes"].sum() == mine["header_bytes"].sum()


def hostile_findings(tables):
    findings = make_table("findings", [
        {"conn_id": 1, "capture": "/x/chat.pcap", "ts": 2.0, "direction": "client", "rule": "b-rule", "detail": HOSTILE},
        {"conn_id": 2, "capture": "/x/chat.pcap", "ts": 1.0, "direction": "server", "rule": "a-rule", "detail": "=HYPERLINK(\"http://x\")"},
        {"conn_id": 1, "capture": "/x/chat.pcap", "ts": 1.0, "direction": "server", "rule": "b-rule", "detail": "+1"},
    ])
    return {**tables, "findings": findings}


def test_findings_grouped_by_rule_and_formulas_defused(tables):
    filename, csv = parsed("findings", hostile_findings(tables))
    assert filename == "findings.csv"
    # most frequent rule first, then by time, as the page lists them
    assert list(csv["rule"]) == ["b-rule", "b-rule", "a-rule"]
    assert list(csv["conn_id"]) == [1, 1, 2]
    assert list(csv["detail"]) == ["'+1", HOSTILE, "'=HYPERLINK(\"http://x\")"]  # text kept, formulas not live
    assert set(csv["capture"]) == {"chat.pcap"}
    assert list(csv["utc"]) == ["1970-01-01 00:00:01.000000 UTC", "1970-01-01 00:00:02.000000 UTC", "1970-01-01 00:00:01.000000 UTC"]


def test_findings_export_of_the_bundled_captures(tables):
    _, csv = parsed("findings", tables)
    assert len(csv) == len(tables["findings"])
    assert list(csv.columns) == ["rule", "conn_id", "capture", "direction", "ts", "detail", "utc"]


def test_unknown_page_is_an_error(tables):
    with pytest.raises(ValueError, match="no CSV export"):
        exports.export_csv("nope", tables, {})


def test_send_csv_is_download_data(tables):
    data = send_csv("overview", tables)
    assert data["filename"] == "overview-captures.csv" and data["type"] == "text/csv" and not data["base64"]
    assert data["content"] == exports.export_csv("overview", tables)[1]
