"""Frames and messages: a paged table of WebSocket frames and HTTP messages; one selected shows
its header fields, payload as text and hex, and its findings.  Payloads are hostile: they are
only ever put in html.Pre / plain strings, never rendered as HTML or Markdown."""

from __future__ import annotations

import dash
from dash import Input, Output, State, html

from dashboard import aggregate, ids
from dashboard.components import (clicked_row, csv_download, equals_filter, grid_state, paged_table, register_paging,
                                  requested_rows, rows_response, send_frame)
from dashboard.context import current_views
from dashboard.exports import with_utc

dash.register_page(__name__, path="/frames", name="Frames and messages", title="Frames and messages · wire-inspector", order=3)


def layout(conn=None, **_query):
    return build_layout(current_views(), conn)


def build_layout(_views, conn=None):
    shown = equals_filter("conn_id", int(conn)) if conn is not None and str(conn).isdigit() else None
    return html.Div([
        html.H3("Frames and messages"),
        html.P("Click a cell to see that frame or message. t_s: seconds since the capture's first TCP packet (hover for the UTC time)."),
        csv_download(ids.FRAMES_CSV_BUTTON, ids.FRAMES_CSV),
        paged_table(ids.FRAMES_TABLE, aggregate.FRAME_COLUMNS, aggregate.FRAME_TEXT_COLUMNS, shown, hidden=aggregate.FRAME_HIDDEN_COLUMNS,
                    tooltips={"t_s": "utc"}),
        html.Div(id=ids.FRAMES_DETAIL, children=detail_view(None)),
    ])


def page(views, request):
    """The getRowsResponse of one getRowsRequest; each row's id is its key, so a click carries it."""
    start, end = requested_rows(request)
    rows, count = views.frame_rows(start, end, request.get("sortModel"), request.get("filterModel"))
    return rows_response(rows.assign(id=rows["key"], t_s=rows["t_s"].round(3), utc=aggregate.utc_text(rows["ts"])), count)


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
    """The detail of the clicked frame or message; `tables` need hold only its connection's rows."""
    key = clicked_row(cell_clicked)
    return detail_view(None if key is None else aggregate.frame_detail(tables, key))


def key_connection(key: str | None) -> int | None:
    """The conn_id in a frames_index key ("ws:CONN:FRAME", "http:CONN:EXCHANGE:DIRECTION"), or None."""
    parts = str(key).split(":") if key is not None else []
    if len(parts) >= 3 and parts[0] in ("ws", "http") and parts[1].isdigit():
        return int(parts[1])
    return None


def clicked_detail(views, cell_clicked):
    """selected_detail over the rows of the clicked row's connection only (`WHERE conn_id = ?`)."""
    conn_id = key_connection(clicked_row(cell_clicked))
    return selected_detail(views.connection(-1 if conn_id is None else conn_id), cell_clicked)


def register_callbacks(app, store):
    register_paging(app, store, ids.FRAMES_TABLE, page)

    @app.callback(Output(ids.FRAMES_DETAIL, "children"), Input(ids.FRAMES_TABLE, "cellClicked"))
    def _select(cell_clicked):
        return clicked_detail(store.views(), cell_clicked)

    @app.callback(Output(ids.FRAMES_CSV, "data"), Input(ids.FRAMES_CSV_BUTTON, "n_clicks"), State(ids.FRAMES_TABLE, "getRowsRequest"),
                  prevent_initial_call=True)
    def _csv(_n, request):
        state = grid_state(request)
        return send_frame("frames.csv", with_utc(store.views().filtered_frames(state["sortModel"], state["filterModel"])))
