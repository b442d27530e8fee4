"""When future requests would start: the budget's slots and the classes' turns.

Two small models the reach planner (``reach.py``) reads to tell whether a push,
sent with its personal text, would go out in time:

- ``SendTimes``: the earliest start of the k-th request from now (k = 0 is the
  next) under the sliding window. The free slots come first (now), then each
  slot of an ended request as it leaves the window, then the slots of requests
  in flight (assumed to end now: a round trip is short against a window); from
  then on, each slot serves again one window after its previous use.
- ``Turns``: which of those requests a class gets, by the scheduler's rule
  (``Scheduler._pick_class``): transactional first, except that marketing earns
  its share of every request decided while both wait, and takes the turn once
  it has earned a whole one.

Both assume nothing else takes the budget (a provider's status polls do) and
that every request carries as much as it can: an estimate, refreshed each time
a slot frees.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from consumer.push import PushClass

NEVER = math.inf
_EPSILON = 1e-9  # as the scheduler's own credit comparison


@dataclass(frozen=True, slots=True)
class SendTimes:
    """Monotonic start times of the next requests the budget allows.

    The window's slots, earliest first, are ``taken`` times before ``now``, then
    ``free`` slots free ``now``, then the other ``taken`` times: held as a count,
    not a list, so a budget of a million requests a window costs what its
    requests in the window cost (the scheduler asks before every request).
    """

    now: float
    free: int  # slots free now
    taken: tuple[float, ...]  # when each taken slot is free again, earliest first
    period_s: float  # how long a slot stays taken: the window and its margin
    hold_until: float = -math.inf  # the provider asked to wait until then (Retry-After)
    _before: int = 0  # how many of ``taken`` are earlier than ``now``

    @classmethod
    def of(
        cls,
        *,
        now: float,
        limit: int,
        period_s: float,
        ended: list[float],
        in_flight: int,
        hold_until: float = -math.inf,
    ) -> SendTimes:
        """From the window's state: the end times of requests still in it, and the
        number of requests in flight."""
        leaving = sorted([end + period_s for end in ended] + [now + period_s] * in_flight)
        free = max(0, limit - len(leaving))
        taken = tuple(leaving[: limit - free])
        return cls(now, free, taken, period_s, hold_until, bisect.bisect_left(taken, now))

    @property
    def slots(self) -> int:
        return self.free + len(self.taken)

    def latest_of_first(self, k: int) -> float:
        """The latest start among the next ``k`` requests, when all of them fit in the
        slots free by now (else ``NEVER``: finding it would take the general count)."""
        if k > self._before + self.free:
            return NEVER
        return max(self.hold_until, self.now)

    def at(self, k: int | float) -> float:
        """When the k-th request from now may start (``NEVER`` for k = ``NEVER``)."""
        if k == NEVER:
            return NEVER
        cycle, slot = divmod(int(k), self.slots)
        return max(self.hold_until, self._slot(slot) + cycle * self.period_s)

    def _slot(self, index: int) -> float:
        if index < self._before:
            return self.taken[index]
        if index < self._before + self.free:
            return self.now
        return self.taken[index - self.free]


class Turns:
    """The positions, among all the next requests, of one class's next requests.

    ``others``: how many requests the other class needs (None: more than will
    matter). Position ``NEVER`` when the class gets no turn while the other
    waits (a share of 0 for marketing, 1 for transactional).
    """

    def __init__(self, mine: PushClass, *, share: float, credit: float, others: int | None) -> None:
        self._marketing = mine is PushClass.MARKETING
        self._share = share
        self._credit = credit
        self._others = math.inf if others is None else others
        self._decided = 0  # requests decided so far, both classes
        self._mine: list[int] = []
        # Whose turn never comes while the other class waits: no loop can find it.
        self._starved = self._share <= 0 if self._marketing else self._share >= 1 - _EPSILON

    def position(self, j: int) -> int | float:
        """The overall position of this class's j-th request (0-based)."""
        while len(self._mine) <= j:
            if self._others <= 0:  # the other class is done: every turn is ours
                self._mine.append(self._decided)
                self._decided += 1
                continue
            if self._starved and self._others == math.inf:
                return NEVER
            self._credit += self._share
            marketing_turn = self._credit >= 1 - _EPSILON
            if marketing_turn:
                self._credit -= 1
            if marketing_turn == self._marketing:
                self._mine.append(self._decided)
            else:
                self._others -= 1
            self._decided += 1
        return self._mine[j]
