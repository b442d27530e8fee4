"""Quiet hours: a daily window of local time in which a push is not sent.

A window is ``start``–``end`` on the recipient's own clock (the event's
``timezone``); it wraps midnight when ``start`` is later than ``end``
(22:00–09:00 is the night). Wall-clock time is what a customer lives by, so the
window follows daylight-saving changes: where a clock jumps over ``end`` (a
spring-forward gap) the window ends at the jump, and where ``end`` happens
twice (the hour repeated in autumn) it ends the first time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

_PRECISION = dt.timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: dt.time
    end: dt.time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("quiet hours need a start and an end that differ")

    @property
    def text(self) -> str:
        """As a reader writes them: ``22:00–09:00``."""
        return f"{self.start:%H:%M}–{self.end:%H:%M}"

    def contains(self, at: dt.datetime, zone: ZoneInfo) -> bool:
        """True when ``at`` falls in the window on the clock of ``zone``."""
        clock = at.astimezone(zone).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end

    def ends_after(self, at: dt.datetime, zone: ZoneInfo) -> dt.datetime | None:
        """The moment the window holding ``at`` ends (None when ``at`` is outside it)."""
        if not self.contains(at, zone):
            return None
        local = at.astimezone(zone)
        day = local.date()
        if self.start > self.end and local.time().replace(tzinfo=None) >= self.start:
            day += dt.timedelta(days=1)  # in the evening part of a window that wraps midnight
        return first_instant(day, self.end, zone)


def first_instant(day: dt.date, clock: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The first moment the clock of ``zone`` shows ``clock`` on ``day``, or has passed it.

    An ordinary time happens once. A time in the autumn's repeated hour happens
    twice: the first is taken. A time the clock jumps over (spring) never shows:
    the moment of the jump is taken.
    """
    wall = dt.datetime.combine(day, clock, tzinfo=zone)
    first = wall.replace(fold=0).astimezone(dt.UTC)
    second = wall.replace(fold=1).astimezone(dt.UTC)
    if second >= first:  # once (equal) or twice (fold 0 is the earlier)
        return first
    # A gap: ``second`` (read with the later offset) is before the jump, ``first`` after.
    wanted = wall.replace(tzinfo=None)
    before, after = second, first
    while after - before > _PRECISION:
        middle = before + (after - before) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wanted:
            after = middle
        else:
            before = middle
    return after
