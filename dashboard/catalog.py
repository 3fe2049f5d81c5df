"""The loaded captures' stores as one set of DuckDB views: what the pages query.

Each capture the dashboard shows is a store (inspector.store): taken from the per-user cache,
analysed into it, or a store folder given as a source.  A Catalog is one snapshot of the loaded
stores: in one in-memory DuckDB database, a view per table, named like the table, over the
Parquet parts of every store at once, as dashboard.store.merge_analyses would merge their
tables: conn_id renumbered (each store's ids after the previous stores' connections) and
captures renamed to the names the pages show.  Nothing is read until a query asks for it.

Each view has three columns more than its table, the analysis's row order across stores:
_store (the store's position), _file and _row (the part and the row in it).  Ties in any
ORDER BY are broken by `row_order(table)`, so a query gives rows in the order pandas, whose
sorts are stable, gave them over the merged tables.

SQL text here holds only identifiers from the tables' fixed schemas and integers this module
made; capture names and parts' paths go in as bound values or through the relation API.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from inspector.analysis.tables import SCHEMAS, TABLE_NAMES, make_table
from inspector.store import Store
from inspector.store.layout import duckdb_paths, part_files
from inspector.store.reader import query_frame
from inspector.store.schema import ROW_ORDER, to_arrow, to_frame

# The DuckDB database of a snapshot reads Parquet parts and keeps nothing of its own but a
# few names: its memory is bounded, and it keeps no copy of the files it read (their pages
# are the kernel's to cache).  A sort bigger than this spills to the temporary folder.  What a
# query used is given back to the system in the background once it is done (without
# allocator_background_threads, the process kept the peak of its biggest query resident).
DUCKDB_CONFIG = {"autoinstall_known_extensions": False, "memory_limit": "512MB", "enable_external_file_cache": False,
                 "allocator_background_threads": True, "allocator_flush_threshold": "16MB",
                 "temp_directory": os.path.join(tempfile.gettempdir(), f"inspector-duckdb-{os.getpid()}")}
HIDDEN = ("_store", "_file", "_row")

# Columns that name a connection: renumbered with the store's offset (sse_reconnections names two).
RENUMBERED_COLUMNS = ("conn_id", "previous_conn_id")


@dataclass(frozen=True)
class Loaded:
    """One store as the pages show it: the name shown for each capture it holds (its own name
    -> the name shown), and its warnings with those names."""

    store: Store
    names: dict[str, str]
    warnings: tuple[str, ...] = ()

    @property
    def connections(self) -> int:
        return int(self.store.meta["rows"]["connections"])


def identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def row_order(table: str, alias: str = "") -> list[str]:
    """ORDER BY terms giving `table`'s rows in the order of the merged in-memory tables."""
    prefix = f"{alias}." if alias else ""
    return [f"{prefix}_store", *(f"{prefix}{identifier(c)} NULLS LAST" for c in ROW_ORDER.get(table, ())), f"{prefix}_file", f"{prefix}_row"]


class Catalog:
    """A snapshot of the loaded stores (never changed: a new store loaded, a new Catalog).

    `sql(query, params)` answers a query over the views; `table(name)` is a table whole, with
    the dtypes and row order of the merged in-memory tables (for the small tables)."""

    def __init__(self, loaded: list[Loaded] | tuple[Loaded, ...] = ()) -> None:
        import duckdb

        self.loaded = tuple(loaded)
        self._connection = duckdb.connect(":memory:", config=DUCKDB_CONFIG)
        self._lock = threading.Lock()
        self._cursors: set = set()
        self._make_views()

    @property
    def warnings(self) -> list[str]:
        return [w for loaded in self.loaded for w in loaded.warnings]

    def _make_views(self) -> None:
        con = self._connection
        con.execute("CREATE TABLE _names (store INTEGER, original VARCHAR, shown VARCHAR)")
        for index, loaded in enumerate(self.loaded):
            for original, shown in loaded.names.items():
                con.execute("INSERT INTO _names VALUES (?, ?, ?)", [index, original, shown])
        offsets, offset = [], 0
        for loaded in self.loaded:
            offsets.append(offset)
            offset += loaded.connections
        for table in TABLE_NAMES:
            parts = []
            for index, loaded in enumerate(self.loaded):
                # Made through the relation API: the parts' paths are never spliced into SQL text.
                source = f"_s{index}_{table}"
                con.read_parquet(duckdb_paths([p.absolute() for p in part_files(loaded.store.folder, table)]), filename=True, file_row_number=True).create_view(source)
                parts.append(self._store_select(table, source, index, offsets[index]))
            if not parts:
                source = f"_empty_{table}"
                con.from_arrow(to_arrow(table, make_table(table))).create(source)
                columns = ", ".join(identifier(c) for c in SCHEMAS[table])
                parts.append(f"SELECT {columns}, 0 AS _store, '' AS _file, 0::BIGINT AS _row FROM {source}")
            con.execute(f"CREATE VIEW {identifier(table)} AS " + " UNION ALL ".join(parts))

    @staticmethod
    def _store_select(table: str, source: str, index: int, offset: int) -> str:
        columns = []
        for column in SCHEMAS[table]:
            if column in RENUMBERED_COLUMNS:
                columns.append(f"t.{column} + {int(offset)} AS {column}")
            elif column == "capture":
                columns.append("coalesce(n.shown, t.capture) AS capture")
            else:
                columns.append(f"t.{identifier(column)}")
        join = f" LEFT JOIN _names n ON n.store = {int(index)} AND n.original = t.capture" if "capture" in SCHEMAS[table] else ""
        return (f"SELECT {', '.join(columns)}, {int(index)} AS _store, t.filename AS _file, t.file_row_number AS _row "
                f"FROM {source} t{join}")

    def sql(self, query: str, params: list | dict | None = None) -> pd.DataFrame:
        """The result of `query` as a DataFrame (integers and booleans nullable, as Store.sql)."""
        return query_frame(self._arrow(query, params))

    def arrow(self, query: str, params: list | dict | None = None) -> pa.Table:
        """The result of `query` as an Arrow table (for results too long to become Python objects)."""
        return self._arrow(query, params)

    def _arrow(self, query: str, params) -> pa.Table:
        with self._cursor() as cursor:
            return cursor.sql(query, params=params).to_arrow_table()

    def batches(self, query: str, params: list | None = None, rows: int = 4096) -> Iterator[pa.RecordBatch]:
        """The result of `query` as Arrow record batches of at most `rows` rows, fetched as they are
        read (what inspector.analysis.har streams a HAR from)."""
        with self._cursor() as cursor:
            yield from cursor.sql(query, params=params).to_arrow_reader(rows)

    @contextmanager
    def _cursor(self):
        with self._lock:  # a cursor per query: callbacks run in several threads at once
            cursor = self._connection.cursor()
            self._cursors.add(cursor)
        try:
            yield cursor
        finally:
            with self._lock:
                self._cursors.discard(cursor)
            cursor.close()

    def interrupt(self) -> None:
        """Stop the queries running now (they raise duckdb.InterruptException)."""
        with self._lock:
            for cursor in self._cursors:
                cursor.interrupt()

    def table(self, name: str) -> pd.DataFrame:
        """Table `name` whole, with exactly the dtypes of tables.SCHEMAS, in the merged tables' row order."""
        columns = ", ".join(identifier(c) for c in SCHEMAS[name])
        return to_frame(name, self._arrow(f"SELECT {columns} FROM {identifier(name)} ORDER BY {', '.join(row_order(name))}", None))

    def rows_of_connection(self, name: str, conn_id: int) -> pd.DataFrame:
        """The rows of connection `conn_id` in table `name`, as `table` gives them."""
        columns = ", ".join(identifier(c) for c in SCHEMAS[name])
        query = f"SELECT {columns} FROM {identifier(name)} WHERE conn_id = ? ORDER BY {', '.join(row_order(name))}"
        return to_frame(name, self._arrow(query, [int(conn_id)]))

    def columns(self, name: str, columns, capture: str | None = None, values: dict[str, str] | None = None) -> pd.DataFrame:
        """`columns` of table `name` (of one capture's connections, or all), with the dtypes of
        tables.SCHEMAS, in the merged tables' row order.  `values` gives a column's SQL instead
        of the column itself (a constant SQL text of the caller's, never user text)."""
        values = values or {}
        selected = ", ".join(f"{values.get(c, identifier(c))} AS {identifier(c)}" for c in columns)
        query, params = f"SELECT {selected} FROM {identifier(name)}", []
        if capture is not None:
            query += (" WHERE capture = ?" if "capture" in SCHEMAS[name]
                      else " WHERE conn_id IN (SELECT conn_id FROM connections WHERE capture = ?)")
            params.append(capture)
        arrow = self._arrow(f"{query} ORDER BY {', '.join(row_order(name))}", params)
        return pd.DataFrame({c: _pandas(arrow[c], SCHEMAS[name][c]) for c in columns}, copy=False)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


_NULLABLE_TYPES = {"Int64": pd.Int64Dtype(), "boolean": pd.BooleanDtype()}


def _pandas(column: pa.ChunkedArray, dtype: str) -> pd.Series:
    """One column as inspector.store.schema.to_frame makes it: the schema's dtype exactly."""
    nullable = _NULLABLE_TYPES.get(dtype)
    return column.to_pandas(types_mapper=(lambda _type: nullable) if nullable else None).astype(dtype)
