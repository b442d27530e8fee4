"""Builders shared by the dispatch tests: jobs, an in-memory provider, a recording sink."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import deque
from collections.abc import Awaitable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field

from consumer.clock import FakeClock
from consumer.dispatch.budget import Budget, Slot
from consumer.dispatch.dispatcher import Dispatcher
from consumer.dispatch.scheduler import Request, Scheduler
from consumer.errors import ConsumerError, OutcomeUnknown, ProviderRejected, RateLimited
from consumer.events import Recipient
from consumer.metrics import Metrics
from consumer.providers.base import Envelope, ProviderLimits, Verdict
from consumer.push import Message, Origin, Outcome, PushClass, PushJob, RenderedPush, Variant
from consumer.settings import DispatchSettings

T0 = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)  # FakeClock's default start


def make_job(
    event_id: str,
    *,
    user: str = "u1",
    text: str = "T",
    push_class: PushClass = PushClass.TRANSACTIONAL,
    ttl_s: float = 3600.0,
    collapse_key: str | None = None,
    version: int | None = None,
    occurred_at: dt.datetime = T0,
    topic: str = "orders",
    partition: int = 0,
    offset: int = 0,
) -> PushJob:
    push = RenderedPush(
        rule_id=f"rule-{text}",
        message=Message(title=text, summary=f"summary {text}"),
        push_class=push_class,
        ttl_s=ttl_s,
        collapse_key=collapse_key,
    )
    return PushJob(
        origin=Origin(topic=topic, partition=partition, offset=offset),
        event_id=event_id,
        event_type="order.status_changed",
        recipient=Recipient(user_id=user),
        push=push,
        occurred_at=occurred_at,
        version=version,
    )


class LostAnswer(OutcomeUnknown):
    """A scripted result: the provider takes the request, but its answer is lost."""


@dataclass(frozen=True)
class Later:
    """A scripted result: the provider accepts the request and gives its verdict on
    every job ``after_s`` fake seconds later (None: never), as AppMetrica does."""

    after_s: float | None = 1.0
    refused: ProviderRejected | None = None  # the request failed after its acceptance
    unconfirmed: bool = False  # the provider took it but never said how it ended
    crash: bool = False  # the confirmation itself fails (a provider bug)


class FakeProvider:
    """Coalesces like IMSHOP; answers with the scripted results (None = success;
    ``Later``: accepted now, confirmed later).

    ``delivered`` lists what the provider took (a success, a ``LostAnswer``, or a
    confirmation that did not refuse), in the order it took it: what the customers
    were shown.
    """

    name = "fake"

    def __init__(
        self, clock: FakeClock, *, max_recipients: int = 1000, max_messages: int = 1
    ) -> None:
        self.limits = ProviderLimits(max_messages, max_recipients)
        self.clock = clock
        self.requests: list[tuple[float, tuple[Envelope, ...]]] = []
        self.delivered: list[Envelope] = []
        self.results: deque[ConsumerError | Later | None] = deque()
        self.gate: asyncio.Event | None = None
        self.latency_s = 0.0  # fake seconds each request takes

    def coalesce_key(self, job: PushJob) -> Hashable:
        return job.message

    def recipients(self, job: PushJob) -> Sequence[str]:
        return (job.recipient.push_id,)

    async def send(self, request: Sequence[Envelope]) -> Awaitable[Verdict] | None:
        self.requests.append((self.clock.monotonic(), tuple(request)))
        if self.gate is not None:
            await self.gate.wait()
        if self.latency_s:
            await self.clock.sleep(self.latency_s)
        result = self.results.popleft() if self.results else None
        if isinstance(result, Later):
            return self._verdict(tuple(request), result)
        if result is None or isinstance(result, LostAnswer):
            self.delivered.extend(request)
        if result is not None:
            raise result
        return None

    async def _verdict(self, request: tuple[Envelope, ...], later: Later) -> Verdict:
        if later.after_s is None:
            await asyncio.Event().wait()
        await self.clock.sleep(later.after_s or 0.0)
        ids = [job.event_id for envelope in request for job in envelope.jobs]
        if later.crash:
            raise RuntimeError("the confirmation crashed")
        if later.refused is not None:
            return Verdict(refused=dict.fromkeys(ids, later.refused))
        self.delivered.extend(request)
        return Verdict(unconfirmed=frozenset(ids) if later.unconfirmed else frozenset())

    async def aclose(self) -> None:
        pass

    @property
    def start_times(self) -> list[float]:
        return [at for at, _ in self.requests]


@dataclass
class Recorded:
    outcome: Outcome
    reason: str | None
    error: ConsumerError | None
    at: float


@dataclass
class RecordingSink:
    clock: FakeClock | None = None
    outcomes: dict[str, list[Recorded]] = field(default_factory=dict)

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
        at = self.clock.monotonic() if self.clock else 0.0
        self.outcomes.setdefault(event_id or "", []).append(Recorded(outcome, reason, error, at))

    def outcome(self, event_id: str) -> Outcome:
        (only,) = self.outcomes[event_id]
        return only.outcome

    def count(self, outcome: Outcome) -> int:
        return sum(1 for records in self.outcomes.values() for r in records if r.outcome is outcome)


async def settle() -> None:
    """Let every ready task run until it waits on something (no time passes)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def advance(clock: FakeClock, seconds: float) -> None:
    """Move fake time forward, letting the dispatcher react at each wake-up on the way."""
    target = clock.monotonic() + seconds
    while True:
        await settle()
        wake = clock.next_wakeup
        if wake is None or wake > target:
            break
        await clock.advance(wake - clock.monotonic())
    await clock.advance(target - clock.monotonic())
    await settle()


def max_starts_in_window(starts: list[float], window_s: float) -> int:
    """The most starts inside any half-open window [t, t + window_s)."""
    ordered = sorted(starts)
    best, low = 0, 0
    for high, at in enumerate(ordered):
        while ordered[low] + window_s <= at:
            low += 1
        best = max(best, high - low + 1)
    return best


@dataclass
class Rig:
    """The real async dispatcher, running, with a fake provider, clock and sink."""

    clock: FakeClock
    provider: FakeProvider
    sink: RecordingSink
    metrics: Metrics
    dispatcher: Dispatcher
    runner: asyncio.Task[None]

    async def close(self) -> None:
        await self.dispatcher.aclose()
        await self.runner


async def make_rig(
    *,
    limit: int = 3,
    window_s: float = 60,
    full: bool = False,
    sink: RecordingSink | None = None,
    **dispatch: float,
) -> Rig:
    clock = FakeClock()
    provider = FakeProvider(clock)
    if sink is None:
        sink = RecordingSink()
    sink.clock = clock
    metrics = Metrics()
    budget = Budget(limit=limit, window_s=window_s, clock=clock, assume_window_used=full)
    settings = DispatchSettings(**dispatch)  # type: ignore[arg-type]
    dispatcher = Dispatcher(provider, settings, budget, sink, clock, metrics, rng=random.Random(7))
    runner = asyncio.create_task(dispatcher.run())
    await settle()
    return Rig(clock, provider, sink, metrics, dispatcher, runner)


class StepClock:
    """A clock for synchronous tests: time moves only by assignment to ``t``."""

    def __init__(self) -> None:
        self.t = 1_000.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> dt.datetime:
        return T0 + dt.timedelta(seconds=self.t - 1_000.0)

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("synchronous tests never sleep")


class Harness:
    """Drives the synchronous scheduler and a budget through time, as the dispatcher does.

    ``results`` answers each request in turn (None: sent); answers arrive
    ``latency_s`` after the start. Time jumps from one possible change to the
    next, so a scenario of minutes runs in milliseconds.
    """

    def __init__(
        self,
        *,
        limit: int = 10,
        window_s: float = 60.0,
        margin_s: float = 0.0,
        full: bool = False,
        max_recipients: int = 1000,
        max_messages: int = 1,
        settings: DispatchSettings | None = None,
        latency_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.clock = StepClock()
        self.budget = Budget(
            limit=limit,
            window_s=window_s,
            clock=self.clock,
            margin_s=margin_s,
            assume_window_used=full,
        )
        self.prior_starts = [self.clock.t] * limit if full else []
        self.scheduler = Scheduler(
            limits=ProviderLimits(max_messages, max_recipients),
            coalesce_key=lambda job: job.message,
            recipients=lambda job: (job.recipient.push_id,),
            settings=settings or DispatchSettings(),
            rng=random.Random(seed),
            budget=self.budget,
        )
        self.latency_s = latency_s
        self.requests: list[tuple[float, Request, ConsumerError | None]] = []
        self.outcomes: dict[str, list[tuple[Outcome, str, float]]] = {}

    @property
    def starts(self) -> list[float]:
        return self.prior_starts + [at for at, _, _ in self.requests]

    def run(
        self,
        arrivals: list[tuple[float, PushJob]],
        results: Iterator[ConsumerError | None] | None = None,
        max_steps: int = 100_000,
    ) -> None:
        start = self.clock.t  # arrival times are seconds from now
        waiting = sorted(((start + at, job) for at, job in arrivals), key=lambda item: item[0])
        flights: list[tuple[float, int, Request, ConsumerError | None, Slot]] = []
        for step in range(max_steps):
            now = self.clock.t
            while waiting and waiting[0][0] <= now:
                self.scheduler.add(waiting.pop(0)[1], now, self.clock.now())
            flights.sort(key=lambda item: (item[0], item[1]))
            while flights and flights[0][0] <= now:
                _, _, request, error, slot = flights.pop(0)
                self.budget.finish(slot)
                self._settle(request, error)
            self.scheduler.advance(now, self.clock.now())
            while self.budget.can_start():
                request = self.scheduler.next_request(now, self.clock.now())
                if request is None:
                    break
                slot = self.budget.try_start()
                assert slot is not None
                error = next(results) if results is not None else None
                self.requests.append((now, request, error))
                flights.append((now + self.latency_s, step, request, error, slot))
            self._collect()
            times = [at for at, _ in waiting[:1]] + [at for at, *_ in flights]
            if (wake := self.scheduler.next_wakeup(now, self.clock.now())) is not None:
                times.append(wake)
            if self.scheduler.has_ready() and (free := self.budget.next_start_at()) is not None:
                times.append(free)
            if not times:
                return
            self.clock.t = max(now, min(times))
        raise AssertionError("the scenario did not settle")

    def _settle(self, request: Request, error: ConsumerError | None) -> None:
        now = self.clock.t
        if error is None:
            self.scheduler.on_sent(request)
            return
        if isinstance(error, RateLimited) and error.retry_after is not None:
            self.budget.hold_until(now + error.retry_after)
        self.scheduler.on_failed(request, error, now, self.clock.now())

    def _collect(self) -> None:
        for item in self.scheduler.pop_finished():
            record = (item.outcome, item.reason, self.clock.t)
            self.outcomes.setdefault(item.job.event_id, []).append(record)

    def outcome(self, event_id: str) -> Outcome:
        (only,) = self.outcomes[event_id]
        return only[0]
