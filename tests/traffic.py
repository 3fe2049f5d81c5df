"""Record real loopback REST and WebSocket traffic into pcap files.

Plain functions (no pytest fixtures) that start real servers on 127.0.0.1
(aiohttp for REST, ``websockets`` for WebSocket), drive real clients against
them and let ``tcpdump`` capture the packets.  Each ``record_<name>(out_dir)``
returns a :class:`Recording` whose ``expected`` dict is ground truth taken
from the scenario itself (what the clients sent, what the servers saw and
answered), never from parsing the capture.

Only 127.0.0.1 is ever used.  Needs root (or CAP_NET_RAW) for tcpdump.
Import as ``from tests import traffic`` (tests/ is a package).  The servers'
plumbing and the background loop are `inspector.workloads.servers`'s (the
package's `inspector record` workloads run on them too); the bundled captures
are made by `inspector record`, not by these scenarios.
Every scenario takes well under a second and writes < 200 KB.

Common ``expected`` keys (every scenario has them):

``scenario``          scenario name
``interface``         capture interface (``lo`` or ``any``)
``link_type``         tcpdump's link-type name (``EN10MB``, ``LINUX_SLL2``...)
``dlt``               numeric link type from the pcap file header
``captured_packets``  tcpdump's own "N packets captured" (timing-dependent:
                      ACK coalescing varies, so don't compare across runs)
``server_ports``      ``{"http": port or None, "ws": [ports]}``
``client_ports``      sorted ephemeral client ports, one per TCP connection
``tcp_connections``   number of TCP connections (each opened and closed
                      cleanly with FIN both ways inside the capture)
``http_requests``     number of HTTP requests, WebSocket handshakes included
``http_methods``      ``{"GET": n, ...}`` (handshakes count as GET)
``http_statuses``     ``{200: n, 101: n, ...}`` (int keys)
``requests``          per REST request (handshakes not included), in order,
                      as the aiohttp server logged it: ``method``, ``path``,
                      ``status``, ``client_port``, ``request_chunked``,
                      ``request_chunks``, ``response_chunked``,
                      ``response_chunks`` (chunk counts exclude the final
                      zero-size chunk; 0 when not chunked)
``ws_connections``    list, one per WebSocket connection: ``client_port``,
                      ``server_port``, ``extensions`` (negotiated
                      Sec-WebSocket-Extensions or None), ``messages``
                      (``{"client": n, "server": n}``), ``frames``
                      (``{"client": [...], "server": [...]}``, each frame
                      ``{"opcode", "fin", "rsv1", "size"}`` in send order;
                      ``size`` is the application payload length, i.e.
                      before compression), ``close`` (``code``, ``reason``,
                      ``initiator``)
``ws_messages``       ``{"client": n, "server": n}`` data messages sent
``ws_frames``         ``{"client": {"text", "binary", "continuation",
                      "ping", "pong", "close"}, "server": {...}}`` frame counts
``ws_close_codes``    close codes in connection order

Scenario-specific keys: rest_chunked ``chunked_responses``,
``chunked_requests``, ``response_chunk_sizes``, ``request_chunk_sizes``
(lists of chunk-size lists, zero chunk excluded); rest_pipelined
``pipelined_requests``, ``pipelined_bytes`` (all in one send()); ws_plain,
ws_deflate, ws_close_codes ``compressed``; ws_deflate ``no_context_takeover``
(per connection).

websockets sends a message given as an iterable as one FIN=0 frame per part
followed by an EMPTY continuation frame with FIN=1; the ledgers record that.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import aiohttp
from aiohttp import web
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

# The servers' plumbing and the background loop are the package's own
# (`inspector record` runs its workloads on them).
from inspector.workloads.servers import HOST, AiohttpServer, LoopThread, WebsocketsServer

__all__ = [
    "HOST",
    "Capture",
    "CaptureFailed",
    "LoopThread",
    "Recording",
    "RestServer",
    "ServedRequest",
    "WsLedger",
    "WsServer",
    "SCENARIOS",
    "pcap_linktype",
    "record_any_interface",
    "record_rest_chunked",
    "record_rest_keepalive",
    "record_rest_per_request",
    "record_rest_pipelined",
    "record_ws_close_codes",
    "record_ws_deflate",
    "record_ws_plain",
    "servers",
    "tcpdump_capture",
]


# --- tcpdump -----------------------------------------------------------------


class CaptureFailed(RuntimeError):
    """tcpdump could not start, did not stop cleanly, or wrote a bad file."""


@dataclass
class Capture:
    """What one tcpdump run did; filled in as the run goes."""

    path: Path
    interface: str
    ports: tuple[int, ...]
    link_type: str | None = None  # tcpdump's name, e.g. "EN10MB", "LINUX_SLL2"
    packets_captured: int | None = None
    packets_dropped: int | None = None
    returncode: int | None = None
    stderr_lines: list[str] = field(default_factory=list)


_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "<",  # microsecond, little-endian
    b"\xa1\xb2\xc3\xd4": ">",
    b"\x4d\x3c\xb2\xa1": "<",  # nanosecond
    b"\xa1\xb2\x3c\x4d": ">",
}


def pcap_linktype(path: Path) -> int:
    """Link type (DLT/LINKTYPE number) from a classic pcap file header."""
    header = Path(path).read_bytes()[:24]
    if len(header) < 24 or header[:4] not in _PCAP_MAGICS:
        raise CaptureFailed(f"{path}: not a classic pcap file")
    endian = _PCAP_MAGICS[header[:4]]
    return struct.unpack(endian + "I", header[20:24])[0]


def _wait_until_quiet(path: Path, min_wait: float, quiet: float, max_wait: float) -> None:
    """Wait until the capture file has stopped growing for `quiet` seconds.

    tcpdump runs with -U --immediate-mode, so every captured packet is written
    out at once; a file that has not grown for a while has all packets of the
    finished exchange (the last FIN/ACKs included).
    """
    start = last_change = time.monotonic()
    last_size = -1
    while True:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = -1
        now = time.monotonic()
        if size != last_size:
            last_size, last_change = size, now
        if now - start >= min_wait and now - last_change >= quiet:
            return
        if now - start >= max_wait:
            return
        time.sleep(0.02)


@contextlib.contextmanager
def tcpdump_capture(
    path: Path | str,
    ports: Iterable[int],
    interface: str = "lo",
    *,
    start_timeout: float = 10.0,
    settle: float = 0.2,
    quiet: float = 0.25,
    max_settle: float = 3.0,
    buffer_kib: int = 65536,
) -> Iterator[Capture]:
    """Capture `tcp port A or tcp port B ...` on `interface` into `path`.

    Yields once tcpdump reports "listening on"; on exit waits until the file
    has stopped growing (at least `settle` s, the file unchanged for `quiet`
    s, at most `max_settle` s), then stops tcpdump with SIGINT and checks the
    file.  The yielded :class:`Capture` gets the packet counts at exit.

    `buffer_kib` is tcpdump's -B.  It matters: in immediate mode libpcap uses
    a TPACKET_V2 ring of fixed-size slots sized for the snap length (~128 KiB
    each on lo, MTU 65536), so the default 2 MiB buffer holds only ~16
    packets, and on lo every packet passes the ring twice (the outgoing copy
    is dropped in userland).  A burst then overflows it and the kernel drops
    packets; we raise CaptureFailed when tcpdump reports any drop.
    """
    path = Path(path)
    ports = tuple(int(p) for p in ports)
    if not ports:
        raise ValueError("tcpdump_capture needs at least one port")
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise CaptureFailed("tcpdump not found on PATH")
    cmd = [tcpdump, "-i", interface, "-w", str(path), "-U", "-s", "0",
           "--immediate-mode", "-n", "-B", str(buffer_kib)]
    if os.geteuid() == 0:
        # Debian's tcpdump otherwise drops to user "tcpdump" after opening
        # the file, which leaves the capture owned by that user.
        cmd += ["-Z", pwd.getpwuid(os.geteuid()).pw_name]
    cmd.append(" or ".join(f"tcp port {p}" for p in ports))

    cap = Capture(path=path, interface=interface, ports=ports)
    listening = threading.Event()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, errors="replace",
    )

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip("\n")
            cap.stderr_lines.append(line)
            m = re.search(r"listening on \S+, link-type (\S+)", line)
            if m:
                cap.link_type = m.group(1)
                listening.set()
        listening.set()  # EOF: tcpdump exited; the waiter checks why

    reader = threading.Thread(target=read_stderr, name="tcpdump-stderr", daemon=True)
    reader.start()

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(timeout=5)
        cap.returncode = proc.returncode
        text = "\n".join(cap.stderr_lines)
        m = re.search(r"(\d+) packets? captured", text)
        cap.packets_captured = int(m.group(1)) if m else None
        m = re.search(r"(\d+) packets? dropped by kernel", text)
        cap.packets_dropped = int(m.group(1)) if m else None

    if not listening.wait(start_timeout) or cap.link_type is None:
        stop()
        raise CaptureFailed(
            f"tcpdump did not start listening (rc={proc.returncode}): "
            + " | ".join(cap.stderr_lines)
        )

    body_ok = False
    try:
        yield cap
        body_ok = True
    finally:
        if body_ok:
            _wait_until_quiet(path, settle, quiet, max_settle)
        stop()
    # Only reached when the body did not raise.
    if cap.returncode != 0:
        raise CaptureFailed(
            f"tcpdump exited with {cap.returncode}: " + " | ".join(cap.stderr_lines)
        )
    if cap.packets_dropped:
        raise CaptureFailed(f"tcpdump: {cap.packets_dropped} packets dropped by kernel")
    pcap_linktype(path)  # raises when the header is missing or wrong


# --- REST server --------------------------------------------------------------


@dataclass(frozen=True)
class ServedRequest:
    """One request as the aiohttp server saw and answered it."""

    method: str
    path: str
    status: int
    client_port: int
    request_chunked: bool
    request_chunks: int
    response_chunked: bool
    response_chunks: int


_INFO = web.RequestKey("traffic_info", dict)  # per-request chunk counters

ITEMS = [{"id": i, "name": f"item-{i}", "price": round(1.5 * i, 2)} for i in range(1, 6)]
ETAG = '"items-v1"'


def stream_chunk(i: int, size: int) -> bytes:
    """Deterministic body of chunk `i` of /api/stream, exactly `size` bytes."""
    line = f"chunk {i:04d} ".encode()
    return (line * (size // len(line) + 1))[:size]


class RestServer(AiohttpServer):
    """aiohttp REST server on 127.0.0.1:<ephemeral>, logging every request.

    Endpoints:
      GET|HEAD /api/items              JSON list
      GET      /api/items/{id}         JSON item; 404 JSON for unknown ids
      PUT      /api/items/{id}         JSON echo of the update
      DELETE   /api/items/{id}         204 No Content
      GET      /api/cached             200 with ETag; 304 when If-None-Match matches
      POST     /api/echo               JSON {"echo": <request JSON>}
      GET      /api/stream?chunks=N&size=S  chunked response, N chunks of S bytes
      POST     /api/upload             reads the (chunked) body, JSON summary
    """

    def __init__(self) -> None:
        super().__init__()
        self.log: list[ServedRequest] = []

    def _app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Callable) -> web.StreamResponse:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            info: dict[str, Any] = {"request_chunks": 0, "response_chunks": 0}
            request[_INFO] = info
            status = 500
            try:
                resp = await handler(request)
                status = resp.status
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                self.log.append(ServedRequest(
                    method=request.method,
                    path=request.path_qs,
                    status=status,
                    client_port=peer[1] if peer else -1,
                    request_chunked="chunked" in request.headers.get("Transfer-Encoding", "").lower(),
                    request_chunks=info["request_chunks"],
                    response_chunked=bool(info["response_chunks"]),
                    response_chunks=info["response_chunks"],
                ))
            return resp

        async def items(request: web.Request) -> web.Response:
            return web.json_response({"items": ITEMS, "count": len(ITEMS)})

        async def item(request: web.Request) -> web.Response:
            item_id = int(request.match_info["id"])
            for it in ITEMS:
                if it["id"] == item_id:
                    return web.json_response(it)
            return web.json_response({"error": "not found", "id": item_id}, status=404)

        async def put_item(request: web.Request) -> web.Response:
            body = await request.json()
            return web.json_response({"id": int(request.match_info["id"]), **body})

        async def delete_item(request: web.Request) -> web.Response:
            return web.Response(status=204)

        async def cached(request: web.Request) -> web.Response:
            if request.headers.get("If-None-Match") == ETAG:
                return web.Response(status=304, headers={"ETag": ETAG})
            return web.json_response({"items": ITEMS}, headers={"ETag": ETAG})

        async def echo(request: web.Request) -> web.Response:
            return web.json_response({"echo": await request.json()})

        async def stream(request: web.Request) -> web.StreamResponse:
            n = int(request.query.get("chunks", "5"))
            size = int(request.query.get("size", "64"))
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for i in range(n):
                await resp.write(stream_chunk(i, size))  # one write = one HTTP chunk
                request[_INFO]["response_chunks"] += 1
                await asyncio.sleep(0.005)  # spread chunks over segments
            await resp.write_eof()
            return resp

        async def upload(request: web.Request) -> web.Response:
            total = chunks = 0
            async for data, end_of_chunk in request.content.iter_chunks():
                total += len(data)
                if end_of_chunk and data:
                    chunks += 1
            request[_INFO]["request_chunks"] = chunks
            return web.json_response({"received": total, "chunks": chunks})

        app = web.Application(middlewares=[record])
        app.router.add_get("/api/items", items)  # HEAD too (allow_head)
        app.router.add_get("/api/items/{id}", item)
        app.router.add_put("/api/items/{id}", put_item)
        app.router.add_delete("/api/items/{id}", delete_item)
        app.router.add_get("/api/cached", cached)
        app.router.add_post("/api/echo", echo)
        app.router.add_get("/api/stream", stream)
        app.router.add_post("/api/upload", upload)
        return app



# --- WebSocket server ---------------------------------------------------------


@dataclass
class WsServed:
    """One WebSocket connection as the server saw it."""

    client_port: int
    received: list[str | bytes] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None


class WsServer(WebsocketsServer):
    """`websockets` echo server on 127.0.0.1:<ephemeral>.

    Every data message is echoed back as one unfragmented message of the same
    type.  Text messages starting with "!" are commands, not echoed:

      ``!frag A|B|C``        send a text message fragmented as A, B, C
      ``!ping PAYLOAD``      ping the client, wait for the pong, send "pong-ok"
      ``!close CODE REASON`` start the closing handshake with CODE and REASON
    """

    def __init__(self, *, compression: str | None = None, extensions: list | None = None) -> None:
        super().__init__(compression=compression, extensions=extensions, max_size=2**20)
        self.connections: list[WsServed] = []

    async def _handler(self, ws: ServerConnection) -> None:
        served = WsServed(client_port=ws.remote_address[1])
        self.connections.append(served)
        try:
            async for msg in ws:
                served.received.append(msg)
                if isinstance(msg, str) and msg.startswith("!"):
                    cmd, _, arg = msg[1:].partition(" ")
                    if cmd == "frag":
                        await ws.send(arg.split("|"))
                    elif cmd == "ping":
                        pong = await ws.ping(arg.encode())
                        await pong
                        await ws.send("pong-ok")
                    elif cmd == "close":
                        code, _, reason = arg.partition(" ")
                        await ws.close(int(code), reason)
                        break
                    else:
                        await ws.send(f"unknown command {cmd}")
                else:
                    await ws.send(msg)
        except ConnectionClosed:
            pass
        await ws.wait_closed()
        if ws.protocol.close_rcvd is not None:
            served.close_code = ws.protocol.close_rcvd.code
            served.close_reason = ws.protocol.close_rcvd.reason


@contextlib.contextmanager
def servers(rest: bool = True, ws: Iterable[dict[str, Any]] = ()) -> Iterator[tuple[LoopThread, RestServer | None, list[WsServer]]]:
    """Start a RestServer (if `rest`) and one WsServer per kwargs dict in `ws`
    on a background loop; stop them all on exit."""
    lt = LoopThread()
    rest_srv = RestServer() if rest else None
    ws_srvs = [WsServer(**kw) for kw in ws]
    try:
        if rest_srv is not None:
            lt.run(rest_srv.start())
        for s in ws_srvs:
            lt.run(s.start())
        yield lt, rest_srv, ws_srvs
    finally:
        try:
            for s in ws_srvs:
                lt.run(s.stop())
            if rest_srv is not None:
                lt.run(rest_srv.stop())
        finally:
            lt.close()


# --- ground-truth bookkeeping --------------------------------------------------

_OPCODE_NAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


class WsLedger:
    """Frames one WebSocket connection sent each way, as the scenario made them."""

    def __init__(self, server_port: int, compressed: bool = False) -> None:
        self.server_port = server_port
        self.compressed = compressed
        self.client_port = 0
        self.extensions: str | None = None
        self.frames: dict[str, list[dict[str, Any]]] = {"client": [], "server": []}
        self.messages = {"client": 0, "server": 0}
        self.close: dict[str, Any] | None = None

    def _frame(self, sender: str, opcode: int, fin: bool, rsv1: bool, data: str | bytes) -> None:
        size = len(data.encode() if isinstance(data, str) else data)
        self.frames[sender].append({"opcode": opcode, "fin": fin, "rsv1": rsv1, "size": size})

    def message(self, sender: str, msg: str | bytes) -> None:
        """`ws.send(msg)`: one frame."""
        self.messages[sender] += 1
        self._frame(sender, 1 if isinstance(msg, str) else 2, True, self.compressed, msg)

    def fragmented(self, sender: str, parts: list[str | bytes]) -> None:
        """`ws.send(iterable)`: websockets sends one FIN=0 frame per part, then
        an empty continuation frame with FIN=1 (it cannot know which part is
        the last)."""
        self.messages[sender] += 1
        opcode = 1 if isinstance(parts[0], str) else 2
        for i, part in enumerate(parts):
            self._frame(sender, opcode if i == 0 else 0, False, self.compressed and i == 0, part)
        self._frame(sender, 0, True, False, b"")

    def control(self, sender: str, opcode: int, size: int) -> None:
        self.frames[sender].append({"opcode": opcode, "fin": True, "rsv1": False, "size": size})

    def closed(self, initiator: str, code: int, reason: str) -> None:
        other = "server" if initiator == "client" else "client"
        size = 2 + len(reason.encode())
        self.control(initiator, 8, size)
        self.control(other, 8, size)  # websockets echoes code and reason
        self.close = {"code": code, "reason": reason, "initiator": initiator}

    def as_dict(self) -> dict[str, Any]:
        return {
            "client_port": self.client_port,
            "server_port": self.server_port,
            "extensions": self.extensions,
            "messages": dict(self.messages),
            "frames": {k: list(v) for k, v in self.frames.items()},
            "close": self.close,
        }


def _check_ws_close(ws: Any, ledger: WsLedger) -> None:
    """The library's own view of the closing handshake must match the ledger."""
    proto = ws.protocol
    assert ledger.close is not None
    assert proto.close_sent is not None and proto.close_rcvd is not None, "closing handshake incomplete"
    for c in (proto.close_sent, proto.close_rcvd):
        assert (c.code, c.reason) == (ledger.close["code"], ledger.close["reason"]), (c, ledger.close)
    # close_rcvd_then_sent is True when the peer initiated.
    initiator = "server" if proto.close_rcvd_then_sent else "client"
    assert initiator == ledger.close["initiator"], (initiator, ledger.close)


def _build_expected(
    scenario: str,
    cap: Capture,
    rest: RestServer | None,
    ws_servers: list[WsServer],
    ledgers: list[WsLedger],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    requests: list[dict[str, Any]] = []
    if rest is not None:
        requests = [
            {
                "method": r.method, "path": r.path, "status": r.status,
                "client_port": r.client_port,
                "request_chunked": r.request_chunked, "request_chunks": r.request_chunks,
                "response_chunked": r.response_chunked, "response_chunks": r.response_chunks,
            }
            for r in rest.log
        ]
    # WebSocket handshakes are HTTP requests too (GET -> 101).
    handshakes = [
        {"method": "GET", "path": "/", "status": 101, "client_port": led.client_port,
         "request_chunked": False, "request_chunks": 0,
         "response_chunked": False, "response_chunks": 0}
        for led in ledgers
    ]
    all_requests = requests + handshakes
    rest_ports = {r["client_port"] for r in requests}
    ws_ports = [led.client_port for led in ledgers]
    client_ports = sorted(rest_ports | set(ws_ports))
    assert len(set(ws_ports)) == len(ws_ports) and not rest_ports & set(ws_ports)

    # Cross-check the ledgers against what the WebSocket servers saw.
    served = {c.client_port: c for s in ws_servers for c in s.connections}
    assert sorted(served) == sorted(ws_ports), (sorted(served), ws_ports)
    for led in ledgers:
        c = served[led.client_port]
        assert len(c.received) == led.messages["client"], (len(c.received), led.messages)
        assert led.close is not None and c.close_code == led.close["code"], (c.close_code, led.close)

    frames: dict[str, Counter] = {"client": Counter(), "server": Counter()}
    messages = {"client": 0, "server": 0}
    for led in ledgers:
        for side in ("client", "server"):
            messages[side] += led.messages[side]
            frames[side].update(_OPCODE_NAMES[f["opcode"]] for f in led.frames[side])

    expected: dict[str, Any] = {
        "scenario": scenario,
        "interface": cap.interface,
        "link_type": cap.link_type,
        "dlt": pcap_linktype(cap.path),
        "captured_packets": cap.packets_captured,
        "server_ports": {
            "http": rest.port if rest is not None else None,
            "ws": [s.port for s in ws_servers],
        },
        "client_ports": client_ports,
        "tcp_connections": len(client_ports),
        "http_requests": len(all_requests),
        "http_methods": dict(Counter(r["method"] for r in all_requests)),
        "http_statuses": dict(Counter(r["status"] for r in all_requests)),
        "requests": requests,
        "ws_connections": [led.as_dict() for led in ledgers],
        "ws_messages": messages,
        "ws_frames": {
            side: {name: frames[side][name] for name in
                   ("text", "binary", "continuation", "ping", "pong", "close")}
            for side in ("client", "server")
        },
        "ws_close_codes": [led.close["code"] for led in ledgers if led.close],
    }
    if extra:
        expected.update(extra)
    return expected


@dataclass(frozen=True)
class Recording:
    """A pcap file and ground truth about what the scenario put on the wire."""

    name: str
    path: Path
    expected: dict[str, Any]

    @property
    def server_ports(self) -> list[int]:
        sp = self.expected["server_ports"]
        return ([sp["http"]] if sp["http"] else []) + list(sp["ws"])

    def tshark_decode_as(self) -> list[str]:
        """`-d tcp.port==P,http` for every server port (WS handshakes are HTTP)."""
        args: list[str] = []
        for p in self.server_ports:
            args += ["-d", f"tcp.port=={p},http"]
        return args


# --- REST clients ---------------------------------------------------------------

# (method, path, json body or None, extra headers, expected status)
REQUEST_PLAN: list[tuple[str, str, Any, dict[str, str], int]] = [
    ("GET", "/api/items", None, {}, 200),
    ("GET", "/api/items/1", None, {}, 200),
    ("POST", "/api/echo", {"hello": "world", "n": 1}, {}, 200),
    ("HEAD", "/api/items", None, {}, 200),
    ("PUT", "/api/items/2", {"name": "renamed", "price": 9.5}, {}, 200),
    ("DELETE", "/api/items/3", None, {}, 204),
    ("GET", "/api/cached", None, {}, 200),
    ("GET", "/api/cached", None, {"If-None-Match": ETAG}, 304),
    ("GET", "/api/items/999", None, {}, 404),
    ("POST", "/api/echo", {"list": list(range(20)), "text": "x" * 300}, {}, 200),
]


def _check_log(rest: RestServer, plan: list[tuple[str, str, int]]) -> None:
    got = [(r.method, r.path, r.status) for r in rest.log]
    assert got == plan, f"server saw {got}, scenario planned {plan}"


def _base_url(port: int) -> str:
    return f"http://{HOST}:{port}"


def _out(out_dir: Path, name: str) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.pcap"
    if path.exists():
        path.unlink()
    return path


def record_rest_keepalive(out_dir: Path, n: int = 10) -> Recording:
    """`n` requests (GET/POST/HEAD/PUT/DELETE, 200/204/304/404) over ONE
    persistent connection of one aiohttp ClientSession."""
    plan = [REQUEST_PLAN[i % len(REQUEST_PLAN)] for i in range(n)]
    path = _out(out_dir, "rest_keepalive")
    with servers(rest=True) as (lt, rest, _):
        assert rest is not None

        async def client() -> None:
            conn = aiohttp.TCPConnector(limit=1, force_close=False)
            async with aiohttp.ClientSession(_base_url(rest.port), connector=conn) as s:
                for method, url, body, headers, status in plan:
                    async with s.request(method, url, json=body, headers=headers) as r:
                        await r.read()
                        assert r.status == status, (method, url, r.status)

        with tcpdump_capture(path, [rest.port]) as cap:
            lt.run(client())
        _check_log(rest, [(m, p, st) for m, p, _, _, st in plan])
        assert len({r.client_port for r in rest.log}) == 1, "keep-alive was not kept"
        expected = _build_expected("rest_keepalive", cap, rest, [], [])
    return Recording("rest_keepalive", path, expected)


def record_rest_per_request(out_dir: Path, n: int = 10) -> Recording:
    """`n` requests, each on its own TCP connection (http.client, one
    HTTPConnection per request, `Connection: close`)."""
    plan = [REQUEST_PLAN[i % len(REQUEST_PLAN)] for i in range(n)]
    path = _out(out_dir, "rest_per_request")
    with servers(rest=True) as (lt, rest, _):
        assert rest is not None
        with tcpdump_capture(path, [rest.port]) as cap:
            for method, url, body, headers, status in plan:
                conn = http.client.HTTPConnection(HOST, rest.port, timeout=10)
                hdrs = {"Connection": "close", **headers}
                data = None
                if body is not None:
                    data = json.dumps(body).encode()
                    hdrs["Content-Type"] = "application/json"
                conn.request(method, url, body=data, headers=hdrs)
                resp = conn.getresponse()
                resp.read()
                assert resp.status == status, (method, url, resp.status)
                conn.close()
        _check_log(rest, [(m, p, st) for m, p, _, _, st in plan])
        assert len({r.client_port for r in rest.log}) == n, "connections were reused"
        expected = _build_expected("rest_per_request", cap, rest, [], [])
    return Recording("rest_per_request", path, expected)


# (chunks, chunk size) of the chunked downloads, chunk sizes of the uploads
CHUNKED_DOWNLOADS = [(5, 100), (3, 2000)]
CHUNKED_UPLOADS = [[64, 128, 256, 512], [1000, 3000, 10]]


def upload_chunk(i: int, size: int) -> bytes:
    return bytes((i * 31 + j) % 251 for j in range(size))


def record_rest_chunked(out_dir: Path) -> Recording:
    """Chunked responses (aiohttp StreamResponse, one HTTP chunk per write)
    and chunked request uploads (aiohttp client, async generator body), all
    on one keep-alive connection, interleaved download/upload."""
    path = _out(out_dir, "rest_chunked")
    with servers(rest=True) as (lt, rest, _):
        assert rest is not None

        async def client() -> None:
            conn = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession(_base_url(rest.port), connector=conn) as s:
                for (n, size), sizes in zip(CHUNKED_DOWNLOADS, CHUNKED_UPLOADS):
                    async with s.get(f"/api/stream?chunks={n}&size={size}") as r:
                        body = await r.read()
                        assert r.status == 200 and r.headers.get("Transfer-Encoding") == "chunked"
                        assert body == b"".join(stream_chunk(i, size) for i in range(n))

                    async def gen(sizes: list[int] = sizes) -> Any:
                        for i, sz in enumerate(sizes):
                            yield upload_chunk(i, sz)
                            await asyncio.sleep(0.005)

                    async with s.post("/api/upload", data=gen(),
                                      headers={"Content-Type": "application/octet-stream"}) as r:
                        got = await r.json()
                        assert r.status == 200
                        assert got == {"received": sum(sizes), "chunks": len(sizes)}, got

        with tcpdump_capture(path, [rest.port]) as cap:
            lt.run(client())
        plan = []
        for (n, size), _sizes in zip(CHUNKED_DOWNLOADS, CHUNKED_UPLOADS):
            plan += [("GET", f"/api/stream?chunks={n}&size={size}", 200), ("POST", "/api/upload", 200)]
        _check_log(rest, plan)
        for r, want in zip(rest.log[0::2], CHUNKED_DOWNLOADS):
            assert r.response_chunked and r.response_chunks == want[0]
        for r, want in zip(rest.log[1::2], CHUNKED_UPLOADS):
            assert r.request_chunked and r.request_chunks == len(want)
        assert len({r.client_port for r in rest.log}) == 1
        expected = _build_expected("rest_chunked", cap, rest, [], [], {
            "chunked_responses": len(CHUNKED_DOWNLOADS),
            "chunked_requests": len(CHUNKED_UPLOADS),
            "response_chunk_sizes": [[size] * n for n, size in CHUNKED_DOWNLOADS],
            "request_chunk_sizes": [list(s) for s in CHUNKED_UPLOADS],
        })
    return Recording("rest_chunked", path, expected)


class _SharedFile:
    """Hands http.client.HTTPResponse one buffered reader for all responses
    (HTTPResponse closes its file after each body; this one stays open)."""

    def __init__(self, f: Any) -> None:
        self._f = f

    def makefile(self, *args: Any, **kwargs: Any) -> "_SharedFile":
        return self

    def readline(self, *args: Any) -> bytes:
        return self._f.readline(*args)

    def read(self, *args: Any) -> bytes:
        return self._f.read(*args)

    def readinto(self, b: Any) -> int:
        return self._f.readinto(b)

    def peek(self, *args: Any) -> bytes:
        return self._f.peek(*args)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


PIPELINE = [
    ("GET", "/api/items/1", None, 200),
    ("HEAD", "/api/items", None, 200),
    ("POST", "/api/echo", {"pipelined": True}, 200),
    ("GET", "/api/items/2", None, 200),
]


def record_rest_pipelined(out_dir: Path) -> Recording:
    """A raw socket client sends all PIPELINE requests in ONE sendall() before
    reading anything (HTTP/1.1 pipelining); the last has Connection: close."""
    path = _out(out_dir, "rest_pipelined")
    with servers(rest=True) as (lt, rest, _):
        assert rest is not None
        blob = b""
        for i, (method, url, body, _status) in enumerate(PIPELINE):
            head = f"{method} {url} HTTP/1.1\r\nHost: {HOST}:{rest.port}\r\nUser-Agent: traffic-pipeline\r\n"
            data = b""
            if body is not None:
                data = json.dumps(body).encode()
                head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            if i == len(PIPELINE) - 1:
                head += "Connection: close\r\n"
            blob += head.encode() + b"\r\n" + data
        statuses: list[int] = []
        with tcpdump_capture(path, [rest.port]) as cap:
            with socket.create_connection((HOST, rest.port), timeout=10) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.sendall(blob)  # one send: all requests in one segment
                f = sock.makefile("rb")
                for method, _url, _body, _status in PIPELINE:
                    resp = http.client.HTTPResponse(_SharedFile(f), method=method)  # type: ignore[arg-type]
                    resp.begin()
                    resp.read()
                    statuses.append(resp.status)
                assert f.read() == b"", "data after the last pipelined response"
                f.close()
        assert statuses == [st for *_, st in PIPELINE], statuses
        _check_log(rest, [(m, p, st) for m, p, _, st in PIPELINE])
        assert len({r.client_port for r in rest.log}) == 1
        expected = _build_expected("rest_pipelined", cap, rest, [], [], {
            "pipelined_requests": len(PIPELINE),
            "pipelined_bytes": len(blob),
        })
    return Recording("rest_pipelined", path, expected)


# --- WebSocket clients --------------------------------------------------------


def _payloads(seed: int = 1234) -> list[str | bytes]:
    """Messages covering 7-bit, 16-bit and 64-bit payload lengths."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]

    def text(n: int) -> str:
        out = ""
        while len(out) < n:
            out += rng.choice(words) + " "
        return out[:n]

    return [
        "hello",              # 7-bit
        text(125),            # largest 7-bit length
        text(126),            # smallest 16-bit length
        text(200),            # 16-bit
        rng.randbytes(1000),  # binary, 16-bit
        rng.randbytes(70000), # binary, 64-bit
        "",                   # empty text
    ]


def _ws_uri(port: int) -> str:
    return f"ws://{HOST}:{port}/"


async def _ws_chat(port: int, ledger: WsLedger, client_kwargs: dict[str, Any], big: bool = True) -> None:
    """The ws_plain / ws_deflate conversation; every step goes in the ledger.
    `big=False` leaves out the 70000-byte message."""
    async with ws_connect(_ws_uri(port), ping_interval=None, max_size=2**20, **client_kwargs) as ws:
        ledger.client_port = ws.local_address[1]
        ledger.extensions = ws.response.headers.get("Sec-WebSocket-Extensions")

        # Echoed messages of every length class.
        for msg in _payloads():
            if not big and len(msg) > 65535:
                continue
            await ws.send(msg)
            ledger.message("client", msg)
            echo = await ws.recv()
            assert echo == msg
            ledger.message("server", msg)

        # The same compressible text twice (context takeover shows in deflate).
        repeat = "the same sentence again and again. " * 8
        for _ in range(2):
            await ws.send(repeat)
            ledger.message("client", repeat)
            assert await ws.recv() == repeat
            ledger.message("server", repeat)

        # Client ping -> server pong.
        pong = await ws.ping(b"ping-1")
        await pong
        ledger.control("client", 9, 6)
        ledger.control("server", 10, 6)

        # Client-fragmented text and binary messages; server echoes one frame each.
        frags_t = ["frag-one ", "frag-two ", "frag-three"]
        await ws.send(frags_t)
        ledger.fragmented("client", frags_t)
        assert await ws.recv() == "".join(frags_t)
        ledger.message("server", "".join(frags_t))

        frags_b = [bytes([1]) * 100, bytes([2]) * 300, bytes([3]) * 50]

        async def agen() -> Any:
            for fr in frags_b:
                yield fr

        await ws.send(agen())
        ledger.fragmented("client", frags_b)
        assert await ws.recv() == b"".join(frags_b)
        ledger.message("server", b"".join(frags_b))

        # Server-fragmented text message.
        cmd = "!frag s-one|s-two|s-three|s-four"
        await ws.send(cmd)
        ledger.message("client", cmd)
        assert await ws.recv() == "s-ones-twos-threes-four"
        ledger.fragmented("server", ["s-one", "s-two", "s-three", "s-four"])

        # Server ping -> client pong (automatic), then the server says so.
        cmd = "!ping srv-ping"
        await ws.send(cmd)
        ledger.message("client", cmd)
        ledger.control("server", 9, len(b"srv-ping"))
        ledger.control("client", 10, len(b"srv-ping"))
        assert await ws.recv() == "pong-ok"
        ledger.message("server", "pong-ok")

        await ws.close(1000, "bye")
        ledger.closed("client", 1000, "bye")
        _check_ws_close(ws, ledger)


def record_ws_plain(out_dir: Path) -> Recording:
    """One uncompressed WebSocket connection: text/binary echoes of 7/16/64-bit
    lengths, pings both ways, client- and server-fragmented messages, close
    1000 "bye"."""
    path = _out(out_dir, "ws_plain")
    with servers(rest=False, ws=[{"compression": None}]) as (lt, _, (wss,)):
        ledger = WsLedger(wss.port)
        with tcpdump_capture(path, [wss.port]) as cap:
            lt.run(_ws_chat(wss.port, ledger, {"compression": None}))
        assert ledger.extensions is None
        expected = _build_expected("ws_plain", cap, None, [wss], [ledger], {"compressed": False})
    return Recording("ws_plain", path, expected)


def record_ws_deflate(out_dir: Path) -> Recording:
    """Two connections with permessage-deflate: the library defaults (context
    takeover), then a server that forces server_ and client_no_context_takeover.
    The ws_plain conversation on each (the second without the 70000-byte
    message, to keep the file small); frame sizes in `expected` are
    uncompressed lengths."""
    path = _out(out_dir, "ws_deflate")
    nct = [ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True,
        server_max_window_bits=12, compress_settings={"memLevel": 5},
    )]
    with servers(rest=False, ws=[{"compression": "deflate"}, {"extensions": nct}]) as (lt, _, wss):
        ledgers = [WsLedger(wss[0].port, compressed=True), WsLedger(wss[1].port, compressed=True)]
        with tcpdump_capture(path, [s.port for s in wss]) as cap:
            lt.run(_ws_chat(wss[0].port, ledgers[0], {"compression": "deflate"}))
            lt.run(_ws_chat(wss[1].port, ledgers[1], {
                "compression": None,
                "extensions": [ClientPerMessageDeflateFactory(client_max_window_bits=True)],
            }, big=False))
        assert ledgers[0].extensions and "permessage-deflate" in ledgers[0].extensions
        assert "no_context_takeover" not in ledgers[0].extensions
        assert ledgers[1].extensions and "server_no_context_takeover" in ledgers[1].extensions
        assert "client_no_context_takeover" in ledgers[1].extensions
        expected = _build_expected("ws_deflate", cap, None, wss, ledgers, {
            "compressed": True,
            "no_context_takeover": [False, True],
        })
    return Recording("ws_deflate", path, expected)


# (initiator, code, reason)
CLOSES = [
    ("server", 1001, "server going away"),
    ("client", 4000, "custom app close"),
    ("client", 1001, "client going away"),
]


def record_ws_close_codes(out_dir: Path) -> Recording:
    """Three short uncompressed connections, one after another, each one text
    echo then a close: server 1001, client 4000, client 1001."""
    path = _out(out_dir, "ws_close_codes")
    with servers(rest=False, ws=[{"compression": None}]) as (lt, _, (wss,)):
        ledgers: list[WsLedger] = []

        async def one(initiator: str, code: int, reason: str) -> None:
            led = WsLedger(wss.port)
            ledgers.append(led)
            async with ws_connect(_ws_uri(wss.port), compression=None, ping_interval=None) as ws:
                led.client_port = ws.local_address[1]
                msg = f"hi {code}"
                await ws.send(msg)
                led.message("client", msg)
                assert await ws.recv() == msg
                led.message("server", msg)
                if initiator == "server":
                    cmd = f"!close {code} {reason}"
                    await ws.send(cmd)
                    led.message("client", cmd)
                    await ws.wait_closed()
                else:
                    await ws.close(code, reason)
                led.closed(initiator, code, reason)
                assert ws.close_code == code, ws.close_code
                _check_ws_close(ws, led)

        with tcpdump_capture(path, [wss.port]) as cap:
            for initiator, code, reason in CLOSES:
                lt.run(one(initiator, code, reason))
        expected = _build_expected("ws_close_codes", cap, None, [wss], ledgers, {"compressed": False})
    return Recording("ws_close_codes", path, expected)


def record_any_interface(out_dir: Path) -> Recording:
    """One GET (http.client) and one short WebSocket echo, captured on the
    `any` pseudo-interface (Linux cooked capture; tcpdump 4.99 writes
    LINUX_SLL2, DLT 276)."""
    path = _out(out_dir, "any_interface")
    with servers(rest=True, ws=[{"compression": None}]) as (lt, rest, (wss,)):
        assert rest is not None
        led = WsLedger(wss.port)

        async def ws_client() -> None:
            async with ws_connect(_ws_uri(wss.port), compression=None, ping_interval=None) as ws:
                led.client_port = ws.local_address[1]
                await ws.send("hello any")
                led.message("client", "hello any")
                assert await ws.recv() == "hello any"
                led.message("server", "hello any")
                await ws.close(1000, "")
                led.closed("client", 1000, "")
                _check_ws_close(ws, led)

        with tcpdump_capture(path, [rest.port, wss.port], interface="any") as cap:
            conn = http.client.HTTPConnection(HOST, rest.port, timeout=10)
            conn.request("GET", "/api/items")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            conn.close()
            lt.run(ws_client())
        _check_log(rest, [("GET", "/api/items", 200)])
        expected = _build_expected("any_interface", cap, rest, [wss], [led])
    return Recording("any_interface", path, expected)


SCENARIOS: dict[str, Callable[[Path], Recording]] = {
    "rest_keepalive": record_rest_keepalive,
    "rest_per_request": record_rest_per_request,
    "rest_chunked": record_rest_chunked,
    "rest_pipelined": record_rest_pipelined,
    "ws_plain": record_ws_plain,
    "ws_deflate": record_ws_deflate,
    "ws_close_codes": record_ws_close_codes,
    "any_interface": record_any_interface,
}
