"""The push aggregates (dashboard.push) on the bundled feed and idle recordings, checked against the
tables and the sidecars, computed here independently."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dashboard import push
from inspector.analysis.tables import BYTE_CATEGORIES
from tests.dashboard.conftest import capture_name

FEED, IDLE, CHAT = capture_name("feed"), capture_name("idle"), capture_name("chat")


def test_push_recordings_are_the_feed_and_idle_captures_by_their_sidecars(tables, sidecars):
    assert tables["captures"].set_index("capture")["scenario"].to_dict() == {capture_name(stem): sidecar["scenario"]
                                                                              for stem, sidecar in sidecars.items()}
    assert sorted(push.push_captures(tables["captures"])) == sorted([FEED, IDLE])
    assert push.push_costs(tables, CHAT).empty


def test_a_feed_variant_costs_all_its_bytes_over_the_updates_its_client_received(tables, sidecars):
    costs = push.push_costs(tables, FEED).set_index("group")
    conns = tables["connections"][tables["connections"]["capture"] == FEED]
    staleness = tables["staleness"][tables["staleness"]["capture"] == FEED]
    assert set(costs.index) == {variant["name"] for variant in sidecars["feed"]["variants"]}
    for group, row in costs.iterrows():
        mine = conns[conns["variant"] == group]
        received = staleness[staleness["variant"] == group]
        assert row["updates"] == len(received) == sidecars["feed"]["parameters"]["messages"]
        assert row["connections"] == len(mine)
        assert row["wire_bytes"] == mine["wire_bytes"].sum()
        assert row["bytes_per_update"] == pytest.approx(mine["wire_bytes"].sum() / len(received))
        # By category: each byte category over the updates, adding up to the whole.
        by_category = [row[push.PER_UPDATE.format(c)] for c in BYTE_CATEGORIES]
        assert sum(by_category) == pytest.approx(row["bytes_per_update"])
        assert row["staleness_median_s"] == pytest.approx(received["staleness_s"].median())
        assert row["staleness_p95_s"] == pytest.approx(np.percentile(received["staleness_s"], 95))
        # What carried an update plus what did not is every byte.
        assert row["update_bytes_per_update"] * row["updates"] + row["idle_bytes"] == pytest.approx(row["wire_bytes"])
        assert 0 < row["update_bytes_per_update"] < row["bytes_per_update"]


def test_update_bytes_are_the_items_that_carried_an_update(tables):
    costs = push.push_costs(tables, FEED).set_index("group")
    items = tables["message_costs"]
    conns = tables["connections"][tables["connections"]["capture"] == FEED]
    for group, row in costs.iterrows():
        mine = items[items["conn_id"].isin(conns.loc[conns["variant"] == group, "conn_id"])]
        if row["kind"] == "websocket":
            carried = mine[(mine["item"] == "ws_message") & (mine["payload_messages"] > 0)]
        elif (mine["item"] == "sse_event").any():  # an event stream: an event per update
            carried = mine[mine["item"] == "sse_event"]
            assert len(carried) == row["updates"] and (carried["payload_messages"] == 1).all()
        else:  # a poll answered with the update: an exchange whose response has a body
            http = tables["http_messages"]
            bodies = http[http["conn_id"].isin(mine["conn_id"]) & (http["direction"] == "server") & (http["body_bytes"] > 0)]
            carried = mine[(mine["item"] == "exchange") & mine["item_index"].isin(bodies["exchange_id"])]
            assert len(carried) == row["updates"]  # one poll brought each update
        assert row["update_bytes_per_update"] == pytest.approx(carried["wire_bytes"].sum() / row["updates"])


def test_an_idle_variant_has_only_idle_bytes_over_the_minutes_it_ran(tables):
    costs = push.push_costs(tables, IDLE).set_index("group")
    conns = tables["connections"][tables["connections"]["capture"] == IDLE]
    frames, http = tables["ws_frames"], tables["http_messages"]
    for group, row in costs.iterrows():
        mine = conns[conns["variant"] == group]
        assert row["updates"] == 0 and math.isnan(row["bytes_per_update"]) and math.isnan(row["staleness_median_s"])
        assert row["idle_bytes"] == mine["wire_bytes"].sum()
        ends = [http.loc[http["conn_id"].isin(mine["conn_id"]), "end_ts"].max(),
                frames.loc[frames["conn_id"].isin(mine["conn_id"]) & (frames["opcode"] != 8), "ts"].max()]
        end = max(t for t in ends if t == t)
        assert row["duration_s"] == pytest.approx(end - mine["start_ts"].min())
        assert row["idle_bytes_per_min"] == pytest.approx(mine["wire_bytes"].sum() / row["duration_s"] * 60)
    # The recorded idle run polls or pings every poll_interval for `messages` times: about that long.
    assert costs["duration_s"].between(3.0, 7.0).all(), costs["duration_s"]


def test_the_modelled_line_goes_through_what_was_measured(tables):
    costs = push.push_costs(tables, FEED)
    lines = push.bytes_per_minute(costs, np.array([0.0, 1.0]))
    for _, row in costs.iterrows():
        line = lines[lines["group"] == row["group"]]
        measured_per_min = row["wire_bytes"] / row["duration_s"] * 60
        at_own_rate = row["idle_bytes_per_min"] + row["updates_per_min"] * row["update_bytes_per_update"]
        assert at_own_rate == pytest.approx(measured_per_min)
        assert line["bytes_per_min"].tolist() == pytest.approx([row["idle_bytes_per_min"], row["idle_bytes_per_min"] + row["update_bytes_per_update"]])


def test_break_even_is_where_two_lines_meet(tables):
    costs = push.push_costs(tables, FEED).set_index("group")
    even = push.push_break_even(costs.reset_index())
    assert len(even) == len(costs) * (len(costs) - 1) // 2
    for _, pair in even.dropna(subset=["break_even_per_min"]).iterrows():
        rate = pair["break_even_per_min"]
        at = {g: costs.loc[g, "idle_bytes_per_min"] + rate * costs.loc[g, "update_bytes_per_update"] for g in (pair["variant"], pair["other"])}
        assert at[pair["variant"]] == pytest.approx(at[pair["other"]])
        below = {g: costs.loc[g, "idle_bytes_per_min"] for g in at}
        assert pair["cheaper_below"] == min(below, key=below.get)
    for _, pair in even[even["break_even_per_min"].isna()].iterrows():
        # No crossing at a positive rate: one line is below the other at every rate, or on it.
        diff = [costs.loc[pair["variant"], c] - costs.loc[pair["other"], c] for c in ("idle_bytes_per_min", "update_bytes_per_update")]
        assert diff[0] * diff[1] >= 0
        assert pair["cheaper_below"] == pair["cheaper_above"] == (pair["variant"] if sum(diff) < 0 else pair["other"])


def test_the_cheapest_variant_and_by_how_much(tables):
    feed = push.push_costs(tables, FEED)
    rate = push.capture_update_rate(tables, FEED)
    staleness = tables["staleness"][tables["staleness"]["capture"] == FEED]
    run = staleness[staleness["variant"] == "ws"]
    assert rate == pytest.approx((len(run) - 1) / (run["published_ts"].max() - run["published_ts"].min()) * 60, rel=0.05)
    found = push.cheapest_claim(feed, FEED, rate)
    ranked = feed.sort_values("bytes_per_update")
    assert found["cheapest"] == ranked["group"].iloc[0] and found["next"] == ranked["group"].iloc[1]
    assert found["saving"] == pytest.approx(1 - ranked["bytes_per_update"].iloc[0] / ranked["bytes_per_update"].iloc[1])
    assert f"{found['cheapest']} is cheapest" in found["text"] and f"{found['saving']:.0%} less than {found['next']}" in found["text"]
    idle = push.push_costs(tables, IDLE)
    found = push.cheapest_claim(idle, IDLE, push.capture_update_rate(tables, IDLE))
    assert found["measure"] == "idle_bytes_per_min" and found["cheapest"] == idle.sort_values("idle_bytes_per_min")["group"].iloc[0]
    assert found["text"].startswith("with no updates")


def test_the_push_claim_compares_the_cheapest_websocket_with_the_cheapest_other(tables):
    by_capture = {c: (push.push_costs(tables, c), push.capture_update_rate(tables, c)) for c in (FEED, IDLE)}
    claim = push.push_claim(by_capture)
    assert claim["claim"] == push.CLAIM and [row["capture"] for row in claim["captures"]] == ["feed.pcap", "idle.pcap"]
    for row, (costs, _rate) in zip(claim["captures"], by_capture.values()):
        measure = "bytes_per_update" if costs["updates"].gt(0).all() else "idle_bytes_per_min"
        ws = costs.loc[costs["kind"] == "websocket", measure].min()
        other = costs.loc[costs["kind"] != "websocket", measure].min()
        assert row["verdict"] == ("holds" if ws < other else "does not hold") or abs(ws - other) / max(ws, other) < 0.05
        assert f"{ws:,.0f}" in row["measured"] and f"{other:,.0f}" in row["measured"]
