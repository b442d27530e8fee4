"""When to try a failed request again.

There is no attempt limit: a transient failure (the provider down, throttling, a
lost answer) is retried for as long as the push is worth sending, and the push's
time-to-live ends it (``expired``). Backoff grows exponentially up to a cap, so a
long outage costs one request per push group every ``max_backoff_s`` at most.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from consumer.errors import TransientError
from consumer.settings import DispatchSettings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_backoff_s: float
    max_backoff_s: float

    @classmethod
    def from_settings(cls, settings: DispatchSettings) -> RetryPolicy:
        return cls(
            initial_backoff_s=settings.retry_initial_backoff_s,
            max_backoff_s=settings.retry_max_backoff_s,
        )

    def delay_s(self, attempts: int, error: TransientError, rng: random.Random) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt.

        Exponential, with "equal jitter" (half fixed, half random) so retries of
        many jobs spread out yet never come back sooner than half the step.
        The provider's own ``Retry-After`` wins when it gave one.
        """
        if error.retry_after is not None:
            return max(0.0, error.retry_after)
        # The exponent is capped too: attempts grow without limit over a long outage.
        doublings = min(max(0, attempts - 1), 64)
        step = min(self.max_backoff_s, self.initial_backoff_s * 2.0**doublings)
        return step / 2 + rng.uniform(0, step / 2)
