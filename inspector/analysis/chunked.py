"""A table held as chunks, put together once.

A worker's sinks hold each table as DataFrame chunks of a few thousand rows
(`sinks.TableSink`); the table is made from the chunks of every worker only at
the end, with its connection ids renumbered and its rows in order.  Each
column is written once, straight into its final place, and the chunks' copy
of it is let go as soon as it is: concatenating the chunks and then sorting
wrote the numbers twice, and held every chunk until the end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pandas.core.arrays.masked import BaseMaskedArray

from inspector.analysis.tables import make_table


def assemble_table(name: str, chunks: list[pd.DataFrame], conn_ids: Sequence[np.ndarray] | None = None,
                   order: Sequence[str] = ()) -> pd.DataFrame:
    """The rows of `chunks`, in order, as one table (`chunks` is emptied).

    conn_ids: per chunk, the new id of each connection id it holds (the chunk's
        conn_id column is an index into it).
    order: columns to sort the rows by (stable: ties keep the chunks' order),
        as `DataFrame.sort_values(order, kind="stable")` does.
    """
    ids = list(conn_ids) if conn_ids is not None else [None] * len(chunks)
    held = [(_columns(chunk), chunk_ids) for chunk, chunk_ids in zip(chunks, ids) if len(chunk)]
    chunks.clear()  # the chunks live on only in `held`, one column at a time
    if not held:
        return make_table(name)
    columns = list(held[0][0])
    parts = []
    for values, chunk_ids in held:
        if chunk_ids is not None:
            values["conn_id"] = _renumbered(values["conn_id"], chunk_ids)
        parts.append(values)
    del held
    rows = _sorted_rows(parts, order)
    destination = None
    if rows is not None:
        destination = np.empty(len(rows), dtype=np.intp)
        destination[rows] = np.arange(len(rows))
    table = {}
    for column in columns:
        table[column] = _gather([values.pop(column) for values in parts], rows, destination)
    return pd.DataFrame(table, copy=False)


def _renumbered(conn_ids, new_ids: np.ndarray):
    """A chunk's conn_id column with each id replaced by new_ids[id]; a nullable column stays
    one (findings: a missing id stays missing)."""
    if isinstance(conn_ids, BaseMaskedArray):
        return type(conn_ids)(new_ids[np.where(conn_ids._mask, 0, conn_ids._data)], conn_ids._mask)
    return new_ids[conn_ids]


def _columns(chunk: pd.DataFrame) -> dict[str, object]:
    """A chunk's columns as arrays (numpy or pandas extension arrays)."""
    return {column: values.array if isinstance(values.dtype, pd.api.extensions.ExtensionDtype) else values.to_numpy()
            for column, values in chunk.items()}


def _sorted_rows(parts: list[dict], order: Sequence[str]) -> np.ndarray | None:
    """The rows (counted across the parts) in table order; None when they are in order."""
    if not order:
        return None
    keys = pd.DataFrame({column: _concat([values[column] for values in parts]) for column in order}, copy=False)
    if _in_order(keys, order):
        return None
    return keys.sort_values(list(order), kind="stable").index.to_numpy()


def _in_order(table: pd.DataFrame, columns: Sequence[str]) -> bool:
    """Whether the rows are sorted by `columns` already (False when unsure)."""
    tied = np.ones(max(len(table) - 1, 0), dtype=bool)  # pairs of rows equal so far
    for column in columns:
        if not tied.any():
            return True
        series = table[column]
        if series.dtype.kind not in "iuf" or series.hasnans:
            return False  # let the sort decide where missing values go
        values = series.to_numpy(dtype=np.float64 if series.dtype.kind == "f" else np.int64)
        if (tied & (values[:-1] > values[1:])).any():
            return False
        tied &= values[:-1] == values[1:]
    return True  # rows still tied keep their order in a stable sort too


def _concat(parts: list):
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return type(parts[0])._concat_same_type(parts)


def _gather(parts: list, rows: np.ndarray | None, destination: np.ndarray | None):
    """One column from its parts: the table's row i is row rows[i] of the parts, and
    row j of the parts goes to destination[j] (both None: the rows stay in turn)."""
    if rows is None:
        return _concat(parts)
    first = parts[0]
    if isinstance(first, np.ndarray):
        return _scatter(parts, destination, first.dtype)
    if isinstance(first, BaseMaskedArray):  # Int64, boolean: values and mask
        return type(first)(_scatter([part._data for part in parts], destination, first._data.dtype),
                           _scatter([part._mask for part in parts], destination, np.bool_))
    # Text (Arrow): Arrow takes from the chunks in one pass.
    return _concat(parts).take(rows)


def _scatter(parts: list[np.ndarray], destination: np.ndarray, dtype) -> np.ndarray:
    out = np.empty(len(destination), dtype=dtype)
    start = 0
    for part in parts:
        out[destination[start:start + len(part)]] = part
        start += len(part)
    return out
