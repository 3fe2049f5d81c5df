"""Write tables to CSV, Parquet or JSON, one file per table named after it.

A table is written chunk by chunk (frames of its rows, in order: `export_chunks`), so a
table read from a store in batches never has to be in memory whole; a whole in-memory table
is written as its slices of EXPORT_CHUNK_ROWS rows (`export_tables`), and either way the file
is the same, byte for byte: each format's cells are formatted one by one (CSV, JSON), and
a Parquet file has one row group per chunk of EXPORT_CHUNK_ROWS rows.

All or nothing: every table is written under a temporary name in the export folder
(`.NAME.FMT.PID.partial`) and renamed to its name only once all of them are written,
so an export interrupted by Ctrl-C, a full disk or a crash leaves no file that looks
like a complete table, and an earlier export in the same folder is not half replaced.

CSV cells are meant for spreadsheets, which run a cell starting with = + - @ (or a tab
or a CR) as a formula; text cells come from captured traffic, so those get a leading
apostrophe (`defuse_formulas`, the one rule for the CLI's and the dashboard's CSV).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path

import pandas as pd

from inspector.errors import InspectorError

# What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Rows of a table written at a time, and of a Parquet row group: a chunk of the widest table
# (ws_frames, with its text and hex previews) is some tens of MiB as pandas and as Arrow.
EXPORT_CHUNK_ROWS = 1 << 17
# pandas' DataFrame.to_parquet default, written out: the streamed writer must use the same.
PARQUET_COMPRESSION = "snappy"


def export_tables(tables: Mapping[str, pd.DataFrame], directory: Path, fmt: str) -> list[Path]:
    """Each in-memory table to DIRECTORY/NAME.FMT, all or nothing; return the files written."""
    return export_chunks({name: table_chunks(table) for name, table in tables.items()}, directory, fmt)


def export_chunks(tables: Mapping[str, Iterable[pd.DataFrame]], directory: Path, fmt: str) -> list[Path]:
    """Each table, given as its chunks, to DIRECTORY/NAME.FMT, all or nothing; return the files written.

    A table's chunks are frames with its columns and dtypes, in row order: at least one (empty
    for an empty table, it still gives the columns), and for Parquet EXPORT_CHUNK_ROWS rows
    each but the last (one row group each).  They are drawn one at a time, as the table is written."""
    return write_files({f"{name}.{fmt}": partial(WRITERS[fmt], chunks) for name, chunks in tables.items()}, directory)


def write_files(writers: Mapping[str, Callable[[Path], None]], directory: Path) -> list[Path]:
    """Each file NAME to DIRECTORY/NAME by its writer (given the path to write), all or nothing:
    written as `.NAME.PID.partial` each, and all renamed to their names once every one is written;
    return the files written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InspectorError(f"{directory}: cannot create export folder: {exc.strerror}") from None
    # (temporary name, name) of every file written so far; the temporary ones go on failure.
    written: list[tuple[Path, Path]] = []
    try:
        for name, write in writers.items():
            path = directory / name
            written.append((directory / f".{path.name}.{os.getpid()}.partial", path))
            _write_or_say_why(write, written[-1][0], path)
        for partial_path, path in written:
            try:
                os.replace(partial_path, path)
            except OSError as exc:
                raise InspectorError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:  # KeyboardInterrupt too: nothing half-written stays behind
        for partial_path, _path in written:
            partial_path.unlink(missing_ok=True)
        raise
    return [path for _partial, path in written]


def table_chunks(table: pd.DataFrame, rows: int = EXPORT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """`table` as the chunks export_chunks takes: slices of `rows` rows, the first one even if empty."""
    yield table.iloc[:rows]
    for start in range(rows, len(table), rows):
        yield table.iloc[start:start + rows]


def export_table(table: pd.DataFrame, path: Path, fmt: str) -> None:
    """One table to one file, all or nothing as export_tables (`.NAME.PID.partial`, then renamed).

    Written as one chunk: a query's result (`inspector query -o`) may have columns of Python
    objects, whose Arrow type a slice of them would not tell."""
    partial_path = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        _write_or_say_why(partial(WRITERS[fmt], [table]), partial_path, path)
        try:
            os.replace(partial_path, path)
        except OSError as exc:
            raise InspectorError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        partial_path.unlink(missing_ok=True)
        raise


def _write_or_say_why(write: Callable[[Path], None], partial_path: Path, path: Path) -> None:
    try:
        write(partial_path)
    except OSError as exc:
        raise InspectorError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _write_csv(chunks: Iterable[pd.DataFrame], path: Path) -> None:
    """The header, then each chunk's rows; cells as pandas writes them, one by one."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        for index, chunk in enumerate(chunks):
            # Booleans as true/false, as the table schema promises.
            chunk = chunk.copy(deep=False)
            for column in chunk.columns:
                if str(chunk[column].dtype) in ("bool", "boolean"):
                    chunk[column] = chunk[column].map({True: "true", False: "false"})
            # CRLF line ends (RFC 4180) also make the csv module quote fields
            # holding a bare CR, which payload previews can; with "\n" it would not.
            defuse_formulas(chunk).to_csv(out, index=False, header=index == 0, lineterminator="\r\n")


def _write_parquet(chunks: Iterable[pd.DataFrame], path: Path) -> None:
    """A row group per chunk, with the schema (and pandas metadata) DataFrame.to_parquet gives;
    pandas' metadata depends only on the columns' dtypes, the same in every chunk.  Each column is
    made one Arrow array first: Parquet's writer cuts pages where an array's chunks end, so the
    bytes would otherwise depend on how the rows came in batches (from DuckDB, or an analysis)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for chunk in chunks:
            arrow = pa.Table.from_pandas(chunk, preserve_index=False).combine_chunks()
            if writer is None:
                writer = pq.ParquetWriter(path, arrow.schema, compression=PARQUET_COMPRESSION)
            writer.write_table(arrow, row_group_size=EXPORT_CHUNK_ROWS)
    finally:
        if writer is not None:
            writer.close()


def _write_json(chunks: Iterable[pd.DataFrame], path: Path) -> None:
    """One array of records, [{...},{...}], as DataFrame.to_json(orient="records") writes a whole
    table: each chunk's records without its brackets, joined by commas."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("[")
        separator = ""
        for chunk in chunks:
            if len(chunk):
                out.write(separator + chunk.to_json(orient="records", lines=False, indent=None)[1:-1])
                separator = ","
        out.write("]")


WRITERS = {"csv": _write_csv, "parquet": _write_parquet, "json": _write_json}


def defuse_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with an apostrophe before every text cell that starts like a formula.

    Only text is touched: numeric and boolean columns, and numbers in a column of mixed
    values, stay as they are, so the number -5 is still written -5 (a number to the
    spreadsheet, not a formula), while the text "-5" or "=1+1" becomes "'-5", "'=1+1",
    which a spreadsheet shows as the text -5 and =1+1."""
    out = frame.copy(deep=False)
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        if pd.api.types.is_string_dtype(values):
            risky = values.str.startswith(FORMULA_START).fillna(False).astype(bool)
        else:  # object: text next to numbers, None, ...
            risky = values.map(lambda value: isinstance(value, str) and value.startswith(FORMULA_START)).astype(bool)
        if risky.any():
            out[column] = values.mask(risky, "'" + values[risky].astype(str))
    return out
