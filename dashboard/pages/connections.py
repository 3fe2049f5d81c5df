"""Connections: a server-side paged, sorted, filtered table; one selected shows its bytes and timeline."""

from __future__ import annotations

import dash
from dash import Input, Output, State, dcc, html

from dashboard import aggregate, figures, ids
from dashboard.components import (clicked_row, csv_download, equals_filter, graph, grid_state, paged_table, register_paging,
                                  requested_rows, rows_response, send_frame)
from dashboard.context import current_views
from dashboard.slices import connection_source, slice_url

dash.register_page(__name__, path="/connections", name="Connections", title="Connections · wire-inspector", order=2)


def layout(conn=None, **_query):
    return build_layout(current_views(), conn)


def build_layout(views, conn=None):
    selected = None
    try:
        if conn is not None:
            selected = int(conn)
    except ValueError:
        pass
    attribution, timeline = connection_figures(views, selected)
    return html.Div([
        html.H3("Connections"),
        html.P("Click a cell to see that connection. Sort by a column's header (shift-click: by several); filter in the boxes under the headers."),
        csv_download(ids.CONN_CSV_BUTTON, ids.CONN_CSV),
        paged_table(ids.CONN_TABLE, aggregate.CONNECTION_COLUMNS, aggregate.CONNECTION_TEXT_COLUMNS,
                    None if selected is None else equals_filter("conn_id", selected)),
        html.Div(id=ids.CONN_DETAIL, children=[html.Div(id=ids.CONN_WIRESHARK, children=wireshark_detail(views, selected)),
                                                graph(ids.CONN_ATTRIBUTION, attribution), graph(ids.CONN_TIMELINE, timeline)]),
    ])


def page(views, request):
    """The getRowsResponse of one getRowsRequest; each row's id is its conn_id, so a click carries it."""
    start, end = requested_rows(request)
    rows, count = views.connection_rows(start, end, request.get("sortModel"), request.get("filterModel"))
    rows = rows.assign(id=rows["conn_id"].astype(str), efficiency=rows["efficiency"].round(4), duration_ms=rows["duration_ms"].round(3))
    return rows_response(rows, count)


def connection_figures(views, conn_id):
    """Byte attribution and timeline of one connection (empty figures for None)."""
    tables = views.connection(-1 if conn_id is None else conn_id)
    if conn_id is None:
        return figures.attribution(aggregate.connection_attribution(tables["connections"], -1)), figures.timeline(aggregate.connection_timeline(tables, -1))
    return (figures.attribution(aggregate.connection_attribution(tables["connections"], conn_id), f"Byte attribution: connection {conn_id}"),
            figures.timeline(aggregate.connection_timeline(tables, conn_id), f"Timeline: connection {conn_id}"))


def wireshark_detail(views, conn_id):
    """The selected connection in Wireshark: its display filter (to copy) and its packets as a
    capture to download (dashboard.slices), or why they cannot be had."""
    source = None if conn_id is None else connection_source(views.catalog, conn_id)
    if source is None:
        return []
    problem = source.problem_without_reading()
    if problem is None:
        download = html.A("Download its packets (pcap)", href=slice_url(conn_id), id=ids.CONN_SLICE, download="")
    else:
        download = html.Span(f"Its packets cannot be downloaded: {problem}", id=ids.CONN_SLICE)
    return [
        html.Span(f"Connection {conn_id} in Wireshark: "),
        html.Code(source.display_filter, id=ids.CONN_FILTER),
        dcc.Clipboard(target_id=ids.CONN_FILTER, title="copy the display filter", style={"display": "inline-block", "marginLeft": "0.3em"}),
        html.Span(" · "),
        download,
    ]


def selected_conn(cell_clicked) -> int | None:
    row_id = clicked_row(cell_clicked)
    return None if row_id is None else int(row_id)


def register_callbacks(app, store):
    register_paging(app, store, ids.CONN_TABLE, page)

    # Not on load: the layout already drew the figures of ?conn=N (a finding's link), and
    # the first call, with no cell selected yet, would replace them with empty ones.
    @app.callback(Output(ids.CONN_ATTRIBUTION, "figure"), Output(ids.CONN_TIMELINE, "figure"), Output(ids.CONN_WIRESHARK, "children"),
                  Input(ids.CONN_TABLE, "cellClicked"), prevent_initial_call=True)
    def _select(cell_clicked):
        views, conn_id = store.views(), selected_conn(cell_clicked)
        return (*connection_figures(views, conn_id), wireshark_detail(views, conn_id))

    @app.callback(Output(ids.CONN_CSV, "data"), Input(ids.CONN_CSV_BUTTON, "n_clicks"), State(ids.CONN_TABLE, "getRowsRequest"),
                  prevent_initial_call=True)
    def _csv(_n, request):
        state = grid_state(request)
        return send_frame("connections.csv", store.views().filtered_connections(state["sortModel"], state["filterModel"]))
