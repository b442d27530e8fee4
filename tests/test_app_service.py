"""The whole service without Kafka: ``Service`` with an in-memory source and dead-letter
writer (a ``KafkaEdge``), a fake provider and a fake clock.

What only the end-to-end tests reached before: the health and readiness answers
(503s with their reason), backpressure, an unexpected error dead-lettered and its
offset committed, the shutdown within ``SHUTDOWN_GRACE_S``, and the one provider
budget the dispatcher and the provider's own calls share. The end-to-end tests
(tests/e2e) run the same service against a real broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition
from testkit import T0

import consumer.app
from consumer.app import Service
from consumer.clock import FakeClock
from consumer.kafka.edge import CloseWithinGrace
from consumer.kafka.offsets import OffsetBook
from consumer.kafka.source import RevokedCallback, RevokingHook
from consumer.kafka.status import KafkaStatus
from consumer.metrics import Metrics
from consumer.outcomes import DeadLetterSink
from consumer.providers.base import CallQuota, Envelope, ProviderLimits
from consumer.push import Origin, PushJob
from consumer.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
TOPIC = "orders"
TP = TopicPartition(TOPIC, 0)
GRACE_S = 10.0
STALL_S = 30.0
FAILING_S = 15.0
REAL_WAIT_S = 30.0  # the longest any condition here may take in real time (a busy machine)
STEP_S = 0.25  # fake seconds the clock driver moves at a time


def settings(**sections: dict[str, Any]) -> Settings:
    base: dict[str, dict[str, Any]] = {
        "service": {"health_port": 0, "shutdown_grace_s": GRACE_S, "stall_after_s": STALL_S},
        "kafka": {"topics": [TOPIC], "failing_after_s": FAILING_S, "commit_interval_s": 0.05},
        "mappings": {"dir": REPO / "mappings"},
        "history": {"enabled": False},
        "imshop": {
            "assume_window_used_at_start": False,
            "rate_limit_requests": 10,
            "rate_limit_margin_s": 0,
        },
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return load_settings(**base)


def order_record(offset: int, *, user: str | None = None) -> ConsumerRecord[bytes, bytes]:
    """Order ``offset``'s status ``confirmed``: each order its own customer and text."""
    event = {
        "event_id": f"order-{offset}",
        "event_type": "order.status_changed",
        "occurred_at": T0.isoformat(),
        "recipient": {"user_id": user or f"7999{offset:07d}"},
        "order": {"id": f"A-{offset}", "number": str(10_000 + offset), "status": "confirmed"},
    }
    value = json.dumps(event).encode()
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, None, value, None, 0, len(value), [])


# ---- the Kafka side in memory


@dataclass
class MemorySource:
    """One partition in memory, with the offset book ``KafkaSource`` keeps: records are
    handed out in order, marked done, and committed up to the first one not done."""

    clock: FakeClock
    status: KafkaStatus
    records: list[ConsumerRecord[bytes, bytes]] = field(default_factory=list)
    joins: bool = True  # joins the group at start
    frozen: bool = False  # getmany hangs (aiokafka stuck): no poll goes on
    last_progress: float = 0.0
    committed: int | None = None
    commits_answered: bool = True
    pauses: list[tuple[float, int]] = field(default_factory=list)  # (fake time, held)
    resumes: list[tuple[float, int]] = field(default_factory=list)
    held: Callable[[], int] = lambda: 0
    _book: OffsetBook[TopicPartition] = field(default_factory=OffsetBook)
    _next: int = 0
    _paused: bool = False
    _joined: bool = False
    _stopped: bool = False

    @property
    def assigned(self) -> frozenset[TopicPartition]:
        return frozenset({TP}) if self._joined and not self._stopped else frozenset()

    @property
    def ready(self) -> bool:
        return self._joined and not self._stopped

    async def start(self) -> None:
        self.last_progress = self.clock.monotonic()
        if self.joins:
            self.join()

    def join(self) -> None:
        self._joined = True
        self._book.assign(TP, None)

    async def getmany(
        self, timeout_ms: int = 1000, *, max_records: int | None = None
    ) -> list[ConsumerRecord[bytes, bytes]]:
        while self.frozen:
            await self.clock.sleep(1.0)
        batch: list[ConsumerRecord[bytes, bytes]] = []
        if self._joined and not self._paused:
            end = min(len(self.records), self._next + (max_records or len(self.records)))
            batch, self._next = self.records[self._next : end], max(self._next, end)
        if not batch:  # nothing to read: the poll waits out its timeout
            await self.clock.sleep(timeout_ms / 1000)
        for record in batch:
            self._book.fetched(TP, record.offset)
        self.last_progress = self.clock.monotonic()
        return batch

    def done(self, topic: str, partition: int, offset: int) -> None:
        self._book.done(TopicPartition(topic, partition), offset)

    async def commit(self, timeout_s: float | None = None, *, probe: bool = False) -> bool:
        if not self.commits_answered:
            self.status.commit_ended("the group coordinator is not available")
            return False
        for tp, (offset, metadata) in self._book.commit_map(unchanged_too=probe).items():
            self.committed = offset
            self._book.committed(tp, offset, metadata)
        self.status.commit_ended()
        return True

    def pause_all(self) -> None:
        if not self._paused:
            self.pauses.append((self.clock.monotonic(), self.held()))
        self._paused = True

    def resume_all(self) -> None:
        if self._paused:
            self.resumes.append((self.clock.monotonic(), self.held()))
        self._paused = False

    async def stop(self, timeout_s: float | None = None) -> None:
        await self.commit(timeout_s)
        self._stopped = True


@dataclass
class DeadLetter:
    origin: Origin
    reason: str
    error_class: str
    message: str
    event_id: str | None


@dataclass
class MemoryDeadLetters:
    written: list[DeadLetter] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)  # the broker's acknowledgement

    async def write(
        self, origin: Origin, *, reason: str, error_class: str, message: str, event_id: str | None
    ) -> None:
        await self.gate.wait()
        self.written.append(DeadLetter(origin, reason, error_class, message, event_id))


@dataclass
class MemoryKafka:
    """A ``KafkaEdge`` that opens the in-memory source and dead-letter writer."""

    source_: MemorySource
    letters: MemoryDeadLetters
    hooks: tuple[RevokingHook, RevokedCallback] | None = None

    async def dead_letters(
        self, stack: contextlib.AsyncExitStack, close: CloseWithinGrace
    ) -> DeadLetterSink:
        return self.letters

    def source(self, *, on_revoking: RevokingHook, on_revoked: RevokedCallback) -> MemorySource:
        self.hooks = (on_revoking, on_revoked)
        return self.source_


# ---- the provider


class Provider:
    """Takes every request after ``latency_s`` fake seconds (``gate``: until it opens);
    ``lookup()`` is a call of its own under its quota, as AppMetrica's polls are."""

    name = "fake"

    def __init__(self, clock: FakeClock, quota: CallQuota | None = None) -> None:
        self.clock = clock
        self.quota = quota
        self.limits = ProviderLimits(1, 1000)
        self.starts: list[float] = []
        self.calls: list[float] = []
        self.sent: list[PushJob] = []
        self.latency_s = 0.0
        self.gate: asyncio.Event | None = None
        self.closed = False

    def coalesce_key(self, job: PushJob) -> Hashable:
        return job.message

    def recipients(self, job: PushJob) -> Sequence[str]:
        return (job.recipient.push_id,)

    async def send(self, request: Sequence[Envelope]) -> None:
        self.starts.append(self.clock.monotonic())
        if self.gate is not None:
            await self.gate.wait()
        await self.clock.sleep(self.latency_s)
        self.sent += [job for envelope in request for job in envelope.jobs]

    async def lookup(self) -> None:
        assert self.quota is not None
        async with self.quota.call():
            self.calls.append(self.clock.monotonic())

    async def aclose(self) -> None:
        self.closed = True


# ---- running it


@dataclass
class Running:
    service: Service
    clock: FakeClock
    source: MemorySource
    letters: MemoryDeadLetters
    provider: Provider
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        url = f"http://127.0.0.1:{self.service.health_port}{path}"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return response.status, await response.json()

    async def advance(self, seconds: float) -> None:
        """Fake time forward in steps, each after the loops had their turn."""
        target = self.clock.monotonic() + seconds
        while self.clock.monotonic() < target:
            await asyncio.sleep(0.002)  # the real-time waits (commit loop, drain's polls)
            await self.clock.advance(min(STEP_S, target - self.clock.monotonic()))

    async def until(self, condition: Callable[[], bool], *, step_s: float = 0.0) -> None:
        """Wait (bounded) until ``condition`` holds, moving fake time ``step_s`` a turn."""
        deadline = asyncio.get_running_loop().time() + REAL_WAIT_S
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, "the condition never held"
            await asyncio.sleep(0.002)
            if step_s:
                await self.clock.advance(step_s)

    async def shut_down(self) -> float:
        """Set stop; drive fake time until run() returns: the fake seconds it took."""
        stopped_at = self.clock.monotonic()
        self.stop.set()
        await self.until(self.task.done, step_s=STEP_S)
        await self.task
        return self.clock.monotonic() - stopped_at


@contextlib.asynccontextmanager
async def running(
    config: Settings | None = None,
    *,
    records: Sequence[ConsumerRecord[bytes, bytes]] = (),
    joins: bool = True,
    letters_acknowledged: bool = True,
    built: list[Provider] | None = None,
) -> AsyncIterator[Running]:
    """The service, started; stopped and drained at the end. ``built``: the provider
    is the one the service builds (see ``provider_builder``), not handed to it."""
    config = config or settings()
    clock = FakeClock()
    source = MemorySource(clock, KafkaStatus(clock, FAILING_S), list(records), joins=joins)
    letters = MemoryDeadLetters()
    if letters_acknowledged:
        letters.gate.set()
    provider = Provider(clock)
    service = Service(
        config,
        clock=clock,
        metrics=Metrics(),
        provider=None if built is not None else provider,
        kafka=MemoryKafka(source, letters),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    run = Running(service, clock, source, letters, provider, stop, task)
    await run.until(lambda: service.ready.is_set() or task.done())
    if task.done():
        await task  # the start-up failure
    if built is not None:
        (run.provider,) = built
    try:
        yield run
        if not task.done():
            await run.shut_down()
    finally:
        if not task.done():  # a failed test: end the service without its drain
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def provider_builder(monkeypatch: pytest.MonkeyPatch) -> list[Provider]:
    """Make the service's ``build_provider`` build a fake one, with the quota it is
    given; the list receives it."""
    built: list[Provider] = []

    def build_provider(
        _settings: Settings, _http: object, *, clock: Any, metrics: Metrics, quota: CallQuota
    ) -> Provider:
        built.append(Provider(clock, quota))
        return built[-1]

    monkeypatch.setattr(consumer.app, "build_provider", build_provider)
    return built


def committed_after(run: Running, offset: int) -> Callable[[], bool]:
    return lambda: run.source.committed is not None and run.source.committed > offset


# ---- health and readiness


async def test_healthz_and_readyz_answer_200_with_what_they_saw() -> None:
    async with running() as run:
        assert await run.get("/healthz") == (200, {"status": "ok", "detail": "last poll 0.0 s ago"})
        assert await run.get("/readyz") == (
            200,
            {"status": "ok", "detail": "1 partitions assigned"},
        )


async def test_readyz_is_503_until_the_group_is_joined() -> None:
    async with running(joins=False) as run:
        status, body = await run.get("/readyz")
        assert (status, body["detail"]) == (503, "not yet in the consumer group")

        run.source.join()

        assert (await run.get("/readyz"))[0] == 200


async def test_readyz_is_503_naming_kafkas_trouble_once_it_has_lasted() -> None:
    async with running() as run:
        run.source.commits_answered = False
        await run.until(lambda: run.source.status.commits_stalled(0))
        assert (await run.get("/readyz"))[0] == 200, "a moment's trouble is not reported"

        await run.advance(FAILING_S + 1)

        status, body = await run.get("/readyz")
        assert status == 503
        assert body["detail"].startswith("Kafka: commits failing for ")
        assert body["detail"].endswith("(the group coordinator is not available)")
        assert (await run.get("/healthz"))[0] == 200, "Kafka's trouble is no reason to restart"
        run.source.commits_answered = True


async def test_healthz_is_503_when_the_consume_loop_stops_polling() -> None:
    async with running() as run:
        run.source.frozen = True
        await run.advance(STALL_S - 1)
        assert (await run.get("/healthz"))[0] == 200

        await run.advance(2)

        status, body = await run.get("/healthz")
        assert (status, body["detail"]) == (503, f"no poll of Kafka for {STALL_S + 1:.0f} s")
        run.source.frozen = False


async def test_readyz_is_503_stopping_while_the_service_drains() -> None:
    async with running() as run:
        run.provider.gate = asyncio.Event()  # the request hangs on the wire
        run.source.records.append(order_record(0))
        await run.until(lambda: len(run.provider.starts) == 1, step_s=STEP_S)
        run.stop.set()
        await run.advance(1)  # the consume loop's poll ends: the drain begins

        status, body = await run.get("/readyz")
        assert (status, body["detail"]) == (503, "stopping")
        assert (await run.get("/healthz"))[0] == 200, "a drain is alive"
        run.provider.gate.set()


# ---- backpressure


async def test_fetching_pauses_at_the_pending_bound_and_resumes_once_it_drains() -> None:
    bound = 4  # resumes below 0.5 * 4 = 2 held
    config = settings(
        dispatch={"pending_max_events": bound, "pending_resume_ratio": 0.5},
        imshop={"rate_limit_requests": 1, "rate_limit_window_s": 10},
    )
    async with running(config) as run:
        parts = run.service._parts
        assert parts is not None
        run.source.held = lambda: run.service._held(parts)
        run.source.records += [order_record(offset) for offset in range(12)]
        await run.until(lambda: bool(run.source.pauses), step_s=STEP_S)
        assert run.source.pauses[0][1] == bound, "paused when the bound was reached"

        await run.until(lambda: len(run.provider.sent) == 12, step_s=STEP_S)

        assert run.source.resumes, "fetching came back"
        assert all(held < bound * 0.5 for _, held in run.source.resumes)
        assert max(held for _, held in run.source.pauses) <= bound
        await run.until(committed_after(run, 11))


# ---- an unexpected error


async def test_an_unexpected_error_dead_letters_the_record_where_it_was_then_commits_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_parse = consumer.app.parse_event

    def parse_event(value: bytes | None, **options: Any) -> Any:
        if value is not None and b'"order-1"' in value:
            raise ZeroDivisionError("a bug in the event handling")
        return real_parse(value, **options)

    monkeypatch.setattr(consumer.app, "parse_event", parse_event)
    records = [order_record(offset) for offset in range(3)]
    async with running(records=records, letters_acknowledged=False) as run:
        await run.until(lambda: len(run.provider.sent) == 2)
        await run.until(lambda: run.source.committed == 1)
        await run.advance(1)
        assert run.source.committed == 1, "not past the record before its dead letter is written"

        run.letters.gate.set()
        await run.until(committed_after(run, 2))

        (letter,) = run.letters.written
        where = (letter.origin.topic, letter.origin.partition, letter.origin.offset)
        assert (letter.reason, letter.error_class, where) == (
            "unexpected_error",
            "UnexpectedFailure",
            (TOPIC, 0, 1),
        )
        assert "ZeroDivisionError('a bug in the event handling')" in letter.message
        assert [job.event_id for job in run.provider.sent] == ["order-0", "order-2"]


# ---- shutdown


async def test_shutdown_drains_what_the_budget_allows_within_the_grace_period() -> None:
    config = settings(imshop={"rate_limit_requests": 1, "rate_limit_window_s": 3, "timeout_s": 1})
    records = [order_record(offset) for offset in range(6)]
    async with running(config, records=records) as run:
        await run.until(lambda: len(run.provider.starts) == 1)

        took = await run.shut_down()

        assert took <= GRACE_S + STEP_S
        # 10 s of grace, 2 s kept for closing, 1 s for the last request to end: requests
        # start at 0, 3 and 6 s; the rest stays uncommitted, for the partition's next owner.
        assert len(run.provider.sent) == 3
        assert run.source.committed == 3
        assert run.provider.closed


async def test_a_request_hanging_at_shutdown_is_given_up_within_the_grace_period() -> None:
    async with running() as run:
        run.provider.gate = asyncio.Event()  # never answers
        run.source.records.append(order_record(0))
        await run.until(lambda: len(run.provider.starts) == 1, step_s=STEP_S)

        took = await run.shut_down()

        assert GRACE_S - 2 - STEP_S <= took <= GRACE_S + STEP_S  # it waited, within grace
        assert run.provider.sent == []
        assert (run.source.committed or 0) == 0, "a push with no answer keeps its offset"


# ---- the provider's budget


async def test_the_provider_calls_and_the_dispatchers_requests_count_in_one_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A past bug built the budget twice: AppMetrica's polls did not count in the
    dispatcher's window, and together they broke the provider's limit."""
    config = settings(imshop={"rate_limit_requests": 2, "rate_limit_window_s": 60})
    async with running(config, built=provider_builder(monkeypatch)) as run:
        await run.provider.lookup()
        await run.provider.lookup()  # the window's two places, taken by the provider
        run.source.records.append(order_record(0))

        await run.until(lambda: bool(run.provider.starts), step_s=STEP_S)

        assert run.provider.calls == [1_000.0, 1_000.0]
        assert run.provider.starts == [1_060.0], "the request waited for the provider's calls"
        lookups = asyncio.create_task(run.provider.lookup())
        await run.until(lookups.done, step_s=STEP_S)
        lookups = asyncio.create_task(run.provider.lookup())
        await run.until(lookups.done, step_s=STEP_S)
        assert run.provider.calls[2] < 1_061.0
        assert run.provider.calls[3] == 1_120.0, "the request took the other place"
