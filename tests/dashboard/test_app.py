"""The app: create_app, every page's layout, the server, and the callbacks as plain functions."""

from __future__ import annotations

import importlib
import shutil

import pytest
from dash import dcc, html

from dashboard import ids
from dashboard.app import PAGES, create_app, progress_text
from dashboard.store import TableStore, content_key, merge_analyses
from dashboard.views import TableViews
from inspector.analysis.pipeline import analyze_captures
from tests.conftest import BUNDLED, bundled_files
from tests.dashboard.conftest import small_table_records, walk_components

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def app():
    app = create_app([BUNDLED])
    assert app.server.config["INSPECTOR_TABLE_STORE"].wait(120)
    return app




@pytest.mark.parametrize("name", PAGES)
def test_each_page_layout_renders(app, name):
    module = importlib.import_module(f"dashboard.pages.{name}")
    with app.server.test_request_context("/"):
        tree = module.layout()
    assert isinstance(tree, html.Div)
    assert not any(isinstance(c, dcc.Markdown) for c in walk_components(tree))


def test_pages_render_empty_tables_while_loading():
    store = TableStore([BUNDLED])  # not started: empty tables
    text, ready = progress_text(store)
    assert not ready and f"0 of {len(bundled_files())}" in text
    for name in PAGES:
        module = importlib.import_module(f"dashboard.pages.{name}")
        module.build_layout(store.views())


def test_server_answers(app):
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/_dash-layout").status_code == 200
    assert client.get("/_dash-dependencies").status_code == 200
    count = len(bundled_files())
    assert progress_text(app.server.config["INSPECTOR_TABLE_STORE"]) == (f"{count} of {count} captures analysed", True)


def test_connection_callbacks(app):
    from dashboard.pages import connections

    views = app.server.config["INSPECTOR_TABLE_STORE"].views()
    tables = views.tables
    response = connections.page(views, {"startRow": 10, "endRow": 20, "sortModel": [{"colId": "wire_bytes", "sort": "desc"}], "filterModel": {}})
    data = response["rowData"]
    assert response["rowCount"] == len(tables["connections"])
    expected = tables["connections"].sort_values("wire_bytes", ascending=False, kind="stable")["conn_id"][10:20]
    assert [row["id"] for row in data] == [str(c) for c in expected]  # the row id (getRowId) is the conn_id
    cell = {"colId": "wire_bytes", "rowIndex": 10, "rowId": data[0]["id"], "value": data[0]["wire_bytes"]}
    attribution, timeline = connections.connection_figures(views, connections.selected_conn(cell))
    assert sum(attribution.data[0].x) == data[0]["wire_bytes"]
    assert connections.selected_conn(None) is None


def test_connection_link_opens_filtered_on_its_connection(app):
    from dashboard.pages import connections

    views = app.server.config["INSPECTOR_TABLE_STORE"].views()
    conn_id = int(views.tables["connections"]["conn_id"].iloc[-1])
    with app.server.test_request_context("/"):
        tree = connections.build_layout(views, str(conn_id))
    (grid,) = [c for c in walk_components(tree) if getattr(c, "id", None) == ids.CONN_TABLE]
    response = connections.page(views, {"startRow": 0, "endRow": 20, "filterModel": grid.filterModel})
    assert [row["conn_id"] for row in response["rowData"]] == [conn_id] and response["rowCount"] == 1
    (attribution,) = [c for c in walk_components(tree) if getattr(c, "id", None) == ids.CONN_ATTRIBUTION]
    assert f"connection {conn_id}" in attribution.figure.layout.title.text


def test_frames_detail_shows_hostile_payload_as_text(app):
    from dashboard.pages import frames

    tables = dict(app.server.config["INSPECTOR_TABLE_STORE"].tables())
    ws = tables["ws_frames"].copy()
    ws.loc[0, "payload_text"] = HOSTILE
    tables["ws_frames"] = ws
    websocket = {"protocol": {"filterType": "text", "type": "equals", "filter": "websocket"}}
    data = frames.page(TableViews(tables), {"startRow": 0, "endRow": 500, "filterModel": websocket})["rowData"]
    key = f"ws:{ws.loc[0, 'conn_id']}:{ws.loc[0, 'frame_id']}"
    assert key in [row["id"] for row in data] and {row["protocol"] for row in data} == {"websocket"}
    parts = frames.selected_detail(tables, {"colId": "type", "rowIndex": 0, "rowId": key})
    pres = [c for p in parts for c in walk_components(p) if isinstance(c, html.Pre)]
    assert HOSTILE in [p.children for p in pres]
    assert all(isinstance(p.children, str) for p in pres)


def test_overview_and_compare_callbacks(app):
    from dashboard.pages import compare, overview

    views = app.server.config["INSPECTOR_TABLE_STORE"].views()
    tables = views.tables
    chat = "chat.pcap"  # captures are named by their file names, never their server paths
    by_category, mix = overview.capture_figures(views, chat)
    chat_conns = tables["connections"][tables["connections"]["capture"] == chat]
    assert sum(sum(t.y) for t in by_category.data) == chat_conns["wire_bytes"].sum()
    assert compare.default_capture(tables) == "feed.pcap"  # the most variants: every way to push
    cost, eff, payload, curve, lat, crossings, *push_section = compare.capture_outputs(views, chat)
    assert push_section[0].children.startswith("chat.pcap: not a push recording")
    assert {t.name for t in curve.data if not t.name.startswith("crossover")} == set(chat_conns["variant"])
    # the payload table beside the efficiency figure: each variant's sums, as in the connections table
    shown = {row["group"]: row for row in small_table_records(payload)}
    for variant, mine in chat_conns.groupby("variant"):
        for column in ("wire_payload_bytes", "app_payload_bytes", "compression_saved_bytes"):
            want = mine[column].sum()
            assert shown[variant][column] == f"{want:,d}", (variant, column)
        assert shown[variant]["efficiency"] == f"{mine['app_payload_bytes'].sum() / mine['wire_bytes'].sum():.1%}"
    assert len(compare.claims_table(views.claims(), "claims").children[0].children[1].children) == 5


def test_store_caches_by_content_and_keeps_ids_unique(tmp_path):
    calls = []

    def counting(paths, progress=None):
        calls.append(paths)
        return analyze_captures(paths, progress=progress)

    chat = BUNDLED / "chat.pcap"
    copy = tmp_path / "copy.pcap"
    shutil.copy(chat, copy)
    shutil.copy(chat.with_suffix(".json"), copy.with_suffix(".json"))
    (tmp_path / "junk.pcap").write_bytes(b"not a capture")
    store = TableStore([chat, tmp_path], analyze=counting)
    assert store.wait(120)
    assert content_key(chat) == content_key(copy)
    assert len(calls) == 2  # chat once (the copy hits the cache), junk once (and fails)
    progress = store.progress()
    assert progress.ready and progress.done == 3 and len(progress.errors) == 1 and "junk.pcap" in progress.errors[0]
    tables = store.tables()
    assert tables["connections"]["conn_id"].is_unique
    assert len(tables["connections"]) == 2 * 23
    assert set(tables["message_costs"]["conn_id"]) == set(tables["connections"]["conn_id"])


def test_merge_analyses_matches_analysing_together():
    files = bundled_files()
    merged = merge_analyses([analyze_captures([f]) for f in files])
    together = analyze_captures(files).tables
    for name in ("connections", "message_costs", "ws_frames", "overhead"):
        assert merged[name].reset_index(drop=True).equals(together[name].reset_index(drop=True)), name


def test_a_row_request_gets_at_most_the_page_cap(app, monkeypatch):
    from dashboard import components
    from dashboard.pages import connections, frames

    views = app.server.config["INSPECTOR_TABLE_STORE"].views()
    monkeypatch.setattr(components, "MAX_ROWS_PER_REQUEST", 7)
    response = connections.page(views, {"startRow": 3, "endRow": 10**9})
    assert [row["conn_id"] for row in response["rowData"]] == list(views.connections_index()["conn_id"][3:10])
    assert response["rowCount"] == len(views.tables["connections"])  # the pager still knows every row
    assert len(frames.page(views, {"startRow": 0, "endRow": 10**9})["rowData"]) == 7


@pytest.mark.parametrize("request_, rows", [
    ({}, (0, 20)),  # the grid's own page
    ({"startRow": 40, "endRow": 60}, (40, 60)),
    ({"startRow": -5, "endRow": 3}, (0, 3)),
    ({"startRow": 10, "endRow": 2}, (10, 10)),
    ({"startRow": "0", "endRow": [1]}, (0, 20)),  # not integers: the defaults
    ({"startRow": True, "endRow": 1e300}, (0, 20)),
    ({"startRow": 5, "endRow": 10**12}, (5, 505)),
])
def test_requested_rows_are_integers_cut_to_the_cap(request_, rows):
    from dashboard.components import MAX_ROWS_PER_REQUEST, requested_rows

    assert MAX_ROWS_PER_REQUEST == 500
    assert requested_rows(request_) == rows
