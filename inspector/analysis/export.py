"""Write tables to CSV, Parquet or JSON, one file per table named after it.

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
from pathlib import Path

import pandas as pd

from inspector.errors import InspectorError

# What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_tables(tables: dict[str, pd.DataFrame], directory: Path, fmt: str) -> list[Path]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InspectorError(f"{directory}: cannot create export folder: {exc.strerror}") from None
    # (temporary name, name) of every table written so far; the temporary ones go on failure.
    written: list[tuple[Path, Path]] = []
    try:
        for name, table in tables.items():
            path = directory / f"{name}.{fmt}"
            written.append((directory / f".{path.name}.{os.getpid()}.partial", path))
            _write_or_say_why(table, written[-1][0], path, fmt)
        for partial, path in written:
            try:
                os.replace(partial, path)
            except OSError as exc:
                raise InspectorError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:  # KeyboardInterrupt too: nothing half-written stays behind
        for partial, _path in written:
            partial.unlink(missing_ok=True)
        raise
    return [path for _partial, path in written]


def export_table(table: pd.DataFrame, path: Path, fmt: str) -> None:
    """One table to one file, all or nothing as export_tables (`.NAME.PID.partial`, then renamed)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        _write_or_say_why(table, partial, path, fmt)
        try:
            os.replace(partial, path)
        except OSError as exc:
            raise InspectorError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _write_or_say_why(table: pd.DataFrame, partial: Path, path: Path, fmt: str) -> None:
    try:
        _write(table, partial, fmt)
    except OSError as exc:
        raise InspectorError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _write(table: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        # Booleans as true/false, as the table schema promises.
        out = table.copy()
        for column in out.columns:
            if str(out[column].dtype) in ("bool", "boolean"):
                out[column] = out[column].map({True: "true", False: "false"})
        # CRLF line ends (RFC 4180) also make the csv module quote fields
        # holding a bare CR, which payload previews can; with "\n" it would not.
        defuse_formulas(out).to_csv(path, index=False, lineterminator="\r\n")
    elif fmt == "parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_json(path, orient="records", lines=False, indent=None)


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
