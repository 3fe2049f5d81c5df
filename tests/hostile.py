"""Captures of every hostile or unlucky input class of issue 8, at any scale.

One generator per class.  Each builds the capture's bytes (and a recording
sidecar where the class is about one) without going through the parsers:
frames are packed with `struct` here, HTTP and WebSocket bytes come from
tests/factories.py.  At scale 1 a generator gives the size the issue names
(16,384 one-byte segments, a 3 GiB gzip bomb, 200,000 SYN-only connections,
...); counts grow linearly with the scale, so scale 8 is eight times the
input, and a small fraction gives a capture of a few KB for unit and fuzz
tests.  Sizes that are not counts (header spaces, bytes a body inflates to)
are keyword arguments with the issue's value as default.

Generation is linear in the output: compressed bombs repeat one deflate
block and compute their CRC without touching the inflated bytes.

`CLASSES` lists them all (name, issue item, generator), for
benchmarks/bench_hostile.py and tests/analysis/test_fuzz_captures.py; `small`
builds each at the small scale (SMALL) the fuzz test and the reference tables
(tests/reference/) use.
"""

from __future__ import annotations

import functools
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inspector.capture.sidecar import SIDECAR_FORMAT
from tests.factories import chunks, http_request, http_response, pcap_file, pcapng_file, ws_frame

SERVER_IP = "10.0.0.254"
SERVER_PORT = 8080  # tshark decodes 8080 as HTTP by default
FIRST_TS_NS = 1_700_000_000 * 1_000_000_000
FRAME_INTERVAL_NS = 10_000
ETHERNET_MSS = 1448
LOOPBACK_SEGMENT = 65_483  # what Linux sends on lo
MIB = 1024 * 1024
GIB = 1024 * MIB
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example key and its accept value
WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@dataclass(frozen=True)
class HostileCapture:
    """A capture file's name and bytes, and the recording sidecar that goes next to it."""

    name: str
    data: bytes
    sidecar: bytes | None = None

    def write(self, folder: str | Path) -> Path:
        """Write the capture (and its sidecar, NAME.json) into `folder`; return the capture's path."""
        path = Path(folder) / self.name
        path.write_bytes(self.data)
        if self.sidecar is not None:
            path.with_suffix(".json").write_bytes(self.sidecar)
        return path


def count_at(base: int, scale: float) -> int:
    """`base` items at scale 1, linearly more or fewer, at least one."""
    return max(1, round(base * scale))


# --- frames ------------------------------------------------------------------------


def _ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(memoryview(data).cast("H"))  # native order: the byte-order independence of RFC 1071
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _checksum(data: bytes) -> bytes:
    """Internet checksum of `data`, as the bytes to store (RFC 1071)."""
    return struct.pack("=H", ~_ones_complement_sum(data) & 0xFFFF)


def _ip(text: str) -> bytes:
    return bytes(int(part) for part in text.split("."))


_ETHERNET = bytes.fromhex("020000000002" "020000000001") + b"\x08\x00"
_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}


def tcp_frame(src: tuple[bytes, int], dst: tuple[bytes, int], seq: int, ack: int, flags: str, payload: bytes = b"") -> bytes:
    """Ethernet + IPv4 + TCP frame with valid checksums; addresses are (4 bytes, port)."""
    bits = sum(_FLAGS[f] for f in flags)
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq % (1 << 32), ack % (1 << 32), 5 << 4, bits, 65535, 0, 0)
    pseudo = src[0] + dst[0] + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    tcp = tcp[:16] + _checksum(pseudo + tcp + payload) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0, src[0], dst[0])
    ip = ip[:10] + _checksum(ip) + ip[12:]
    return _ETHERNET + ip + tcp + payload


class Flow:
    """One TCP connection between a client and SERVER_IP:SERVER_PORT; side 0 is the client.

    Methods return frames (bytes) and advance each side's sequence number, so
    frames can be reordered or dropped before they are written.
    """

    def __init__(self, client_ip: str = "10.0.0.1", client_port: int = 40000, server_port: int = SERVER_PORT) -> None:
        self.ends = ((_ip(client_ip), client_port), (_ip(SERVER_IP), server_port))
        self.next_seq = [1_000_000, 500_000_000]

    def frame(self, side: int, flags: str, payload: bytes = b"", *, seq: int | None = None) -> bytes:
        ack = self.next_seq[1 - side] if "A" in flags else 0
        return tcp_frame(self.ends[side], self.ends[1 - side], self.next_seq[side] if seq is None else seq, ack, flags, payload)

    def handshake(self) -> list[bytes]:
        return self._both_ways("S", "SA") + [self.frame(0, "A")]

    def send(self, side: int, data: bytes, segment: int = ETHERNET_MSS) -> list[bytes]:
        """`data` from `side` in segments of `segment` bytes, in order."""
        frames = []
        for piece in chunks(data, segment):
            frames.append(self.frame(side, "PA", piece))
            self.next_seq[side] += len(piece)
        return frames

    def exchange(self, request: bytes, response: bytes, segment: int = ETHERNET_MSS) -> list[bytes]:
        """A request, the server's ACK of it, then the response."""
        return self.send(0, request, segment) + [self.frame(1, "A")] + self.send(1, response, segment) + [self.frame(0, "A")]

    def close(self) -> list[bytes]:
        return self._both_ways("FA", "FA") + [self.frame(0, "A")]

    def _both_ways(self, flags: str, reply_flags: str) -> list[bytes]:
        """A SYN or FIN from the client and the server's (each takes one sequence number)."""
        frames = [self.frame(0, flags)]
        self.next_seq[0] += 1
        frames.append(self.frame(1, reply_flags))
        self.next_seq[1] += 1
        return frames


def pcap(frames: list[bytes], *, snaplen: int | None = None) -> bytes:
    """A classic pcap of `frames`, 10 µs apart; snaplen cuts each frame as tcpdump -s would."""
    stamped = [(FIRST_TS_NS + index * FRAME_INTERVAL_NS, frame if snaplen is None else frame[:snaplen]) for index, frame in enumerate(frames)]
    if snaplen is None:
        return pcap_file(stamped)
    return pcap_file(stamped, snaplen=snaplen, wire_lens=[len(frame) for frame in frames])


def client(index: int) -> tuple[str, int]:
    """The address and port of the index-th client: distinct for millions of them."""
    port = 1024 + index % 64_000
    host = index // 64_000
    return f"10.{1 + host // 250}.{host % 250}.1", port


def _rest_connection(index: int, request: bytes, response: bytes) -> list[bytes]:
    flow = Flow(*client(index))
    return flow.handshake() + flow.exchange(request, response) + flow.close()


def plain_exchanges(connections: int) -> list[bytes]:
    """Ordinary keep-alive-free REST traffic: one GET and its JSON reply per connection."""
    response = http_response(200, headers={"Content-Type": "application/json"}, body=b'{"ok": true}')
    return [frame for index in range(connections) for frame in _rest_connection(index, http_request("GET", f"/items/{index}"), response)]


def _byte_pattern(size: int) -> bytes:
    """Binary data that is neither HTTP nor WebSocket framing."""
    return (bytes(range(256)) * (size // 256 + 1))[:size]


# --- 1: Content-Length the parser cannot turn into a number -------------------------------


def _bad_content_length(scale: float, value: str, role: str, name: str) -> HostileCapture:
    frames = []
    for index in range(count_at(1, scale)):
        if role == "request":
            request, response = http_request("POST", "/upload", headers={"Content-Length": value}), http_response(400, "Bad Request")
        else:
            request, response = http_request("GET", "/"), http_response(200, headers={"Content-Length": value})
        frames += _rest_connection(index, request, response)
    return HostileCapture(name, pcap(frames))


def content_length_superscript(scale: float = 1, *, role: str = "request") -> HostileCapture:
    """`Content-Length: ²` (latin-1 0xB2, which str.isdigit accepts) in a request or a response; one connection per unit."""
    return _bad_content_length(scale, "\u00b2", role, f"content-length-superscript-{role}.pcap")


def content_length_digits(scale: float = 1, *, digits: int = 5000, role: str = "request") -> HostileCapture:
    """A Content-Length of `digits` digits (beyond Python's int-string limit of 4300); one connection per unit."""
    return _bad_content_length(scale, "9" * digits, role, f"content-length-{digits}-digits-{role}.pcap")


# --- 2: pcapng packet block too short for its fixed fields --------------------------------

PCAPNG_BLOCKS = {"enhanced": 6, "obsolete": 2}


def pcapng_short_block(scale: float = 1, *, block: str = "enhanced") -> HostileCapture:
    """REST connections (one per unit) in a pcapng file ending with a packet block of length 12."""
    frames = plain_exchanges(count_at(1, scale))
    packets = [(0, FIRST_TS_NS // 1000 + index * 10, frame) for index, frame in enumerate(frames)]
    data = pcapng_file([(1, 6)], packets) + struct.pack("<III", PCAPNG_BLOCKS[block], 12, 12)
    return HostileCapture(f"pcapng-{block}-block-length-12.pcapng", data)


# --- 4: broken recording sidecars ------------------------------------------------------------


def sidecar(variants: list[dict], **fields) -> bytes:
    """A recording sidecar naming these variants; extra top-level `fields` go in as given."""
    return json.dumps({"format": SIDECAR_FORMAT, "scenario": "chat", "variants": variants, **fields}).encode()


def _rest_variant(name: str, **fields) -> dict:
    return {"name": name, "protocol": "rest", "server_port": SERVER_PORT, "client_ports": [], **fields}


def sidecar_infinite_port(scale: float = 1) -> HostileCapture:
    """A sidecar whose variants (one per unit) have the server port `1e999` (JSON's way to infinity)."""
    count = count_at(1, scale)
    text = sidecar([_rest_variant(f"rest-{i}", server_port="1e999") for i in range(count)])
    return HostileCapture("sidecar-port-1e999.pcap", pcap(plain_exchanges(count)), text.replace(b'"1e999"', b"1e999"))


def sidecar_deep_nesting(scale: float = 1, *, depth: int = 200_000) -> HostileCapture:
    """A sidecar with `depth` x scale levels of nested JSON arrays."""
    levels = count_at(depth, scale)
    text = sidecar([_rest_variant("rest")], nested="NESTED").replace(b'"NESTED"', b"[" * levels + b"]" * levels)
    return HostileCapture("sidecar-deep-nesting.pcap", pcap(plain_exchanges(1)), text)


# --- 6: protocol detection over many small events --------------------------------------------


def one_byte_non_http(scale: float = 1, *, segments: int = 16_384) -> HostileCapture:
    """A client sending non-HTTP data in one-byte segments (an interactive session)."""
    flow = Flow()
    frames = flow.handshake() + flow.send(0, _byte_pattern(count_at(segments, scale)), 1)
    return HostileCapture("one-byte-non-http.pcap", pcap(frames))


def header_only_segments(scale: float = 1, *, segments: int = 10_000, snaplen: int = 54) -> HostileCapture:
    """Full-size segments of a GET's reply captured with `tcpdump -s 54`: every payload byte cut off."""
    flow = Flow()
    body = _byte_pattern(count_at(segments, scale) * ETHERNET_MSS)
    frames = flow.handshake() + flow.exchange(http_request("GET", "/big"), http_response(200, body=body)) + flow.close()
    return HostileCapture("header-only-snaplen.pcap", pcap(frames, snaplen=snaplen))


def hole_then_one_byte(scale: float = 1, *, segments: int = 30_000) -> HostileCapture:
    """The first data segment missing from the capture, then one-byte segments."""
    flow = Flow()
    frames = flow.handshake() + flow.send(0, _byte_pattern(count_at(segments, scale) + 1), 1)
    del frames[3]  # the first data segment was never captured
    return HostileCapture("hole-then-one-byte.pcap", pcap(frames))


def reversed_one_byte(scale: float = 1, *, segments: int = 300_000) -> HostileCapture:
    """One-byte segments that arrive in reverse order."""
    flow = Flow()
    handshake = flow.handshake()
    data = flow.send(0, _byte_pattern(count_at(segments, scale)), 1)
    return HostileCapture("reversed-one-byte.pcap", pcap(handshake + data[::-1]))


# --- 7: HTTP in small segments -------------------------------------------------------------


def http_in_small_segments(scale: float = 1, *, exchanges: int = 100, segment: int = 7) -> HostileCapture:
    """A keep-alive connection whose requests and responses travel in `segment`-byte segments."""
    flow = Flow()
    frames = flow.handshake()
    for index in range(count_at(exchanges, scale)):
        frames += flow.exchange(http_request("GET", f"/items/{index}"), http_response(200, body=b'{"id": %d}' % index), segment)
    return HostileCapture(f"http-in-{segment}-byte-segments.pcap", pcap(frames + flow.close()))


# --- 8: regular-expression backtracking ----------------------------------------------------


def upgrade_header_spaces(scale: float = 1, *, spaces: int = 60_000) -> HostileCapture:
    """A request with a header `Upgrade: a`, `spaces` spaces, then `x`; one connection per unit,
    fewer spaces below scale 1 (the header limit of 64 KiB stops longer ones)."""
    request = http_request("GET", "/", headers={"Upgrade": "a" + " " * round(spaces * min(scale, 1)) + "x"})
    frames = []
    for index in range(count_at(1, scale)):
        flow = Flow(*client(index))
        frames += flow.handshake() + flow.send(0, request, LOOPBACK_SEGMENT) + flow.close()
    return HostileCapture("upgrade-header-spaces.pcap", pcap(frames))


def resync_status_lines(scale: float = 1, *, segments: int = 32, segment: int = LOOPBACK_SEGMENT) -> HostileCapture:
    """A response direction out of sync (a stray byte first), then 64 KB segments of `HTTP/1.1 200 ` repeated."""
    flow = Flow()
    start_line = b"HTTP/1.1 200 "
    piece = (start_line * (segment // len(start_line) + 1))[:segment]
    frames = flow.handshake() + flow.send(0, http_request("GET", "/")) + flow.send(1, b"\x00")
    for _ in range(count_at(segments, scale)):
        frames += flow.send(1, piece, segment)
    return HostileCapture("resync-status-lines.pcap", pcap(frames + flow.close()))


# --- 9: a chunked trailer that never ends ----------------------------------------------------


def chunked_trailer_without_newline(scale: float = 1, *, megabytes: float = 5) -> HostileCapture:
    """A chunked response whose trailer section runs on for `megabytes` x scale MB without a line feed."""
    flow = Flow()
    head = http_response(200, headers={"Transfer-Encoding": "chunked"}) + b"5\r\nhello\r\n0\r\nX-Trailer: "
    tail = b"a" * count_at(int(megabytes * 1_000_000), scale)
    frames = flow.handshake() + flow.send(0, http_request("GET", "/stream")) + flow.send(1, head + tail) + flow.close()
    return HostileCapture("chunked-trailer-without-newline.pcap", pcap(frames))


# --- 10: gzip-compressed captures ----------------------------------------------------------


def _crc32_after_zeros(crc: int, count: int) -> int:
    """zlib.crc32(bytes(count), crc), computed without the bytes.

    Feeding zeros to the CRC register is linear over GF(2); square the
    one-byte operator log2(count) times (as zlib's crc32_combine does).
    """

    def apply(matrix: list[int], vector: int) -> int:
        out, column = 0, 0
        while vector:
            if vector & 1:
                out ^= matrix[column]
            vector >>= 1
            column += 1
        return out

    operator = [0xEDB88320] + [1 << bit for bit in range(31)]  # one zero bit
    for _ in range(3):  # -> one zero byte
        operator = [apply(operator, column) for column in operator]
    register = crc ^ 0xFFFFFFFF
    while count:
        if count & 1:
            register = apply(operator, register)
        operator = [apply(operator, column) for column in operator]
        count >>= 1
    return register ^ 0xFFFFFFFF


def _deflate_then_zeros(prefix: bytes, zeros: int) -> bytes:
    """A raw DEFLATE stream of `prefix` then `zeros` zero bytes, ending with a sync flush (no final block).

    The zeros are compressed one MiB at a time with a full flush, which makes
    every MiB the same bytes: compressed once, repeated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    whole, rest = divmod(zeros, MIB)
    block = b""
    if whole:
        block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
        again = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
        assert again == block or whole == 1, "a full flush should make each MiB compress the same"
    return head + block * whole + compressor.compress(bytes(rest)) + compressor.flush(zlib.Z_SYNC_FLUSH)


def gzip_zeros(prefix: bytes, zeros: int) -> bytes:
    """A gzip member inflating to `prefix` + `zeros` zero bytes, built in time linear in its compressed size."""
    deflated = _deflate_then_zeros(prefix, zeros) + b"\x03\x00"  # an empty final block
    crc = _crc32_after_zeros(zlib.crc32(prefix), zeros)
    size = (len(prefix) + zeros) % (1 << 32)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + deflated + struct.pack("<II", crc, size)


def gzip_bomb(scale: float = 1, *, inflated: int = 3 * GIB) -> HostileCapture:
    """A .pcap.gz whose pcap (a header, then zero bytes: empty records) inflates to `inflated` x scale bytes."""
    header = pcap([])
    return HostileCapture("gzip-bomb.pcap.gz", gzip_zeros(header, count_at(inflated, scale) - len(header)))


def gzip_cut_short(scale: float = 1, *, connections: int = 100) -> HostileCapture:
    """A gzip-compressed capture of REST connections cut off halfway through the compressed bytes."""
    compressed = zlib.compressobj(6, zlib.DEFLATED, 31)
    data = compressed.compress(pcap(plain_exchanges(count_at(connections, scale)))) + compressed.flush()
    return HostileCapture("gzip-cut-short.pcap.gz", data[: len(data) // 2])


# --- 11: half-open connections ---------------------------------------------------------------


def syn_only(scale: float = 1, *, connections: int = 200_000) -> HostileCapture:
    """Connections that only ever send a SYN (a SYN flood or a port scan)."""
    frames = [Flow(*client(index)).frame(0, "S") for index in range(count_at(connections, scale))]
    return HostileCapture("syn-only.pcap", pcap(frames))


# --- 12: many empty WebSocket frames -------------------------------------------------------


def ws_connection(response_headers: dict[str, str] | None = None) -> tuple[Flow, list[bytes]]:
    flow = Flow()
    request = http_request("GET", "/ws", headers={"Host": "example", "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": WS_KEY, "Sec-WebSocket-Version": "13"})
    response = http_response(101, "Switching Protocols", headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": WS_ACCEPT, **(response_headers or {})})
    return flow, flow.handshake() + flow.exchange(request, response)


def ws_empty_continuations(scale: float = 1, *, frames: int = 1_000_000, started: bool = True) -> HostileCapture:
    """A server sending zero-length continuation frames: after a text frame that starts a
    message (started=True), or with no message to continue (each frame is a finding)."""
    flow, packets = ws_connection()
    stream = (ws_frame(b"x", opcode=1, fin=False) if started else b"") + ws_frame(b"", opcode=0, fin=False) * count_at(frames, scale)
    packets += flow.send(1, stream, LOOPBACK_SEGMENT) + flow.close()
    return HostileCapture(f"ws-empty-continuations{'' if started else '-orphan'}.pcap", pcap(packets))


# --- 13: decompression without a total budget ----------------------------------------------


def deflate_http_bodies(scale: float = 1, *, bodies: int = 200, inflated: int = 60 * MIB) -> HostileCapture:
    """Keep-alive responses whose gzip bodies each inflate to `inflated` bytes."""
    body = gzip_zeros(b"", inflated)
    response = http_response(200, headers={"Content-Encoding": "gzip"}, body=body)
    flow = Flow()
    frames = flow.handshake()
    for index in range(count_at(bodies, scale)):
        frames += flow.exchange(http_request("GET", f"/blob/{index}"), response, LOOPBACK_SEGMENT)
    return HostileCapture("deflate-http-bodies.pcap", pcap(frames + flow.close()))


def deflate_ws_messages(scale: float = 1, *, messages: int = 100, inflated: int = 60 * MIB) -> HostileCapture:
    """permessage-deflate WebSocket messages that each inflate to `inflated` bytes."""
    flow, packets = ws_connection({"Sec-WebSocket-Extensions": "permessage-deflate"})
    payload = _deflate_then_zeros(b"", inflated)
    assert payload.endswith(b"\x00\x00\xff\xff")
    frame = ws_frame(payload[:-4], opcode=2, rsv1=True)
    packets += flow.send(1, frame * count_at(messages, scale), LOOPBACK_SEGMENT) + flow.close()
    return HostileCapture("deflate-ws-messages.pcap", pcap(packets))


# --- 14: reordering beyond the reassembly buffer ------------------------------------------------


def reordered_halves(scale: float = 1, *, segments: int = 300_000, size: int = 100) -> HostileCapture:
    """`size`-byte segments whose second half arrives before the first (a path change); nothing is resent."""
    flow = Flow()
    handshake = flow.handshake()
    data = flow.send(0, _byte_pattern(count_at(segments, scale) * size), size)
    half = len(data) // 2
    return HostileCapture("reordered-halves.pcap", pcap(handshake + data[half:] + data[:half]))


# --- 16: terminal escapes in names the CLI prints -------------------------------------------------

TERMINAL_ESCAPES = "\x1b]0;owned\x07\x1b[2J"


def terminal_escapes(scale: float = 1) -> HostileCapture:
    """A capture named with terminal escapes whose sidecar names variants (one connection each) with escapes."""
    count = count_at(1, scale)
    variants = [_rest_variant(f"{TERMINAL_ESCAPES}rest-{i}", client_ports=[client(i)[1]]) for i in range(count)]
    return HostileCapture(f"{TERMINAL_ESCAPES}capture.pcap", pcap(plain_exchanges(count)), sidecar(variants))


# --- issue 13: hostile Server-Sent Events ----------------------------------------------------------

def _sse_connection(name: str, stream: bytes, chunk: int = 65_536, content_type: str = "text/event-stream") -> HostileCapture:
    """One GET answered with `stream` as a chunked text/event-stream (or `content_type`) in chunks of `chunk` bytes."""
    flow = Flow()
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in chunks(stream, chunk)) + b"0\r\n\r\n"
    headers = {"Content-Type": content_type, "Cache-Control": "no-cache", "Transfer-Encoding": "chunked"}
    response = http_response(200, headers=headers, content_length=False) + body
    frames = flow.handshake() + flow.exchange(http_request("GET", "/events", headers={"Accept": "text/event-stream"}), response, LOOPBACK_SEGMENT)
    return HostileCapture(name, pcap(frames + flow.close()))


def sse_long_line(scale: float = 1, *, megabytes: int = 50, content_type: str = "text/event-stream") -> HostileCapture:
    """An event stream whose `data:` line runs on for `megabytes` x scale MB without a line end
    (the same bytes as another `content_type`: what reading them as events adds)."""
    return _sse_connection("sse-long-line.pcap", b": ok\n\ndata: " + b"x" * count_at(megabytes * 1_000_000, scale), content_type=content_type)


def sse_empty_events(scale: float = 1, *, events: int = 1_000_000) -> HostileCapture:
    """A million events whose data is empty (`data:` and a blank line: each one is dispatched)."""
    return _sse_connection("sse-empty-events.pcap", b"data:\n\n" * count_at(events, scale))


# Lines an event stream may hold, every way the standard allows and some it does not: a BOM (only
# the first one is dropped), CR, LF and CRLF line ends, bytes that are not UTF-8, an ID with a
# NUL (ignored), a retry that is no number (ignored), comments, fields without data, blank lines.
SSE_HOSTILE_BLOCK = (b"\xef\xbb\xbfdata: bom\r\n\r\nid: 1\rdata: cr\r\rid: 2\r\ndata: crlf\r\n\r\n: comment\n\n"
                     b"data: \xff\xfe\xc3\n\nid: 3\x00\nretry: 1e3\ndata: nul\n\nevent: only\nid: 4\n\n\n\n\r\n"
                     b"data:  two spaces\ndata\n\n")


def sse_hostile_lines(scale: float = 1, *, blocks: int = 100_000) -> HostileCapture:
    """SSE_HOSTILE_BLOCK repeated (a BOM only at the very start, a BOM byte run elsewhere)."""
    return _sse_connection("sse-hostile-lines.pcap", SSE_HOSTILE_BLOCK * count_at(blocks, scale), chunk=1000)


# --- the registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostileClass:
    name: str
    item: int  # issue 8's item number (0: a class of a later issue)
    build: Callable[..., HostileCapture]  # build(scale, **sizes)


CLASSES: dict[str, HostileClass] = {
    c.name: c
    for c in [
        HostileClass("content-length-superscript-request", 1, content_length_superscript),
        HostileClass("content-length-superscript-response", 1, functools.partial(content_length_superscript, role="response")),
        HostileClass("content-length-5000-digits", 1, content_length_digits),
        HostileClass("pcapng-enhanced-block-12", 2, pcapng_short_block),
        HostileClass("pcapng-obsolete-block-12", 2, functools.partial(pcapng_short_block, block="obsolete")),
        HostileClass("sidecar-port-1e999", 4, sidecar_infinite_port),
        HostileClass("sidecar-deep-nesting", 4, sidecar_deep_nesting),
        HostileClass("one-byte-non-http", 6, one_byte_non_http),
        HostileClass("header-only-snaplen", 6, header_only_segments),
        HostileClass("hole-then-one-byte", 6, hole_then_one_byte),
        HostileClass("reversed-one-byte", 6, reversed_one_byte),
        HostileClass("http-in-7-byte-segments", 7, http_in_small_segments),
        HostileClass("upgrade-header-spaces", 8, upgrade_header_spaces),
        HostileClass("resync-status-lines", 8, resync_status_lines),
        HostileClass("chunked-trailer-without-newline", 9, chunked_trailer_without_newline),
        HostileClass("gzip-bomb", 10, gzip_bomb),
        HostileClass("gzip-cut-short", 10, gzip_cut_short),
        HostileClass("syn-only", 11, syn_only),
        HostileClass("ws-empty-continuations", 12, ws_empty_continuations),
        HostileClass("ws-orphan-continuations", 12, functools.partial(ws_empty_continuations, started=False)),
        HostileClass("deflate-http-bodies", 13, deflate_http_bodies),
        HostileClass("deflate-ws-messages", 13, deflate_ws_messages),
        HostileClass("reordered-halves", 14, reordered_halves),
        HostileClass("terminal-escapes", 16, terminal_escapes),
        # issue 13, section 5: hostile Server-Sent Events
        HostileClass("sse-long-line", 0, sse_long_line),
        HostileClass("sse-empty-events", 0, sse_empty_events),
        HostileClass("sse-hostile-lines", 0, sse_hostile_lines),
    ]
}

# A small instance of each class, for unit and fuzz tests and the reference tables: (scale,
# sizes); x8 of it stays under ~100 KB (the gzip bomb inflates to 512 KiB).  Classes not
# listed are small at scale 1 (one connection).
SMALL: dict[str, tuple[float, dict]] = {
    "sidecar-deep-nesting": (0.01, {}),
    "one-byte-non-http": (1 / 256, {}),
    "header-only-snaplen": (0.005, {}),
    "hole-then-one-byte": (0.002, {}),
    "reversed-one-byte": (0.0002, {}),
    "http-in-7-byte-segments": (0.05, {}),
    "upgrade-header-spaces": (1, {"spaces": 2000}),
    "resync-status-lines": (1 / 32, {"segment": 2000}),
    "chunked-trailer-without-newline": (0.002, {}),
    "gzip-bomb": (2e-5, {}),
    "gzip-cut-short": (0.1, {}),
    "syn-only": (0.0005, {}),
    "ws-empty-continuations": (0.0002, {}),
    "ws-orphan-continuations": (0.0002, {}),
    "deflate-http-bodies": (0.01, {"inflated": 256 * 1024}),
    "deflate-ws-messages": (0.02, {"inflated": 256 * 1024}),
    "reordered-halves": (0.0002, {}),
    "sse-long-line": (0.0002, {}),
    "sse-empty-events": (0.0002, {}),
    "sse-hostile-lines": (0.0005, {}),
}


def small(name: str, factor: float = 1) -> HostileCapture:
    """The class `name` at its small scale (SMALL), times `factor`."""
    scale, sizes = SMALL.get(name, (1, {}))
    return CLASSES[name].build(scale * factor, **sizes)
