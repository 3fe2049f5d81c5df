"""TableViews: per-capture views equal the aggregations over all tables; each computed once."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from dashboard import aggregate, push
from dashboard.views import TableViews, capture_slice
from tests.dashboard.conftest import capture_name


@pytest.fixture(scope="module")
def views(tables):
    return TableViews(tables)


def test_capture_slice_keeps_exactly_that_captures_rows(tables):
    chat = capture_name("chat")
    part = capture_slice(tables, chat)
    mine = set(tables["connections"].loc[tables["connections"]["capture"] == chat, "conn_id"])
    assert set(part["connections"]["conn_id"]) == mine
    for name in ("http_messages", "ws_frames", "ws_messages", "message_costs"):
        expected = tables[name][tables[name]["conn_id"].isin(mine)]
        assert len(part[name]) == len(expected) > 0
    assert list(part["captures"]["capture"]) == [chat]
    assert set(part["staleness"]["capture"]) <= {chat}
    # the slice's overhead roll-up covers exactly its connections' bytes
    assert part["overhead"]["wire_bytes"].sum() == part["connections"]["wire_bytes"].sum()
    # a capture's rows are one range of each big table: the slice shares its memory
    for name in ("message_costs", "ws_frames", "http_messages"):
        assert np.shares_memory(part[name]["ts"].to_numpy(), tables[name]["ts"].to_numpy()), name


def test_capture_slice_of_tables_not_sorted_by_connection_still_keeps_exactly_its_rows(tables):
    chat = capture_name("chat")
    shuffled = {name: t.sample(frac=1.0, random_state=7) if "conn_id" in t.columns else t for name, t in tables.items()}
    part, expected = capture_slice(shuffled, chat), capture_slice(tables, chat)
    for name in ("http_messages", "ws_frames", "ws_messages", "message_costs"):
        pd.testing.assert_frame_equal(part[name].sort_index(), expected[name].sort_index())


@pytest.mark.parametrize("stem", ["chat", "feed", "bulk", "idle"])
def test_per_capture_views_equal_the_whole_table_aggregations(views, tables, stem):
    capture = capture_name(stem)
    pd.testing.assert_frame_equal(views.break_even_curves(capture).reset_index(drop=True),
                                  aggregate.break_even_curves(tables, capture).reset_index(drop=True))
    pd.testing.assert_frame_equal(views.latency(capture), aggregate.latency(tables, capture))
    pd.testing.assert_frame_equal(views.cost_split(capture), aggregate.message_cost_split(tables, capture))
    pd.testing.assert_frame_equal(views.bytes_by_category(capture), aggregate.bytes_by_category(tables["connections"], capture))
    pd.testing.assert_frame_equal(views.protocol_mix(capture), aggregate.protocol_mix(tables, capture))


def test_claims_from_per_capture_curves_equal_claims_over_all_tables(views, tables):
    by_capture = {c: (push.push_costs(tables, c), push.capture_update_rate(tables, c)) for c in push.push_captures(tables["captures"])}
    assert views.claims() == [*aggregate.claims(tables), push.push_claim(by_capture)]
    pd.testing.assert_frame_equal(views.break_even_curves(None), aggregate.break_even_curves(tables))


def test_a_view_is_computed_once_even_when_asked_for_at_the_same_time():
    views = TableViews({})
    calls = []

    def slow():
        calls.append(threading.get_ident())
        time.sleep(0.2)
        return object()

    results = []
    threads = [threading.Thread(target=lambda: results.append(views.once("k", slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len({id(r) for r in results}) == 1 and len(results) == 4


def test_warm_computes_every_view_a_page_reads(tables):
    views = TableViews(tables)
    views.warm()
    asked = []
    views_once = views.once
    views.once = lambda key, compute: asked.append(key) or views_once(key, lambda: pytest.fail(f"{key} not warmed"))
    for capture in views.captures():
        views.protocol_mix(capture)
        views.bytes_by_category(capture)
        views.cost_split(capture)
        views.break_even_curves(capture)
        views.latency(capture)
    views.overview()
    views.claims()
    views.connections_index()
    views.frames_index()
    views.connection(3)
    assert asked


def test_a_connections_rows_equal_filtering_every_table(views, tables):
    for conn_id in (0, 5, int(tables["connections"]["conn_id"].max()), 10**9):
        mine = views.connection(conn_id)
        for name in ("connections", "http_messages", "ws_frames", "ws_messages", "findings", "message_costs"):
            expected = tables[name][tables[name]["conn_id"] == conn_id]
            pd.testing.assert_frame_equal(mine[name], expected)
