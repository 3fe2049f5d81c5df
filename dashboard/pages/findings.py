"""Findings: conformance findings grouped by rule, each linked to its connection."""

from __future__ import annotations

import dash
import pandas as pd
from dash import Input, Output, dcc, html

from dashboard import aggregate, ids
from dashboard.components import csv_download, send_csv
from dashboard.context import current_views

dash.register_page(__name__, path="/findings", name="Findings", title="Findings · wire-inspector", order=4)

MAX_PER_RULE = 50


def layout(**_query):
    return build_layout(current_views())


def build_layout(views):
    findings = views.tables["findings"]
    grouped = aggregate.findings_by_rule(findings)
    if grouped.empty:
        body = [html.P("No findings: every frame and message in the loaded captures conforms.")]
    else:
        body = []
        for row in grouped.itertuples(index=False):
            rows = findings[findings["rule"] == row.rule].head(MAX_PER_RULE)
            body.append(html.Details([
                html.Summary(f"{row.rule}: {row.count} on {len(row.connections)} connection{'' if len(row.connections) == 1 else 's'}"),
                html.Ul([html.Li([dcc.Link(f"connection {int(f.conn_id)}", href=f"/connections?conn={int(f.conn_id)}") if pd.notna(f.conn_id) else "no connection",
                                  html.Span(f" {f.direction or ''}: {f.detail}")]) for f in rows.itertuples(index=False)]),
            ], open=True))
    return html.Div([html.H3("Findings"), csv_download(ids.FINDINGS_CSV_BUTTON, ids.FINDINGS_CSV), html.Div(body, id=ids.FINDINGS_LIST)])


def register_callbacks(app, store):
    @app.callback(Output(ids.FINDINGS_CSV, "data"), Input(ids.FINDINGS_CSV_BUTTON, "n_clicks"), prevent_initial_call=True)
    def _csv(_n):
        return send_csv("findings", store.tables())
