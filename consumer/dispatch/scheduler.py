"""The scheduling decisions, as a plain synchronous class (no I/O, no waiting).

The async dispatcher asks ``next_request`` whenever the budget has a free slot
and reports each request's result back (a transient failure is retried until the
push's time-to-live ends; only a refusal dead-letters it); everything here is deterministic given
the times passed in and the random generator, so property tests drive it
directly.

Which request serves best, when a slot is free:
1. the class: ``transactional`` first, except that marketing earns
   ``marketing_min_share`` of a request for each request decided while both
   classes wait, and takes the slot once it has earned a whole one;
2. within the class, the group (coalesce key) holding the oldest ready push,
   so no group starves;
3. that group's ready pushes, oldest first, up to the recipient cap; pushes to a
   recipient already in the request ride along for free;
4. a provider taking several messages per request gets further groups the same
   way until its message or recipient limit is reached.

Before each request, the reach planner (``reach.py``) chooses each waiting push's
text from the budget's view (``budget``): personal while it would go out within
its rule's ``personal_within``, else its rule's shared text, in the shared group
that one request carries to many. A marketing push is not taken during its
recipient's quiet hours: it waits (DELAYED) until they end, whether it arrives in
them or was waiting when they began.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from consumer.dispatch.budget import Budget
from consumer.dispatch.pending import Entry, Finished, PendingSet
from consumer.dispatch.reach import ReachPlanner
from consumer.dispatch.retry import RetryPolicy
from consumer.errors import ConsumerError, OutcomeUnknown, ProviderRejected, TransientError
from consumer.providers.base import Envelope, ProviderLimits, Verdict
from consumer.push import Outcome, PushClass, PushJob, Variant
from consumer.settings import DispatchSettings

_EPSILON = 1e-9
_EXPIRY_LATE_S = 0.001


@dataclass(frozen=True, slots=True)
class Request:
    envelopes: tuple[Envelope, ...]
    entries: tuple[Entry, ...]
    push_class: PushClass

    @property
    def recipients(self) -> int:
        return sum(len(envelope.recipients) for envelope in self.envelopes)

    @property
    def attempt(self) -> int:
        return max(entry.job.attempts for entry in self.entries)


class Scheduler:
    def __init__(
        self,
        *,
        limits: ProviderLimits,
        coalesce_key: Callable[[PushJob], Hashable],
        recipients: Callable[[PushJob], Sequence[str]],
        settings: DispatchSettings,
        rng: random.Random | None = None,
        budget: Budget | None = None,
    ) -> None:
        """``budget``: the one requests start under; without it (or with
        ``SHARED_VARIANTS`` off) every push goes out with its personal text."""
        self.limits = limits
        self.pending = PendingSet(
            dedupe_memory=settings.dedupe_memory_events,
            collapse_memory=settings.collapse_memory_keys,
        )
        self.policy = RetryPolicy.from_settings(settings)
        self._coalesce_key = coalesce_key
        self._recipients = recipients
        self._share = settings.marketing_min_share
        self._credit = 0.0
        self._rng = rng or random.Random()
        self._budget = budget
        self.reach: ReachPlanner | None = None
        if budget is not None and settings.shared_variants:
            self.reach = ReachPlanner(
                self.pending,
                shared_key=coalesce_key,
                max_recipients=limits.max_recipients_per_request,
                marketing_share=settings.marketing_min_share,
            )

    def pop_finished(self) -> list[Finished]:
        finished, self.pending.finished = self.pending.finished, []
        return finished

    def add(self, job: PushJob, now_mono: float, now_wall: dt.datetime) -> None:
        try:
            group = self._coalesce_key(job)
            recipients = tuple(dict.fromkeys(self._recipients(job)))
        except Exception as exc:  # a provider bug must not stop the other events
            error = ConsumerError(f"provider could not address this push: {exc!r}")
            self.pending.finish(job, Outcome.DEAD_LETTERED, "unaddressable", error)
            return
        if not recipients:
            self.pending.finish(job, Outcome.SKIPPED, "no_recipients")
        elif len(recipients) > self.limits.max_recipients_per_request:
            error = ConsumerError(
                f"{len(recipients)} recipients, more than the"
                f" {self.limits.max_recipients_per_request} one request may carry"
            )
            self.pending.finish(job, Outcome.DEAD_LETTERED, "too_many_recipients", error)
        else:
            held = _quiet_until(job, now_mono, now_wall)
            entry = self.pending.add(job, group, recipients, now_mono, now_wall, held_until=held)
            if entry is not None and job.shareable and self.reach is not None:
                self.reach.track(entry, now_wall)

    def advance(self, now_mono: float, now_wall: dt.datetime) -> None:
        """Make due retries ready, expire what outlived its time-to-live, and hold the
        marketing pushes whose quiet hours began."""
        self.pending.promote_due(now_mono)
        self.pending.expire(now_wall)
        while (top := self.pending.ready_top(PushClass.MARKETING)) is not None:
            if not self._held_quiet(top, now_mono, now_wall):
                break

    def has_ready(self) -> bool:
        return any(self.pending.ready_top(c) is not None for c in PushClass)

    def next_wakeup(self, now_mono: float, now_wall: dt.datetime) -> float | None:
        """Monotonic time of the next retry or expiry (budget slots are the caller's)."""
        times = []
        if (retry_at := self.pending.next_retry_at()) is not None:
            times.append(retry_at)
        if (expiry := self.pending.next_expiry()) is not None:
            # A hair late: wall and monotonic time round differently, and waking
            # a microsecond early would find nothing expired and wake again.
            times.append(now_mono + (expiry - now_wall).total_seconds() + _EXPIRY_LATE_S)
        return min(times, default=None)

    def oldest_age(self, push_class: PushClass, now_mono: float) -> float | None:
        arrived = self.pending.oldest_arrival(push_class)
        return None if arrived is None else now_mono - arrived

    def next_request(self, now_mono: float, now_wall: dt.datetime) -> Request | None:
        """Take the request that serves best now; the caller starts it at once."""
        self.advance(now_mono, now_wall)
        if self.reach is not None and self._budget is not None:
            self.reach.plan(self._budget.send_times(), self._credit, now_mono, now_wall)
        push_class = self._pick_class()
        if push_class is None:
            return None
        other = next(c for c in PushClass if c is not push_class)
        envelopes: list[Envelope] = []
        taken: list[Entry] = []
        room = self.limits.max_recipients_per_request
        while len(envelopes) < self.limits.max_messages_per_request and room > 0:
            top = self.pending.ready_top(push_class) or self.pending.ready_top(other)
            if top is None:
                break
            chosen, recipients, full = self._fill(top.group, room, now_mono, now_wall)
            if not chosen:
                break
            self.pending.take(chosen)
            envelopes.append(Envelope(top.job.message, recipients, tuple(e.job for e in chosen)))
            taken.extend(chosen)
            room -= len(recipients)
            if full:
                break
        return Request(tuple(envelopes), tuple(taken), push_class)

    def _pick_class(self) -> PushClass | None:
        transactional = self.pending.ready_top(PushClass.TRANSACTIONAL) is not None
        marketing = self.pending.ready_top(PushClass.MARKETING) is not None
        if transactional and marketing:
            self._credit += self._share
            if self._credit >= 1 - _EPSILON:
                self._credit -= 1
                return PushClass.MARKETING
            return PushClass.TRANSACTIONAL
        if transactional:
            return PushClass.TRANSACTIONAL
        return PushClass.MARKETING if marketing else None

    def _fill(
        self, group: Hashable, room: int, now_mono: float, now_wall: dt.datetime
    ) -> tuple[list[Entry], tuple[str, ...], bool]:
        """Oldest-first members of the group that fit; ``full`` if some were left. A
        member in its quiet hours is held, not taken."""
        chosen: list[Entry] = []
        recipients: dict[str, None] = {}
        full = False
        for entry in self.pending.group_ready(group):
            if self._held_quiet(entry, now_mono, now_wall):
                continue
            new = [r for r in entry.recipients if r not in recipients]
            if len(recipients) + len(new) > room:
                full = True
                continue
            chosen.append(entry)
            recipients.update(dict.fromkeys(new))
        return chosen, tuple(recipients), full

    def _held_quiet(self, entry: Entry, now_mono: float, now_wall: dt.datetime) -> bool:
        """Hold the READY push if its quiet hours are on; True if they are."""
        held = _quiet_until(entry.job, now_mono, now_wall)
        if held is None:
            return False
        self.pending.hold(entry, *held)
        if entry.job.variant is Variant.SHARED:  # decided afresh once the hours end
            self.pending.switch(entry, Variant.PERSONAL)
            self.pending.regroup(entry, entry.personal_group)
            if self.reach is not None:
                self.reach.track(entry, now_wall)
        return True

    # --- results -----------------------------------------------------------------

    def on_sent(self, request: Request) -> None:
        for entry in request.entries:
            self.pending.accepted(entry)

    def on_confirmed(self, request: Request, verdict: Verdict) -> None:
        """Settle a request the provider accepted, once it confirmed how each push ended."""
        for entry in request.entries:
            event_id = entry.job.event_id
            if (error := verdict.refused.get(event_id)) is not None:
                self.pending.refused(entry, error.reason, error)
            else:
                self.pending.accepted(entry, confirmed=event_id not in verdict.unconfirmed)

    def on_failed(
        self, request: Request, error: ConsumerError, now_mono: float, now_wall: dt.datetime
    ) -> float | None:
        """Settle a failed request; returns the retry delay if any job will go again."""
        if isinstance(error, TransientError):
            return self._retry(request, error, now_mono, now_wall)
        refused = error.event_ids if isinstance(error, ProviderRejected) else None
        for entry in request.entries:
            if refused is None or entry.job.event_id in refused:
                self.pending.refused(entry, error.reason, error)
            else:
                self.pending.accepted(entry)
        return None

    def _retry(
        self, request: Request, error: TransientError, now_mono: float, now_wall: dt.datetime
    ) -> float | None:
        """Every job goes again after the backoff, for as long as it is worth sending:
        a job whose time-to-live runs out while it waits ends ``expired``."""
        # One delay for the whole request, so its jobs come back (and coalesce) together.
        delay = self.policy.delay_s(request.attempt, error, self._rng)
        lost = isinstance(error, OutcomeUnknown)
        waiting = False
        for entry in request.entries:
            if lost:
                self.pending.maybe_shown(entry)
            again = self.pending.retry(entry, now_mono + delay, error, now_mono, now_wall)
            if again and entry.job.shareable and self.reach is not None:
                self.reach.track(entry, now_wall)
            waiting |= again
        return delay if waiting else None


def _quiet_until(
    job: PushJob, now_mono: float, now_wall: dt.datetime
) -> tuple[float, dt.datetime] | None:
    """When the marketing push's quiet hours end, if they are on now (monotonic, wall)."""
    hours = job.push.quiet_hours
    if hours is None or job.push.push_class is not PushClass.MARKETING:
        return None  # order news and account movements go out at any hour
    ends = hours.ends_after(now_wall, job.zone)
    if ends is None:
        return None
    return now_mono + (ends - now_wall).total_seconds(), ends
