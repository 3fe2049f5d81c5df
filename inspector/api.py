"""The Python API, for notebooks and scripts: `inspector.analyze(...)`.

    import inspector
    a = inspector.analyze("captures/chat.pcap")
    a.connections                     # a table as a pandas DataFrame (the whole table)
    a.sql("SELECT kind, count(*) FROM connections GROUP BY kind")   # DuckDB over the store

The captures are analysed as `inspector analyze` does: into the cache of analyses (so a
second call, the CLI and the dashboard find them analysed), or into the store folder
`store=`, or, with `cache=False`, into a temporary store removed by `close()`.  A table
attribute reads the whole table into memory the first time and keeps it; on a big
capture, ask `sql()` for what you need instead, which DuckDB answers from the Parquet
files.  It sits beside the CLI: above the store, the analysis and the capture layers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from inspector.analysis.tables import TABLE_NAMES
from inspector.parse.budget import DEFAULT_MAX_DECOMPRESSED_PER_CAPTURE, DEFAULT_MAX_DECOMPRESSED_PER_CONNECTION
from inspector.parse.connection import ParserOptions
from inspector.report import store_summary
from inspector.store import (Store, analyze_into_cache, analyze_into_store, cache_inputs, cached_store, check_target, open_store,
                             store_inputs)

Capture = str | os.PathLike


def analyze(*captures: Capture, store: Capture | None = None, cache: bool = True, jobs: int | None = None,
            max_ws_message: int | None = None, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED_PER_CAPTURE,
            max_decompressed_per_connection: int = DEFAULT_MAX_DECOMPRESSED_PER_CONNECTION) -> "AnalysedCaptures":
    """Analyse capture files (pcap, pcapng, gzip-compressed) as `inspector analyze` does and
    return their tables.  store: write the store there (a new folder); cache=False: a temporary
    store, removed by close().  The other arguments are the CLI's options of the same names.
    Bad input raises an InspectorError whose message is one line naming the file."""
    if not captures:
        raise TypeError("analyze() needs at least one capture file")
    options = ParserOptions(max_decompressed_per_capture=max_decompressed, max_decompressed_per_connection=max_decompressed_per_connection,
                            **({} if max_ws_message is None else {"max_ws_message_bytes": max_ws_message}))
    paths = [os.fspath(capture) for capture in captures]
    if store is not None:
        check_target(store)
    use_cache = cache and store is None
    # Into the cache as the CLI does: a capture unchanged since its digest was read is not read again.
    inputs = cache_inputs(paths, options) if use_cache else store_inputs(paths, options, digests=store is not None)
    if use_cache and inputs.key is not None:
        cached = cached_store(inputs)
        if cached is not None:
            return AnalysedCaptures(cached, list(cached.meta.get("warnings", [])))
        folder, warnings = analyze_into_cache(paths, inputs, options, jobs)
        return AnalysedCaptures(open_store(folder), warnings)
    temporary = None if store is not None else Path(tempfile.mkdtemp(prefix="inspector-analysis-"))
    try:
        folder, warnings = analyze_into_store(paths, store if store is not None else temporary / "store", inputs, options, jobs)
    except BaseException:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        raise
    return AnalysedCaptures(open_store(folder), warnings, temporary)


class AnalysedCaptures:
    """The tables of an analysis (its store): each table as an attribute (`a.connections`,
    `a.http_messages`, `a.ws_frames`, `a.ws_messages`, `a.message_costs`, `a.overhead`, ...; see
    `tables`), `sql(query)` over all of them, `summary()` as the CLI prints it, `warnings`, and
    `folder`, the store.  `close()` (or a `with` block) lets the store go."""

    tables = TABLE_NAMES

    def __init__(self, store: Store, warnings: list[str], temporary: Path | None = None) -> None:
        self._store = store
        self._temporary = temporary  # a store of our own, removed by close()
        self._loaded: dict[str, pd.DataFrame] = {}
        self.warnings = warnings
        self.folder = store.folder

    def __getattr__(self, name: str) -> pd.DataFrame:
        if name not in TABLE_NAMES:
            raise AttributeError(f"no table {name!r} (the tables: {', '.join(TABLE_NAMES)})")
        if name not in self._loaded:
            self._loaded[name] = self._store.table(name)
        return self._loaded[name]

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *TABLE_NAMES})

    def sql(self, query: str, params: list | dict | None = None) -> pd.DataFrame:
        """DuckDB SQL over the tables (views named like them); values go in `params` (`?` or
        `$name` in the query), never into the query's text.  A query that fails raises a
        StoreError of one line."""
        return self._store.sql(query, params)

    def summary(self) -> str:
        """The summary `inspector analyze` prints."""
        return store_summary(self._store)

    def close(self) -> None:
        self._store.close()
        self._loaded.clear()
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

    def __enter__(self) -> "AnalysedCaptures":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        captures = ", ".join(str(entry.get("name", "?")) for entry in self._store.meta.get("captures", []))
        return f"<AnalysedCaptures of {captures or 'no capture'} in {self.folder}>"
