"""Figures checked against the tables: what is drawn adds up to what was measured."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import aggregate, figures
from inspector.analysis.tables import make_table
from tests.dashboard.conftest import capture_name


def _stack_totals(fig) -> dict:
    totals: dict = {}
    for trace in fig.data:
        for x, y in zip(trace.x, trace.y):
            totals[x] = totals.get(x, 0) + y
    return totals


def test_bytes_by_category_stacks_to_wire_bytes(tables):
    fig = figures.bytes_by_category(aggregate.bytes_by_category(tables["connections"]))
    conns = tables["connections"]
    assert _stack_totals(fig) == conns.groupby("variant")["wire_bytes"].sum().to_dict()
    assert fig.layout.barmode == "stack"


@pytest.mark.parametrize("name", ["chat", "tls"])
def test_cost_split_stacks_to_wire_bytes_per_message(tables, name):
    fig = figures.cost_split(aggregate.message_cost_split(tables, capture_name(name)))
    costs = tables["message_costs"].merge(tables["connections"][["conn_id", "variant", "capture"]], on="conn_id")
    chat = costs[(costs["capture"] == capture_name(name)) & costs["item"].isin(["exchange", "ws_message"])]
    per_message = chat.groupby("variant")["wire_bytes"].sum() / chat.groupby("variant")["payload_messages"].sum()
    assert _stack_totals(fig) == pytest.approx(per_message.to_dict())
    assert [t.meta for t in fig.data] == ["app_header_bytes", "wire_payload_bytes", "tls_overhead_bytes", "transport_bytes", "ack_bytes"]
    tls = next(t for t in fig.data if t.meta == "tls_overhead_bytes")
    # every variant of the chat recording (rest-h2 included) carried its messages in decrypted TLS records in tls.pcap
    assert set(tls.x) == set(per_message.index) and ((np.array(tls.y) > 0) == (name == "tls")).all()


def test_break_even_draws_each_variant_and_marks_the_crossover(tables):
    curves = aggregate.break_even_curves(tables, capture_name("chat"))
    fig = figures.break_even(curves, "rest-keepalive", "ws")
    lines = {t.name: t for t in fig.data if not t.name.startswith("crossover")}
    assert set(lines) == {"rest-keepalive", "rest-per-request", "ws", "ws-deflate"}
    conns = tables["connections"][tables["connections"]["capture"] == capture_name("chat")]
    for variant, total in conns.groupby("variant")["wire_bytes"].sum().items():
        assert lines[variant].y[-1] == pytest.approx(total)
    (marker,) = [t for t in fig.data if t.name.startswith("crossover")]
    x = marker.x[0]
    assert np.interp(x, lines["rest-keepalive"].x, lines["rest-keepalive"].y) == pytest.approx(np.interp(x, lines["ws"].x, lines["ws"].y))
    assert marker.y[0] == pytest.approx(np.interp(x, lines["ws"].x, lines["ws"].y))


def test_latency_boxes_hold_every_pair(tables):
    lat = aggregate.latency(tables, capture_name("chat"))
    fig = figures.latency(lat)
    http = tables["http_messages"]
    chat_rest = tables["connections"].query("kind == 'rest'")
    chat_rest = chat_rest[chat_rest["capture"] == capture_name("chat")]
    responses = http[http["conn_id"].isin(chat_rest["conn_id"]) & (http["direction"] == "server")]
    assert sum(len(t.y) for t in fig.data if t.name.startswith("rest")) == len(responses)
    assert all(min(t.y) > 0 for t in fig.data)


def test_staleness_boxes_are_the_sidecar_in_ms(tables, sidecars):
    fig = figures.staleness(tables["staleness"])
    for trace in fig.data:
        expected = [(s["received_ts"] - s["published_ts"]) * 1000 for s in sidecars["feed"]["staleness"] if s["variant"] == trace.name]
        assert list(trace.y) == pytest.approx(expected, abs=1e-3)


def test_protocol_mix_area_sums_to_capture_bytes(tables):
    fig = figures.protocol_mix(aggregate.protocol_mix(tables, capture_name("feed")))
    conns = tables["connections"][tables["connections"]["capture"] == capture_name("feed")]
    assert {t.name: sum(t.y) for t in fig.data} == pytest.approx(conns.groupby("kind")["wire_bytes"].sum().to_dict())


def test_efficiency_and_attribution(tables):
    conns = tables["connections"]
    fig = figures.efficiency(aggregate.bytes_by_category(conns))
    bars = {t.meta: dict(zip(t.x, t.y)) for t in fig.data}
    by_variant = conns.groupby("variant")
    wire = by_variant["wire_bytes"].sum()
    assert bars["efficiency"] == pytest.approx((by_variant["app_payload_bytes"].sum() / wire).to_dict())
    assert bars["wire_payload_efficiency"] == pytest.approx((by_variant["wire_payload_bytes"].sum() / wire).to_dict())
    # compression shows as saving: ws-deflate's application payload beats its bytes as sent
    assert bars["efficiency"]["ws-deflate"] > bars["wire_payload_efficiency"]["ws-deflate"]
    assert fig.layout.yaxis.range[1] >= max(bars["efficiency"].values())
    first = conns.iloc[0]
    fig = figures.attribution(aggregate.connection_attribution(conns, first["conn_id"]))
    assert sum(fig.data[0].x) == first["wire_bytes"]


def test_timeline_has_one_arrow_per_event(tables):
    conn_id = int(tables["connections"].query("variant == 'ws'").iloc[0]["conn_id"])
    events = aggregate.connection_timeline(tables, conn_id)
    fig = figures.timeline(events)
    arrows = [t for t in fig.data if t.showlegend is not False]
    assert sum(len(t.x) // 3 for t in arrows) == len(events)
    for trace in arrows:  # client-sent arrows go 0 -> 1, server-sent 1 -> 0
        assert all({trace.x[i], trace.x[i + 1]} == {0.0, 1.0} for i in range(0, len(trace.x), 3))


def test_empty_inputs_give_a_figure_saying_so():
    empty = {name: make_table(name) for name in ("connections", "message_costs", "http_messages", "staleness")}
    for fig in (figures.bytes_by_category(aggregate.bytes_by_category(empty["connections"])),
                figures.break_even(aggregate.break_even_curves(empty)),
                figures.staleness(empty["staleness"]), figures.timeline(aggregate.connection_timeline({"connections": empty["connections"]}, 1))):
        assert not fig.data and fig.layout.annotations


def test_big_inputs_stay_small_in_the_browser():
    n = 200_000
    curves = pd.DataFrame({"capture": "c", "kind": ["rest"] * n + ["websocket"] * n, "group": ["rest-keepalive"] * n + ["ws"] * n,
                           "messages": np.tile(np.arange(n), 2), "wire_bytes": np.concatenate([np.arange(n) * 300.0 + 200, np.arange(n) * 100.0 + 900]),
                           "tls_bytes": np.concatenate([np.arange(n) * 30.0 + 100, np.zeros(n)])})
    fig = figures.break_even(curves)
    lines = [t for t in fig.data if t.name in ("rest-keepalive", "ws")]
    assert all(len(t.x) <= figures.MAX_CURVE_POINTS for t in fig.data)
    # The ends are kept, and the crossover is computed on the full curves: 200 + 300x = 900 + 100x at x = 3.5.
    assert [t.x[-1] for t in lines] == [n - 1, n - 1]
    (mark,) = [t for t in fig.data if t.name.startswith("crossover")]
    assert mark.x[0] == pytest.approx(3.5)
    latencies = pd.DataFrame({"kind": "rest", "group": "rest-keepalive", "latency_s": np.linspace(0.001, 0.002, n)})
    (box,) = figures.latency(latencies).data
    assert box.y is None and box.median[0] == pytest.approx(0.0015 * 1000)
    assert len(figures.latency(latencies).to_json()) < 10_000


def test_every_figure_has_the_dashboards_look(tables):
    """The template is plotly's default, set by dashboard.figures (not named in each figure's
    layout, which plotly copies and validates per figure): the figures still carry it whole."""
    import plotly.io as pio

    expected = pio.templates[figures.TEMPLATE]
    made = [figures.bytes_by_category(aggregate.bytes_by_category(tables["connections"])),
            figures.protocol_mix(aggregate.protocol_mix(tables, capture_name("feed"))),
            figures.bytes_by_category(aggregate.bytes_by_category(make_table("connections")))]
    for figure in made:
        assert figure.layout.template == expected
        assert figure.to_plotly_json()["layout"]["template"]["layout"]["plot_bgcolor"] == "white"


def test_a_byte_category_has_one_colour_in_every_figure_with_exact_bytes_and_shares_on_hover(tables):
    """bytes_by_category (per group) and attribution (per connection) colour a category alike,
    every category apart; stacked figures keep a legend; hover carries the bytes and their share."""
    conns = tables["connections"]
    stacked = figures.bytes_by_category(aggregate.bytes_by_category(conns))
    stacked_colours = {trace.meta: trace.marker.color for trace in stacked.data}
    assert len(stacked_colours) > 5 and stacked.layout.showlegend is True
    assert len(set(figures.CATEGORY_COLORS.values())) == len(figures.CATEGORY_COLORS)  # no two categories alike
    conn = conns.loc[(conns[list(figures.CATEGORY_COLORS)] > 0).sum(axis=1).idxmax()]
    bars = figures.attribution(aggregate.connection_attribution(conns, int(conn["conn_id"])))
    (trace,) = bars.data
    labels = {figures.category_label(c): c for c in figures.CATEGORY_COLORS}
    for label, colour, share in zip(trace.y, trace.marker.color, trace.customdata):
        category = labels[label]
        assert colour == figures.CATEGORY_COLORS[category]
        assert share == pytest.approx(conn[category] / conn["wire_bytes"])
        if category in stacked_colours:
            assert stacked_colours[category] == colour
    for trace in stacked.data:  # each bar's share of its group's wire bytes
        totals = aggregate.bytes_by_category(conns).set_index("group")["wire_bytes"]
        assert list(trace.customdata) == pytest.approx([y / totals[x] for x, y in zip(trace.x, trace.y)])
        assert "%{y:,} B" in trace.hovertemplate and "%{customdata:.1%}" in trace.hovertemplate


def test_every_axis_of_a_figure_names_its_unit(tables):
    curves = aggregate.break_even_curves(tables)
    built = [figures.bytes_by_category(aggregate.bytes_by_category(tables["connections"])),
             figures.cost_split(aggregate.message_cost_split(tables, capture_name("chat"))),
             figures.efficiency(aggregate.bytes_by_category(tables["connections"])),
             figures.break_even(curves), figures.protocol_mix(aggregate.protocol_mix(tables, capture_name("chat"))),
             figures.attribution(aggregate.connection_attribution(tables["connections"], 0)),
             figures.timeline(aggregate.connection_timeline(tables, 0)), figures.staleness(tables["staleness"])]
    for fig in built:
        for axis in (fig.layout.xaxis, fig.layout.yaxis):
            title = axis.title.text
            if title:  # an axis of group names has none
                assert title.endswith(")") or "messages" in title, (fig.layout.title.text, title)
        assert fig.layout.yaxis.title.text or fig.layout.xaxis.title.text, fig.layout.title.text


def test_break_even_draws_the_tls_layer_of_a_curve_beneath_it_in_its_colour(tables):
    curves = aggregate.break_even_curves(tables, capture_name("tls"))
    fig = figures.break_even(curves)
    lines = {t.name: t for t in fig.data if t.meta == "wire_bytes"}
    layers = {t.name.removesuffix(" TLS layer"): t for t in fig.data if t.meta == "tls_bytes"}
    assert set(layers) == set(lines) == {"rest-keepalive", "rest-h2", "ws", "ws-deflate"}
    for group, layer in layers.items():
        curve = curves[curves["group"] == group]
        assert list(layer.y) == list(curve["tls_bytes"]) and list(layer.x) == list(lines[group].x)
        assert layer.line.color == lines[group].line.color and layer.legendgroup == lines[group].legendgroup == group
    assert len({line.line.color for line in lines.values()}) == len(lines)
    # without TLS, no layer is drawn
    chat = figures.break_even(aggregate.break_even_curves(tables, capture_name("chat")))
    assert not [t for t in chat.data if t.meta == "tls_bytes"]
