"""Time as a seam: the real clock, and a fake one tests can drive."""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (budgets, backoff)."""
        ...

    def now(self) -> dt.datetime:
        """Aware wall-clock time (time-to-live of pushes)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to; sleepers wake in deadline order."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._mono = 1_000.0
        self._wall0 = start or dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> dt.datetime:
        return self._wall0 + dt.timedelta(seconds=self._mono - 1_000.0)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), future))
        await future

    @property
    def next_wakeup(self) -> float | None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own deadline in order."""
        target = self._mono + seconds
        while (wake := self.next_wakeup) is not None and wake <= target:
            self._mono = max(self._mono, wake)
            _, _, future = heapq.heappop(self._sleepers)
            future.set_result(None)
            for _ in range(5):  # let the woken task run up to its next await
                await asyncio.sleep(0)
        self._mono = target
        await asyncio.sleep(0)
