"""The provider's request budget: a sliding log of the requests it may have counted.

At most ``limit`` requests in any ``window_s`` seconds, as the provider counts
them: by arrival, which we cannot see. A request arrives somewhere between our
start and the moment its answer (or our timeout) comes back, so a slot is held
from the start until one window after the request *finished*, not after it
started: then request i+N can only start after request i arrived plus a window,
however slow the network or the provider was. Every request counts: retries,
and requests whose outcome stays unknown.

``margin_s`` widens the window we keep, for clock differences at the provider.

With ``assume_window_used`` the budget starts full: it acts as if ``limit``
requests finished just now, so a restart (which forgets the log) never adds a
burst on top of what the previous process sent.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator

from consumer.clock import Clock
from consumer.dispatch.estimate import SendTimes
from consumer.settings import ProviderName, Settings


class Slot:
    """One request's claim on the window, from its start until a window after it ends."""

    __slots__ = ("finished", "started")

    def __init__(self, started: float, finished: float | None = None) -> None:
        self.started = started
        self.finished = finished


class Budget:
    def __init__(
        self,
        *,
        limit: int,
        window_s: float,
        clock: Clock,
        margin_s: float = 0.0,
        assume_window_used: bool = True,
    ) -> None:
        if limit < 1 or window_s <= 0 or margin_s < 0:
            raise ValueError(f"bad budget: {limit} per {window_s}s, margin {margin_s}s")
        self.limit = limit
        self.window_s = window_s
        self.margin_s = margin_s
        self._clock = clock
        self._in_flight = 0
        # End times of finished requests still inside the window. The clock only moves
        # forward, so appending at finish keeps them sorted: the oldest leaves first.
        self._ended: deque[float] = deque()
        self._hold_until = float("-inf")
        if assume_window_used:
            self._ended.extend([clock.monotonic()] * limit)

    def _prune(self, now: float) -> None:
        keep = self.window_s + self.margin_s
        while self._ended and self._ended[0] + keep <= now:
            self._ended.popleft()

    def next_start_at(self) -> float | None:
        """Monotonic time from which a request may start (past if one may start now);
        None while only a request in flight finishing can free a slot."""
        self._prune(self._clock.monotonic())
        at = self._hold_until
        counted = self._in_flight + len(self._ended)
        if counted >= self.limit:
            # The slot that frees one place: ended slots leave oldest first, then
            # (never on their own) the ones in flight.
            index = counted - self.limit
            if index >= len(self._ended):
                return None
            at = max(at, self._ended[index] + self.window_s + self.margin_s)
        return at

    def send_times(self) -> SendTimes:
        """When the next requests may start, as far as this budget knows now."""
        now = self._clock.monotonic()
        self._prune(now)
        return SendTimes.of(
            now=now,
            limit=self.limit,
            period_s=self.window_s + self.margin_s,
            ended=list(self._ended),
            in_flight=self._in_flight,
            hold_until=self._hold_until,
        )

    def can_start(self) -> bool:
        at = self.next_start_at()
        return at is not None and self._clock.monotonic() >= at

    def try_start(self) -> Slot | None:
        """Take a slot now if one is free; the caller starts its request at once and
        calls ``finish`` when the answer (or its own timeout) comes back."""
        if not self.can_start():
            return None
        self._in_flight += 1
        return Slot(self._clock.monotonic())

    def finish(self, slot: Slot) -> None:
        if slot.finished is None:
            slot.finished = self._clock.monotonic()
            self._in_flight -= 1
            self._ended.append(slot.finished)

    def hold_until(self, monotonic_at: float) -> None:
        """Start nothing before this time (the provider asked us to wait: Retry-After)."""
        self._hold_until = max(self._hold_until, monotonic_at)

    @contextlib.asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """Hold a slot for one call a provider makes on its own (a status poll, a lookup):
        wait until a slot is free, take it, and finish it when the block ends.

        This is how a provider counts its other calls against the same quota as the
        requests the dispatcher starts (``consumer.providers.base.CallQuota``). While
        every slot is held by a request in flight nothing says when one ends, so the
        wait looks again after ``window_s / limit``, the budget's average spacing.
        """
        while (slot := self.try_start()) is None:
            at = self.next_start_at()
            now = self._clock.monotonic()
            await self._clock.sleep(self.window_s / self.limit if at is None else at - now)
        try:
            yield
        finally:
            self.finish(slot)

    def used(self) -> int:
        """Requests counted against the window now: in flight, or ended within it."""
        self._prune(self._clock.monotonic())
        return self._in_flight + len(self._ended)


def provider_budget(settings: Settings, clock: Clock) -> Budget:
    """The request budget of the provider ``PUSH_PROVIDER`` names.

    The dry-run provider takes IMSHOP's limits, so a dry run schedules exactly as
    production would.
    """
    if settings.service.push_provider is ProviderName.APPMETRICA:
        appmetrica = settings.appmetrica
        return Budget(
            limit=appmetrica.rate_limit_requests,
            window_s=appmetrica.rate_limit_window_s,
            clock=clock,
        )
    imshop = settings.imshop
    return Budget(
        limit=imshop.rate_limit_requests,
        window_s=imshop.rate_limit_window_s,
        clock=clock,
        margin_s=imshop.rate_limit_margin_s,
        assume_window_used=imshop.assume_window_used_at_start,
    )
