"""Micro-benchmark: Http1Parser alone, in microseconds per message.

    PYTHONPATH=. python benchmarks/bench_http.py [--connections N] [--repeat R]

Builds REST traffic shaped like the benchmark capture's (aiohttp client and
server on loopback) with tests/factories.py: GET requests with the client's
four headers, JSON responses with Content-Type, Content-Length, a Date that
changes every second and Server.  As in that capture most connections carry
one request and its response, and a few keep-alive ones carry thousands.
Each message comes as its own chunk, as a loopback capture delivers them,
the response parser is told of each request first, and events are taken
after every chunk as parse/connection.py does (take_events; next_event for
a parser without it).

Prints the best of `--repeat` runs of CPU time per message, parsers' set-up included.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

# After PYTHONPATH and the installed package: tests/factories.py from this checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from inspector.events import NEED_DATA, Direction  # noqa: E402
from inspector.parse.http1 import Http1Parser, Role  # noqa: E402
from tests.factories import http_request, http_response  # noqa: E402

_CLIENT_HEADERS = {"Host": "127.0.0.1:38077", "Accept": "*/*", "Accept-Encoding": "gzip, deflate", "User-Agent": "Python/3.11 aiohttp/3.14.5"}
_ITEMS = [{"id": i, "name": f"item-{i}", "price": 1.5 * i} for i in range(1, 6)]


def _exchange(rng: random.Random, second: int) -> tuple[bytes, bytes]:
    """One request and its response, as aiohttp sends them."""
    item = rng.randint(0, 5)
    target = "/api/items" if item == 0 else f"/api/items/{item}"
    body = json.dumps({"items": _ITEMS, "count": 5} if item == 0 else _ITEMS[item - 1]).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Content-Length": str(len(body)),
        "Date": f"Mon, 30 Nov 2026 16:{second // 60 % 60:02d}:{second % 60:02d} GMT",
        "Server": "Python/3.11 aiohttp/3.14.5",
    }
    return http_request("GET", target, headers=_CLIENT_HEADERS), http_response(200, "OK", headers=headers, body=body, content_length=False)


def _connections(count: int, rng: random.Random) -> list[list[tuple[bytes, bytes]]]:
    """`count` one-exchange connections, then keep-alive ones holding as many exchanges again."""
    connections = [[_exchange(rng, index // 400)] for index in range(count)]
    for _ in range(4):
        connections.append([_exchange(rng, index // 400) for index in range(count // 4)])
    return connections


def _parsers() -> tuple[Http1Parser, Http1Parser]:
    options = {"start_offset": 0, "preview_bytes": 256, "in_sync": True}
    return Http1Parser(Direction.CLIENT, Role.REQUEST, **options), Http1Parser(Direction.SERVER, Role.RESPONSE, **options)


def _run(connections: list[list[tuple[bytes, bytes]]]) -> tuple[float, int]:
    taken = hasattr(Http1Parser, "take_events")
    messages = 0
    started = time.process_time()
    for exchanges in connections:
        client, server = _parsers()
        for ts, (request, response) in enumerate(exchanges):
            client.receive_data(request, ts)
            for event in _events(client, taken):
                server.expect_response_to(event.method)
                messages += 1
            server.receive_data(response, ts)
            messages += len(_events(server, taken))
        client.receive_eof(len(exchanges))
        server.receive_eof(len(exchanges))
    return time.process_time() - started, messages


def _events(parser: Http1Parser, taken: bool) -> list:
    if taken:
        return parser.take_events()
    events = []
    while (event := parser.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    connections = _connections(args.connections, random.Random(1))
    best, messages = min(_run(connections) for _ in range(args.repeat))
    print(f"{1e6 * best / messages:6.2f} us/message  ({messages} messages, {len(connections)} connections)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
