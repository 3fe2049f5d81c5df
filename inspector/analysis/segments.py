"""A chunk of capture records -> the TCP segments of one worker, as columns.

The frames are decoded column-wise (decode_columns), the rare shapes it leaves
one by one (decode_segment); each segment gets its worker (shard_of_ports, the
same for both directions and any reuse of the port pair) and a flow number
(an int, the same for both directions of a 4-tuple) with the direction it goes
in, so that the per-packet loop of the pipeline finds a connection with one
dict lookup and builds no tuple per packet.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from inspector.capture.chunks import RecordChunk
from inspector.decode import decode_segment
from inspector.decode_columns import TcpColumns, decode_columns

# Flow numbers of IPv6 4-tuples carry this bit, so none equals an IPv4 flow number.
IPV6_FLOW = 1 << 288


def endpoint_number(ip: bytes, port: int) -> int:
    """An endpoint as one number: ordered as the tuple (ip, port) among endpoints of one IP version."""
    return int.from_bytes(ip, "big") << 16 | port


def flow_of(src_ip: bytes, src_port: int, dst_ip: bytes, dst_port: int) -> tuple[int, int]:
    """(flow number, direction) of a segment: the flow number is the same both ways;
    direction is 0 when the source endpoint sorts first (or is the destination too), else 1."""
    src, dst = endpoint_number(src_ip, src_port), endpoint_number(dst_ip, dst_port)
    low, high, direction = (src, dst, 0) if src <= dst else (dst, src, 1)
    if len(src_ip) == 4:
        return low << 48 | high, direction
    return IPV6_FLOW | low << 144 | high, direction


@dataclass(slots=True, eq=False)
class ShardSegments:
    """One worker's TCP segments of a chunk, in capture order: lists (the loop zips them) and,
    for the segments that open a connection, `endpoints` and `ports`."""

    data: bytes  # the chunk's bytes: a segment's captured payload is data[payload_start:payload_end]
    index: list[int]  # record number in the capture
    flow: list[int]
    direction: list[int]
    ts_ns: list[int]
    seq: list[int]
    ack: list[int]
    flags: list[int]
    payload_start: list[int]
    payload_end: list[int]
    payload_wire_len: list[int]
    wire_len: list[int]
    link_bytes: list[int]
    ip_header_bytes: list[int]
    tcp_header_bytes: list[int]
    excess_bytes: list[int]
    src_ip_start: np.ndarray
    address_bytes: np.ndarray
    src_port: np.ndarray
    dst_port: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def endpoints(self, row: int) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
        """((source ip, port), (destination ip, port)) of segment `row`."""
        src, size = int(self.src_ip_start[row]), int(self.address_bytes[row])
        return (self.data[src : src + size], int(self.src_port[row])), (self.data[src + size : src + 2 * size], int(self.dst_port[row]))


def shard_segments(chunk: RecordChunk, shard: int, shards: int, non_tcp: Counter | None) -> ShardSegments:
    """The TCP segments of `chunk` that belong to worker `shard` of `shards`; frames that are
    not TCP are counted by reason into `non_tcp` (when given)."""
    columns = decode_columns(chunk.data, chunk.start, chunk.caplen, chunk.wire_len, chunk.link_type)
    _decode_the_rest(chunk, columns, non_tcp)
    rows = columns.decoded
    if shards > 1:
        ports = columns.src_port + columns.dst_port
        rows = rows & ((((ports * 0x9E3779B1) >> 16) & 0xFFFF) % shards == shard)  # shard_of_ports, column-wise
    rows = np.flatnonzero(rows)
    start = chunk.start[rows]
    ip_start = start + columns.ip_start[rows]
    address_bytes = columns.address_bytes[rows]
    src_ip_start = ip_start + np.where(address_bytes == 4, 12, 8)
    src_port, dst_port = columns.src_port[rows], columns.dst_port[rows]
    flow, direction = _flows(chunk.data, src_ip_start, address_bytes, src_port, dst_port)
    take = lambda column: column[rows].tolist()  # noqa: E731
    return ShardSegments(chunk.data, (rows + chunk.first_index).tolist(), flow, direction, take(chunk.ts_ns), take(columns.seq),
                         take(columns.ack), take(columns.flags), (start + columns.payload_start[rows]).tolist(),
                         (start + columns.payload_end[rows]).tolist(), take(columns.payload_wire_len), take(chunk.wire_len),
                         take(columns.link_bytes), take(columns.ip_header_bytes), take(columns.tcp_header_bytes),
                         take(columns.excess_bytes), src_ip_start, address_bytes, src_port, dst_port)


def _decode_the_rest(chunk: RecordChunk, columns: TcpColumns, non_tcp: Counter | None) -> None:
    """decode_segment for the rows decode_columns left, written into `columns`."""
    data = chunk.data
    rows = np.flatnonzero(~columns.decoded)
    segments, decoded = [], []
    for row, start, caplen, link_type, wire_len in zip(rows.tolist(), *(column[rows].tolist() for column in (chunk.start, chunk.caplen, chunk.link_type, chunk.wire_len))):
        fields = decode_segment(link_type, wire_len, data[start : start + caplen])
        if type(fields) is str:
            if non_tcp is not None:
                non_tcp[fields] += 1
        else:
            segments.append(fields)
            decoded.append(row)
    if decoded:
        columns.decoded[decoded] = True
        for name, values in zip(TcpColumns.FIELDS, zip(*segments)):
            getattr(columns, name)[decoded] = values


def _flows(data: bytes, src_ip_start: np.ndarray, address_bytes: np.ndarray, src_port: np.ndarray,
           dst_port: np.ndarray) -> tuple[list[int], list[int]]:
    """flow_of for each segment, column-wise."""
    raw = np.frombuffer(data, dtype=np.uint8)
    top = len(data) - 1
    v4 = address_bytes == 4
    # IPv4: an endpoint (address, port) fits 48 bits.
    ip = raw[np.minimum(src_ip_start[:, None] + np.arange(8), top)].astype(np.int64)  # source then destination address
    src = (ip[:, 0] << 40) | (ip[:, 1] << 32) | (ip[:, 2] << 24) | (ip[:, 3] << 16) | src_port
    dst = (ip[:, 4] << 40) | (ip[:, 5] << 32) | (ip[:, 6] << 24) | (ip[:, 7] << 16) | dst_port
    direction = (src > dst).astype(np.int64)
    flow = [low << 48 | high for low, high in zip(np.minimum(src, dst).tolist(), np.maximum(src, dst).tolist())]
    v6 = np.flatnonzero(~v4)
    if len(v6):
        # IPv6: each endpoint as 18 big-endian bytes (address, port), the lower one first, after
        # one byte 1 (IPV6_FLOW): the flow number is that byte string as a big-endian integer.
        at = src_ip_start[v6]
        addresses = raw[np.minimum(at[:, None] + np.arange(32), top)]
        ports = np.stack([src_port[v6], dst_port[v6]], axis=1).astype(">u2").view(np.uint8).reshape(-1, 2, 2)
        endpoints = np.concatenate([addresses.reshape(-1, 2, 16), ports], axis=2)  # (rows, source/destination, 18 bytes)
        differ = endpoints[:, 0] != endpoints[:, 1]
        first = differ.argmax(axis=1)
        rows = np.arange(len(v6))
        backwards = differ.any(axis=1) & (endpoints[rows, 0, first] > endpoints[rows, 1, first])
        ordered = np.where(backwards[:, None, None], endpoints[:, ::-1], endpoints).reshape(-1, 36)
        numbers = np.concatenate([np.ones((len(v6), 1), dtype=np.uint8), ordered], axis=1).tobytes()
        direction[v6] = backwards
        for row, offset in zip(v6.tolist(), range(0, len(numbers), 37)):
            flow[row] = int.from_bytes(numbers[offset : offset + 37], "big")
    return flow, direction.tolist()
