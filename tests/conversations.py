"""Whole TCP conversations as bytes, and captures of them in any segmentation.

A conversation is a list of turns: (side, bytes), side 0 the client and 1 the
server, each turn what one side sends before the other answers.  `NAMED`
holds deterministic conversations built with tests/factories.py (HTTP
keep-alive with chunked and gzip bodies, pipelining, WebSocket with masked,
fragmented, control and permessage-deflate frames, a Server-Sent Events stream and its resumption); `real_connections` reads
the payload of the bundled captures' connections (with scapy, not with the
code under test).

`capture_of` writes a conversation as a pcap.  Every segment of a turn gets
the turn's timestamp, so where a message's bytes fall into segments (or in
which order, or how often, the segments of a turn arrive) does not change
the time the analysis gives it: tests/analysis/test_resegmentation.py
relies on that.  The reference tables (tests/reference_tables.py) analyse
the named conversations in their plain segmentation and in a few unlucky ones.
"""

from __future__ import annotations

import functools
import zlib

from tests.conftest import bundled_files
from tests.factories import deflate_message, http_request, http_response, pcap_file, ws_accept, ws_frame
from tests.hostile import ETHERNET_MSS, FIRST_TS_NS, Flow

Turn = tuple[int, bytes]
# The segments of one turn as sent: (offset of the piece in the turn's bytes, piece).
Segments = list[tuple[int, bytes]]

TURN_INTERVAL_NS = 1_000_000
WS_KEY = "x3JJHMbDL1EzLkh9GBhXDw=="


def gzip_body(data: bytes) -> bytes:
    """gzip with a zero mtime, so the bytes never change."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def http_keepalive() -> list[Turn]:
    """Four exchanges on one connection: a JSON reply, a chunked reply with a
    trailer, a POST answered with a gzip body, and a 304 without a body."""
    json_body = b'{"items": [1, 2, 3], "next": null}'
    chunked = http_response(200, headers={"Content-Type": "text/plain", "Transfer-Encoding": "chunked"})
    chunked += b"6\r\nhello \r\n5;ext=1\r\nworld\r\n1a\r\n" + b"z" * 26 + b"\r\n0\r\nX-Checksum: abc\r\n\r\n"
    return [
        (0, http_request("GET", "/items", headers={"Host": "example"})),
        (1, http_response(200, headers={"Content-Type": "application/json"}, body=json_body)),
        (0, http_request("GET", "/stream", headers={"Host": "example"})),
        (1, chunked),
        (0, http_request("POST", "/upload", headers={"Host": "example", "Content-Type": "text/plain"}, body=b"payload " * 300)),
        (1, http_response(201, "Created", headers={"Content-Encoding": "gzip"}, body=gzip_body(b"stored " * 2000))),
        (0, http_request("GET", "/items", headers={"Host": "example", "If-None-Match": '"v1"'})),
        (1, http_response(304, "Not Modified", headers={"ETag": '"v1"'})),
    ]


def http_pipelined() -> list[Turn]:
    """Three requests sent back to back (one a HEAD), then their three responses."""
    requests = http_request("GET", "/a") + http_request("HEAD", "/b") + http_request("DELETE", "/c")
    responses = (http_response(200, body=b"first") + http_response(200, headers={"Content-Length": "1000"})
                 + http_response(204, "No Content"))
    return [(0, requests), (1, responses)]


def ws_upgrade(extensions: str | None = None) -> list[Turn]:
    request_headers = {"Host": "example", "Upgrade": "websocket", "Connection": "Upgrade",
                       "Sec-WebSocket-Key": WS_KEY, "Sec-WebSocket-Version": "13"}
    response_headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": ws_accept(WS_KEY)}
    if extensions:
        request_headers["Sec-WebSocket-Extensions"] = response_headers["Sec-WebSocket-Extensions"] = extensions
    return [(0, http_request("GET", "/ws", headers=request_headers)), (1, http_response(101, "Switching Protocols", headers=response_headers))]


def _masked(payload: bytes, index: int, **fields) -> bytes:
    return ws_frame(payload, masked=True, mask_key=bytes([index, 0x5A, 0xA5, 0xFF - index]), **fields)


def ws_session() -> list[Turn]:
    """Masked text and binary from the client, a 16-bit-length reply, a text
    message in three fragments with a ping between them, pong, and a close
    handshake with a code and reason."""
    return ws_upgrade() + [
        (0, _masked(b"hello server", 1)),
        (1, ws_frame(b"hello client")),
        (0, _masked(bytes(range(256)) * 2, 2, opcode=2)),
        (1, ws_frame(b"\x00\xff" * 300, opcode=2)),
        (0, _masked(b"part one, ", 3, fin=False) + _masked(b"are you there?", 4, opcode=9)
         + _masked(b"part two, ", 5, opcode=0, fin=False) + _masked("part three \u2713".encode(), 6, opcode=0)),
        (1, ws_frame(b"are you there?", opcode=10) + ws_frame(b"got it")),
        (0, _masked(b"\x03\xe8bye", 7, opcode=8)),
        (1, ws_frame(b"\x03\xe8", opcode=8)),
    ]


def ws_deflate() -> list[Turn]:
    """permessage-deflate with context takeover both ways, a compressed message
    in two fragments, and an uncompressed one in between."""
    client, server = zlib.compressobj(wbits=-15), zlib.compressobj(wbits=-15)
    text = b'{"type": "update", "values": [' + b"42, " * 60 + b"0]}"
    first = deflate_message(text, client)
    fragmented = deflate_message(text * 3, client)  # compressed after `first`: the context carries over
    half = len(fragmented) // 2
    return ws_upgrade("permessage-deflate") + [
        (0, _masked(first, 1, rsv1=True)),
        (1, ws_frame(deflate_message(text, server), rsv1=True)),
        (0, _masked(fragmented[:half], 2, rsv1=True, fin=False) + _masked(fragmented[half:], 3, opcode=0)),
        (1, ws_frame(deflate_message(text, server), rsv1=True) + ws_frame(b"plain", opcode=1)),
        (0, _masked(b"\x03\xe8", 4, opcode=8)),
        (1, ws_frame(b"\x03\xe8", opcode=8)),
    ]


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse_stream() -> list[Turn]:
    """A text/event-stream response chunked over three turns (keep-alive comments, ids, a retry,
    an event type, data of two lines, CRLF and CR line ends, an event cut across two chunks), its
    last chunk; then the same client asks again with Last-Event-ID and the server resumes after
    that id, the rest of the stream as one body with a Content-Length."""
    head = http_response(200, headers={"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"}, content_length=False)
    events = {"Host": "example", "Accept": "text/event-stream"}
    return [
        (0, http_request("GET", "/events", headers=events)),
        (1, head + _chunk(b": welcome\n\n") + _chunk(b"retry: 3000\nid: 1\ndata: {\"n\": 1}\n\n")),
        (1, _chunk(b"event: tick\r\nid: 2\r\ndata: first line\r\ndata: second") + _chunk(b" line\r\n\r\n: keep-alive\n\n")),
        (1, _chunk(b"id: 3\rdata: \xe2\x9c\x93\r\r") + b"0\r\n\r\n"),
        (0, http_request("GET", "/events", headers={**events, "Last-Event-ID": "3"})),
        (1, http_response(200, headers={"Content-Type": "text/event-stream"}, body=b"id: 4\ndata: {\"n\": 4}\n\n: keep-alive\n\nid: 5\ndata: {\"n\": 5}\n\n")),
    ]


NAMED = {"http-keepalive": http_keepalive, "http-pipelined": http_pipelined, "ws-session": ws_session, "ws-deflate": ws_deflate,
         "sse-stream": sse_stream}


def in_segments(turns: list[Turn], size: int = ETHERNET_MSS) -> list[Segments]:
    """Each turn in order, in pieces of `size` bytes."""
    return [[(offset, data[offset:offset + size]) for offset in range(0, len(data), size)] for _side, data in turns]


def capture_of(turns: list[Turn], segments: list[Segments] | None = None, *, snaplen: int | None = None) -> bytes:
    """A pcap of one connection: handshake, each turn as `segments` (default:
    in_segments) with one ACK after it, then FIN both ways.

    Every frame of a turn has the turn's timestamp (handshake and close get
    their own)."""
    flow = Flow()
    stamped = [(FIRST_TS_NS, frame) for frame in flow.handshake()]
    for index, ((side, data), pieces) in enumerate(zip(turns, segments or in_segments(turns)), start=1):
        ts = FIRST_TS_NS + index * TURN_INTERVAL_NS
        start = flow.next_seq[side]
        stamped += [(ts, flow.frame(side, "PA", piece, seq=start + offset)) for offset, piece in pieces]
        flow.next_seq[side] += len(data)
        stamped.append((ts, flow.frame(1 - side, "A")))
    stamped += [(FIRST_TS_NS + (len(turns) + 1) * TURN_INTERVAL_NS, frame) for frame in flow.close()]
    if snaplen is None:
        return pcap_file(stamped)
    return pcap_file([(ts, frame[:snaplen]) for ts, frame in stamped], snaplen=snaplen, wire_lens=[len(frame) for _ts, frame in stamped])


@functools.lru_cache(maxsize=None)
def real_connections() -> list[list[tuple[int, bytes]]]:
    """The payload of the TCP connections of the bundled captures: (0 client / 1 server, bytes)
    per data segment in capture order (read with scapy, not with the code under test)."""
    from scapy.layers.inet import IP, TCP
    from scapy.utils import rdpcap

    connections: dict[tuple, list[tuple[int, bytes]]] = {}
    clients: dict[tuple, tuple] = {}
    for path in bundled_files():
        for packet in rdpcap(str(path)):
            if TCP not in packet:
                continue
            src, dst = (packet[IP].src, packet[TCP].sport), (packet[IP].dst, packet[TCP].dport)
            key = (path.name, *sorted([src, dst]))
            if packet[TCP].flags.S and not packet[TCP].flags.A:
                clients[key] = src
            payload = bytes(packet[TCP].payload)
            if payload:
                connections.setdefault(key, []).append((0 if src == clients.get(key, src) else 1, payload))
    # One of each shape: the twenty one-request connections of chat.pcap differ only in ids.
    unique = {tuple((side, len(payload)) for side, payload in segments): segments for segments in connections.values()}
    return list(unique.values())


def as_turns(segments: list[tuple[int, bytes]]) -> list[Turn]:
    """Consecutive segments from the same side joined into one turn."""
    turns: list[Turn] = []
    for side, payload in segments:
        if turns and turns[-1][0] == side:
            turns[-1] = (side, turns[-1][1] + payload)
        else:
            turns.append((side, payload))
    return turns
