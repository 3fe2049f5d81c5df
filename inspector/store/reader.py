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
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from inspector.analysis.tables import SCHEMA_VERSION, SCHEMAS, TABLE_NAMES
from inspector.errors import OutdatedStoreError, StoreError
from inspector.store.layout import LAYOUT_VERSION, META_FILE, STORE_FORMAT, duckdb_paths, is_transient, part_files
from inspector.store.schema import ROW_ORDER, to_frame

# What DuckDB holds in memory for a query before it sorts, joins or groups on disk.
DUCKDB_MEMORY_LIMIT = "256MB"
# store.json holds a few lines per capture and the analysis warnings; past this it is not one.
MAX_META_BYTES = 64 * 1024 * 1024
# Rows read at a time to check that a table's parts are in its row order (a few numbers a row).
ORDER_CHECK_ROWS = 1 << 18
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
        self._ordered: dict[str, bool] = {}  # per table: are its parts in its row order (they never change)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            self._spill_folder.cleanup()

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
        return query_frame(arrow)

    def batches(self, query: str, params: list | dict | None = None, rows: int = 4096) -> Iterator[pa.RecordBatch]:
        """The result of `query` as Arrow record batches of at most `rows` rows, fetched as they are
        read (a cursor of its own: other queries may run between two batches); errors as `sql`'s."""
        import duckdb

        cursor = self._connect().cursor()
        try:
            yield from cursor.sql(query, params=params).to_arrow_reader(rows)
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            raise StoreError(f"query failed: {_one_line(str(exc))}") from None
        finally:
            cursor.close()

    def table(self, name: str) -> pd.DataFrame:
        """Table `name` whole, with exactly the dtypes of tables.SCHEMAS and the analysis's row order."""
        with self._reading(name):
            arrow = self._connect().sql(self._table_query(name), params=[self._files(name)]).to_arrow_table()
        return to_frame(name, arrow)

    def chunks(self, name: str, rows: int) -> Iterator[pd.DataFrame]:
        """Table `name` as `table` gives it, in frames of `rows` rows (the last one fewer, and one
        empty frame for an empty table), fetched from DuckDB batch by batch: never whole in memory
        (when its parts are not in the table's row order, DuckDB sorts them first)."""
        with self._reading(name):
            reader = self._connect().sql(self._table_query(name), params=[self._files(name)]).to_arrow_reader(rows)
            held: list[pa.RecordBatch] = []
            count = 0
            sent = False
            for batch in reader:  # DuckDB's batches are of `rows` rows or fewer, not always as many
                while batch.num_rows:
                    take = min(rows - count, batch.num_rows)
                    held.append(batch.slice(0, take))
                    count += take
                    batch = batch.slice(take)
                    if count == rows:
                        yield to_frame(name, pa.Table.from_batches(held))
                        held, count, sent = [], 0, True
            if count or not sent:
                yield to_frame(name, pa.Table.from_batches(held, schema=reader.schema))

    def export(self, directory: Path, fmt: str) -> list[Path]:
        """Every table to DIRECTORY/NAME.FMT (csv, parquet or json), all or nothing, the same files
        byte for byte as inspector.analysis.export.export_tables writes from the in-memory tables;
        read and written EXPORT_CHUNK_ROWS rows at a time.  Format har: one HAR file per capture
        instead (inspector.analysis.har), its entries read and written as they come."""
        from inspector.analysis.export import EXPORT_CHUNK_ROWS, export_chunks

        if fmt == "har":
            import inspector
            from inspector.analysis.har import write_hars

            return write_hars(self, [str(c) for c in self.table("captures")["capture"]], directory, inspector.__version__)
        return export_chunks({name: self.chunks(name, EXPORT_CHUNK_ROWS) for name in TABLE_NAMES}, directory, fmt)

    def _table_query(self, name: str) -> str:
        """The query of table `name` in the analysis's row order, its parts bound as parameter 1:
        the parts as they are when they are in that order already (as write_analysis writes them),
        else sorted by DuckDB, which holds the whole table to sort it."""
        columns = ", ".join(_identifier(column) for column in SCHEMAS[name])
        if self._in_row_order(name):
            # DuckDB keeps a scan's rows in the order of its files, then of their rows (preserve_insertion_order).
            return f"SELECT {columns} FROM read_parquet(?)"
        order = "".join(f"{_identifier(column)} NULLS LAST, " for column in ROW_ORDER.get(name, ()))
        # Rows that tie on the table's order columns keep the order they were written in.
        return (f"SELECT {columns} FROM read_parquet(?, filename = true, file_row_number = true) "
                f"ORDER BY {order}filename, file_row_number")

    def _in_row_order(self, name: str) -> bool:
        """Whether the rows of table `name`, part after part, are in the order of its ROW_ORDER
        columns (NULLS LAST) already; found by reading those columns once, batch by batch."""
        if name not in self._ordered:
            keys = ROW_ORDER.get(name, ())
            # a NULL is put after every value: (is null, value or 0) in place of each column
            select = ", ".join(f"{_identifier(key)} IS NULL, coalesce({_identifier(key)}, 0)" for key in keys)
            with self._reading(name):
                self._ordered[name] = not keys or _non_decreasing(
                    self._connect().sql(f"SELECT {select} FROM read_parquet(?)", params=[self._files(name)]).to_arrow_reader(ORDER_CHECK_ROWS))
        return self._ordered[name]

    def analysis(self):
        """The store's tables and warnings as an in-memory inspector.analysis.pipeline.Analysis."""
        from inspector.analysis.pipeline import Analysis

        return Analysis(tables={name: self.table(name) for name in TABLE_NAMES}, warnings=list(self.meta.get("warnings", [])))

    @contextmanager
    def _reading(self, name: str) -> Iterator[None]:
        """DuckDB's errors while table `name` is read, as a StoreError of one line; they come through
        Arrow's batch reader as OSError (or another Arrow error)."""
        import duckdb

        try:
            yield
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            raise StoreError(f"{self.folder}: cannot read table {name}: {_one_line(str(exc))}") from None

    def _connect(self):
        if self._connection is None:
            import duckdb

            # Reading Parquet is built in: never fetch an extension from the network on a query's behalf.
            # A sort or a join bigger than the memory limit goes to a temporary folder: the rows of
            # a table exported in its row order (ws_frames of a 5M-packet capture, 2.2M rows) peaked
            # at 1.2 GiB without a limit, at 0.7 GiB with it, in 1.4x the time.
            self._spill_folder = tempfile.TemporaryDirectory(prefix="inspector-duckdb-")
            connection = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "memory_limit": DUCKDB_MEMORY_LIMIT,
                                                            "temp_directory": self._spill_folder.name})
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


def _non_decreasing(batches) -> bool:
    """Whether the rows of `batches` (Arrow record batches, columns without nulls) are in
    lexicographic order of their columns, ties allowed."""
    last = None
    for batch in batches:
        columns = [column.to_numpy(zero_copy_only=False) for column in batch.columns]
        if last is not None:
            columns = [np.concatenate([previous, column]) for previous, column in zip(last, columns)]
        if len(columns[0]) > 1:
            before = np.zeros(len(columns[0]) - 1, dtype=bool)  # row i < row i+1 on the columns so far
            tied = np.ones(len(columns[0]) - 1, dtype=bool)
            for column in columns:
                before |= tied & (column[:-1] < column[1:])
                tied &= column[:-1] == column[1:]
            if not (before | tied).all():
                return False
        last = [column[-1:] for column in columns]
    return True


def query_frame(arrow: pa.Table) -> pd.DataFrame:
    """A query result as pandas (here, and for readers that query several stores at once:
    dashboard.catalog): DuckDB's decimals (sum() of integers is one, as are literals such as
    2.5) become Int64 when whole and within int64, float64 otherwise, so that they are numbers."""
    for index, field in enumerate(arrow.schema):
        if pa.types.is_decimal(field.type):
            try:
                column = arrow.column(index).cast(pa.int64() if field.type.scale == 0 else pa.float64())
            except pa.ArrowInvalid:  # a whole number past int64
                column = arrow.column(index).cast(pa.float64(), safe=False)
            arrow = arrow.set_column(index, field.name, column)
    return arrow.to_pandas(types_mapper=_QUERY_TYPES.get)



def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _one_line(message: str) -> str:
    """DuckDB's message up to its first blank line (after it: the query again, with a caret), on one line."""
    head = message.strip().split("\n\n", 1)[0]
    return " ".join(head.split())
