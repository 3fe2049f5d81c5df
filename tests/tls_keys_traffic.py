"""Record the same REST and WebSocket workload over cleartext and over TLS, with the clients'
key log: real aiohttp servers and clients on loopback, captured by tcpdump (tests/traffic.py).

`record_https(out_dir)` starts one aiohttp application twice, on a cleartext port and on a TLS
port (the self-signed certificate of tests/tls_factories.py, TLS 1.2 to 1.3), and runs WORKLOAD
once in cleartext and once per entry of TLS_CLIENTS (a TLS version and OpenSSL cipher string:
Python's ssl picks TLS_AES_256_GCM_SHA384 for TLS 1.3 and cannot be told otherwise; TLS 1.2
takes what set_ciphers allows).  Each run is one keep-alive HTTP/1.1 connection for the
requests and one WebSocket connection (permessage-deflate, as aiohttp negotiates it).  Every TLS
client writes its secrets to one key log (`ssl.SSLContext.keylog_filename`).  Needs root (or
CAP_NET_RAW) for tcpdump.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from inspector.workloads.servers import HOST, LoopThread
from tests.tls_factories import client_context, server_context
from tests.traffic import tcpdump_capture

TLS_CLIENTS = (
    ("tls13-aes256gcm", ssl.TLSVersion.TLSv1_3, None),
    ("tls12-aes128gcm", ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("tls12-chacha20", ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-CHACHA20-POLY1305"),
)
BODY_SIZES = (0, 10, 2_000, 50_000)
BIG_RESPONSE = 100_000
WS_MESSAGES = ("hello", "x" * 200, b"\x00\x01" * 40_000, "the same text again " * 100)
REQUESTS = 2 + len(BODY_SIZES)  # GET /items, GET /big, a POST /echo per size


@dataclass
class HttpsRecording:
    path: Path
    keylog: Path
    clear_port: int
    tls_port: int
    # The runs in order ("clear", then the TLS_CLIENTS names): each made two connections, REST then
    # WebSocket, one after the other, so a port's connections by start time are its runs'.
    runs: list[str]


def _app() -> web.Application:
    async def items(request: web.Request) -> web.Response:
        return web.json_response({"items": list(range(20))})

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=bytes(range(256)) * (BIG_RESPONSE // 256) + b"z" * (BIG_RESPONSE % 256),
                            content_type="application/octet-stream")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    app = web.Application()
    app.add_routes([web.get("/items", items), web.get("/big", big), web.post("/echo", echo), web.get("/ws", websocket)])
    return app


async def _workload(base: str, context: ssl.SSLContext | None) -> None:
    """The requests on one keep-alive connection, then the WebSocket conversation on another (one after the other)."""
    connector = aiohttp.TCPConnector(limit=1, ssl=context if context is not None else False, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"{base}/items") as response:
            assert response.status == 200 and len((await response.json())["items"]) == 20
        async with session.get(f"{base}/big") as response:
            assert len(await response.read()) == BIG_RESPONSE
        for size in BODY_SIZES:
            body = bytes(range(256)) * (size // 256) + b"q" * (size % 256)
            async with session.post(f"{base}/echo", data=body) as response:
                assert await response.read() == body
    connector = aiohttp.TCPConnector(limit=1, ssl=context if context is not None else False)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.ws_connect(f"{base.replace('http', 'ws', 1)}/ws", autoping=True) as ws:
            for message in WS_MESSAGES:
                if isinstance(message, str):
                    await ws.send_str(message)
                    assert (await ws.receive()).data == message
                else:
                    await ws.send_bytes(message)
                    assert (await ws.receive()).data == message
            await ws.close()


async def _start(app: web.Application, context: ssl.SSLContext | None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, ssl_context=context)
    await site.start()
    return runner, runner.addresses[0][1]


def record_https(out_dir: Path) -> HttpsRecording:
    path, keylog = out_dir / "https.pcap", out_dir / "https.keys"
    keylog.unlink(missing_ok=True)
    context = server_context(out_dir, ssl.TLSVersion.TLSv1_3, ("http/1.1",))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    runs = ["clear", *(name for name, _version, _ciphers in TLS_CLIENTS)]
    with LoopThread("https-loop") as loop:
        clear_runner, clear_port = loop.run(_start(_app(), None))
        tls_runner, tls_port = loop.run(_start(_app(), context))
        try:
            with tcpdump_capture(path, [clear_port, tls_port]):
                loop.run(_workload(f"http://{HOST}:{clear_port}", None))
                for name, version, ciphers in TLS_CLIENTS:
                    client = client_context(version, ("http/1.1",), ciphers)
                    client.keylog_filename = str(keylog)
                    loop.run(_workload(f"https://{HOST}:{tls_port}", client))
        finally:
            loop.run(clear_runner.cleanup())
            loop.run(tls_runner.cleanup())
    return HttpsRecording(path, keylog, clear_port, tls_port, runs)
