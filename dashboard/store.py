"""TableStore: the analysis tables the pages read, computed once in the background.

Each capture file is analysed once; results are cached by the SHA-256 of the
file's bytes (and of its recording sidecar, which changes the labels), so the
same file under two names, or loaded twice, is analysed once.  The cache
belongs to the store object: nothing here is module-level state.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from inspector.analysis.pipeline import CONNECTION_TABLES, Analysis, analyze_captures
from inspector.analysis.recording import sidecar_path
from inspector.analysis.summary import overhead_table
from inspector.analysis.tables import TABLE_NAMES, make_table
from inspector.errors import InspectorError

from dashboard.live import LiveFollower
from dashboard.views import TableViews

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".gz", ".cap")


def expand_sources(sources: list[str | Path]) -> list[Path]:
    """Files as given, and the capture files (by suffix) inside directories, sorted."""
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            files.extend(sorted(p for p in source.iterdir() if p.is_file() and p.name.endswith(CAPTURE_SUFFIXES)))
        else:
            files.append(source)
    return files


def content_key(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        digest.update(b"\0sidecar\0" + sidecar.read_bytes())
    return digest.hexdigest()


def empty_tables() -> dict[str, pd.DataFrame]:
    return {name: make_table(name) for name in TABLE_NAMES}


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    current: str
    ready: bool
    errors: tuple[str, ...]
    fraction: float = 0.0  # of the current capture's bytes read

    @property
    def text(self) -> str:
        errors = f"; {len(self.errors)} failed: " + "; ".join(self.errors) if self.errors else ""
        if self.ready:
            return f"{self.done} of {self.total} captures analysed{errors}"
        return f"analysing {self.current}: {self.fraction:.0%} ({self.done} of {self.total} done){errors}"


class TableStore:
    """Analyses `sources` (files or directories) in a background thread; `tables()` once ready.

    `analyze(paths, progress=callback)` is analyze_captures or a function like it; the
    progress it reports shows in `progress()`.

    The Live page follows only files inside the working directory, the sources' folders (a
    directory itself, a file's parent), the upload folder and the `live_dirs` (`--live-dir`).
    """

    def __init__(self, sources: list[str | Path], analyze=analyze_captures, *, live_dirs=()) -> None:
        self.files = expand_sources(sources)
        self._sources = tuple(self.files)  # files grows with add_file; the background run reads these
        self._analyze = analyze
        self._lock = threading.Lock()
        self._cache: dict[str, Analysis] = {}
        self._views: TableViews | None = None  # the current tables and their views; None until ready
        self._done = 0
        self._current = ""
        self._fraction = 0.0
        self._errors: list[str] = []
        self.warnings: list[str] = []
        self._thread: threading.Thread | None = None
        self._analyses: list[Analysis] = []  # what tables() merges: the sources', then uploads
        self._loaded: dict[str, Analysis] = {}  # content key -> analysis of what add_file added
        self._add_lock = threading.Lock()  # one add_file at a time: the same bytes never analysed twice
        self._upload_dir: tempfile.TemporaryDirectory | None = None
        source_dirs = [p if p.is_dir() else p.parent for p in map(Path, sources)]
        self.live = LiveFollower(roots=[Path.cwd(), *source_dirs, *live_dirs])  # the Live page's files, per store

    def start(self) -> "TableStore":
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inspector-analysis", daemon=True)
                self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        self.start()
        assert self._thread is not None
        self._thread.join(timeout)
        return self.ready

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._views is not None

    def progress(self) -> Progress:
        with self._lock:
            return Progress(self._done, len(self.files), self._current, self._views is not None, tuple(self._errors), self._fraction)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The merged tables, or empty tables while the analysis runs."""
        return self.views().tables

    def views(self) -> TableViews:
        """What the pages show, memoised per snapshot of the tables (empty while the analysis runs)."""
        with self._lock:
            return self._views if self._views is not None else TableViews(empty_tables())

    def _publish(self, tables: dict[str, pd.DataFrame]) -> TableViews:
        """Make `tables` the current snapshot (caller holds _lock); its views are computed in the background."""
        self._views = TableViews(tables)
        threading.Thread(target=self._views.warm, name="inspector-views", daemon=True).start()
        return self._views

    @property
    def upload_dir(self) -> Path:
        """A temporary folder of this store for uploaded files, removed with the store."""
        with self._lock:
            if self._upload_dir is None:
                self._upload_dir = tempfile.TemporaryDirectory(prefix="inspector-uploads-")
                self.live.allow(self._upload_dir.name)
            return Path(self._upload_dir.name)

    def add_file(self, path: str | Path, display_name: str | None = None) -> tuple[Analysis, bool]:
        """Analyse one more capture now (cached by content) and add it to the tables.

        Returns (analysis, added); added is False when the same content was
        added before (then nothing changes).  An InspectorError from the
        analysis propagates, with the path replaced by `display_name`.
        """
        path = Path(path)
        with self._add_lock:
            key = content_key(path)
            if key in self._loaded:
                return self._loaded[key], False
            analysis = self._cache.get(key)
            if analysis is None:
                try:
                    analysis = self._analyze([path])
                except InspectorError as exc:
                    raise type(exc)(str(exc).replace(str(path), display_name or path.name)) from None
                self._cache[key] = analysis
            with self._lock:
                self._loaded[key] = analysis
                self.files.append(path)
                self._done += 1
                self._analyses.append(analysis)
                self.warnings.extend(analysis.warnings)
                if self._views is not None:
                    self._publish(merge_analyses(self._analyses))
            return analysis, True

    def _note_progress(self, _path: str, fraction: float) -> None:
        with self._lock:
            self._fraction = fraction

    def _run(self) -> None:
        analyses = self._analyses
        for path in self._sources:
            with self._lock:
                self._current = path.name
                self._fraction = 0.0
            try:
                key = content_key(path)
                analysis = self._cache.get(key)
                if analysis is None:
                    analysis = self._analyze([path], progress=self._note_progress)
                    self._cache[key] = analysis
                with self._lock:
                    analyses.append(analysis)
                self.warnings.extend(analysis.warnings)
            except Exception as exc:  # one bad file must not stop the others; shown as progress
                with self._lock:
                    self._errors.append(f"{path}: {exc}")
            with self._lock:
                self._done += 1
        with self._lock:
            self._publish(merge_analyses(analyses))
            self._current = ""


def merge_analyses(analyses: list[Analysis]) -> dict[str, pd.DataFrame]:
    """Concatenate per-file analyses, renumbering conn_id so ids stay unique; overhead recomputed."""
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLE_NAMES}
    offset = 0
    for analysis in analyses:
        for name in TABLE_NAMES:
            table = analysis.tables[name]
            if name in CONNECTION_TABLES and len(table):
                table = table.copy()
                table["conn_id"] = table["conn_id"] + offset
            parts[name].append(table)
        offset += len(analysis.tables["connections"])
    tables = {}
    for name in TABLE_NAMES:
        frames = [f for f in parts[name] if len(f)]
        tables[name] = pd.concat(frames, ignore_index=True) if frames else make_table(name)
    tables["overhead"] = overhead_table(tables["connections"], tables["message_costs"])
    return tables
