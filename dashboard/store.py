"""TableStore: the analysis tables the pages read, computed once in the background.

Each capture file is analysed once; results are cached by the SHA-256 of the
file's bytes (and of its recording sidecar, which changes the labels), so the
same file under two names, or loaded twice, is analysed once.  The cache
belongs to the store object: nothing here is module-level state.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import tempfile
import threading
from functools import partial
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from inspector.analysis.pipeline import Analysis
from inspector.analysis.recording import recording_keylog_path, sidecar_path
from inspector.analysis.summary import overhead_table
from inspector.analysis.tables import TABLE_NAMES, make_table

from inspector.errors import StoreError
from inspector.parse.connection import ParserOptions
from inspector.store import Store, analyze_into_cache, analyze_into_store, cache_inputs, cached_store, open_store, store_inputs, write_analysis
from inspector.store.reader import is_store_folder, load_document

from dashboard import aggregate, analysing
from dashboard.analysing import analyze_untrusted, failure_line, in_child
from dashboard.catalog import RENUMBERED_COLUMNS, Catalog, Loaded
from dashboard.live import LiveFollower
from dashboard.storeviews import StoreViews
from dashboard.uploads import UploadQueue

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".gz", ".cap")

log = logging.getLogger(__name__)
WARM_STOP_SECONDS = 10  # close() waits this long for the views being computed to stop
# The views of the pages other than the first are computed once a page was laid out for a browser,
# or after this long without one: until then the CPU (2 cores, Python's one lock) is the first page's.
FIRST_PAGE_WAIT_SECONDS = 3.0


def expand_sources(sources: list[str | Path]) -> list[Path]:
    """Files as given, store folders as given, and the capture files (by suffix) inside other directories, sorted."""
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir() and not is_store_folder(source):
            files.extend(sorted(p for p in source.iterdir() if p.is_file() and p.name.endswith(CAPTURE_SUFFIXES)))
        else:
            files.append(source)
    return files


def content_key(path: Path) -> str:
    """SHA-256 of the capture's bytes, of its sidecar's and of the key log the sidecar names, read in
    blocks (any may be big)."""
    digest = hashlib.sha256()
    _digest_file(digest, path)
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        digest.update(b"\0sidecar\0")
        _digest_file(digest, sidecar)
    keylog = recording_keylog_path(path)
    if keylog is not None and keylog.is_file():
        digest.update(b"\0keylog\0")
        _digest_file(digest, keylog)
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
    """Loads `sources` (capture files, directories of them, store folders) in a background
    thread; `views()` of them once ready.

    Each capture is a store (inspector.store) that the pages query (dashboard.catalog): with
    the default `analyze` (None), the CLI's analysis through the per-user cache of analyses
    (inspector.store.cache), so a capture analysed before, by `inspector analyze` or an earlier
    dashboard, is not analysed again; a store folder (`inspector analyze --store DIR`) is
    opened as it is.  Another `analyze` (analyze_captures or a function like it, whose progress
    shows in `progress()`) is run on every capture, and its result kept in this store's own
    temporary folder, as are uploads: they are analysed with the limits for captures a browser
    user chose (dashboard.analysing), streamed into this store's temporary folder by a child
    process (or by `analyze_upload`, when given, in this one), queued in `uploads` and analysed
    one at a time by its worker thread.

    Every capture is named in the tables by its file name, made unique ("feed.pcap (2)"),
    never by its path: the tables are what the pages and the exports show.

    The Live page follows only files inside the working directory, the sources' folders (a
    directory itself, a file's parent), the upload folder and the `live_dirs` (`--live-dir`).
    `close()` removes the upload folder and what was uploaded into it, and the temporary stores.
    """

    def __init__(self, sources: list[str | Path], analyze=None, *, analyze_upload=None,
                 live_dirs=()) -> None:
        self.files = expand_sources(sources)
        self._names: set[str] = set()
        # what the background run reads: each source, its name, and for a store folder its captures' names
        self._sources = tuple((path, *self._source_names(path)) for path in self.files)
        self._analyze = analyze
        self._analyze_upload = analyze_upload
        self._lock = threading.Lock()
        self._stores: dict[tuple, Store] = {}  # content -> its store: the same bytes are analysed once
        self._views: StoreViews | None = None  # the current snapshot of the stores and its views; None until ready
        self._empty: StoreViews | None = None
        self._done = 0
        self._current = ""
        self._fraction = 0.0
        self._errors: list[str] = []
        self.warnings: list[str] = []
        self._thread: threading.Thread | None = None
        self._shown: list[Loaded] = []  # what the views show, captures named: the sources', then uploads
        self._loaded: dict[tuple, str] = {}  # content -> the name it was loaded under
        self._add_lock = threading.Lock()  # one add_file at a time: the same bytes never analysed twice
        self._upload_dir: tempfile.TemporaryDirectory | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None  # stores of analyses not cached
        self._closed = False
        self._warming: list[threading.Thread] = []  # the threads computing each snapshot's first views
        self._page_shown = threading.Event()  # a page was laid out for a browser (dashboard.context)
        source_dirs = [p if p.is_dir() else p.parent for p in map(Path, sources)]
        self.live = LiveFollower(roots=[Path.cwd(), *source_dirs, *live_dirs], analyze=analyze_upload or analyze_untrusted)  # the Live page's files, per store
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

    def tables(self):
        """The merged tables (each loaded from the stores when first asked for), or empty tables while loading."""
        return self.views().tables

    def views(self) -> StoreViews:
        """What the pages show, memoised per snapshot of the stores (empty while they load)."""
        with self._lock:
            if self._views is not None:
                return self._views
        return self.empty_views()

    def empty_views(self) -> StoreViews:
        """The views of no capture (what the pages show while the stores load)."""
        with self._lock:
            if self._empty is None:
                self._empty = StoreViews(Catalog())
            return self._empty

    def _publish(self) -> StoreViews:
        """A new snapshot of the loaded stores (caller holds _lock); its first views are computed in the background."""
        self._views = StoreViews(Catalog(self._shown))
        warming = threading.Thread(target=self._warm, args=(self._views,), name="inspector-views", daemon=True)
        self._warming.append(warming)
        warming.start()
        return self._views

    def page_shown(self) -> None:
        """A page was laid out for a browser: the views of the other pages may take the CPU now."""
        self._page_shown.set()

    def _warm(self, views: StoreViews) -> None:
        try:
            views.warm_first()
            self._page_shown.wait(FIRST_PAGE_WAIT_SECONDS)
            views.warm()
        except Exception:  # a page asking for the view gets the error; after close() the stores may be gone
            if not self._closed:
                log.exception("computing the views")

    def _source_names(self, path: Path) -> tuple[str, dict[str, str]]:
        """The name of a capture source; for a store folder, its own name and its captures' names
        (from store.json, each capture's file name): all made unique, in the order of the sources."""
        if not is_store_folder(path):
            return self._unique_name(path.name), {}
        try:
            originals = [str(capture["name"]) for capture in load_document(path).get("captures", [])]
        except (StoreError, TypeError, KeyError):  # told when the store is opened
            originals = []
        return path.name, {original: self._unique_name(aggregate._short(original)) for original in originals}

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
        """Stop taking uploads; remove the upload folder with every upload in it, and the temporary stores."""
        self.uploads.close()
        self._page_shown.set()  # no views waiting for a page any more
        with self._lock:
            self._closed = True
            folders, self._upload_dir, self._scratch = (self._upload_dir, self._scratch), None, None
            views, warming = self._views, list(self._warming)
        if views is not None:  # a query under way when the process ends would abort it
            views.catalog.interrupt()
        for thread in warming:
            thread.join(WARM_STOP_SECONDS)
        for folder in folders:
            if folder is not None:
                folder.cleanup()

    def add_file(self, path: str | Path, name: str | None = None, progress=None) -> Added:
        """Analyse one more capture now (with analyze_upload, into a temporary store) and add it
        under `name` (made unique; default: the file's name).

        When the same content was loaded before, nothing changes: the result says so and names
        what it was loaded as.  An exception from the analysis propagates.
        """
        path = Path(path)
        with self._add_lock:
            inputs = store_inputs([path], ParserOptions(), max_inflated_bytes=analysing.UPLOAD_MAX_INFLATED_BYTES)
            key = content_of(inputs, path)
            if key in self._loaded:
                loaded = self._loaded[key]
                return Added(capture_overview(self._store_of(key, path, inputs, self._analyze_upload, progress, untrusted=True), loaded), False, loaded)
            store = self._store_of(key, path, inputs, self._analyze_upload, progress, untrusted=True)
            with self._lock:
                name = self._unique_name(name or path.name)
                self._loaded[key] = name
                self.files.append(path)
                self._done += 1
                shown = shown_store(store, {only_capture(store): name})
                self._shown.append(shown)
                self.warnings.extend(shown.warnings)
                if self._views is not None:
                    self._publish()
            return Added(capture_overview(store, name), True, name)

    def _store_of(self, key: tuple, path: Path, inputs, analyze, progress, *, untrusted: bool = False) -> Store:
        """The store of the capture at `path` with content `key`: one made before, the cache's
        (default analysis), or `analyze`d now into the cache or this store's temporary folder
        (untrusted, an upload: with analyze None, streamed there by a child with the upload limits)."""
        store = self._stores.get(key)
        if store is not None:
            return store
        if analyze is not None:
            store = self._keep(analyze([path], progress=progress), inputs)
        elif untrusted:
            store = self._untrusted_into_store(path, inputs, progress)
        else:
            store = cached_store(inputs) or self._analysed_into_store(path, inputs, progress)
        self._stores[key] = store
        return store

    def _untrusted_into_store(self, path: Path, inputs, progress) -> Store:
        """An upload analysed with the upload limits straight into this store's temporary folder
        (never the user's cache) by a child process, its rows streamed to disk as they are made:
        neither its tables nor the analysis's heap are ever in the dashboard's memory."""
        # the cap the inputs were fingerprinted with (its parameters: the store's meta says it)
        streamed = partial(analyze_into_store, max_inflated_bytes=inputs.parameters["max_inflated_bytes"])
        return open_store(in_child(streamed, [path], self._scratch_folder(), inputs, progress=progress)[0])

    def _analysed_into_store(self, path: Path, inputs, progress) -> Store:
        """The capture analysed straight into the cache of analyses (its rows streamed to disk as
        they are made), or (not cached, or the cache cannot take it: a full disk, no permission)
        into this store's temporary folder; open it.  The analysis runs in a child process
        (analysing.in_child): its heap is never the dashboard's."""
        if inputs.key is not None:
            try:
                return open_store(in_child(analyze_into_cache, [path], inputs, progress=progress)[0])
            except StoreError as exc:
                log.warning("not cached: %s", exc)
        return open_store(in_child(analyze_into_store, [path], self._scratch_folder(), inputs, progress=progress)[0])

    def _keep(self, analysis, inputs) -> Store:
        """Write `analysis` (of an upload, or of an analysis given by hand) into this store's
        temporary folder, never the user's cache; open it."""
        return open_store(write_analysis(analysis, self._scratch_folder(), inputs))

    def _scratch_folder(self) -> Path:
        """A new folder name in this store's temporary folder (removed by close())."""
        with self._lock:
            if self._scratch is None:
                self._scratch = tempfile.TemporaryDirectory(prefix="inspector-stores-")
            return Path(self._scratch.name) / secrets.token_hex(8)

    def _note_progress(self, _path: str, fraction: float) -> None:
        with self._lock:
            self._fraction = fraction

    def _load(self, path: Path, name: str, reserved: dict[str, str]) -> Loaded:
        """One source as shown: a store folder with its captures named by their file names
        (`reserved` for those its store.json names), or a capture named `name`."""
        if is_store_folder(path):
            store = open_store(path)
            originals = captures_of(store)
            with self._lock:
                names = {original: reserved.get(original) or self._unique_name(aggregate._short(original)) for original in originals}
            return shown_store(store, names)
        # through the cache's digest index when the cache is where it goes: a capture unchanged since its
        # digest was read (by inspector analyze or an earlier dashboard) is not read through again
        inputs = cache_inputs([path], ParserOptions()) if self._analyze is None else store_inputs([path], ParserOptions())
        store = self._store_of(content_of(inputs, path), path, inputs, self._analyze, self._note_progress)
        with self._lock:
            self._loaded.setdefault(content_of(inputs, path), name)
        return shown_store(store, {only_capture(store): name})

    def _run(self) -> None:
        self.empty_views()  # what the pages are laid out from until the stores are loaded, and for Dash's validation
        for path, name, reserved in self._sources:
            with self._lock:
                self._current = name
                self._fraction = 0.0
            try:
                shown = self._load(path, name, reserved)
                with self._lock:
                    self._shown.append(shown)
                self.warnings.extend(shown.warnings)
            except Exception as exc:  # one bad file must not stop the others; shown as progress
                with self._lock:
                    self._errors.append(failure_line(exc, path, name))
            with self._lock:
                self._done += 1
        with self._lock:
            self._publish()
            self._current = ""


@dataclass(frozen=True)
class Added:
    """What add_file did: the capture's row of the overview, whether it was added, and its name in the tables."""

    overview: pd.DataFrame
    added: bool
    name: str


def content_of(inputs, path: Path) -> tuple:
    """What identifies a capture's content: the digests store_inputs read (the capture's, its sidecar's
    and its recording's key log's)."""
    (capture,) = inputs.captures
    return (capture.sha256, capture.sidecar_sha256, capture.keylog_sha256) if capture.sha256 is not None else ("unread", str(path))


def captures_of(store: Store) -> list[str]:
    """The captures a store holds, by the names its tables give them, in their order."""
    try:
        return [str(c) for c in store.table("captures")["capture"]]
    finally:
        store.close()  # the catalog reads its files; the store keeps no connection


def only_capture(store: Store) -> str:
    """The name the tables of a one-capture store give it (the path it was analysed under)."""
    names = captures_of(store)
    return names[0] if names else ""


def shown_store(store: Store, names: dict[str, str]) -> Loaded:
    """`store` with its captures shown under `names`: in the views and in its warnings."""
    warnings = []
    for warning in store.meta.get("warnings", []):
        for original, name in names.items():
            if original:
                warning = warning.replace(original, name)
        warnings.append(warning)
    return Loaded(store, dict(names), tuple(warnings))


def capture_overview(store: Store, name: str) -> pd.DataFrame:
    """The overview row of the one capture of `store`, named `name` (what an upload's status shows)."""
    catalog = Catalog([shown_store(store, {only_capture(store): name})])
    try:
        return StoreViews(catalog).overview()
    finally:
        catalog.close()


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
            named = [column for column in RENUMBERED_COLUMNS if column in table.columns]  # as the catalog's views do
            if named and len(table):
                table = table.assign(**{column: table[column] + offset for column in named})
            parts[name].append(table)
        offset += len(analysis.tables["connections"])
    tables = {}
    for name in TABLE_NAMES:
        frames = [f for f in parts[name] if len(f)]
        tables[name] = pd.concat(frames, ignore_index=True) if frames else make_table(name)
    tables["overhead"] = overhead_table(tables["connections"], tables["message_costs"])
    return tables
