"""Record real Server-Sent Events on loopback: an aiohttp server streaming text/event-stream,
read by httpx-sse (and, for a body read to the close, by aiohttp's HTTP/1.0 client with
httpx-sse's decoder), while tcpdump captures the server's port on `lo`.

`record_sse(out_dir)` runs, each response's events spread over segments (a write each):

- on one keep-alive connection (httpx): a chunked stream (keep-alive comments, ids, event
  types, a retry, multi-line and non-ASCII data, CRLF line ends), the same stream gzip-coded
  with a flush after each event, and the same stream as one body with a Content-Length;
- on a connection of its own: the stream read to the close (HTTP/1.0, no length, no chunks);
- a stream the server drops after DROP_AFTER events (the connection closed, its chunked body
  unfinished), and the client's reconnection on a new connection with Last-Event-ID after the
  retry the server asked for, which the server resumes after that id (EventSource's way).

`record_sse_h2(out_dir)` serves the same stream over cleartext HTTP/2 (hypercorn, an ASGI body
message a DATA frame each, one event in two) to httpx-sse on one prior-knowledge connection: two
streams at once (their DATA frames interleave), one of them gzip-coded.

The SseRecording's `received` is what the clients got, per client port: per response, in order,
(path, events), each event (type, data, last event id, retry) as httpx-sse gives it; `dropped`
and `resumed` the client ports of the reconnection.  Needs root (or CAP_NET_RAW) for tcpdump.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from aiohttp import web
from httpx_sse import aconnect_sse
from httpx_sse._decoders import SSEDecoder  # the decoder httpx-sse reads lines with

from inspector.workloads.servers import HOST, AiohttpServer, LoopThread
from tests.asgi_servers import request_body
from tests.h2_traffic import client_port_of, hypercorn
from tests.traffic import tcpdump_capture

EVENT_COUNT = 6
DROP_AFTER = 3
RETRY_MS = 80
PAUSE_S = 0.004  # between writes: each goes out in its own segment


def event_lines(index: int) -> bytes:
    """The index-th event of a stream (ids 1, 2, ...): fields and data vary with it."""
    data = json.dumps({"seq": index, "text": "\u00e9t\u00e9 \u2713" if index % 3 == 0 else "x" * (index * 7)}, ensure_ascii=False)
    lines = [f"id: {index}", f"data: {data}"]
    if index % 2 == 0:
        lines.insert(0, "event: tick")
    if index == 2:
        lines.append("data: a second line")
    if index == 1:
        lines.append(f"retry: {RETRY_MS}")
    end = "\r\n" if index == 4 else "\n"
    return (end.join(lines) + end + end).encode()


def stream_pieces(first: int = 1, last: int = EVENT_COUNT) -> list[bytes]:
    """What the server writes, a piece a write: a keep-alive comment first and after every other event."""
    pieces = [b": hello\n\n"]
    for index in range(first, last + 1):
        pieces.append(event_lines(index))
        if index % 2:
            pieces.append(b": keep-alive\n\n")
    return pieces


class SseServer(AiohttpServer):
    """GET /events: the stream (chunked; HTTP/1.0: to the close); ?gzip=1 coded with a flush a
    write; ?drop=K: the connection closed after K events, unless the request resumes: a
    Last-Event-ID resumes after it.
    GET /events-length: the whole stream as one body with a Content-Length."""

    def _app(self) -> web.Application:
        async def events(request: web.Request) -> web.StreamResponse:
            resume = request.headers.get("Last-Event-ID")
            first = int(resume) + 1 if resume else 1
            drop = 0 if resume else int(request.query.get("drop", "0"))  # a resumed stream is not dropped again
            coded = request.query.get("gzip") == "1"
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                                   **({"Content-Encoding": "gzip"} if coded else {})})
            await response.prepare(request)
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if coded else None
            sent = 0
            for piece in stream_pieces(first):
                if compressor is not None:
                    piece = compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)
                await response.write(piece)
                await asyncio.sleep(PAUSE_S)
                sent += piece.startswith(b"id") or b"\nid: " in piece[:40]
                if drop and sent >= drop:
                    request.transport.close()  # dropped: the body never ends
                    return response
            if compressor is not None:
                await response.write(compressor.flush())
            await response.write_eof()
            return response

        async def events_length(request: web.Request) -> web.Response:
            return web.Response(body=b"".join(stream_pieces()), headers={"Content-Type": "text/event-stream"})

        app = web.Application()
        app.router.add_get("/events", events)
        app.router.add_get("/events-length", events_length)
        return app


Event = tuple[str, str, str, int | None]  # type, data, last event id, retry


@dataclass
class SseRecording:
    path: Path
    server_port: int
    received: dict[int, list[tuple[str, list[Event]]]] = field(default_factory=dict)  # client port -> (path, events) per response
    dropped: int = 0  # client port of the stream the server dropped
    resumed: int = 0  # client port of the reconnection
    last_event_id: str = ""  # what the reconnection sent


def _client_port(response: httpx.Response) -> int:
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


async def _read(client: httpx.AsyncClient, url: str, recording: SseRecording, headers: dict | None = None) -> tuple[int, list[Event]]:
    """Read one stream with httpx-sse; (client port, events) even when the server drops it."""
    events: list[Event] = []
    async with aconnect_sse(client, "GET", url, headers=headers or {}) as source:
        port = _client_port(source.response)
        try:
            async for sse in source.aiter_sse():
                events.append((sse.event, sse.data, sse.id, sse.retry))
        except httpx.RemoteProtocolError:
            pass  # the server dropped the stream: what was read stands
    recording.received.setdefault(port, []).append((url.rsplit("/", 1)[1], events))
    return port, events


async def _read_to_close(base: str, recording: SseRecording) -> None:
    """GET /events in HTTP/1.0 (aiohttp): no chunks, no length, the body runs to the close."""
    decoder, events = SSEDecoder(), []
    async with aiohttp.ClientSession(version=aiohttp.HttpVersion10) as session:
        async with session.get(f"{base}/events", headers={"Connection": "close"}) as response:
            port = response.connection.transport.get_extra_info("sockname")[1]
            assert response.headers.get("Transfer-Encoding") is None and response.headers.get("Content-Length") is None
            async for line in response.content:
                sse = decoder.decode(line.decode().rstrip("\r\n"))
                if sse is not None:
                    events.append((sse.event, sse.data, sse.id, sse.retry))
    recording.received.setdefault(port, []).append(("events", events))


async def _client(base: str, recording: SseRecording) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for url in ("/events", "/events?gzip=1", "/events-length"):
            await _read(client, url, recording)
    await _read_to_close(base, recording)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        recording.dropped, events = await _read(client, f"/events?drop={DROP_AFTER}", recording)
    retry = next(r for *_, r in events if r is not None)
    await asyncio.sleep(retry / 1000)  # EventSource waits the retry the server asked for
    recording.last_event_id = events[-1][2]
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:  # a new connection
        # The same URL again, as EventSource reconnects
        recording.resumed, _ = await _read(client, f"/events?drop={DROP_AFTER}", recording, {"Last-Event-ID": recording.last_event_id})


def record_sse(out_dir: Path) -> SseRecording:
    path = Path(out_dir) / "sse.pcap"
    with LoopThread("sse-loop") as loop:
        server = SseServer()
        port = loop.run(server.start())
        recording = SseRecording(path, port)
        try:
            with tcpdump_capture(path, [port]):
                loop.run(_client(f"http://{HOST}:{port}", recording))
                time.sleep(0.05)
        finally:
            loop.run(server.stop())
    return recording


# Over HTTP/2 this event goes in two DATA frames, a pause between them.
SPLIT_EVENT = b"event: tick\nid: 2"


async def sse_asgi(scope, receive, send) -> None:
    """GET /events over HTTP/2: the stream, a DATA frame a piece (?gzip=1: coded, a flush a piece),
    SPLIT_EVENT's in two."""
    if await request_body(scope, receive, send) is None:
        return
    coded = b"gzip=1" in scope.get("query_string", b"")
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")] + ([(b"content-encoding", b"gzip")] if coded else [])
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if coded else None
    for piece in stream_pieces():
        split = piece.startswith(SPLIT_EVENT)
        if compressor is not None:
            piece = compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)
        for part in (piece[:len(piece) // 2], piece[len(piece) // 2:]) if split else (piece,):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(PAUSE_S)  # the other stream's frames come between
    await send({"type": "http.response.body", "body": compressor.flush() if compressor is not None else b"", "more_body": False})


async def _h2_client(base: str, recording: SseRecording) -> None:
    async with httpx.AsyncClient(base_url=base, http1=False, http2=True, timeout=10) as client:
        async def read(url: str) -> tuple[str, list[Event]]:
            events: list[Event] = []
            async with aconnect_sse(client, "GET", url) as source:
                assert source.response.http_version == "HTTP/2"
                async for sse in source.aiter_sse():
                    events.append((sse.event, sse.data, sse.id, sse.retry))
            return url.rsplit("/", 1)[1], events

        streams = await asyncio.gather(read("/events"), read("/events?gzip=1"))  # at once: their frames interleave
        recording.received[client_port_of(client)] = list(streams)


def record_sse_h2(out_dir: Path) -> SseRecording:
    path = Path(out_dir) / "sse-h2.pcap"
    with hypercorn("sse-h2-loop", sse_asgi) as (port, loop):
        recording = SseRecording(path, port)
        with tcpdump_capture(path, [port]):
            loop.run(_h2_client(f"http://{HOST}:{port}", recording))
    return recording
