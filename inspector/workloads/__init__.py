"""Built-in workloads: the same logical work over REST, Server-Sent Events and WebSocket.

Real servers (aiohttp for REST and SSE, ``websockets`` for WebSocket) and real clients
on 127.0.0.1, run by `inspector record` while the capture module records the
traffic on ``lo``.

- `servers`: a background asyncio thread, the two servers.
- `payloads`: the application payloads, deterministic bytes that every variant
  of a scenario carries alike.
- `feed`: the publisher of the push scenarios.
- `clients`: REST, SSE and WebSocket clients that note every port they use and
  every application message they send or receive.
- `scenarios`: the variants (rest-keepalive, rest-long-polling, sse, ws-deflate, ...) and the
  scenarios (chat, feed, bulk, idle).
"""
