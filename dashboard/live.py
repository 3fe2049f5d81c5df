"""Following a capture file while `inspector capture -o FILE` writes it.

`follow(path, previous)` is pure apart from reading the file: it stats the
file and, when its size or mtime changed since `previous`, analyses the whole
file again (simple and correct: our writers flush whole records and the reader
analyses a cut last record's prefix with a warning).  Re-analysing everything
is fine for small live captures; a long capture costs a full analysis per
change, which is the known limitation.

The states (which hold the analysis tables) are kept by a `LiveFollower` that
belongs to the app's TableStore, never in a module-level variable.  The path
comes from the user and is hostile: the follower reads it only when its real
path (symlinks and `..` resolved) lies inside one of its allowed folders, it
then opens that real path, only regular files are read, and every error is
one line of text.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dashboard import aggregate
from dashboard.analysing import analyze_untrusted, failure_line, one_line
from inspector.analysis.pipeline import Analysis

MAX_PATH_CHARS = 4096
COUNTS = ("packets", "connections", "rest_exchanges", "ws_messages", "wire_bytes")


@dataclass(frozen=True)
class LiveState:
    """What was last analysed of `path`: its size and mtime then, the analysis or the error."""

    path: str
    size: int = -1
    mtime_ns: int = -1
    analysis: Analysis | None = None
    error: str | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        return self.path, self.size, self.mtime_ns


def clean_path(text) -> str:
    """The user's text as a path: stripped, no control characters, bounded length."""
    text = re.sub(r"[\x00-\x1f\x7f]", "", str(text or "")).strip()
    return text[:MAX_PATH_CHARS]


def real_roots(folders: Iterable[str | os.PathLike]) -> tuple[str, ...]:
    """The folders' real paths (symlinks and `..` resolved), duplicates dropped, in order."""
    return tuple(dict.fromkeys(os.path.realpath(folder) for folder in folders))


def allowed_real_path(path: str, roots: tuple[str, ...]) -> str | None:
    """The real path of `path` when it lies inside one of `roots` (real paths), else None.

    Only os.path.realpath touches the file system (it looks up the path's components
    to resolve symlinks): the file itself is neither opened nor stat'ed here.
    """
    try:
        real = os.path.realpath(path)
        for root in roots:
            if os.path.commonpath([real, root]) == root:
                return real
    except (OSError, ValueError):  # a symlink loop, paths on different drives
        pass
    return None


ALLOWED_FOLDERS = ("the dashboard's working directory, the folders of the captures it was started with, "
                   "its upload folder and each --live-dir folder")


def refused_message(path: str) -> str:
    """Names the path as typed and the kinds of folder allowed, never their server paths (the
    dashboard prints those where it was started)."""
    return (f"{path}: not inside a folder the Live page may follow ({ALLOWED_FOLDERS}); "
            "start the dashboard with --live-dir DIR to add one")


def follow(path, previous: LiveState | None = None, analyze=analyze_untrusted,
           roots: tuple[str, ...] | None = None) -> tuple[LiveState, dict]:
    """(state, summary) of the capture at `path`; re-analysed only when size or mtime changed.

    With `roots` (real paths of folders, see real_roots) a path whose real path is outside
    all of them is refused without being opened or stat'ed, and the real path is what is
    read; messages and warnings name `path` as given, never the real path.  Without `roots` any path is read (callers that
    take paths from users pass roots: LiveFollower always does).

    The summary is small and JSON-friendly: path, size, changed, error (one line or None),
    the COUNTS, efficiency, warnings, and `mix` (wire bytes per kind per time bin, records).
    """
    path = clean_path(path)
    if not path:
        return _failed("", "No capture file given.")
    target = path
    if roots is not None:
        target = allowed_real_path(path, roots)
        if target is None:
            return _failed(path, refused_message(path))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return _failed(path, f"{path}: no such file")
    except OSError as exc:
        return _failed(path, f"{path}: cannot read: {exc.strerror or exc}")
    if not stat.S_ISREG(st.st_mode):
        return _failed(path, f"{path}: not a regular file")
    if previous is not None and previous.key == (path, st.st_size, st.st_mtime_ns):
        return previous, _summary(previous, False)
    try:
        analysis = analyze([target])
    except Exception as exc:  # the file's one line, kept until it changes: never a 500 on every refresh
        state = LiveState(path, st.st_size, st.st_mtime_ns, error=failure_line(exc, target, path))
    else:
        analysis = Analysis(analysis.tables, [w.replace(target, path) for w in analysis.warnings])
        state = LiveState(path, st.st_size, st.st_mtime_ns, analysis=analysis)
    return state, _summary(state, True)


def _failed(path: str, message: str) -> tuple[LiveState, dict]:
    state = LiveState(path=path, error=one_line(message))
    return state, _summary(state, True)


def _summary(state: LiveState, changed: bool) -> dict:
    summary = {"path": state.path, "size": state.size, "changed": changed, "error": state.error, "busy": False,
               **{name: 0 for name in COUNTS}, "efficiency": None, "warnings": [], "mix": []}
    if state.analysis is None:
        return summary
    tables = state.analysis.tables
    overview = aggregate.capture_overview(tables)
    if len(overview):
        row = overview.iloc[0]
        summary.update({name: int(row[name]) for name in COUNTS})
        summary["efficiency"] = None if pd.isna(row["efficiency"]) else float(row["efficiency"])
        summary["mix"] = aggregate.protocol_mix(tables, str(row["capture"])).to_dict("records")
    summary["warnings"] = [one_line(w) for w in state.analysis.warnings]
    return summary


def summary_text(summary: dict) -> str:
    """The one line the page shows."""
    if summary["error"]:
        return summary["error"]
    eff = summary["efficiency"]
    return (f"{summary['packets']:,} packets, {summary['connections']:,} connections, "
            f"{summary['rest_exchanges']:,} REST exchanges, {summary['ws_messages']:,} WebSocket messages, "
            f"{summary['wire_bytes']:,} wire bytes, efficiency {'n/a' if eff is None else format(eff, '.1%')}")


class LiveFollower:
    """The last states of the few files being followed (bounded), owned by a TableStore.

    Only files inside `roots` (folders; kept as their real paths) are followed; with no
    roots nothing is.  `allow(folder)` adds one, as the store does for its upload folder.
    """

    def __init__(self, roots: Iterable[str | os.PathLike] = (), keep: int = 4, analyze=analyze_untrusted) -> None:
        self._roots = real_roots(roots)
        self._roots_lock = threading.Lock()  # not the analysis lock: allowing a folder never waits for one
        self._keep = keep
        self._analyze = analyze
        self._states: OrderedDict[str, LiveState] = OrderedDict()
        self._lock = threading.Lock()  # one analysis at a time: ticks from two tabs do not race, nor wait

    @property
    def roots(self) -> tuple[Path, ...]:
        """The allowed folders (real paths)."""
        return tuple(map(Path, self._roots))

    def allow(self, folder: str | os.PathLike) -> None:
        """Allow following files inside `folder` too."""
        with self._roots_lock:
            self._roots = real_roots((*self._roots, folder))

    def follow(self, path) -> dict:
        """The summary of `path` (see `follow`); while another tick's analysis runs, at once a
        summary with `busy` set, so that the page's refreshes never queue up behind a slow
        capture, each holding one of the server's threads."""
        path = clean_path(path)
        if not self._lock.acquire(blocking=False):
            return {**_summary(LiveState(path), False), "busy": True}
        try:
            state, summary = follow(path, self._states.get(path), analyze=self._analyze, roots=self._roots)
            if state.size >= 0:  # the file was there: keep what was seen of it
                self._states[path] = state
                self._states.move_to_end(path)
                while len(self._states) > self._keep:
                    self._states.popitem(last=False)
            else:
                self._states.pop(path, None)
            return summary
        finally:
            self._lock.release()


def mix_frame(summary: dict) -> pd.DataFrame:
    """The summary's wire-bytes-over-time records as the frame figures.protocol_mix takes."""
    return pd.DataFrame(summary.get("mix") or [], columns=["t_s", "kind", "wire_bytes"])
