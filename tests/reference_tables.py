"""Reference tables: today's analysis of every known capture, saved to compare against.

    PYTHONPATH=$PWD python tests/reference_tables.py

analyses (inspector.analysis.pipeline.analyze_captures, jobs=1) every capture of
three groups and writes each table of each capture (TABLE_NAMES: the
connection tables and captures, overhead, staleness) as
tests/reference/<group>/<capture>/<table>.parquet (zstd):

- captures: captures/*.pcap (with their recording sidecars);
- corpus: ../shared/corpus/* (skipped when that folder is absent: the group's
  saved tables are then left as they are);
- generated: captures the tests build from fixed inputs, every class of
  tests/hostile.py at its small scale and the conversations of
  tests/conversations.py, plain and in unlucky segmentations (GENERATED).

tests/analysis/test_reference_tables.py analyses them again and requires every
column of every table to be equal, exactly.  A reference that turns out to be
wrong is regenerated in a commit of its own that says why.

Normalised, because it is not a function of the capture's bytes: the folder
of the capture as given to analyze_captures is taken out of every text column
(the `capture` column of captures, connections, findings and staleness holds
the path; captures.warnings starts with it), of the warnings (saved too, as
WARNINGS: a sidecar's are in no table) and of an error, leaving the file
name.  Nothing else in the tables depends on the machine or the run (no
mtimes, no absolute times: `ts` columns come from the capture's own
timestamps); `check_deterministic` proves it for every capture by building
and analysing it again, from another folder.  One generated capture is made
bigger than its small scale for that reason (see GENERATED).

The dtypes are not left to Parquet: its footers would carry them (the Arrow
schema with pandas metadata) but take three quarters of the space, so each
capture's folder has DTYPES, and `load` reads the columns without a detour
through float64 or object (numpy_nullable) and casts them to the recorded
dtypes (str, int64, Int64, float64 with NaN, bool, boolean).  `save` reads
everything back and requires it equal to the tables, so a dtype or value that
did not round-trip would stop the regeneration.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pyarrow as pa
import pyarrow.parquet as pq

from inspector.analysis.pipeline import analyze_captures
from inspector.analysis.tables import TABLE_NAMES
from inspector.capture.files import capture_name
from inspector.errors import CaptureError
from inspector.parse.connection import ParserOptions
from tests import conversations, hostile
from tests.conftest import bundled_files, corpus_files

REFERENCE = Path(__file__).resolve().parent / "reference"
GROUPS = ("captures", "corpus", "generated")
DTYPES = "dtypes.json"  # per capture: {table: {column: pandas dtype}}
ERROR = "error.txt"  # instead of tables, for a capture analyze_captures refuses
WARNINGS = "warnings.txt"  # Analysis.warnings, one a line (some, such as a sidecar's, are in no table)


def _retransmitted(segments: conversations.Segments) -> conversations.Segments:
    """The turn's segments, then its first one again and one overlapping the first two."""
    (offset, first), *rest = segments
    overlap = [(offset + len(first) // 2, first[len(first) // 2:] + rest[0][1])] if rest else []
    return segments + [(offset, first)] + overlap


def _swapped(segments: conversations.Segments) -> conversations.Segments:
    """The turn's segments with each pair of neighbours swapped."""
    swapped = list(segments)
    for index in range(0, len(swapped) - 1, 2):
        swapped[index], swapped[index + 1] = swapped[index + 1], swapped[index]
    return swapped


def _conversation(name: str, size: int = hostile.ETHERNET_MSS, change: Callable | None = None, snaplen: int | None = None) -> Callable[[], hostile.HostileCapture]:
    def build() -> hostile.HostileCapture:
        turns = conversations.NAMED[name]()
        segments = [change(pieces) if change else pieces for pieces in conversations.in_segments(turns, size)]
        return hostile.HostileCapture(f"{name}.pcap", conversations.capture_of(turns, segments, snaplen=snaplen))
    return build


# Captures the tests generate, by reference folder name: every hostile class small, and the
# conversations in their plain segmentation and in unlucky ones.
GENERATED: dict[str, Callable[[], hostile.HostileCapture]] = {
    **{name: functools.partial(hostile.small, name) for name in hostile.CLASSES},
    # At its small scale (2,000 levels) whether the sidecar parses depends on the process's
    # recursion limit (1,000 by default, 3,000 under pytest): 20,000 levels are refused by both.
    "sidecar-deep-nesting": functools.partial(hostile.small, "sidecar-deep-nesting", 10),
    **{name: _conversation(name) for name in conversations.NAMED},
    "http-keepalive-in-7-byte-segments": _conversation("http-keepalive", 7),
    "http-keepalive-retransmitted": _conversation("http-keepalive", 100, _retransmitted),
    "http-keepalive-snaplen-96": _conversation("http-keepalive", 200, snaplen=96),
    "http-pipelined-in-1-byte-segments": _conversation("http-pipelined", 1),
    "ws-session-in-3-byte-segments": _conversation("ws-session", 3),
    "ws-session-retransmitted": _conversation("ws-session", 10, _retransmitted),
    "ws-session-reordered": _conversation("ws-session", 10, _swapped),
    "ws-deflate-reordered": _conversation("ws-deflate", 16, _swapped),
}


@dataclass(frozen=True)
class Reference:
    """One capture with saved tables: where they are and how to get the capture."""

    group: str
    name: str  # folder under tests/reference/<group>/
    source: Callable[[Path], Path | None]  # source(folder) -> the capture's path (None: not here)

    @property
    def folder(self) -> Path:
        return REFERENCE / self.group / self.name

    @property
    def id(self) -> str:
        return f"{self.group}/{self.name}"


def _at(path: Path | None) -> Callable[[Path], Path | None]:
    return lambda _scratch: path


def _written(build: Callable[[], hostile.HostileCapture]) -> Callable[[Path], Path]:
    return lambda scratch: build().write(scratch)


def _stem(path: Path) -> str:
    return path.name.split(".")[0]


def references() -> list[Reference]:
    """Every capture the reference covers: those here now, and corpus ones saved earlier."""
    corpus: dict[str, Path | None] = {}
    if (REFERENCE / "corpus").is_dir():
        corpus = {p.name: None for p in (REFERENCE / "corpus").iterdir() if p.is_dir()}
    corpus |= {_stem(p): p for p in corpus_files()}
    return ([Reference("captures", _stem(p), _at(p)) for p in bundled_files() if p.suffix == ".pcap"]
            + [Reference("corpus", name, _at(corpus[name])) for name in sorted(corpus)]
            + [Reference("generated", name, _written(build)) for name, build in GENERATED.items()])


def analyze(path: Path, jobs: int = 1, options: ParserOptions | None = None) -> tuple[dict[str, pd.DataFrame], str]:
    """Every table of the capture at `path` and its warnings (one a line), normalised (see
    the module's docstring)."""
    analysis = analyze_captures([path], options, jobs=jobs)
    assert set(analysis.tables) == set(TABLE_NAMES), sorted(analysis.tables)
    folder = capture_name(path.parent / "x")[:-1]  # the folder as it appears in a path, with its separator
    tables = {name: _without_folder(analysis.tables[name], folder) for name in TABLE_NAMES}
    return tables, "".join(warning.replace(folder, "") + "\n" for warning in analysis.warnings)


def _without_folder(table: pd.DataFrame, folder: str) -> pd.DataFrame:
    """`table` without the capture's folder in any text column."""
    table = table.copy()
    for column in table.columns:
        if pd.api.types.is_string_dtype(table[column].dtype):
            table[column] = table[column].str.replace(folder, "", regex=False)
    return table


def load(folder: Path) -> dict[str, pd.DataFrame]:
    """The saved tables of one capture, with the dtypes DTYPES recorded."""
    dtypes = json.loads((folder / DTYPES).read_text())
    tables = {}
    for name in TABLE_NAMES:
        # numpy_nullable reads every column without a detour through float64 or object;
        # astype then gives it back its recorded dtype.
        table = pd.read_parquet(folder / f"{name}.parquet", dtype_backend="numpy_nullable")
        assert list(table.columns) == list(dtypes[name]), f"{folder}/{name}: columns and {DTYPES} differ"
        tables[name] = table.astype(dtypes[name])
    return tables


def save(tables: dict[str, pd.DataFrame], warnings: str, folder: Path) -> None:
    """Write each table, DTYPES and WARNINGS, then read the tables back: they must come back equal."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / WARNINGS).write_text(warnings)
    for name, table in tables.items():
        # Without the Arrow schema and statistics in each footer a capture's nine files
        # take a quarter of the space; the dtypes go to DTYPES instead.
        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), folder / f"{name}.parquet", compression="zstd",
                       compression_level=19, use_dictionary=False, store_schema=False, write_statistics=False)
    dtypes = {name: {column: str(dtype) for column, dtype in table.dtypes.items()} for name, table in tables.items()}
    (folder / DTYPES).write_text(json.dumps(dtypes, indent=0) + "\n")
    assert_tables_equal(load(folder), tables, f"{folder.name} read back")


def save_error(error: CaptureError, path: Path, folder: Path) -> None:
    """A capture analyze_captures refuses: the message it gives (its path normalised)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / ERROR).write_text(error_text(error, path))


def error_text(error: CaptureError, path: Path) -> str:
    return str(error).replace(capture_name(path.parent / "x")[:-1], "") + "\n"


def assert_tables_equal(actual: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame], label: str) -> None:
    """Every table, column, dtype, row and value the same, in the same order."""
    assert list(actual) == list(expected)
    for name in expected:
        _assert_same_values(actual[name], expected[name], f"{label} {name}")
        pdt.assert_frame_equal(actual[name], expected[name], check_exact=True, obj=f"{label} {name}")


def _assert_same_values(actual: pd.DataFrame, expected: pd.DataFrame, label: str) -> None:
    """The differing cells, shown first when the shapes agree: assert_frame_equal prints whole columns."""
    if actual.shape != expected.shape or list(actual.columns) != list(expected.columns):
        return
    try:
        differences = actual.compare(expected, result_names=("now", "saved"))
    except (TypeError, ValueError):  # dtypes that cannot be compared: assert_frame_equal says which
        return
    assert differences.empty, f"{label}: {len(differences)} rows differ, the first:\n{differences.head(8).to_string()}"


def check_deterministic(reference: Reference, tables: dict[str, pd.DataFrame], warnings: str) -> None:
    """The same tables again from a copy of the capture in another folder."""
    with tempfile.TemporaryDirectory() as scratch:
        path = reference.source(Path(scratch))
        copy = Path(scratch) / "copy"
        copy.mkdir()
        for related in path.parent.iterdir():  # not glob: generated names hold [ and ]
            if related.is_file() and _stem(related) == _stem(path):
                shutil.copy(related, copy / related.name)
        again, warned = analyze(copy / path.name)
        assert_tables_equal(again, tables, f"{reference.id} from another folder")
        assert warned == warnings


def regenerate() -> Iterator[tuple[Reference, int]]:
    """Write the tables of every reference whose capture is here; yield each and its size."""
    for reference in references():
        with tempfile.TemporaryDirectory() as scratch:
            path = reference.source(Path(scratch))
            if path is None:
                continue
            try:
                tables, warnings = analyze(path)
            except CaptureError as error:
                save_error(error, path, reference.folder)
            else:
                check_deterministic(reference, tables, warnings)
                save(tables, warnings, reference.folder)
        yield reference, sum(f.stat().st_size for f in reference.folder.iterdir())


def main() -> int:
    kept = {reference.folder for reference in references()}
    for group in GROUPS:
        for stale in sorted((REFERENCE / group).glob("*")) if (REFERENCE / group).is_dir() else []:
            if stale not in kept:
                shutil.rmtree(stale)
                print(f"removed {stale.relative_to(REFERENCE)} (no capture of that name any more)")
    total = count = 0
    for reference, size in regenerate():
        total, count = total + size, count + 1
        print(f"{size:>9,}  {reference.id}")
    print(f"{total:>9,}  bytes in {count} captures' tables under {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
