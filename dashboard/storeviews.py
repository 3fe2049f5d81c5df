"""StoreViews: TableViews over a Catalog of stores, the big tables queried, never held whole.

The grids (connections, frames and messages) are pages of SQL queries (dashboard.gridsql), a
connection's detail the rows `WHERE conn_id = ?`, and the overview's numbers and figures DuckDB
aggregates; only the small results they show become DataFrames.  On the REST vs WebSocket
page, the cost split is DuckDB's sums, the break-even curves (a point per payload message) are
computed by DuckDB, their crossovers and the claims taken from them whole, and only the curves
thinned as the figure draws them are kept; the latency pairs are computed from the columns they
need (kept with their labels as categories).  The findings and the small tables read `tables`,
whose tables are loaded from the stores on first use and kept for the snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np
import pandas as pd

from dashboard import aggregate, figures, gridsql
from dashboard.catalog import Catalog, identifier, row_order
from dashboard.views import LATENCY_FIGURE_COLUMNS, TableViews
from inspector.analysis.summary import overhead_table
from inspector.analysis.tables import BYTE_CATEGORIES, CONNECTION_TABLES, SCHEMAS, TABLE_NAMES, make_table

# A connection's group: its variant when it was recorded, else its kind (aggregate.connection_groups).
GROUP = "CASE WHEN coalesce(variant, '') <> '' THEN variant ELSE kind END"
# A capture's name as the pages show it (aggregate._short): the part after the last / or \\.
GROUP_OF_C = "CASE WHEN coalesce(c.variant, '') <> '' THEN c.variant ELSE c.kind END"
SHORT = "regexp_extract(replace(capture, '\\', '/'), '[^/]*$')"

CONNECTIONS_SOURCE = ("SELECT conn_id, " + SHORT + " AS capture, kind, variant, client_ip, client_port, server_ip, server_port, "
                      "packets, wire_bytes, app_payload_bytes, efficiency, wire_payload_bytes, compression_saved_bytes, "
                      "undecoded_payload_bytes, http_requests, ws_messages, (end_ts - start_ts) * 1000.0 AS duration_ms, _store, _file, _row "
                      "FROM connections")
CONNECTIONS_ORDER = row_order("connections")

# One row per HTTP message and per WebSocket frame (aggregate.frames_index), with what orders them
# as it does: by ts and conn_id, HTTP messages before frames, then each table's own row order.
# t_s: since the capture's first TCP connection started (aggregate.capture_starts).
CAPTURE_STARTS = "(SELECT conn_id, min(start_ts) OVER (PARTITION BY capture) AS capture_start FROM connections)"
FRAMES_SOURCE = (
    "SELECT 'http:' || conn_id || ':' || exchange_id || ':' || direction AS key, conn_id, 'http' AS protocol, direction, "
    "ts - s.capture_start AS t_s, "
    "trim(CASE WHEN direction = 'client' THEN coalesce(method, '') || ' ' || coalesce(target, '') "
    "ELSE coalesce(CAST(status AS VARCHAR), '') || ' ' || coalesce(reason, '') END) AS type, "
    "header_bytes, body_wire_bytes AS payload_bytes, ts, 0 AS _protocol, _store, exchange_id AS _id1, NULL::BIGINT AS _id2, "
    f"ts AS _ts, _file, _row FROM http_messages LEFT JOIN {CAPTURE_STARTS} s USING (conn_id) "
    "UNION ALL "
    "SELECT 'ws:' || conn_id || ':' || frame_id AS key, conn_id, 'websocket' AS protocol, direction, ts - s.capture_start AS t_s, "
    "opcode_name AS type, header_bytes, payload_length AS payload_bytes, ts, 1 AS _protocol, _store, frame_id AS _id1, message_id AS _id2, "
    f"ts AS _ts, _file, _row FROM ws_frames LEFT JOIN {CAPTURE_STARTS} s USING (conn_id)")
LATENCY_LABELS = ("capture", "kind", "group", "paired_by")
COST_FLOAT_COLUMNS = frozenset(c for c, dtype in SCHEMAS["message_costs"].items() if dtype == "float64")
GRID_SOURCES = {"connections": CONNECTIONS_SOURCE, "frames": FRAMES_SOURCE}
FRAMES_ORDER = ["ts NULLS LAST", "conn_id NULLS LAST", "_protocol", "_store", "_id1 NULLS LAST", "_id2 NULLS LAST",
                "_ts NULLS LAST", "_file", "_row"]


# aggregate.break_even_curves as one query: per (capture, kind, group), the running wire bytes
# over the application messages in time order, each connection's fixed cost (its rows that are
# not messages) charged with its first message, or up front for a connection without any; a
# point at 0 messages and one per message carrying payload (the last one charged with those
# after it).  The TLS part of the curve (tls_bytes) runs up the same way: a message's
# tls_overhead_bytes, and as fixed cost the rest of its connection's TLS categories.  `gid`
# numbers the groups in their order; their names are given on their first point only.  Sums
# are of integers (exact), made DOUBLE at the end.
APP_ITEMS_SQL = ", ".join(f"'{item}'" for item in aggregate.APP_ITEMS)
TLS_TOTAL_SQL = " + ".join(aggregate.TLS_CATEGORIES)
CURVES_SQL = (
    f"WITH c AS (SELECT conn_id, capture, kind, {GROUP} AS \"group\", {TLS_TOTAL_SQL} AS tls_total FROM connections "
    "WHERE kind IS NOT NULL AND capture IS NOT NULL{where}), "
    f"m AS (SELECT m.conn_id, m.ts, m.item_index, m.wire_bytes, m.tls_overhead_bytes AS tls, m.payload_messages AS w, "
    f"m.item IN ({APP_ITEMS_SQL}) AS is_app, m._store, m._file, m._row, c.capture, c.kind, c.\"group\", c.tls_total "
    "FROM message_costs m JOIN c ON c.conn_id = m.conn_id), "
    "fixed AS (SELECT conn_id, sum(CASE WHEN is_app THEN 0 ELSE wire_bytes END) AS fixed, "
    "any_value(tls_total) - sum(CASE WHEN is_app THEN tls ELSE 0 END) AS fixed_tls FROM m GROUP BY conn_id), "
    "app AS (SELECT capture, kind, \"group\", conn_id, ts, item_index, wire_bytes, tls, w, _store, _file, _row, "
    "row_number() OVER (PARTITION BY conn_id ORDER BY ts NULLS LAST, item_index NULLS LAST, _store, _file, _row) AS nth "
    "FROM m WHERE is_app), "
    "charged AS (SELECT a.*, CASE WHEN a.nth = 1 THEN coalesce(f.fixed, 0) ELSE 0 END AS charge, "
    "CASE WHEN a.nth = 1 THEN coalesce(f.fixed_tls, 0) ELSE 0 END AS charge_tls FROM app a LEFT JOIN fixed f ON f.conn_id = a.conn_id), "
    "groups AS (SELECT capture, kind, \"group\", dense_rank() OVER (ORDER BY capture, kind, \"group\") AS gid FROM (SELECT DISTINCT capture, kind, \"group\" FROM m)), "
    "upfront AS (SELECT m.capture, m.kind, m.\"group\", sum(f.fixed) AS upfront, sum(f.fixed_tls) AS upfront_tls FROM fixed f "
    "JOIN (SELECT DISTINCT conn_id, capture, kind, \"group\" FROM m) m ON m.conn_id = f.conn_id "
    "WHERE NOT EXISTS (SELECT 1 FROM app a WHERE a.conn_id = f.conn_id) GROUP BY ALL), "
    "running AS (SELECT capture, kind, \"group\", w, sum(wire_bytes + charge) OVER win AS total, sum(tls + charge_tls) OVER win AS total_tls, "
    "sum(w) OVER win AS messages, row_number() OVER win AS pos, first_value(charge) OVER win AS charge0, "
    "first_value(charge_tls) OVER win AS charge0_tls FROM charged "
    "WINDOW win AS (PARTITION BY capture, kind, \"group\" ORDER BY ts NULLS LAST, conn_id NULLS LAST, item_index NULLS LAST, "
    "_store, _file, _row ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)), "
    "ends AS (SELECT capture, kind, \"group\", max(pos) AS last, arg_max(total, pos) AS total, arg_max(total_tls, pos) AS total_tls, "
    "max(CASE WHEN w > 0 THEN pos END) AS last_carrying, any_value(charge0) AS charge0, any_value(charge0_tls) AS charge0_tls "
    "FROM running GROUP BY ALL), "
    "points AS (SELECT g.gid, 0 AS pos, 0::HUGEINT AS messages, "
    "coalesce(u.upfront, 0) + CASE WHEN e.last IS NULL THEN 0 WHEN e.last_carrying IS NULL THEN e.total ELSE e.charge0 END AS wire_bytes, "
    "coalesce(u.upfront_tls, 0) + CASE WHEN e.last IS NULL THEN 0 WHEN e.last_carrying IS NULL THEN e.total_tls ELSE e.charge0_tls END AS tls_bytes "
    "FROM groups g "
    "LEFT JOIN ends e ON e.capture = g.capture AND e.kind = g.kind AND e.\"group\" = g.\"group\" "
    "LEFT JOIN upfront u ON u.capture = g.capture AND u.kind = g.kind AND u.\"group\" = g.\"group\" "
    "UNION ALL SELECT g.gid, r.pos, r.messages, coalesce(u.upfront, 0) + CASE WHEN r.pos = e.last_carrying THEN e.total ELSE r.total END, "
    "coalesce(u.upfront_tls, 0) + CASE WHEN r.pos = e.last_carrying THEN e.total_tls ELSE r.total_tls END "
    "FROM running r JOIN groups g ON g.capture = r.capture AND g.kind = r.kind AND g.\"group\" = r.\"group\" "
    "JOIN ends e ON e.capture = r.capture AND e.kind = r.kind AND e.\"group\" = r.\"group\" "
    "LEFT JOIN upfront u ON u.capture = r.capture AND u.kind = r.kind AND u.\"group\" = r.\"group\" WHERE r.w > 0) "
    "SELECT p.gid, CASE WHEN p.pos = 0 THEN g.capture END AS capture, CASE WHEN p.pos = 0 THEN g.kind END AS kind, "
    "CASE WHEN p.pos = 0 THEN g.\"group\" END AS \"group\", p.messages::BIGINT AS messages, p.wire_bytes::DOUBLE AS wire_bytes, "
    "p.tls_bytes::DOUBLE AS tls_bytes FROM points p JOIN groups g ON g.gid = p.gid ORDER BY p.gid, p.pos")


class LazyTables(Mapping):
    """The merged tables of a Catalog, each loaded whole on first use and kept (thread-safe)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._tables: dict[str, pd.DataFrame] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in TABLE_NAMES:
            raise KeyError(name)
        with self._lock:
            if name not in self._tables:
                if name == "overhead":  # recomputed over every store's connections, as merge_analyses does
                    self._tables[name] = overhead_table(self._load("connections"), self._load("message_costs"))
                else:
                    self._tables[name] = self._load(name)
            return self._tables[name]

    def _load(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            self._tables[name] = self._catalog.table(name)
        return self._tables[name]

    def __iter__(self):
        return iter(TABLE_NAMES)

    def __len__(self) -> int:
        return len(TABLE_NAMES)

    def loaded(self) -> list[str]:
        """The tables loaded so far (what this snapshot holds in memory)."""
        with self._lock:
            return list(self._tables)


# The CSV exports of the overview (aggregate.capture_overview) and of the Push and request/response page
# (aggregate.message_cost_split) read these.
EXPORT_COLUMNS = {"connections": [*aggregate.GROUP_COLUMNS["connections"], "http_requests", "ws_messages", "wire_bytes", *aggregate.PAYLOAD_SUMS],
                  "message_costs": aggregate.COST_SPLIT_COLUMNS["message_costs"]}
SMALL_TABLES = ("captures", "staleness")
# A message's text is needed only when it may carry an id (aggregate.MESSAGE_ID needs one of
# these keys, quoted): the others' text is not read (NULL, as a message without text).
MAY_CARRY_ID = ("CASE WHEN regexp_matches(payload_text, '\"(id|seq|request_id|requestId|correlation_id|correlationId|msg_id|msgId)\"') "
                "THEN payload_text END")


class CaptureTables(Mapping):
    """The tables of one capture (all for None) with the `columns` a view reads only, each
    loaded on first use and kept as long as this object (one view's computation); the small
    tables (captures, staleness) whole."""

    def __init__(self, catalog: Catalog, capture: str | None, small: LazyTables, columns: dict[str, list[str]]) -> None:
        self._catalog, self._capture, self._small, self._columns = catalog, capture, small, columns
        self._tables: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._columns:
            if name not in SMALL_TABLES:
                raise KeyError(f"{name}: not among the columns this view reads")
            table = self._small[name]
            return table if self._capture is None else table[table["capture"] == self._capture]
        if name not in self._tables:
            values = {"payload_text": MAY_CARRY_ID} if name == "ws_messages" else None
            self._tables[name] = self._catalog.columns(name, self._columns[name], self._capture, values)
        return self._tables[name]

    def __iter__(self):
        return iter(TABLE_NAMES)

    def __len__(self) -> int:
        return len(TABLE_NAMES)


class StoreViews(TableViews):
    """TableViews of a Catalog: same views, the big tables' ones answered by SQL."""

    def __init__(self, catalog: Catalog) -> None:
        super().__init__(LazyTables(catalog))
        self.catalog = catalog

    @property
    def warnings(self) -> list[str]:
        return self.catalog.warnings

    def captures(self) -> list[str]:
        return self.once("captures", lambda: [str(c) for c in self.tables["captures"]["capture"]])

    def capture(self, capture: str | None, columns: dict[str, list[str]] | None = None) -> CaptureTables:
        """The tables of one capture (all for None), with only `columns` (default: what the
        overview's and the Push and request/response page's CSV exports read); never kept."""
        return CaptureTables(self.catalog, capture, self.tables, columns or EXPORT_COLUMNS)

    def warm(self) -> None:
        """The overview's views and figures (the first page) now, then the Push and request/response page's."""
        self.warm_first()
        for capture in self.captures():
            self.bytes_by_category(capture)
            self.protocol_mix(capture)
        self.bytes_by_category(None)
        self.default_capture()
        self.claims()
        for capture in self.captures():
            self.cost_split(capture)
            self.latency(capture)
        for grid in GRID_SOURCES:
            self.row_count(grid)

    def overview(self) -> pd.DataFrame:
        return self.once("overview", self._overview)

    def _overview(self) -> pd.DataFrame:
        sums = ["rest_exchanges", "ws_messages", "tcp_wire_bytes", *aggregate.PAYLOAD_SUMS]
        query = (
            "SELECT c.capture, c.packets, c.connections, c.wire_bytes, "
            + ", ".join(f"coalesce(p.{s}, 0)::BIGINT AS {s}" for s in sums)
            + " FROM captures c LEFT JOIN (SELECT capture, sum(CASE WHEN kind IN (" + ", ".join(f"'{kind}'" for kind in aggregate.REST_KINDS)
            + ") THEN http_requests ELSE 0 END) AS rest_exchanges, "
            "sum(ws_messages) AS ws_messages, sum(wire_bytes) AS tcp_wire_bytes, "
            + ", ".join(f"sum({s}) AS {s}" for s in aggregate.PAYLOAD_SUMS)
            + " FROM connections GROUP BY capture) p ON p.capture = c.capture ORDER BY " + ", ".join(row_order("captures", "c")))
        out = _int64(self.catalog.sql(query), ["packets", "connections", "wire_bytes", *sums])
        return aggregate.with_payload_columns(out, "tcp_wire_bytes")

    def findings_count(self) -> int:
        return int(self.catalog.sql("SELECT count(*) AS n FROM findings")["n"].iloc[0])

    def bytes_by_category(self, capture: str | None) -> pd.DataFrame:
        return self.once(("bytes_by_category", capture), lambda: self._bytes_by_category(capture))

    def _bytes_by_category(self, capture: str | None) -> pd.DataFrame:
        columns = [*BYTE_CATEGORIES, "wire_bytes", *aggregate.PAYLOAD_SUMS]
        where = "kind IS NOT NULL" + ("" if capture is None else " AND capture = ?")
        query = (f"SELECT kind, {GROUP} AS \"group\", " + ", ".join(f"sum({identifier(c)})::BIGINT AS {identifier(c)}" for c in columns)
                 + f" FROM connections WHERE {where} GROUP BY ALL ORDER BY kind, \"group\"")
        out = _int64(self.catalog.sql(query, None if capture is None else [capture]), columns)
        return aggregate.with_payload_columns(out, "wire_bytes")

    def protocol_mix(self, capture: str, bins: int = 40) -> pd.DataFrame:
        return self.once(("protocol_mix", capture), lambda: self._protocol_mix(capture, bins))

    def _protocol_mix(self, capture: str, bins: int) -> pd.DataFrame:
        """aggregate.protocol_mix as one query: the bins of the capture's message costs, per connection kind."""
        query = (
            "WITH costs AS (SELECT m.ts, c.kind, m.wire_bytes FROM message_costs m JOIN connections c ON c.conn_id = m.conn_id "
            "WHERE c.capture = ?), "
            "span AS (SELECT min(ts) AS start, CASE WHEN max(ts) - min(ts) > 0 THEN (max(ts) - min(ts)) / ? ELSE 1.0 END AS width FROM costs) "
            "SELECT least(CAST(trunc((costs.ts - span.start) / span.width) AS BIGINT), ? - 1) AS bin, kind, "
            "sum(wire_bytes) AS wire_bytes, any_value(span.width) AS width "
            "FROM costs, span GROUP BY bin, kind ORDER BY bin, kind")
        out = self.catalog.sql(query, [capture, float(bins), int(bins)])
        if out.empty:
            return aggregate.protocol_mix({name: make_table(name) for name in ("message_costs", "connections")}, capture)
        width = out["width"].astype("float64")
        return pd.DataFrame({"t_s": out["bin"].astype("int64") * width, "kind": out["kind"],
                             "wire_bytes": out["wire_bytes"].astype("float64")})

    # --- the Push and request/response page: aggregates, curves computed once and kept thinned ---

    def cost_split(self, capture: str | None) -> pd.DataFrame:
        return self.once(("cost_split", capture), lambda: self._cost_split(capture))

    def _cost_split(self, capture: str | None) -> pd.DataFrame:
        """aggregate.message_cost_split from DuckDB's sums per group."""
        weights = " ".join(f"WHEN '{item}' THEN {n}" for item, n in aggregate.APP_ITEMS.items())
        # A float column (a message's share of packets: transport_bytes, ack_bytes, wire_bytes) sums as a float, as pandas sums it.
        sums = ", ".join(f"sum(m.{identifier(c)})::{'DOUBLE' if c in COST_FLOAT_COLUMNS else 'BIGINT'} AS {identifier(c)}"
                         for c in [*aggregate.COST_SPLIT_SUMS, "payload_messages"])
        query = (f"SELECT c.kind, {GROUP_OF_C} AS \"group\", "
                 f"sum(CASE m.item {weights} END)::BIGINT AS messages, {sums} "
                 f"FROM message_costs m JOIN connections c ON c.conn_id = m.conn_id WHERE m.item IN ({APP_ITEMS_SQL}) AND c.kind IS NOT NULL"
                 + ("" if capture is None else " AND c.capture = ?") + " GROUP BY ALL ORDER BY 1, 2")
        out = _int64(self.catalog.sql(query, None if capture is None else [capture]),
                     ["messages", *(c for c in aggregate.COST_SPLIT_SUMS if c not in COST_FLOAT_COLUMNS), "payload_messages"])
        return aggregate.cost_split_of_sums(out)

    def latency(self, capture: str | None) -> pd.DataFrame:
        """aggregate.latency, kept with its labels as categories (a pair then costs its two numbers
        and a few bytes of codes, not a pointer per label); given back as computed."""
        kept, dtypes = self._latency_kept(capture)
        return kept.astype(dtypes)

    def latency_by_group(self, capture: str | None) -> pd.DataFrame:
        """The latency figure's columns, kind and group as categories (a copy of the labels of a
        million pairs takes a second)."""
        return self._latency_kept(capture)[0][list(LATENCY_FIGURE_COLUMNS)]

    def _latency_kept(self, capture: str | None) -> tuple[pd.DataFrame, dict]:
        return self.once(("latency", capture), lambda: _with_categories(
            aggregate.latency(self.capture(capture, aggregate.LATENCY_COLUMNS), capture), LATENCY_LABELS))

    def whole_curves(self, capture: str | None) -> pd.DataFrame:
        """aggregate.break_even_curves, a point per payload message (computed by DuckDB; never kept)."""
        arrow = self.catalog.arrow(CURVES_SQL.format(where="" if capture is None else " AND capture = ?"), None if capture is None else [capture])
        gid = arrow["gid"].to_numpy()
        starts = np.flatnonzero(np.r_[True, gid[1:] != gid[:-1]]) if len(gid) else np.array([], dtype="int64")
        ends = np.r_[starts[1:], len(gid)]
        messages = arrow["messages"].to_numpy()
        values = {value: arrow[value].to_numpy() for value in aggregate.CURVE_VALUES}
        parts = [pd.DataFrame({"capture": arrow["capture"][int(a)].as_py(), "kind": arrow["kind"][int(a)].as_py(),
                               "group": arrow["group"][int(a)].as_py(), "messages": messages[a:b].astype("int64"),
                               **{value: column[a:b].astype("float64") for value, column in values.items()}})
                 for a, b in zip(starts, ends)]
        return pd.concat(parts, ignore_index=True) if parts else aggregate.break_even_curves({name: make_table(name) for name in ("message_costs", "connections")})

    def break_even_curves(self, capture: str | None) -> pd.DataFrame:
        """The curves thinned as the break-even figure draws them (figures.thin): at most
        figures.MAX_CURVE_POINTS per group, whatever the capture's messages."""
        if capture is None:
            return super().break_even_curves(None)
        return self._curves_of(capture)[0]

    def crossovers(self, capture: str | None) -> pd.DataFrame:
        """aggregate.break_even_crossovers of the whole curves."""
        if capture is None:
            return super().crossovers(None)
        return self._curves_of(capture)[1]

    def _curves_of(self, capture: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self.once(("curves", capture), lambda: _thinned_and_crossings(self.whole_curves(capture)))

    def request_response_claims(self) -> list[dict]:
        """aggregate.claims over the whole curves (computed here, then let go), with the
        directions of each connection's WebSocket messages for the captures that go both ways."""
        tables = {"connections": self.capture(None, {"connections": aggregate.CLAIMS_COLUMNS["connections"]})["connections"],
                  "ws_messages": self.catalog.sql("SELECT DISTINCT conn_id, direction FROM ws_messages ORDER BY ALL")}
        curves = self.whole_curves(None)
        for capture, part in curves.groupby("capture", sort=False):
            self.once(("curves", capture), lambda: _thinned_and_crossings(part.reset_index(drop=True)))
        return aggregate.claims(tables, curves=curves)

    # --- the grids and a connection's rows ----------------------------------------------

    def connection_rows(self, start: int, end: int, sort_model=None, filter_model=None) -> tuple[pd.DataFrame, int]:
        return gridsql.page_rows(self.catalog, CONNECTIONS_SOURCE, aggregate.CONNECTION_COLUMNS, CONNECTIONS_ORDER,
                                 start, end, sort_model, filter_model, lambda: self.row_count("connections"))

    def frame_rows(self, start: int, end: int, sort_model=None, filter_model=None) -> tuple[pd.DataFrame, int]:
        return gridsql.page_rows(self.catalog, FRAMES_SOURCE, aggregate.FRAME_COLUMNS, FRAMES_ORDER, start, end, sort_model, filter_model,
                                 lambda: self.row_count("frames"))

    def row_count(self, grid: str) -> int:
        """How many rows the grid has unfiltered ("connections" or "frames"): counted once per snapshot."""
        return self.once(("row_count", grid), lambda: gridsql.count_rows(self.catalog, GRID_SOURCES[grid]))

    def filtered_connections(self, sort_model=None, filter_model=None) -> pd.DataFrame:
        query, params = gridsql.filtered_query(CONNECTIONS_SOURCE, aggregate.CONNECTION_COLUMNS, CONNECTIONS_ORDER, sort_model, filter_model)
        return self.catalog.sql(query, params)

    def filtered_frames(self, sort_model=None, filter_model=None) -> pd.DataFrame:
        query, params = gridsql.filtered_query(FRAMES_SOURCE, aggregate.FRAME_COLUMNS, FRAMES_ORDER, sort_model, filter_model)
        return self.catalog.sql(query, params)

    def connections_index(self) -> pd.DataFrame:
        return self.filtered_connections()

    def frames_index(self) -> pd.DataFrame:
        return self.filtered_frames()

    def connection(self, conn_id: int):
        """The rows of one connection in the connection tables: `WHERE conn_id = ?` on each (no
        query for a negative id, which no connection has: the pages' "none selected")."""
        if conn_id < 0:
            return {name: make_table(name) for name in CONNECTION_TABLES}
        return {name: self.catalog.rows_of_connection(name, conn_id) for name in CONNECTION_TABLES}



def _with_categories(frame: pd.DataFrame, columns) -> tuple[pd.DataFrame, dict]:
    """(`frame` with its `columns` as categories, the dtypes that give it back as it was)."""
    labels = [c for c in columns if c in frame.columns]
    return frame.astype({c: "category" for c in labels}), {c: frame[c].dtype for c in labels}


def _thinned_and_crossings(curves: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(each group's curve thinned as the figure draws it, the crossovers of the whole curves)."""
    parts = [figures.thin(curve) for _, curve in curves.groupby(["capture", "kind", "group"], sort=False)]
    thinned = pd.concat(parts, ignore_index=True) if parts else curves
    return thinned, aggregate.break_even_crossovers(curves)


def _int64(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """Sums and counts as the int64 columns pandas makes of them (a query gives nullable ones)."""
    return frame.astype({c: "int64" for c in columns})
