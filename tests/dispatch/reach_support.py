"""Pushes with two texts for the reach tests, and an oracle of when a push would go out.

The oracle answers "would this push's personal text go out within its
``personal_within``?" by brute force: it replays the scheduler's serving order
request by request (oldest group first within a class, transactional before
marketing except for marketing's earned share) over a plain sliding window,
deciding every older push the same way first. It shares no code with the
planner (``consumer.dispatch.reach``) or its estimates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from testkit import T0

from consumer.dispatch.pending import Entry, State
from consumer.events import Recipient
from consumer.push import DEFAULT_ZONE, Message, Origin, PushClass, PushJob, RenderedPush, Variant
from consumer.quiet import QuietHours

SHARED_SUMMARY = "Подробности — в разделе «Мои заказы»."


def push_job(
    event_id: str,
    *,
    rule: str = "courier",
    order: int | None = None,
    version: int | None = None,
    user: str | None = None,
    within_s: float = 120.0,
    ttl_s: float = 3600.0,
    shared: bool = True,
    in_history: bool = True,
    push_class: PushClass = PushClass.TRANSACTIONAL,
    quiet: QuietHours | None = None,
    zone: ZoneInfo = DEFAULT_ZONE,
    occurred_at: dt.datetime = T0,
    partition: int = 0,
    offset: int = 0,
) -> PushJob:
    """An order push of ``rule`` whose personal text names the order (one request each)
    and whose shared text names only the rule (one request for everyone)."""
    key = f"order-{order}" if order is not None else None
    push = RenderedPush(
        rule_id=f"orders.yaml:{rule}",
        message=Message(f"Заказ {order or event_id}: {rule}", "Подробности внутри.", "imshop://o"),
        push_class=push_class,
        ttl_s=ttl_s,
        collapse_key=key,
        shared=Message(f"Ваш заказ: {rule}", SHARED_SUMMARY, "imshop://orders") if shared else None,
        personal_within_s=within_s,
        quiet_hours=quiet,
    )
    return PushJob(
        origin=Origin(topic="orders", partition=partition, offset=offset),
        event_id=event_id,
        event_type="order.status_changed",
        recipient=Recipient(user_id=user or f"u-{event_id}"),
        push=push,
        occurred_at=occurred_at,
        version=version,
        zone=zone,
        in_history=in_history,
    )


@dataclass(frozen=True, slots=True)
class Waiting:
    """One push in line, as the oracle sees it."""

    seq: int
    push_class: PushClass
    personal: Hashable
    shared: Hashable | None  # None: it cannot go shared
    recipients: int
    deadline: float  # monotonic: when its personal text must be out by
    not_before: float

    @classmethod
    def of(cls, entry: Entry, now_mono: float, now_wall: dt.datetime) -> Waiting:
        job = entry.job
        start = max(job.occurred_at, entry.received_at or job.occurred_at)
        if entry.held_until is not None and entry.held_until > start:
            start = entry.held_until
        deadline = start + dt.timedelta(seconds=job.push.personal_within_s)
        shared = job.push.shared if job.shareable else None
        return cls(
            entry.seq,
            entry.push_class,
            job.push.message,
            shared,
            len(entry.recipients),
            now_mono + (deadline - now_wall).total_seconds(),
            entry.not_before,
        )


def in_line(entries: Sequence[Entry], now_mono: float) -> list[Entry]:
    """Waiting and due: what the planner and the oracle both consider."""
    return [
        e for e in entries if e.state in (State.READY, State.DELAYED) and e.not_before <= now_mono
    ]


@dataclass
class Window:
    """A plain sliding window: ``limit`` requests per ``period_s``, each ending as it starts."""

    limit: int
    period_s: float
    ends: list[float]  # ends of requests still counted, and now for those in flight
    now: float
    hold_until: float = float("-inf")

    def starts(self, count: int) -> list[float]:
        ends, out = sorted(self.ends), []
        for _ in range(count):
            at = max(self.now, self.hold_until)
            if len(ends) >= self.limit:
                at = max(at, ends[-self.limit] + self.period_s)
            out.append(at)
            ends.append(at)
        return out


def serve(
    pushes: list[tuple[Waiting, Variant]], *, share: float, credit: float, room: int
) -> dict[int, int]:
    """The request (0 = next) each push goes out in, replaying the scheduler."""
    left = {
        c: sorted((p for p in pushes if p[0].push_class is c), key=lambda p: p[0].seq)
        for c in PushClass
    }
    position: dict[int, int] = {}
    index = 0
    while any(left.values()):
        both = all(left.values())
        if both:
            credit += share
            if credit >= 1 - 1e-9:
                credit -= 1
                chosen = PushClass.MARKETING
            else:
                chosen = PushClass.TRANSACTIONAL
        else:
            chosen = next(c for c in PushClass if left[c])
        queue = left[chosen]
        group = _group(queue[0])
        used, taken = 0, []
        for push in queue:
            if _group(push) == group and used + push[0].recipients <= room:
                used += push[0].recipients
                taken.append(push)
        for push in taken:
            queue.remove(push)
            position[push[0].seq] = index
        index += 1
    return position


def _group(push: tuple[Waiting, Variant]) -> Hashable:
    waiting, variant = push
    return ("shared", waiting.shared) if variant is Variant.SHARED else ("own", waiting.personal)


def oracle_variants(
    waiting: list[Waiting], window: Window, *, share: float, credit: float, room: int
) -> dict[int, Variant]:
    """Each push's text, decided oldest first: shared when its personal text, served
    after every older push as decided, would go out after its deadline."""
    decided: dict[int, Variant] = {}
    for push in sorted(waiting, key=lambda w: w.seq):
        if push.shared is None:
            decided[push.seq] = Variant.PERSONAL
            continue
        others = [(w, decided[w.seq]) for w in waiting if w.seq in decided]
        position = serve([*others, (push, Variant.PERSONAL)], share=share, credit=credit, room=room)
        sent_at = max(window.starts(position[push.seq] + 1)[-1], push.not_before)
        decided[push.seq] = Variant.PERSONAL if sent_at <= push.deadline + 1e-6 else Variant.SHARED
    return decided
