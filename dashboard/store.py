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

from inspector.analysis.pipeline import Analysis, analyze_captures
from inspector.analysis.recording import sidecar_path
from inspector.analysis.summary import overhead_table
from inspector.analysis.tables import CONNECTION_TABLES, TABLE_NAMES, make_table

from dashboard.analysing import analyze_untrusted, failure_line
from dashboard.live import LiveFollower
from dashboard.uploads import UploadQueue
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
    """SHA-256 of the capture's bytes and of its sidecar's, read in blocks (either may be big)."""
    digest = hashlib.sha256()
    _digest_file(digest, path)
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        digest.update(b"\0sidecar\0")
        _digest_file(digest, sidecar)
    return digest.hexdigest()


def _digest_file(digest, path: Path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)


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
    progress it reports shows in `progress()`.  Uploads go through `analyze_upload` instead
    (dashboard.analysing.analyze_untrusted: the limits for captures a browser user chose),
    queued in `uploads` and analysed one at a time by its worker thread.

    Every capture is named in the tables by its file name, made unique ("feed.pcap (2)"),
    never by its path: the tables are what the pages and the exports show.

    The Live page follows only files inside the working directory, the sources' folders (a
    directory itself, a file's parent), the upload folder and the `live_dirs` (`--live-dir`).
    `close()` removes the upload folder and what was uploaded into it.
    """

    def __init__(self, sources: list[str | Path], analyze=analyze_captures, *, analyze_upload=analyze_untrusted,
                 live_dirs=()) -> None:
        self.files = expand_sources(sources)
        self._names: set[str] = set()
        self._sources = tuple((path, self._unique_name(path.name)) for path in self.files)  # what the background run reads
        self._analyze = analyze
        self._analyze_upload = analyze_upload
        self._lock = threading.Lock()
        self._cache: dict[str, Analysis] = {}
        self._views: TableViews | None = None  # the current tables and their views; None until ready
        self._done = 0
        self._current = ""
        self._fraction = 0.0
        self._errors: list[str] = []
        self.warnings: list[str] = []
        self._thread: threading.Thread | None = None
        self._analyses: list[Analysis] = []  # what tables() merges, captures named: the sources', then uploads
        self._loaded: dict[str, str] = {}  # content key -> the name it was loaded under
        self._add_lock = threading.Lock()  # one add_file at a time: the same bytes never analysed twice
        self._upload_dir: tempfile.TemporaryDirectory | None = None
        source_dirs = [p if p.is_dir() else p.parent for p in map(Path, sources)]
        self.live = LiveFollower(roots=[Path.cwd(), *source_dirs, *live_dirs], analyze=analyze_upload)  # the Live page's files, per store
        self.uploads = UploadQueue(self)

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

    def _unique_name(self, name: str) -> str:
        """`name`, or "name (2)", "name (3)", ... when a capture already has it."""
        unique, n = name, 1
        while unique in self._names:
            n += 1
            unique = f"{name} ({n})"
        self._names.add(unique)
        return unique

    @property
    def upload_dir(self) -> Path:
        """A temporary folder of this store for uploaded files, removed by close()."""
        with self._lock:
            if self._upload_dir is None:
                self._upload_dir = tempfile.TemporaryDirectory(prefix="inspector-uploads-")
                self.live.allow(self._upload_dir.name)
            return Path(self._upload_dir.name)

    def close(self) -> None:
        """Stop taking uploads and remove the upload folder with every upload in it."""
        self.uploads.close()
        with self._lock:
            folder, self._upload_dir = self._upload_dir, None
        if folder is not None:
            folder.cleanup()

    def add_file(self, path: str | Path, name: str | None = None, progress=None) -> Added:
        """Analyse one more capture now (with analyze_upload; cached by content) and add it to
        the tables under `name` (made unique; default: the file's name).

        When the same content was loaded before, nothing changes: the result says so and names
        what it was loaded as.  An exception from the analysis propagates.
        """
        path = Path(path)
        with self._add_lock:
            key = content_key(path)
            if key in self._loaded:
                loaded = self._loaded[key]
                return Added(named(self._cached_or_analysed(key, path, progress), loaded), False, loaded)
            analysis = self._cached_or_analysed(key, path, progress)
            with self._lock:
                name = self._unique_name(name or path.name)
                self._loaded[key] = name
                self.files.append(path)
                self._done += 1
                shown = named(analysis, name)
                self._analyses.append(shown)
                self.warnings.extend(shown.warnings)
                if self._views is not None:
                    self._publish(merge_analyses(self._analyses))
            return Added(shown, True, name)

    def _cached_or_analysed(self, key: str, path: Path, progress) -> Analysis:
        analysis = self._cache.get(key)
        if analysis is None:
            analysis = self._cache[key] = self._analyze_upload([path], progress=progress)
        return analysis

    def _note_progress(self, _path: str, fraction: float) -> None:
        with self._lock:
            self._fraction = fraction

    def _run(self) -> None:
        analyses = self._analyses
        for path, name in self._sources:
            with self._lock:
                self._current = name
                self._fraction = 0.0
            try:
                key = content_key(path)
                analysis = self._cache.get(key)
                if analysis is None:
                    analysis = self._analyze([path], progress=self._note_progress)
                    self._cache[key] = analysis
                shown = named(analysis, name)
                with self._lock:
                    analyses.append(shown)
                    self._loaded.setdefault(key, name)
                self.warnings.extend(shown.warnings)
            except Exception as exc:  # one bad file must not stop the others; shown as progress
                with self._lock:
                    self._errors.append(failure_line(exc, path, name))
            with self._lock:
                self._done += 1
        with self._lock:
            self._publish(merge_analyses(analyses))
            self._current = ""


@dataclass(frozen=True)
class Added:
    """What add_file did: the capture's analysis (named), whether it was added, and its name in the tables."""

    analysis: Analysis
    added: bool
    name: str


def named(analysis: Analysis, name: str) -> Analysis:
    """The analysis of one capture with `name` in place of its path (the path it was analysed
    under, which a cached analysis of the same bytes elsewhere keeps): in every table's capture
    column and in the warnings."""
    captures = analysis.tables["captures"]["capture"]
    path = str(captures.iloc[0]) if len(captures) else name
    tables = {table_name: table.assign(capture=name) if "capture" in table.columns and len(table) else table
              for table_name, table in analysis.tables.items()}
    return Analysis(tables=tables, warnings=[w.replace(path, name) for w in analysis.warnings])


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
