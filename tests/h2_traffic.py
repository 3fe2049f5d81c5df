"""Record real cleartext HTTP/2 (h2c) traffic on loopback: hypercorn serving a small ASGI app.

`record_h2c(out_dir)` starts hypercorn on 127.0.0.1 (a socket bound to port 0
handed over as fd://) and, while tcpdump captures its port on `lo`, runs:

- an httpx prior-knowledge client (`http1=False, http2=True` on http://): a GET,
  a POST with a body, a large response of many DATA frames, a gzip body;
- an httpx AsyncClient on one connection: CONCURRENT GETs at once (asyncio.gather),
  so their streams interleave;
- curl `--http2` (h2c via `Upgrade: h2c`: the request is HTTP/1.1, its response
  comes on stream 1) when Debian's curl is there.

The H2Recording's `expected` is what the clients saw, per client port: the
requests in the order sent (method, path, request body length, status,
response body length as received, content encoding).  Needs root (or
CAP_NET_RAW) for tcpdump.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from inspector.workloads.servers import HOST, LoopThread
from tests.asgi_servers import listening_socket, request_body
from tests.traffic import tcpdump_capture

LARGE_BYTES = 200_000  # many DATA frames of hypercorn's 16 KiB
POST_BYTES = 30_000
CONCURRENT = 6
GZIP_TEXT = b'{"message": "compressible"}' * 400


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
    if path == "/large":
        body = bytes(range(256)) * (LARGE_BYTES // 256) + b"x" * (LARGE_BYTES % 256)
    elif path == "/gzip":
        body = gzip.compress(GZIP_TEXT, mtime=0)
        headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
    elif path == "/echo":
        body = b"received %d" % received
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
        client_port = _client_port(client)
    return client_port, exchanges


def _client_port(client) -> int:
    """The local port of the client's one HTTP/2 connection (httpcore keeps it in its pool)."""
    connection = client._transport._pool.connections[0]
    stream = connection._connection._network_stream
    return stream.get_extra_info("socket").getsockname()[1]


async def _concurrent_client(port: int) -> tuple[int, list[Exchange]]:
    import httpx

    async with httpx.AsyncClient(http1=False, http2=True, base_url=f"http://{HOST}:{port}") as client:
        await client.get("/small")  # opens the connection: the others share it
        responses = await asyncio.gather(*(client.get(f"/wait/{n}") for n in range(CONCURRENT)))
        client_port = _client_port(client)
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


def record_h2c(out_dir: Path) -> H2Recording:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    path = out_dir / "h2c.pcap"
    sock = listening_socket()
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn's from now: it closes it
    config.accesslog = None
    config.errorlog = None
    recording = H2Recording(path, port)
    with LoopThread("h2c-loop") as loop:
        stop = asyncio.Event()
        server = asyncio.run_coroutine_threadsafe(serve(app, config, shutdown_trigger=stop.wait), loop.loop)
        _wait_accepting(port)
        try:
            with tcpdump_capture(path, [port]):
                client_port, exchanges = _sync_client(port)
                recording.expected[client_port] = exchanges
                client_port, exchanges = loop.run(_concurrent_client(port))
                recording.expected[client_port] = exchanges
                upgraded = _curl_upgrade(port)
                if upgraded is not None:
                    recording.upgrade_port = upgraded[0]
                    recording.expected[upgraded[0]] = upgraded[1]
        finally:
            loop.loop.call_soon_threadsafe(stop.set)
            server.result(timeout=30)
    return recording


def _wait_accepting(port: int) -> None:
    """Until hypercorn answers: a connection that is accepted (the socket listens from the start,
    so this only waits for the loop to run the server)."""
    with socket.create_connection((HOST, port), timeout=10):
        pass
