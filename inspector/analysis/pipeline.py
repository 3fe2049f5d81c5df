"""Capture files -> connections -> tables.

Packets stream from the reader through the decoder into per-connection
parsers; a connection's events become table rows as they come (rows.py), and
the connection is let go as soon as it is over (both directions finished and
quiet for a while, never any payload and quiet for longer, or the longest idle
when too many are open, or at the end of the capture), so memory follows the
number of open connections and the size of the tables, not the file size.

Records are read and decoded a chunk at a time, column-wise (capture.chunks,
analysis.segments); the per-packet loop then only finds each segment's
connection by its flow number and feeds it.

Big files are split among worker processes by connection: every worker reads
and decodes the whole (memory-mapped) file but only parses the connections of
its shard, chosen by a function of the port pair that both directions and any
reuse of the 4-tuple share.  Connection ids are then renumbered in order of each
connection's first packet, so results do not depend on the number of workers.
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from typing import IO

import numpy as np
import pandas as pd

from inspector.analysis import reconnections
from inspector.analysis.accounting import ConnectionAccount
from inspector.analysis.chunked import assemble_table
from inspector.analysis.handoff import hand_off, take_over
from inspector.analysis.rows import ShardRows
from inspector.analysis.recording import label_variants, load_recording, scenario_of, staleness_rows, with_recording_keylog
from inspector.analysis.summary import overhead_table
from inspector.analysis.tables import CONNECTION_TABLES, SCHEMAS, TABLE_NAMES, make_table
from inspector.analysis.segments import ShardSegments, shard_segments
from inspector.capture.files import DEFAULT_MAX_INFLATED_BYTES, CaptureBytes, CaptureInfo, capture_name, is_regular_file, open_capture
from inspector.capture.chunks import read_record_chunks
from inspector.decode import SUPPORTED_LINK_TYPES
from inspector.errors import CaptureError
from inspector.parse.budget import DecompressionBudget
from inspector.parse.connection import ParserOptions, TcpConnection
from inspector.parse.keylog import KeyLog
from inspector.parse.tcp import TCP_ACK, TCP_SYN

# A finished connection is kept this long (capture time) for late ACKs.
LINGER_NS = 30 * 1_000_000_000
# A connection that never carried payload and has been quiet this long (capture
# time) is over: a SYN never answered, a handshake nothing followed.  A
# connection idle longer than this that sends data again is a mid-stream one.
NO_PAYLOAD_IDLE_NS = 5 * 60 * 1_000_000_000
# Open connections held at once per worker: past this, the longest idle tenth
# are finished (and counted in a warning); one of them that goes on later
# shows as two connections.
MAX_OPEN_CONNECTIONS = 50_000
SWEEP_EVERY_PACKETS = 8192
# Every this many sweeps, connections holding more than long_connections.LONG_CONNECTION_RECORDS
# records move them to disk (a look at every open connection: not at every sweep).
LONG_CHECK_SWEEPS = 8
# Below this size a second process costs about what it saves (measured on real loopback
# traffic, 2 cores: even at 1.3 MiB, 0.29 s against 0.26 s at 2.6 MiB, 0.60 against 0.48 at 5.4).
PARALLEL_MIN_BYTES = 8 * 1024 * 1024

# progress(path, fraction): how far into `path` the analysis is, 0.0 to 1.0
ProgressCallback = Callable[[str, float], None]


@dataclass
class Analysis:
    """The tables of one or more captures, and the warnings met on the way."""

    tables: dict[str, pd.DataFrame]
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


@dataclass
class ShardResult:
    """What one worker found in one file: tables with local connection ids (or, streamed, what
    makes the rows it spilled final)."""

    tables: dict[str, list[pd.DataFrame]]  # as chunks (chunked.assemble_table); none when streamed
    first_packet: list[int]  # local conn_id -> index of its first packet in the file
    info: CaptureInfo
    # Streamed: the late values (sinks.TableSink.late) of each table's spilled rows: by column,
    # (rows, values) for sinks.resolve_late.
    late: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    packets: int = 0
    tcp_packets: int = 0
    wire_bytes: int = 0
    non_tcp: Counter = field(default_factory=Counter)
    bogus_lengths: int = 0
    evicted: int = 0  # connections finished early because too many were open


# Streamed analysis: what receives a worker's rows as they are made, `spill.add(table, chunks)`
# (chunks of table rows as Arrow record batches, with the worker's own connection ids and
# provisional late values), then
# `spill.close()`; made in the worker by `SpillFactory(file_index, shard)`, which goes to worker
# processes by pickle (a module-level class or function, or a functools.partial of one).
SpillFactory = Callable[[int, int], object]
# Rows of a table a worker holds before they go to its spill.
SPILL_ROWS = 65_536


@dataclass
class ShardOutput:
    """What makes the rows one worker spilled final: their table connection ids and late values."""

    path: str
    file_index: int
    shard: int
    conn_ids: np.ndarray  # the worker's conn_id -> conn_id in the tables
    late: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]  # table -> its late values (ShardResult.late)
    recording: object | None  # recording.Recording, from the capture's sidecar

    def label_variants(self, connections: pd.DataFrame) -> pd.Series | None:
        """The variants of rows of the connections table (None: no recording, none has one)."""
        return None if self.recording is None else label_variants(connections, self.recording)


@dataclass
class StreamedFile:
    """One capture file of a streamed analysis (`stream_captures`): its rows went to the spills
    of its shards, with each shard's own connection ids; here is what makes them final."""

    path: str
    index: int  # of the file among the paths
    shards: list[ShardOutput]
    captures_row: dict
    warnings: list[str]
    recording: object | None

    @property
    def connections(self) -> int:
        return sum(len(shard.conn_ids) for shard in self.shards)

    def staleness(self) -> pd.DataFrame:
        rows = staleness_rows(self.recording, capture_name(self.path)) if self.recording is not None else []
        return make_table("staleness", rows)


def stream_captures(paths: list[str | os.PathLike], spill: SpillFactory, options: ParserOptions | None = None,
                    jobs: int | None = None, progress: ProgressCallback | None = None, *,
                    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES) -> Iterator[StreamedFile]:
    """Analyse capture files as analyze_captures does, but hand every table's rows to spills as
    they are made (see SpillFactory) instead of keeping them: one StreamedFile per file, once
    its workers are done.  Arguments as for analyze_captures."""
    options = options or ParserOptions()
    next_conn_id = 0
    for index, path in enumerate(map(str, paths)):
        report = (lambda fraction, path=path: progress(path, fraction)) if progress is not None else None
        shards = _analyze_file(path, options, file_jobs(path, jobs), report, max_inflated_bytes, partial(spill, index))
        streamed = streamed_file(path, index, shards, next_conn_id)
        next_conn_id += streamed.connections
        yield streamed


def file_jobs(path: str, jobs: int | None) -> int:
    """Workers for one file: `jobs` (default: default_jobs), but one for a pipe or a device,
    which can be read only once."""
    return (jobs if jobs is not None else default_jobs(path)) if is_regular_file(path) else 1


def analyze_shard(path: str, options: ParserOptions, shard: int, shards: int, spill: object, *,
                  max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES, source: CaptureBytes | None = None) -> ShardResult:
    """Streamed: parse the connections of shard `shard` of `shards` of a file, their rows going
    to `spill` (see SpillFactory), anywhere (a Dask task): source, the capture's bytes when
    already open (else opened from `path`)."""
    return _analyze_shard(path, options, shard, shards, max_inflated_bytes, source=source, spill=lambda _shard: spill)


def streamed_file(path: str, index: int, shards: list[ShardResult], first_conn_id: int) -> StreamedFile:
    """The StreamedFile of a file whose shards are done; its connection ids start at first_conn_id."""
    conn_ids, count = _conn_id_mapping(shards, first_conn_id)
    captures_row, warnings = _capture_row(path, shards, count)
    recording = load_recording(path, warnings)
    captures_row["scenario"] = scenario_of(recording)
    outputs = [ShardOutput(path, index, number, ids, shard.late, recording) for number, (ids, shard) in enumerate(zip(conn_ids, shards))]
    return StreamedFile(path, index, outputs, captures_row, warnings, recording)


def default_jobs(path: str) -> int:
    try:
        size = os.path.getsize(path)
    except OSError:
        return 1
    return max(1, min(os.cpu_count() or 1, 4)) if size >= PARALLEL_MIN_BYTES else 1


def analyze_captures(paths: list[str | os.PathLike], options: ParserOptions | None = None, jobs: int | None = None,
                     progress: ProgressCallback | None = None, *,
                     max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES) -> Analysis:
    """Analyse capture files into the tables of `inspector.analysis.tables`.

    jobs: worker processes per file (default: one per core for big files; a
    pipe or a device, which can be read only once, gets one).
    progress: called now and then, in the calling thread, with a file and the
    fraction of its bytes read (ending with 1.0 for every file).
    max_inflated_bytes: the cap on a file's data inflated from gzip, or read from
    a pipe or a device, into a temporary file (inspector.capture.files).
    """
    options = options or ParserOptions()
    warnings: list[str] = []
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLE_NAMES}
    next_conn_id = 0
    for path in map(str, paths):
        report = (lambda fraction, path=path: progress(path, fraction)) if progress is not None else None
        shards = _analyze_file(path, options, file_jobs(path, jobs), report, max_inflated_bytes)
        tables, capture_row, file_warnings = _merge_shards(path, shards, next_conn_id)
        tables["sse_reconnections"], findings = reconnections.of_tables(tables)
        if len(findings):
            tables["findings"] = pd.concat([tables["findings"], findings], ignore_index=True).sort_values(["conn_id", "ts"], kind="stable",
                                                                                                          ignore_index=True)
        recording = load_recording(path, file_warnings)
        capture_row["scenario"] = scenario_of(recording)
        if recording is not None:
            tables["connections"]["variant"] = label_variants(tables["connections"], recording)
            tables["staleness"] = make_table("staleness", staleness_rows(recording, capture_name(path)))
        next_conn_id += len(tables["connections"])
        for name, table in tables.items():
            parts[name].append(table)
        parts["captures"].append(make_table("captures", [capture_row]))
        warnings.extend(file_warnings)
    tables = {name: _concat(name, parts[name]) for name in TABLE_NAMES if name != "overhead"}
    tables["overhead"] = overhead_table(tables["connections"], tables["message_costs"])
    return Analysis(tables=tables, warnings=warnings)


def _concat(name: str, frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return make_table(name)
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)


def _analyze_file(path: str, options: ParserOptions, jobs: int, report: Callable[[float], None] | None,
                  max_inflated_bytes: int, spill: Callable[[int], object] | None = None) -> list[ShardResult]:
    warnings: list[str] = []
    options = with_recording_keylog(path, options, warnings)
    if jobs <= 1:
        shards = [_analyze_shard(path, options, 0, 1, max_inflated_bytes, report, spill=spill)]
    else:
        shards = _analyze_file_in_workers(path, options, jobs, report, max_inflated_bytes, spill)
    if report is not None:
        report(1.0)
    shards[0].info.warnings.extend(warnings)  # the file's warnings are shard 0's
    return shards


# In a worker process: the capture's bytes and the files for the results, opened by the
# parent before it forked the worker.
_inherited_source: CaptureBytes | None = None
_inherited_outputs: dict[int, IO[bytes]] = {}


def _inherit(source: CaptureBytes, outputs: dict[int, IO[bytes]]) -> None:
    """Worker initializer: with fork, its arguments are inherited, not pickled (a memory map cannot be)."""
    global _inherited_source, _inherited_outputs
    _inherited_source, _inherited_outputs = source, outputs


def _analyze_file_in_workers(path: str, options: ParserOptions, jobs: int, report: Callable[[float], None] | None,
                             max_inflated_bytes: int, spill: Callable[[int], object] | None) -> list[ShardResult]:
    # Shard 0 runs here, in this process, while jobs - 1 forked workers take the others: one
    # fork and one handed-off result fewer, and shard 0 (which reads every packet) reports its
    # progress directly.
    # Opened once, here: a gzip file is inflated once for every worker, not once by each.
    with ExitStack() as stack:
        source = stack.enter_context(open_capture(path, max_inflated_bytes))
        outputs = {shard: stack.enter_context(tempfile.TemporaryFile()) for shard in range(1, jobs)}
        pool = stack.enter_context(ProcessPoolExecutor(max_workers=jobs - 1, mp_context=get_context("fork"),
                                                       initializer=_inherit, initargs=(source, outputs)))
        futures = [pool.submit(_analyze_shard_and_hand_off, path, options, shard, jobs, max_inflated_bytes, spill)
                   for shard in range(1, jobs)]
        first = _analyze_shard(path, options, 0, jobs, max_inflated_bytes, report, source, spill)
        return [first] + [take_over(future.result(), outputs[shard]) for shard, future in zip(range(1, jobs), futures)]


def _analyze_shard_and_hand_off(path: str, options: ParserOptions, shard: int, shards: int, max_inflated_bytes: int,
                                spill: Callable[[int], object] | None):
    """In a worker: `_analyze_shard`, its result handed to the parent through the file for the shard."""
    return hand_off(_analyze_shard(path, options, shard, shards, max_inflated_bytes, spill=spill), _inherited_outputs[shard])


def _merge_shards(path: str, shards: list[ShardResult], first_conn_id: int) -> tuple[dict[str, pd.DataFrame], dict, list[str]]:
    mapping, count = _conn_id_mapping(shards, first_conn_id)
    tables = {}
    for name in CONNECTION_TABLES:
        # Taken from the shards: every column is written once, renumbered and in order,
        # and the shards' chunks of it are let go as it is.
        chunks, chunk_ids = [], []
        for shard, ids in zip(shards, mapping):
            shard_chunks = shard.tables.pop(name)
            chunks += shard_chunks
            chunk_ids += [ids] * len(shard_chunks)
        order = ["conn_id"] + [c for c in ("exchange_id", "frame_id", "message_id", "record_id", "item_id", "ts") if c in SCHEMAS[name] and name != "message_costs"]
        tables[name] = assemble_table(name, chunks, chunk_ids, order)
    capture_row, warnings = _capture_row(path, shards, count)
    return tables, capture_row, warnings


def _conn_id_mapping(shards: list[ShardResult], first_conn_id: int) -> tuple[list[np.ndarray], int]:
    """Per shard, the table conn_id of each of its connections (global ids follow the order of
    each connection's first packet, from `first_conn_id`); and how many there are."""
    firsts = [(index, shard_no, local) for shard_no, shard in enumerate(shards) for local, index in enumerate(shard.first_packet)]
    firsts.sort()
    mapping = [np.zeros(len(shard.first_packet), dtype=np.int64) for shard in shards]
    for global_id, (_, shard_no, local) in enumerate(firsts):
        mapping[shard_no][local] = first_conn_id + global_id
    return mapping, len(firsts)


def _capture_row(path: str, shards: list[ShardResult], connections: int) -> tuple[dict, list[str]]:
    """The file's row of the captures table, and its warnings."""
    lead = shards[0]  # shard 0 counted every packet of the file
    info = lead.info
    non_tcp = sum((shard.non_tcp for shard in shards), Counter())
    warnings = list(info.warnings)
    bogus = sum(shard.bogus_lengths for shard in shards)
    if bogus:
        warnings.append(f"{path}: {bogus} packets claim more bytes on the wire than their complete IP packet holds (bogus orig_len); the extra bytes are counted as unparsed")
    evicted = sum(shard.evicted for shard in shards)
    if evicted:
        warnings.append(f"{path}: {evicted} connections were finished early because over {MAX_OPEN_CONNECTIONS} were open at once "
                        "(the longest idle first); one that went on later shows as two connections")
    if lead.packets == 0 and not info.truncated:
        warnings.append(f"{path}: capture holds no packets")
    capture_row = {
        "capture": capture_name(path),
        "format": info.format,
        "link_types": ",".join(str(t) for t in sorted(info.link_types)),
        "packets": lead.packets,
        "tcp_packets": sum(shard.tcp_packets for shard in shards),
        "non_tcp_packets": sum(non_tcp.values()),
        "non_tcp_detail": ", ".join(f"{reason} {count}" for reason, count in sorted(non_tcp.items())),
        "wire_bytes": lead.wire_bytes,
        "connections": connections,
        "truncated": info.truncated,
        "warnings": capture_name("; ".join(warnings)),
    }
    return capture_row, warnings


@contextmanager
def _without_cycle_collector():
    """Parsing allocates millions of objects and creates no reference cycles
    (a full collection after analysing a capture finds nothing to free), yet
    the cycle collector would rescan every live object again and again: a
    fifth of the run time on big captures, growing with the heap.  Pause it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _analyze_shard(path: str, options: ParserOptions, shard: int, shards: int, max_inflated_bytes: int,
                   report: Callable[[float], None] | None = None, source: CaptureBytes | None = None,
                   spill: Callable[[int], object] | None = None) -> ShardResult:
    """Parse the connections of one shard of a file (all of it when shards == 1).

    How far into the file it is goes to `report` now and then.  source: the capture's
    bytes, already open (in a worker, those its parent opened before the fork).
    spill: streamed, made with the shard number, the spill of its rows (see SpillFactory)."""
    with _without_cycle_collector():
        return _analyze_shard_body(path, options, shard, shards, max_inflated_bytes, report,
                                   source if source is not None else _inherited_source,
                                   spill(shard) if spill is not None else None)


def _analyze_shard_body(path: str, options: ParserOptions, shard: int, shards: int, max_inflated_bytes: int,
                        report: Callable[[float], None] | None, source: CaptureBytes | None, spill) -> ShardResult:
    info = CaptureInfo(path=path)
    result = ShardResult(tables={}, first_packet=[], info=info)
    shard_state = _Shard(result, capture_name(path), options, shard, spill)
    counts_everything = shard == 0
    for chunk in read_record_chunks(path, info, max_inflated_bytes=max_inflated_bytes, source=source):
        if len(info.tls_key_logs) > shard_state.key_logs_read:
            shard_state.add_capture_secrets(info.tls_key_logs)
        if counts_everything:
            result.packets += len(chunk)
            result.wire_bytes += int(chunk.wire_len.sum())
        segments = shard_segments(chunk, shard, shards, result.non_tcp if counts_everything else None)
        result.bogus_lengths += sum(excess > 0 for excess in segments.excess_bytes)
        # Split where the open connections are swept (every SWEEP_EVERY_PACKETS segments).
        done = 0
        while done < len(segments):
            upto = min(len(segments), done + SWEEP_EVERY_PACKETS - result.tcp_packets % SWEEP_EVERY_PACKETS)
            shard_state.add_segments(segments, done, upto)
            result.tcp_packets += upto - done
            done = upto
            if result.tcp_packets % SWEEP_EVERY_PACKETS == 0:
                shard_state.sweep()
                if report is not None and info.size:
                    report((chunk.base + int(chunk.start[segments.index[upto - 1] - chunk.first_index])) / info.size)
    _check_link_types(info, path)
    shard_state.finish()
    return result


class _Shard:
    """The open connections of one worker and what it has found so far."""

    def __init__(self, result: ShardResult, capture: str, options: ParserOptions, shard: int, spill=None) -> None:
        self.result = result
        self.spill = spill  # streamed: where rows go as they are made
        self.capture = capture  # the name in the tables
        self.options = options
        # Streamed: long connections' records go to the spill's folder (the store's temporary one).
        # (Handing on is given the spill, not this object: no reference cycle, so that all a worker
        # holds is let go when it is done, the cycle collector being paused.)
        self.rows = ShardRows(getattr(spill, "folder", None), partial(_hand_on, spill) if spill is not None else None, arrow_chunks=spill is not None)
        self.sweeps = 0
        # This worker's share of the capture gets the whole budget: under it, results
        # do not depend on the number of workers (see ParserOptions).
        self.decompression = DecompressionBudget(options.max_decompressed_per_capture)
        self.open_connections: dict[int, ConnectionAccount] = {}  # by flow number (analysis.segments.flow_of)
        self.last_ts = 0  # the latest packet time so far
        # TLS secrets: the option's, and the capture's own as its decryption secrets blocks are read
        # (the connections share this one object: a secret added reaches every TLS handshake after it).
        self.keylog = options.keylog.copy() if options.keylog else KeyLog()
        self.key_logs_read = 0

    def add_capture_secrets(self, key_logs: list[bytes]) -> None:
        for text in key_logs[self.key_logs_read:]:
            self.keylog.add_text(text)
        self.key_logs_read = len(key_logs)

    def add_segments(self, segments: ShardSegments, start: int, end: int) -> None:
        """Segments start to end of `segments` to their connections."""
        data = segments.data
        get = self.open_connections.get
        columns = (segments.flow, segments.direction, segments.ts_ns, segments.seq, segments.ack, segments.flags, segments.payload_start,
                   segments.payload_end, segments.payload_wire_len, segments.wire_len, segments.link_bytes, segments.ip_header_bytes,
                   segments.tcp_header_bytes, segments.excess_bytes)
        for row, flow, direction, ts_ns, seq, ack, flags, payload_start, payload_end, payload_wire_len, wire_len, link_bytes, \
                ip_header_bytes, tcp_header_bytes, excess_bytes in zip(range(start, end), *(column[start:end] for column in columns)):
            account = get(flow)
            if account is None or (flags & SYN_WITHOUT_ACK == TCP_SYN and _starts_new_connection(account, direction, seq)):
                account = self._open(segments, row, flow, direction, account)
            account.add_segment(direction ^ account.side0_direction, ts_ns, seq, ack, flags, data[payload_start:payload_end],
                                payload_wire_len, wire_len, link_bytes, ip_header_bytes, tcp_header_bytes, excess_bytes)
            if account.connection.events:
                self.rows.take_events(account)  # as rows: event objects never pile up
        if end > start:
            self.last_ts = max(self.last_ts, max(segments.ts_ns[start:end]))

    def _open(self, segments: ShardSegments, row: int, flow: int, direction: int, old: ConnectionAccount | None) -> ConnectionAccount:
        """A new connection for segment `row`, which the connection `old` (if any) had the 4-tuple of."""
        if old is not None:
            _finish(old, self.rows)  # left in open_connections: the new one takes its place
        if len(self.open_connections) >= MAX_OPEN_CONNECTIONS:
            self.result.evicted += _evict_idlest(self.open_connections, self.rows)
        src, dst = segments.endpoints(row)
        # The side with the higher (ephemeral) port is the likelier client.
        hint = 0 if src[1] > dst[1] else 1
        first_packet = self.result.first_packet
        connection = TcpConnection(len(first_packet), self.options, client_hint=hint, capture_budget=self.decompression,
                                   one_frame_records=True, keylog=self.keylog)  # written as rows straight away (rows.py)
        first_index = segments.index[row]
        account = ConnectionAccount(len(first_packet), self.capture, connection, (src, dst), side0_direction=direction, first_index=first_index)
        first_packet.append(first_index)
        self.open_connections[flow] = account
        return account

    def sweep(self) -> None:
        _sweep(self.open_connections, self.rows, self.last_ts)
        self.sweeps += 1
        if self.sweeps % LONG_CHECK_SWEEPS == 0:
            self.rows.spill_long(self.open_connections.values())
        if self.spill is not None:
            _hand_on(self.spill, self.rows.sinks)

    def finish(self) -> None:
        for account in self.open_connections.values():
            _finish(account, self.rows)
        if self.spill is None:
            self.result.tables = self.rows.chunks()
            return
        try:
            for name, sink in self.rows.sinks.items():
                sink.flush()
                self.spill.add(name, sink.take_made_chunks())
                if sink.late:
                    self.result.late[name] = sink.take_late_values()
        finally:
            self.spill.close()


def _hand_on(spill, sinks: dict) -> None:
    """Hand `spill` every table of `sinks` with SPILL_ROWS rows in chunks."""
    for name, sink in sinks.items():
        if sum(map(len, sink.chunks)) >= SPILL_ROWS:
            spill.add(name, sink.take_made_chunks())


def _check_link_types(info: CaptureInfo, path: str) -> None:
    """A capture none of whose interfaces we can decode is bad input.

    Packets of an unsupported interface next to supported ones are counted
    as non-TCP ("unsupported-link-type") instead.
    """
    if info.link_types and not any(t in SUPPORTED_LINK_TYPES for t in info.link_types):
        names = ", ".join(str(t) for t in sorted(info.link_types))
        raise CaptureError(f"{path}: unsupported link type {names} (supported: Ethernet, Linux cooked SLL/SLL2, BSD NULL/LOOP, raw IP)")


SYN_WITHOUT_ACK = TCP_SYN | TCP_ACK  # flags & this == TCP_SYN: a SYN that is not a SYN-ACK


def _starts_new_connection(account: ConnectionAccount, direction: int, seq: int) -> bool:
    """Whether a SYN (not a SYN-ACK) going in `direction` on a 4-tuple whose connection is over
    (or was another one) starts anew."""
    connection = account.connection
    if connection.finished:
        return True
    stream = connection.streams[direction ^ account.side0_direction]
    # Same 4-tuple, a SYN with a different ISN after data flowed: port reuse
    # where the old connection's end was not captured.
    return stream.syn_seen and stream.next_offset > 0 and stream.offset_of(seq) != -1


def _sweep(open_connections: dict, rows: ShardRows, now_ns: int) -> None:
    # Only a connection quiet for longer than the shorter wait can be over: that cheap
    # test first, since every open connection is looked at every SWEEP_EVERY_PACKETS packets
    # (asking the parser whether it is finished, for each, was 1 us per packet at 1M packets).
    quiet_since = now_ns - _SHORTEST_IDLE_NS
    done = [key for key, acc in open_connections.items() if acc.end_ns < quiet_since and _is_over(acc, now_ns - acc.end_ns)]
    for key in done:
        _finish(open_connections.pop(key), rows)


def _is_over(account: ConnectionAccount, idle_ns: int) -> bool:
    if account.connection.finished:
        return idle_ns > LINGER_NS
    return idle_ns > NO_PAYLOAD_IDLE_NS and not account.carried_payload


_SHORTEST_IDLE_NS = min(LINGER_NS, NO_PAYLOAD_IDLE_NS)  # _is_over is False for anything quieter


def _evict_idlest(open_connections: dict, rows: ShardRows) -> int:
    """Finish the longest idle tenth of the open connections; return how many."""
    by_idle = sorted(open_connections, key=lambda key: open_connections[key].end_ns)
    evicted = by_idle[: max(1, MAX_OPEN_CONNECTIONS // 10)]
    for key in evicted:
        _finish(open_connections.pop(key), rows)
    return len(evicted)


def _finish(account: ConnectionAccount, rows: ShardRows) -> None:
    account.connection.close(max(account.end_ns, 0))
    rows.finish(account)


__all__ = ["Analysis", "CaptureError", "ShardOutput", "ShardResult", "StreamedFile", "analyze_captures", "analyze_shard", "stream_captures", "streamed_file"]
