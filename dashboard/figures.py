"""Pure figure builders: a small DataFrame from `dashboard.aggregate` -> go.Figure.

No dash imports, no state (but plotly's default template, set once on import: TEMPLATE):
unit-tested without a browser.
"""

from __future__ import annotations

import pandas as pd
import plotly.colors as pc
import plotly.graph_objects as go
import plotly.io as pio

from dashboard.aggregate import COST_LAYERS, MESSAGES_PER_EXCHANGE, REST_KINDS, crossover
from dashboard.push import PER_UPDATE
from inspector.analysis.tables import BYTE_CATEGORIES

# The look of every figure: made plotly's default template when this module is imported (the one
# setting it changes), which plotly applies to each figure without copying and validating it, as
# it does a template named in a figure's layout (8 ms a figure, a dozen in the first request's
# layouts).  Set here, not by the app: figures are built in the background before the app exists.
TEMPLATE = "plotly_white"
pio.templates.default = TEMPLATE
LAYOUT = dict(margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", y=-0.2))
KIND_COLORS = {"rest": "#d62728", "websocket": "#1f77b4", "tls": "#2ca02c", "http2": "#ff7f0e", "other": "#7f7f7f"}
DIRECTION_X = {"client": 0.0, "server": 1.0}
# One colour per byte category, the same in every figure (each protocol a family of hues):
# transport greys and browns, HTTP/1.1 reds, WebSocket blues, TLS greens, HTTP/2 oranges.
CATEGORY_COLORS = {
    "link_header_bytes": "#c7c7c7", "ip_header_bytes": "#a5a5a5", "tcp_header_bytes": "#7f7f7f", "tcp_control_bytes": "#8c564b",
    "retransmitted_bytes": "#e377c2",
    "http_header_bytes": "#d62728", "http_chunk_framing_bytes": "#ff9896", "http_body_bytes": "#9b1c1c",
    "ws_frame_header_bytes": "#1f77b4", "ws_control_payload_bytes": "#aec7e8", "ws_data_payload_bytes": "#17456e",
    "tls_record_header_bytes": "#98df8a", "tls_handshake_bytes": "#2ca02c", "tls_aead_overhead_bytes": "#6b8e23", "tls_encrypted_bytes": "#145a14",
    "http2_frame_header_bytes": "#ff7f0e", "http2_hpack_bytes": "#ffbb78", "http2_control_bytes": "#b35806", "http2_padding_bytes": "#fdd0a2",
    "unparsed_bytes": "#222222",
}
assert set(CATEGORY_COLORS) == set(BYTE_CATEGORIES)
# A message's cost layers (aggregate.COST_LAYERS) in the colour of the categories they gather.
LAYER_COLORS = {"app_header_bytes": CATEGORY_COLORS["http_header_bytes"], "wire_payload_bytes": CATEGORY_COLORS["ws_data_payload_bytes"],
                "tls_overhead_bytes": CATEGORY_COLORS["tls_aead_overhead_bytes"], "transport_bytes": CATEGORY_COLORS["tcp_header_bytes"],
                "ack_bytes": CATEGORY_COLORS["tcp_control_bytes"]}
# A break-even curve and its TLS layer share a colour (plotly's default sequence, set explicitly).
CURVE_COLORS = pc.qualitative.Plotly
# What a browser is sent per figure stays small whatever the capture size:
# curves are thinned, big distributions become precomputed boxes, long
# timelines are cut (the title says so).
MAX_CURVE_POINTS = 500
MAX_BOX_POINTS = 1000
MAX_TIMELINE_EVENTS = 400


def thin(frame: pd.DataFrame, max_points: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    """At most `max_points` rows, evenly spaced, always keeping the first and last."""
    if len(frame) <= max_points:
        return frame
    step = (len(frame) - 1) / (max_points - 1)
    keep = sorted({round(i * step) for i in range(max_points)})
    return frame.iloc[keep]


def _crossing(crossovers: pd.DataFrame, rest: str, websocket: str) -> tuple[float, float] | None:
    row = crossovers[(crossovers["rest"] == rest) & (crossovers["websocket"] == websocket)]
    if row.empty or pd.isna(row["crossover_messages"].iloc[0]):
        return None
    return float(row["crossover_messages"].iloc[0]), float(row["crossover_bytes"].iloc[0])


def _add_box(fig: go.Figure, values: pd.Series, name: str, **style) -> None:
    """All points for small groups; quartiles and 1.5 IQR fences for big ones."""
    if len(values) <= MAX_BOX_POINTS:
        fig.add_box(y=values, name=name, boxpoints="all", jitter=0.3, **style)
        return
    q1, median, q3 = values.quantile([0.25, 0.5, 0.75])
    reach = 1.5 * (q3 - q1)
    inside = values[(values >= q1 - reach) & (values <= q3 + reach)]
    fig.add_box(x=[name], q1=[q1], median=[median], q3=[q3], lowerfence=[inside.min()], upperfence=[inside.max()],
                name=f"{name} ({len(values):,})", **style)


def _empty(title: str, message: str = "no data in the loaded captures") -> go.Figure:
    fig = go.Figure(layout=dict(title=title, **LAYOUT))
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def category_label(category: str) -> str:
    return category.removesuffix("_bytes").replace("_", " ")


def bytes_by_category(table: pd.DataFrame, title: str = "Wire bytes by category") -> go.Figure:
    """Stacked bars: one bar per group, one trace per byte category (categories with bytes only),
    each in its category's colour; hover: the exact bytes and their share of the group's."""
    if table.empty:
        return _empty(title)
    fig = go.Figure(layout=dict(title=title, barmode="stack", yaxis_title="wire bytes (B)", showlegend=True, **LAYOUT))
    totals = table[list(BYTE_CATEGORIES)].sum(axis=1).replace(0, float("nan"))
    for category in BYTE_CATEGORIES:
        values = table[category]
        if not values.any():
            continue
        fig.add_bar(name=category_label(category), x=table["group"], y=values, meta=category, marker_color=CATEGORY_COLORS[category],
                    customdata=(values / totals).fillna(0.0), hovertemplate="%{x}: %{y:,} B, %{customdata:.1%} of its wire bytes<extra>%{fullData.name}</extra>")
    return fig


def cost_split(table: pd.DataFrame, title: str = "Wire bytes per message carrying payload, by layer") -> go.Figure:
    """Stacked bars: average bytes per payload message per group, split into COST_LAYERS; hover:
    the bytes and their share of the message's."""
    if table.empty:
        return _empty(title)
    fig = go.Figure(layout=dict(title=title, barmode="stack", yaxis_title="wire bytes per message (B)", showlegend=True, **LAYOUT))
    totals = table[list(COST_LAYERS)].sum(axis=1).replace(0, float("nan"))
    for layer, description in COST_LAYERS.items():
        fig.add_bar(name=category_label(layer), x=table["group"], y=table[layer], meta=layer, marker_color=LAYER_COLORS[layer],
                    customdata=(table[layer] / totals).fillna(0.0),
                    hovertemplate="%{x}: %{y:,.1f} B, %{customdata:.1%} of a message's wire bytes<extra>" + description + "</extra>")
    return fig


EFFICIENCY_BARS = {
    "efficiency": "application payload (decoded) / wire bytes",
    "wire_payload_efficiency": "payload as sent / wire bytes",
}


def efficiency(table: pd.DataFrame, title: str = "Efficiency: application payload (decoded) / wire bytes") -> go.Figure:
    """Two bars per group (a bytes_by_category table): efficiency, and the payload as sent over the
    wire bytes beside it, lighter; they differ by what compression saved.  Above 100% when
    compression delivers more payload than the bytes it sends.  A bar whose group has payload
    of unknown decoded size (counted as sent) is labelled ">=": a lower bound."""
    if table.empty:
        return _empty(title)
    top = max(1.0, float(table[list(EFFICIENCY_BARS)].max().max()) * 1.1)
    fig = go.Figure(layout=dict(title=title, barmode="group", yaxis=dict(title="share of wire bytes (%)", range=[0, top], tickformat=".0%"),
                                **LAYOUT))
    fig.add_hline(y=1.0, line=dict(color="#bbbbbb", dash="dot"))
    colors = [KIND_COLORS.get(k, "#7f7f7f") for k in table["kind"]]
    bound = ["≥" if n else "" for n in table["undecoded_payload_bytes"]]
    saved = table[["compression_saved_bytes", "compression_ratio", "undecoded_payload_bytes"]].to_numpy()
    fig.add_bar(x=table["group"], y=table["efficiency"], name=EFFICIENCY_BARS["efficiency"], meta="efficiency", marker_color=colors,
                text=[f"{b}{v:.1%}" for b, v in zip(bound, table["efficiency"])], textposition="outside", customdata=saved,
                hovertemplate="%{x}: %{text} of the wire bytes are application payload<br>compression saved %{customdata[0]:,} B "
                              "(ratio %{customdata[1]:.2f})<br>payload of unknown decoded size, counted as sent: %{customdata[2]:,} B"
                              "<extra></extra>")
    fig.add_bar(x=table["group"], y=table["wire_payload_efficiency"], name=EFFICIENCY_BARS["wire_payload_efficiency"],
                meta="wire_payload_efficiency", marker_color=colors, opacity=0.4,
                hovertemplate="%{x}: %{y:.1%} of the wire bytes are payload as sent<extra></extra>")
    return fig


def break_even(curves: pd.DataFrame, rest: str | None = None, websocket: str | None = None,
               title: str = "Break-even: cumulative wire bytes, setup included", crossovers: pd.DataFrame | None = None) -> go.Figure:
    """One line per group (meta "wire_bytes"), and beneath it, in its colour, thin, the part of it
    that is the TLS layer (meta "tls_bytes", named "GROUP TLS layer") for a group with TLS bytes;
    the crossover of `rest` and `websocket` (default: the first of each kind) marked: the row of
    `crossovers` (aggregate.break_even_crossovers of the whole curves, when `curves` are thinned),
    or where `curves` cross."""
    if curves.empty:
        return _empty(title)
    fig = go.Figure(layout=dict(title=title, xaxis_title=f"messages carrying payload (a REST exchange with both bodies is {MESSAGES_PER_EXCHANGE}; empty polls add bytes, not messages)",
                                yaxis_title="cumulative wire bytes (B)", **LAYOUT))
    groups = {g: c for g, c in curves.groupby("group", sort=True)}
    kinds = curves.drop_duplicates("group").set_index("group")["kind"]
    for number, (group, curve) in enumerate(groups.items()):
        shown = thin(curve)
        color = CURVE_COLORS[number % len(CURVE_COLORS)]
        dash = "solid" if kinds[group] == "websocket" else "dot"
        fig.add_scatter(x=shown["messages"], y=shown["wire_bytes"], mode="lines+markers", name=group, meta="wire_bytes", legendgroup=group,
                        line=dict(dash=dash, color=color), marker=dict(size=4),
                        hovertemplate="%{x} messages: %{y:,.0f} B<extra>" + group + "</extra>")
        if shown["tls_bytes"].any():
            fig.add_scatter(x=shown["messages"], y=shown["tls_bytes"], mode="lines", name=f"{group} TLS layer", meta="tls_bytes",
                            legendgroup=group, line=dict(dash=dash, color=color, width=1), customdata=shown["wire_bytes"],
                            hovertemplate="%{x} messages: TLS layer %{y:,.0f} B of %{customdata:,.0f} B<extra>" + group + "</extra>")
    rest = rest or next((g for g in groups if kinds[g] in REST_KINDS), None)
    websocket = websocket or next((g for g in groups if kinds[g] == "websocket"), None)
    if rest in groups and websocket in groups:
        found = crossover(groups[rest], groups[websocket]) if crossovers is None else _crossing(crossovers, rest, websocket)
        if found is not None:
            fig.add_scatter(x=[found[0]], y=[found[1]], mode="markers", name=f"crossover {rest} / {websocket}",
                            marker=dict(symbol="x", size=14, color="black"),
                            hovertemplate="crossover at %{x:.1f} messages, %{y:,.0f} B<extra></extra>")
    return fig


def latency(latencies: pd.DataFrame,
            title: str = "Latency: request to response / reply (WebSocket: by JSON id where messages carry one, else the next reply)") -> go.Figure:
    """A box per group of latency in milliseconds (all points shown)."""
    if latencies.empty:
        return _empty(title, "no request/reply pairs in the loaded captures")
    fig = go.Figure(layout=dict(title=title, yaxis_title="latency (ms)", **LAYOUT))
    for (kind, group), part in latencies.groupby(["kind", "group"], sort=True):
        _add_box(fig, part["latency_s"] * 1000.0, group, marker_color=KIND_COLORS.get(kind))
    return fig


def staleness(table: pd.DataFrame, title: str = "Feed staleness: received - published") -> go.Figure:
    """A box per variant of staleness in milliseconds (the staleness table)."""
    if table.empty:
        return _empty(title, "no recorded feed in the loaded captures")
    fig = go.Figure(layout=dict(title=title, yaxis_title="staleness (ms)", **LAYOUT))
    for variant, part in table.groupby("variant", sort=True):
        _add_box(fig, part["staleness_s"] * 1000.0, variant)
    return fig


def push_cost_per_update(costs: pd.DataFrame, title: str = "Wire bytes per update, by category (setup, keep-alives and empty polls included)") -> go.Figure:
    """Stacked bars: per variant of a push recording (push.push_costs), each byte category over
    the updates its client received; hover: the bytes and their share of an update's."""
    shown = costs[costs["updates"] > 0]
    if shown.empty:
        return _empty(title, "no updates in this capture (not a recorded feed)")
    per_update = shown.rename(columns={PER_UPDATE.format(c): c for c in BYTE_CATEGORIES})
    fig = bytes_by_category(per_update[["group", *BYTE_CATEGORIES]].fillna(0.0), title)
    fig.update_layout(yaxis_title="wire bytes per update (B)")
    fig.update_traces(hovertemplate="%{x}: %{y:,.1f} B, %{customdata:.1%} of an update's wire bytes<extra>%{fullData.name}</extra>")
    return fig


def push_rates(lines: pd.DataFrame, rate: float, title: str = "Wire bytes per minute as updates per minute grow (modelled from this capture)") -> go.Figure:
    """A line per variant (push.bytes_per_minute): idle bytes per minute plus the measured bytes
    of an update times the rate; the capture's own rate marked by a vertical line."""
    if lines.empty:
        return _empty(title, "not a push recording")
    fig = go.Figure(layout=dict(title=title, xaxis_title="updates per minute", yaxis_title="wire bytes per minute (B)", **LAYOUT))
    for number, (group, line) in enumerate(lines.groupby("group", sort=True)):
        dash = "solid" if line["kind"].iloc[0] == "websocket" else "dot"
        fig.add_scatter(x=line["updates_per_min"], y=line["bytes_per_min"], mode="lines", name=group, meta="bytes_per_min",
                        line=dict(dash=dash, color=CURVE_COLORS[number % len(CURVE_COLORS)]),
                        hovertemplate="%{x:,.0f} updates/min: %{y:,.0f} B/min<extra>" + group + "</extra>")
    if rate == rate:  # not NaN: the capture published updates
        fig.add_vline(x=rate, line=dict(color="black", dash="dash", width=1), annotation_text=f"this capture: {rate:,.0f}/min")
    return fig


def protocol_mix(table: pd.DataFrame, title: str = "Protocol mix over time") -> go.Figure:
    """Stacked area of wire bytes per kind per time bin."""
    if table.empty:
        return _empty(title)
    fig = go.Figure(layout=dict(title=title, xaxis_title="time since the first packet (s)", yaxis_title="wire bytes per bin (B)", showlegend=True, **LAYOUT))
    for kind, part in table.groupby("kind", sort=True):
        fig.add_scatter(x=part["t_s"], y=part["wire_bytes"], name=kind, mode="lines", stackgroup="kinds",
                        line=dict(color=KIND_COLORS.get(kind)))
    return fig


def attribution(table: pd.DataFrame, title: str = "Byte attribution") -> go.Figure:
    """Horizontal bars of one connection's bytes by category, each in its category's colour;
    hover: the exact bytes and their share of the connection's."""
    if table.empty:
        return _empty(title, "select a connection")
    fig = go.Figure(layout=dict(title=title, xaxis_title="bytes (B)", **LAYOUT))
    total = int(table["bytes"].sum())
    fig.add_bar(x=table["bytes"], y=[category_label(c) for c in table["category"]], orientation="h",
                marker_color=[CATEGORY_COLORS.get(c, "#7f7f7f") for c in table["category"]],
                customdata=table["bytes"] / total if total else [0.0] * len(table),
                hovertemplate="%{y}: %{x:,} B, %{customdata:.1%} of the connection's wire bytes<extra></extra>", name="bytes")
    fig.update_yaxes(autorange="reversed")
    return fig


def timeline(events: pd.DataFrame, title: str = "Timeline") -> go.Figure:
    """A sequence diagram: client lane at x=0, server lane at x=1, time downwards; one arrow per event."""
    if events.empty:
        return _empty(title, "select a connection")
    if len(events) > MAX_TIMELINE_EVENTS:
        title = f"{title} (first {MAX_TIMELINE_EVENTS:,} of {len(events):,} events)"
        events = events.iloc[:MAX_TIMELINE_EVENTS]
    fig = go.Figure(layout=dict(title=title, yaxis=dict(title="time since the first packet (ms)", autorange="reversed"),
                                xaxis=dict(tickvals=[0, 1], ticktext=["client", "server"], range=[-0.3, 1.3]), showlegend=True, **LAYOUT))
    for lane in (0, 1):
        fig.add_scatter(x=[lane, lane], y=[events["t_ms"].min(), events["t_ms"].max()], mode="lines",
                        line=dict(color="#bbbbbb"), showlegend=False, hoverinfo="skip")
    colors = {"tcp": "#7f7f7f", "http": KIND_COLORS["rest"], "ws-data": KIND_COLORS["websocket"], "ws-control": "#9467bd"}
    for kind, part in events.groupby("kind", sort=False):
        xs, ys, texts = [], [], []
        for row in part.itertuples(index=False):
            start = DIRECTION_X.get(row.direction, 0.0)
            xs += [start, 1.0 - start, None]
            ys += [row.t_ms, row.t_ms, None]
            texts += [f"{row.label} ({row.bytes:,.0f} B)"] * 2 + [None]
        fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=kind, text=texts, line=dict(color=colors.get(kind)),
                        marker=dict(symbol="arrow-bar-right", size=6), hovertemplate="%{text}<br>%{y:.3f} ms<extra></extra>")
    return fig
