"""Real servers on 127.0.0.1 (ephemeral ports) in a background asyncio thread.

`AiohttpServer` and `WebsocketsServer` start and stop an application of either
library on ``127.0.0.1:0`` in the running event loop; subclasses supply the
routes or the connection handler.  `LoopThread` runs that loop in a daemon
thread so that synchronous code (the CLI, tests) can drive servers and async
clients.  `WorkloadRestServer` (HTTP/1.1), `WorkloadH2Server` (HTTP/2, hypercorn) and
`WorkloadWsServer` serve the workloads of `inspector.workloads.scenarios`, the same answers
over every protocol (`RestAnswers` gives both REST servers theirs):

==================  =====================================  ==============================
work                REST (aiohttp)                         WebSocket (websockets)
==================  =====================================  ==============================
chat                ``POST /chat`` -> 200 reply            ``/chat``: text -> text reply
bulk                ``POST /bulk`` -> 200 body of N bytes  ``/bulk``: text -> binary reply
feed, idle          ``GET /feed/next?after=SEQ`` -> 200    ``/feed``: updates pushed as
                    with the next update, 204 if none      text messages
==================  =====================================  ==============================

Both servers log, per client port, what they received and answered; the
recorder checks those logs against the clients' own ledgers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, TypeVar
from urllib.parse import parse_qsl

from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve as ws_serve
from websockets.exceptions import ConnectionClosed

from inspector.workloads.feed import Feed
from inspector.workloads.payloads import bulk_reply, chat_reply

HOST = "127.0.0.1"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # request bodies and WebSocket messages

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop running forever in a daemon thread."""

    def __init__(self, name: str = "workload-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Awaitable[T], timeout: float | None = 30.0) -> T:
        """Run `coro` on the loop and wait for its result (cancelled on timeout)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.loop.is_running():
            with contextlib.suppress(Exception):
                self.run(cancel_rest(), timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        self.loop.close()

    def __enter__(self) -> "LoopThread":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def peer_port(request: web.Request) -> int:
    """The client's TCP port of an aiohttp request (-1 if unknown)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return peer[1] if peer else -1


class AiohttpServer:
    """An aiohttp application on 127.0.0.1:<ephemeral port>.

    Subclasses build the application in `_app()`; `start()` and `stop()` run
    in the event loop that serves it.  With `ssl_context` set before `start()`,
    it serves HTTPS.
    """

    def __init__(self) -> None:
        self.port = 0
        self.ssl_context: ssl.SSLContext | None = None
        self._runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> int:
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class WebsocketsServer:
    """A ``websockets`` server on 127.0.0.1:<ephemeral port>.

    `compression` is passed to ``serve`` ("deflate" accepts permessage-deflate
    when the client offers it); `extensions` replaces it when given.
    Subclasses implement `_handler`.  No automatic keepalive pings: a ping on
    the wire is always one a scenario asked for.  With `ssl_context` set before
    `start()`, it serves WSS.
    """

    def __init__(self, *, compression: str | None = None, extensions: list | None = None,
                 max_size: int | None = MAX_MESSAGE_BYTES) -> None:
        self.compression = compression
        self.extensions = extensions
        self.max_size = max_size
        self.port = 0
        self.ssl_context: ssl.SSLContext | None = None
        self._server: Any = None

    async def _handler(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    async def start(self) -> int:
        kwargs: dict[str, Any] = {"ping_interval": None, "max_size": self.max_size, "ssl": self.ssl_context}
        if self.extensions is not None:
            kwargs["extensions"] = self.extensions
            kwargs["compression"] = None
        else:
            kwargs["compression"] = self.compression
        self._server = await ws_serve(self._handler, HOST, 0, **kwargs)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


# --- the workload servers -------------------------------------------------------------


@dataclass
class PeerLog:
    """What a server received from one client port and what it answered."""

    client_port: int
    received: int = 0
    sent: int = 0
    received_bytes: int = 0
    sent_bytes: int = 0

    def got(self, payload: bytes) -> None:
        self.received += 1
        self.received_bytes += len(payload)

    def answered(self, payload: bytes) -> None:
        self.sent += 1
        self.sent_bytes += len(payload)


@dataclass
class ServerLog:
    """Per client port, in order of first contact."""

    peers: dict[int, PeerLog] = field(default_factory=dict)

    def peer(self, port: int) -> PeerLog:
        if port not in self.peers:
            self.peers[port] = PeerLog(port)
        return self.peers[port]


class RestAnswers:
    """The workloads' REST answers and the server log, whatever server speaks HTTP (see the module
    docstring): (status, body, content type) for a request."""

    ROUTES = {("POST", "/chat"): (chat_reply, "application/json"), ("POST", "/bulk"): (bulk_reply, "application/octet-stream")}

    def __init__(self, feed: Feed | None = None) -> None:
        self.feed = feed
        self.log = ServerLog()

    def answer(self, client_port: int, method: str, path: str, after: str, body: bytes) -> tuple[int, bytes, str]:
        route = self.ROUTES.get((method, path))
        if route is None and (method, path) != ("GET", "/feed/next"):
            return 404, b"", ""  # not one of the workload's messages
        peer = self.log.peer(client_port)
        peer.got(body)
        if route is not None:
            reply, content_type = route
            answer, status = reply(body), 200
        else:
            update = self.feed.next_after(int(after or "0")) if self.feed else None
            answer, status, content_type = (b"", 204, "") if update is None else (update.payload, 200, "application/json")
        peer.answered(answer)
        return status, answer, content_type


class WorkloadRestServer(AiohttpServer, RestAnswers):
    """aiohttp server (HTTP/1.1) for the workloads (see the module docstring)."""

    def __init__(self, feed: Feed | None = None) -> None:
        AiohttpServer.__init__(self)
        RestAnswers.__init__(self, feed)

    def _app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            status, answer, content_type = self.answer(peer_port(request), request.method, request.path, request.query.get("after", ""), body)
            if status == 204:
                return web.Response(status=204)
            return web.Response(status=status, body=answer, content_type=content_type or None)

        app = web.Application(client_max_size=MAX_MESSAGE_BYTES)
        app.router.add_post("/chat", handle)
        app.router.add_post("/bulk", handle)
        app.router.add_get("/feed/next", handle, allow_head=False)
        return app


class WorkloadH2Server(RestAnswers):
    """hypercorn (an ASGI server) speaking HTTP/2 only, with the answers of WorkloadRestServer:
    h2c with prior knowledge in the clear, h2 by ALPN with `ssl_context`'s certificate files
    (`certificate`, as hypercorn loads them itself)."""

    def __init__(self, feed: Feed | None = None) -> None:
        super().__init__(feed)
        self.port = 0
        self.certificate: tuple[str, str] | None = None  # (cert, key) PEM files: serve h2 over TLS
        self._stop: asyncio.Event | None = None
        self._served: asyncio.Task | None = None

    async def _app(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to set up (hypercorn carries on without it)
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        after = dict(parse_qsl(scope["query_string"].decode("latin-1"))).get("after", "")
        status, answer, content_type = self.answer(scope["client"][1], scope["method"], scope["path"], after, bytes(body))
        headers = [(b"content-length", str(len(answer)).encode())] if status != 204 else []
        if content_type:
            headers.append((b"content-type", content_type.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def start(self) -> int:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        listening = socket.create_server((HOST, 0))
        self.port = listening.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{listening.detach()}"]  # hypercorn's from now: it closes it
        config.accesslog = config.errorlog = None
        config.alpn_protocols = ["h2"]
        if self.certificate is not None:
            config.certfile, config.keyfile = self.certificate
        self._stop = asyncio.Event()
        self._served = asyncio.ensure_future(serve(self._app, config, shutdown_trigger=self._stop.wait, mode="asgi"))
        await asyncio.sleep(0)  # hypercorn takes the socket
        return self.port

    async def stop(self) -> None:
        if self._stop is not None and self._served is not None:
            self._stop.set()
            await self._served
            self._stop = self._served = None


class WorkloadWsServer(WebsocketsServer):
    """``websockets`` server for the workloads (see the module docstring)."""

    def __init__(self, *, deflate: bool, feed: Feed | None = None) -> None:
        super().__init__(compression="deflate" if deflate else None)
        self.feed = feed
        self.log = ServerLog()

    async def _handler(self, ws: ServerConnection) -> None:
        peer = self.log.peer(ws.remote_address[1])
        path = ws.request.path if ws.request is not None else ""
        try:
            if path == "/feed" and self.feed is not None:
                await self._subscriber(ws, peer)
            elif path in ("/chat", "/bulk"):
                reply = chat_reply if path == "/chat" else bulk_reply
                async for message in ws:
                    data = message.encode() if isinstance(message, str) else message
                    peer.got(data)
                    answer = reply(data)
                    # chat answers in text, bulk in binary: the payload bytes are the same as over REST.
                    await ws.send(answer.decode() if path == "/chat" else answer)
                    peer.answered(answer)
            else:
                await ws.close(1008, "unknown path")
        except ConnectionClosed:
            pass

    async def _subscriber(self, ws: ServerConnection, peer: PeerLog) -> None:
        assert self.feed is not None

        async def deliver(payload: bytes) -> None:
            await ws.send(payload.decode())
            peer.answered(payload)

        self.feed.subscribe(deliver)
        try:
            async for message in ws:  # subscribers only listen; anything sent is noted
                peer.got(message.encode() if isinstance(message, str) else message)
        finally:
            self.feed.unsubscribe(deliver)
