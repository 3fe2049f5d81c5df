"""Write tables to CSV, Parquet or JSON, one file per table named after it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from inspector.errors import InspectorError


def export_tables(tables: dict[str, pd.DataFrame], directory: Path, fmt: str) -> list[Path]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InspectorError(f"{directory}: cannot create export folder: {exc.strerror}") from None
    written = []
    for name, table in tables.items():
        path = directory / f"{name}.{fmt}"
        try:
            _write(table, path, fmt)
        except OSError as exc:
            raise InspectorError(f"{path}: cannot write: {exc.strerror}") from None
        written.append(path)
    return written


def _write(table: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        # Booleans as true/false, as the table schema promises.
        out = table.copy()
        for column in out.columns:
            if str(out[column].dtype) in ("bool", "boolean"):
                out[column] = out[column].map({True: "true", False: "false"})
        # CRLF line ends (RFC 4180) also make the csv module quote fields
        # holding a bare CR, which payload previews can; with "\n" it would not.
        out.to_csv(path, index=False, lineterminator="\r\n")
    elif fmt == "parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_json(path, orient="records", lines=False, indent=None)
