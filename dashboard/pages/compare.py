"""Push and request/response: REST against WebSocket per message (cost by layer, efficiency and
compression, break-even, latency), and for a push recording every way to push side by side (cost
per update by category, idle cost, staleness, break-even as the update rate grows); the claims."""

from __future__ import annotations

import dash
import numpy as np
from dash import Input, Output, State, dcc, html

from dashboard import aggregate, figures, ids, push
from dashboard.components import claims_table, csv_download, graph, send_csv, small_table
from dashboard.context import current_views
from inspector.analysis.tables import PAYLOAD_COLUMNS

dash.register_page(__name__, path="/compare", name="Push and request/response", title="Push and request/response · wire-inspector", order=1)

# Beside the efficiency figure: per group, the payload as sent, as decoded, what compression saved.
PAYLOAD_TABLE_COLUMNS = ["group", "kind", "wire_bytes", *PAYLOAD_COLUMNS]
PAYLOAD_FORMATS = {**{c: ",d" for c in ("wire_bytes", "wire_payload_bytes", "app_payload_bytes", "undecoded_payload_bytes",
                                        "compression_saved_bytes")},
                   "compression_ratio": ".2f", "efficiency": ".1%", "wire_payload_efficiency": ".1%"}
# The push table: per variant, what it did and what it cost.
PUSH_TABLE_COLUMNS = ["group", "kind", "connections", "updates", "updates_per_min", "bytes_per_update", "update_bytes_per_update",
                      "idle_bytes_per_min", "staleness_median_s", "staleness_p95_s", "wire_bytes"]
PUSH_FORMATS = {"updates_per_min": ",.1f", "bytes_per_update": ",.1f", "update_bytes_per_update": ",.1f", "idle_bytes_per_min": ",.0f",
                "staleness_median_s": ".6f", "staleness_p95_s": ".6f", "wire_bytes": ",d"}
# The rates the push lines are drawn over: from none to twice the capture's (or a break-even's), in this many steps.
PUSH_RATE_POINTS = 121
MIN_PUSH_RATE_RANGE = 60.0


def layout(**_query):
    return build_layout(current_views())


def default_capture(tables) -> str | None:
    """The capture with the most variants (feed, when the bundled captures are loaded)."""
    return aggregate.most_groups(tables["connections"])


def build_layout(views):
    tables = views.tables
    captures = views.captures()
    chosen = views.default_capture()
    return html.Div([
        html.H3("The claims, tested on the loaded captures"),
        claims_table(views.claims(), ids.COMPARE_CLAIMS),
        html.Label("Capture"),
        dcc.Dropdown(id=ids.COMPARE_CAPTURE, options=[{"label": aggregate._short(c), "value": c} for c in captures], value=chosen, clearable=False),
        csv_download(ids.COMPARE_CSV_BUTTON, ids.COMPARE_CSV),
        *capture_section(views, chosen),
        graph(ids.COMPARE_STALENESS, figures.staleness(tables["staleness"])),
        small_table(aggregate.staleness_summary(tables["staleness"]), {c: ".6f" for c in ("mean_s", "median_s", "max_s", "p95_s")}),
    ])


def capture_section(views, capture):
    """The per-capture figures and tables, as a list of components."""
    cost, eff, payload, curve, lat, cross, summary, table, push_cost, rates, push_even = capture_outputs(views, capture)
    return [html.H3("Every way to push, on the same updates"), html.Div(summary, id=ids.COMPARE_PUSH_SUMMARY),
            html.Div(table, id=ids.COMPARE_PUSH_TABLE), csv_download(ids.COMPARE_PUSH_CSV_BUTTON, ids.COMPARE_PUSH_CSV, "Download CSV (the variants)"), graph(ids.COMPARE_PUSH_COST, push_cost), graph(ids.COMPARE_PUSH_RATES, rates),
            html.Div(push_even, id=ids.COMPARE_PUSH_BREAK_EVEN),
            html.H3("Request/response: REST against WebSocket, per message"),
            graph(ids.COMPARE_COST, cost), graph(ids.COMPARE_EFFICIENCY, eff), html.Div(payload, id=ids.COMPARE_PAYLOAD),
            graph(ids.COMPARE_BREAK_EVEN, curve), html.Div(cross, id=ids.COMPARE_CROSSOVERS), graph(ids.COMPARE_LATENCY, lat)]


def capture_outputs(views, capture):
    """Figures and crossover table of one capture, built once per capture and tables snapshot."""
    return views.once(("compare-outputs", capture), lambda: _build_capture_outputs(views, capture))


def _build_capture_outputs(views, capture):
    curves = views.break_even_curves(capture)
    crossings = views.crossovers(capture)
    marked = crossings
    crossings = crossings.assign(capture=crossings["capture"].map(aggregate._short))
    by_group = views.bytes_by_category(capture)
    return (figures.cost_split(views.cost_split(capture)), figures.efficiency(by_group),
            small_table(by_group[PAYLOAD_TABLE_COLUMNS], PAYLOAD_FORMATS),
            figures.break_even(curves, crossovers=marked), figures.latency(views.latency_by_group(capture)),
            crossover_table(crossings, by_group, capture), *push_outputs(views, capture))


def push_outputs(views, capture):
    """The push section of one capture: the cheapest variant in words, the variants' table, cost
    per update by category, bytes per minute against the update rate, and the break-evens."""
    costs = views.push_costs(capture)
    if costs.empty:
        said = html.P(f"{aggregate._short(capture) if capture else 'No capture'}: not a push recording (a feed or idle capture "
                      "recorded by inspector record): nothing to compare here.", className="no-push")
        return said, "", figures.push_cost_per_update(costs), figures.push_rates(push.bytes_per_minute(costs, np.array([])), float("nan")), ""
    rate = views.push_rate(capture)
    cheapest = push.cheapest_claim(costs, capture, rate)
    said = html.P(f"{aggregate._short(capture)} {cheapest['text']}." if cheapest else f"{aggregate._short(capture)}: one variant only.",
                  className="push-cheapest")
    even = push.push_break_even(costs)
    rates = np.linspace(0.0, push_rate_range(rate, even), PUSH_RATE_POINTS)
    return (said, small_table(costs[PUSH_TABLE_COLUMNS], PUSH_FORMATS), figures.push_cost_per_update(costs),
            figures.push_rates(push.bytes_per_minute(costs, rates), rate),
            small_table(even, {"break_even_per_min": ",.1f"}))


def push_rate_range(rate: float, even) -> float:
    """The highest update rate the push lines are drawn to: twice the capture's, or of its
    highest break-even, whichever is more (at least MIN_PUSH_RATE_RANGE per minute)."""
    candidates = [MIN_PUSH_RATE_RANGE, *(2 * value for value in [rate, *even["break_even_per_min"]] if value == value)]
    return float(max(candidates))


def crossover_table(crossings, by_group, capture):
    """Where each REST group's curve crosses each WebSocket group's; a capture without both says so."""
    if crossings.empty:
        kinds = set(by_group["kind"])
        missing = [name for name, present in (("REST (HTTP/1.1 or HTTP/2)", kinds & set(aggregate.REST_KINDS)),
                                              ("WebSocket", "websocket" in kinds)) if not present]
        return html.P(f"{aggregate._short(capture) if capture else 'No capture'}: no crossover: the capture has no "
                      f"{' and no '.join(missing) or 'REST and WebSocket'} traffic to compare.", className="no-crossover")
    return small_table(crossings, {"crossover_messages": ".1f", "crossover_bytes": ",.0f", "rest_total": ",.0f", "websocket_total": ",.0f"})


def register_callbacks(app, store):
    @app.callback(Output(ids.COMPARE_COST, "figure"), Output(ids.COMPARE_EFFICIENCY, "figure"), Output(ids.COMPARE_PAYLOAD, "children"),
                  Output(ids.COMPARE_BREAK_EVEN, "figure"), Output(ids.COMPARE_LATENCY, "figure"), Output(ids.COMPARE_CROSSOVERS, "children"),
                  Output(ids.COMPARE_PUSH_SUMMARY, "children"), Output(ids.COMPARE_PUSH_TABLE, "children"),
                  Output(ids.COMPARE_PUSH_COST, "figure"), Output(ids.COMPARE_PUSH_RATES, "figure"),
                  Output(ids.COMPARE_PUSH_BREAK_EVEN, "children"), Input(ids.COMPARE_CAPTURE, "value"))
    def _capture(capture):
        return capture_outputs(store.views(), capture)

    @app.callback(Output(ids.COMPARE_CSV, "data"), Input(ids.COMPARE_CSV_BUTTON, "n_clicks"), State(ids.COMPARE_CAPTURE, "value"),
                  prevent_initial_call=True)
    def _csv(_n, capture):
        return send_csv("compare", store.views().capture(capture), {"capture": capture})

    @app.callback(Output(ids.COMPARE_PUSH_CSV, "data"), Input(ids.COMPARE_PUSH_CSV_BUTTON, "n_clicks"), State(ids.COMPARE_CAPTURE, "value"),
                  prevent_initial_call=True)
    def _push_csv(_n, capture):
        return send_csv("push", store.views().capture(capture, push.PUSH_COLUMNS), {"capture": capture})
