"""CSV exports: the table behind what a page shows, as (filename, csv text).

Pure functions of the analysis tables and the page's state (no dash, no I/O),
so every exported number is unit-tested against the tables.  A page's
"Download CSV" button sends the text with `dcc.send_string`; this is the only
way whole (filtered) tables reach the browser, and only when asked for.

    page           what is exported                                   state used
    overview       per-capture numbers (the table at the top)         -
    compare        per-message wire cost by layer, per group          capture
    push           a push recording's variants side by side           capture
                   (dashboard.push.push_costs: costs per update, idle cost, staleness)
    connections    the connections table, every page                  filterModel, sortModel
    frames         frames and HTTP messages, every page (no payloads) filterModel, sortModel
                   (t_s since the capture's first TCP packet, ts and utc absolute)
    findings       every finding, grouped by rule as on the page      -
                   (ts absolute, and as UTC text: utc)

Text cells come from captured traffic, which is hostile: a cell that a
spreadsheet would read as a formula (starting with = + - @ or a tab/CR) gets
a leading apostrophe, by the rule `inspector analyze --export` uses too
(inspector.analysis.export.defuse_formulas).  Numbers are written as they are.  filterModel and sortModel are
AG Grid's, as the grid last asked the server for rows: the export is what the grid shows.
"""

from __future__ import annotations

import re

import pandas as pd

from dashboard import aggregate, push
from inspector.analysis.export import defuse_formulas


def export_csv(page: str, tables: aggregate.Tables, state: dict | None = None) -> tuple[str, str]:
    """(filename, CSV text) of `page`'s table, with its state (selection, filter, sort) applied."""
    try:
        builder = EXPORTS[page]
    except KeyError:
        raise ValueError(f"no CSV export for page {page!r}; pages: {', '.join(EXPORTS)}") from None
    filename, frame = builder(tables, state or {})
    return filename, to_csv(frame)


def overview_frame(tables: aggregate.Tables, state: dict) -> tuple[str, pd.DataFrame]:
    out = aggregate.capture_overview(tables)
    out["capture"] = out["capture"].map(aggregate._short)
    return "overview-captures.csv", out


def compare_frame(tables: aggregate.Tables, state: dict) -> tuple[str, pd.DataFrame]:
    capture = state.get("capture")
    out = aggregate.message_cost_split(tables, capture)
    out.insert(0, "capture", aggregate._short(capture) if capture else "all captures")
    return f"compare-cost-per-message-{_slug(aggregate._short(capture)) if capture else 'all'}.csv", out


def push_frame(tables: aggregate.Tables, state: dict) -> tuple[str, pd.DataFrame]:
    capture = state.get("capture")
    out = push.push_costs(tables, capture)
    out["capture"] = out["capture"].map(aggregate._short)
    return f"push-variants-{_slug(aggregate._short(capture)) if capture else 'none'}.csv", out


def connections_frame(tables: aggregate.Tables, state: dict) -> tuple[str, pd.DataFrame]:
    index = aggregate.connections_index(tables["connections"])
    return "connections.csv", aggregate.filter_sort(index, state.get("sortModel"), state.get("filterModel"))


def frames_frame(tables: aggregate.Tables, state: dict) -> tuple[str, pd.DataFrame]:
    index = aggregate.frames_index(tables)
    return "frames.csv", with_utc(aggregate.filter_sort(index, state.get("sortModel"), state.get("filterModel")))


def with_utc(frames: pd.DataFrame) -> pd.DataFrame:
    """Rows with their absolute time as UTC text (utc) beside ts (epoch seconds)."""
    return frames.assign(utc=aggregate.utc_text(frames["ts"]))


def findings_frame(tables: aggregate.Tables, state: dict) -> tuple[str, pd.DataFrame]:
    findings = tables["findings"]
    order = {rule: i for i, rule in enumerate(aggregate.findings_by_rule(findings)["rule"])}
    out = findings.assign(capture=findings["capture"].map(aggregate._short), _order=findings["rule"].map(order))
    out = out.sort_values(["_order", "ts"], kind="stable")
    return "findings.csv", with_utc(out[["rule", "conn_id", "capture", "direction", "ts", "detail"]].reset_index(drop=True))


EXPORTS = {
    "overview": overview_frame,
    "compare": compare_frame,
    "push": push_frame,
    "connections": connections_frame,
    "frames": frames_frame,
    "findings": findings_frame,
}


def to_csv(frame: pd.DataFrame) -> str:
    """CSV without the index; text cells that would start a spreadsheet formula are defused."""
    return defuse_formulas(frame).to_csv(index=False)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "capture"
