"""StoreViews: TableViews over a Catalog of stores, the big tables queried, never held whole.

The grids (connections, frames and messages) are pages of SQL queries (dashboard.gridsql), a
connection's detail the rows `WHERE conn_id = ?`, and the overview's numbers and figures DuckDB
aggregates; only the small results they show become DataFrames.  The views not moved yet (the
REST vs WebSocket page's curves, latency and claims; the findings) read `tables`, whose tables
are loaded from the stores on first use and kept for the snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import pandas as pd

from dashboard import aggregate, gridsql
from dashboard.catalog import Catalog, identifier, row_order
from dashboard.views import TableViews
from inspector.analysis.summary import overhead_table
from inspector.analysis.tables import BYTE_CATEGORIES, CONNECTION_TABLES, TABLE_NAMES, make_table

# A connection's group: its variant when it was recorded, else its kind (aggregate.connection_groups).
GROUP = "CASE WHEN coalesce(variant, '') <> '' THEN variant ELSE kind END"
# A capture's name as the pages show it (aggregate._short): the part after the last / or \\.
SHORT = "regexp_extract(replace(capture, '\\', '/'), '[^/]*$')"

CONNECTIONS_SOURCE = ("SELECT conn_id, " + SHORT + " AS capture, kind, variant, client_ip, client_port, server_ip, server_port, "
                      "packets, wire_bytes, app_payload_bytes, efficiency, wire_payload_bytes, compression_saved_bytes, "
                      "undecoded_payload_bytes, http_requests, ws_messages, end_ts - start_ts AS duration_s, _store, _file, _row "
                      "FROM connections")
CONNECTIONS_ORDER = row_order("connections")

# One row per HTTP message and per WebSocket frame (aggregate.frames_index), with what orders them
# as it does: by ts and conn_id, HTTP messages before frames, then each table's own row order.
FRAMES_SOURCE = (
    "SELECT 'http:' || conn_id || ':' || exchange_id || ':' || direction AS key, conn_id, 'http' AS protocol, direction, ts, "
    "trim(CASE WHEN direction = 'client' THEN coalesce(method, '') || ' ' || coalesce(target, '') "
    "ELSE coalesce(CAST(status AS VARCHAR), '') || ' ' || coalesce(reason, '') END) AS type, "
    "header_bytes, body_wire_bytes AS payload_bytes, 0 AS _protocol, _store, exchange_id AS _id1, NULL::BIGINT AS _id2, "
    "ts AS _ts, _file, _row FROM http_messages "
    "UNION ALL "
    "SELECT 'ws:' || conn_id || ':' || frame_id AS key, conn_id, 'websocket' AS protocol, direction, ts, opcode_name AS type, "
    "header_bytes, payload_length AS payload_bytes, 1 AS _protocol, _store, frame_id AS _id1, message_id AS _id2, "
    "ts AS _ts, _file, _row FROM ws_frames")
FRAMES_ORDER = ["ts NULLS LAST", "conn_id NULLS LAST", "_protocol", "_store", "_id1 NULLS LAST", "_id2 NULLS LAST",
                "_ts NULLS LAST", "_file", "_row"]


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


# The CSV exports of the overview (aggregate.capture_overview) and of the REST vs WebSocket page
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
        overview's and the REST vs WebSocket page's CSV exports read); never kept."""
        return CaptureTables(self.catalog, capture, self.tables, columns or EXPORT_COLUMNS)

    def warm(self) -> None:
        """The overview's views (the first page) now, then the REST vs WebSocket page's."""
        self.overview()
        for capture in self.captures():
            self.bytes_by_category(capture)
            self.protocol_mix(capture)
        self.bytes_by_category(None)
        self.default_capture()
        self.claims()
        for capture in self.captures():
            self.cost_split(capture)
            self.latency(capture)

    def overview(self) -> pd.DataFrame:
        return self.once("overview", self._overview)

    def _overview(self) -> pd.DataFrame:
        sums = ["rest_exchanges", "ws_messages", "tcp_wire_bytes", *aggregate.PAYLOAD_SUMS]
        query = (
            "SELECT c.capture, c.packets, c.connections, c.wire_bytes, "
            + ", ".join(f"coalesce(p.{s}, 0)::BIGINT AS {s}" for s in sums)
            + " FROM captures c LEFT JOIN (SELECT capture, sum(CASE WHEN kind = 'rest' THEN http_requests ELSE 0 END) AS rest_exchanges, "
            "sum(ws_messages) AS ws_messages, sum(wire_bytes) AS tcp_wire_bytes, "
            + ", ".join(f"sum({s}) AS {s}" for s in aggregate.PAYLOAD_SUMS)
            + " FROM connections GROUP BY capture) p ON p.capture = c.capture ORDER BY " + ", ".join(row_order("captures", "c")))
        out = _int64(self.catalog.sql(query), ["packets", "connections", "wire_bytes", *sums])
        return aggregate.with_payload_columns(out, "tcp_wire_bytes")

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

    # --- the grids and a connection's rows ----------------------------------------------

    def connection_rows(self, start: int, end: int, sort_model=None, filter_model=None) -> tuple[pd.DataFrame, int]:
        return gridsql.page_rows(self.catalog, CONNECTIONS_SOURCE, aggregate.CONNECTION_COLUMNS, CONNECTIONS_ORDER,
                                 start, end, sort_model, filter_model)

    def frame_rows(self, start: int, end: int, sort_model=None, filter_model=None) -> tuple[pd.DataFrame, int]:
        return gridsql.page_rows(self.catalog, FRAMES_SOURCE, aggregate.FRAME_COLUMNS, FRAMES_ORDER, start, end, sort_model, filter_model)

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
        """The rows of one connection in the connection tables: `WHERE conn_id = ?` on each."""
        return {name: self.catalog.rows_of_connection(name, conn_id) for name in CONNECTION_TABLES}



def _int64(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """Sums and counts as the int64 columns pandas makes of them (a query gives nullable ones)."""
    return frame.astype({c: "int64" for c in columns})
