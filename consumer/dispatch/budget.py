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

from consumer.clock import Clock


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
        self._slots: list[Slot] = []
        self._hold_until = float("-inf")
        if assume_window_used:
            now = clock.monotonic()
            self._slots = [Slot(now, now) for _ in range(limit)]

    def _released_at(self, slot: Slot) -> float:
        if slot.finished is None:
            return float("inf")  # in flight: it may arrive at any moment
        return slot.finished + self.window_s + self.margin_s

    def _prune(self, now: float) -> None:
        if any(self._released_at(slot) <= now for slot in self._slots):
            self._slots = [slot for slot in self._slots if self._released_at(slot) > now]

    def next_start_at(self) -> float | None:
        """Monotonic time from which a request may start (past if one may start now);
        None while only a request in flight finishing can free a slot."""
        self._prune(self._clock.monotonic())
        at = self._hold_until
        if len(self._slots) >= self.limit:
            releases = sorted(self._released_at(slot) for slot in self._slots)
            freed = releases[len(self._slots) - self.limit]
            if freed == float("inf"):
                return None
            at = max(at, freed)
        return at

    def can_start(self) -> bool:
        at = self.next_start_at()
        return at is not None and self._clock.monotonic() >= at

    def try_start(self) -> Slot | None:
        """Take a slot now if one is free; the caller starts its request at once and
        calls ``finish`` when the answer (or its own timeout) comes back."""
        if not self.can_start():
            return None
        slot = Slot(self._clock.monotonic())
        self._slots.append(slot)
        return slot

    def finish(self, slot: Slot) -> None:
        if slot.finished is None:
            slot.finished = self._clock.monotonic()

    def hold_until(self, monotonic_at: float) -> None:
        """Start nothing before this time (the provider asked us to wait: Retry-After)."""
        self._hold_until = max(self._hold_until, monotonic_at)

    def used(self) -> int:
        """Requests counted against the window now: in flight, or ended within it."""
        self._prune(self._clock.monotonic())
        return len(self._slots)
