"""Capture files -> connections -> tables.

Packets stream from the reader through the decoder into per-connection
parsers; a connection's events become table rows as they come (rows.py), and
the connection is let go as soon as it is over (both directions finished and
quiet for a while, never any payload and quiet for longer, or the longest idle
when too many are open, or at the end of the capture), so memory follows the
number of open connections and the size of the tables, not the file size.

Big files are split among worker processes by connection: every worker reads
the whole (memory-mapped) file but only parses the connections of its shard,
chosen by a function of the port pair that both directions and any reuse of
the 4-tuple share.  Connection ids are then renumbered in order of each
connection's first packet, so results do not depend on the number of workers.
"""

from __future__ import annotations

import gc
import os
import struct
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.shared_memory import SharedMemory

import numpy as np
import pandas as pd

from inspector.analysis.accounting import ConnectionAccount
from inspector.analysis.rows import ShardRows
from inspector.analysis.recording import label_variants, load_recording, staleness_rows
from inspector.analysis.summary import overhead_table
from inspector.analysis.tables import CONNECTION_TABLES, TABLE_NAMES, make_table
from inspector.capture.files import DEFAULT_MAX_INFLATED_BYTES, CaptureBytes, CaptureInfo, capture_name, is_regular_file, open_capture, read_packets
from inspector.decode import SUPPORTED_LINK_TYPES, decode_packet, shard_of, shard_of_ports
from inspector.errors import CaptureError
from inspector.parse.budget import DecompressionBudget
from inspector.parse.connection import ParserOptions, TcpConnection
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
# Below this size a second process costs about what it saves (measured on real loopback
# traffic, 2 cores: even at 1.3 MiB, 0.29 s against 0.26 s at 2.6 MiB, 0.60 against 0.48 at 5.4).
PARALLEL_MIN_BYTES = 8 * 1024 * 1024
PROGRESS_POLL_S = 0.25  # how often the parent passes on its workers' progress

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
class _ShardResult:
    """What one worker found in one file: tables with local connection ids."""

    tables: dict[str, pd.DataFrame]
    first_packet: list[int]  # local conn_id -> index of its first packet in the file
    info: CaptureInfo
    packets: int = 0
    tcp_packets: int = 0
    wire_bytes: int = 0
    non_tcp: Counter = field(default_factory=Counter)
    bogus_lengths: int = 0
    evicted: int = 0  # connections finished early because too many were open


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
        file_jobs = (jobs if jobs is not None else default_jobs(path)) if is_regular_file(path) else 1
        shards = _analyze_file(path, options, file_jobs, report, max_inflated_bytes)
        tables, capture_row, file_warnings = _merge_shards(path, shards, next_conn_id)
        recording = load_recording(path, file_warnings)
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
                  max_inflated_bytes: int) -> list[_ShardResult]:
    if jobs <= 1:
        shards = [_analyze_shard(path, options, 0, 1, max_inflated_bytes, report)]
    else:
        shards = _analyze_file_in_workers(path, options, jobs, report, max_inflated_bytes)
    if report is not None:
        report(1.0)
    return shards


# In a worker process: the capture's bytes, opened by the parent before it forked the worker.
_inherited_source: CaptureBytes | None = None


def _inherit_source(source: CaptureBytes) -> None:
    """Worker initializer: with fork, its arguments are inherited, not pickled (a memory map cannot be)."""
    global _inherited_source
    _inherited_source = source


def _analyze_file_in_workers(path: str, options: ParserOptions, jobs: int, report: Callable[[float], None] | None,
                             max_inflated_bytes: int) -> list[_ShardResult]:
    # Worker 0 reads every packet: it writes how far it is into a shared float the
    # parent reads while it waits (a callable cannot cross into a worker process).
    shared = SharedMemory(create=True, size=8) if report is not None else None
    try:
        # Opened once, here: a gzip file is inflated once for every worker, not once by each.
        with open_capture(path, max_inflated_bytes) as source, \
                ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork"),
                                    initializer=_inherit_source, initargs=(source,)) as pool:
            futures = [pool.submit(_analyze_shard, path, options, shard, jobs, max_inflated_bytes, None,
                                   shared.name if shard == 0 and shared else None)
                       for shard in range(jobs)]
            pending = futures
            while pending:  # a failed worker shows in its result() below
                _done, pending = wait(pending, timeout=PROGRESS_POLL_S)
                if shared is not None:
                    report(struct.unpack_from("d", shared.buf)[0])
            return [future.result() for future in futures]
    finally:
        if shared is not None:
            shared.close()
            shared.unlink()


def _merge_shards(path: str, shards: list[_ShardResult], first_conn_id: int) -> tuple[dict[str, pd.DataFrame], dict, list[str]]:
    # Global connection ids follow the order of each connection's first packet.
    firsts = [(index, shard_no, local) for shard_no, shard in enumerate(shards) for local, index in enumerate(shard.first_packet)]
    firsts.sort()
    mapping = [np.zeros(len(shard.first_packet), dtype=np.int64) for shard in shards]
    for global_id, (_, shard_no, local) in enumerate(firsts):
        mapping[shard_no][local] = first_conn_id + global_id
    tables = {}
    for name in CONNECTION_TABLES:
        pieces = []
        for shard, ids in zip(shards, mapping):
            # Taken from the shard, renumbered in place: a big table is never copied
            # more than once (by the sort, when it is not in order already).
            table = shard.tables.pop(name)
            if len(table):
                table["conn_id"] = ids[table["conn_id"].to_numpy(dtype=np.int64)]
                pieces.append(table)
        merged = _concat(name, pieces)
        del pieces
        order = ["conn_id"] + [c for c in ("exchange_id", "frame_id", "message_id", "ts") if c in merged.columns and name != "message_costs"]
        if not _in_order(merged, order):
            merged = merged.sort_values(order, kind="stable")
        tables[name] = merged.reset_index(drop=True)
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
        "connections": len(firsts),
        "truncated": info.truncated,
        "warnings": capture_name("; ".join(warnings)),
    }
    return tables, capture_row, warnings


def _in_order(table: pd.DataFrame, columns: list[str]) -> bool:
    """Whether the rows are sorted by `columns` already (False when unsure)."""
    tied = np.ones(max(len(table) - 1, 0), dtype=bool)  # pairs of rows equal so far
    for column in columns:
        if not tied.any():
            return True
        series = table[column]
        if series.dtype.kind not in "iuf" or series.hasnans:
            return False  # let the sort decide where missing values go
        values = series.to_numpy(dtype=np.float64 if series.dtype.kind == "f" else np.int64)
        if (tied & (values[:-1] > values[1:])).any():
            return False
        tied &= values[:-1] == values[1:]
    return True  # rows still tied keep their order in a stable sort too


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
                   report: Callable[[float], None] | None = None, shared_progress: str | None = None) -> _ShardResult:
    """Parse the connections of one shard of a file (all of it when shards == 1).

    How far into the file it is goes to `report`, or into the shared memory block
    named `shared_progress` (a float), now and then."""
    # Attaching registers the block with the resource tracker the fork shares with the
    # parent: the same name again, which the parent's unlink unregisters once.
    shared = SharedMemory(name=shared_progress) if shared_progress else None
    if shared is not None:
        report = lambda fraction: struct.pack_into("d", shared.buf, 0, fraction)  # noqa: E731
    try:
        with _without_cycle_collector():
            return _analyze_shard_body(path, options, shard, shards, max_inflated_bytes, report)
    finally:
        if shared is not None:
            shared.close()


def _analyze_shard_body(path: str, options: ParserOptions, shard: int, shards: int, max_inflated_bytes: int,
                        report: Callable[[float], None] | None = None) -> _ShardResult:
    info = CaptureInfo(path=path)
    capture = capture_name(path)  # the name in the tables
    result = _ShardResult(tables={}, first_packet=[], info=info)
    rows = ShardRows()
    # This worker's share of the capture gets the whole budget: under it, results
    # do not depend on the number of workers (see ParserOptions).
    decompression = DecompressionBudget(options.max_decompressed_per_capture)
    open_connections: dict[tuple, ConnectionAccount] = {}
    counts_everything = shard == 0
    last_ts = 0
    index = -1
    for index, (ts_ns, link_type, wire_len, data) in enumerate(read_packets(path, info, max_inflated_bytes=max_inflated_bytes,
                                                                                    source=_inherited_source)):
        if counts_everything:
            result.packets += 1
            result.wire_bytes += wire_len
        owner = shard_of(link_type, data, shards) if shards > 1 else shard
        if owner != shard and owner != -1:
            continue  # another worker's connection: not even decoded
        packet = decode_packet(ts_ns, link_type, wire_len, data)
        if type(packet) is str:
            # Counted once: by its owner, or by worker 0 when no owner was evident.
            if owner == shard or counts_everything:
                result.non_tcp[packet] += 1
            continue
        if shards > 1 and shard_of_ports(packet.src_port, packet.dst_port, shards) != shard:
            continue
        result.tcp_packets += 1
        if packet.excess_bytes > 0:
            result.bogus_lengths += 1
        last_ts = ts_ns if ts_ns > last_ts else last_ts
        src = (packet.src_ip, packet.src_port)
        dst = (packet.dst_ip, packet.dst_port)
        key = (src, dst) if src <= dst else (dst, src)
        account = open_connections.get(key)
        if account is not None and _starts_new_connection(account, packet, src):
            _finish(account, rows)
            account = None
        if account is None:
            if len(open_connections) >= MAX_OPEN_CONNECTIONS:
                result.evicted += _evict_idlest(open_connections, rows)
            # The side with the higher (ephemeral) port is the likelier client.
            hint = 0 if packet.src_port > packet.dst_port else 1
            connection = TcpConnection(len(result.first_packet), options, client_hint=hint, capture_budget=decompression)
            account = ConnectionAccount(len(result.first_packet), capture, connection, (src, dst))
            result.first_packet.append(index)
            open_connections[key] = account
        account.add_packet(packet, 0 if src == account.endpoints[0] else 1)
        if account.connection.events:
            rows.take_events(account)  # as rows: event objects never pile up
        if result.tcp_packets % SWEEP_EVERY_PACKETS == 0:
            _sweep(open_connections, rows, last_ts)
            if report is not None and info.size:
                report(info.position / info.size)
    _check_link_types(info, path)
    for account in open_connections.values():
        _finish(account, rows)
    result.tables = rows.tables()
    return result


def _check_link_types(info: CaptureInfo, path: str) -> None:
    """A capture none of whose interfaces we can decode is bad input.

    Packets of an unsupported interface next to supported ones are counted
    as non-TCP ("unsupported-link-type") instead.
    """
    if info.link_types and not any(t in SUPPORTED_LINK_TYPES for t in info.link_types):
        names = ", ".join(str(t) for t in sorted(info.link_types))
        raise CaptureError(f"{path}: unsupported link type {names} (supported: Ethernet, Linux cooked SLL/SLL2, BSD NULL/LOOP, raw IP)")


def _starts_new_connection(account: ConnectionAccount, packet, src) -> bool:
    """A SYN on a 4-tuple whose connection is over (or was another one) starts anew."""
    if not packet.flags & TCP_SYN or packet.flags & TCP_ACK:
        return False
    connection = account.connection
    if connection.finished:
        return True
    side = 0 if src == account.endpoints[0] else 1
    stream = connection.streams[side]
    # Same 4-tuple, a SYN with a different ISN after data flowed: port reuse
    # where the old connection's end was not captured.
    return stream.syn_seen and stream.next_offset > 0 and stream.offset_of(packet.seq) != -1


def _sweep(open_connections: dict, rows: ShardRows, now_ns: int) -> None:
    done = [key for key, acc in open_connections.items() if _is_over(acc, now_ns - acc.end_ns)]
    for key in done:
        _finish(open_connections.pop(key), rows)


def _is_over(account: ConnectionAccount, idle_ns: int) -> bool:
    if account.connection.finished:
        return idle_ns > LINGER_NS
    return idle_ns > NO_PAYLOAD_IDLE_NS and not account.carried_payload


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


__all__ = ["Analysis", "analyze_captures", "CaptureError"]
