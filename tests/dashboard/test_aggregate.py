"""Aggregations checked against the tables and the recordings' sidecars, computed independently."""

from __future__ import annotations

import re

import json
import math

import numpy as np
import pandas as pd
import pytest

from dashboard import aggregate
from inspector.analysis.tables import BYTE_CATEGORIES, make_table
from tests.conftest import BUNDLED
from tests.dashboard.conftest import capture_name


def test_capture_overview_counts_match_the_tables(tables):
    out = aggregate.capture_overview(tables).set_index("capture")
    conns, http, ws = tables["connections"], tables["http_messages"], tables["ws_messages"]
    for capture in tables["captures"]["capture"]:
        mine = conns[conns["capture"] == capture]
        rest_ids = set(mine[mine["kind"].isin(["rest", "http2"])]["conn_id"])  # HTTP/1.1 and HTTP/2 exchanges
        requests = http[http["conn_id"].isin(rest_ids) & (http["direction"] == "client")]
        assert out.loc[capture, "rest_exchanges"] == len(requests)
        assert out.loc[capture, "ws_messages"] == ws["conn_id"].isin(set(mine["conn_id"])).sum()
        assert out.loc[capture, "connections"] == len(mine)
        assert out.loc[capture, "efficiency"] == pytest.approx(mine["app_payload_bytes"].sum() / mine["wire_bytes"].sum())
        assert out.loc[capture, "wire_payload_efficiency"] == pytest.approx(mine["wire_payload_bytes"].sum() / mine["wire_bytes"].sum())
        saved = mine["app_payload_bytes"].sum() - mine["wire_payload_bytes"].sum()
        assert out.loc[capture, "compression_saved_bytes"] == saved


def test_overview_counts_http2_exchanges_as_rest(tables):
    """h2.pcap: its REST exchanges are the requests the recording's ledger sent over rest-keepalive
    and rest-h2 (HTTP/2), from the sidecar, not from the tables."""
    sidecar = json.loads((BUNDLED / "h2.json").read_text(encoding="utf-8"))
    sent = sum(variant["messages_sent"]["client"] for variant in sidecar["variants"] if variant["protocol"] == "rest")
    out = aggregate.capture_overview(tables).set_index("capture")
    assert sent == 20 and out.loc[capture_name("h2"), "rest_exchanges"] == sent


def test_bytes_by_category_adds_up_to_wire_bytes_and_matches_overhead(tables):
    out = aggregate.bytes_by_category(tables["connections"])
    assert (out[list(BYTE_CATEGORIES)].sum(axis=1) == out["wire_bytes"]).all()
    overhead = tables["overhead"].set_index("variant")
    for row in out.itertuples():
        assert row.wire_bytes == overhead.loc[row.group, "wire_bytes"]


def test_message_counts_follow_the_sidecar_ledger(tables, sidecars):
    # The recorder counts requests, responses and WebSocket data messages each way.
    for stem in ("chat", "bulk", "feed"):
        split = aggregate.message_cost_split(tables, capture_name(stem)).set_index("group")
        for variant in sidecars[stem]["variants"]:
            sent = variant["messages_sent"]["client"] + variant["messages_sent"]["server"]
            if variant["protocol"] == "sse":  # each stream's response head is a message too, which the ledger leaves out
                sent += len(variant["sse"]["streams"])
            assert split.loc[variant["name"], "messages"] == sent, (stem, variant["name"])


def test_feed_costs_are_per_update_delivered_not_per_poll(tables, sidecars):
    # Polling asks 40 times and gets 20 updates (the others are empty); push sends the 20 updates.
    feed = capture_name("feed")
    split = aggregate.message_cost_split(tables, feed).set_index("group")
    updates = {v["name"]: v["messages_sent"]["server"] for v in sidecars["feed"]["variants"] if v["protocol"] == "websocket"}
    conns = tables["connections"]
    pollers = [v["name"] for v in sidecars["feed"]["variants"] if v["protocol"] == "rest"]
    assert pollers == ["rest-polling", "rest-h2", "rest-long-polling"]  # over HTTP/1.1 and HTTP/2 (kind http2): all REST
    for name in pollers:
        polling = conns[(conns["capture"] == feed) & (conns["variant"] == name)]["conn_id"]
        http = tables["http_messages"][tables["http_messages"]["conn_id"].isin(polling)]
        with_body = int((http["body_bytes"] > 0).sum())
        assert with_body == updates["ws"] == updates["ws-deflate"] < len(http)
        assert split.loc[name, "payload_messages"] == with_body
        assert split.loc[name, "messages"] == len(http)
        costs = tables["message_costs"]
        poll_rows = costs[costs["conn_id"].isin(polling) & (costs["item"] == "exchange")]
        assert split.loc[name, "wire_bytes"] == pytest.approx(poll_rows["wire_bytes"].sum() / with_body)
    curves = aggregate.break_even_curves(tables, feed)
    ends = curves.groupby("group")["messages"].max()
    assert set(ends) == {with_body}  # the same work ends at the same x for every variant
    for group, curve in curves.groupby("group"):
        mine = conns[(conns["capture"] == feed) & (conns["variant"] == group)]
        assert curve["wire_bytes"].iloc[-1] == pytest.approx(mine["wire_bytes"].sum())


def test_a_group_without_payload_has_its_whole_cost_at_zero_messages(tables):
    curves = aggregate.break_even_curves(tables, capture_name("idle"))
    conns = tables["connections"]
    for group, curve in curves.groupby("group"):
        mine = conns[(conns["capture"] == capture_name("idle")) & (conns["variant"] == group)]
        assert list(curve["messages"]) == [0]
        assert curve["wire_bytes"].iloc[0] == mine["wire_bytes"].sum()
    assert aggregate.message_cost_split(tables, capture_name("idle"))["wire_bytes"].isna().all()


def test_cost_split_layers_add_up_to_the_message_rows(tables):
    split = aggregate.message_cost_split(tables, capture_name("chat")).set_index("group")
    costs = tables["message_costs"].merge(tables["connections"][["conn_id", "variant", "capture"]], on="conn_id")
    costs = costs[(costs["capture"] == capture_name("chat")) & costs["item"].isin(["exchange", "ws_message"])]
    for variant, rows in costs.groupby("variant"):
        layers = split.loc[variant, list(aggregate.COST_LAYERS)].sum()
        assert layers == pytest.approx(split.loc[variant, "wire_bytes"])
        assert split.loc[variant, "wire_bytes"] * split.loc[variant, "messages"] == pytest.approx(rows["wire_bytes"].sum())
        assert split.loc[variant, "app_payload_bytes"] * split.loc[variant, "messages"] == rows["app_payload_bytes"].sum()


def test_break_even_curves_start_at_setup_and_end_at_total(tables, sidecars):
    curves = aggregate.break_even_curves(tables)
    conns = tables["connections"]
    costs = tables["message_costs"]
    for (capture, group), curve in curves.groupby(["capture", "group"]):
        mine = conns[(conns["capture"] == capture) & (conns["variant"] == group)]
        assert curve["wire_bytes"].iloc[-1] == pytest.approx(mine["wire_bytes"].sum())
        assert (np.diff(curve["wire_bytes"]) >= 0).all() and (np.diff(curve["messages"]) > 0).all()
        first = mine.sort_values("start_ts").iloc[0]
        if curve["messages"].iloc[-1] > 0:
            fixed = costs[(costs["conn_id"] == first["conn_id"]) & ~costs["item"].isin(["exchange", "ws_message", "sse_event"])]["wire_bytes"].sum()
            assert curve["wire_bytes"].iloc[0] == pytest.approx(fixed)
            assert curve["wire_bytes"].iloc[0] >= first["setup_bytes"]
    chat = curves[curves["capture"] == capture_name("chat")].groupby("group")["messages"].max()
    for variant in sidecars["chat"]["variants"]:
        assert chat[variant["name"]] == sum(variant["messages_sent"].values())


def test_crossover_of_known_lines():
    a = pd.DataFrame({"messages": [0, 10], "wire_bytes": [0.0, 100.0]})
    b = pd.DataFrame({"messages": [0, 4, 10], "wire_bytes": [50.0, 50.0, 50.0]})
    assert aggregate.crossover(a, b) == pytest.approx((5.0, 50.0))
    assert aggregate.crossover(a, a) is None
    assert aggregate.crossover(a, b.assign(wire_bytes=b["wire_bytes"] + 100)) is None


def test_chat_crossover_is_where_the_curves_meet(tables):
    curves = aggregate.break_even_curves(tables, capture_name("chat"))
    crossings = aggregate.break_even_crossovers(curves).set_index(["rest", "websocket"])
    x = crossings.loc[("rest-keepalive", "ws"), "crossover_messages"]
    rest = curves[curves["group"] == "rest-keepalive"]
    ws = curves[curves["group"] == "ws"]
    # WebSocket starts dearer (the upgrade) and ends cheaper, so they cross inside the run.
    assert ws["wire_bytes"].iloc[0] > rest["wire_bytes"].iloc[0] and ws["wire_bytes"].iloc[-1] < rest["wire_bytes"].iloc[-1]
    assert 0 < x < 40
    assert aggregate.curve_at(rest, x) == pytest.approx(aggregate.curve_at(ws, x))


def test_rest_latency_is_response_end_minus_request(tables):
    lat = aggregate.rest_latency(tables)
    http = tables["http_messages"]
    # REST over HTTP/1.1 and over HTTP/2 (an exchange is a stream there)
    rest_ids = set(tables["connections"].query("kind in ('rest', 'http2')")["conn_id"])
    h2_ids = set(tables["connections"].query("kind == 'http2'")["conn_id"])
    assert h2_ids and set(lat["kind"]) == {"rest", "http2"}
    for conn_id in (min(rest_ids - h2_ids), min(h2_ids)):
        first = http[http["conn_id"] == conn_id]
        exchange = first["exchange_id"].min()
        expected = (first[(first.exchange_id == exchange) & (first.direction == "server")]["end_ts"].iloc[0]
                    - first[(first.exchange_id == exchange) & (first.direction == "client")]["ts"].iloc[0])
        assert lat[lat["conn_id"] == conn_id]["latency_s"].iloc[0] == pytest.approx(expected)
    assert len(lat) == len(http[http["conn_id"].isin(rest_ids) & (http["direction"] == "server")])
    assert (lat["latency_s"] > 0).all()


def test_ws_latency_pairs_chat_and_not_a_push_feed(tables):
    lat = aggregate.ws_latency(tables)
    chat = lat[lat["capture"] == capture_name("chat")]
    assert chat.groupby("group").size().to_dict() == {"ws": 20, "ws-deflate": 20}
    assert (chat["paired_by"] == "id").all()  # chat messages carry "seq" both ways
    bulk = lat[lat["capture"] == capture_name("bulk")]
    assert len(bulk) and (bulk["paired_by"] == "nearest").all()  # bulk asks carry no id
    assert lat[lat["capture"] == capture_name("feed")].empty
    assert (lat["latency_s"] > 0).all()


def test_staleness_summary_matches_the_sidecar(tables, sidecars):
    out = aggregate.staleness_summary(tables["staleness"]).set_index("variant")
    variants = [v["name"] for v in sidecars["feed"]["variants"]]
    assert sorted(out.index) == sorted(variants) and "rest-h2" in variants
    for variant in variants:
        values = [s["received_ts"] - s["published_ts"] for s in sidecars["feed"]["staleness"] if s["variant"] == variant]
        assert out.loc[variant, "updates"] == len(values)
        assert out.loc[variant, "mean_s"] == pytest.approx(sum(values) / len(values), abs=1e-6)
        assert out.loc[variant, "max_s"] == pytest.approx(max(values), abs=1e-6)


def test_claims_state_numbers_and_verdicts(tables):
    out = aggregate.claims(tables)
    assert [c["claim"] for c in out] == [
        "REST costs more per message than WebSocket", "WebSocket is cheaper for frequent back-and-forth",
        "REST is fine when interaction is rare", "WebSocket pays a setup cost and keeps state"]
    assert all(c["verdict"] in aggregate.VERDICTS and c["how"] for c in out)
    conns = tables["connections"]
    ws_setup = conns[conns["kind"] == "websocket"]["setup_bytes"].mean()
    rest_setup = conns[conns["kind"].isin(aggregate.REST_KINDS)]["setup_bytes"].mean()
    (setup,) = out[3]["captures"]
    assert f"{ws_setup:,.0f} B per WebSocket connection" in setup["measured"] and f"{rest_setup:,.0f} B per REST connection" in setup["measured"]
    assert out[3]["verdict"] == setup["verdict"] == "holds" and ws_setup > 1.05 * rest_setup
    # chat: plain WebSocket total vs REST keep-alive total, from the connections table
    chat = conns[conns["capture"] == capture_name("chat")].groupby("variant")["wire_bytes"].sum()
    (row,) = [r for r in out[1]["captures"] if r["capture"] == "chat.pcap"]
    assert f"{chat['ws']:,.0f} B over WebSocket (ws) vs {chat['rest-keepalive']:,.0f} B over REST (rest-keepalive)" in row["measured"]
    assert chat["ws"] < 0.95 * chat["rest-keepalive"] and row["verdict"] == "holds"


def test_a_difference_under_the_threshold_is_no_material_difference(tables):
    """bulk.pcap: REST and WebSocket cost within 1 % of each other per message (big payloads, the
    headers are noise): neither "holds" nor "does not hold", and it does not sway the claim."""
    cost = aggregate.claims(tables)[0]
    (bulk,) = [r for r in cost["captures"] if r["capture"] == "bulk.pcap"]
    rest, ws = (float(n.replace(",", "")) for n in re.findall(r"([\d,]+) B/message", bulk["measured"]))
    assert abs(rest - ws) / max(rest, ws) < aggregate.MATERIAL_DIFFERENCE
    assert bulk["verdict"] == "no material difference"
    others = [r["verdict"] for r in cost["captures"] if r is not bulk]
    assert cost["verdict"] == ("holds" if all(v == "holds" for v in others if v != "no material difference") else "does not hold")
    assert aggregate.measured_verdict(True, 100, 95.1) == "no material difference"
    assert aggregate.measured_verdict(True, 100, 95) == aggregate.measured_verdict(True, 95, 100) == "holds"
    assert aggregate.measured_verdict(False, 100, 90) == "does not hold"
    assert aggregate.overall_verdict(["no material difference", "no material difference"]) == "no material difference"
    assert aggregate.overall_verdict(["holds", "no material difference", "does not hold"]) == "does not hold"
    assert aggregate.overall_verdict([]) == "not measurable here"


def test_claims_cannot_tell_without_websocket(tables):
    rest_only = {name: t for name, t in tables.items()}
    ids = set(tables["connections"].query("kind == 'rest'")["conn_id"])
    for name in ("connections", "message_costs", "http_messages", "ws_messages", "ws_frames"):
        rest_only[name] = tables[name][tables[name]["conn_id"].isin(ids)]
    assert [c["verdict"] for c in aggregate.claims(rest_only)] == ["not measurable here"] * 4


def test_protocol_mix_keeps_every_byte(tables):
    capture = capture_name("chat")
    mix = aggregate.protocol_mix(tables, capture, bins=10)
    conns = tables["connections"][tables["connections"]["capture"] == capture]
    assert mix["wire_bytes"].sum() == pytest.approx(conns["wire_bytes"].sum())
    assert mix.groupby("kind")["wire_bytes"].sum().to_dict() == pytest.approx(conns.groupby("kind")["wire_bytes"].sum().to_dict())
    assert mix["t_s"].nunique() <= 10


def test_connection_attribution_and_timeline(tables):
    conns = tables["connections"]
    ws = conns[(conns["variant"] == "ws") & (conns["capture"] == capture_name("chat"))].iloc[0]
    attribution = aggregate.connection_attribution(conns, ws["conn_id"])
    assert attribution["bytes"].sum() == ws["wire_bytes"]
    events = aggregate.connection_timeline(tables, ws["conn_id"])
    frames = tables["ws_frames"][tables["ws_frames"]["conn_id"] == ws["conn_id"]]
    http = tables["http_messages"][tables["http_messages"]["conn_id"] == ws["conn_id"]]
    assert (events["kind"].isin(["ws-data", "ws-control"])).sum() == len(frames)
    assert (events["kind"] == "http").sum() == len(http) == 2  # the upgrade
    assert events["t_ms"].is_monotonic_increasing and events["t_ms"].min() >= 0
    assert aggregate.connection_timeline(tables, -1).empty


def number_filter(kind: str, value, **more) -> dict:
    return {"filterType": "number", "type": kind, "filter": value, **more}


def text_filter(kind: str, value) -> dict:
    return {"filterType": "text", "type": kind, "filter": value}


def test_query_rows_filters_sorts_and_cuts_like_pandas(tables):
    index = aggregate.connections_index(tables["connections"])
    filters = {"kind": text_filter("contains", "REST"), "wire_bytes": number_filter("greaterThan", 1000)}
    rows, count = aggregate.query_rows(index, 5, 10, [{"colId": "wire_bytes", "sort": "desc"}], filters)
    expected = index[(index["kind"] == "rest") & (index["wire_bytes"] > 1000)].sort_values("wire_bytes", ascending=False, kind="stable")
    assert count == len(expected) > 10  # the rows the filter keeps, every page
    assert list(rows["conn_id"]) == list(expected["conn_id"].iloc[5:10])
    # beyond the last row: nothing, and still the row count
    rows, count = aggregate.query_rows(index, 980, 1000, [], {})
    assert rows.empty and count == len(index)
    # a column the table lacks, an unfinished condition, an unknown sort: no effect
    rows, count = aggregate.query_rows(index, 0, 1000, [{"colId": "nope", "sort": "asc"}],
                                       {"nope": number_filter("equals", 3), "packets": number_filter("equals", None)})
    assert count == len(index) and list(rows["conn_id"]) == list(index["conn_id"])


@pytest.mark.parametrize("sort_model, filter_model", [
    ([{"colId": "packets", "sort": "asc"}], {"wire_bytes": number_filter("greaterThan", "lots")}),
    ([{"colId": ["packets"], "sort": "asc"}, "packets", None], {"wire_bytes": number_filter("equals", [1])}),
    ({"colId": "packets"}, {"wire_bytes": number_filter("inRange", 1, filterTo="x")}),
    ([], {"kind": {"filterType": "text", "type": ["contains"], "filter": "rest"}}),
    ([], {"kind": "rest", "packets": [1, 2], "wire_bytes": {"conditions": "nope"}}),
    ([], {"wire_bytes": {"filterType": "number", "conditions": [number_filter("greaterThan", 1e999)] * 100_000 + [7]}}),
    ([], ["not", "a", "model"]),
])
def test_crafted_models_are_answered_not_raised(tables, sort_model, filter_model):
    """The grid's requests come from the browser and may be crafted: a model not shaped as AG
    Grid sends it filters or sorts nothing (never a 500)."""
    index = aggregate.connections_index(tables["connections"])
    rows, count = aggregate.query_rows(index, 0, 1000, sort_model, filter_model)
    assert 0 <= count <= len(index) and len(rows) == min(count, 1000)


def test_sort_model_sorts_by_each_column_in_turn(tables):
    index = aggregate.connections_index(tables["connections"])
    model = [{"colId": "kind", "sort": "asc"}, {"colId": "packets", "sort": "desc"}]
    expected = index.sort_values(["kind", "packets"], ascending=[True, False], kind="stable")
    assert list(aggregate.sort_rows(index, model)["conn_id"]) == list(expected["conn_id"])
    assert aggregate.sort_rows(index, None) is index


@pytest.mark.parametrize("condition, keep", [
    (number_filter("equals", 3), [3]),
    (number_filter("notEqual", 3), [1, 2, 4]),
    (number_filter("lessThan", 3), [1, 2]),
    (number_filter("lessThanOrEqual", 3), [1, 2, 3]),
    (number_filter("greaterThan", 3), [4]),
    (number_filter("greaterThanOrEqual", 3), [3, 4]),
    (number_filter("inRange", 1, filterTo=4), [2, 3]),  # AG Grid's range leaves out both ends
    ({"filterType": "number", "type": "blank"}, [None]),
    ({"filterType": "number", "type": "notBlank"}, [1, 2, 3, 4]),
    ({"filterType": "number", "operator": "OR", "conditions": [number_filter("lessThan", 2), number_filter("greaterThan", 3)]}, [1, 4]),
    ({"filterType": "number", "operator": "AND", "conditions": [number_filter("greaterThan", 1), number_filter("lessThan", 4)]}, [2, 3]),
])
def test_number_conditions(condition, keep):
    values = pd.Series([1, 2, 3, 4, None], dtype="Int64")
    mask = aggregate.filter_mask(values, condition)
    assert [None if pd.isna(v) else int(v) for v in values[mask.to_numpy()]] == keep


@pytest.mark.parametrize("condition, keep", [
    (text_filter("contains", "WS"), ["ws", "ws-deflate"]),
    (text_filter("notContains", "ws"), ["rest-keepalive", "<b>x</b>", ""]),
    (text_filter("equals", "ws"), ["ws"]),
    (text_filter("notEqual", "ws"), ["rest-keepalive", "ws-deflate", "<b>x</b>", ""]),
    (text_filter("startsWith", "rest"), ["rest-keepalive"]),
    (text_filter("endsWith", "deflate"), ["ws-deflate"]),
    (text_filter("contains", "<b>"), ["<b>x</b>"]),  # matched as text, not a pattern or markup
    (text_filter("contains", "."), []),
    ({"filterType": "text", "type": "blank"}, [""]),
    ({"filterType": "text", "operator": "OR", "conditions": [text_filter("equals", "ws"), text_filter("startsWith", "rest")]},
     ["rest-keepalive", "ws"]),
])
def test_text_conditions_ignore_case(condition, keep):
    values = pd.Series(["rest-keepalive", "ws", "ws-deflate", "<b>x</b>", None], dtype="string")
    mask = aggregate.filter_mask(values, condition)
    assert values[mask.to_numpy()].fillna("").tolist() == keep


def test_frame_detail_is_plain_text(tables):
    frames = tables["ws_frames"].copy()
    hostile = "<img src=x onerror=alert(1)>"
    frames.loc[0, "payload_text"] = hostile
    detail = aggregate.frame_detail({**tables, "ws_frames": frames}, f"ws:{frames.loc[0, 'conn_id']}:{frames.loc[0, 'frame_id']}")
    assert detail["text"] == hostile
    assert dict(detail["fields"])["opcode_name"] == frames.loc[0, "opcode_name"]
    assert aggregate.frame_detail(tables, "ws:999999:0") is None
    assert aggregate.frame_detail(tables, "bogus") is None
    index = aggregate.frames_index(tables)
    assert len(index) == len(tables["ws_frames"]) + len(tables["http_messages"])
    http_key = index[index["protocol"] == "http"]["key"].iloc[0]
    assert aggregate.frame_detail(tables, http_key)["title"].startswith("HTTP")


def test_findings_by_rule_and_frame_findings(tables):
    frame = tables["ws_frames"].iloc[0]
    rows = [{"conn_id": int(frame["conn_id"]), "capture": "x", "ts": float(frame["ts"]), "direction": frame["direction"], "rule": "ws-bad-version", "detail": "d"},
            {"conn_id": int(frame["conn_id"]), "capture": "x", "ts": 1.0, "direction": "server", "rule": "ws-bad-version", "detail": "d"},
            {"conn_id": None, "capture": "x", "ts": 1.0, "direction": "", "rule": "tcp-client-guessed", "detail": "d"}]
    findings = make_table("findings", rows)
    grouped = aggregate.findings_by_rule(findings)
    assert grouped.to_dict("list") == {"rule": ["ws-bad-version", "tcp-client-guessed"], "count": [2, 1], "connections": [[int(frame["conn_id"])], []]}
    detail = aggregate.frame_detail({**tables, "findings": findings}, f"ws:{frame['conn_id']}:{frame['frame_id']}")
    assert len(detail["findings"]) == 1 and detail["connection_findings"] == 2
    assert aggregate.findings_by_rule(make_table("findings")).empty


def test_break_even_tls_part_is_the_tls_layer_of_the_tables(tables):
    """tls.pcap: each group's TLS part ends at its connections' tls_* categories, starts at what of
    them its messages do not carry (the handshake), and rises by each message's tls_overhead_bytes;
    below the curve throughout. Without TLS (chat.pcap) it is 0."""
    tls_columns = [c for c in BYTE_CATEGORIES if c.startswith("tls_")]
    conns, costs = tables["connections"], tables["message_costs"]
    curves = aggregate.break_even_curves(tables, capture_name("tls"))
    assert set(curves["group"]) == {"rest-keepalive", "rest-h2", "ws", "ws-deflate"}
    for group, curve in curves.groupby("group"):
        (conn_id,) = conns[(conns["capture"] == capture_name("tls")) & (conns["variant"] == group)]["conn_id"]
        total = conns.loc[conns["conn_id"] == conn_id, tls_columns].to_numpy().sum()
        messages = costs[(costs["conn_id"] == conn_id) & costs["item"].isin(["exchange", "ws_message"])].sort_values(["ts", "item_index"])
        assert total > 0 and (messages["payload_messages"] > 0).all()
        assert curve["tls_bytes"].iloc[-1] == total
        assert curve["tls_bytes"].iloc[0] == total - messages["tls_overhead_bytes"].sum()
        assert list(np.diff(curve["tls_bytes"])) == list(messages["tls_overhead_bytes"])
        assert (curve["tls_bytes"] < curve["wire_bytes"]).all()
    assert (aggregate.break_even_curves(tables, capture_name("chat"))["tls_bytes"] == 0).all()
