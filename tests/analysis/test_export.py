"""Table exports: formulas defused in CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from inspector.analysis.export import FORMULA_START, defuse_formulas, export_tables
from inspector.analysis.tables import make_table

FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+2", "-2+3", "@SUM(A1)", "\tpadded", "\rcr"]


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as table:  # a bare CR inside a cell stays a CR
        return list(csv.DictReader(table))


def test_text_cells_starting_a_formula_get_an_apostrophe():
    frame = pd.DataFrame({
        "text": pd.array(FORMULAS + ["plain", None, "a=b"], dtype="str"),
        "number": np.array([-5, -1, 0, 1, 2, 3, 4, 5, -7], dtype="int64"),
        "nullable": pd.array([-1, None, 2, 3, 4, 5, 6, 7, -8], dtype="Int64"),
        "real": np.array([-0.5, 1.5, -2.5, 0, 0, 0, 0, 0, -1e9]),
        "flag": np.array([True, False] * 4 + [True]),
        "mixed": pd.Series([-3, "-3", None, 2.5, "=x", "ok", True, "@", "+"], dtype=object),
    })
    out = defuse_formulas(frame)
    assert list(out["text"][:6]) == ["'" + f for f in FORMULAS]
    assert list(out["text"][6:].fillna("<NA>")) == ["plain", "<NA>", "a=b"]
    # Numbers stay numbers, negative ones too; only text in a mixed column is touched.
    for column in ("number", "nullable", "real", "flag"):
        pd.testing.assert_series_equal(out[column], frame[column])
    assert list(out["mixed"]) == [-3, "'-3", None, 2.5, "'=x", "ok", True, "'@", "'+"]
    assert list(frame["text"][:1]) == [FORMULAS[0]]  # the caller's frame is left alone


def test_cli_csv_export_defuses_text_and_keeps_negative_numbers(tmp_path):
    findings = make_table("findings", [{"conn_id": i, "capture": f, "ts": -1.5, "direction": "client", "rule": "r", "detail": f}
                                       for i, f in enumerate(FORMULAS)])
    (path,) = export_tables({"findings": findings}, tmp_path, "csv")
    rows = csv_rows(path)
    assert [r["detail"] for r in rows] == ["'" + f for f in FORMULAS]
    assert [r["capture"] for r in rows] == ["'" + f for f in FORMULAS]
    assert {r["ts"] for r in rows} == {"-1.5"}  # a number: no apostrophe
    # Parquet and JSON are typed, not spreadsheet formulas: the text stays as it is.
    for fmt in ("parquet", "json"):
        (path,) = export_tables({"findings": findings}, tmp_path, fmt)
        back = pd.read_parquet(path) if fmt == "parquet" else pd.read_json(path)
        assert list(back["detail"]) == FORMULAS


def test_formula_start_is_the_one_rule():
    from dashboard import exports

    assert exports.defuse_formulas is defuse_formulas
    assert FORMULA_START == ("=", "+", "-", "@", "\t", "\r")
