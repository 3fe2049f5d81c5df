"""Capture files -> connections -> tables.

Packets stream from the reader through the decoder into per-connection
parsers; a connection is turned into table rows as soon as it is over (both
directions finished and quiet for a while, or at the end of the capture), so
memory follows the number of open connections, not the file size.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from inspector.analysis.accounting import ConnectionAccount
from inspector.analysis.rows import connection_rows
from inspector.analysis.summary import overhead_table
from inspector.analysis.tables import TABLE_NAMES, make_table
from inspector.capture.files import CaptureInfo, read_packets
from inspector.decode import TCP_ACK, TCP_SYN, check_link_type, decode_packet
from inspector.errors import CaptureError
from inspector.parse.connection import ParserOptions, TcpConnection

# A finished connection is kept this long (capture time) for late ACKs.
LINGER_NS = 30 * 1_000_000_000
SWEEP_EVERY_PACKETS = 8192


@dataclass
class Analysis:
    """The tables of one or more captures, and the warnings met on the way."""

    tables: dict[str, pd.DataFrame]
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


class _RowSink:
    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {name: [] for name in TABLE_NAMES}

    def add(self, rows: dict[str, list[dict]]) -> None:
        for name, table_rows in rows.items():
            self.rows[name].extend(table_rows)


def analyze_captures(paths: list[str | os.PathLike], options: ParserOptions | None = None) -> Analysis:
    """Analyse capture files into the tables of `inspector.analysis.tables`."""
    options = options or ParserOptions()
    sink = _RowSink()
    warnings: list[str] = []
    next_conn_id = 0
    for path in paths:
        next_conn_id = _analyze_one(str(path), options, sink, warnings, next_conn_id)
    tables = {name: make_table(name, sink.rows[name]) for name in TABLE_NAMES if name != "overhead"}
    tables["overhead"] = overhead_table(tables["connections"], tables["message_costs"])
    return Analysis(tables=tables, warnings=warnings)


def _analyze_one(path: str, options: ParserOptions, sink: _RowSink, warnings: list[str], next_conn_id: int) -> int:
    info = CaptureInfo(path=path)
    open_connections: dict[tuple, ConnectionAccount] = {}
    non_tcp: Counter[str] = Counter()
    packets = tcp_packets = wire_bytes = connections = 0
    checked_link_types: set[int] = set()
    last_ts = 0
    bogus_lengths = 0
    for ts_ns, link_type, wire_len, data in read_packets(path, info):
        packets += 1
        wire_bytes += wire_len
        if link_type not in checked_link_types:
            check_link_type(link_type, path)
            checked_link_types.add(link_type)
        packet = decode_packet(ts_ns, link_type, wire_len, data)
        if type(packet) is str:
            non_tcp[packet] += 1
            continue
        tcp_packets += 1
        if packet.excess_bytes > 0:
            bogus_lengths += 1
        last_ts = ts_ns if ts_ns > last_ts else last_ts
        src = (packet.src_ip, packet.src_port)
        dst = (packet.dst_ip, packet.dst_port)
        key = (src, dst) if src <= dst else (dst, src)
        account = open_connections.get(key)
        if account is not None and _starts_new_connection(account, packet, src):
            _finish(account, sink, last_ts)
            account = None
        if account is None:
            account = ConnectionAccount(next_conn_id, path, TcpConnection(next_conn_id, options), (src, dst))
            open_connections[key] = account
            next_conn_id += 1
            connections += 1
        account.add_packet(packet, 0 if src == account.endpoints[0] else 1)
        if tcp_packets % SWEEP_EVERY_PACKETS == 0:
            _sweep(open_connections, sink, last_ts)
    for account in open_connections.values():
        _finish(account, sink, last_ts)
    warnings.extend(info.warnings)
    if bogus_lengths:
        warnings.append(f"{path}: {bogus_lengths} packets claim more bytes on the wire than their complete IP packet holds (bogus orig_len); the extra bytes are counted as unparsed")
    sink.add({"captures": [_capture_row(info, packets, tcp_packets, non_tcp, wire_bytes, connections)]})
    if packets == 0 and not info.truncated:
        warnings.append(f"{path}: capture holds no packets")
    return next_conn_id


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


def _sweep(open_connections: dict, sink: _RowSink, now_ns: int) -> None:
    done = [key for key, acc in open_connections.items() if acc.connection.finished and now_ns - acc.end_ns > LINGER_NS]
    for key in done:
        _finish(open_connections.pop(key), sink, now_ns)


def _finish(account: ConnectionAccount, sink: _RowSink, now_ns: int) -> None:
    account.connection.close(max(account.end_ns, 0))
    sink.add(connection_rows(account))


def _capture_row(info: CaptureInfo, packets: int, tcp_packets: int, non_tcp: Counter, wire_bytes: int, connections: int) -> dict:
    return {
        "capture": info.path,
        "format": info.format,
        "link_types": ",".join(str(t) for t in sorted(info.link_types)),
        "packets": packets,
        "tcp_packets": tcp_packets,
        "non_tcp_packets": sum(non_tcp.values()),
        "non_tcp_detail": ", ".join(f"{reason} {count}" for reason, count in sorted(non_tcp.items())),
        "wire_bytes": wire_bytes,
        "connections": connections,
        "truncated": info.truncated,
        "warnings": "; ".join(info.warnings),
    }


__all__ = ["Analysis", "analyze_captures", "CaptureError"]
