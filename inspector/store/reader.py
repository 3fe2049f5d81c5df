"""Reading a store: check store.json, then SQL over its Parquet parts with DuckDB.

`open_store(DIR)` refuses, with one line naming DIR, a folder that is not a store, one
written by a newer version, and a half-written one (a temporary folder, or no store.json);
a store of an older table schema or layout raises OutdatedStoreError, so that the caller
analyses the captures again rather than misread it.  A `Store` has one DuckDB view per
table, named like the table, over its parts: `store.sql("SELECT ... FROM connections")`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa

from inspector.analysis.tables import SCHEMA_VERSION, SCHEMAS, TABLE_NAMES
from inspector.errors import OutdatedStoreError, StoreError
from inspector.store.layout import LAYOUT_VERSION, META_FILE, STORE_FORMAT, duckdb_paths, is_transient, part_files
from inspector.store.schema import ROW_ORDER, to_frame

# store.json holds a few lines per capture and the analysis warnings; past this it is not one.
MAX_META_BYTES = 64 * 1024 * 1024
# Types of query results as pandas: nullable integers and booleans rather than floats and objects.
_QUERY_TYPES = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype(), pa.int16(): pd.Int16Dtype(), pa.int8(): pd.Int8Dtype(),
                pa.uint64(): pd.UInt64Dtype(), pa.uint32(): pd.UInt32Dtype(), pa.bool_(): pd.BooleanDtype()}


def open_store(folder: str | os.PathLike) -> Store:
    """The store in `folder`, checked (see the module docstring)."""
    folder = Path(folder)
    return Store(folder, read_meta(folder))


def read_meta(folder: Path) -> dict:
    """store.json of a complete, current store in `folder`; StoreError (one line) if it is not one."""
    meta = load_document(folder)
    layout, schema = meta.get("layout_version"), meta.get("schema_version")
    if not (isinstance(layout, int) and isinstance(schema, int)):
        raise StoreError(f"{folder}: not a store (store.json has no layout and schema versions)")
    if layout > LAYOUT_VERSION or schema > SCHEMA_VERSION:
        raise StoreError(f"{folder}: written by a newer wire-inspector (store layout {layout}, table schema {schema}; this one reads "
                         f"layout {LAYOUT_VERSION}, schema {SCHEMA_VERSION}): upgrade, or analyse the captures again with this one")
    if layout < LAYOUT_VERSION or schema < SCHEMA_VERSION:
        raise OutdatedStoreError(f"{folder}: written by an older wire-inspector (store layout {layout}, table schema {schema}; now "
                                 f"{LAYOUT_VERSION} and {SCHEMA_VERSION}): analyse the captures again")
    missing = [table for table in TABLE_NAMES if not part_files(folder, table)]
    if missing:
        raise StoreError(f"{folder}: damaged store: no parts for table {', '.join(missing)}")
    return meta


def load_document(folder: Path) -> dict:
    """store.json of `folder` if it says it is a store (of any version); StoreError otherwise."""
    if is_transient(folder):
        raise StoreError(f"{folder}: a half-written store (the temporary folder of a write that was interrupted or is still "
                         "under way), never read: remove it and analyse again")
    if not folder.is_dir():
        raise StoreError(f"{folder}: {'not a folder' if folder.exists() else 'no such folder'}, so not a store")
    path = folder / META_FILE
    if not path.is_file():
        if any((folder / table).is_dir() for table in TABLE_NAMES):
            raise StoreError(f"{folder}: a half-written store (tables but no {META_FILE}), never read: remove it and analyse again")
        raise StoreError(f"{folder}: not a store (no {META_FILE})")
    try:
        with open(path, "rb") as source:
            data = source.read(MAX_META_BYTES + 1)
        document = json.loads(data) if len(data) <= MAX_META_BYTES else None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError:  # not JSON, not UTF-8, nested too deep
        document = None
    if not isinstance(document, dict) or document.get("format") != STORE_FORMAT:
        raise StoreError(f"{folder}: not a store ({META_FILE} is not that of a wire-inspector store)")
    return document


def is_store_folder(folder: Path) -> bool:
    """Whether `folder` holds a store, of any version, complete or damaged."""
    try:
        load_document(folder)
    except StoreError:
        return False
    return True


class Store:
    """A store's metadata (`meta`, its store.json) and SQL over its tables.

    The DuckDB connection (in memory: the store's files are only read) is made on first use;
    `close()` or a `with` block ends it."""

    def __init__(self, folder: Path, meta: dict) -> None:
        self.folder = folder
        self.meta = meta
        self._connection = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def sql(self, query: str, params: list | dict | None = None) -> pd.DataFrame:
        """The result of `query` as a DataFrame (integers and booleans nullable). Values go in
        `params` (`?` or `$name` in the query), never into the query text.  A query that DuckDB
        refuses or that fails is a StoreError of one line."""
        import duckdb

        connection = self._connect()
        try:
            relation = connection.sql(query, params=params)
            if relation is None:  # a statement without rows (CREATE, SET, ...)
                return pd.DataFrame()
            arrow = relation.to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {_one_line(str(exc))}") from None
        return _query_frame(arrow)

    def table(self, name: str) -> pd.DataFrame:
        """Table `name` whole, with exactly the dtypes of tables.SCHEMAS and the analysis's row order."""
        import duckdb

        columns = ", ".join(_identifier(column) for column in SCHEMAS[name])
        order = "".join(f"{_identifier(column)} NULLS LAST, " for column in ROW_ORDER.get(name, ()))
        # Rows that tie on the table's order columns keep the order they were written in.
        query = (f"SELECT {columns} FROM read_parquet(?, filename = true, file_row_number = true) "
                 f"ORDER BY {order}filename, file_row_number")
        try:
            arrow = self._connect().sql(query, params=[self._files(name)]).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"{self.folder}: cannot read table {name}: {_one_line(str(exc))}") from None
        return to_frame(name, arrow)

    def analysis(self):
        """The store's tables and warnings as an in-memory inspector.analysis.pipeline.Analysis."""
        from inspector.analysis.pipeline import Analysis

        return Analysis(tables={name: self.table(name) for name in TABLE_NAMES}, warnings=list(self.meta.get("warnings", [])))

    def _connect(self):
        if self._connection is None:
            import duckdb

            # Reading Parquet is built in: never fetch an extension from the network on a query's behalf.
            connection = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
            for table in TABLE_NAMES:
                # Made through the relation API: the path is never spliced into SQL text.
                connection.read_parquet(self._files(table)).create_view(table)
            self._connection = connection
        return self._connection

    def _files(self, table: str) -> list[str]:
        """The parts of `table`, as DuckDB is to be given them (a store's parts never change)."""
        try:
            return duckdb_paths([path.absolute() for path in part_files(self.folder, table)])
        except ValueError as exc:
            raise StoreError(f"{self.folder}: cannot be read: {exc}; rename the folder") from None


def _query_frame(arrow: pa.Table) -> pd.DataFrame:
    """A query result as pandas: DuckDB's decimals (sum() of integers is one, as are literals such as
    2.5) become Int64 when whole and within int64, float64 otherwise, so that they are numbers."""
    for index, field in enumerate(arrow.schema):
        if pa.types.is_decimal(field.type):
            try:
                column = arrow.column(index).cast(pa.int64() if field.type.scale == 0 else pa.float64())
            except pa.ArrowInvalid:  # a whole number past int64
                column = arrow.column(index).cast(pa.float64(), safe=False)
            arrow = arrow.set_column(index, field.name, column)
    return arrow.to_pandas(types_mapper=_QUERY_TYPES.get)


# A query result as pandas, for readers that query several stores at once (dashboard.catalog).
query_frame = _query_frame


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _one_line(message: str) -> str:
    """DuckDB's message up to its first blank line (after it: the query again, with a caret), on one line."""
    head = message.strip().split("\n\n", 1)[0]
    return " ".join(head.split())
