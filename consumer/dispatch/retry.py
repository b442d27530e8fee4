"""When to try a failed request again, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass

from consumer.errors import TransientError
from consumer.settings import DispatchSettings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    initial_backoff_s: float
    max_backoff_s: float

    @classmethod
    def from_settings(cls, settings: DispatchSettings) -> RetryPolicy:
        return cls(
            max_attempts=settings.retry_max_attempts,
            initial_backoff_s=settings.retry_initial_backoff_s,
            max_backoff_s=settings.retry_max_backoff_s,
        )

    def gives_up(self, attempts: int) -> bool:
        return attempts >= self.max_attempts

    def delay_s(self, attempts: int, error: TransientError, rng: random.Random) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt.

        Exponential, with "equal jitter" (half fixed, half random) so retries of
        many jobs spread out yet never come back sooner than half the step.
        The provider's own ``Retry-After`` wins when it gave one.
        """
        if error.retry_after is not None:
            return max(0.0, error.retry_after)
        step = min(self.max_backoff_s, self.initial_backoff_s * 2.0 ** max(0, attempts - 1))
        return step / 2 + rng.uniform(0, step / 2)
