"""REST, Server-Sent Events and WebSocket clients that keep a ledger of what they did.

Every TCP connection a client opens is noted by its local port, read from the
client's own socket (the REST client binds each socket itself, before
connecting, through aiohttp's ``socket_factory``), so that a recording can
attribute every connection of the capture to its variant.  Every application
message is noted with its payload size: for REST a request or a response and
its body bytes as sent (no content coding is used or undone), for WebSocket a
data message and its payload before permessage-deflate, for SSE a stream's
request and each event and its data.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import aiohttp
from websockets.asyncio.client import ClientConnection, connect as ws_connect

from inspector.workloads.servers import HOST, MAX_MESSAGE_BYTES

SIDES = ("client", "server")
STEP_TIMEOUT = 60.0  # seconds for one request, message or pong: a stuck workload fails, never hangs


@dataclass
class Ledger:
    """What one variant put on the wire, by the clients' account."""

    client_ports: list[int] = field(default_factory=list)
    messages_sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))
    payload_bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))

    def connected(self, port: int) -> None:
        if port not in self.client_ports:
            self.client_ports.append(port)

    def message(self, sender: str, payload: bytes | str) -> None:
        """An application message sent by `sender` ("client" or "server")."""
        size = len(payload.encode() if isinstance(payload, str) else payload)
        self.messages_sent[sender] += 1
        self.payload_bytes[sender] += size


class RestClient:
    """aiohttp client to http://127.0.0.1:PORT, one request at a time.

    `keep_alive=True`: one persistent HTTP/1.1 connection for every request
    (reopened only if the server closes it).  `keep_alive=False`: a new TCP
    connection for each request, closed after the response.  With `ssl_context`:
    https://, that context's TLS.
    """

    def __init__(self, port: int, ledger: Ledger, *, keep_alive: bool, ssl_context: ssl.SSLContext | None = None) -> None:
        self.base = f"{'https' if ssl_context else 'http'}://{HOST}:{port}"
        self.ledger = ledger
        self.keep_alive = keep_alive
        self.ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _socket(self, addr_info: tuple) -> socket.socket:
        family, type_, proto, _name, _address = addr_info
        sock = socket.socket(family, type_, proto)
        try:
            sock.bind((HOST, 0))  # the port is known before the SYN goes out
        except OSError:
            sock.close()
            raise
        self.ledger.connected(sock.getsockname()[1])
        return sock

    async def __aenter__(self) -> "RestClient":
        options: dict[str, Any] = {"limit": 1, "socket_factory": self._socket, "ssl": self.ssl_context or True}
        if self.keep_alive:
            options["keepalive_timeout"] = 3600.0  # idle polling must not drop the connection
        else:
            options["force_close"] = True
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(**options), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, connect=STEP_TIMEOUT, sock_read=STEP_TIMEOUT),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> tuple[int, bytes]:
        """Send one request, read the whole response; (status, body)."""
        assert self._session is not None, "use `async with RestClient(...)`"
        headers = {"Content-Type": content_type} if content_type else {}
        async with self._session.request(method, self.base + path, data=body, headers=headers) as response:
            data = await response.read()
            status = response.status
        self.ledger.message("client", body or b"")
        self.ledger.message("server", data)
        return status, data


def _local_port(response: Any) -> int:
    """The client's TCP port of an httpx response (httpcore's network stream knows it)."""
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


class _HttpxClient:
    """An httpx client of one connection at a time to 127.0.0.1:PORT (https:// with
    `ssl_context`), made on entering: HTTP/2 only or HTTP/1.1 only (`HTTP2`); `KEEP_IDLE`
    says whether the pool keeps a connection once its response is read."""

    HTTP2 = False
    KEEP_IDLE = True

    def __init__(self, port: int, ledger: Ledger, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.base = f"{'https' if ssl_context else 'http'}://{HOST}:{port}"
        self.ledger = ledger
        self.ssl_context = ssl_context
        self._client: Any = None

    async def __aenter__(self):
        import httpx

        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1 if self.KEEP_IDLE else 0)
        self._client = httpx.AsyncClient(http1=not self.HTTP2, http2=self.HTTP2, verify=self.ssl_context or False, trust_env=False,
                                         limits=limits, timeout=httpx.Timeout(STEP_TIMEOUT))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class H2RestClient(_HttpxClient):
    """httpx client speaking HTTP/2 only to 127.0.0.1:PORT, one connection for every request,
    which may be sent concurrently (each on its own stream): h2c with prior knowledge in the
    clear, h2 by ALPN with `ssl_context`."""

    HTTP2 = True

    async def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> tuple[int, bytes]:
        """Send one request, read the whole response; (status, body)."""
        assert self._client is not None, "use `async with H2RestClient(...)`"
        headers = {"Content-Type": content_type} if content_type else {}
        response = await self._client.request(method, self.base + path, content=body, headers=headers)
        data = response.content
        self.ledger.connected(_local_port(response))
        self.ledger.message("client", body or b"")
        self.ledger.message("server", data)
        return response.status_code, data


class SseClient(_HttpxClient):
    """Server-Sent Events over HTTP/1.1 from http://127.0.0.1:PORT (https:// with
    `ssl_context`): httpx streams the response, httpx-sse splits it into events.

    Each stream goes on a connection of its own (the pool keeps none), as an EventSource's
    reconnection after a dropped stream does.  httpx-sse hands out a data-less event for a
    blank line once an id has been seen (the standard dispatches nothing without data), so
    only events with data are events here: the ledger counts what the standard would."""

    KEEP_IDLE = False

    @asynccontextmanager
    async def stream(self, path: str, last_event_id: str | None = None) -> AsyncIterator[tuple[int, int, AsyncIterator[Any]]]:
        """GET `path` as an event stream (with `Last-Event-ID` when given): (status, client
        port, the events as they come until the stream ends: httpx-sse's, with `id` and `data`)."""
        from httpx_sse import aconnect_sse

        assert self._client is not None, "use `async with SseClient(...)`"
        headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
        async with aconnect_sse(self._client, "GET", self.base + path, headers=headers) as source:
            port = _local_port(source.response)
            self.ledger.connected(port)
            self.ledger.message("client", b"")
            yield source.response.status_code, port, self._events(source)

    async def _events(self, source: Any) -> AsyncIterator[Any]:
        async for event in source.aiter_sse():
            if event.data:
                self.ledger.message("server", event.data)
                yield event


class WsClient:
    """``websockets`` client to ws://127.0.0.1:PORT/PATH, with or without permessage-deflate
    (wss:// with `ssl_context`)."""

    def __init__(self, port: int, path: str, ledger: Ledger, *, deflate: bool, ssl_context: ssl.SSLContext | None = None) -> None:
        self.uri = f"{'wss' if ssl_context else 'ws'}://{HOST}:{port}{path}"
        self.ledger = ledger
        self.deflate = deflate
        self.ssl_context = ssl_context
        self._ws: ClientConnection | None = None

    @property
    def ws(self) -> ClientConnection:
        assert self._ws is not None, "use `async with WsClient(...)`"
        return self._ws

    @property
    def extensions(self) -> str | None:
        return self.ws.response.headers.get("Sec-WebSocket-Extensions") if self.ws.response else None

    async def __aenter__(self) -> "WsClient":
        self._ws = await ws_connect(
            self.uri, compression="deflate" if self.deflate else None, ping_interval=None,
            max_size=MAX_MESSAGE_BYTES, proxy=None, open_timeout=STEP_TIMEOUT, close_timeout=STEP_TIMEOUT, ssl=self.ssl_context,
        )
        self.ledger.connected(self._ws.local_address[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close(1000, "done")
            self._ws = None

    async def send(self, message: str | bytes) -> None:
        await self.ws.send(message)
        self.ledger.message("client", message)

    async def recv(self) -> str | bytes:
        message = await asyncio.wait_for(self.ws.recv(), STEP_TIMEOUT)
        self.ledger.message("server", message)
        return message

    async def ping(self, data: bytes) -> None:
        """Ping and wait for the pong (control frames are not application messages)."""
        pong = await self.ws.ping(data)
        await asyncio.wait_for(pong, STEP_TIMEOUT)
