"""Overview: per capture numbers, bytes by category (stacked), protocol mix over time."""

from __future__ import annotations

import dash
from dash import Input, Output, dcc, html

from dashboard import aggregate, ids
from dashboard.components import csv_download, graph, send_csv, small_table
from dashboard.context import current_views

dash.register_page(__name__, path="/", name="Overview", order=0)


COUNT_COLUMNS = ("packets", "connections", "wire_bytes", "rest_exchanges", "ws_messages", "tcp_wire_bytes", "wire_payload_bytes",
                 "app_payload_bytes", "undecoded_payload_bytes", "compression_saved_bytes")
# efficiency: application payload (decoded) / TCP wire bytes; the payload as sent has its own columns
FORMATS = {"efficiency": ".1%", "wire_payload_efficiency": ".1%", "compression_ratio": ".2f", **{c: ",d" for c in COUNT_COLUMNS}}


def layout(**_query):
    return build_layout(current_views())


def build_layout(views):
    captures = views.captures()
    overview = views.overview().copy()
    overview["capture"] = overview["capture"].map(aggregate._short)
    first = captures[0] if captures else None
    bytes_fig, mix_fig = capture_figures(views, first)
    return html.Div([
        html.H3("Captures"),
        small_table(overview, FORMATS, id=ids.OVERVIEW_TABLE),
        csv_download(ids.OVERVIEW_CSV_BUTTON, ids.OVERVIEW_CSV),
        html.Label("Capture"),
        dcc.Dropdown(id=ids.OVERVIEW_CAPTURE, options=[{"label": aggregate._short(c), "value": c} for c in captures], value=first, clearable=False),
        graph(ids.OVERVIEW_BYTES, bytes_fig),
        graph(ids.OVERVIEW_MIX, mix_fig),
    ])


def capture_figures(views, capture):
    """The two figures of one capture (None: all captures for bytes, nothing for the mix), built
    once per snapshot of the stores (views.overview_figures, computed in the background first)."""
    return views.overview_figures(capture)


def register_callbacks(app, store):
    # The layout has the figures of the capture the dropdown opens on: the callback runs on a change only.
    @app.callback(Output(ids.OVERVIEW_BYTES, "figure"), Output(ids.OVERVIEW_MIX, "figure"), Input(ids.OVERVIEW_CAPTURE, "value"),
                  prevent_initial_call=True)
    def _capture(capture):
        return capture_figures(store.views(), capture)

    @app.callback(Output(ids.OVERVIEW_CSV, "data"), Input(ids.OVERVIEW_CSV_BUTTON, "n_clicks"), prevent_initial_call=True)
    def _csv(_n):
        return send_csv("overview", store.views().capture(None))
