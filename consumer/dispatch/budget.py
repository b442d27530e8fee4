"""The provider's request budget: a sliding-window log of request starts.

At most ``limit`` starts in any ``window_s`` seconds, counted exactly (a log of
start times, not fixed buckets, which let 2N through across a bucket edge).
Every start counts: retries, and requests whose outcome stays unknown.

``margin_s`` widens the window we keep. The provider counts arrivals, not our
starts: if request i travels slower than request i+N, the provider sees them
closer than we did. A second on a 60 s window covers that jitter at a cost of
under 2% of throughput.

With ``assume_window_used`` the budget starts full: it acts as if ``limit``
requests started just now, so a restart (which forgets the log) never adds a
burst on top of what the previous process sent.
"""

from __future__ import annotations

from collections import deque

from consumer.clock import Clock


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
        self._starts: deque[float] = deque(maxlen=limit)
        self._hold_until = float("-inf")
        if assume_window_used:
            now = clock.monotonic()
            self._starts.extend([now] * limit)

    def next_start_at(self) -> float:
        """Monotonic time from which a request may start (in the past if one may now)."""
        at = self._hold_until
        if len(self._starts) == self.limit:
            at = max(at, self._starts[0] + self.window_s + self.margin_s)
        return at

    def can_start(self) -> bool:
        return self._clock.monotonic() >= self.next_start_at()

    def try_start(self) -> bool:
        """Take a slot now if one is free; the caller then starts its request at once."""
        if not self.can_start():
            return False
        self._starts.append(self._clock.monotonic())
        return True

    def hold_until(self, monotonic_at: float) -> None:
        """Start nothing before this time (the provider asked us to wait: Retry-After)."""
        self._hold_until = max(self._hold_until, monotonic_at)

    def used(self) -> int:
        """Starts within the last window (the gauge operations watch)."""
        since = self._clock.monotonic() - self.window_s
        return sum(1 for start in self._starts if start > since)
