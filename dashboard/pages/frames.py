"""Frames and messages: a paged table of WebSocket frames and HTTP messages; one selected shows
its header fields, payload as text and hex, and its findings.  Payloads are hostile: they are
only ever put in html.Pre / plain strings, never rendered as HTML or Markdown."""

from __future__ import annotations

import dash
from dash import Input, Output, State, html

from dashboard import aggregate, ids
from dashboard.components import (clicked_row, csv_download, equals_filter, grid_rows, grid_state, paged_table, register_paging,
                                  rows_response, send_csv)
from dashboard.context import current_views

dash.register_page(__name__, path="/frames", name="Frames and messages", order=3)


def layout(conn=None, **_query):
    return build_layout(current_views(), conn)


def build_layout(_views, conn=None):
    shown = equals_filter("conn_id", int(conn)) if conn is not None and str(conn).isdigit() else None
    return html.Div([
        html.H3("Frames and messages"),
        html.P("Click a cell to see that frame or message."),
        csv_download(ids.FRAMES_CSV_BUTTON, ids.FRAMES_CSV),
        paged_table(ids.FRAMES_TABLE, aggregate.FRAME_COLUMNS, aggregate.FRAME_TEXT_COLUMNS, shown),
        html.Div(id=ids.FRAMES_DETAIL, children=detail_view(None)),
    ])


def page(views, request):
    """The getRowsResponse of one getRowsRequest; each row's id is its key, so a click carries it."""
    rows, count = grid_rows(views.frames_index(), request)
    return rows_response(rows.assign(id=rows["key"], ts=rows["ts"].round(6)), count)


def detail_view(detail: dict | None):
    """Components showing one frame_detail (all text, never HTML)."""
    if detail is None:
        return [html.P("Select a frame or message.")]
    fields = html.Table([html.Tr([html.Td(name), html.Td(value)]) for name, value in detail["fields"]])
    findings = detail["findings"]
    parts = [html.H4(detail["title"]), fields,
             html.H5("Payload (text)"), html.Pre(detail["text"], style={"whiteSpace": "pre-wrap"}),
             html.H5("Payload (hex)"), html.Pre(detail["hex"], style={"whiteSpace": "pre-wrap"})]
    if detail.get("message_text"):
        parts += [html.H5("Message (decompressed)"), html.Pre(detail["message_text"], style={"whiteSpace": "pre-wrap"})]
    parts.append(html.H5(f"Findings ({len(findings)} at this frame, {detail['connection_findings']} on the connection)"))
    parts.append(html.Ul([html.Li(f"{row.rule}: {row.detail}") for row in findings.itertuples(index=False)]))
    return parts


def selected_detail(tables, cell_clicked):
    key = clicked_row(cell_clicked)
    return detail_view(None if key is None else aggregate.frame_detail(tables, key))


def register_callbacks(app, store):
    register_paging(app, store, ids.FRAMES_TABLE, page)

    @app.callback(Output(ids.FRAMES_DETAIL, "children"), Input(ids.FRAMES_TABLE, "cellClicked"))
    def _select(cell_clicked):
        return selected_detail(store.tables(), cell_clicked)

    @app.callback(Output(ids.FRAMES_CSV, "data"), Input(ids.FRAMES_CSV_BUTTON, "n_clicks"), State(ids.FRAMES_TABLE, "getRowsRequest"),
                  prevent_initial_call=True)
    def _csv(_n, request):
        return send_csv("frames", store.tables(), grid_state(request))
