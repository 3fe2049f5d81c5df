"""The publisher of the push scenarios (feed, idle).

A `Feed` publishes `count` updates at `rate` per second.  WebSocket
subscribers get each one pushed the moment it is published; REST pollers ask
for the update after the last one they saw (`next_after`), long pollers and
SSE streams wait for it (`wait_next`).  The publish time of every update is
kept so that the recorder can say how stale each was when a client saw it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from inspector.workloads.payloads import feed_update

Deliver = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True)
class Update:
    seq: int  # 1, 2, ...
    payload: bytes
    published_ts: float  # time.time() when it became available


class Feed:
    def __init__(self, count: int, sizes: tuple[int, ...], rate: float) -> None:
        if rate <= 0:
            raise ValueError("feed rate must be positive")
        self.count = count
        self.sizes = sizes  # update k has sizes[(k - 1) % len(sizes)] bytes
        self.rate = rate
        self.updates: list[Update] = []
        self._subscribers: list[Deliver] = []
        self._changed = asyncio.Condition()

    def next_after(self, seq: int) -> Update | None:
        """The update following `seq` (0: the first), or None if not published yet."""
        return self.updates[seq] if 0 <= seq < len(self.updates) else None

    async def wait_next(self, seq: int, timeout: float) -> Update | None:
        """The update following `seq` as soon as it is published (at once if it is already),
        or None if `timeout` seconds pass first."""
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(lambda: self.next_after(seq) is not None)
        except TimeoutError:
            pass
        return self.next_after(seq)

    def subscribe(self, deliver: Deliver) -> None:
        self._subscribers.append(deliver)
        asyncio.get_running_loop().create_task(self._notify())

    def unsubscribe(self, deliver: Deliver) -> None:
        if deliver in self._subscribers:
            self._subscribers.remove(deliver)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_subscribers(self, n: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._subscribers) >= n)

    async def publish(self) -> None:
        """Publish update k at start + k / rate (k = 1..count) and push it to every subscriber."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for seq in range(1, self.count + 1):
            delay = start + seq / self.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            update = Update(seq, feed_update(seq, self.sizes[(seq - 1) % len(self.sizes)]), time.time())
            self.updates.append(update)
            await self._notify()  # the waiters of wait_next
            for deliver in list(self._subscribers):
                await deliver(update.payload)
