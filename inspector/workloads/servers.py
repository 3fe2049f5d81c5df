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
feed, idle          ``GET /feed/wait?after=SEQ``: held
(long polling)      until the next update (200) or `hold`
                    seconds (204)
feed, idle (SSE)    ``GET /feed/events``: a
                    ``text/event-stream`` (chunked), an
                    event per update, resumed after a
                    ``Last-Event-ID``
==================  =====================================  ==============================

Both servers log, per client port, what they received and answered; the
recorder checks those logs against the clients' own ledgers.  The SSE stream
also logs, per stream, what it was asked to resume after and what it wrote
(`SseStreamLog`).
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

from inspector.workloads.feed import Feed, Update
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

SSE_KEEPALIVE = b": keep-alive\n\n"  # a comment line and the blank line after it: no event
STREAM_STALL_S = 60.0  # an event stream waits this long for the feed's next update at most


def sse_event(seq: int, payload: bytes) -> bytes:
    """Update `seq` as one Server-Sent Event: ``id: SEQ``, then the payload as one ``data:``
    line, then the blank line that dispatches it.  The payload bytes are those of every other
    variant; a payload with a line end would need several data lines (the client joins them
    with LF, so CR and CRLF would not come back): ValueError.  The workloads' payloads are
    compact JSON, which escapes control characters, so they never have one."""
    if b"\n" in payload or b"\r" in payload:
        raise ValueError("an SSE data line cannot carry a line end")
    return b"id: %d\ndata: %s\n\n" % (seq, payload)


@dataclass(frozen=True)
class SsePlan:
    """How an event stream behaves besides sending updates: `keepalives` comments
    (SSE_KEEPALIVE), one each `keepalive_interval` seconds from the stream's start, before it
    ends; `drop_after`: the stream is dropped once, right after the update of that seq."""

    keepalives: int = 0
    keepalive_interval: float = 1.0
    drop_after: int | None = None


@dataclass
class SseStreamLog:
    """One event stream as the server served it: the Last-Event-ID it was asked to resume
    after (None: not sent), the events and keep-alives it wrote, its body bytes (the
    event-stream text, before chunk framing), whether it was dropped."""

    client_port: int
    last_event_id: str | None
    events: int = 0
    keepalives: int = 0
    body_bytes: int = 0
    dropped: bool = False


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
        if route is None:
            return self.feed_answer(client_port, body, self.feed.next_after(int(after or "0")) if self.feed else None)
        peer = self.log.peer(client_port)
        peer.got(body)
        reply, content_type = route
        answer = reply(body)
        peer.answered(answer)
        return 200, answer, content_type

    def feed_answer(self, client_port: int, body: bytes, update: Update | None) -> tuple[int, bytes, str]:
        """A poll's answer, logged: 200 with `update`, or 204 when there is none."""
        peer = self.log.peer(client_port)
        peer.got(body)
        answer, status, content_type = (b"", 204, "") if update is None else (update.payload, 200, "application/json")
        peer.answered(answer)
        return status, answer, content_type


def _response(status: int, answer: bytes, content_type: str) -> web.Response:
    if status == 204:
        return web.Response(status=204)
    return web.Response(status=status, body=answer, content_type=content_type or None)


class WorkloadRestServer(AiohttpServer, RestAnswers):
    """aiohttp server (HTTP/1.1) for the workloads (see the module docstring).

    `hold`: how long a long poll (``/feed/wait``) is held when nothing new comes.  `sse`: how
    the event stream (``/feed/events``) keeps alive, ends and is dropped."""

    def __init__(self, feed: Feed | None = None, *, hold: float | None = None, sse: SsePlan | None = None) -> None:
        AiohttpServer.__init__(self)
        RestAnswers.__init__(self, feed)
        self.hold = hold
        self.sse = sse or SsePlan()
        self.streams: list[SseStreamLog] = []
        self._dropped = False  # the one drop of the plan happened

    def _app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            return _response(*self.answer(peer_port(request), request.method, request.path, request.query.get("after", ""), body))

        app = web.Application(client_max_size=MAX_MESSAGE_BYTES)
        app.router.add_post("/chat", handle)
        app.router.add_post("/bulk", handle)
        app.router.add_get("/feed/next", handle, allow_head=False)
        if self.feed is not None:
            app.router.add_get("/feed/wait", self._long_poll, allow_head=False)
            app.router.add_get("/feed/events", self._event_stream, allow_head=False)
        return app

    async def _long_poll(self, request: web.Request) -> web.Response:
        assert self.feed is not None and self.hold is not None, "long polling needs a feed and a hold"
        body = await request.read()
        update = await self.feed.wait_next(int(request.query.get("after") or "0"), self.hold)
        return _response(*self.feed_answer(peer_port(request), body, update))

    async def _event_stream(self, request: web.Request) -> web.StreamResponse:
        """The feed as Server-Sent Events: the updates after the request's Last-Event-ID (all of
        them without one), then each one as it is published, and the plan's keep-alives; the
        stream ends when the feed's last update is sent and the keep-alives are done, or when
        the plan drops it (once: the stream ends and the connection is closed)."""
        assert self.feed is not None
        feed, plan = self.feed, self.sse
        last_event_id = request.headers.get("Last-Event-ID")
        port = peer_port(request)
        self.log.peer(port).got(await request.read())
        stream = SseStreamLog(port, last_event_id)
        self.streams.append(stream)
        sent = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        next_keepalive = loop.time() + plan.keepalive_interval
        while sent < feed.count or stream.keepalives < plan.keepalives:
            wait = next_keepalive - loop.time() if stream.keepalives < plan.keepalives else STREAM_STALL_S
            update = await feed.wait_next(sent, max(wait, 0.0))
            if update is not None:
                sent = update.seq
                if await self._send_update(response, stream, update):
                    break
            elif stream.keepalives < plan.keepalives:
                await self._write(response, stream, SSE_KEEPALIVE)
                stream.keepalives += 1
                next_keepalive += plan.keepalive_interval
            else:
                break  # the feed stalled: the client will see too few updates and say so
        await response.write_eof()
        return response

    async def _send_update(self, response: web.StreamResponse, stream: SseStreamLog, update: Update) -> bool:
        """Write `update` as an event; True if the plan drops the stream after it (once)."""
        await self._write(response, stream, sse_event(update.seq, update.payload))
        self.log.peer(stream.client_port).answered(update.payload)
        stream.events += 1
        if update.seq == self.sse.drop_after and not self._dropped:
            self._dropped = stream.dropped = True
            response.force_close()  # the connection goes with the stream
        return stream.dropped

    @staticmethod
    async def _write(response: web.StreamResponse, stream: SseStreamLog, data: bytes) -> None:
        await response.write(data)
        stream.body_bytes += len(data)


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
