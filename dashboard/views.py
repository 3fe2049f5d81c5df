"""TableViews: what the pages show, computed once per snapshot of the analysis tables.

On a million-packet capture the aggregations behind a page take seconds (the
break-even curves walk every message; the frames index has a row per frame),
while a page must render in under one.  So the store keeps one TableViews per
snapshot of its tables: every view is computed at most once (callbacks asking
for the same view at the same time wait for the one computation), and `warm()`
computes them all in the background as soon as the tables are ready.  A new
snapshot (an upload) gets a new TableViews: nothing here is ever invalidated,
and nothing is module-level state.

Views are pure functions of the tables (dashboard.aggregate); this class only
decides when they are computed and keeps the results.
"""

from __future__ import annotations

import threading
from typing import Callable

import pandas as pd

from dashboard import aggregate, figures, push
from inspector.analysis.summary import overhead_table
from inspector.analysis.tables import CONNECTION_TABLES

Tables = aggregate.Tables


def capture_slice(tables: Tables, capture: str) -> Tables:
    """The tables restricted to one capture (its connections' rows, its own capture row).

    A capture's connections have consecutive ids, and the connection tables are
    sorted by conn_id, so its rows are usually one range of each table: then the
    slice shares the table's memory instead of copying it (a capture of a
    million packets is most of the tables).
    """
    conns = tables["connections"]
    mine = conns["conn_id"][(conns["capture"] == capture).to_numpy()]
    out = {}
    for name, table in tables.items():
        if "capture" in table.columns:  # the small tables (and findings without a connection)
            out[name] = table[(table["capture"] == capture).to_numpy()]
        elif name in CONNECTION_TABLES:
            out[name] = _rows_of_connections(table, mine)
    out["overhead"] = overhead_table(out["connections"], out["message_costs"])
    return out


def _rows_of_connections(table: pd.DataFrame, conn_ids: pd.Series) -> pd.DataFrame:
    ids = table["conn_id"]
    if len(conn_ids) and ids.is_monotonic_increasing and conn_ids.max() - conn_ids.min() + 1 == len(conn_ids):
        start = ids.searchsorted(conn_ids.min(), side="left")
        stop = ids.searchsorted(conn_ids.max(), side="right")
        return table.iloc[start:stop]  # shares the table's memory (copy-on-write)
    return table[ids.isin(conn_ids).to_numpy()]


LATENCY_FIGURE_COLUMNS = ("kind", "group", "latency_s")


class TableViews:
    """Memoised views of one snapshot of `tables` (never changed: a new snapshot, a new object)."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self._lock = threading.Lock()
        self._done: dict[object, object] = {}
        self._running: dict[object, threading.Lock] = {}

    def once(self, key, compute: Callable[[], object]):
        """compute() the first time `key` is asked for; its result ever after."""
        with self._lock:
            if key in self._done:
                return self._done[key]
            lock = self._running.setdefault(key, threading.Lock())
        with lock:  # a second caller waits here for the first one's result
            with self._lock:
                if key in self._done:
                    return self._done[key]
            value = compute()
            with self._lock:
                self._done[key] = value
                self._running.pop(key, None)
            return value

    def captures(self) -> list[str]:
        return aggregate.captures_of(self.tables)

    def capture(self, capture: str | None, columns: dict[str, list[str]] | None = None) -> Tables:
        """The tables of one capture (all tables for None); `columns`, the columns a view reads
        of each table (aggregate.*_COLUMNS), are all a store's views load (here: every column)."""
        if capture is None:
            return self.tables
        return self.once(("capture", capture), lambda: capture_slice(self.tables, capture))

    # --- the expensive views, by page -----------------------------------------------

    def overview(self) -> pd.DataFrame:
        return self.once("overview", lambda: aggregate.capture_overview(self.tables))

    def done(self, key) -> bool:
        """Whether the view `key` was computed (`once`) already."""
        with self._lock:
            return key in self._done

    def headline(self) -> list[dict]:
        return self.once("headline", lambda: aggregate.headline(self.overview(), self.findings_count()))

    def findings_count(self) -> int:
        return len(self.tables["findings"])

    def overview_figures(self, capture: str | None):
        """The Overview page's two figures of one capture (None: bytes of all captures, no mix),
        built once per snapshot: the first page a browser opens, laid out from them at once."""
        return self.once(("overview_figures", capture), lambda: self._overview_figures(capture))

    def _overview_figures(self, capture: str | None):
        name = aggregate._short(capture) if capture else "all captures"
        return (figures.bytes_by_category(self.bytes_by_category(capture), f"Wire bytes by category: {name}"),
                figures.protocol_mix(self.protocol_mix(capture or ""), f"Protocol mix over time: {name}"))

    def protocol_mix(self, capture: str) -> pd.DataFrame:
        return self.once(("protocol_mix", capture), lambda: aggregate.protocol_mix(self.capture(capture), capture))

    def bytes_by_category(self, capture: str | None) -> pd.DataFrame:
        return self.once(("bytes_by_category", capture),
                         lambda: aggregate.bytes_by_category(self.capture(capture)["connections"], capture))

    def cost_split(self, capture: str | None) -> pd.DataFrame:
        return self.once(("cost_split", capture), lambda: aggregate.message_cost_split(self.capture(capture, aggregate.COST_SPLIT_COLUMNS), capture))

    def break_even_curves(self, capture: str | None) -> pd.DataFrame:
        if capture is None:  # all captures: each capture's memoised curves, together
            return self.once("break_even_curves", self._all_curves)
        return self.once(("break_even_curves", capture), lambda: aggregate.break_even_curves(self.capture(capture, aggregate.BREAK_EVEN_COLUMNS), capture))

    def _all_curves(self) -> pd.DataFrame:
        parts = [curves for curves in map(self.break_even_curves, self.captures()) if len(curves)]
        return pd.concat(parts, ignore_index=True) if parts else aggregate.break_even_curves(self.capture(None, aggregate.BREAK_EVEN_COLUMNS))

    def crossovers(self, capture: str | None) -> pd.DataFrame:
        """Where each REST group's break-even curve crosses each WebSocket group's (aggregate.break_even_crossovers)."""
        return self.once(("crossovers", capture), lambda: aggregate.break_even_crossovers(self.break_even_curves(capture)))

    def latency(self, capture: str | None) -> pd.DataFrame:
        return self.once(("latency", capture), lambda: aggregate.latency(self.capture(capture, aggregate.LATENCY_COLUMNS), capture))

    def latency_by_group(self, capture: str | None) -> pd.DataFrame:
        """The latency figure's columns of latency(capture): kind, group and latency_s."""
        return self.latency(capture)[list(LATENCY_FIGURE_COLUMNS)]

    def default_capture(self) -> str | None:
        """The capture the Push and request/response page opens on (aggregate.most_groups)."""
        return self.once("default_capture", lambda: aggregate.most_groups(self.capture(None, aggregate.GROUP_COLUMNS)["connections"]))

    def claims(self) -> list[dict]:
        """The REST vs WebSocket claims (aggregate.claims), then the push claim (push.push_claim)."""
        return self.once("claims", lambda: [*self.request_response_claims(), self.push_claim()])

    def request_response_claims(self) -> list[dict]:
        return aggregate.claims(self.capture(None, aggregate.CLAIMS_COLUMNS), curves=self.break_even_curves(None))

    def push_claim(self) -> dict:
        return push.push_claim({capture: (self.push_costs(capture), self.push_rate(capture)) for capture in self.push_captures()})

    # --- push recordings (dashboard.push) ---------------------------------------------

    def push_captures(self) -> list[str]:
        return self.once("push_captures", lambda: push.push_captures(self.tables["captures"]))

    def push_costs(self, capture: str | None) -> pd.DataFrame:
        return self.once(("push_costs", capture), lambda: push.push_costs(self.capture(capture, push.PUSH_COLUMNS), capture))

    def push_rate(self, capture: str | None) -> float:
        return self.once(("push_rate", capture), lambda: push.capture_update_rate(self.capture(capture, push.PUSH_COLUMNS), capture))

    def connections_index(self) -> pd.DataFrame:
        return self.once("connections_index", lambda: aggregate.connections_index(self.tables["connections"]))

    def frames_index(self) -> pd.DataFrame:
        return self.once("frames_index", lambda: aggregate.frames_index(self.tables))

    # --- the grids: a page of rows, sorted and filtered as the grid asks (aggregate.query_rows) ---

    def connection_rows(self, start: int, end: int, sort_model=None, filter_model=None) -> tuple[pd.DataFrame, int]:
        return aggregate.query_rows(self.connections_index(), start, end, sort_model, filter_model)

    def frame_rows(self, start: int, end: int, sort_model=None, filter_model=None) -> tuple[pd.DataFrame, int]:
        return aggregate.query_rows(self.frames_index(), start, end, sort_model, filter_model)

    def filtered_connections(self, sort_model=None, filter_model=None) -> pd.DataFrame:
        """Every row the connections grid shows (its CSV export)."""
        return aggregate.filter_sort(self.connections_index(), sort_model, filter_model)

    def filtered_frames(self, sort_model=None, filter_model=None) -> pd.DataFrame:
        return aggregate.filter_sort(self.frames_index(), sort_model, filter_model)

    def connection(self, conn_id: int) -> Tables:
        """The rows of one connection in the connection tables (found through a per-table index)."""
        index = self.once("connection_index", self._connection_index)
        return {name: table.iloc[index[name].get(conn_id, [])] for name, table in self.tables.items() if name in index}

    def _connection_index(self) -> dict[str, dict]:
        # conn_id -> row positions, per table: a connection's detail then reads its rows
        # instead of scanning every row of the million-row tables
        return {name: self.tables[name].groupby("conn_id").indices for name in CONNECTION_TABLES}

    def warm_first(self) -> None:
        """The first page's views and figures (the Overview's): what a browser asks for first."""
        self.overview()
        self.overview_figures(next(iter(self.captures()), None))

    def warm(self) -> None:
        """Compute every view now (the store calls this in the background once the tables are ready)."""
        self.warm_first()
        self.claims()
        for capture in self.captures():
            self.protocol_mix(capture)
            self.bytes_by_category(capture)
            self.cost_split(capture)
            self.latency(capture)
        self.bytes_by_category(None)
        self.connections_index()
        self.frames_index()
        self.connection(-1)
