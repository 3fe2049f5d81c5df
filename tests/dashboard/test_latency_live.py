"""WebSocket latency on real traffic where replies come out of order: pairing by JSON id.

A real `websockets` server on 127.0.0.1 answers each request {"id": N, "delay": D}
after D seconds; the client sends three requests back to back, so the replies
come back in another order than the requests went out.  Pairing a message with
the next one in the other direction gets that wrong; pairing by id must give,
per request, what the client itself measured between sending it and receiving
its reply.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from dashboard import aggregate
from inspector.analysis.pipeline import analyze_captures
from inspector.workloads.servers import LoopThread
from tests import traffic
from tests.conftest import live_traffic_unavailable
from tests.traffic import HOST

DELAYS = {1: 0.30, 2: 0.10, 3: 0.20}  # replies come back as 2, 3, 1
TOLERANCE_S = 0.02  # capture timestamps against the client's clock, on loopback


async def _answer_after_delay(ws) -> None:
    async def answer(text: str) -> None:
        request = json.loads(text)
        await asyncio.sleep(request["delay"])
        await ws.send(json.dumps({"id": request["id"], "ok": True}))

    pending = [asyncio.create_task(answer(text)) async for text in ws]
    await asyncio.gather(*pending)


async def _client(port: int) -> dict[int, float]:
    from websockets.asyncio.client import connect

    sent, took = {}, {}
    async with connect(f"ws://{HOST}:{port}/", compression=None, ping_interval=None) as ws:
        for request_id, delay in DELAYS.items():
            sent[request_id] = time.monotonic()
            await ws.send(json.dumps({"id": request_id, "delay": delay}))
        for _ in DELAYS:
            reply = json.loads(await ws.recv())
            took[reply["id"]] = time.monotonic() - sent[reply["id"]]
        await ws.close(1000, "done")
    return took


def _record(path: Path) -> dict[int, float]:
    from websockets.asyncio.server import serve

    loop = LoopThread(name="latency-test")
    try:
        async def start():
            return await serve(_answer_after_delay, HOST, 0, compression=None, ping_interval=None)

        server = loop.run(start())
        port = server.sockets[0].getsockname()[1]
        with traffic.tcpdump_capture(path, [port]):
            took = loop.run(_client(port))
        server.close()
        loop.run(server.wait_closed())
        return took
    finally:
        loop.close()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    reason = live_traffic_unavailable()
    if reason:
        pytest.skip(reason)
    path = tmp_path_factory.mktemp("latency") / "out_of_order.pcap"
    took = _record(path)
    return took, analyze_captures([path]).tables


def test_replies_out_of_order_are_paired_by_id(recorded):
    took, tables = recorded
    assert sorted(took, key=took.get) == [2, 3, 1]  # the replies really came out of order
    latency = aggregate.ws_latency(tables)
    assert list(latency["paired_by"]) == ["id", "id", "id"]
    # one row per request, in the order the requests went out (ids 1, 2, 3)
    for request_id, measured in zip(DELAYS, latency["latency_s"]):
        assert measured == pytest.approx(took[request_id], abs=TOLERANCE_S), (request_id, measured, took)
        assert measured >= DELAYS[request_id]
