"""Scenarios (chat, feed, bulk, idle) and the variants they run over.

The same logical work runs over each variant, so the application payload is
equal across variants; only what the protocols add differs.

Variants:

- ``rest-keepalive``: one persistent HTTP/1.1 connection (aiohttp client).
- ``rest-per-request``: a new TCP connection for each request.
- ``rest-h2`` (every scenario, when named): one HTTP/2 connection (hypercorn, httpx), h2c
  with prior knowledge (h2 by ALPN with --tls); chat and bulk without a rate send every
  ask at once, each on its own stream (at most H2_STREAMS at a time), as a browser's
  fetch() calls are; feed and idle poll as rest-polling does, each poll on a new stream.
- ``rest-polling`` (push scenarios): one persistent connection; the client
  asks ``GET /feed/next?after=SEQ``; a 200 carries the next update and the
  client asks again at once, a 204 (nothing new) makes it wait the poll
  interval.
- ``rest-long-polling`` (push scenarios): one persistent connection; the
  client asks ``GET /feed/wait?after=SEQ`` and the server holds the request
  until the next update is published (200) or the hold, one poll interval,
  passes (204); either way the client asks again at once.  So an idle
  long poll costs an exchange per poll interval, as a short poll does, and a
  feed's update is delivered when it is published.
- ``sse`` (push scenarios): Server-Sent Events, ``GET /feed/events`` answered
  by a ``text/event-stream`` (aiohttp, chunked), an event per update (``id:
  SEQ``, the update as its one ``data:`` line), read by httpx-sse.  In the
  feed the server drops the stream once, after update `sse_drop_after`
  (default: half of them): it ends the stream and closes the connection; the
  client, as an EventSource does, reconnects after its reconnection time (one
  poll interval) on a new connection with ``Last-Event-ID``, and the server
  resumes after that id.  In idle the stream carries a ``: keep-alive``
  comment each poll interval.
- ``ws``: one WebSocket connection, no compression (``websockets``).
- ``ws-deflate``: one WebSocket connection with permessage-deflate.

Scenarios (`messages`, `sizes` cycled over the messages, `rate` per second):

- ``chat``: `messages` request/response pairs of small JSON (request and reply
  of the same size), sent at `rate` (default: as fast as the replies come).
- ``feed``: the server publishes `messages` JSON updates at `rate`; REST polls
  every `poll_interval` (default 1/rate), long polls wait for them, SSE and
  WebSocket get them pushed.  When each update was published and when the
  client saw it is kept.
- ``bulk``: `messages` documents of `sizes` bytes (default 100, 1000, 70000:
  7-, 16- and 64-bit WebSocket payload lengths) fetched by a small JSON ask.
- ``idle``: nothing to report for `messages` rounds of `poll_interval`
  (default 1/rate): REST polls once a round (204 each time), a long poll is
  held a round (204 each time), the SSE stream gets a keep-alive comment a
  round, the WebSocket connection is kept alive by one ping/pong a round.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from inspector.errors import RecordError
from inspector.workloads.clients import STEP_TIMEOUT, H2RestClient, Ledger, RestClient, SseClient, WsClient
from inspector.workloads.feed import Feed
from inspector.workloads.payloads import bulk_reply, bulk_request, chat_reply, chat_request, feed_update, seq_of
from inspector.workloads.servers import SsePlan, WorkloadH2Server, WorkloadRestServer, WorkloadWsServer
from inspector.workloads.tls import TlsSetup


@dataclass(frozen=True)
class Variant:
    name: str
    protocol: str  # "rest", "sse" or "websocket", as in the recording sidecar
    keep_alive: bool = True  # REST
    http2: bool = False  # REST: HTTP/2, concurrent streams on one connection
    long_poll: bool = False  # REST: the server holds each request until there is news
    deflate: bool = False  # WebSocket


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("rest-keepalive", "rest"),
        Variant("rest-per-request", "rest", keep_alive=False),
        Variant("rest-h2", "rest", http2=True),
        Variant("rest-polling", "rest"),
        Variant("rest-long-polling", "rest", long_poll=True),
        Variant("sse", "sse"),
        Variant("ws", "websocket"),
        Variant("ws-deflate", "websocket", deflate=True),
    )
}


@dataclass(frozen=True)
class Parameters:
    messages: int
    sizes: tuple[int, ...]
    rate: float | None  # per second; None: as fast as possible
    poll_interval: float | None  # seconds; push scenarios only
    sse_drop_after: int | None = None  # feed: the sse stream is dropped once, after this update

    def size(self, seq: int) -> int:
        """Payload size of message `seq` (1, 2, ...): `sizes` cycled."""
        return self.sizes[(seq - 1) % len(self.sizes)]

    def as_dict(self) -> dict:
        return {"messages": self.messages, "sizes": list(self.sizes), "rate": self.rate, "poll_interval": self.poll_interval,
                "sse_drop_after": self.sse_drop_after}


@dataclass
class SseStream:
    """One event stream of the sse variant as its client saw it."""

    client_port: int
    last_event_id: str | None  # sent as Last-Event-ID; None: not sent
    opened_ts: float  # time.time() when the response's head came
    ended_ts: float | None = None  # time.time() when the stream ended
    events: list[tuple[int, float]] = field(default_factory=list)  # (seq, time.time()) per event


@dataclass
class VariantRun:
    """One variant of a scenario: its server, its clients' ledger, what it saw of the feed."""

    variant: Variant
    params: Parameters
    server: WorkloadRestServer | WorkloadH2Server | WorkloadWsServer
    feed: Feed | None = None
    tls: TlsSetup | None = None  # over TLS (HTTPS, WSS): the contexts of the recording
    ledger: Ledger = field(default_factory=Ledger)
    received: list[tuple[int, float]] = field(default_factory=list)  # (seq, time.time()) per update seen
    streams: list[SseStream] = field(default_factory=list)  # sse: every stream, in order

    @property
    def port(self) -> int:
        return self.server.port


Run = Callable[[VariantRun], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    variants: tuple[str, ...]  # run by default, in this order
    optional: tuple[str, ...]  # supported too, when named in --variants
    defaults: Parameters
    run_rest: Run
    run_ws: Run
    push: bool = False  # a feed publishes; REST polls
    run_long_poll: Run | None = None  # push scenarios
    run_sse: Run | None = None  # push scenarios

    def parameters(self, messages: int | None = None, sizes: tuple[int, ...] | None = None,
                   rate: float | None = None, poll_interval: float | None = None,
                   sse_drop_after: int | None = None) -> Parameters:
        """The defaults overridden by what is given; RecordError if they make no sense."""
        d = self.defaults
        params = Parameters(
            messages=d.messages if messages is None else messages,
            sizes=d.sizes if not sizes else tuple(sizes),
            rate=d.rate if rate is None else rate,
            poll_interval=poll_interval,
        )
        if sizes and not d.sizes:
            raise RecordError(f"{self.name}: --size does not apply (nothing but keepalive is sent)")
        if params.messages < 1:
            raise RecordError(f"{self.name}: --messages must be at least 1")
        if any(s < 0 for s in params.sizes):
            raise RecordError(f"{self.name}: --size must not be negative")
        if params.rate is not None and params.rate <= 0:
            raise RecordError(f"{self.name}: --rate must be positive")
        if self.push:
            if params.rate is None:
                raise RecordError(f"{self.name}: needs a --rate")
            interval = 1 / params.rate if poll_interval is None else poll_interval
            if interval <= 0:
                raise RecordError(f"{self.name}: --poll-interval must be positive")
            params = Parameters(params.messages, params.sizes, params.rate, interval, self._drop_after(params.messages, sse_drop_after))
        elif poll_interval is not None:
            raise RecordError(f"{self.name}: --poll-interval is for the push scenarios (feed, idle)")
        if sse_drop_after is not None and self.name != "feed":
            raise RecordError(f"{self.name}: --sse-drop-after is for the feed")
        self._check_sizes(params)
        return params

    def _drop_after(self, messages: int, given: int | None) -> int | None:
        """The update after which the feed's sse stream is dropped (default: half of them), None
        for no drop (given 0, one update, or not the feed)."""
        if self.name != "feed":
            return None
        if given is None:
            given = messages // 2
        if not 0 <= given < messages:
            raise RecordError(f"{self.name}: --sse-drop-after must be 0 (never) to {messages - 1} (before the last update)")
        return given or None

    def _check_sizes(self, params: Parameters) -> None:
        build = {"chat": chat_request, "feed": feed_update}.get(self.name)
        if build is None:
            return
        for seq in {1, params.messages}:  # the longest sequence numbers need the most room
            try:
                build(seq, params.size(seq))
            except ValueError as exc:
                raise RecordError(f"{self.name}: --size {params.size(seq)}: {exc}") from None

    def check_variants(self, names: list[str] | None) -> list[Variant]:
        if not names:
            return [VARIANTS[n] for n in self.variants]
        supported = self.variants + self.optional
        unknown = [n for n in names if n not in supported]
        if unknown:
            raise RecordError(f"{self.name}: no variant {', '.join(unknown)} (this scenario has {', '.join(supported)})")
        if len(set(names)) != len(names):
            raise RecordError(f"{self.name}: a variant is named twice in --variants")
        return [VARIANTS[n] for n in names]

    def make_run(self, variant: Variant, params: Parameters, tls: TlsSetup | None = None) -> VariantRun:
        """A fresh server (own port, own feed) for one variant, over TLS with `tls`; start it in the loop."""
        feed = None
        if self.push:
            count = params.messages if self.name == "feed" else 0
            feed = Feed(count, params.sizes, params.rate or 1.0)
        server: WorkloadRestServer | WorkloadH2Server | WorkloadWsServer
        if variant.http2:
            server = WorkloadH2Server(feed=feed)
            if tls is not None:
                server.certificate = tls.certificate
        else:
            if variant.protocol == "websocket":
                server = WorkloadWsServer(deflate=variant.deflate, feed=feed)
            else:  # a long poll is held a poll interval; idle's keep-alives come one a poll interval
                server = WorkloadRestServer(feed=feed, hold=params.poll_interval, sse=self._sse_plan(params))
            if tls is not None:
                server.ssl_context = tls.server_context
        return VariantRun(variant, params, server, feed, tls)

    def _sse_plan(self, params: Parameters) -> SsePlan | None:
        if not self.push:
            return None
        if self.name == "idle":
            assert params.poll_interval is not None
            return SsePlan(keepalives=params.messages, keepalive_interval=params.poll_interval)
        return SsePlan(drop_after=params.sse_drop_after)

    async def run(self, run: VariantRun) -> None:
        variant = run.variant
        if variant.protocol == "sse":
            runner = self.run_sse
        elif variant.long_poll:
            runner = self.run_long_poll
        else:
            runner = self.run_rest if variant.protocol == "rest" else self.run_ws
        assert runner is not None, f"{self.name} has no {variant.name} (check_variants says which it has)"
        await runner(run)


H2_STREAMS = 8  # rest-h2: asks in flight at once at most


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise RecordError(f"workload went wrong: {what}")


class Pacer:
    """Sleeps until start + i / rate; no pacing without a rate."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1 / rate if rate else 0.0
        self.start: float | None = None

    async def wait(self, i: int) -> None:
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        if self.interval:
            delay = self.start + i * self.interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)


def _client_context(run: VariantRun):
    return run.tls.client_context if run.tls is not None else None


def _rest_client(run: VariantRun) -> RestClient | H2RestClient:
    if run.variant.http2:
        return H2RestClient(run.port, run.ledger, ssl_context=run.tls.client_context_h2 if run.tls is not None else None)
    return RestClient(run.port, run.ledger, keep_alive=run.variant.keep_alive, ssl_context=_client_context(run))


def _sse_client(run: VariantRun) -> SseClient:
    return SseClient(run.port, run.ledger, ssl_context=_client_context(run))


def _ws_client(run: VariantRun, path: str) -> WsClient:
    return WsClient(run.port, path, run.ledger, deflate=run.variant.deflate, ssl_context=_client_context(run))


def _check_connections(run: VariantRun, requests: int) -> None:
    expected = requests if run.variant.name == "rest-per-request" else 1
    _expect(len(run.ledger.client_ports) == expected, f"{run.variant.name}: {requests} requests used {len(run.ledger.client_ports)} connections")


def _check_deflate(run: VariantRun, client: WsClient) -> None:
    negotiated = "permessage-deflate" in (client.extensions or "")
    _expect(negotiated == run.variant.deflate, f"{run.variant.name}: extensions {client.extensions!r}")


# --- chat and bulk: the client asks, the server answers, one message each way -------------


def _asks_over_rest(path: str, make_ask: Callable[[int, int], bytes], answer_to: Callable[[bytes], bytes]):
    """The REST side of a question/answer scenario: POST each ask to `path`, check the answer."""

    async def run_rest(run: VariantRun) -> None:
        pacer = Pacer(run.params.rate)
        async with _rest_client(run) as client:
            async def ask_and_check(seq: int) -> None:
                await pacer.wait(seq - 1)
                ask = make_ask(seq, run.params.size(seq))
                status, body = await client.request("POST", path, ask, "application/json")
                _expect(status == 200 and body == answer_to(ask), f"{path} {seq}: status {status}, {len(body)} bytes")

            if run.variant.http2:  # every ask on its own stream, as soon as its time comes
                streams = asyncio.Semaphore(H2_STREAMS)

                async def on_a_stream(seq: int) -> None:
                    async with streams:
                        await ask_and_check(seq)

                await asyncio.gather(*(on_a_stream(seq) for seq in range(1, run.params.messages + 1)))
            else:
                for seq in range(1, run.params.messages + 1):
                    await ask_and_check(seq)
        _check_connections(run, run.params.messages)

    return run_rest


def _asks_over_ws(path: str, make_ask: Callable[[int, int], bytes], answer_to: Callable[[bytes], bytes]):
    """The WebSocket side: each ask as a text message on one connection, the answer checked."""

    async def run_ws(run: VariantRun) -> None:
        pacer = Pacer(run.params.rate)
        async with _ws_client(run, path) as client:
            _check_deflate(run, client)
            for seq in range(1, run.params.messages + 1):
                await pacer.wait(seq - 1)
                ask = make_ask(seq, run.params.size(seq))
                await client.send(ask.decode())
                answer = await client.recv()
                _expect((answer.encode() if isinstance(answer, str) else answer) == answer_to(ask), f"{path} {seq}: wrong answer")

    return run_ws


# --- feed ---------------------------------------------------------------------------------


def _saw(run: VariantRun, payload: bytes | str, expected_seq: int) -> tuple[int, float]:
    """Note update `expected_seq` as seen now, checked against the feed: (seq, time.time())."""
    now = time.time()
    assert run.feed is not None
    seq = seq_of(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    _expect(seq == expected_seq and seq <= len(run.feed.updates) and data == run.feed.updates[seq - 1].payload,
            f"feed: got update {seq}, expected {expected_seq}")
    run.received.append((seq, now))
    return seq, now


async def _feed_rest(run: VariantRun) -> None:
    feed, interval = run.feed, run.params.poll_interval
    assert feed is not None and interval is not None
    async with _rest_client(run) as client:
        publisher = asyncio.ensure_future(feed.publish())
        try:
            seen = 0
            while seen < feed.count:
                status, body = await client.request("GET", f"/feed/next?after={seen}")
                if status == 200:
                    _saw(run, body, seen + 1)
                    seen += 1  # maybe more is waiting: ask again at once
                else:
                    _expect(status == 204, f"feed poll: status {status}")
                    await asyncio.sleep(interval)
            await publisher
        finally:
            publisher.cancel()


async def _feed_ws(run: VariantRun) -> None:
    feed = run.feed
    assert feed is not None
    async with _ws_client(run, "/feed") as client:
        _check_deflate(run, client)
        await asyncio.wait_for(feed.wait_subscribers(1), STEP_TIMEOUT)
        publisher = asyncio.ensure_future(feed.publish())
        try:
            for seq in range(1, feed.count + 1):
                _saw(run, await client.recv(), seq)
            await publisher
        finally:
            publisher.cancel()


# --- long polling and Server-Sent Events: the feed's and idle's alike --------------------


async def _long_poll(run: VariantRun) -> None:
    """``GET /feed/wait?after=SEQ`` again at once after each answer (the server holds it a poll
    interval at most): a 200 is the next update, a 204 a hold that passed without one.  Until
    every update is seen; idle: `messages` holds (204 each)."""
    feed = run.feed
    assert feed is not None
    holds = run.params.messages if feed.count == 0 else 0
    async with _rest_client(run) as client:
        publisher = asyncio.ensure_future(feed.publish())
        try:
            seen = timeouts = 0
            while seen < feed.count or timeouts < holds:
                status, body = await client.request("GET", f"/feed/wait?after={seen}")
                if status == 200:
                    _saw(run, body, seen + 1)
                    seen += 1
                else:
                    _expect(status == 204, f"long poll: status {status}")
                    timeouts += 1
            await publisher
        finally:
            publisher.cancel()
    _check_connections(run, seen + timeouts)


async def _event_stream(run: VariantRun) -> None:
    """Read ``GET /feed/events`` until it ends; if updates are missing (the stream was
    dropped), reconnect after the reconnection time, one poll interval, with Last-Event-ID
    the id of the last event, as an EventSource does.  Idle: one stream, of keep-alives only."""
    feed, reconnection_time = run.feed, run.params.poll_interval
    assert feed is not None and reconnection_time is not None
    publisher: asyncio.Future | None = None
    last_event_id: str | None = None
    try:
        async with _sse_client(run) as client:
            while True:
                async with client.stream("/feed/events", last_event_id) as (status, port, events):
                    _expect(status == 200, f"sse: status {status}")
                    stream = SseStream(port, last_event_id, time.time())
                    run.streams.append(stream)
                    if publisher is None:  # the first stream is open: the feed starts
                        publisher = asyncio.ensure_future(feed.publish())
                    async for event in events:
                        seq = len(run.received) + 1
                        _expect(event.id == str(seq), f"sse: event id {event.id!r} for update {seq}")
                        stream.events.append(_saw(run, event.data, seq))
                        last_event_id = event.id
                    stream.ended_ts = time.time()
                if len(run.received) == feed.count:
                    break
                _expect(bool(stream.events), f"sse: a stream ended with no update ({len(run.received)} of {feed.count} seen)")
                await asyncio.sleep(reconnection_time)
        assert publisher is not None
        await publisher
    finally:
        if publisher is not None:
            publisher.cancel()
    drop = run.params.sse_drop_after
    _expect(len(run.streams) == len(run.ledger.client_ports) == (2 if drop is not None else 1),
            f"sse: {len(run.streams)} streams on {len(run.ledger.client_ports)} connections (drop after {drop})")


# --- idle ---------------------------------------------------------------------------------


async def _idle_rest(run: VariantRun) -> None:
    assert run.params.poll_interval is not None
    pacer = Pacer(1 / run.params.poll_interval)
    async with _rest_client(run) as client:
        for i in range(1, run.params.messages + 1):
            await pacer.wait(i)
            status, _body = await client.request("GET", "/feed/next?after=0")
            _expect(status == 204, f"idle poll {i}: status {status}")


async def _idle_ws(run: VariantRun) -> None:
    assert run.params.poll_interval is not None and run.feed is not None
    pacer = Pacer(1 / run.params.poll_interval)
    async with _ws_client(run, "/feed") as client:
        _check_deflate(run, client)
        for i in range(1, run.params.messages + 1):
            await pacer.wait(i)
            await client.ping(struct.pack("!I", i))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("chat", "request/response pairs of small JSON messages",
                 ("rest-keepalive", "rest-per-request", "ws", "ws-deflate"), ("rest-h2",),
                 Parameters(messages=20, sizes=(120,), rate=None, poll_interval=None), _asks_over_rest("/chat", chat_request, chat_reply), _asks_over_ws("/chat", chat_request, chat_reply)),
        Scenario("feed", "the server publishes updates at a rate; REST polls or long-polls, SSE and WebSocket get them pushed",
                 ("rest-polling", "rest-long-polling", "sse", "ws", "ws-deflate"), ("rest-h2",),
                 Parameters(messages=20, sizes=(200,), rate=20.0, poll_interval=None), _feed_rest, _feed_ws, push=True,
                 run_long_poll=_long_poll, run_sse=_event_stream),
        Scenario("bulk", "large payloads: 7-, 16- and 64-bit WebSocket lengths",
                 ("rest-keepalive", "rest-per-request", "ws", "ws-deflate"), ("rest-h2",),
                 Parameters(messages=3, sizes=(100, 1000, 70000), rate=None, poll_interval=None), _asks_over_rest("/bulk", bulk_request, bulk_reply), _asks_over_ws("/bulk", bulk_request, bulk_reply)),
        Scenario("idle", "keep-alives (a held long poll, an SSE comment, a WebSocket ping/pong) against REST polling at the same freshness",
                 ("rest-polling", "rest-long-polling", "sse", "ws", "ws-deflate"), ("rest-h2",),
                 Parameters(messages=5, sizes=(), rate=2.0, poll_interval=None), _idle_rest, _idle_ws, push=True,
                 run_long_poll=_long_poll, run_sse=_event_stream),
    )
}
