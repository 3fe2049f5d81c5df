"""Column sinks: the rows of one table, written column by column as events come.

A worker has one sink per table, shared by all of its connections.  A sink
holds its columns (see `Column`): integers, nanosecond timestamps (the
`float64` seconds are computed when the chunk is made), nullable integers and
booleans (MISSING for a missing value), codes of short, repeated strings
(direction, item, ...: the labels are looked up per chunk) and text.  Number
columns of a big table are `packed`: a row's numbers are written with one
`struct` call into one bytearray, which becomes every column at once per
chunk (`np.frombuffer`), instead of one list append per column and a Python
int per value.  Other columns are lists, and a sink may hold columns of its
own that are not in the table (e.g. the bytes a text is made of) for `derived`
columns computed per chunk.  Every `chunk_rows` rows the columns become one
DataFrame chunk with exactly the table's dtypes (`tables.SCHEMAS`), or for a
streamed table one Arrow record batch of them (`arrow`), and are emptied in
place, so the bound methods writers hold stay valid.  What a sink
holds is bounded by its chunk, but for the values set after their row left in
a chunk (`late` columns: a ws_frames row's message_id, known when its message
completes), which it keeps until the table is assembled.

A writer adds `sink.pack(...)` of the packed values (in `packed` order) to
`sink.rows` and appends one value to every column of `sink.appends` (written
order, packed columns left out); its owner checks `full()` now and then and
calls `flush()`.  A table whose rows come in blocks that are already arrays
(a connection's message_costs rows) is written a block at a time instead
(`write_block`): the arrays' bytes are added, the columns made per chunk.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Sequence
from operator import methodcaller

import numpy as np
import pandas as pd
import pyarrow as pa

from inspector.analysis.chunked import assemble_table
from inspector.analysis.tables import SCHEMAS

# The value a nullable integer column stores for a missing one (sizes, ids and
# status or close codes are never negative).
MISSING = -1
NS = 1e-9


def provisional(row: int) -> int:
    """What a `late` column holds for `row` until its value is set (below MISSING: never a value)."""
    return -2 - row


def resolve_late(values: np.ndarray, rows: np.ndarray, late: np.ndarray) -> np.ndarray:
    """`values` of a late column with each provisional value replaced by the value set for its
    row (`late[i]` for `rows[i]`, rows sorted), MISSING when none was."""
    waiting = values < MISSING
    if not waiting.any():
        return values
    row = provisional(0) - values[waiting]  # provisional() undone
    at = np.searchsorted(rows, row)
    found = at < len(rows)
    found[found] = rows[at[found]] == row[found]
    resolved = np.full(len(row), MISSING, np.int64)
    resolved[found] = late[at[found]]
    values = values.copy()
    values[waiting] = resolved
    return values


class Column:
    """How one column is held while rows are written, and how it becomes the table's array.

    Rows are held in lists: appending to a list costs a third of appending a big
    integer to an `array('q')`, and numpy converts the list in C when the chunk
    is made.  Packed columns are written as their `struct` format code (`code`).
    """

    code = "q"

    def new(self):
        return []

    def build(self, values):
        raise NotImplementedError


def _numbers(values, dtype) -> np.ndarray:
    if isinstance(values, np.ndarray):  # a packed column
        return np.ascontiguousarray(values, dtype=dtype)
    return np.fromiter(values, dtype=dtype, count=len(values))


class Ints(Column):
    def build(self, values):
        return _numbers(values, np.int64)


class Floats(Column):
    code = "d"

    def build(self, values):
        return _numbers(values, np.float64)


class Seconds(Column):
    """Integer nanoseconds written, float seconds built (`ns * 1e-9`, as Python computes it)."""

    def build(self, values):
        return _numbers(values, np.int64) * NS


class Bools(Column):
    code = "?"

    def build(self, values):
        return _numbers(values, np.bool_)


class NullableInts(Column):
    """pandas' `Int64`: MISSING stands for a missing value."""

    def build(self, values):
        data = _numbers(values, np.int64)
        return pd.arrays.IntegerArray(data, data == MISSING)


class NullableBools(Column):
    """pandas' `boolean`: 1 true, 0 false, MISSING missing."""

    code = "b"

    def build(self, values):
        data = _numbers(values, np.int8)
        return pd.arrays.BooleanArray(data == 1, data == MISSING)


class Texts(Column):
    """The `str` dtype (Arrow-backed); None stands for a missing value."""

    code = None

    def build(self, values):
        return text_array(pa.array(values, pa.large_string()))


class Held(Column):
    """Values a sink holds for its derived columns (not a column of the table), in a
    `container`: a list unless told (e.g. a bytearray, an array); the chunk empties it
    with `del values[:]`."""

    code = None

    def __init__(self, container: Callable[[], object] = list) -> None:
        self.container = container

    def new(self):
        return self.container()

    def build(self, values):
        return values


class Hex(Column):
    """The `str` dtype, written as bytes and shown as hex (`.hex(*args)`, e.g. a separator)."""

    code = None

    def __init__(self, *args: str) -> None:
        self.hex = methodcaller("hex", *args)

    def build(self, values):
        return text_array(pa.array(list(map(self.hex, values)), pa.large_string()))


class Codes(Column):
    """A short, repeated string written as its index in `labels`."""

    code = "b"

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = pa.array(labels, pa.large_string())

    def build(self, values):
        return coded_text(_numbers(values, np.int8), self.labels)


def text_array(values: pa.Array) -> pd.api.extensions.ExtensionArray:
    return pd.array(values, dtype="str")


def coded_text(codes: np.ndarray, labels: pa.Array) -> pd.api.extensions.ExtensionArray:
    """The `str` column whose row i is labels[codes[i]]."""
    return text_array(labels.take(pa.array(codes)))


# A column computed when a chunk is made: f(built columns, held values).
Derived = Callable[[dict, dict], object]

_BY_DTYPE = {"int64": Ints(), "float64": Floats(), "bool": Bools(), "Int64": NullableInts(), "boolean": NullableBools(), "str": Texts()}


def columns_of(name: str, exclude: Sequence[str] = (), **kinds: Column) -> dict[str, Column]:
    """How a table's columns are written: by their dtype, unless named in `kinds`."""
    return {column: kinds.get(column) or _BY_DTYPE[dtype] for column, dtype in SCHEMAS[name].items() if column not in exclude}


def numbers_of(columns: dict[str, Column]) -> tuple[str, ...]:
    """The columns that can be `packed` (all but texts and held values)."""
    return tuple(column for column, kind in columns.items() if kind.code is not None)


_NUMPY_CODES = {"q": "<i8", "d": "<f8", "?": "?", "b": "i1"}


class TableSink:
    """The rows of one table: written columns, derived columns, and the chunks made so far.

    written: the columns rows are written to, in schema order (`appends` follows it);
        columns not in the table (`Held`) are only held for derived ones.
    packed: written number columns whose values a row writes with one `sink.pack(...)`
        call (in this order) added to `sink.rows`.
    derived: columns computed per chunk from the written ones: f(built, held), where
        `built` has the chunk's built columns and `held` the values as written
        (packed ones as arrays).
    late: written columns whose value may be set after its row was written: a row
        is written with `provisional(row)` and its value set with `set_late`; one set
        after the row left in a chunk is kept aside (`late_values`) and put in when
        the table is assembled (`take_chunks`, or by whoever assembles the chunks
        taken with `take_made_chunks`: `resolve_late`).
    keep: optional f(built, held) giving the rows of a chunk to keep (a boolean
        array); not with `late` columns.
    chunk_rows: rows held before they become a chunk.
    blocks: for a table written a block of rows at a time (`write_block`), and only
        so: groups of written columns, each (its columns, the `array` typecode of their
        values); a block gives each group as one buffer of its rows' values, row by
        row (an `array` of records of the group's columns, or of one column's values).
        The other written columns have one value per block (the same for all its rows).
    arrow: chunks are Arrow record batches, not DataFrames: the columns as
        pyarrow.Table.from_pandas makes them of the DataFrame's (a float NaN is null), for
        a streamed table (`take_made_chunks`), whose chunks go to disk as Arrow.
    """

    def __init__(self, name: str, written: dict[str, Column], derived: dict[str, Derived] | None = None,
                 late: Sequence[str] = (), keep: Callable[[dict, dict], np.ndarray] | None = None,
                 chunk_rows: int = 16_384, packed: Sequence[str] = (), blocks: Sequence[tuple[Sequence[str], str]] = (),
                 arrow: bool = False) -> None:
        self.name = name
        self.schema = SCHEMAS[name]
        self.written = written
        self.derived = derived or {}
        assert set(self.schema) <= set(written) | set(self.derived), name
        self.late = tuple(late)
        # By late column: row -> value, for rows set after they left in a chunk.
        self.late_values: dict[str, dict[int, int]] = {column: {} for column in self.late}
        self.packed = tuple(packed)
        assert not set(self.packed) & set(self.late), "a late value is set in its column"
        codes = [written[column].code for column in self.packed]
        self.pack = struct.Struct("<" + "".join(codes)).pack
        self.row_dtype = np.dtype([(column, _NUMPY_CODES[code]) for column, code in zip(self.packed, codes)])
        self.rows = bytearray()  # packed rows, `row_dtype.itemsize` bytes each
        self.blocks = tuple((tuple(columns), typecode) for columns, typecode in blocks)
        assert not (self.blocks and (self.packed or late)), "a table is written by blocks or by rows"
        in_blocks = {column for columns, _typecode in self.blocks for column in columns}
        self._block_buffers = [bytearray() for _group in self.blocks]
        self._block_rows = array("q")  # rows of each block held
        self._held_block_rows = 0
        # Columns written a value per row, or per block (the columns outside the groups).
        self.values = {column: kind.new() for column, kind in written.items()
                       if column not in self.packed and column not in in_blocks}
        self.appends = tuple(values.append for values in self.values.values())
        self.keep = keep
        assert not (late and keep), "rows of a table with late columns are never dropped"
        self.chunk_rows = chunk_rows
        self.arrow = arrow
        self._first = next(iter(self.values.values())) if not (self.packed or self.blocks) else None
        self.flushed_rows = 0
        self.chunks: list[pd.DataFrame | pa.RecordBatch] = []

    def __len__(self) -> int:
        """Rows written so far (the next row's index)."""
        return self.flushed_rows + self.held_rows()

    def column(self, name: str):
        """The held values of a column (emptied in place when a chunk is made)."""
        return self.values[name]

    def set_late(self, column: str, row: int, value: int) -> None:
        """Set the value of `row` (written with `provisional(row)`) in a late column."""
        index = row - self.flushed_rows
        if index >= 0:
            self.values[column][index] = value
        else:
            self.late_values[column][row] = value

    def take_late_values(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """By late column, the rows set after they left in a chunk (sorted) and their values
        (for `resolve_late`); they are emptied."""
        taken = {}
        for column, values in self.late_values.items():
            rows = np.fromiter(values, np.int64, len(values))
            order = np.argsort(rows)
            taken[column] = (rows[order], np.fromiter(values.values(), np.int64, len(values))[order])
            values.clear()
        return taken

    def append_row(self, row: dict) -> None:
        """Write one row given by column (for tables with few rows: it costs a dict)."""
        if self.packed:
            self.rows += self.pack(*[row[column] for column in self.packed])
        for append, column in zip(self.appends, self.values):
            append(row[column])

    def write_block(self, rows: int, per_block: Sequence, *groups) -> None:
        """Write `rows` rows at once: the values of the columns outside `blocks` (in
        written order), then a buffer per group of `blocks` (in their order) with the
        rows' values of its columns, row by row."""
        self._block_rows.append(rows)
        self._held_block_rows += rows
        for append, value in zip(self.appends, per_block):
            append(value)
        for buffer, values in zip(self._block_buffers, groups):
            buffer += values

    def held_rows(self) -> int:
        """Rows written but not made into a chunk yet."""
        if self.blocks:
            return self._held_block_rows
        if self._first is None:
            return len(self.rows) // self.row_dtype.itemsize
        return len(self._first)

    def full(self) -> bool:
        return self.held_rows() >= self.chunk_rows

    def flush(self) -> None:
        """Make the rows held into a chunk."""
        rows = self.held_rows()
        if not rows:
            return
        held = dict(self.values)
        if self.packed:
            packed = np.frombuffer(bytes(self.rows), self.row_dtype)
            held.update((column, packed[column]) for column in self.packed)
        if self.blocks:
            held.update(self._held_blocks())
        built = {column: self.written[column].build(values) for column, values in held.items()}
        for column, derive in self.derived.items():
            built[column] = derive(built, held)
        chunk = self._chunk(built)
        if self.keep is not None:
            kept = self.keep(built, held)
            if not kept.all():
                chunk = chunk.filter(pa.array(kept)) if self.arrow else chunk[kept].reset_index(drop=True)
        for values in self.values.values():
            del values[:]  # in place: the bound appends stay valid
        del self.rows[:]
        del self._block_rows[:]
        self._held_block_rows = 0
        self.chunks.append(chunk)
        self.flushed_rows += rows

    def _chunk(self, built: dict) -> pd.DataFrame | pa.RecordBatch:
        """The table's columns of a chunk as a DataFrame, or as a record batch (`arrow`: made
        from the built arrays directly; a DataFrame first costs more than the batch)."""
        if self.arrow:
            return pa.RecordBatch.from_arrays([pa.array(built[column], from_pandas=True) for column in self.schema], names=list(self.schema))
        return pd.DataFrame({column: built[column] for column in self.schema}, copy=False)

    def _held_blocks(self) -> dict[str, np.ndarray]:
        """The held blocks' columns (the buffers are handed over: the arrays are views)."""
        rows_per_block = np.frombuffer(self._block_rows, np.int64).copy()
        held = {column: np.repeat(np.array(values), rows_per_block) for column, values in self.values.items()}
        for (columns, typecode), buffer in zip(self.blocks, self._block_buffers):
            records = np.frombuffer(buffer, typecode).reshape(-1, len(columns))
            held.update((column, records[:, field]) for field, column in enumerate(columns))
        self._block_buffers = [bytearray() for _group in self.blocks]
        return held

    def take_chunks(self) -> list[pd.DataFrame]:
        """All rows as chunks with every column of the table, late values put in (the sink is
        empty afterwards)."""
        self.flush()
        chunks, self.chunks = self.chunks, []
        for column, (rows, values) in self.take_late_values().items():
            for chunk in chunks:
                held = chunk[column].to_numpy(np.int64, na_value=MISSING)
                resolved = resolve_late(held, rows, values)
                if resolved is not held:
                    chunk[column] = self.written[column].build(resolved)
        self.flushed_rows = 0
        return chunks

    def take_made_chunks(self) -> list[pd.DataFrame | pa.RecordBatch]:
        """The chunks made so far, late columns as they were then (see `take_late_values`); the
        rows held go on, so rows keep their indices (a streamed table)."""
        chunks, self.chunks = self.chunks, []
        return chunks

    def table(self) -> pd.DataFrame:
        """All rows as one DataFrame (the sink is empty afterwards)."""
        return assemble_table(self.name, self.take_chunks())
