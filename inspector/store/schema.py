"""The tables of inspector/analysis/tables.py as Arrow schemas, and back to pandas.

A store keeps each table as Parquet parts with exactly the Arrow schema made here from
tables.SCHEMAS, so that a table read back has the dtypes and the values the analysis
made: int64, float64 and bool stay non-nullable numpy columns, `Int64` and `boolean`
pandas' nullable ones, `str` pandas' Arrow-backed text (large_string is what it holds, so
writing it copies nothing).  A float NaN is written as null (pandas cannot tell the two
apart) and comes back as NaN; in SQL it is NULL, which aggregates skip as pandas does.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from inspector.analysis.tables import SCHEMAS

_ARROW_TYPES = {
    "int64": pa.int64(),
    "Int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "str": pa.large_string(),
}
# Columns that may hold nulls; the others are declared not nullable, so a part that
# breaks the schema is refused when written, not found out when read.
_NULLABLE = ("Int64", "boolean", "str", "float64")
_PANDAS_TYPES = {"Int64": pd.Int64Dtype(), "boolean": pd.BooleanDtype()}

ARROW_SCHEMAS: dict[str, pa.Schema] = {
    name: pa.schema([pa.field(column, _ARROW_TYPES[dtype], nullable=dtype in _NULLABLE) for column, dtype in schema.items()])
    for name, schema in SCHEMAS.items()
}

# The columns that give each table the row order of the analysis (see
# inspector.analysis.pipeline._merge_shards: conn_id, then the table's own ids and ts; rows
# that tie keep the order they were made in).  A table not listed is in the order its rows
# were written: one row per capture, per connection kind, per update.
ROW_ORDER: dict[str, tuple[str, ...]] = {
    "connections": ("conn_id",),
    "http_messages": ("conn_id", "exchange_id", "ts"),
    "ws_frames": ("conn_id", "frame_id", "message_id", "ts"),
    "ws_messages": ("conn_id", "message_id", "ts"),
    "sse_events": ("conn_id", "exchange_id", "item_id"),
    "tls_records": ("conn_id", "record_id", "ts"),
    "findings": ("conn_id", "ts"),
    "message_costs": ("conn_id",),
}


def to_arrow(name: str, frame: pd.DataFrame) -> pa.Table:
    """`frame`, a table named `name` with exactly its columns, as Arrow with the table's schema.

    Raises ValueError when a column is missing, extra or out of order, and Arrow's own
    errors when values do not fit (a null in a column that is not nullable)."""
    schema = ARROW_SCHEMAS[name]
    if list(frame.columns) != schema.names:
        raise ValueError(f"table {name}: columns {list(frame.columns)} are not the schema's {schema.names}")
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False).replace_schema_metadata(None)


def to_frame(name: str, table: pa.Table) -> pd.DataFrame:
    """Arrow columns of table `name` (as Parquet or DuckDB give them) as pandas, with exactly
    the dtypes of tables.SCHEMAS."""
    columns = {}
    for column, dtype in SCHEMAS[name].items():
        pandas_type = _PANDAS_TYPES.get(dtype)
        values = table[column].to_pandas(types_mapper=(lambda _type, pandas_type=pandas_type: pandas_type) if pandas_type else None)
        columns[column] = values.astype(dtype)
    return pd.DataFrame(columns, copy=False)
