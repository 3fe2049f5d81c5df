"""Analysing captures straight into a store, rows going to disk as they are made.

Each worker of the analysis (inspector.analysis.pipeline.stream_captures) writes every
`SPILL_ROWS` rows of a table into an Arrow IPC stream of its own (`RawRows`) in the store's
temporary folder, with its own connection ids: the ids of the tables follow the order of
each connection's first packet over all workers, known only when all are done.  Then each
stream is read back a batch at a time, its connection ids made final (and a ws_frames row's
message_id, which is set when its message completes, put in where it was provisional), and written as the store's
Parquet parts; the raw streams are deleted.  No table is ever whole in memory: a worker holds
at most SPILL_ROWS rows of each, the writing step one part.

Writing Parquet (compressing every column) is the costly half of it, so it is done once,
here, and on every core: the raw streams are written uncompressed, as the rows are.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from inspector.analysis.pipeline import ProgressCallback, ShardOutput, StreamedFile, stream_captures
from inspector.analysis.sinks import MISSING, resolve_late
from inspector.analysis.summary import FRACTIONAL_COLUMNS, SUMMED_COLUMNS, OverheadTotals
from inspector.analysis.tables import CONNECTION_TABLES, make_table
from inspector.capture.files import DEFAULT_MAX_INFLATED_BYTES
from inspector.parse.connection import ParserOptions
from inspector.store.dask import DaskRunner
from inspector.store.inputs import StoreInputs
from inspector.store.schema import ARROW_SCHEMAS
from inspector.store.writer import PART_ROWS, PartWriter, StoreWriter

RAW_FOLDER = ".raw"
# Columns of connections and message_costs the overhead table counts.
_CONNECTION_COLUMNS = ["conn_id", "kind", "variant", *SUMMED_COLUMNS, *FRACTIONAL_COLUMNS]
_COST_COLUMNS = ["conn_id", "kind", "item", "payload_messages"]


class RawRows:
    """One worker's rows of every table as they are made: `<folder>/<table>-f<file>s<shard>.arrows`,
    Arrow IPC streams (uncompressed), with the worker's own connection ids."""

    def __init__(self, folder: Path, file_index: int, shard: int) -> None:
        self.folder = folder
        self.file_index = file_index
        self.shard = shard
        self._streams: dict[str, pa.ipc.RecordBatchStreamWriter] = {}

    @staticmethod
    def path(folder: Path, table: str, file_index: int, shard: int) -> Path:
        return folder / f"{table}-f{file_index}s{shard}.arrows"

    def add(self, table: str, chunks: list[pd.DataFrame]) -> None:
        for chunk in chunks:
            if not len(chunk):
                continue
            schema = pa.schema([ARROW_SCHEMAS[table].field(column) for column in chunk.columns])
            stream = self._streams.get(table)
            if stream is None:
                stream = pa.ipc.new_stream(str(self.path(self.folder, table, self.file_index, self.shard)), schema)
                self._streams[table] = stream
            stream.write_table(pa.Table.from_pandas(chunk, schema=schema, preserve_index=False))

    def close(self) -> None:
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()


def analyze_into_store(paths: list[str | os.PathLike], target: str | os.PathLike, inputs: StoreInputs,
                       options: ParserOptions | None = None, jobs: int | None = None, progress: ProgressCallback | None = None, *,
                       max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES, keep_existing: bool = False,
                       dask: str | None = None) -> tuple[Path, list[str]]:
    """Analyse the captures into a store at `target` (see StoreWriter for keep_existing); return its
    folder and the analysis warnings.  The tables are those of analyze_captures, exactly.

    dask: the address of a Dask scheduler (tcp://HOST:8786) whose workers do the work, one task
    per shard of a capture (`jobs` of them, default: a thread of the cluster each), then one per
    shard and table to write its parts; the captures and `target` must be at the same paths
    for them (a shared folder)."""
    options = options or ParserOptions()
    paths = [str(path) for path in paths]
    with StoreWriter(target, keep_existing=keep_existing) as writer:
        with writer.errors(), (LocalRunner() if dask is None else DaskRunner(dask)) as runner:
            (writer.folder / RAW_FOLDER).mkdir()
            overhead = OverheadTotals()
            warnings: list[str] = []
            for streamed in runner.stream(paths, writer.folder, options, jobs, progress, max_inflated_bytes):
                writer.add_part("captures", make_table("captures", [streamed.captures_row]))
                staleness = streamed.staleness()
                if len(staleness):
                    writer.add_part("staleness", staleness)
                overhead.merge(_write_file(runner, writer.folder, streamed))
                warnings.extend(streamed.warnings)
            writer.add_part("overhead", overhead.table())
            shutil.rmtree(writer.folder / RAW_FOLDER)
        return writer.commit({**inputs.meta(), "warnings": warnings}), warnings


def _write_file(runner, folder: Path, streamed: StreamedFile) -> OverheadTotals:
    """The Parquet parts of one capture file's tables, from its workers' raw rows; its overhead totals."""
    overhead = OverheadTotals()
    variant_of: dict[int, str] = {}
    # Connections first: their variants go with the message costs into the overhead table.
    for totals, labelled in runner.map(write_shard_tables, [(folder, shard, "connections", None) for shard in streamed.shards]):
        overhead.merge(totals)
        variant_of.update(labelled)
    tasks = [(folder, shard, table, variant_of) for table in CONNECTION_TABLES if table != "connections" for shard in streamed.shards]
    for totals, _labelled in runner.map(write_shard_tables, tasks):
        overhead.merge(totals)
    return overhead


def write_shard_tables(folder: Path, shard: ShardOutput, table: str, variant_of: dict[int, str] | None) -> tuple[OverheadTotals, dict[int, str]]:
    """Write one worker's raw rows of `table` as Parquet parts of the store being written in
    `folder`, their ids final (anywhere: a thread, a Dask task).  Return what the overhead table
    counts of them, and (connections) the variant of each labelled connection."""
    totals = OverheadTotals()
    labelled: dict[int, str] = {}

    def count_connections(batch: pa.RecordBatch) -> None:
        frame = batch.select(_CONNECTION_COLUMNS).to_pandas()
        totals.add_connections(frame)
        with_variant = frame[frame["variant"] != ""]
        labelled.update(zip(with_variant["conn_id"].tolist(), with_variant["variant"].tolist()))

    def count_costs(batch: pa.RecordBatch) -> None:
        totals.add_costs(batch.select(_COST_COLUMNS).to_pandas(), variant_of)

    count = {"connections": count_connections, "message_costs": count_costs}.get(table)
    path = RawRows.path(folder / RAW_FOLDER, table, shard.file_index, shard.shard)
    if not path.exists():
        return totals, labelled
    parts = PartWriter(folder, f"f{shard.file_index}s{shard.shard}")
    pending: list[pa.RecordBatch] = []
    with pa.OSFile(str(path)) as source:  # read, not mapped: each batch let go once written
        for batch in pa.ipc.open_stream(source):
            batch = _final_batch(table, batch, shard)
            if count is not None:
                count(batch)
            pending.append(batch)
            if sum(part.num_rows for part in pending) >= PART_ROWS:
                parts.add_arrow(table, pa.Table.from_batches(pending))
                pending = []
    if pending:
        parts.add_arrow(table, pa.Table.from_batches(pending))
    return totals, labelled


class LocalRunner:
    """Runs the analysis in this machine's processes (pipeline.stream_captures) and the writing of
    parts in threads, one per core (Parquet compression lets go of the GIL)."""

    def __enter__(self) -> "LocalRunner":
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 4)))
        return self

    def __exit__(self, *exc_info) -> None:
        self._pool.shutdown(cancel_futures=True)

    def stream(self, paths: list[str], folder: Path, options: ParserOptions, jobs: int | None, progress: ProgressCallback | None,
               max_inflated_bytes: int) -> Iterator[StreamedFile]:
        return stream_captures(paths, partial(RawRows, folder / RAW_FOLDER), options, jobs, progress, max_inflated_bytes=max_inflated_bytes)

    def map(self, function: Callable, tasks: list[tuple]) -> list:
        return list(self._pool.map(lambda task: function(*task), tasks))


def _final_batch(table: str, batch: pa.RecordBatch, shard: ShardOutput) -> pa.RecordBatch:
    """A raw batch with its table's schema: final conn_ids, late values put in, variants labelled."""
    schema = ARROW_SCHEMAS[table]
    columns = {name: batch.column(name) for name in batch.schema.names}
    columns["conn_id"] = _renumbered(columns["conn_id"], shard.conn_ids)
    for name, (rows, late) in shard.late.get(table, {}).items():
        values = resolve_late(columns[name].fill_null(MISSING).to_numpy(), rows, late)
        columns[name] = pa.array(values, mask=values == MISSING, type=schema.field(name).type)
    if table == "connections":
        labels = shard.label_variants(pd.DataFrame({"client_port": columns["client_port"].to_numpy(),
                                                    "server_port": columns["server_port"].to_numpy()}))
        if labels is not None:
            columns["variant"] = pa.array(labels.to_numpy(dtype=object), type=schema.field("variant").type)
    return pa.RecordBatch.from_arrays([columns[name] for name in schema.names], schema=schema)


def _renumbered(local: pa.Array, ids: np.ndarray) -> pa.Array:
    """Worker connection ids -> table ones (a missing id stays missing)."""
    if local.null_count:
        mask = local.is_null().to_numpy(zero_copy_only=False)
        values = local.fill_null(0).to_numpy()
        return pa.array(ids[values], mask=mask, type=pa.int64())
    return pa.array(ids[local.to_numpy()], type=pa.int64())
