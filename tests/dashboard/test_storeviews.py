"""The dashboard over stores: the cache of analyses, store folders as sources, and the SQL behind
the grids, a connection's rows and the overview, each against what pandas gives over the merged
in-memory tables of the bundled captures."""

from __future__ import annotations

import math

import json

import pandas as pd
import pytest

from dashboard import aggregate, gridsql, storeviews
from dashboard.catalog import Catalog
from dashboard.store import TableStore, merge_analyses, named
from dashboard.storeviews import StoreViews
from dashboard.views import TableViews
from inspector import cli
from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import TABLE_NAMES
from inspector.parse.connection import ParserOptions
from inspector.store import cache_entry, store_inputs, write_analysis
from tests.conftest import BUNDLED, bundled_files

HOSTILE_TEXTS = ["'; DROP TABLE connections; --", "%", "_", "\\", '"', "' OR '1'='1", "ws:1:1' UNION SELECT 1 --", "\x00", "é"]


@pytest.fixture(scope="module")
def store():
    store = TableStore([BUNDLED])
    assert store.wait(120)
    yield store
    store.close()


@pytest.fixture(scope="module")
def sql_views(store) -> StoreViews:
    return store.views()


@pytest.fixture(scope="module")
def pandas_views() -> TableViews:
    """What the dashboard held before the stores: every capture analysed, named, merged in memory."""
    files = bundled_files()
    return TableViews(merge_analyses([named(analyze_captures([f]), f.name) for f in files]))


def test_each_table_of_the_catalog_is_the_merged_in_memory_table(sql_views, pandas_views):
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(sql_views.tables[name], pandas_views.tables[name], obj=name)


SORTS = [None, [], [{"colId": "wire_bytes", "sort": "desc"}], [{"colId": "capture", "sort": "asc"}, {"colId": "duration_ms", "sort": "desc"}],
         [{"colId": "variant", "sort": "desc"}], [{"colId": "efficiency", "sort": "asc"}],
         [{"colId": "no_such_column", "sort": "asc"}], [{"colId": "kind", "sort": "sideways"}], "junk", [7, None]]
FILTERS = [None, {}, {"kind": {"filterType": "text", "type": "contains", "filter": "REST"}},
           {"wire_bytes": {"filterType": "number", "type": "inRange", "filter": 1000, "filterTo": 5000}},
           {"wire_bytes": {"filterType": "number", "type": "inRange", "filter": 1000}},
           {"variant": {"filterType": "text", "type": "blank"}}, {"variant": {"filterType": "text", "type": "notBlank"}},
           {"client_port": {"filterType": "number", "operator": "OR", "conditions": [
               {"type": "lessThan", "filter": 40000}, {"type": "greaterThanOrEqual", "filter": 50000}]}},
           {"capture": {"filterType": "text", "operator": "AND", "conditions": [
               {"type": "startsWith", "filter": "c"}, {"type": "endsWith", "filter": ".PCAP"}]},
            "kind": {"filterType": "text", "type": "notEqual", "filter": "rest"}},
           {"server_ip": {"filterType": "text", "type": "notContains", "filter": "127."}},
           {"conn_id": {"filterType": "number", "type": "equals", "filter": "12"}},
           {"duration_ms": {"filterType": "number", "type": "greaterThan", "filter": "not a number"}},
           {"kind": {"filterType": "number", "type": "equals", "filter": 1}},  # a number filter on text: keeps none
           {"kind": {"type": "regexp", "filter": "x"}}, {"kind": {"conditions": "junk", "type": "equals"}}, {"kind": "junk"},
           {"no_such_column": {"filterType": "text", "type": "equals", "filter": "x"}}]


@pytest.mark.parametrize("sort_model", SORTS)
@pytest.mark.parametrize("filter_model", FILTERS)
def test_connection_pages_from_sql_are_those_pandas_gave(sql_views, pandas_views, sort_model, filter_model):
    assert_same_pages(sql_views.connection_rows, pandas_views.connection_rows, sort_model, filter_model, ((0, 20), (20, 40), (5, 500)))


def assert_same_pages(sql_rows, pandas_rows, sort_model, filter_model, ranges):
    """Each page (start, end) from SQL has the rows pandas gave, in its order, and the same row count."""
    for start, end in ranges:
        rows, count = sql_rows(start, end, sort_model, filter_model)
        want, want_count = pandas_rows(start, end, sort_model, filter_model)
        assert aggregate.records(rows) == aggregate.records(want) and count == want_count, (start, end)


FRAME_SORTS = [None, [{"colId": "type", "sort": "desc"}], [{"colId": "payload_bytes", "sort": "asc"}],
               [{"colId": "direction", "sort": "asc"}, {"colId": "key", "sort": "desc"}], [{"colId": "conn_id", "sort": "desc"}],
               [{"colId": "t_s", "sort": "desc"}]]
FRAME_FILTERS = [None, {"protocol": {"filterType": "text", "type": "equals", "filter": "websocket"}},
                 {"type": {"filterType": "text", "type": "startsWith", "filter": "get"}},
                 {"key": {"filterType": "text", "type": "contains", "filter": ":1:"}},
                 {"conn_id": {"filterType": "number", "type": "lessThanOrEqual", "filter": 30},
                  "header_bytes": {"filterType": "number", "type": "notEqual", "filter": 2}},
                 {"t_s": {"filterType": "number", "type": "lessThan", "filter": 0.5}}]


@pytest.mark.parametrize("sort_model", FRAME_SORTS)
@pytest.mark.parametrize("filter_model", FRAME_FILTERS)
def test_frame_pages_from_sql_are_those_pandas_gave(sql_views, pandas_views, sort_model, filter_model):
    assert_same_pages(sql_views.frame_rows, pandas_views.frame_rows, sort_model, filter_model, ((0, 20), (100, 120), (0, 500)))


def test_whole_filtered_tables_for_the_csv_exports_are_those_pandas_gave(sql_views, pandas_views):
    sort, keep = [{"colId": "wire_bytes", "sort": "desc"}], {"kind": {"filterType": "text", "type": "equals", "filter": "websocket"}}
    assert aggregate.records(sql_views.filtered_connections(sort, keep)) == aggregate.records(pandas_views.filtered_connections(sort, keep))
    assert aggregate.records(sql_views.filtered_frames()) == aggregate.records(pandas_views.filtered_frames())


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
@pytest.mark.parametrize("kind", ["contains", "equals", "startsWith", "notContains"])
def test_hostile_filter_text_is_bound_never_spliced(sql_views, pandas_views, text, kind):
    def model(value):
        return {"capture": {"filterType": "text", "type": kind, "filter": value},
                "conn_id": {"filterType": "number", "type": "equals", "filter": value}}

    sql, params = gridsql.where_clause(model(text), aggregate.CONNECTION_COLUMNS)
    assert (sql, params) == (gridsql.where_clause(model("x"), aggregate.CONNECTION_COLUMNS)[0], [text.lower()])  # the text is a value only
    rows, count = sql_views.connection_rows(0, 500, None, model(text))
    want, want_count = pandas_views.connection_rows(0, 500, None, model(text))
    assert aggregate.records(rows) == aggregate.records(want) and count == want_count
    assert sql_views.connection_rows(0, 1)[1] == len(pandas_views.tables["connections"])  # the tables are all still there


def test_column_names_come_only_from_the_grids_columns(sql_views):
    hostile = 'kind" = kind OR 1=1; DROP TABLE connections; --'
    sql, params = gridsql.where_clause({hostile: {"filterType": "text", "type": "equals", "filter": "x"}}, aggregate.CONNECTION_COLUMNS)
    assert (sql, params) == ("TRUE", [])
    assert gridsql.order_terms([{"colId": hostile, "sort": "asc"}], aggregate.CONNECTION_COLUMNS) == []
    rows, count = sql_views.connection_rows(0, 20, [{"colId": hostile, "sort": "asc"}], {hostile: {"type": "equals", "filter": "x"}})
    assert count == len(sql_views.tables["connections"]) and len(rows) == 20


def test_connection_detail_is_its_rows_by_conn_id(sql_views, pandas_views):
    for conn_id in (0, 1, 17, 60, -1, 10**9):
        got, want = sql_views.connection(conn_id), pandas_views.connection(conn_id)
        assert set(got) == set(want)
        for name in want:
            pd.testing.assert_frame_equal(got[name].reset_index(drop=True), want[name].reset_index(drop=True), obj=name)


def test_frame_detail_from_its_connections_rows_is_the_detail_over_every_table(sql_views, pandas_views):
    from dashboard.app import create_app

    create_app(TableStore([]), start=False)  # page modules call dash.register_page, which needs a pages app first
    from dashboard.pages import frames

    rows, _ = pandas_views.frame_rows(0, 500)
    for key in list(rows["key"][:: max(1, len(rows) // 25)]) + ["ws:999999:1", "http:x:1:client", "nonsense"]:
        cell = {"rowId": key}
        assert repr(frames.clicked_detail(sql_views, cell)) == repr(frames.selected_detail(pandas_views.tables, cell)), key


def test_overview_figures_are_duckdb_aggregates_equal_to_pandas(sql_views, pandas_views):
    pd.testing.assert_frame_equal(sql_views.overview(), pandas_views.overview())
    for capture in [None, *sql_views.captures()]:
        pd.testing.assert_frame_equal(sql_views.bytes_by_category(capture), pandas_views.bytes_by_category(capture))
    for capture in [*sql_views.captures(), "no such capture"]:
        pd.testing.assert_frame_equal(sql_views.protocol_mix(capture), pandas_views.protocol_mix(capture), rtol=1e-12)


def test_compare_views_from_a_captures_needed_columns_equal_pandas(sql_views, pandas_views):
    for capture in [*sql_views.captures(), None]:
        pd.testing.assert_frame_equal(sql_views.break_even_curves(capture), pandas_views.break_even_curves(capture), obj=str(capture))
        pd.testing.assert_frame_equal(sql_views.cost_split(capture), pandas_views.cost_split(capture), obj=str(capture))
        pd.testing.assert_frame_equal(sql_views.latency(capture), pandas_views.latency(capture), obj=str(capture))
    assert sql_views.claims() == pandas_views.claims()
    assert sql_views.default_capture() == pandas_views.default_capture() == "feed.pcap"  # six variants, as idle
    for capture in ["chat.pcap", None]:
        from dashboard import exports

        assert exports.export_csv("compare", sql_views.capture(capture), {"capture": capture}) == \
            exports.export_csv("compare", pandas_views.tables, {"capture": capture})
    assert exports.export_csv("overview", sql_views.capture(None)) == exports.export_csv("overview", pandas_views.tables)


def test_the_big_tables_are_never_loaded_whole_by_the_overview_connections_and_frames(tmp_path):
    store = TableStore([BUNDLED / "chat.pcap"])
    assert store.wait(120)
    views = store.views()
    views.warm()
    views.connection_rows(0, 20, [{"colId": "wire_bytes", "sort": "desc"}], {})
    views.frame_rows(0, 20)
    views.connection(3)
    assert views.tables.loaded() == ["captures"]
    store.close()


def test_a_capture_is_analysed_into_the_cache_once_and_taken_from_it_after(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_CACHE_DIR", str(tmp_path / "cache"))
    chat = BUNDLED / "chat.pcap"
    entry = cache_entry(store_inputs([chat], ParserOptions()))
    first = TableStore([chat])
    assert first.wait(120) and (entry / "store.json").is_file()
    created = json.loads((entry / "store.json").read_text())["created"]
    made = (entry / "store.json").stat().st_mtime_ns
    first.close()
    again = TableStore([chat])  # a restarted dashboard
    assert again.wait(120)
    assert [loaded.store.folder for loaded in again.views().catalog.loaded] == [entry]
    assert (entry / "store.json").stat().st_mtime_ns == made and json.loads((entry / "store.json").read_text())["created"] == created
    assert again.views().captures() == ["chat.pcap"]
    again.close()


def test_the_cli_analysis_and_the_dashboard_share_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INSPECTOR_CACHE_DIR", str(tmp_path / "cache"))
    feed = BUNDLED / "feed.pcap"
    assert cli.main(["analyze", str(feed)]) == 0
    capsys.readouterr()
    (entry,) = (path for path in (tmp_path / "cache").iterdir() if path.is_dir())  # beside it, the digest index
    store = TableStore([feed])
    assert store.wait(120)
    assert [loaded.store.folder for loaded in store.views().catalog.loaded] == [entry]
    store.close()


def test_a_store_folder_is_a_source_with_its_captures_named_by_their_files(tmp_path):
    files = [BUNDLED / "chat.pcap", BUNDLED / "idle.pcap"]
    folder = tmp_path / "analysed"
    analysis = analyze_captures(files)
    write_analysis(analysis, folder, store_inputs(files, ParserOptions()))
    store = TableStore([folder, BUNDLED / "chat.pcap"])
    assert store.wait(120)
    views = store.views()
    assert views.captures() == ["chat.pcap", "idle.pcap", "chat.pcap (2)"]
    together = analysis.tables["connections"]
    connections = views.tables["connections"]
    assert list(connections["conn_id"]) == list(range(len(connections)))
    first = connections[connections["conn_id"] < len(together)]
    assert list(first["capture"]) == [p.rsplit("/", 1)[-1] for p in together["capture"]]
    assert first["wire_bytes"].tolist() == together["wire_bytes"].tolist()
    assert views.overview()["connections"].tolist() == [int((connections["capture"] == c).sum()) for c in views.captures()]
    store.close()


def test_dashboard_takes_a_store_folder_and_refuses_a_broken_one_in_one_line(tmp_path, capsys, monkeypatch):
    import dashboard.app
    import dashboard.serve

    stores = []
    monkeypatch.setattr(dashboard.app, "create_app", lambda store, host=None: stores.append(store))
    monkeypatch.setattr(dashboard.serve, "serve", lambda *args, **kwargs: None)
    folder = tmp_path / "store"
    assert cli.main(["analyze", str(BUNDLED / "bulk.pcap"), "--store", str(folder)]) == 0
    capsys.readouterr()
    assert cli.main(["dashboard", str(folder)]) == 0
    assert stores[0].files == [folder]
    capsys.readouterr()
    meta = json.loads((folder / "store.json").read_text())
    (folder / "store.json").write_text(json.dumps({**meta, "schema_version": meta["schema_version"] + 1}))
    assert cli.main(["dashboard", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "newer" in err and str(folder) in err
    (folder / "store.json").unlink()  # half-written: tables but no store.json
    assert cli.main(["dashboard", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "half-written" in err
    assert len(stores) == 1


def test_an_empty_catalog_has_every_table_empty():
    views = StoreViews(Catalog())
    for name in TABLE_NAMES:
        assert views.tables[name].empty and list(views.tables[name].columns) == list(pandas_columns(name))
    assert views.connection_rows(0, 20) [1] == 0 and views.frame_rows(0, 20)[1] == 0 and views.overview().empty


def pandas_columns(name):
    from inspector.analysis.tables import make_table

    return make_table(name).columns


def test_whole_curves_from_duckdb_are_the_pandas_curves_and_the_kept_ones_are_thinned_as_drawn(sql_views, pandas_views):
    from dashboard import figures

    for capture in [*sql_views.captures(), None]:
        whole = sql_views.whole_curves(capture)
        pd.testing.assert_frame_equal(whole, aggregate.break_even_curves(pandas_views.tables, capture), obj=str(capture))
        if capture is not None:
            pd.testing.assert_frame_equal(sql_views.crossovers(capture), aggregate.break_even_crossovers(whole))
            kept = sql_views.break_even_curves(capture)
            assert kept.groupby("group").size().max() <= figures.MAX_CURVE_POINTS
    curves = sql_views.whole_curves(None)
    thinned, crossings = storeviews._thinned_and_crossings(curves)
    assert len(thinned) <= figures.MAX_CURVE_POINTS * curves.groupby(["capture", "group"]).ngroups
    pd.testing.assert_frame_equal(crossings, aggregate.break_even_crossovers(curves))


def test_the_latency_figure_from_the_kept_categories_is_the_one_of_the_latency_pairs(sql_views, pandas_views):
    from dashboard import figures

    for capture in [*sql_views.captures(), None]:
        assert figures.latency(sql_views.latency_by_group(capture)).to_json() == figures.latency(pandas_views.latency(capture)).to_json()


def test_no_connection_selected_is_the_empty_tables_a_query_gives(sql_views):
    for name, rows in sql_views.connection(-1).items():
        pd.testing.assert_frame_equal(rows, sql_views.catalog.rows_of_connection(name, -1), obj=name)


def test_push_views_from_a_captures_needed_columns_equal_pandas(sql_views, pandas_views):
    assert sql_views.push_captures() == pandas_views.push_captures() == ["feed.pcap", "idle.pcap"]
    for capture in [*sql_views.captures(), None]:
        pd.testing.assert_frame_equal(sql_views.push_costs(capture), pandas_views.push_costs(capture), obj=str(capture))
        rates = sql_views.push_rate(capture), pandas_views.push_rate(capture)
        assert rates[0] == rates[1] or (math.isnan(rates[0]) and math.isnan(rates[1]))
