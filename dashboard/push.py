"""Every way to push, on the same updates: what each variant of a push recording costs.

A push recording is a capture whose sidecar names a push scenario (`feed`: a server publishes
updates at a rate; `idle`: nothing is published, the connection is only kept fresh).  Its
variants (short polling, long polling, Server-Sent Events, WebSocket, HTTP/2, ...) did the same
work; here each is one row:

- *updates*: the updates its client received (the staleness rows of the sidecar's ledger);
- *bytes per update*: every wire byte of its connections (setup, keep-alives, empty polls
  included) over those updates, and the same by byte category;
- *update bytes*: the bytes of the items that carried an update (a REST exchange or a WebSocket
  message with payload, an SSE event), per update: what one more update costs;
- *idle bytes per minute*: all the other bytes (connection setup and teardown, pings, keep-alive
  comments, polls that came back empty) over the variant's duration, from its first connection's
  start to the end of its last HTTP message or WebSocket frame but a close: what staying fresh costs;
- staleness: median and 95th percentile of receive time minus publish time.

Cost at an update rate u (updates per minute) is modelled as a line through what was measured,
`idle_bytes_per_min + u * update_bytes_per_update`: at the capture's own rate it is exactly the
variant's measured bytes per minute; away from it, it assumes an update costs what it cost here
and idle traffic does not change with the rate (true of pings, keep-alives and long polls; a
short poll that finds an update stops being an empty one, so polling is charged an empty poll
too much per update).  Where two variants' lines cross is their break-even.

Pure pandas on the analysis tables, as `aggregate.py`: no dash, no state, no I/O.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dashboard.aggregate import _claim, _measured, _short, connection_groups
from inspector.analysis.tables import BYTE_CATEGORIES

Tables = dict[str, pd.DataFrame]

PUSH_SCENARIOS = ("feed", "idle")
# message_costs items that can carry an update (with payload); anything else is idle cost.
UPDATE_ITEMS = ("exchange", "ws_message", "sse_event")
CLOSE_OPCODE = 8
SECONDS_PER_MINUTE = 60.0
# The columns of each connection table push_costs reads (a store's views load only these; the
# small tables, captures and staleness, come whole).
PUSH_COLUMNS = {"connections": ["conn_id", "capture", "kind", "variant", "start_ts", "end_ts", "wire_bytes", *BYTE_CATEGORIES],
                "message_costs": ["conn_id", "item", "wire_bytes", "payload_messages"],
                "http_messages": ["conn_id", "end_ts"], "ws_frames": ["conn_id", "ts", "opcode"]}
PUSH_COST_COLUMNS = ["capture", "group", "kind", "connections", "updates", "duration_s", "updates_per_min", "wire_bytes",
                     "bytes_per_update", "update_bytes_per_update", "idle_bytes", "idle_bytes_per_min",
                     "staleness_median_s", "staleness_p95_s"]
# Per-category columns: each byte category over the updates.
PER_UPDATE = "{}_per_update"


def push_captures(captures: pd.DataFrame) -> list[str]:
    """The captures recorded with a push scenario."""
    if "scenario" not in captures:
        return []
    return [str(c) for c in captures.loc[captures["scenario"].isin(PUSH_SCENARIOS), "capture"]]


def push_costs(tables: Tables, capture: str) -> pd.DataFrame:
    """One row per variant of the push recording `capture` (none for another capture): its
    connections, updates, bytes per update (whole and per byte category), what an update and
    what a minute of idling cost, and its staleness.  See the module's docstring."""
    columns = PUSH_COST_COLUMNS + [PER_UPDATE.format(c) for c in BYTE_CATEGORIES]
    if capture not in push_captures(tables["captures"]):
        return pd.DataFrame({c: [] for c in columns})
    groups = connection_groups(tables["connections"])
    conns = tables["connections"].merge(groups[["conn_id", "group"]], on="conn_id")
    conns = conns[(conns["capture"] == capture) & (conns["variant"].fillna("") != "")]
    costs = tables["message_costs"]
    costs = costs[costs["conn_id"].isin(conns["conn_id"])].merge(conns[["conn_id", "group"]], on="conn_id")
    carried = costs["item"].isin(UPDATE_ITEMS) & (costs["payload_messages"] > 0)
    update_bytes = costs[carried].groupby("group")["wire_bytes"].sum()
    last_sent = _last_sent(tables, conns)
    staleness = tables["staleness"]
    staleness = staleness[staleness["capture"] == capture].groupby("variant")["staleness_s"]
    rows = [_variant_row(capture, group, part, update_bytes.get(group, 0.0), last_sent.get(group, math.nan), staleness)
            for group, part in conns.groupby("group", sort=True)]
    return pd.DataFrame(rows, columns=columns)


def _last_sent(tables: Tables, conns: pd.DataFrame) -> pd.Series:
    """Per group, when its last HTTP message ended or its last WebSocket frame but a close was
    sent: the end of its run.  A connection kept open after the work (a client closing it
    seconds later) adds time in which nothing was sent, not a cheaper minute."""
    http = tables["http_messages"][["conn_id", "end_ts"]].rename(columns={"end_ts": "ts"})
    frames = tables["ws_frames"]
    frames = frames.loc[frames["opcode"] != CLOSE_OPCODE, ["conn_id", "ts"]]
    sent = pd.concat([http, frames], ignore_index=True).merge(conns[["conn_id", "group"]], on="conn_id")
    return sent.groupby("group")["ts"].max()


def _variant_row(capture: str, group: str, conns: pd.DataFrame, update_bytes: float, last_sent: float, staleness) -> dict:
    seen = staleness.get_group(group) if group in staleness.groups else pd.Series(dtype="float64")
    updates = int(seen.count())
    wire = int(conns["wire_bytes"].sum())
    end = conns["end_ts"].max() if math.isnan(last_sent) else last_sent
    duration = float(end - conns["start_ts"].min())
    minutes = duration / SECONDS_PER_MINUTE
    # Without updates, nothing carried one: an SSE stream of keep-alives is idle cost, not payload.
    update_bytes = float(update_bytes) if updates else 0.0
    idle = wire - update_bytes
    row = {
        "capture": capture, "group": group, "kind": str(conns["kind"].mode().iloc[0]), "connections": len(conns),
        "updates": updates, "duration_s": duration, "updates_per_min": updates / minutes if minutes else math.nan,
        "wire_bytes": wire, "bytes_per_update": wire / updates if updates else math.nan,
        "update_bytes_per_update": update_bytes / updates if updates else math.nan,
        "idle_bytes": idle, "idle_bytes_per_min": idle / minutes if minutes else math.nan,
        "staleness_median_s": float(seen.median()) if updates else math.nan,
        "staleness_p95_s": float(seen.quantile(0.95)) if updates else math.nan,
    }
    for category in BYTE_CATEGORIES:
        row[PER_UPDATE.format(category)] = float(conns[category].sum()) / updates if updates else math.nan
    return row


def capture_update_rate(tables: Tables, capture: str) -> float:
    """Updates per minute the capture's publisher made (from the first publish to the last, over
    every variant's run, each run timed apart); NaN with fewer than two updates in every run."""
    staleness = tables["staleness"]
    rates = []
    for _variant, run in staleness[staleness["capture"] == capture].groupby("variant"):
        span = run["published_ts"].max() - run["published_ts"].min()
        if len(run) >= 2 and span > 0:
            rates.append((len(run) - 1) / span * SECONDS_PER_MINUTE)
    return float(np.median(rates)) if rates else math.nan


def bytes_per_minute(costs: pd.DataFrame, rates: np.ndarray) -> pd.DataFrame:
    """The modelled wire bytes per minute of each variant at each update rate (long: group, rate,
    bytes_per_min); a variant that received no update has only its idle cost, flat."""
    parts = []
    for _, row in costs.iterrows():
        per_update, idle = _or_zero(row["update_bytes_per_update"]), _or_zero(row["idle_bytes_per_min"])
        parts.append(pd.DataFrame({"group": row["group"], "kind": row["kind"], "updates_per_min": rates,
                                   "bytes_per_min": idle + rates * per_update}))
    if not parts:
        return pd.DataFrame({"group": [], "kind": [], "updates_per_min": [], "bytes_per_min": []})
    return pd.concat(parts, ignore_index=True)


def push_break_even(costs: pd.DataFrame) -> pd.DataFrame:
    """For every pair of variants: the update rate (per minute) where their modelled bytes per
    minute are equal, and which is cheaper below and above it; where the lines do not cross at a
    positive rate (NaN), the one cheaper at every rate is both (none for the same line)."""
    rows = []
    lines = {row["group"]: (_or_zero(row["idle_bytes_per_min"]), _or_zero(row["update_bytes_per_update"])) for _, row in costs.iterrows()}
    names = sorted(lines)
    for i, one in enumerate(names):
        for other in names[i + 1:]:
            (idle_a, per_a), (idle_b, per_b) = lines[one], lines[other]
            rate = (idle_b - idle_a) / (per_a - per_b) if per_a != per_b else math.nan
            if rate > 0:
                below = one if idle_a < idle_b else other
                above = other if below == one else one
            else:
                rate = math.nan
                below = above = one if (idle_a, per_a) < (idle_b, per_b) else other if (idle_a, per_a) != (idle_b, per_b) else ""
            rows.append({"variant": one, "other": other, "break_even_per_min": rate, "cheaper_below": below, "cheaper_above": above})
    return pd.DataFrame(rows, columns=["variant", "other", "break_even_per_min", "cheaper_below", "cheaper_above"])


def _or_zero(value: float) -> float:
    return 0.0 if value is None or math.isnan(value) else float(value)


def cheapest_claim(costs: pd.DataFrame, capture: str, rate: float) -> dict | None:
    """Which variant is cheapest for this capture's update rate, and by how much against the
    next cheapest: at the capture's rate every variant's modelled bytes per minute is its measured
    one, so this compares bytes per update (a feed) or idle bytes per minute (no updates)."""
    if len(costs) < 2:
        return None
    measure, unit = ("bytes_per_update", "B/update") if costs["updates"].gt(0).all() else ("idle_bytes_per_min", "B/min idle")
    ranked = costs.dropna(subset=[measure]).sort_values(measure, kind="stable")
    if len(ranked) < 2:
        return None
    best, runner = ranked.iloc[0], ranked.iloc[1]
    saving = 1 - best[measure] / runner[measure] if runner[measure] else 0.0
    at = f"at {rate:,.0f} updates/min" if not math.isnan(rate) else "with no updates"
    return {"capture": capture, "cheapest": best["group"], "next": runner["group"], "measure": measure,
            "cheapest_value": float(best[measure]), "next_value": float(runner[measure]), "saving": float(saving),
            "text": f"{at}: {best['group']} is cheapest, {best[measure]:,.0f} {unit}, "
                    f"{saving:.0%} less than {runner['group']} ({runner[measure]:,.0f} {unit})"}


def push_claim(costs_by_capture: dict[str, tuple[pd.DataFrame, float]]) -> dict:
    """The claim "WebSocket is the cheapest way to push", measured on each push recording
    ({capture: (push_costs, capture_update_rate)}): the cheapest variant at the capture's rate and
    by how much, and the verdict of the cheapest WebSocket variant against the cheapest other."""
    rows = []
    for capture, (costs, rate) in costs_by_capture.items():
        found = cheapest_claim(costs, capture, rate)
        if found is None:
            continue
        measure = found["measure"]
        websocket = costs.loc[costs["kind"] == "websocket"].dropna(subset=[measure])
        others = costs.loc[costs["kind"] != "websocket"].dropna(subset=[measure])
        if websocket.empty or others.empty:
            continue
        ws_best, other_best = websocket.loc[websocket[measure].idxmin()], others.loc[others[measure].idxmin()]
        unit = "B/update" if measure == "bytes_per_update" else "B/min idle"
        text = (f"{found['text']}; WebSocket {ws_best[measure]:,.0f} {unit} ({ws_best['group']}) vs "
                f"{other_best[measure]:,.0f} {unit} ({other_best['group']})")
        rows.append(_measured(capture, text, ws_best[measure] < other_best[measure], ws_best[measure], other_best[measure]))
    return _claim(CLAIM, rows, "per push recording (feed, idle) at its own update rate: all wire bytes of each variant over the updates its "
                               "client received (with no updates: over the minutes it ran); the cheapest WebSocket variant against the "
                               "cheapest other (polling, long polling, SSE, HTTP/2)")


CLAIM = "WebSocket is the cheapest way to push"
