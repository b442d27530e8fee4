"""The service: Kafka in, mappings, dispatcher, provider out, one lifecycle.

``Service.run(stop)`` opens every part in order (mappings, provider, dead-letter
producer and a check that its topic can be written, history, Kafka source,
health server), runs the loops in one
TaskGroup, and on ``stop`` drains within ``SHUTDOWN_GRACE_S``: stop fetching,
write the history still waiting, send what the budget allows, write pending dead
letters, commit, leave the group. Parts close in reverse order through one
``AsyncExitStack``.

Each fetched batch's rendered pushes go through the history writer before the
dispatcher: their history is written first (one transaction), so an offset can
be committed only after both its history and its outcome are recorded.

The grace period holds whatever the broker does: every step of the shutdown,
closing the Kafka clients included, waits only for what is left of it. Nothing
is sent that cannot be committed: when Kafka takes no commits at the start of
the drain, or stops taking them during it, no further request starts (it would
be sent again after the restart).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition

from consumer.clock import Clock, SystemClock
from consumer.dispatch.budget import Budget, provider_budget
from consumer.dispatch.dispatcher import Dispatcher
from consumer.errors import (
    ConsumerError,
    FatalError,
    HistoryRejected,
    InvalidEvent,
    RenderError,
    UnexpectedFailure,
)
from consumer.events import BaseEvent, OrderStatusChanged, parse_event
from consumer.health import HealthServer
from consumer.history.lifecycle import History, open_history
from consumer.kafka.client_logs import ClientLogSummary
from consumer.kafka.clients import aiokafka_c_extension_problem
from consumer.kafka.edge import BrokerEdge, KafkaEdge, Source
from consumer.kafka.source import MAX_POLL_RECORDS
from consumer.logs import configure_logging, flush_lines, get_logger
from consumer.mapping import MappingReloader, MappingSet
from consumer.metrics import Metrics
from consumer.outcomes import OutcomeRecorder
from consumer.providers.base import PushProvider
from consumer.providers.registry import build_provider
from consumer.push import Origin, Outcome, PushJob
from consumer.settings import ProviderName, Settings, load_settings
from consumer.signals import stop_on_signals

log = get_logger(__name__)

FETCH_TIMEOUT_MS = 200
# The drain checks this long that Kafka takes commits before it sends anything,
# and stops sending once a commit waits this long for its answer.
COMMIT_PATIENCE_S = 2.0
# Of the grace period, what closing takes at most (the final commit, leaving the
# group, the dead-letter producer): the drain stops sending early enough for it.
CLOSE_RESERVE_S = 2.0


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        provider: PushProvider | None = None,
        kafka: KafkaEdge | None = None,
    ) -> None:
        """``provider`` and ``kafka`` replace the configured provider and the broker
        (tests, the demo); by default they are built from ``settings``."""
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self._provider_override = provider
        self._kafka = kafka or BrokerEdge(settings, self.metrics, self.clock)
        self._stopping = False
        self._deadline: float | None = None
        self._consume_task: asyncio.Task[None] | None = None
        self._parts: _Parts | None = None
        self.health_port: int | None = None
        self.ready = asyncio.Event()
        # serving()'s run() task: a caller may race its own work against it ending early
        self.run_task: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then drain and close; raise ``FatalError`` if it cannot."""
        if problem := aiokafka_c_extension_problem():
            log.warning("aiokafka_pure_python", detail=problem)
        client_logs = ClientLogSummary(self.clock)
        with client_logs.installed():
            async with contextlib.AsyncExitStack() as stack:
                parts = await self._open(stack)
                stack.enter_context(_collector_for_a_long_run())
                try:
                    async with asyncio.TaskGroup() as group:
                        summaries = group.create_task(client_logs.run(), name="client-logs")
                        await self._serve(group, parts, stop)
                        summaries.cancel()
                except* FatalError as failed:
                    raise failed.exceptions[0] from None

    @property
    def history_port(self) -> int | None:
        """The history API's port (None before start, or when it is not served)."""
        history = self._parts.history if self._parts else None
        return history.api.port if history and history.api else None

    @property
    def assigned(self) -> frozenset[TopicPartition]:
        """Partitions this instance holds now (empty before start and after stop)."""
        return self._parts.source.assigned if self._parts else frozenset()

    @contextlib.asynccontextmanager
    async def serving(self, ready_timeout_s: float = 60.0) -> AsyncIterator[Service]:
        """Run the service in this event loop until the block ends, then stop it gracefully.

        For the demo, benchmarks and tests; raises the start-up failure, or
        ``FatalError`` if the service is not ready within ``ready_timeout_s``.
        """
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(stop), name="service")
        self.run_task = task
        ready = asyncio.create_task(self.ready.wait())
        await asyncio.wait({task, ready}, timeout=ready_timeout_s, return_when="FIRST_COMPLETED")
        ready.cancel()
        if task.done():
            task.result()  # the start-up failure
            raise FatalError("the service stopped before it was ready")
        if not self.ready.is_set():
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, ready_timeout_s)
            raise FatalError(f"the service was not ready within {ready_timeout_s:g} s")
        try:
            yield self
        finally:
            stop.set()
            await task

    async def _open(self, stack: contextlib.AsyncExitStack) -> _Parts:
        settings = self.settings
        reloader = MappingReloader(
            settings.mappings.dir, settings.mappings, self.metrics, self.clock
        )
        log.info(
            "mappings_loaded", rules=len(reloader.current.rules), digest=reloader.current.digest
        )
        budget = provider_budget(settings, self.clock)  # the provider's calls count in it too
        provider = self._provider_override or build_provider(
            settings, None, clock=self.clock, metrics=self.metrics, quota=budget
        )
        stack.push_async_callback(provider.aclose)
        start: Callable[[], Awaitable[Any]] | None = getattr(provider, "start", None)
        if start is not None:
            await start()
        dead_letters = await self._kafka.dead_letters(stack, self._within_grace)
        recorder = OutcomeRecorder(
            mark_done=lambda origin: source.done(origin.topic, origin.partition, origin.offset),
            dead_letters=dead_letters,
            metrics=self.metrics,
            clock=self.clock,
        )
        if settings.service.push_provider is not ProviderName.APPMETRICA:
            _say_when_the_budget_frees(budget, self.clock)
        dispatcher = Dispatcher(
            provider,
            settings.dispatch,
            budget,
            recorder,
            self.clock,
            self.metrics,
        )
        history = await open_history(
            stack,
            settings.history,
            metrics=self.metrics,
            clock=self.clock,
            release=dispatcher.submit_many,
            reject=_history_refused(recorder),
        )
        source = self._kafka.source(
            on_revoking=_settler(dispatcher, settings.dispatch.rebalance_settle_s),
            on_revoked=_dropper(dispatcher, history),
        )
        await source.start()
        stack.push_async_callback(lambda: source.stop(self._time_left()))
        health = HealthServer(self.metrics, liveness=self._liveness, readiness=self._readiness)
        self.health_port = await health.start(settings.service.health_port)
        stack.push_async_callback(health.stop)
        parts = _Parts(reloader, recorder, dispatcher, source, history)
        self._parts = parts
        log.info(
            "service_started",
            provider=provider.name,
            topics=settings.kafka.topics,
            group=settings.kafka.group_id,
            health_port=self.health_port,
            history=history.where if history else None,
            history_port=self.history_port,
        )
        return parts

    async def _serve(self, group: asyncio.TaskGroup, parts: _Parts, stop: asyncio.Event) -> None:
        background = [
            group.create_task(parts.dispatcher.run(), name="dispatcher"),
            group.create_task(parts.recorder.run(), name="dead-letters"),
            group.create_task(parts.reloader.run(), name="mappings-reload"),
            group.create_task(self._commit_loop(parts), name="commits"),
        ]
        if parts.history is not None:
            for name, loop in parts.history.loops().items():
                background.append(group.create_task(loop, name=name))
        self._consume_task = group.create_task(self._consume(parts, stop), name="consume")
        self.ready.set()
        await self._consume_task
        self._deadline = self.clock.monotonic() + self.settings.service.shutdown_grace_s
        await self._drain(parts)
        for task in background:
            task.cancel()

    # ---- the consume loop

    async def _consume(self, parts: _Parts, stop: asyncio.Event) -> None:
        while not stop.is_set():
            room = self.settings.dispatch.pending_max_events - self._held(parts)
            records = await parts.source.getmany(
                FETCH_TIMEOUT_MS, max_records=max(1, min(MAX_POLL_RECORDS, room))
            )
            mappings = parts.reloader.current
            jobs = [job for record in records if (job := self._handle(record, mappings, parts))]
            self._pass_on(jobs, parts)
            flush_lines()
            self._apply_backpressure(parts)
        self._stopping = True
        log.info("fetching_stopped")

    @staticmethod
    def _pass_on(jobs: list[PushJob], parts: _Parts) -> None:
        """The batch's pushes to the dispatcher, through the history when there is one."""
        if parts.history is not None:
            parts.history.writer.submit(jobs)
        elif jobs:
            parts.dispatcher.submit_many(jobs)

    def _handle(
        self, record: ConsumerRecord, mappings: MappingSet, parts: _Parts
    ) -> PushJob | None:
        """The record's push job; None when it ended here (dead-lettered, no rule)."""
        origin = Origin(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=tuple(record.headers or ()),
            timestamp_ms=record.timestamp,
        )
        event: BaseEvent | None = None
        try:
            event = parse_event(
                record.value,
                max_bytes=self.settings.event.max_bytes,
                extra_types=mappings.extra_types,
            )
            push = mappings.render(event, now=self.clock.now())
        except InvalidEvent as exc:
            self._dead_letter(parts, origin, exc.kind, exc, event_id=exc.event_id)
            return None
        except RenderError as exc:
            self._dead_letter(parts, origin, exc.reason, exc, event=event)
            return None
        except Exception as exc:  # a bug must not crash the service or block the partition
            log.exception("record_handling_failed", offset=record.offset, topic=record.topic)
            failure = UnexpectedFailure(repr(exc))
            self._dead_letter(parts, origin, "unexpected_error", failure, event=event)
            return None
        if push is None:
            parts.recorder.record(
                origin,
                Outcome.SKIPPED,
                event_id=event.event_id,
                event_type=event.event_type,
                reason="no_rule",
            )
            return None
        return PushJob(
            origin=origin,
            event_id=event.event_id,
            event_type=event.event_type,
            recipient=event.recipient,
            push=push,
            occurred_at=event.occurred_at,
            version=event.order.version if isinstance(event, OrderStatusChanged) else None,
            zone=event.tzinfo,
        )

    @staticmethod
    def _dead_letter(
        parts: _Parts,
        origin: Origin,
        reason: str,
        error: ConsumerError,
        *,
        event: BaseEvent | None = None,
        event_id: str | None = None,
    ) -> None:
        parts.recorder.record(
            origin,
            Outcome.DEAD_LETTERED,
            event_id=event.event_id if event else event_id,
            event_type=event.event_type if event else None,
            reason=reason,
            error=error,
        )

    def _apply_backpressure(self, parts: _Parts) -> None:
        """Pause at the pending set's high-water mark, resume below its low one."""
        writing = self._held_outside_dispatcher(parts)
        if parts.dispatcher.above_high_water(writing):
            parts.source.pause_all()
        elif parts.dispatcher.below_low_water(writing):
            parts.source.resume_all()

    @classmethod
    def _held(cls, parts: _Parts) -> int:
        """Events in memory without an outcome yet: the pending set's bound covers them."""
        return parts.dispatcher.size + cls._held_outside_dispatcher(parts)

    @staticmethod
    def _held_outside_dispatcher(parts: _Parts) -> int:
        """Dead letters being written, and pushes waiting for their history."""
        history = parts.history.writer.waiting if parts.history else 0
        return parts.recorder.dead_letters_waiting + history

    async def _commit_loop(self, parts: _Parts) -> None:
        """Commit every interval, and at once after pushes went out.

        A sent push whose offset is not yet committed would be sent again after a
        crash; committing right after each request keeps such duplicates to the
        requests in flight. Requests are few (the provider's budget), so is this.
        """
        interval = self.settings.kafka.commit_interval_s
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel
            # that comes as the event is set, and the shutdown then waits for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await parts.recorder.sent_since_commit.wait()
            parts.recorder.sent_since_commit.clear()
            await parts.source.commit()

    # ---- shutdown

    async def _drain(self, parts: _Parts) -> None:
        """Within the grace period: write the history still waiting, send what the budget
        allows while Kafka takes commits, let requests on the wire finish, write the dead
        letters, commit. Unsent pushes (and pushes whose history could not be written)
        stay uncommitted; closing the clients has the rest."""
        reserve = min(CLOSE_RESERVE_S, self._time_left() / 4)

        def until_closing() -> float:
            return max(0.0, self._time_left() - reserve)

        history = parts.history
        if history is not None and not await history.writer.flush(until_closing() / 2):
            log.warning("history_not_flushed", waiting=history.writer.waiting)
        if await parts.source.commit(min(COMMIT_PATIENCE_S, until_closing()), probe=True):
            # Stop starting requests early enough for the last one to finish in time.
            window = max(0.0, until_closing() - self._request_timeout_s())
            left = await self._send_while_committable(parts, window)
        else:
            log.warning(
                "drain_sends_nothing",
                reason="Kafka takes no commits: a push sent now would be sent again after "
                "the restart",
            )
            left = await parts.dispatcher.drain(0.0)
        in_flight_done = await parts.dispatcher.wait_in_flight(until_closing())
        await parts.dispatcher.aclose()  # still on the wire: no outcome, sent after restart
        if parts.recorder.dead_letters_waiting:
            try:
                await asyncio.wait_for(parts.recorder.flush(), until_closing())
            except TimeoutError:
                log.warning("dead_letters_not_flushed", waiting=parts.recorder.dead_letters_waiting)
        await parts.source.commit(min(self._time_left() / 2, COMMIT_PATIENCE_S))
        log.info(
            "service_drained",
            pending_left=left,
            in_flight_done=in_flight_done,
            outcomes_recorded=parts.recorder.recorded,
        )

    async def _send_while_committable(self, parts: _Parts, window_s: float) -> int:
        """``dispatcher.drain(window_s)``, cut short once a commit goes unanswered."""
        drain = asyncio.create_task(parts.dispatcher.drain(window_s))
        while not drain.done():
            await asyncio.wait({drain}, timeout=0.1)
            if not drain.done() and parts.source.status.commits_stalled(COMMIT_PATIENCE_S):
                log.warning(
                    "drain_stopped_sending",
                    reason="a commit is unanswered: a push sent now could be sent again "
                    "after the restart",
                )
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain
                parts.dispatcher.stop()
                return parts.dispatcher.size
        return drain.result()

    def _time_left(self) -> float:
        """What is left of the grace period (all of it until the shutdown begins)."""
        grace = self.settings.service.shutdown_grace_s
        if self._deadline is None:
            return grace
        return max(0.0, min(grace, self._deadline - self.clock.monotonic()))

    async def _within_grace(self, name: str, close: Callable[[], Awaitable[None]]) -> None:
        try:  # a moment at least, so that the client starts closing (and says it did)
            await asyncio.wait_for(close(), max(0.1, self._time_left()))
        except TimeoutError:
            log.warning("close_timed_out", part=name)

    def _request_timeout_s(self) -> float:
        settings = self.settings
        return {
            ProviderName.IMSHOP: settings.imshop.timeout_s,
            ProviderName.APPMETRICA: settings.appmetrica.timeout_s,
        }.get(settings.service.push_provider, 0.0)

    # ---- probes

    def _liveness(self) -> tuple[bool, str]:
        if self._consume_task is not None and self._consume_task.done() and not self._stopping:
            return False, "the consume loop has ended"
        parts = self._parts
        if parts is None:
            return True, "starting"
        now, limit = self.clock.monotonic(), self.settings.service.stall_after_s
        idle = now - parts.source.last_progress
        if idle > limit:
            return False, f"no poll of Kafka for {idle:.0f} s"
        if (failing := parts.recorder.failing_for(now)) > limit:
            return False, f"dead-letter writes failing for {failing:.0f} s"
        # A history outage is the database's: a restart would not help, so it stays live.
        return True, f"last poll {idle:.1f} s ago" + self._history_trouble(parts, now)

    def _readiness(self) -> tuple[bool, str]:
        parts = self._parts
        if parts is None or self._stopping:
            return False, "stopping" if self._stopping else "starting"
        if not parts.source.ready:
            return False, "not yet in the consumer group"
        if problems := parts.source.status.problems():
            return False, "Kafka: " + "; ".join(problems)
        if trouble := self._history_trouble(parts, self.clock.monotonic()):
            return False, trouble.removeprefix("; ")
        return True, f"{len(parts.source.assigned)} partitions assigned"

    @staticmethod
    def _history_trouble(parts: _Parts, now: float) -> str:
        """Why the history is not being written, or "" when it is."""
        history = parts.history
        if history is None or not (failing := history.writer.failing_for(now)):
            return ""
        return (
            f"; history writes failing for {failing:.0f} s ({history.writer.last_error}); "
            f"{history.writer.waiting} events wait for it, fetching pauses at the bound"
        )


@dataclass(frozen=True, slots=True)
class _Parts:
    reloader: MappingReloader
    recorder: OutcomeRecorder
    dispatcher: Dispatcher
    source: Source
    history: History | None


# A young collection after this many more container objects made than freed (Python's
# default is 700), a middle one after this many young ones and a full one after this
# many middle ones (the defaults are 10 and 10).
_YOUNG_COLLECTION_EVERY = 10_000
_MIDDLE_COLLECTION_EVERY = 100
_FULL_COLLECTION_EVERY = 1_000


@contextlib.contextmanager
def _collector_for_a_long_run() -> Iterator[None]:
    """Keep the cyclic garbage collector off what the service holds for long.

    A drain holds tens of thousands of events (the pending set, the history's
    queue), and each full collection walked all of them and everything loaded at
    start (mappings, templates, schemas): measured at 45–85 µs of CPU per event,
    more than the service's own work. What is loaded at start is frozen (never
    walked again), and full collections come far less often. A young collection
    walks every container object made since the last one and still alive, a middle
    one all that survived the young ones since its last: at Python's 700 and 10 that
    was a fetched batch's events in the middle of their way and the history's queue,
    walked again and again (~6 µs per event without the history, 7–14 with it). The
    service frees almost everything by reference counting (a run of 100 000 events
    leaves a few hundred objects in cycles), so at 10 000 and 100 a young collection
    comes every ~10 000 events without the history, and the middle ones a tenth as
    often. The previous state comes back when the service stops.
    """
    young, middle, old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(
        max(young, _YOUNG_COLLECTION_EVERY),
        max(middle, _MIDDLE_COLLECTION_EVERY),
        max(old, _FULL_COLLECTION_EVERY),
    )
    try:
        yield
    finally:
        gc.set_threshold(young, middle, old)
        gc.unfreeze()


def _say_when_the_budget_frees(budget: Budget, clock: Clock) -> None:
    """Explain a quiet first minute: the budget starts spent unless told otherwise."""
    free_at = budget.next_start_at()
    if free_at is not None and (wait_s := free_at - clock.monotonic()) > 0:
        log.info(
            "budget_spent_at_start",
            first_request_in_s=round(wait_s, 1),
            why="IMSHOP_ASSUME_WINDOW_USED_AT_START counts the last window as used, "
            "so a restart never bursts past the limit",
        )


def _settler(
    dispatcher: Dispatcher, timeout_s: float
) -> Callable[[set[TopicPartition]], Awaitable[None]]:
    """Before the revoked partitions are committed: their requests in flight end first."""

    async def settle(revoked: set[TopicPartition]) -> None:
        await dispatcher.settle_partitions(_pairs(revoked), timeout_s)

    return settle


def _dropper(
    dispatcher: Dispatcher, history: History | None
) -> Callable[[set[TopicPartition]], None]:
    """After the revoked partitions are committed: the dispatcher (and the history's
    writer, for jobs still waiting for their history) let them go."""

    def drop(revoked: set[TopicPartition]) -> None:
        if history is not None:
            history.writer.drop_partitions(_pairs(revoked))
        dispatcher.drop_partitions(_pairs(revoked))

    return drop


def _history_refused(recorder: OutcomeRecorder) -> Callable[[PushJob, HistoryRejected], None]:
    """An event whose history item the database refuses for good is dead-lettered."""

    def refuse(job: PushJob, error: HistoryRejected) -> None:
        recorder.record(
            job.origin,
            Outcome.DEAD_LETTERED,
            event_id=job.event_id,
            event_type=job.event_type,
            reason=error.reason,
            error=error,
        )

    return refuse


def _pairs(partitions: set[TopicPartition]) -> set[tuple[str, int]]:
    return {(tp.topic, tp.partition) for tp in partitions}


async def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; a second signal exits at once."""
    await Service(settings).run(stop_on_signals())
    log.info("service_stopped")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the service (configured by environment)",
        description="Run the service until SIGTERM or Ctrl-C, then drain within "
        "SHUTDOWN_GRACE_S. It takes no options: it is configured by environment "
        "variables. `python -m consumer settings --markdown` lists every one with its "
        "default and meaning (the README's Configuration table); `python -m consumer "
        "settings` shows the values in effect.",
    )
    parser.set_defaults(func=_run)


def _run(_args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings.service.log_level, settings.service.log_format)
    return asyncio.run(serve(settings))
