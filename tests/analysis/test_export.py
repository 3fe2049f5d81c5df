"""Table exports: formulas defused in CSV, and all or nothing when interrupted."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.io.formats.csvs import CSVFormatter

from inspector.analysis.export import FORMULA_START, defuse_formulas, export_tables
from inspector.analysis.tables import make_table
from tests.conftest import REPO

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


# --- interrupted exports --------------------------------------------------------------------------


def big_table(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"frame_id": np.arange(rows), "payload_length": np.arange(rows) % 1400})


def test_interrupted_export_leaves_no_table_that_looks_complete(tmp_path, monkeypatch):
    """KeyboardInterrupt raised inside pandas' CSV writer after it wrote its first chunk."""
    earlier = export_tables({"connections": big_table(3), "ws_frames": big_table(5)}, tmp_path, "csv")
    before = {path.name: path.read_bytes() for path in earlier}
    written_when_interrupted = []
    save_chunk = CSVFormatter._save_chunk

    def interrupt_after_first_chunk(self, start, end):
        if start > 0:
            written_when_interrupted.extend(p.stat().st_size for p in tmp_path.glob(".ws_frames.csv.*.partial"))
            raise KeyboardInterrupt
        save_chunk(self, start, end)

    monkeypatch.setattr(CSVFormatter, "_save_chunk", interrupt_after_first_chunk)
    with pytest.raises(KeyboardInterrupt):
        export_tables({"connections": big_table(10), "ws_frames": big_table(200_000)}, tmp_path, "csv")
    assert written_when_interrupted and written_when_interrupted[0] > 0  # really cut in the middle
    # The earlier export is whole and untouched (connections.csv was written again, but not renamed).
    assert sorted(os.listdir(tmp_path)) == sorted(before)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before


def test_export_killed_by_sigint_leaves_nothing(tmp_path):
    """A real Ctrl-C (SIGINT) to a process writing a big table: no file stays behind."""
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        import numpy as np, pandas as pd
        from inspector.analysis.export import export_tables
        rows = 3_000_000
        big = pd.DataFrame({"frame_id": np.arange(rows), "payload_length": np.arange(rows) % 1400})
        export_tables({"captures": big.head(3), "ws_frames": big}, Path(sys.argv[1]), "csv")
    """)
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-c", script, str(out)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 0 for p in out.glob(".ws_frames.csv.*.partial")):
            assert child.poll() is None, f"the export ended before it could be interrupted: {child.stderr.read()}"
            assert time.monotonic() < deadline, "the export never started"
            time.sleep(0.005)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0 and "KeyboardInterrupt" in stderr
    assert os.listdir(out) == []
