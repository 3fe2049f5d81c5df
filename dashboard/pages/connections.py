"""Connections: a server-side paged, sorted, filtered table; one selected shows its bytes and timeline."""

from __future__ import annotations

import dash
from dash import Input, Output, State, html

from dashboard import aggregate, figures, ids
from dashboard.components import csv_download, graph, paged_table, register_paging, send_csv
from dashboard.context import current_views

dash.register_page(__name__, path="/connections", name="Connections", order=2)


def layout(conn=None, **_query):
    return build_layout(current_views(), conn)


def build_layout(views, conn=None):
    query = ""
    selected = None
    try:
        if conn is not None:
            selected = int(conn)
            query = f"{{conn_id}} = {selected}"
    except ValueError:
        pass
    attribution, timeline = connection_figures(views, selected)
    return html.Div([
        html.H3("Connections"),
        html.P("Click a cell to see that connection. Filter with e.g. > 1000, contains ws."),
        csv_download(ids.CONN_CSV_BUTTON, ids.CONN_CSV),
        paged_table(ids.CONN_TABLE, aggregate.CONNECTION_COLUMNS, query),
        html.Div(id=ids.CONN_DETAIL, children=[graph(ids.CONN_ATTRIBUTION, attribution), graph(ids.CONN_TIMELINE, timeline)]),
    ])


def page(views, page_current, page_size, sort_by, filter_query):
    """(rows of the page, page count); each row's id is its conn_id, so selections carry it."""
    rows, count = aggregate.query_table(views.connections_index(), page_current, page_size, sort_by, filter_query)
    rows = rows.assign(id=rows["conn_id"], efficiency=rows["efficiency"].round(4), duration_s=rows["duration_s"].round(6))
    return aggregate.records(rows), count


def connection_figures(views, conn_id):
    """Byte attribution and timeline of one connection (empty figures for None)."""
    tables = views.connection(-1 if conn_id is None else conn_id)
    if conn_id is None:
        return figures.attribution(aggregate.connection_attribution(tables["connections"], -1)), figures.timeline(aggregate.connection_timeline(tables, -1))
    return (figures.attribution(aggregate.connection_attribution(tables["connections"], conn_id), f"Byte attribution: connection {conn_id}"),
            figures.timeline(aggregate.connection_timeline(tables, conn_id), f"Timeline: connection {conn_id}"))


def selected_conn(active_cell) -> int | None:
    if not active_cell or active_cell.get("row_id") is None:
        return None
    return int(active_cell["row_id"])


def register_callbacks(app, store):
    register_paging(app, store, ids.CONN_TABLE, page)

    # Not on load: the layout already drew the figures of ?conn=N (a finding's link), and
    # the first call, with no cell selected yet, would replace them with empty ones.
    @app.callback(Output(ids.CONN_ATTRIBUTION, "figure"), Output(ids.CONN_TIMELINE, "figure"), Input(ids.CONN_TABLE, "active_cell"),
                  prevent_initial_call=True)
    def _select(active_cell):
        return connection_figures(store.views(), selected_conn(active_cell))

    @app.callback(Output(ids.CONN_CSV, "data"), Input(ids.CONN_CSV_BUTTON, "n_clicks"),
                  State(ids.CONN_TABLE, "filter_query"), State(ids.CONN_TABLE, "sort_by"), prevent_initial_call=True)
    def _csv(_n, filter_query, sort_by):
        return send_csv("connections", store.tables(), {"filter_query": filter_query, "sort_by": sort_by})
