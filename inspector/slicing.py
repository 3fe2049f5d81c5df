"""`inspector slice`: the packets of some connections, as a capture Wireshark opens.

A connection is the packets of one TCP 4-tuple (either way) from its first packet (the
connections table's `first_frame`) up to the first packet of the next connection on the same
4-tuple, if the port pair was used again: that is how the analysis splits a 4-tuple's packets
into connections, so the slice holds exactly the packets the connection's row counts (its
`packets` and `wire_bytes`).  The capture is read once, decoded column-wise as the analysis
does (analysis.segments); the packets kept are written as they are met, with their
timestamps, captured bytes and frame lengths, in the capture's format (pcapng in, pcapng
out) and link type.  Nothing is kept per packet.

Its place is beside the CLI: it reads a store (which connections) and a capture (their
packets) and writes a capture.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from inspector.analysis.segments import flow_of, shard_segments
from inspector.capture.chunks import read_record_chunks
from inspector.capture.files import CaptureInfo
from inspector.capture.writers import PcapngWriter, PcapWriter
from inspector.errors import CaptureError, InspectorError
from inspector.store import Store

NO_LATER_CONNECTION = 1 << 62


class SliceError(InspectorError):
    """A slice that cannot be made (no such connection, packets of several link types)."""


@dataclass(frozen=True)
class ConnectionPackets:
    """Where a connection's packets are: its 4-tuple's flow number and its record numbers (from 0)."""

    conn_id: int
    flow: int
    first_index: int
    end_index: int  # the first record of the next connection on the 4-tuple (or NO_LATER_CONNECTION)

    def holds(self, index: int) -> bool:
        return self.first_index <= index < self.end_index


def connection_packets(store: Store, capture: str, conn_ids: list[int]) -> list[ConnectionPackets]:
    """Where the packets of `conn_ids` (connections of the capture file `capture`, in `store`)
    are; SliceError for an id the store does not have."""
    rows = connection_rows(store.sql, conn_ids)
    missing = sorted(set(conn_ids) - set(rows["conn_id"].tolist()))
    if missing:
        count = int(store.sql("SELECT count(*) AS n FROM connections")["n"].iloc[0])
        raise SliceError(f"{capture}: no connection {', '.join(map(str, missing))} (its connections are 0 to {count - 1})")
    return [packets_of(row) for row in rows.itertuples(index=False)]


def connection_rows(sql: Callable[[str, list], pd.DataFrame], conn_ids: list[int]) -> pd.DataFrame:
    """The connections rows of `conn_ids` that `sql` (a store's, the dashboard's catalog's) has:
    conn_id, capture, their 4-tuple, first_frame and next_frame (the first frame of the next
    connection on the same 4-tuple in the same capture, or missing), by conn_id."""
    return sql("""
        SELECT c.conn_id, c.capture, c.client_ip, c.client_port, c.server_ip, c.server_port, c.first_frame,
               (SELECT min(n.first_frame) FROM connections n
                 WHERE n.capture = c.capture AND n.client_ip = c.client_ip AND n.client_port = c.client_port
                   AND n.server_ip = c.server_ip AND n.server_port = c.server_port AND n.first_frame > c.first_frame) AS next_frame
        FROM connections c WHERE list_contains(?, c.conn_id) ORDER BY c.conn_id""", [sorted(set(conn_ids))])


def packets_of(row) -> ConnectionPackets:
    """Where the packets of a connection_rows row are."""
    flow, _direction = flow_of(ipaddress.ip_address(row.client_ip).packed, int(row.client_port),
                               ipaddress.ip_address(row.server_ip).packed, int(row.server_port))
    end = NO_LATER_CONNECTION if pd.isna(row.next_frame) else int(row.next_frame) - 1
    return ConnectionPackets(int(row.conn_id), flow, int(row.first_frame) - 1, end)


def row_filter(row) -> str:
    """The Wireshark display filter (display_filter) of a connection_rows row."""
    return display_filter(row.client_ip, int(row.client_port), row.server_ip, int(row.server_port), int(row.first_frame),
                          None if pd.isna(row.next_frame) else int(row.next_frame))


def display_filter(client_ip: str, client_port: int, server_ip: str, server_port: int, first_frame: int,
                   next_frame: int | None = None) -> str:
    """The Wireshark display filter of a connection's packets: its 4-tuple either way, from its
    first frame (and before the next connection's on the same 4-tuple).  Unlike `tcp.stream eq K`,
    it means the same in every tool and every version of Wireshark."""
    ip = "ipv6" if ipaddress.ip_address(client_ip).version == 6 else "ip"
    one_way = f"{ip}.src == {client_ip} && tcp.srcport == {client_port} && {ip}.dst == {server_ip} && tcp.dstport == {server_port}"
    other_way = f"{ip}.src == {server_ip} && tcp.srcport == {server_port} && {ip}.dst == {client_ip} && tcp.dstport == {client_port}"
    frames = f"frame.number >= {first_frame}" + (f" && frame.number < {next_frame}" if next_frame is not None else "")
    return f"(({one_way}) || ({other_way})) && {frames}"


def write_slice(capture: str | os.PathLike, connections: list[ConnectionPackets], output: str | os.PathLike) -> int:
    """Write the packets of `connections` from `capture` to `output`; return how many."""
    by_flow: dict[int, list[ConnectionPackets]] = {}
    for connection in connections:
        by_flow.setdefault(connection.flow, []).append(connection)
    info = CaptureInfo(path=str(capture))
    writer: PcapWriter | PcapngWriter | None = None
    link_type = None
    written = 0
    try:
        for chunk in read_record_chunks(capture, info):
            segments = shard_segments(chunk, 0, 1, None)
            for flow, index in zip(segments.flow, segments.index):
                wanted = by_flow.get(flow)
                if wanted is None or not any(connection.holds(index) for connection in wanted):
                    continue
                row = index - chunk.first_index
                if writer is None:
                    link_type = int(chunk.link_type[row])
                    writer = _writer(output, info, link_type)
                elif int(chunk.link_type[row]) != link_type:
                    raise SliceError(f"{capture}: the connections' packets have link types {link_type} and {int(chunk.link_type[row])}: "
                                     "one capture file holds one")
                start = int(chunk.start[row])
                writer.write(int(chunk.ts_ns[row]), chunk.data[start:start + int(chunk.caplen[row])], int(chunk.wire_len[row]))
                written += 1
        if writer is None:  # a connection of no packets cannot be: the file changed since its analysis
            raise SliceError(f"{capture}: none of the connections' packets found (has the file changed since it was analysed?)")
    except BaseException:
        if writer is not None:
            writer.close()
        Path(output).unlink(missing_ok=True)
        raise
    writer.close()
    return written


def _writer(output: str | os.PathLike, info: CaptureInfo, link_type: int) -> PcapWriter | PcapngWriter:
    """The capture's format; timestamps in nanoseconds where they may need them (pcapng, ns pcap)."""
    try:
        if info.format == "pcapng":
            return PcapngWriter(output, link_type, nanosecond=True)
        return PcapWriter(output, link_type, nanosecond=info.nanosecond)
    except OSError as exc:
        raise CaptureError(f"{output}: cannot write: {exc.strerror}") from None
