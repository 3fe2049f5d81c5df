"""Analysing into a store on a Dask cluster (`inspector analyze --dask tcp://HOST:8786`).

One task per shard of a capture parses its connections (pipeline.analyze_shard) and spills
their rows into the store's temporary folder, which every worker must see at the same path
as this process (a shared folder), as the captures; then one task per shard and table writes
its Parquet parts (build.write_shard_tables).  This process only renumbers connections and
adds up the overhead table in between, as a local run does: the store is the same.

A worker that dies mid-task has its task run again elsewhere by Dask; the task then writes
the same files over again (a raw stream is started anew, a part is written under a
temporary name and renamed), so nothing half-written is left under a part's name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from inspector.analysis.pipeline import ProgressCallback, ShardResult, StreamedFile, analyze_shard, streamed_file
from inspector.analysis.recording import with_recording_keylog
from inspector.capture.files import is_regular_file, open_capture
from inspector.errors import InspectorError
from inspector.parse.connection import ParserOptions

# How long to wait for the scheduler before saying it cannot be reached.
CONNECT_TIMEOUT = "10s"


class DaskRunner:
    """The analysis's tasks on the Dask cluster of the scheduler at `address`."""

    def __init__(self, address: str) -> None:
        self.address = address

    def __enter__(self) -> "DaskRunner":
        try:
            from distributed import Client
        except ImportError:
            raise InspectorError("--dask needs the Dask distributed package: pip install 'wire-inspector[dask]'") from None
        try:
            self.client = Client(self.address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InspectorError(f"{self.address}: cannot reach the Dask scheduler: {str(exc) or type(exc).__name__}") from None
        return self

    def __exit__(self, *exc_info) -> None:
        self.client.close()

    def workers(self) -> int:
        """Threads of the cluster's workers (at least 1)."""
        return max(1, sum(self.client.nthreads().values()))

    def stream(self, paths: list[str], folder: Path, options: ParserOptions, jobs: int | None, progress: ProgressCallback | None,
               max_inflated_bytes: int) -> Iterator[StreamedFile]:
        shards = jobs if jobs is not None else self.workers()
        next_conn_id = 0
        for index, path in enumerate(paths):
            if not is_regular_file(path):
                raise InspectorError(f"{path}: --dask reads captures on the workers, so it takes files only (not a pipe or a device)")
            warnings: list[str] = []
            file_options = with_recording_keylog(path, options, warnings)
            results = self.map(analyze_shard_task, [(path, os.path.abspath(path), folder, index, shard, shards, file_options, max_inflated_bytes)
                                                    for shard in range(shards)])
            results[0].info.warnings.extend(warnings)  # the file's warnings are shard 0's
            streamed = streamed_file(path, index, results, next_conn_id)
            next_conn_id += streamed.connections
            if progress is not None:
                progress(path, 1.0)
            yield streamed

    def written_as_made(self, streamed: StreamedFile) -> None:
        """None: on a cluster every table goes to raw rows first (build.EagerParts is local)."""
        return None

    def map(self, function: Callable, tasks: list[tuple]) -> list:
        futures = [self.client.submit(function, *task, pure=False) for task in tasks]
        return self.client.gather(futures)


def analyze_shard_task(path: str, absolute: str, folder: Path, file_index: int, shard: int, shards: int, options: ParserOptions,
                       max_inflated_bytes: int) -> ShardResult:
    """On a worker: one shard of a capture, its rows spilled into the store folder.  `path` is the
    capture as the user named it (the tables name it so), `absolute` where the worker reads it."""
    from inspector.store.build import RAW_FOLDER, RawRows

    with open_capture(absolute, max_inflated_bytes) as source:
        return analyze_shard(path, options, shard, shards, RawRows(folder / RAW_FOLDER, file_index, shard),
                             max_inflated_bytes=max_inflated_bytes, source=source)
