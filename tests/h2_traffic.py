"""Record real cleartext HTTP/2 (h2c) traffic on loopback: hypercorn serving a small ASGI app.

`record_h2c(out_dir)` starts hypercorn on 127.0.0.1 (a socket bound to port 0
handed over as fd://) and, while tcpdump captures its port on `lo`, runs:

- an httpx prior-knowledge client (`http1=False, http2=True` on http://): a GET,
  a POST with a body, a large response of many DATA frames, a gzip body;
- an httpx AsyncClient on one connection: CONCURRENT GETs at once (asyncio.gather),
  so their streams interleave;
- curl `--http2` (h2c via `Upgrade: h2c`: the request is HTTP/1.1, its response
  comes on stream 1) when Debian's curl is there.

`record_h2c_push(out_dir)` records one connection of the `h2` library's own client (httpx
refuses pushes), which accepts server push: GET /pushing, which hypercorn answers with a
PUSH_PROMISE of /pushed.css (stream 2) and the pushed response; then GET /large, reset by the
client (RST_STREAM CANCEL) at its first DATA frame, while the server has more DATA in flight.

The H2Recording's `expected` is what the clients saw, per client port: the
requests in the order sent (method, path, request body length, status,
response body length as received, content encoding).  Needs root (or
CAP_NET_RAW) for tcpdump.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from inspector.workloads.servers import HOST, LoopThread
from tests.asgi_servers import listening_socket, request_body
from tests.traffic import tcpdump_capture

LARGE_BYTES = 200_000  # many DATA frames of hypercorn's 16 KiB
POST_BYTES = 30_000
CONCURRENT = 6
GZIP_TEXT = b'{"message": "compressible"}' * 400
PUSHED_PATH = "/pushed.css"
PUSHED_BODY = b"body { color: black }"


@dataclass
class Exchange:
    method: str
    path: str
    request_bytes: int
    status: int
    response_bytes: int  # body as sent (content-encoded)
    content_encoding: str = ""


@dataclass
class H2Recording:
    path: Path
    server_port: int
    expected: dict[int, list[Exchange]] = field(default_factory=dict)  # client port -> exchanges in the order sent
    upgrade_port: int | None = None  # the client port of the h2c Upgrade connection (curl), if recorded


async def app(scope, receive, send) -> None:
    """The ASGI app: /small, /large, /gzip, /echo (POST: the body's length back), /wait/N."""
    body = await request_body(scope, receive, send)
    if body is None:
        return
    received = len(body)
    path = scope["path"]
    headers = [(b"content-type", b"text/plain")]
    if path == "/pushing" and "http.response.push" in scope.get("extensions", {}):
        await send({"type": "http.response.push", "path": PUSHED_PATH, "headers": [(b"accept", b"text/css")]})
    if path == "/large":
        body = bytes(range(256)) * (LARGE_BYTES // 256) + b"x" * (LARGE_BYTES % 256)
    elif path == "/gzip":
        body = gzip.compress(GZIP_TEXT, mtime=0)
        headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
    elif path == "/echo":
        body = b"received %d" % received
    elif path == PUSHED_PATH:
        body = PUSHED_BODY
    elif path.startswith("/wait/"):
        await asyncio.sleep(0.01 * (CONCURRENT - int(path.rsplit("/", 1)[1])))  # the first asked answers last
        body = b"waited " + path.encode()
    else:
        body = b"hello"
    await send({"type": "http.response.start", "status": 200, "headers": headers + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _sync_client(port: int) -> tuple[int, list[Exchange]]:
    import httpx

    exchanges = []
    with httpx.Client(http1=False, http2=True, base_url=f"http://{HOST}:{port}") as client:
        for method, path, body in (("GET", "/small", b""), ("POST", "/echo", b"p" * POST_BYTES), ("GET", "/large", b""),
                                   ("GET", "/gzip", b"")):
            response = client.request(method, path, content=body or None)
            assert response.http_version == "HTTP/2", response.http_version
            raw = response.read() if response.headers.get("content-encoding") != "gzip" else gzip.compress(GZIP_TEXT, mtime=0)
            exchanges.append(Exchange(method, path, len(body), response.status_code, len(raw), response.headers.get("content-encoding", "")))
        client_port = client_port_of(client)
    return client_port, exchanges


def client_port_of(client) -> int:
    """The local port of the client's one HTTP/2 connection (httpcore keeps it in its pool)."""
    connection = client._transport._pool.connections[0]
    stream = connection._connection._network_stream
    return stream.get_extra_info("socket").getsockname()[1]


async def _concurrent_client(port: int) -> tuple[int, list[Exchange]]:
    import httpx

    async with httpx.AsyncClient(http1=False, http2=True, base_url=f"http://{HOST}:{port}") as client:
        await client.get("/small")  # opens the connection: the others share it
        responses = await asyncio.gather(*(client.get(f"/wait/{n}") for n in range(CONCURRENT)))
        client_port = client_port_of(client)
    exchanges = [Exchange("GET", "/small", 0, 200, 5)]
    exchanges += [Exchange("GET", f"/wait/{n}", 0, r.status_code, len(r.content)) for n, r in enumerate(responses)]
    return client_port, exchanges


def _curl_upgrade(port: int) -> tuple[int, list[Exchange]] | None:
    """curl --http2 on http:// asks for h2c with Upgrade; None without curl."""
    curl = shutil.which("curl")
    if curl is None:
        return None
    out = subprocess.run([curl, "-sS", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{local_port} %{size_download} %{http_code}",
                          f"http://{HOST}:{port}/small"], capture_output=True, text=True, timeout=30, check=True).stdout.split()
    version, local_port, size, status = out
    assert version == "2", out
    return int(local_port), [Exchange("GET", "/small", 0, int(status), int(size))]


@contextlib.contextmanager
def hypercorn(name: str, asgi=app) -> Iterator[tuple[int, LoopThread]]:
    """hypercorn serving `asgi` (default: `app`) on 127.0.0.1 (a socket bound to port 0 handed over
    as fd://), in a loop thread: (its port, the loop), until the block ends."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sock = listening_socket()
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn's from now: it closes it
    config.accesslog = None
    config.errorlog = None
    with LoopThread(name) as loop:
        stop = asyncio.Event()
        server = asyncio.run_coroutine_threadsafe(serve(asgi, config, shutdown_trigger=stop.wait), loop.loop)
        _wait_accepting(port)
        try:
            yield port, loop
        finally:
            loop.loop.call_soon_threadsafe(stop.set)
            server.result(timeout=30)


def record_h2c(out_dir: Path) -> H2Recording:
    path = out_dir / "h2c.pcap"
    with hypercorn("h2c-loop") as (port, loop):
        recording = H2Recording(path, port)
        with tcpdump_capture(path, [port]):
            client_port, exchanges = _sync_client(port)
            recording.expected[client_port] = exchanges
            client_port, exchanges = loop.run(_concurrent_client(port))
            recording.expected[client_port] = exchanges
            upgraded = _curl_upgrade(port)
            if upgraded is not None:
                recording.upgrade_port = upgraded[0]
                recording.expected[upgraded[0]] = upgraded[1]
    return recording


def _wait_accepting(port: int) -> None:
    """Until hypercorn answers: a connection that is accepted (the socket listens from the start,
    so this only waits for the loop to run the server)."""
    with socket.create_connection((HOST, port), timeout=10):
        pass


@dataclass
class H2PushRecording:
    path: Path
    server_port: int
    client_port: int
    promised: dict[int, str]  # promised stream -> path, as the client's h2 saw the PUSH_PROMISE
    pushed_bytes: dict[int, int]  # promised stream -> body bytes the client received
    reset_stream: int  # the stream the client reset mid-response


def _push_client(port: int) -> tuple[int, dict[int, str], dict[int, int], int]:
    """The h2 library's client, server push enabled (its default): (client port, promised paths,
    pushed body bytes, the stream it reset)."""
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events

    authority = f"{HOST}:{port}"
    promised: dict[int, str] = {}
    received: dict[int, int] = {}
    ended: set[int] = set()
    pongs: list[bytes] = []
    with socket.create_connection((HOST, port), timeout=30) as sock:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()

        def ask(path: str) -> int:
            stream_id = conn.get_next_available_stream_id()
            conn.send_headers(stream_id, [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", authority)],
                              end_stream=True)
            sock.sendall(conn.data_to_send())
            return stream_id

        def read(until) -> None:
            while not until():
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection"
                for event in conn.receive_data(chunk):
                    if isinstance(event, h2.events.PingAckReceived):
                        pongs.append(event.ping_data)
                    elif isinstance(event, h2.events.PushedStreamReceived):
                        promised[event.pushed_stream_id] = dict(event.headers)[b":path"].decode()
                    elif isinstance(event, h2.events.DataReceived):
                        received[event.stream_id] = received.get(event.stream_id, 0) + len(event.data)
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                        ended.add(event.stream_id)
                sock.sendall(conn.data_to_send())

        first = ask("/pushing")
        read(lambda: first in ended and promised and all(stream in ended for stream in promised))
        large = ask("/large")
        read(lambda: received.get(large, 0) > 0)
        conn.reset_stream(large, h2.errors.ErrorCodes.CANCEL)
        sock.sendall(conn.data_to_send())
        conn.ping(b"after-rs")  # its ACK comes after whatever the server had in flight
        sock.sendall(conn.data_to_send())
        read(lambda: pongs)
        conn.close_connection()
        sock.sendall(conn.data_to_send())
        client_port = sock.getsockname()[1]
    return client_port, promised, {stream: received.get(stream, 0) for stream in promised}, large


def record_h2c_push(out_dir: Path) -> H2PushRecording:
    path = out_dir / "h2c-push.pcap"
    with hypercorn("h2c-push-loop") as (port, _loop), tcpdump_capture(path, [port]):
        client_port, promised, pushed, reset_stream = _push_client(port)
    return H2PushRecording(path, port, client_port, promised, pushed, reset_stream)
