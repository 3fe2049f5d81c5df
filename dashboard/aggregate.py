"""Pure aggregations: analysis tables -> small DataFrames the pages show.

Everything here takes the tables of `inspector.analysis.tables` (a dict of
DataFrames, or single tables) and returns small DataFrames or plain values.
Nothing here imports dash or plotly, keeps state or does I/O, so every number
on a page can be unit-tested against the tables.

Units.  An *application message* is one HTTP request or one HTTP response, or
one WebSocket data message, or one Server-Sent Event: the unit `inspector record`
counts in its sidecars (whose SSE ledger counts the events, not the stream's
response head).
A REST exchange (request + response) is therefore two messages.  A *payload
message* is an application message that carries payload (an HTTP body, a
non-empty WebSocket message): the work done.  Costs "per message" are per
payload message, so a message carrying nothing (an empty poll, a 204) is
overhead charged to the work, not work: polling a feed 80 times to receive 20
updates costs its bytes divided by the 20 updates, as pushing them does.
A *group* is a recorded variant (`rest-keepalive`, `ws`, ...) or, for
connections of unrecorded captures, the connection kind (`rest`, `websocket`).

Payload.  *Efficiency* is application payload (HTTP bodies decoded, WebSocket
messages decompressed) over wire bytes, as in the analysis tables
(`tables.PAYLOAD_COLUMNS`): compression counts as saving, never as waste, and
the payload as sent is a column of its own (`wire_payload_bytes`,
`wire_payload_efficiency`), as is what compression saved.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from inspector.analysis.tables import BYTE_CATEGORIES, PAYLOAD_COLUMNS

MESSAGES_PER_EXCHANGE = 2
# An SSE stream is an exchange (its request and its response's head) and then an event per message.
APP_ITEMS = {"exchange": MESSAGES_PER_EXCHANGE, "ws_message": 1, "sse_event": 1}
# message_costs' layers of a message: they add up to its wire_bytes.
COST_LAYERS = {
    "app_header_bytes": "application headers (HTTP/1.1 headers; HTTP/2 HPACK blocks and frame headers; WebSocket frame headers)",
    "wire_payload_bytes": "payload as sent (compressed, when it is)",
    "tls_overhead_bytes": "TLS record headers and AEAD overhead of the decrypted records carrying it",
    "transport_bytes": "link, IP and TCP headers of the packets carrying it",
    "ack_bytes": "pure ACKs acknowledging it",
}
# Connection kinds of request/response REST, over HTTP/1.1 and HTTP/2 (cleartext or decrypted TLS):
# the REST side of the REST vs WebSocket comparison, each variant (or kind) its own group.
REST_KINDS = ("rest", "http2")
PROTOCOL_KINDS = (*REST_KINDS, "websocket")
# The byte categories of the TLS layer: record headers, handshakes, AEAD overhead, what was not decrypted.
TLS_CATEGORIES = [c for c in BYTE_CATEGORIES if c.startswith("tls_")]
# What a break-even curve runs up: all wire bytes, and the part of them that is the TLS layer.
CURVE_VALUES = ("wire_bytes", "tls_bytes")
# What message_cost_split sums per group (then divides by the payload messages).
COST_SPLIT_SUMS = [*COST_LAYERS, "wire_bytes", "app_payload_bytes", "undecoded_payload_bytes"]
# The payload columns a table sums; the others of PAYLOAD_COLUMNS are derived from the sums.
PAYLOAD_SUMS = ["wire_payload_bytes", "app_payload_bytes", "undecoded_payload_bytes"]

Tables = dict[str, pd.DataFrame]

# The columns of each table that a view reads (a store's views load only these):
# connection_groups, break_even_curves, message_cost_split, latency, claims.
GROUP_COLUMNS = {"connections": ["conn_id", "capture", "kind", "variant"]}
BREAK_EVEN_COLUMNS = {"connections": [*GROUP_COLUMNS["connections"], *TLS_CATEGORIES],
                      "message_costs": ["conn_id", "ts", "item_index", "wire_bytes", "tls_overhead_bytes", "item", "payload_messages"]}
COST_SPLIT_COLUMNS = {**GROUP_COLUMNS, "message_costs": ["conn_id", "item", *COST_LAYERS, "wire_bytes", "app_payload_bytes",
                                                         "undecoded_payload_bytes", "payload_messages"]}
LATENCY_COLUMNS = {**GROUP_COLUMNS, "http_messages": ["conn_id", "exchange_id", "direction", "ts", "end_ts"],
                   "ws_messages": ["conn_id", "message_id", "direction", "ts", "end_ts", "payload_text"]}
CLAIMS_COLUMNS = {"connections": [*GROUP_COLUMNS["connections"], "ws_deflate", "setup_bytes", "start_ts", "end_ts", "ws_messages",
                                  "http_requests", "http_responses"], "ws_messages": ["conn_id", "direction"]}


# --- labels -------------------------------------------------------------------


def connection_groups(connections: pd.DataFrame) -> pd.DataFrame:
    """conn_id -> capture, kind, variant and group (variant, or kind when unrecorded)."""
    out = connections[["conn_id", "capture", "kind", "variant"]].copy()
    variant = out["variant"].fillna("").astype(str)
    out["variant"] = variant
    out["group"] = np.where(variant != "", variant, out["kind"].astype(str))
    return out


def _with_groups(table: pd.DataFrame, connections: pd.DataFrame) -> pd.DataFrame:
    groups = connection_groups(connections)
    drop = [c for c in ("capture", "kind", "variant", "group") if c in table.columns]
    return table.drop(columns=drop).merge(groups, on="conn_id", how="left")


def _only_capture(table: pd.DataFrame, capture: str | None) -> pd.DataFrame:
    return table if capture is None else table[table["capture"] == capture]


def most_groups(connections: pd.DataFrame) -> str | None:
    """The capture with the most groups (feed, when the bundled captures are loaded: its six
    variants, as idle's, the first of them by name); None without connections."""
    conns = connection_groups(connections)
    if conns.empty:
        return None
    counts = conns.groupby("capture")["group"].nunique()
    return str(counts.sort_values(ascending=False, kind="stable").index[0])


def captures_of(tables: Tables) -> list[str]:
    return [str(c) for c in tables["captures"]["capture"]]


# --- overview -----------------------------------------------------------------


def capture_overview(tables: Tables) -> pd.DataFrame:
    """Per capture: packets, connections, REST exchanges, WebSocket messages, wire bytes, and the
    payload columns over its TCP connections (efficiency: application payload / TCP wire bytes)."""
    conns = tables["connections"]
    rest = conns[conns["kind"].isin(REST_KINDS)]
    by_capture = conns.groupby("capture")
    per = pd.DataFrame({
        "rest_exchanges": rest.groupby("capture")["http_requests"].sum(),
        "ws_messages": by_capture["ws_messages"].sum(),
        "tcp_wire_bytes": by_capture["wire_bytes"].sum(),
        **{column: by_capture[column].sum() for column in PAYLOAD_SUMS},
    })
    caps = tables["captures"][["capture", "packets", "connections", "wire_bytes"]]
    out = caps.merge(per, left_on="capture", right_index=True, how="left")
    for column in ["rest_exchanges", "ws_messages", "tcp_wire_bytes", *PAYLOAD_SUMS]:
        out[column] = out[column].fillna(0).astype("int64")
    return with_payload_columns(out, "tcp_wire_bytes").reset_index(drop=True)


def bytes_by_category(connections: pd.DataFrame, capture: str | None = None) -> pd.DataFrame:
    """Per group (variant or kind): the byte categories summed, wire bytes and the payload columns."""
    conns = _only_capture(_with_groups(connections, connections), capture)
    columns = list(BYTE_CATEGORIES) + ["wire_bytes"] + PAYLOAD_SUMS
    out = conns.groupby(["kind", "group"], sort=True)[columns].sum().reset_index()
    return with_payload_columns(out, "wire_bytes")


def headline(overview: pd.DataFrame, findings: int) -> list[dict]:
    """The Overview's headline numbers over every loaded capture (capture_overview's rows and the
    number of findings): each a card {key, label, value (as shown), exact (on hover)}."""
    tcp_wire, app = int(overview["tcp_wire_bytes"].sum()), int(overview["app_payload_bytes"].sum())
    rest, ws = int(overview["rest_exchanges"].sum()), int(overview["ws_messages"].sum())
    wire = int(overview["wire_bytes"].sum())
    efficiency = app / tcp_wire if tcp_wire else math.nan
    return [
        {"key": "captures", "label": "captures", "value": f"{len(overview):,}", "exact": f"{len(overview):,} captures"},
        {"key": "connections", "label": "TCP connections", "value": f"{int(overview['connections'].sum()):,}",
         "exact": f"{int(overview['connections'].sum()):,} connections"},
        {"key": "messages", "label": "messages", "value": f"{rest + ws:,}", "exact": f"{rest:,} REST exchanges + {ws:,} WebSocket messages"},
        {"key": "wire_bytes", "label": "wire bytes", "value": human_bytes(wire), "exact": f"{wire:,} B on the wire (every captured packet)"},
        {"key": "efficiency", "label": "efficiency", "value": "n/a" if math.isnan(efficiency) else f"{efficiency:.1%}",
         "exact": f"{app:,} B of application payload in {tcp_wire:,} B of TCP connections"},
        {"key": "findings", "label": "findings", "value": f"{findings:,}", "exact": f"{findings:,} findings (see the Findings page)"},
    ]


def human_bytes(count: int) -> str:
    """A byte count in decimal units, three significant digits (1 kB = 1,000 B, as Wireshark's statistics)."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= size:
            return f"{count / size:.3g} {unit}" if count / size < 1000 else f"{count / size:,.0f} {unit}"
    return f"{count:,} B"


def with_payload_columns(sums: pd.DataFrame, wire: str) -> pd.DataFrame:
    """`sums` (with the PAYLOAD_SUMS columns and the wire bytes column `wire`, summed over some
    connections) with every column of PAYLOAD_COLUMNS, in their order, after the others:
    the analysis's payload_columns, per row."""
    app, sent = sums["app_payload_bytes"], sums["wire_payload_bytes"]
    derived = {
        "compression_saved_bytes": (app - sent).astype("int64"),
        "compression_ratio": _ratio(app, sent),
        "efficiency": _ratio(app, sums[wire]),
        "wire_payload_efficiency": _ratio(sent, sums[wire]),
    }
    out = sums.assign(**derived)
    others = [c for c in out.columns if c not in PAYLOAD_COLUMNS]
    return out[others + list(PAYLOAD_COLUMNS)]


def protocol_mix(tables: Tables, capture: str, bins: int = 40) -> pd.DataFrame:
    """Wire bytes per connection kind over time (seconds since the capture's first row), in `bins` bins."""
    costs = _with_groups(tables["message_costs"], tables["connections"])
    costs = costs[costs["capture"] == capture]
    if costs.empty:
        return pd.DataFrame({"t_s": pd.Series(dtype="float64"), "kind": pd.Series(dtype="str"), "wire_bytes": pd.Series(dtype="float64")})
    t = costs["ts"].to_numpy(dtype="float64")
    start, span = float(t.min()), float(t.max() - t.min())
    width = span / bins if span > 0 else 1.0
    index = np.minimum(((t - start) / width).astype(np.int64), bins - 1)
    frame = pd.DataFrame({"bin": index, "kind": costs["kind"].to_numpy(), "wire_bytes": costs["wire_bytes"].to_numpy()})
    out = frame.groupby(["bin", "kind"], sort=True)["wire_bytes"].sum().reset_index()
    out["t_s"] = out["bin"] * width
    return out[["t_s", "kind", "wire_bytes"]]


# --- REST vs WebSocket ----------------------------------------------------------


def app_message_costs(tables: Tables) -> pd.DataFrame:
    """message_costs rows of application messages, with group labels, and as weights
    `messages` (application messages in the row) and `payload_messages` (those with payload,
    counted by the analysis)."""
    costs = tables["message_costs"]
    costs = costs[costs["item"].isin(list(APP_ITEMS))]
    out = _with_groups(costs, tables["connections"])
    out["messages"] = out["item"].map(APP_ITEMS).astype("int64")
    return out


def message_cost_split(tables: Tables, capture: str | None = None) -> pd.DataFrame:
    """Per group: average wire bytes per payload message, split by layer (setup and teardown
    excluded; messages without payload included in the cost), and the application payload
    (decoded) per payload message; efficiency divides it, wire_payload_efficiency the
    payload as sent, by the wire bytes of those messages.  NaN for a group without payload."""
    costs = _only_capture(app_message_costs(tables), capture)
    sums = costs.groupby(["kind", "group"], sort=True)[COST_SPLIT_SUMS + ["messages", "payload_messages"]].sum().reset_index()
    return cost_split_of_sums(sums)


def cost_split_of_sums(sums: pd.DataFrame) -> pd.DataFrame:
    """message_cost_split from its sums per (kind, group): COST_SPLIT_SUMS, messages and payload_messages."""
    out = sums[["kind", "group", "messages", "payload_messages"]].copy()
    for column in COST_SPLIT_SUMS:
        out[column] = _ratio(sums[column], sums["payload_messages"])
    out["efficiency"] = _ratio(sums["app_payload_bytes"], sums["wire_bytes"])
    out["wire_payload_efficiency"] = _ratio(sums["wire_payload_bytes"], sums["wire_bytes"])
    return out


def break_even_curves(tables: Tables, capture: str | None = None) -> pd.DataFrame:
    """Cumulative wire bytes against payload messages, per capture and group, setup included.

    A connection's fixed cost (setup, teardown, WebSocket control frames and
    anything not attributed to a message) is charged when its first message
    goes out, or at 0 messages for a connection that carried none; a message
    without payload is charged with the next payload message (the last one,
    for those after it).  So the curve starts at the first connection's setup
    cost, rises with every payload message, and ends at the group's total
    wire bytes.

    `tls_bytes` is the part of `wire_bytes` that is the TLS layer (the
    TLS_CATEGORIES of the connections), run up the same way: each message with
    its tls_overhead_bytes, the rest of its connection's TLS bytes (the
    handshake, records not decrypted) as part of the fixed cost; so it ends at
    the group's TLS bytes, and is 0 throughout without TLS.
    """
    costs = tables["message_costs"]
    # only the columns needed, and `item` as a message weight (0: not a message) up front:
    # row selection on the wide table is what costs time on a million rows
    costs = pd.DataFrame({"conn_id": costs["conn_id"], "ts": costs["ts"], "item_index": costs["item_index"],
                          "wire_bytes": costs["wire_bytes"], "tls_bytes": costs["tls_overhead_bytes"],
                          "is_app": costs["item"].isin(list(APP_ITEMS)), "payload_messages": costs["payload_messages"]})
    costs = _only_capture(_with_groups(costs, tables["connections"]), capture)
    fixed = _fixed_costs(costs, tables["connections"])
    parts = [_group_curve(key, part, fixed) for key, part in costs.groupby(["capture", "kind", "group"], sort=True)]
    if not parts:
        return pd.DataFrame({"capture": pd.Series(dtype="object"), "kind": pd.Series(dtype="object"),
                             "group": pd.Series(dtype="object"), "messages": pd.Series(dtype="int64"),
                             **{value: pd.Series(dtype="float64") for value in CURVE_VALUES}})
    return pd.concat(parts, ignore_index=True)


def _fixed_costs(costs: pd.DataFrame, connections: pd.DataFrame) -> pd.DataFrame:
    """Per connection of `costs`, what is charged apart from its messages (CURVE_VALUES): the wire
    bytes of its rows that are not messages, and the TLS bytes its messages do not carry."""
    app = costs["is_app"]
    sums = pd.DataFrame({"conn_id": costs["conn_id"], "wire_bytes": costs["wire_bytes"].where(~app, 0.0),
                         "tls_bytes": costs["tls_bytes"].where(app, 0)}).groupby("conn_id").sum()
    tls = connections.set_index("conn_id")[TLS_CATEGORIES].sum(axis=1).reindex(sums.index, fill_value=0)
    return pd.DataFrame({"wire_bytes": sums["wire_bytes"].astype("float64"),
                         "tls_bytes": (tls - sums["tls_bytes"]).astype("float64")}, index=sums.index)


def _group_curve(key: tuple, part: pd.DataFrame, fixed: pd.DataFrame) -> pd.DataFrame:
    """One group's curve: a point at 0 messages, then one per payload message in time order."""
    capture, kind, group = key
    app = part[part["is_app"].to_numpy()].sort_values(["ts", "conn_id", "item_index"], kind="stable")
    conn_ids = app["conn_id"].to_numpy()
    mine = fixed.loc[part["conn_id"].unique()]
    first_seen = ~pd.Series(conn_ids).duplicated().to_numpy()
    weights = app["payload_messages"].to_numpy(dtype="int64")
    carries = weights > 0
    return pd.DataFrame({
        "capture": capture, "kind": kind, "group": group,
        "messages": np.concatenate(([0], np.cumsum(weights)[carries])).astype("int64"),
        **{value: _running_total(app[value].to_numpy(dtype="float64"), mine[value], conn_ids, first_seen, carries)
           for value in CURVE_VALUES},
    })


def _running_total(values: np.ndarray, fixed: pd.Series, conn_ids: np.ndarray, first_seen: np.ndarray, carries: np.ndarray) -> np.ndarray:
    """A curve's y at 0 messages and at each message carrying payload: the messages' `values` run
    up, each connection's `fixed` cost charged with its first message (up front without any)."""
    # connections that carried no message are charged up front, at 0 messages
    start = float(fixed[~fixed.index.isin(conn_ids)].sum())
    # the others when their first message goes out (the first message's fixed cost is at 0 too)
    charge = np.where(first_seen, fixed.reindex(conn_ids, fill_value=0).to_numpy(dtype="float64"), 0.0)
    if len(conn_ids):
        start += charge[0]
        charge[0] = 0.0
    totals = start + np.cumsum(values + charge)
    ys = totals[carries]
    if len(ys):
        ys[-1] = totals[-1]  # messages without payload after the last one are charged to it
    elif len(totals):
        start = totals[-1]  # nothing carried payload: everything is cost at 0 messages
    return np.concatenate(([start], ys))


def curve_at(curve: pd.DataFrame, messages: float) -> float:
    """Cumulative wire bytes of one curve at `messages` (linear between points; NaN beyond its end)."""
    xs = curve["messages"].to_numpy(dtype="float64")
    if not len(xs) or messages > xs.max():
        return math.nan
    return float(np.interp(messages, xs, curve["wire_bytes"].to_numpy(dtype="float64")))


def crossover(a: pd.DataFrame, b: pd.DataFrame) -> tuple[float, float] | None:
    """Where curve `a` and curve `b` first cross, as (messages, wire_bytes), or None.

    Both are linear between their points; only their common range counts.
    A curve starting equal to the other does not count as a crossing until
    they have been apart.
    """
    if a.empty or b.empty:
        return None
    end = min(a["messages"].max(), b["messages"].max())
    xs = np.union1d(a["messages"].to_numpy(dtype="float64"), b["messages"].to_numpy(dtype="float64"))
    xs = xs[xs <= end]
    ya = np.interp(xs, a["messages"].to_numpy(dtype="float64"), a["wire_bytes"].to_numpy(dtype="float64"))
    yb = np.interp(xs, b["messages"].to_numpy(dtype="float64"), b["wire_bytes"].to_numpy(dtype="float64"))
    diff = ya - yb
    sign = np.sign(diff)
    nonzero = np.flatnonzero(sign)
    if not len(nonzero):
        return None
    first = nonzero[0]
    for i in range(first + 1, len(xs)):
        if sign[i] == -sign[first]:
            # between xs[i-1] and xs[i] the difference changes sign
            x0, x1, d0, d1 = xs[i - 1], xs[i], diff[i - 1], diff[i]
            x = x0 + (x1 - x0) * d0 / (d0 - d1) if d0 != d1 else x0
            return float(x), float(np.interp(x, xs, ya))
    return None


def break_even_crossovers(curves: pd.DataFrame) -> pd.DataFrame:
    """For every capture, every REST group against every WebSocket group: where the curves cross."""
    rows = []
    for cap, part in curves.groupby("capture", sort=True):
        groups = {g: c for g, c in part.groupby("group", sort=True)}
        kinds = part.drop_duplicates("group").set_index("group")["kind"]
        for rest in [g for g in groups if kinds[g] in REST_KINDS]:
            for ws in [g for g in groups if kinds[g] == "websocket"]:
                found = crossover(groups[rest], groups[ws])
                rows.append({
                    "capture": cap, "rest": rest, "websocket": ws,
                    "crossover_messages": found[0] if found else math.nan,
                    "crossover_bytes": found[1] if found else math.nan,
                    "rest_total": float(groups[rest]["wire_bytes"].iloc[-1]),
                    "websocket_total": float(groups[ws]["wire_bytes"].iloc[-1]),
                    "rest_messages": int(groups[rest]["messages"].iloc[-1]),
                    "websocket_messages": int(groups[ws]["messages"].iloc[-1]),
                })
    columns = ["capture", "rest", "websocket", "crossover_messages", "crossover_bytes", "rest_total", "websocket_total", "rest_messages", "websocket_messages"]
    return pd.DataFrame(rows, columns=columns)


def rest_latency(tables: Tables) -> pd.DataFrame:
    """REST request -> response (HTTP/1.1 or HTTP/2): the response's end_ts minus the request's ts, per exchange."""
    http = _with_groups(tables["http_messages"], tables["connections"])
    http = http[http["kind"].isin(REST_KINDS)]
    keys = ["conn_id", "exchange_id"]
    requests = http[http["direction"] == "client"][keys + ["ts", "capture", "kind", "group"]]
    responses = http[http["direction"] == "server"][keys + ["end_ts"]]
    pairs = requests.merge(responses, on=keys, how="inner")
    pairs["latency_s"] = pairs["end_ts"] - pairs["ts"]
    return pairs[["capture", "kind", "group", "conn_id", "latency_s"]].reset_index(drop=True)


# A JSON message's id: the first of these keys with a string or integer value.  Read
# from the message's text preview with a bounded pattern (payloads are hostile: the
# text is only matched, never parsed as code).
MESSAGE_ID = re.compile(r'"(?:id|seq|request_id|requestId|correlation_id|correlationId|msg_id|msgId)"\s*:\s*("[^"\\]{0,64}"|-?\d{1,20})')


def ws_latency(tables: Tables) -> pd.DataFrame:
    """WebSocket request -> reply, reply end_ts minus request ts, per pair (`paired_by`).

    A client message whose JSON carries an id (id, seq, request_id, ...) pairs with
    the next server message carrying the same id ("id"): right even when requests
    are pipelined and replies come out of order.  The other messages of a connection
    pair with the next one in the other direction among them ("nearest"; each
    message in at most one pair).  A one-way stream (a push feed) has no pairs.
    """
    msgs = _with_groups(tables["ws_messages"], tables["connections"]).sort_values(["conn_id", "ts", "message_id"], kind="stable")
    msgs = msgs.reset_index(drop=True)
    by_id, used = _pairs_by_id(msgs)
    nearest = _pairs_nearest(msgs.drop(index=used))
    out = pd.concat([by_id, nearest]).sort_index(kind="stable").reset_index(drop=True)
    return out[["capture", "kind", "group", "conn_id", "latency_s", "paired_by"]]


def _pairs_by_id(msgs: pd.DataFrame) -> tuple[pd.DataFrame, list[int]]:
    """(pairs indexed by their request's row, rows used) of the id-carrying messages."""
    ids = msgs["payload_text"].astype("object").str.extract(MESSAGE_ID, expand=False)
    keyed = msgs.assign(key=ids, row=msgs.index)[ids.notna().to_numpy()]
    requests = keyed[keyed["direction"] == "client"][["row", "capture", "kind", "group", "conn_id", "key", "ts"]]
    replies = keyed[keyed["direction"] == "server"][["row", "conn_id", "key", "ts", "end_ts"]]
    if requests.empty or replies.empty:
        return msgs.iloc[:0].assign(latency_s=pd.Series(dtype="float64"), paired_by=""), []
    pairs = pd.merge_asof(requests.sort_values("ts", kind="stable"),
                          replies.rename(columns={"row": "reply_row", "end_ts": "reply_end_ts"}).sort_values("ts", kind="stable"),
                          on="ts", by=["conn_id", "key"], direction="forward")
    pairs = pairs.dropna(subset=["reply_row"]).drop_duplicates("reply_row")  # a reply answers one request
    pairs = pairs.set_index("row").assign(latency_s=pairs["reply_end_ts"].to_numpy() - pairs["ts"].to_numpy(), paired_by="id")
    return pairs, [*pairs.index, *pairs["reply_row"].astype("int64")]


def _pairs_nearest(msgs: pd.DataFrame) -> pd.DataFrame:
    """Pairs indexed by their request's row: a message and the next one in the other direction."""
    conn, direction = msgs["conn_id"].to_numpy(), msgs["direction"].to_numpy()
    # A run is a stretch of messages on one connection alternating in direction; inside
    # a run, messages pair up from its start: (1st, 2nd), (3rd, 4th), ...
    turns = np.zeros(len(msgs), dtype=bool)
    turns[1:] = (conn[1:] == conn[:-1]) & (direction[1:] != direction[:-1])
    positions = np.arange(len(msgs))
    run_start = np.maximum.accumulate(np.where(turns, 0, positions)) if len(msgs) else positions
    replies = np.flatnonzero(turns & ((positions - run_start) % 2 == 1))
    requests = replies - 1
    out = msgs.iloc[requests][["capture", "kind", "group", "conn_id"]]
    ts, end_ts = msgs["ts"].to_numpy(dtype="float64"), msgs["end_ts"].to_numpy(dtype="float64")
    return out.assign(latency_s=end_ts[replies] - ts[requests], paired_by="nearest")


def latency(tables: Tables, capture: str | None = None) -> pd.DataFrame:
    both = pd.concat([rest_latency(tables), ws_latency(tables)], ignore_index=True)
    return _only_capture(both, capture).reset_index(drop=True)


def staleness_summary(staleness: pd.DataFrame) -> pd.DataFrame:
    """Per capture and variant: updates seen and their staleness (received - published)."""
    grouped = staleness.groupby(["capture", "variant"], sort=True)["staleness_s"]
    out = grouped.agg(updates="count", mean_s="mean", median_s="median", max_s="max").reset_index()
    out["p95_s"] = grouped.quantile(0.95).to_numpy() if len(out) else []
    return out


# --- claims -----------------------------------------------------------------------


# A claim's verdict; a difference of less than MATERIAL_DIFFERENCE of the larger number is none.
HOLDS, FAILS, NO_DIFFERENCE, NOT_MEASURABLE = "holds", "does not hold", "no material difference", "not measurable here"
VERDICTS = (HOLDS, FAILS, NO_DIFFERENCE, NOT_MEASURABLE)
MATERIAL_DIFFERENCE = 0.05


def claims(tables: Tables, curves: pd.DataFrame | None = None) -> list[dict]:
    """The classic claims about REST and WebSocket, each with what the loaded captures measure.

    Each entry: claim; verdict (one of VERDICTS: holds where it holds in every capture that
    shows a material difference, does not hold where it fails in one, no material difference
    where none does, not measurable here where no capture can tell); captures, the numbers
    behind it, per capture: [{capture, measured, verdict}]; how, a line on how it is measured.
    WebSocket means plain WebSocket here (no permessage-deflate): compression is not the
    protocol's doing, and REST could compress too.  `curves`: break_even_curves(tables) when
    already computed.
    """
    curves = break_even_curves(tables) if curves is None else curves
    plain = _plain_websocket_groups(tables)
    curves = curves[curves["kind"].isin(REST_KINDS) | curves["group"].isin(plain)]
    two_way = _two_way_captures(tables)
    return [_claim_cost_per_message(curves), _claim_frequent(curves, two_way), _claim_rare(curves, two_way), _claim_setup(tables)]


def _plain_websocket_groups(tables: Tables) -> set[str]:
    conns = _with_groups(tables["connections"], tables["connections"])
    ws = conns[conns["kind"] == "websocket"]
    deflate = ws.groupby("group")["ws_deflate"].any()
    return {str(g) for g, d in deflate.items() if not d}


def _two_way_captures(tables: Tables) -> set[str]:
    msgs = _with_groups(tables["ws_messages"], tables["connections"])
    ways = msgs.groupby("capture")["direction"].nunique()
    return {str(c) for c, n in ways.items() if n >= 2}


def _per_capture(curves: pd.DataFrame, only: set[str] | None = None):
    """(capture, {group: curve} of REST, {group: curve} of WebSocket) for captures with both."""
    for cap, part in curves.groupby("capture", sort=True):
        if only is not None and cap not in only:
            continue
        rest = {g: c for (k, g), c in part.groupby(["kind", "group"]) if k in REST_KINDS}
        ws = {g: c for (k, g), c in part.groupby(["kind", "group"]) if k == "websocket"}
        if rest and ws:
            yield cap, rest, ws


def measured_verdict(holds: bool, one: float, other: float) -> str:
    """The verdict of a comparison of two numbers: none unless they differ materially."""
    larger = max(abs(one), abs(other))
    if larger == 0 or abs(one - other) / larger < MATERIAL_DIFFERENCE:
        return NO_DIFFERENCE
    return HOLDS if holds else FAILS


def overall_verdict(verdicts: list[str]) -> str:
    """A claim's verdict from its verdicts per capture."""
    material = [v for v in verdicts if v in (HOLDS, FAILS)]
    if not verdicts:
        return NOT_MEASURABLE
    if not material:
        return NO_DIFFERENCE
    return HOLDS if all(v == HOLDS for v in material) else FAILS


def _apart(one: float, other: float) -> str:
    larger = max(abs(one), abs(other))
    return f"{abs(one - other) / larger:.1%} apart" if larger else "both zero"


def _claim_cost_per_message(curves: pd.DataFrame) -> dict:
    claim = "REST costs more per message than WebSocket"
    rows = []
    for cap, rest, ws in _per_capture(curves):
        per = lambda c: c["wire_bytes"].iloc[-1] / c["messages"].iloc[-1] if c["messages"].iloc[-1] else math.nan  # noqa: E731
        rest_per = {g: per(c) for g, c in rest.items() if not math.isnan(per(c))}
        ws_per = {g: per(c) for g, c in ws.items() if not math.isnan(per(c))}
        if not rest_per or not ws_per:
            continue
        best_rest, best_ws = min(rest_per, key=rest_per.get), min(ws_per, key=ws_per.get)
        rows.append(_measured(cap, f"REST {rest_per[best_rest]:,.0f} B/message ({best_rest}) vs WebSocket {ws_per[best_ws]:,.0f} B/message ({best_ws})",
                              rest_per[best_rest] > ws_per[best_ws], rest_per[best_rest], ws_per[best_ws]))
    return _claim(claim, rows, "all wire bytes of a variant, setup included, over its messages carrying payload (an empty poll or a 204 is cost, "
                               "not a message); the cheapest REST variant against the cheapest plain WebSocket one")


def _claim_frequent(curves: pd.DataFrame, two_way: set[str]) -> dict:
    claim = "WebSocket is cheaper for frequent back-and-forth"
    rows = []
    for cap, rest, ws in _per_capture(curves, two_way):
        rest_total = {g: float(c["wire_bytes"].iloc[-1]) for g, c in rest.items()}
        ws_total = {g: float(c["wire_bytes"].iloc[-1]) for g, c in ws.items()}
        best_rest, best_ws = min(rest_total, key=rest_total.get), min(ws_total, key=ws_total.get)
        found = crossover(rest[best_rest], ws[best_ws])
        where = f", WebSocket cheaper from {found[0]:,.1f} messages on" if found else ""
        messages = int(ws[best_ws]["messages"].iloc[-1])
        rows.append(_measured(cap, f"{messages} messages cost {ws_total[best_ws]:,.0f} B over WebSocket ({best_ws}) vs "
                                   f"{rest_total[best_rest]:,.0f} B over REST ({best_rest}){where}",
                              ws_total[best_ws] < rest_total[best_rest], ws_total[best_ws], rest_total[best_rest]))
    return _claim(claim, rows, "total wire bytes for the same work, setup included, in captures whose WebSocket messages go both ways")


def _claim_rare(curves: pd.DataFrame, two_way: set[str]) -> dict:
    claim = "REST is fine when interaction is rare"
    rows = []
    for cap, rest, ws in _per_capture(curves, two_way):
        rest_at = {g: curve_at(c, MESSAGES_PER_EXCHANGE) for g, c in rest.items()}
        ws_at = {g: curve_at(c, MESSAGES_PER_EXCHANGE) for g, c in ws.items()}
        rest_at = {g: v for g, v in rest_at.items() if not math.isnan(v)}
        ws_at = {g: v for g, v in ws_at.items() if not math.isnan(v)}
        if not rest_at or not ws_at:
            continue
        best_rest, best_ws = min(rest_at, key=rest_at.get), min(ws_at, key=ws_at.get)
        rows.append(_measured(cap, f"one request and its reply cost {rest_at[best_rest]:,.0f} B over REST ({best_rest}) vs "
                                   f"{ws_at[best_ws]:,.0f} B over WebSocket ({best_ws})",
                              rest_at[best_rest] <= ws_at[best_ws], rest_at[best_rest], ws_at[best_ws]))
    return _claim(claim, rows, "wire bytes of the first two messages carrying payload, connection setup included")


def _claim_setup(tables: Tables) -> dict:
    claim = "WebSocket pays a setup cost and keeps state"
    how = "mean setup bytes per connection (TCP handshake, and a WebSocket's upgrade) over all loaded captures"
    conns = _with_groups(tables["connections"], tables["connections"])
    rest = conns[conns["kind"].isin(REST_KINDS)]
    ws = conns[conns["kind"] == "websocket"]
    if rest.empty or ws.empty:
        return _claim(claim, [], how)
    rest_setup, ws_setup = rest["setup_bytes"].mean(), ws["setup_bytes"].mean()
    duration = (ws["end_ts"] - ws["start_ts"]).median()
    per_conn_ws = ws["ws_messages"].mean()
    per_conn_rest = (rest["http_requests"] + rest["http_responses"]).mean()
    measured = (f"setup {ws_setup:,.0f} B per WebSocket connection (TCP handshake + upgrade) vs {rest_setup:,.0f} B per REST connection; "
                f"a WebSocket connection stays open {duration:,.2f} s (median) and carries {per_conn_ws:,.1f} messages, "
                f"a REST connection {per_conn_rest:,.1f}")
    return _claim(claim, [_measured("all captures", measured, bool(ws_setup > rest_setup), ws_setup, rest_setup, short=False)], how)


def _measured(capture: str, text: str, holds: bool, one: float, other: float, short: bool = True) -> dict:
    """One capture's numbers behind a claim (holds: the claim's comparison of `one` and `other`)."""
    return {"capture": _short(capture) if short else capture, "measured": f"{text}, {_apart(one, other)}",
            "verdict": measured_verdict(holds, one, other)}


def _claim(claim: str, rows: list[dict], how: str) -> dict:
    return {"claim": claim, "verdict": overall_verdict([row["verdict"] for row in rows]), "captures": rows, "how": how}


def _short(capture: str) -> str:
    return str(capture).replace("\\", "/").rsplit("/", 1)[-1]


# --- connections and frames -------------------------------------------------------


def connection_attribution(connections: pd.DataFrame, conn_id: int) -> pd.DataFrame:
    """One connection's bytes by category (they add up to its wire bytes)."""
    row = connections[connections["conn_id"] == conn_id]
    if row.empty:
        return pd.DataFrame({"category": pd.Series(dtype="str"), "bytes": pd.Series(dtype="int64")})
    values = row.iloc[0]
    return pd.DataFrame({"category": list(BYTE_CATEGORIES), "bytes": [int(values[c]) for c in BYTE_CATEGORIES]})


TIMELINE_COLUMNS = ["t_ms", "direction", "kind", "label", "bytes"]


def connection_timeline(tables: Tables, conn_id: int) -> pd.DataFrame:
    """A connection's events in time order, for a sequence diagram.

    Columns: t_ms (since the connection's first packet), direction (client or
    server: who sent it), kind (tcp, http, ws-data, ws-control), label, bytes.
    """
    conns = tables["connections"]
    row = conns[conns["conn_id"] == conn_id]
    if row.empty:
        return pd.DataFrame(columns=TIMELINE_COLUMNS)
    mine = {name: tables[name][(tables[name]["conn_id"] == conn_id).to_numpy()] for name in ("message_costs", "http_messages", "ws_frames")}
    out = pd.concat([_tcp_events(mine["message_costs"]), _http_events(mine["http_messages"]), _frame_events(mine["ws_frames"])],
                    ignore_index=True)
    out["t_ms"] = (out["ts"].astype("float64") - float(row["start_ts"].iloc[0])) * 1000.0
    out["bytes"] = out["bytes"].astype("float64")
    return out.sort_values("t_ms", kind="stable")[TIMELINE_COLUMNS].reset_index(drop=True)


def _events(ts, direction, kind, label, size) -> pd.DataFrame:
    return pd.DataFrame({"ts": np.asarray(ts, dtype="float64"), "direction": np.asarray(direction, dtype=object),
                         "kind": np.asarray(kind, dtype=object), "label": np.asarray(label, dtype=object),
                         "bytes": np.asarray(size, dtype="float64")})


def _tcp_events(costs: pd.DataFrame) -> pd.DataFrame:
    costs = costs[costs["item"].isin(["setup", "teardown"]).to_numpy()]
    label = np.where(costs["item"] == "setup",
                     np.where(costs["app_header_bytes"] > 0, "TCP handshake + upgrade", "TCP handshake"), "FIN / close")
    return _events(costs["ts"], ["client"] * len(costs), ["tcp"] * len(costs), label, costs["wire_bytes"])


def _http_events(http: pd.DataFrame) -> pd.DataFrame:
    request = http["method"].fillna("").astype(str) + " " + http["target"].fillna("").astype(str)
    response = (http["status"].astype("string").fillna("").astype(str) + " " + http["reason"].fillna("").astype(str)).str.strip()
    label = np.where(http["direction"] == "client", request, response)
    size = http["header_bytes"] + http["body_wire_bytes"] + http["chunk_framing_bytes"]
    return _events(http["ts"], http["direction"], ["http"] * len(http), label, size)


def _frame_events(frames: pd.DataFrame) -> pd.DataFrame:
    kind = np.where(frames["opcode"] >= 8, "ws-control", "ws-data")
    label = frames["opcode_name"].astype(str) + " " + frames["payload_length"].astype(str) + " B"
    return _events(frames["ts"], frames["direction"], kind, label, frames["header_bytes"] + frames["payload_length"])


CONNECTION_COLUMNS = ["conn_id", "capture", "kind", "variant", "client_ip", "client_port", "server_ip", "server_port",
                      "packets", "wire_bytes", "app_payload_bytes", "efficiency", "wire_payload_bytes", "compression_saved_bytes",
                      "undecoded_payload_bytes", "http_requests", "ws_messages", "duration_ms"]
CONNECTION_TEXT_COLUMNS = ("capture", "kind", "variant", "client_ip", "server_ip")  # the others are numbers


def connections_index(connections: pd.DataFrame) -> pd.DataFrame:
    """The columns of the connections table the connections page lists."""
    out = connections.copy()
    out["duration_ms"] = (out["end_ts"] - out["start_ts"]) * 1000.0
    out["capture"] = out["capture"].map(_short)
    return out[CONNECTION_COLUMNS]


# t_s: seconds since the capture's first TCP packet (its first connection's start), as Wireshark's
# relative time; ts, the absolute time (epoch seconds), is not shown but carried for its UTC text.
FRAME_COLUMNS = ["key", "conn_id", "protocol", "direction", "t_s", "type", "header_bytes", "payload_bytes", "ts"]
FRAME_HIDDEN_COLUMNS = ("ts",)
FRAME_TEXT_COLUMNS = ("key", "protocol", "direction", "type")  # the others are numbers


def frames_index(tables: Tables) -> pd.DataFrame:
    """One row per WebSocket frame and per HTTP message, with a `key` for frame_detail."""
    frames = tables["ws_frames"]
    ws = pd.DataFrame({
        "key": "ws:" + frames["conn_id"].astype(str) + ":" + frames["frame_id"].astype(str),
        "conn_id": frames["conn_id"], "protocol": "websocket", "direction": frames["direction"], "ts": frames["ts"],
        "type": frames["opcode_name"], "header_bytes": frames["header_bytes"], "payload_bytes": frames["payload_length"],
    })
    http = tables["http_messages"]
    kind = np.where(http["direction"] == "client", http["method"].fillna("").astype(str) + " " + http["target"].fillna("").astype(str),
                    http["status"].astype("string").fillna("").astype(str) + " " + http["reason"].fillna("").astype(str))
    web = pd.DataFrame({
        "key": "http:" + http["conn_id"].astype(str) + ":" + http["exchange_id"].astype(str) + ":" + http["direction"].astype(str),
        "conn_id": http["conn_id"], "protocol": "http", "direction": http["direction"], "ts": http["ts"],
        "type": pd.Series(kind, index=http.index).str.strip(), "header_bytes": http["header_bytes"], "payload_bytes": http["body_wire_bytes"],
    })
    out = pd.concat([web, ws], ignore_index=True) if len(web) or len(ws) else pd.DataFrame(columns=[c for c in FRAME_COLUMNS if c != "t_s"])
    out["t_s"] = out["ts"] - out["conn_id"].map(capture_starts(tables["connections"]))
    return out.sort_values(["ts", "conn_id"], kind="stable").reset_index(drop=True)[FRAME_COLUMNS]


def capture_starts(connections: pd.DataFrame) -> pd.Series:
    """Per conn_id, when its capture's first TCP connection started (what t_s counts from)."""
    return connections.groupby("capture")["start_ts"].transform("min").set_axis(connections["conn_id"])


def utc_text(ts: pd.Series) -> pd.Series:
    """Epoch seconds as UTC date and time, to the microsecond ("2026-11-30 12:50:01.123456 UTC")."""
    # Rounded as datetime.fromtimestamp rounds: the fraction of the second, half to even.
    fraction, seconds = np.modf(ts.astype("float64").fillna(0.0).to_numpy())
    micros = seconds.astype("int64") * 1_000_000 + np.round(fraction * 1e6).astype("int64")
    stamps = pd.to_datetime(pd.Series(micros, index=ts.index), unit="us", utc=True)
    return stamps.dt.strftime("%Y-%m-%d %H:%M:%S.%f UTC").where(ts.notna(), "")


def frame_detail(tables: Tables, key: str) -> dict | None:
    """Header fields, payload text and hex, and findings of one frame or HTTP message.

    Returns {"title", "fields": [(name, value)], "text", "hex", "message_text",
    "findings": DataFrame} or None for an unknown key.  Everything is plain
    strings: the page shows them as text.
    """
    parts = str(key).split(":")
    try:
        if parts[0] == "ws" and len(parts) == 3:
            conn_id, frame_id = int(parts[1]), int(parts[2])
            frames = tables["ws_frames"]
            row = frames[(frames["conn_id"] == conn_id) & (frames["frame_id"] == frame_id)]
            if row.empty:
                return None
            r = row.iloc[0]
            fields = [(c, _text(r[c])) for c in ("conn_id", "frame_id", "message_id", "direction", "fin", "rsv1", "rsv2", "rsv3", "opcode",
                                                  "opcode_name", "masked", "mask_key", "payload_length", "header_bytes", "missing_bytes",
                                                  "close_code", "close_reason", "offset")]
            message_text = ""
            if not pd.isna(r["message_id"]):
                msgs = tables["ws_messages"]
                m = msgs[(msgs["conn_id"] == conn_id) & (msgs["message_id"] == int(r["message_id"]))]
                if len(m) and bool(m["compressed"].iloc[0]):
                    message_text = _text(m["payload_text"].iloc[0])
            detail = {"title": f"WebSocket frame {frame_id} of connection {conn_id}", "fields": fields,
                      "text": _text(r["payload_text"]), "hex": _text(r["payload_hex"]), "message_text": message_text}
            ts, direction = float(r["ts"]), r["direction"]
        elif parts[0] == "http" and len(parts) == 4:
            conn_id, exchange_id, direction = int(parts[1]), int(parts[2]), parts[3]
            http = tables["http_messages"]
            row = http[(http["conn_id"] == conn_id) & (http["exchange_id"] == exchange_id) & (http["direction"] == direction)]
            if row.empty:
                return None
            r = row.iloc[0]
            fields = [(c, _text(r[c])) for c in ("conn_id", "exchange_id", "direction", "method", "target", "status", "reason", "version",
                                                  "header_bytes", "body_bytes", "body_wire_bytes", "chunk_framing_bytes", "missing_bytes",
                                                  "content_encoding", "decompressed_bytes", "complete", "offset")]
            body = _text(r["body_text"])
            detail = {"title": f"HTTP {'request' if direction == 'client' else 'response'} {exchange_id} of connection {conn_id}",
                      "fields": fields, "text": body, "hex": " ".join(f"{b:02x}" for b in body.encode("utf-8")[:32]), "message_text": ""}
            ts = float(r["ts"])
        else:
            return None
    except ValueError:
        return None
    findings = tables["findings"]
    mine = findings[(findings["conn_id"] == conn_id).fillna(False)]
    detail["findings"] = mine[np.isclose(mine["ts"].to_numpy(dtype="float64"), ts, rtol=0, atol=1e-6) & (mine["direction"] == direction).fillna(False).to_numpy()]
    detail["connection_findings"] = len(mine)
    return detail


def _text(value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value)


def findings_by_rule(findings: pd.DataFrame) -> pd.DataFrame:
    """Findings counted per rule, with the connections they were seen on."""
    if findings.empty:
        return pd.DataFrame({"rule": pd.Series(dtype="str"), "count": pd.Series(dtype="int64"), "connections": pd.Series(dtype="object")})
    grouped = findings.groupby("rule", sort=True)
    out = grouped.size().rename("count").reset_index()
    out["connections"] = [sorted(int(c) for c in grouped.get_group(rule)["conn_id"].dropna().unique()) for rule in out["rule"]]
    return out.sort_values(["count", "rule"], ascending=[False, True], kind="stable").reset_index(drop=True)


# --- server-side paging, sorting, filtering (AG Grid's infinite row model) ---------------
#
# The grid asks for rows startRow..endRow with its sortModel ([{"colId", "sort"}], first
# column first) and filterModel ({column: condition}, a condition being
# {"filterType": "number" | "text", "type": ..., "filter": ...}, or two of them joined as
# {"operator": "AND" | "OR", "conditions": [...]}).  These functions answer it with pandas.

MAX_FILTER_CONDITIONS = 8
NUMBER_TESTS = {
    "equals": lambda s, v: s == v, "notEqual": lambda s, v: s != v,
    "lessThan": lambda s, v: s < v, "lessThanOrEqual": lambda s, v: s <= v,
    "greaterThan": lambda s, v: s > v, "greaterThanOrEqual": lambda s, v: s >= v,
}
# AG Grid's text filter ignores case by default; so does the server
TEXT_TESTS = {
    "contains": lambda s, v: s.str.contains(v, regex=False), "notContains": lambda s, v: ~s.str.contains(v, regex=False),
    "equals": lambda s, v: s == v, "notEqual": lambda s, v: s != v,
    "startsWith": lambda s, v: s.str.startswith(v), "endsWith": lambda s, v: s.str.endswith(v),
}


def query_rows(table: pd.DataFrame, start_row: int = 0, end_row: int = 100, sort_model: list[dict] | None = None,
               filter_model: dict | None = None) -> tuple[pd.DataFrame, int]:
    """Rows start_row..end_row (end excluded) of `table` filtered and sorted on the server,
    and how many rows the filter keeps (the grid's row count, so its pager knows the last page)."""
    frame = filter_sort(table, sort_model, filter_model)
    start = max(0, int(start_row or 0))
    end = max(start, int(end_row if end_row is not None else start))
    return frame.iloc[start:end], len(frame)


def filter_sort(table: pd.DataFrame, sort_model: list[dict] | None = None, filter_model: dict | None = None) -> pd.DataFrame:
    """The rows of `table` the grid's filterModel keeps, in its sortModel order (every page)."""
    frame = table
    # The models come from the browser and may be crafted: what is not shaped as the grid
    # sends it (a dict per column, a list of dicts to sort by) filters or sorts nothing.
    for column, model in (filter_model.items() if isinstance(filter_model, dict) else ()):
        if isinstance(column, str) and column in frame.columns and isinstance(model, dict):
            frame = frame[filter_mask(frame[column], model).to_numpy()]
    return sort_rows(frame, sort_model)


def filter_mask(series: pd.Series, model: dict) -> pd.Series:
    """Which values of `series` one column's filter model keeps (one condition, or two joined)."""
    conditions = model.get("conditions")
    if not conditions:
        return condition_mask(series, model)
    if not isinstance(conditions, list):
        return pd.Series(True, index=series.index)
    # AG Grid joins at most a couple of conditions; a crafted list of thousands is cut short.
    masks = [condition_mask(series, {"filterType": model.get("filterType"), **c})
             for c in conditions[:MAX_FILTER_CONDITIONS] if isinstance(c, dict)] or [pd.Series(True, index=series.index)]
    combined = masks[0]
    for mask in masks[1:]:
        combined = (combined | mask) if model.get("operator") == "OR" else (combined & mask)
    return combined


def condition_mask(series: pd.Series, condition: dict) -> pd.Series:
    """Which values one condition keeps; an unknown or unfinished condition (no value yet) keeps all."""
    kind = condition.get("type")
    if not isinstance(kind, str):
        return pd.Series(True, index=series.index)
    if kind in ("blank", "notBlank"):
        blank = series.isna() | (series.astype("string") == "").fillna(True)
        return blank if kind == "blank" else ~blank
    value = condition.get("filter")
    if value is None or value == "":
        return pd.Series(True, index=series.index)
    if condition.get("filterType") == "number":
        number, upper = _filter_number(value), _filter_number(condition.get("filterTo"))
        if number is None:  # not a number (the grid sends numbers; a crafted request may not)
            return pd.Series(True, index=series.index)
        numbers = pd.to_numeric(series, errors="coerce").astype("float64")
        if kind == "inRange":  # AG Grid's default range leaves out both ends
            mask = numbers > number if upper is None else (numbers > number) & (numbers < upper)
        elif kind in NUMBER_TESTS:
            mask = NUMBER_TESTS[kind](numbers, number)
        else:
            return pd.Series(True, index=series.index)
        return mask & numbers.notna()
    if kind not in TEXT_TESTS:
        return pd.Series(True, index=series.index)
    text = series.astype("string").fillna("").str.lower()
    return TEXT_TESTS[kind](text, str(value).lower()).fillna(False).astype(bool)


def sort_rows(frame: pd.DataFrame, sort_model: list[dict] | None) -> pd.DataFrame:
    """`frame` in the grid's sortModel order (a stable sort: ties keep the table's order)."""
    if not isinstance(sort_model, list):
        return frame
    keys = [s for s in sort_model if isinstance(s, dict) and isinstance(s.get("colId"), str)
            and s["colId"] in frame.columns and s.get("sort") in ("asc", "desc")]
    if not keys:
        return frame
    return frame.sort_values([s["colId"] for s in keys], ascending=[s["sort"] == "asc" for s in keys], kind="stable")


def _filter_number(value) -> float | None:
    """A number filter's value as a float, or None when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except (ValueError, OverflowError):
        return None


def records(frame: pd.DataFrame) -> list[dict]:
    """JSON-safe rows (NaN/NA -> None) for a grid's page."""
    return [{k: (None if (not isinstance(v, (list, dict)) and pd.isna(v)) else (v.item() if hasattr(v, "item") else v)) for k, v in row.items()}
            for row in frame.to_dict("records")]


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    num = numerator.astype("float64")
    den = denominator.astype("float64")
    return (num / den.where(den != 0)).astype("float64")
