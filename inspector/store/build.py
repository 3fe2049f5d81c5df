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

A file analysed by one worker (small files, `--jobs 1`, pipes) needs no renumbering: its ids
are final as they are made.  Its rows skip the raw streams and are written as Parquet parts by
a thread while the analysis goes on (EagerParts), on the other core; but for the rare chunks
of ws_frames rows whose message_id was still provisional when they left (a late value, known
when the worker is done), which wait in a raw stream for the end, their parts' places kept.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from inspector.analysis import reconnections
from inspector.analysis.pipeline import ProgressCallback, ShardOutput, StreamedFile, file_jobs, stream_captures
from inspector.analysis.recording import load_recording
from inspector.analysis.sinks import MISSING, resolve_late
from inspector.analysis.summary import FRACTIONAL_COLUMNS, SUMMED_COLUMNS, OverheadTotals
from inspector.analysis.tables import CONNECTION_TABLES, make_table
from inspector.capture.files import DEFAULT_MAX_INFLATED_BYTES
from inspector.parse.connection import ParserOptions
from inspector.store.dask import DaskRunner
from inspector.store.inputs import StoreInputs
from inspector.store.schema import ARROW_SCHEMAS
from inspector.store.layout import duckdb_paths, part_files
from inspector.store.reader import DUCKDB_MEMORY_LIMIT
from inspector.store.writer import PART_ROWS, PartWriter, StoreWriter

RAW_FOLDER = ".raw"
# Columns of connections and message_costs the overhead table counts.
_CONNECTION_COLUMNS = ["conn_id", "kind", "variant", *SUMMED_COLUMNS, *FRACTIONAL_COLUMNS]
_COST_COLUMNS = ["conn_id", "kind", "item", "payload_messages"]
# The connection tables, biggest first (rows per connection on real traffic).
_BIGGEST_FIRST = ("ws_frames", "message_costs", "http_messages", "ws_messages", "sse_events", "tls_records", "findings", "connections")
# The columns of each table whose value may be set after its row left in a chunk (rows.py's
# sinks' `late` columns: provisional until then), resolved when all of a worker's rows are made
# (ShardOutput.late).
LATE_COLUMNS = {"ws_frames": ("message_id",)}
# Chunks of rows (of up to pipeline.SPILL_ROWS rows) waiting for EagerParts' thread, at most.
EAGER_QUEUED_CHUNKS = 4


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

    def add(self, table: str, chunks: list[pa.RecordBatch]) -> None:
        for chunk in chunks:
            if not len(chunk):
                continue
            stream = self._streams.get(table)
            if stream is None:
                stream = pa.ipc.new_stream(str(self.path(self.folder, table, self.file_index, self.shard)), chunk.schema)
                self._streams[table] = stream
            stream.write_batch(chunk)

    def close(self) -> None:
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()


class EagerParts:
    """The spill of a capture file analysed by one worker, in this process.  Its connection ids
    are final as its rows are made (the order of first packets, from the file's first id), so
    its rows are made final and written as Parquet parts by a thread while the analysis goes on,
    instead of going to a raw stream read back after it: on two cores the writing no longer
    waits for the analysis.  A chunk with a late value still provisional (LATE_COLUMNS: known
    when the worker is done) goes to a raw stream instead, its part's place among the table's
    parts kept (HeldChunks), and is written there by `write_held` once the values are known."""

    def __init__(self, folder: Path, file_index: int, first_conn_id: int, recording: object | None) -> None:
        self.first_conn_id = first_conn_id
        self._raw = RawRows(folder / RAW_FOLDER, file_index, 0)
        output = ShardOutput("", file_index, 0, _Shifted(first_conn_id), {}, recording)  # type: ignore[arg-type]
        self.tables = {table: TableParts(folder, f"f{file_index}s0", table, partial(_final_batch, table, output), count=table != "message_costs")
                       for table in CONNECTION_TABLES}
        self._held = {table: HeldChunks(self.tables[table], self._raw, columns) for table, columns in LATE_COLUMNS.items()}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-parts")
        self._queued: deque[Future] = deque()

    def add(self, table: str, chunks: list[pa.RecordBatch]) -> None:
        parts, held = self.tables[table], self._held.get(table)
        for chunk in chunks:
            if len(chunk):
                if held is None:
                    self._queue(_add_chunk, parts, table, chunk)
                else:
                    self._queue(held.add, chunk)

    def close(self) -> None:
        """Wait for every part (raising the writing's error, if any)."""
        try:
            for parts in self.tables.values():
                self._queue(parts.close)
            while self._queued:
                self._queued.popleft().result()
        finally:
            self._thread.shutdown(cancel_futures=True)
            self._raw.close()

    def write_held(self, shard: ShardOutput) -> None:
        """Write the chunks held for their late values, in their places (`shard`: the worker's, done)."""
        for held in self._held.values():
            held.write(shard)

    def abandon(self) -> None:
        """Stop writing (the analysis failed): the parts queued are dropped, the one being written ends."""
        self._thread.shutdown(cancel_futures=True)
        self._raw.close()

    def _queue(self, function: Callable, *args) -> None:
        # A few chunks wait at most: when the writing falls behind, the analysis waits for it.
        while self._queued and (self._queued[0].done() or len(self._queued) >= EAGER_QUEUED_CHUNKS):
            self._queued.popleft().result()
        self._queued.append(self._thread.submit(function, *args))


def _add_chunk(parts: "TableParts", table: str, chunk: pa.RecordBatch) -> None:
    """What EagerParts' thread does with a chunk of `table` that waits for nothing."""
    parts.add(chunk)


class HeldChunks:
    """The chunks of one worker's rows of a table (`parts`) whose `late` columns hold a provisional
    value (sinks.provisional: set after the chunk left, known when the worker is done): each run
    of them (up to PART_ROWS rows) waits in the worker's raw stream of the table, in the place of
    a part reserved among the table's parts, written with its late values put in (`write`)."""

    def __init__(self, parts: "TableParts", raw: RawRows, late: tuple[str, ...]) -> None:
        self.parts = parts
        self.raw = raw
        self.late = late
        self.places: list[list[int]] = []  # [place, rows] of each run, in the order of the raw stream
        self._run_open = False  # the last chunk of the table was held: a held one goes on its run

    def add(self, chunk: pa.RecordBatch) -> None:
        """A chunk of the table's rows: to its parts, or held when it waits for late values."""
        table = self.parts.table
        if not any(pc.any(pc.less(chunk.column(column), MISSING)).as_py() for column in self.late):
            self._run_open = False
            _add_chunk(self.parts, table, chunk)
            return
        if self._run_open and self.places[-1][1] + len(chunk) <= PART_ROWS:
            self.places[-1][1] += len(chunk)
        else:
            self.places.append([self.parts.reserve(), len(chunk)])
            self._run_open = True
        self.raw.add(table, [chunk])

    def write(self, shard: ShardOutput) -> None:
        """Write the held runs in their places, with `shard`'s late values (the raw stream closed)."""
        if not self.places:
            return
        table = self.parts.table
        final = partial(_final_batch, table, shard)
        places = iter(self.places)
        place, rows = next(places)
        batches: list[pa.RecordBatch] = []
        with pa.OSFile(str(self.raw.path(self.raw.folder, table, self.raw.file_index, self.raw.shard))) as source:
            for batch in pa.ipc.open_stream(source):  # a run's chunks, one batch each
                batches.append(final(batch))
                rows -= batch.num_rows
                if not rows:
                    self.parts.write_at(place, batches)
                    batches = []
                    place, rows = next(places, (None, None))


class _Shifted:
    """The conn_ids of a file's only worker: its own ids, shifted to the file's first (ShardOutput.conn_ids)."""

    def __init__(self, first: int) -> None:
        self.first = first

    def __getitem__(self, local: np.ndarray) -> np.ndarray:
        return local + self.first


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
            _add_reconnections(writer)
            shutil.rmtree(writer.folder / RAW_FOLDER)
        return writer.commit({**inputs.meta(), "warnings": warnings}), warnings


def _add_reconnections(writer: StoreWriter) -> None:
    """sse_reconnections of every capture and their findings (analysis/reconnections.py), from the
    parts written: a part of each, if any."""
    parts = {name: part_files(writer.folder, name) for name in reconnections.TABLES}
    if not sum(pq.read_metadata(part).num_rows for part in parts["sse_events"]):
        return
    import duckdb

    with tempfile.TemporaryDirectory(prefix="inspector-duckdb-") as spill, \
            duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "memory_limit": DUCKDB_MEMORY_LIMIT,
                                               "temp_directory": spill}) as connection:
        for name, files in parts.items():
            connection.read_parquet(duckdb_paths([path.absolute() for path in files])).create_view(name)
        table, findings = reconnections.of_connection(connection)
    if len(table):
        writer.add_part("sse_reconnections", table)
    if len(findings):
        writer.add_part("findings", findings)


def _write_file(runner, folder: Path, streamed: StreamedFile) -> OverheadTotals:
    """The Parquet parts of one capture file's tables, from its workers' raw rows (those not
    written as they were made: EagerParts); its overhead totals."""
    overhead = OverheadTotals()
    variant_of: dict[int, str] = {}
    eager = runner.written_as_made(streamed)
    written = set(eager.tables) if eager is not None else set()
    if eager is not None:
        for parts in eager.tables.values():
            overhead.merge(parts.totals)
            variant_of.update(parts.labelled)
        (shard,) = streamed.shards
        eager.write_held(shard)
    # Connections first: their variants go with the message costs into the overhead table.
    if "connections" not in written:
        for totals, labelled in runner.map(write_shard_tables, [(folder, shard, "connections", None) for shard in streamed.shards]):
            overhead.merge(totals)
            variant_of.update(labelled)
    # The biggest tables first, so that the threads end together.
    tables = sorted((table for table in CONNECTION_TABLES if table not in written | {"connections"}), key=_BIGGEST_FIRST.index)
    tasks = [(folder, shard, table, variant_of) for table in tables for shard in streamed.shards]
    for totals, _labelled in runner.map(write_shard_tables, tasks):
        overhead.merge(totals)
    if eager is not None and "message_costs" in written:
        for path in eager.tables["message_costs"].paths:
            overhead.add_costs(pq.read_table(path, columns=_COST_COLUMNS).to_pandas(), variant_of)
    return overhead


def write_shard_tables(folder: Path, shard: ShardOutput, table: str, variant_of: dict[int, str] | None) -> tuple[OverheadTotals, dict[int, str]]:
    """Write one worker's raw rows of `table` as Parquet parts of the store being written in
    `folder`, their ids final (anywhere: a thread, a Dask task).  Return what the overhead table
    counts of them, and (connections) the variant of each labelled connection."""
    parts = TableParts(folder, f"f{shard.file_index}s{shard.shard}", table, partial(_final_batch, table, shard), variant_of)
    path = RawRows.path(folder / RAW_FOLDER, table, shard.file_index, shard.shard)
    if path.exists():
        with pa.OSFile(str(path)) as source:  # read, not mapped: each batch let go once written
            for batch in pa.ipc.open_stream(source):
                parts.add(batch)
    return parts.close()


class TableParts:
    """One worker's rows of one table, a batch at a time, made final (`final(batch)`) and written
    as Parquet parts of PART_ROWS rows (`paths`); counts
    what the overhead table needs of them (variant_of: see OverheadTotals.add_costs), unless
    told not to."""

    def __init__(self, folder: Path, writer_id: str, table: str, final: Callable[[pa.RecordBatch], pa.RecordBatch],
                 variant_of: dict[int, str] | None = None, count: bool = True) -> None:
        self.table = table
        self.paths: list[Path] = []
        self.totals = OverheadTotals()
        self.labelled: dict[int, str] = {}
        self._parts = PartWriter(folder, writer_id)
        self._final = final
        self._variant_of = variant_of
        self._count = {"connections": self._count_connections, "message_costs": self._count_costs}.get(table) if count else None
        self._pending: list[pa.RecordBatch] = []

    def add(self, batch: pa.RecordBatch) -> None:
        batch = self._final(batch)
        if self._count is not None:
            self._count(batch)
        self._pending.append(batch)
        if sum(part.num_rows for part in self._pending) >= PART_ROWS:
            self._write_pending()

    def close(self) -> tuple[OverheadTotals, dict[int, str]]:
        if self._pending:
            self._write_pending()
        return self.totals, self.labelled

    def reserve(self) -> int:
        """Write the rows so far, and keep the place of the next part for rows written later (write_at)."""
        if self._pending:
            self._write_pending()
        return self._parts.reserve()

    def write_at(self, place: int, batches: list[pa.RecordBatch]) -> None:
        """Write final rows (not counted) as the part of a place reserved."""
        self.paths.append(self._parts.add_arrow(self.table, pa.Table.from_batches(batches), place))

    def _write_pending(self) -> None:
        self.paths.append(self._parts.add_arrow(self.table, pa.Table.from_batches(self._pending)))
        self._pending = []

    def _count_connections(self, batch: pa.RecordBatch) -> None:
        frame = batch.select(_CONNECTION_COLUMNS).to_pandas()
        self.totals.add_connections(frame)
        with_variant = frame[frame["variant"] != ""]
        self.labelled.update(zip(with_variant["conn_id"].tolist(), with_variant["variant"].tolist()))

    def _count_costs(self, batch: pa.RecordBatch) -> None:
        self.totals.add_costs(batch.select(_COST_COLUMNS).to_pandas(), self._variant_of)


class LocalRunner:
    """Runs the analysis in this machine's processes (pipeline.stream_captures) and the writing of
    parts in threads, one per core (Parquet compression lets go of the GIL)."""

    def __enter__(self) -> "LocalRunner":
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 4)))
        self._eager: dict[int, EagerParts] = {}
        return self

    def __exit__(self, *exc_info) -> None:
        for eager in self._eager.values():  # a file whose analysis failed
            eager.abandon()
        self._pool.shutdown(cancel_futures=True)

    def stream(self, paths: list[str], folder: Path, options: ParserOptions, jobs: int | None, progress: ProgressCallback | None,
               max_inflated_bytes: int) -> Iterator[StreamedFile]:
        self._paths = paths
        self._one_worker = {index for index, path in enumerate(paths) if file_jobs(path, jobs) == 1}
        self._next_conn_id = 0
        spills = _LocalSpills(folder, self)
        for streamed in stream_captures(paths, spills, options, jobs, progress, max_inflated_bytes=max_inflated_bytes):
            self._next_conn_id += streamed.connections
            yield streamed

    def spill(self, folder: Path, file_index: int, shard: int) -> object:
        """The spill of a worker in this process (see _LocalSpills)."""
        if file_index not in self._one_worker:
            return RawRows(folder / RAW_FOLDER, file_index, shard)
        eager = self._eager[file_index] = EagerParts(folder, file_index, self._next_conn_id, load_recording(self._paths[file_index], []))
        return eager

    def written_as_made(self, streamed: StreamedFile) -> EagerParts | None:
        """The EagerParts of a file, if its rows went to one (closed by then)."""
        eager = self._eager.pop(streamed.index, None)
        if eager is not None:
            (shard,) = streamed.shards
            if not np.array_equal(shard.conn_ids, eager.first_conn_id + np.arange(len(shard.conn_ids))):
                raise AssertionError(f"{streamed.path}: connection ids of its only worker are not in the order of first packets")
        return eager

    def map(self, function: Callable, tasks: list[tuple]) -> list:
        return list(self._pool.map(lambda task: function(*task), tasks))


class _LocalSpills:
    """The SpillFactory of LocalRunner: a file analysed by one worker (in this process) spills
    to EagerParts; the workers of the others, in other processes, to RawRows."""

    def __init__(self, folder: Path, runner: LocalRunner) -> None:
        self.folder = folder
        self.runner = runner

    def __call__(self, file_index: int, shard: int) -> object:
        return self.runner.spill(self.folder, file_index, shard)

    def __reduce__(self):
        # What goes to a worker process: its spill is always a raw one (the runner, with its
        # threads, stays here).
        return partial, (RawRows, self.folder / RAW_FOLDER)


def _final_batch(table: str, shard: ShardOutput, batch: pa.RecordBatch) -> pa.RecordBatch:
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
