"""The per-user cache of analyses: one store per cache key, in a folder of its own.

`cache_dir()` is $INSPECTOR_CACHE_DIR, else $XDG_CACHE_HOME/wire-inspector, else
~/.cache/wire-inspector; an entry is `<cache dir>/<key>` (inspector.store.inputs.cache_key).
Beside the entries, `<cache dir>/digests.json` remembers the captures' digests with their
stat (inspector.store.digests), so that the key of a capture unchanged since it was read is
found without reading it again.  Removing any entry, the index, or the whole cache folder is safe.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from inspector.analysis.pipeline import ProgressCallback
from inspector.capture.files import DEFAULT_MAX_INFLATED_BYTES
from inspector.errors import StoreError
from inspector.parse.connection import ParserOptions
from inspector.store.build import analyze_into_store
from inspector.store.digests import DigestIndex
from inspector.store.inputs import StoreInputs, store_inputs
from inspector.store.layout import transient_owner
from inspector.store.reader import Store, open_store

CACHE_ENV = "INSPECTOR_CACHE_DIR"
CACHE_FOLDER = "wire-inspector"
DIGESTS_FILE = "digests.json"


def cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec: a relative path is to be ignored
        return Path(xdg) / CACHE_FOLDER
    return Path.home() / ".cache" / CACHE_FOLDER


def digest_index() -> DigestIndex:
    """The index of the captures' digests kept beside the cache's entries."""
    return DigestIndex(cache_dir() / DIGESTS_FILE)


def cache_inputs(paths: list[str | os.PathLike], options: ParserOptions, *,
                 max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES) -> StoreInputs:
    """store_inputs for an analysis looked up in (or written to) the cache: a capture unchanged
    since its digest was read (the digest index) is not read through again."""
    return store_inputs(paths, options, max_inflated_bytes=max_inflated_bytes, known=digest_index())


def cache_entry(inputs: StoreInputs) -> Path | None:
    """The folder of the analysis of `inputs` in the cache, or None when it cannot be cached (a pipe)."""
    key = inputs.key
    return None if key is None else cache_dir() / key


def cached_store(inputs: StoreInputs) -> Store | None:
    """The cached store of `inputs`, or None: not there, or outdated, half-written or damaged
    (then analysed again and replaced by `analyze_into_cache`)."""
    entry = cache_entry(inputs)
    if entry is None:
        return None
    try:
        return open_store(entry)
    except StoreError:
        return None


def analyze_into_cache(paths: list[str | os.PathLike], inputs: StoreInputs, options: ParserOptions | None = None, jobs: int | None = None,
                       progress: ProgressCallback | None = None, *, max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES,
                       dask: str | None = None) -> tuple[Path, list[str]]:
    """Analyse the captures of `inputs` (`paths`) straight into the cache (build.analyze_into_store);
    return the entry and the analysis warnings.  Another process that wrote the same entry first
    wins (its store stays, this one is dropped)."""
    entry = cache_entry(inputs)
    if entry is None:
        raise ValueError("inputs without a cache key (a capture that is not a regular file)")
    _remove_abandoned(entry.parent)
    try:
        return analyze_into_store(paths, entry, inputs, options, jobs, progress,
                                  max_inflated_bytes=max_inflated_bytes, keep_existing=True, dask=dask)
    except StoreError as exc:
        raise StoreError(f"{exc} (the cache of analyses: free some space, set {CACHE_ENV} to another folder, or pass --no-cache)") from None


def _remove_abandoned(folder: Path) -> None:
    """Remove the temporary folders of writes whose process is gone (killed before it could clean up)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        pid = transient_owner(folder / name)
        if pid is not None and not _running(pid):
            shutil.rmtree(folder / name, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
