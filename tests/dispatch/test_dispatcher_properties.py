"""Everything at once, against the real async ``Dispatcher`` (hypothesis, fake clock).

One schedule mixes what the other tests keep apart: provider failures of every
kind (lost answers, outages, throttling, refusals), acceptances confirmed later
(delivered, failed after acceptance, never confirmed, confirmed after a revoke's
wait), retries, revokes with
requests in flight and re-assignments (records read again), dead letters
replayed into the running service, and newer statuses of the same order. A
small model of the Kafka side plays the source: it records each outcome as
committed, gives partitions up the way the service does (settle, commit, drop)
and reads uncommitted records again when a partition comes back.

At the end the provider accepts everything, every partition is assigned and
every dead letter replayed; then no record may lack an outcome, each outcome
must be justified by what happened, and each order's newest status must have
reached its customer unless its time-to-live ran out.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from dispatch_support import (
    T0,
    Later,
    LostAnswer,
    RecordingSink,
    Rig,
    advance,
    make_job,
    make_rig,
    max_starts_in_window,
    settle,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.errors import (
    ConsumerError,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from consumer.push import Origin, Outcome, PushJob, Variant

TOPIC = "orders"
PARTITIONS = (0, 1)
ORDERS = 3  # order k is keyed to partition k % 2; its customer is c{k}

ANSWERS: dict[str, Callable[[], ConsumerError | Later | None]] = {
    "ok": lambda: None,
    "confirmed": lambda: Later(after_s=2.0),
    "confirmed_late": lambda: Later(after_s=30.0),  # after any revoke's wait
    "failed_later": lambda: Later(after_s=2.0, refused=ProviderRejected("transfer failed")),
    "unconfirmed": lambda: Later(after_s=2.0, unconfirmed=True),
    "lost": lambda: LostAnswer("read timeout after the provider took it"),
    "unknown": lambda: OutcomeUnknown("HTTP 502"),
    "unavailable": lambda: ProviderUnavailable("connection refused"),
    "throttled": lambda: RateLimited("HTTP 429", retry_after=3.0),
    "refused": lambda: ProviderRejected("HTTP 400: refused", status=400),
}


@dataclass(frozen=True)
class Event:
    event_id: str
    user: str
    text: str
    partition: int
    order: int | None = None  # None: a bonus push with a shared text
    version: int = 0
    ttl_s: float = 3600.0

    @property
    def occurred_at(self) -> dt.datetime:
        return T0 + dt.timedelta(seconds=self.version)

    @property
    def expires_at(self) -> dt.datetime:
        return self.occurred_at + dt.timedelta(seconds=self.ttl_s)

    def job(self, offset: int) -> PushJob:
        return make_job(
            self.event_id,
            user=self.user,
            text=self.text,
            collapse_key=None if self.order is None else f"order-{self.order}",
            version=None if self.order is None else self.version,
            ttl_s=self.ttl_s,
            occurred_at=self.occurred_at,
            topic=TOPIC,
            partition=self.partition,
            offset=offset,
        )


def order_event(order: int, version: int, short_ttl: bool) -> Event:
    return Event(
        f"o{order}v{version}",
        f"c{order}",
        f"order {order}: status {version}",
        order % 2,
        order,
        version,
        ttl_s=60.0 if short_ttl else 3600.0,
    )


def bonus_event(number: int) -> Event:
    return Event(f"b{number}", f"b{number}", "sale", number % 2)


@dataclass
class Finished:
    outcome: Outcome
    reason: str | None
    at: dt.datetime


@dataclass
class KafkaModel(RecordingSink):
    """The Kafka side: partition logs, the assignment, outcomes (committed at once)."""

    rig: Rig | None = None
    logs: dict[int, list[Event]] = field(default_factory=lambda: {p: [] for p in PARTITIONS})
    assigned: set[int] = field(default_factory=lambda: set(PARTITIONS))
    finished: dict[tuple[int, int], Finished] = field(default_factory=dict)
    dead_letters: list[Event] = field(default_factory=list)
    replayed: int = 0
    events: dict[str, Event] = field(default_factory=dict)

    def record(
        self,
        origin: Origin,
        outcome: Outcome,
        *,
        event_id: str | None = None,
        event_type: str | None = None,
        reason: str | None = None,
        error: ConsumerError | None = None,
        variant: Variant | None = None,
    ) -> None:
        where = (origin.partition, origin.offset)
        assert origin.partition in self.assigned, f"{where}: outcome for a partition given up"
        assert where not in self.finished, f"{where}: a second outcome for one record"
        assert self.clock is not None
        self.finished[where] = Finished(outcome, reason, self.clock.now())
        if outcome is Outcome.DEAD_LETTERED:
            self.dead_letters.append(self.logs[origin.partition][origin.offset])

    @property
    def _rig(self) -> Rig:
        assert self.rig is not None
        return self.rig

    def publish(self, event: Event) -> None:
        event = self.events.setdefault(event.event_id, event)
        log = self.logs[event.partition]
        log.append(event)
        if event.partition in self.assigned:
            self._rig.dispatcher.submit(event.job(len(log) - 1))

    async def revoke(self, partition: int, settle_s: float) -> None:
        """As the service does: settle the partition's requests, commit, drop."""
        if partition not in self.assigned:
            return
        pairs = {(TOPIC, partition)}
        settling = asyncio.create_task(self._rig.dispatcher.settle_partitions(pairs, settle_s))
        await advance(self._rig.clock, settle_s)
        assert settling.done(), "the revoke's wait is bounded by its timeout"
        self.assigned.discard(partition)
        self._rig.dispatcher.drop_partitions(pairs)

    def assign(self, partition: int) -> None:
        """The partition comes back: every record without a committed outcome is read again."""
        if partition in self.assigned:
            return
        self.assigned.add(partition)
        for offset, event in enumerate(self.logs[partition]):
            if (partition, offset) not in self.finished:
                self._rig.dispatcher.submit(event.job(offset))

    def replay(self) -> None:
        """`dlq replay`: each new dead letter goes back to its partition as a new record."""
        letters, self.replayed = self.dead_letters[self.replayed :], len(self.dead_letters)
        for event in letters:
            self.publish(event)


Op = tuple[str, ...] | tuple[str, int, int, bool] | tuple[str, int] | tuple[str, int, float]

order_op = st.tuples(st.just("order"), st.integers(0, ORDERS - 1), st.integers(1, 4), st.booleans())
answer_op = st.tuples(st.just("answer"), st.sampled_from(sorted(ANSWERS)))
operation = st.one_of(  # publishing and the provider's answers drawn most often
    order_op,
    order_op,
    answer_op,
    answer_op,
    st.tuples(st.just("bonus"), st.integers(0, 3)),
    st.tuples(st.just("wait"), st.sampled_from([0.0, 1.0, 5.0, 30.0, 120.0])),
    st.tuples(st.just("revoke"), st.sampled_from(PARTITIONS), st.sampled_from([0.0, 1.0, 10.0])),
    st.tuples(st.just("assign"), st.sampled_from(PARTITIONS)),
    st.tuples(st.just("replay")),
)


async def run_schedule(
    ops: list[Op],
    answers: list[str],
    *,
    limit: int,
    window_s: float,
    concurrency: int,
    latency_s: float,
) -> KafkaModel:
    kafka = KafkaModel()
    rig = kafka.rig = await make_rig(
        sink=kafka,
        limit=limit,
        window_s=window_s,
        max_concurrent_requests=concurrency,
        retry_initial_backoff_s=0.5,
        retry_max_backoff_s=8.0,
    )
    rig.provider.latency_s = latency_s
    rig.provider.results.extend(ANSWERS[kind]() for kind in answers)
    for op in ops:
        match op:
            case ("order", int(order), int(version), bool(short)):
                kafka.publish(order_event(order, version, short))
            case ("bonus", int(number)):
                kafka.publish(bonus_event(number))
            case ("answer", str(kind)):
                rig.provider.results.append(ANSWERS[kind]())
            case ("wait", float(seconds)):
                await advance(rig.clock, seconds)
            case ("revoke", int(partition), float(settle_s)):
                await kafka.revoke(partition, settle_s)
            case ("assign", int(partition)):
                kafka.assign(partition)
            case ("replay",):
                kafka.replay()
        await settle()
    # In the end the provider accepts everything and everything comes back.
    rig.provider.results.clear()
    for partition in PARTITIONS:
        kafka.assign(partition)
    for _ in range(20):
        kafka.replay()
        await advance(rig.clock, 300)
        if rig.dispatcher.size == 0 and kafka.replayed == len(kafka.dead_letters):
            break
    await rig.close()
    return kafka


@dataclass(frozen=True)
class Seen:
    """What the provider saw: every job on the wire, and those it took, in order."""

    on_wire: list[PushJob]
    delivered: list[PushJob]

    @property
    def delivered_ids(self) -> set[str]:
        return {job.event_id for job in self.delivered}

    def of_order(self, jobs: list[PushJob], order: int) -> list[PushJob]:
        return [job for job in jobs if job.push.collapse_key == f"order-{order}"]


def check(kafka: KafkaModel, limit: int, window_s: float) -> None:
    provider = kafka._rig.provider
    seen = Seen(
        [job for _, request in provider.requests for e in request for job in e.jobs],
        [job for envelope in provider.delivered for job in envelope.jobs],
    )
    assert max_starts_in_window(provider.start_times, window_s) <= limit
    assert kafka._rig.dispatcher.size == 0
    for partition, log in kafka.logs.items():
        for offset, event in enumerate(log):
            done = kafka.finished.get((partition, offset))
            assert done is not None, f"{event.event_id} at {partition}@{offset} has no outcome"
            justify(kafka, seen, event, done)
    for order in range(ORDERS):
        newest_status_shown(kafka, seen, order)
    for event in kafka.events.values():
        if event.order is None:
            assert event.event_id in seen.delivered_ids, f"{event.event_id} never went out"


def justify(kafka: KafkaModel, seen: Seen, event: Event, done: Finished) -> None:
    """Each outcome is backed by what happened: a push taken, a newer status, time."""
    where = f"{event.event_id}: {done.outcome} ({done.reason})"
    match done.outcome:
        case Outcome.SENT:
            assert event.event_id in seen.delivered_ids, where
        case Outcome.EXPIRED:
            assert done.at >= event.expires_at, where
        case Outcome.DEAD_LETTERED:
            assert done.reason == "provider_rejected", where
        case Outcome.SKIPPED:
            records = [e for log in kafka.logs.values() for e in log if e == event]
            assert done.reason == "duplicate", where
            assert event.event_id in seen.delivered_ids or len(records) > 1, where
        case Outcome.SUPERSEDED if done.reason == "older_than_sent":
            assert event.order is not None, where
            newer_on_wire = any(
                (job.version or 0) > event.version
                for job in seen.of_order(seen.on_wire, event.order)
            )
            assert newer_on_wire or event.event_id in seen.delivered_ids, where
        case Outcome.SUPERSEDED:
            versions = [e.version for e in kafka.events.values() if e.order == event.order]
            assert event.order is not None, where
            assert max(versions) > event.version, where


def newest_status_shown(kafka: KafkaModel, seen: Seen, order: int) -> None:
    """The customer never sees an older status after a newer one, and sees the newest
    one unless its time-to-live ran out."""
    published = [e for e in kafka.events.values() if e.order == order]
    if not published:
        return
    shown = [job.version or 0 for job in seen.of_order(seen.delivered, order)]
    assert shown == sorted(shown), f"order {order}: an older status shown after a newer one"
    newest = max(published, key=lambda e: e.version)
    records = [
        kafka.finished[(newest.partition, offset)]
        for offset, e in enumerate(kafka.logs[newest.partition])
        if e == newest
    ]
    expired = any(done.outcome is Outcome.EXPIRED for done in records)
    assert newest.event_id in seen.delivered_ids or expired, f"order {order}: newest not shown"


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(operation, min_size=5, max_size=40),
    answers=st.lists(st.sampled_from(sorted(ANSWERS)), max_size=20),
    limit=st.integers(1, 3),
    window_s=st.sampled_from([1.0, 10.0]),
    concurrency=st.sampled_from([1, 4]),
    latency_s=st.sampled_from([0.0, 0.5, 3.0]),
)
def test_no_record_is_committed_without_a_reason_and_each_order_shows_its_newest_status(
    ops: list[Op],
    answers: list[str],
    limit: int,
    window_s: float,
    concurrency: int,
    latency_s: float,
) -> None:
    kafka = asyncio.run(
        run_schedule(
            ops,
            answers,
            limit=limit,
            window_s=window_s,
            concurrency=concurrency,
            latency_s=latency_s,
        )
    )
    check(kafka, limit, window_s)
