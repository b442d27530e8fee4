"""Builders shared by the dispatch tests: jobs, an in-memory provider, a recording sink,
and ``Rig``: the real async ``Dispatcher`` running on a fake clock, which ``play``
drives through a schedule of arrivals (a scenario of minutes runs in milliseconds)."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, replace

from testkit import T0, RecordingSink

from consumer.clock import FakeClock
from consumer.dispatch.budget import Budget, Slot
from consumer.dispatch.dispatcher import Dispatcher
from consumer.dispatch.scheduler import Request, Scheduler
from consumer.errors import ConsumerError, OutcomeUnknown, ProviderRejected, RateLimited
from consumer.metrics import Metrics
from consumer.providers.base import Envelope, ProviderLimits, Verdict
from consumer.push import Outcome, PushJob
from consumer.settings import DispatchSettings


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


# A scripted answer: a result, or a function of the request that gives one.
Answer = (
    ConsumerError
    | BaseException
    | Later
    | None
    | Callable[[Sequence[Envelope]], BaseException | None]
)


@dataclass(frozen=True)
class Sent:
    """One request as the provider saw it."""

    started: float  # monotonic
    at: dt.datetime  # wall time at the start
    envelopes: tuple[Envelope, ...]
    ended: float | None = None
    error: BaseException | None = None

    @property
    def jobs(self) -> list[PushJob]:
        return [job for envelope in self.envelopes for job in envelope.jobs]


class FakeProvider:
    """Coalesces like IMSHOP; answers with the scripted results (None = success;
    ``Later``: accepted now, confirmed later).

    ``delivered`` lists the jobs the provider took (a success, a ``LostAnswer``,
    the jobs a partial refusal spared, a confirmation that did not refuse), in the
    order it took them: what the customers were shown. ``sent`` keeps every request
    with its start and end.
    """

    name = "fake"

    def __init__(
        self, clock: FakeClock, *, max_recipients: int = 1000, max_messages: int = 1
    ) -> None:
        self.limits = ProviderLimits(max_messages, max_recipients)
        self.clock = clock
        self.sent: list[Sent] = []
        self.delivered: list[PushJob] = []
        self.refused: set[str] = set()  # event ids a refusal named (or all of its request)
        self.crashed: set[str] = set()  # event ids of requests that met a provider bug
        self.results: deque[Answer] = deque()
        self.gate: asyncio.Event | None = None
        self.latency_s = 0.0  # fake seconds each request takes
        self.in_flight = 0
        self.max_in_flight = 0

    def coalesce_key(self, job: PushJob) -> Hashable:
        return job.message

    def recipients(self, job: PushJob) -> Sequence[str]:
        return (job.recipient.push_id,)

    async def send(self, request: Sequence[Envelope]) -> Awaitable[Verdict] | None:
        index = len(self.sent)
        self.sent.append(Sent(self.clock.monotonic(), self.clock.now(), tuple(request)))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.latency_s:
                await self.clock.sleep(self.latency_s)
            answer = self.results.popleft() if self.results else None
            result = answer(request) if callable(answer) else answer
            ended = self.clock.monotonic()
            if isinstance(result, Later):  # accepted: the verdict comes later
                self.sent[index] = replace(self.sent[index], ended=ended)
                return self._verdict(tuple(request), result)
            self.sent[index] = replace(self.sent[index], ended=ended, error=result)
            self._account(request, result)
        finally:
            self.in_flight -= 1
        if result is not None:
            raise result
        return None

    async def _verdict(self, request: tuple[Envelope, ...], later: Later) -> Verdict:
        if later.after_s is None:
            await asyncio.Event().wait()
        await self.clock.sleep(later.after_s or 0.0)
        jobs = [job for envelope in request for job in envelope.jobs]
        ids = [job.event_id for job in jobs]
        if later.crash:
            raise RuntimeError("the confirmation crashed")
        if later.refused is not None:
            self.refused |= set(ids)
            return Verdict(refused=dict.fromkeys(ids, later.refused))
        self.delivered.extend(jobs)
        return Verdict(unconfirmed=frozenset(ids) if later.unconfirmed else frozenset())

    def _account(self, request: Sequence[Envelope], result: BaseException | None) -> None:
        jobs = [job for envelope in request for job in envelope.jobs]
        if isinstance(result, ProviderRejected):
            named = result.event_ids
            refused = {job.event_id for job in jobs if named is None or job.event_id in named}
            self.refused |= refused
            self.delivered.extend(job for job in jobs if job.event_id not in refused)
        elif result is None or isinstance(result, LostAnswer):
            self.delivered.extend(jobs)
        elif not isinstance(result, ConsumerError):
            self.crashed |= {job.event_id for job in jobs}

    async def aclose(self) -> None:
        pass

    @property
    def requests(self) -> list[tuple[float, tuple[Envelope, ...]]]:
        return [(sent.started, sent.envelopes) for sent in self.sent]

    @property
    def start_times(self) -> list[float]:
        return [sent.started for sent in self.sent]


def refuse_first(request: Sequence[Envelope]) -> ProviderRejected:
    """A partial refusal, as AppMetrica gives one: the request's first job only."""
    first = request[0].jobs[0].event_id
    return ProviderRejected(f"{first}: bad device", status=400, event_ids=frozenset({first}))


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
    budget: Budget
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
    margin_s: float = 0.0,
    sink: RecordingSink | None = None,
    max_messages: int = 1,
    max_recipients: int = 1000,
    **dispatch: float,
) -> Rig:
    clock = FakeClock()
    provider = FakeProvider(clock, max_recipients=max_recipients, max_messages=max_messages)
    if sink is None:
        sink = RecordingSink()
    sink.clock = clock
    metrics = Metrics()
    budget = Budget(
        limit=limit, window_s=window_s, clock=clock, margin_s=margin_s, assume_window_used=full
    )
    settings = DispatchSettings(**dispatch)  # type: ignore[arg-type]
    dispatcher = Dispatcher(provider, settings, budget, sink, clock, metrics, rng=random.Random(7))
    runner = asyncio.create_task(dispatcher.run())
    await settle()
    return Rig(clock, provider, sink, metrics, budget, dispatcher, runner)


async def play(rig: Rig, arrivals: Sequence[tuple[float, PushJob]], *, then_s: float = 0) -> None:
    """Submit each job at its time (seconds from now), then let everything finish:
    time runs until nothing is held, or ``then_s`` longer if that is later."""
    start = rig.clock.monotonic()
    for at, job in sorted(arrivals, key=lambda item: item[0]):
        if start + at > rig.clock.monotonic():  # jobs arriving together are submitted together
            await advance(rig.clock, start + at - rig.clock.monotonic())
        rig.dispatcher.submit(job)
    await settle()
    for _ in range(10_000):  # bounded: each turn reaches the next wake-up
        wake = rig.clock.next_wakeup
        if (rig.dispatcher.size == 0 and not rig.provider.in_flight) or wake is None:
            break
        await advance(rig.clock, wake - rig.clock.monotonic())
    else:
        raise AssertionError("the schedule did not settle")
    await advance(rig.clock, max(0.0, start + then_s - rig.clock.monotonic()))


def make_scheduler(
    *, max_messages: int = 1, max_recipients: int = 1000, **dispatch: float
) -> Scheduler:
    """The synchronous scheduler alone, addressing jobs as ``FakeProvider`` does."""
    return Scheduler(
        limits=ProviderLimits(max_messages, max_recipients),
        coalesce_key=lambda job: job.message,
        recipients=lambda job: (job.recipient.push_id,),
        settings=DispatchSettings(**dispatch),  # type: ignore[arg-type]
        rng=random.Random(0),
    )


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
