"""The async shell around the scheduler: wakes, starts requests, reports outcomes.

The loop sleeps until something can change a decision: a submission, a finished
request, the next free budget slot, the next retry time or the next expiry
(no polling tick). Requests run as tasks, at most ``max_concurrent_requests``,
so a slow provider does not stop scheduling; the budget slot is taken when a
request starts. Each event's outcome goes to the ``OutcomeSink``, which also
counts events by outcome (the dispatcher counts requests, not events).

A transient failure is retried with capped backoff until the push's time-to-live
ends (``expired``); a refusal dead-letters it; a provider that crashes (a bug)
dead-letters the request's pushes at once rather than spend the budget on it.
A ``FatalError`` from the provider (a refused API key, a wrong URL) stops the
loop: ``run()`` raises it and the affected jobs keep no outcome, so their
offsets stay uncommitted and nothing is lost.

A provider that decides after accepting (AppMetrica) returns a confirmation
from ``send``. The request ends there: its place among the requests in flight
and its budget slot are free again, so throughput stays the provider's. Its
jobs stay held (in flight, counted in the pending bound, offsets uncommitted,
the in-flight claim on their collapse keys kept) until the confirmation's
verdict, awaited by a task of its own; then they are recorded: ``sent``,
``dead_lettered`` with the provider's reason, or ``sent`` as ``unconfirmed``.

On a rebalance the Kafka side calls ``settle_partitions`` before it commits the
revoked partitions (their requests in flight and their confirmations end and
are recorded first, so the next owner does not send them again) and
``drop_partitions`` after. A verdict that comes after the drop records nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from consumer.clock import Clock
from consumer.dispatch.budget import Budget, Slot
from consumer.dispatch.pending import Finished, Partition
from consumer.dispatch.scheduler import Request, Scheduler
from consumer.errors import ConsumerError, FatalError, RateLimited, UnexpectedFailure
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.providers.base import Confirmation, PushProvider, Verdict
from consumer.push import Outcome, OutcomeSink, PushClass, PushJob
from consumer.settings import DispatchSettings

log = get_logger(__name__)


class Dispatcher:
    def __init__(
        self,
        provider: PushProvider,
        settings: DispatchSettings,
        budget: Budget,
        sink: OutcomeSink,
        clock: Clock,
        metrics: Metrics,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._provider = provider
        self._budget = budget
        self._sink = sink
        self._clock = clock
        self._metrics = metrics
        self._scheduler = Scheduler(
            limits=provider.limits,
            coalesce_key=provider.coalesce_key,
            recipients=provider.recipients,
            settings=settings,
            rng=rng,
            budget=budget,
        )
        self._max_concurrent = settings.max_concurrent_requests
        self._high_water = settings.pending_max_events
        self._low_water = settings.pending_max_events * settings.pending_resume_ratio
        self._tasks: dict[asyncio.Task[None], Request] = {}  # sending: hold a place
        self._confirming: dict[asyncio.Task[None], Request] = {}  # accepted, awaiting verdict
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._stopping = False
        self._running = False
        self._loop_done = asyncio.Event()
        self._fatal: FatalError | None = None
        metrics.budget_limit.labels(provider.name).set(budget.limit)

    # --- what the Kafka side uses --------------------------------------------------

    def submit(self, job: PushJob) -> None:
        """Hand one event's push over; never blocks, never raises for a bad job."""
        self.submit_many([job])

    def submit_many(self, jobs: list[PushJob]) -> None:
        """Hand a fetched batch's pushes over at one moment (one clock reading, one
        report of what ended at once, one wake-up)."""
        now_mono, now_wall = self._clock.monotonic(), self._clock.now()
        add = self._scheduler.add
        for job in jobs:
            add(job, now_mono, now_wall)
        self._report(self._scheduler.pop_finished())
        self._wake.set()

    @property
    def size(self) -> int:
        """Jobs held without an outcome yet, in flight included."""
        return self._scheduler.pending.size

    def above_high_water(self, held_elsewhere: int = 0) -> bool:
        """Fetching should pause: the bound is reached (``held_elsewhere``: events the
        service keeps outside the dispatcher, e.g. dead letters being written)."""
        return self.size + held_elsewhere >= self._high_water

    def below_low_water(self, held_elsewhere: int = 0) -> bool:
        """Fetching may resume (hysteresis: well below the bound, not just under it)."""
        return self.size + held_elsewhere < self._low_water

    def oldest_age(self, push_class: PushClass) -> float | None:
        """Seconds the oldest waiting push of the class has been here (None if none)."""
        return self._scheduler.oldest_age(push_class, self._clock.monotonic())

    async def settle_partitions(self, partitions: set[Partition], timeout_s: float) -> bool:
        """Before the partitions are given up: start and retry nothing of theirs, forget
        their waiting jobs, and wait up to ``timeout_s`` for their requests in flight and
        their confirmations, so those outcomes are recorded before the commit. True if
        none is left in flight."""
        forgotten = self._scheduler.pending.close(partitions)
        until = self._clock.monotonic() + timeout_s
        while self._carrying(partitions) and self._clock.monotonic() < until:
            self._progress.clear()
            await _race(self._clock, self._progress, until)
        left = self._carrying(partitions)
        fields = {"partitions": sorted(partitions), "forgotten": forgotten}
        if left:
            # Their results will not be recorded: the partitions' next owner sends them again.
            log.warning("revoked_requests_unsettled", requests=left, timeout_s=timeout_s, **fields)
        else:
            log.info("revoked_requests_settled", **fields)
        return not left

    def drop_partitions(self, partitions: set[Partition]) -> int:
        """The partitions are given up: forget their waiting jobs (no outcome: the new
        owner sends them); results of their requests still in flight are not recorded."""
        dropped = self._scheduler.pending.drop(partitions)
        if dropped:
            log.info("pending_dropped", jobs=dropped, partitions=sorted(partitions))
            self._progress.set()
        return dropped

    async def run(self) -> None:
        """The scheduling loop; returns after ``stop()``, raises a provider's ``FatalError``."""
        self._running, self._stopping = True, False
        self._loop_done.clear()
        try:
            while not self._stopping:
                self._wake.clear()
                if self._fatal is not None:
                    raise self._fatal
                self._start_requests()
                await _race(self._clock, self._wake, self._wake_at())
        finally:
            self._running = False
            self._loop_done.set()

    def stop(self) -> None:
        """Make ``run()`` return; requests in flight go on and still report."""
        self._stopping = True
        self._wake.set()

    async def drain(self, deadline_s: float) -> int:
        """Send what the budget allows until nothing is held or the deadline passes.

        Then the loop stops. Returns how many jobs are left without an outcome
        (still in flight, or never sent: their offsets stay uncommitted).
        """
        runner = None if self._running else asyncio.create_task(self.run())
        deadline = self._clock.monotonic() + deadline_s
        while self.size and self._clock.monotonic() < deadline and self._fatal is None:
            self._progress.clear()
            await _race(self._clock, self._progress, deadline)
        self.stop()
        if runner is not None:
            with contextlib.suppress(FatalError):
                await runner
        elif self._running:
            await self._loop_done.wait()  # it returns at once: stop() woke it
        left = self.size
        log.info(
            "dispatcher_drained",
            left=left,
            in_flight=len(self._tasks),
            confirming=len(self._confirming),
        )
        return left

    async def wait_in_flight(self, timeout_s: float | None = None) -> bool:
        """Wait for the requests under way and their confirmations; True if none is left."""
        until = None if timeout_s is None else self._clock.monotonic() + timeout_s
        while self._under_way() and (until is None or self._clock.monotonic() < until):
            self._progress.clear()
            await _race(self._clock, self._progress, until)
        return not self._under_way()

    async def aclose(self) -> None:
        """Stop the loop and cancel requests under way and the waits for confirmations
        (their jobs keep no outcome: uncommitted, they are sent again after a restart)."""
        self.stop()
        tasks = [*self._tasks, *self._confirming]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- the loop's work -------------------------------------------------------------

    def _start_requests(self) -> None:
        now_wall = self._clock.now()
        self._scheduler.advance(self._clock.monotonic(), now_wall)
        while len(self._tasks) < self._max_concurrent and self._budget.can_start():
            request = self._scheduler.next_request(self._clock.monotonic(), now_wall)
            if request is None:
                break
            slot = self._budget.try_start()
            if slot is None:  # cannot happen after can_start(); stay safe regardless
                break
            task = asyncio.create_task(self._send(request, slot))
            self._tasks[task] = request
            task.add_done_callback(self._request_done)
        self._report(self._scheduler.pop_finished())
        self._update_gauges()

    def _wake_at(self) -> float | None:
        now_mono, now_wall = self._clock.monotonic(), self._clock.now()
        times = []
        if (due := self._scheduler.next_wakeup(now_mono, now_wall)) is not None:
            times.append(due)
        # None: only a request in flight can free a slot, and its end wakes the loop
        free = self._budget.next_start_at()
        can_send = len(self._tasks) < self._max_concurrent and self._scheduler.has_ready()
        if can_send and free is not None:
            times.append(free)
        return min(times, default=None)

    async def _send(self, request: Request, slot: Slot) -> None:
        error: ConsumerError | None = None
        confirmation: Confirmation | None = None
        try:
            confirmation = await self._provider.send(request.envelopes)
        except ConsumerError as exc:
            error = exc
        except Exception as exc:  # a provider bug: retrying it would only spend the budget
            log.exception("push_send_crashed", provider=self._provider.name)
            error = UnexpectedFailure(f"{self._provider.name} send failed unexpectedly: {exc!r}")
        finally:
            self._budget.finish(slot)  # cancelled too: it may have arrived by now
        if confirmation is None:
            self._settle(request, error)
            return
        provider = self._provider.name
        self._metrics.request_recipients.labels(provider).observe(request.recipients)
        self._metrics.requests.labels(provider, "sent").inc()
        log.info("push_accepted", provider=provider, **_describe(request))
        task = asyncio.create_task(self._confirm(request, confirmation))
        self._confirming[task] = request
        task.add_done_callback(self._request_done)

    async def _confirm(self, request: Request, confirmation: Confirmation) -> None:
        try:
            verdict = await confirmation
        except asyncio.CancelledError:
            raise  # the provider or the dispatcher is closing: the jobs keep no outcome
        except Exception:  # a provider bug: the provider took the pushes, so they may show
            log.exception("push_confirmation_crashed", provider=self._provider.name)
            verdict = Verdict(unconfirmed=frozenset(e.job.event_id for e in request.entries))
        self._scheduler.on_confirmed(request, verdict)
        fields = _describe(request)
        if verdict.refused or verdict.unconfirmed:
            log.warning(
                "push_not_confirmed",
                provider=self._provider.name,
                refused=len(verdict.refused),
                unconfirmed=len(verdict.unconfirmed),
                **fields,
            )
        else:
            log.info("push_confirmed", provider=self._provider.name, **fields)
        self._after_results()

    def _request_done(self, task: asyncio.Task[None]) -> None:
        # Waiters count the tasks: wake them once this one is gone, not when it settled.
        request = self._tasks.pop(task, None)
        if request is None:
            request = self._confirming.pop(task, None)
        if not task.cancelled() and (crash := task.exception()) is not None:
            # A bug in settling it: its jobs keep no outcome (their offsets stay
            # uncommitted), and nothing else would ever say why.
            fields = _describe(request) if request is not None else {}
            log.error("push_settle_crashed", provider=self._provider.name, exc_info=crash, **fields)
        self._progress.set()
        self._wake.set()

    def _under_way(self) -> int:
        return len(self._tasks) + len(self._confirming)

    def _carrying(self, partitions: set[Partition]) -> int:
        """Requests in flight or awaiting confirmation carrying a job of these partitions."""
        return sum(
            any(entry.partition in partitions for entry in request.entries)
            for request in [*self._tasks.values(), *self._confirming.values()]
        )

    def _settle(self, request: Request, error: ConsumerError | None) -> None:
        provider = self._provider.name
        self._metrics.request_recipients.labels(provider).observe(request.recipients)
        fields = _describe(request)
        if error is None:
            self._metrics.requests.labels(provider, "sent").inc()
            self._scheduler.on_sent(request)
            log.info("push_sent", provider=provider, **fields)
        elif isinstance(error, FatalError):
            self._metrics.requests.labels(provider, error.reason).inc()
            log.error("push_provider_fatal", provider=provider, error=str(error), **fields)
            self._fatal = error
        else:
            self._on_failure(request, error, fields)
        self._after_results()

    def _after_results(self) -> None:
        """Outcomes decided: report them, and wake the loop and whoever waits."""
        self._report(self._scheduler.pop_finished())
        self._progress.set()
        self._wake.set()

    def _on_failure(
        self, request: Request, error: ConsumerError, fields: dict[str, object]
    ) -> None:
        provider, now = self._provider.name, self._clock.monotonic()
        self._metrics.requests.labels(provider, error.reason).inc()
        if isinstance(error, RateLimited) and error.retry_after is not None:
            self._budget.hold_until(now + error.retry_after)
        delay = self._scheduler.on_failed(request, error, now, self._clock.now())
        if delay is not None:
            self._metrics.retries.labels(provider, error.reason).inc()
            log.warning(
                "push_retry_scheduled",
                provider=provider,
                reason=error.reason,
                error=str(error),
                delay_s=round(delay, 3),
                **fields,
            )

    def _report(self, finished: list[Finished]) -> None:
        """Hand each outcome to the sink, which logs it once with the event's context."""
        if finished:
            self._progress.set()  # drain() ends when nothing is held, whatever ended it
        for item in finished:
            job = item.job
            try:
                self._sink.record(
                    job.origin,
                    item.outcome,
                    event_id=job.event_id,
                    event_type=job.event_type,
                    reason=item.reason,
                    error=item.error,
                    variant=job.variant if item.outcome is Outcome.SENT else None,
                )
            except Exception:  # the sink's bug must not lose the other outcomes
                log.exception("outcome_sink_failed", event_id=job.event_id)

    def _update_gauges(self) -> None:
        provider = self._provider.name
        self._metrics.pending.set(self.size)
        self._metrics.budget_used.labels(provider).set(self._budget.used())
        for push_class in PushClass:
            age = self.oldest_age(push_class)
            self._metrics.oldest_pending_age.labels(push_class.value).set(age or 0.0)


def _describe(request: Request) -> dict[str, object]:
    return {
        "rules": sorted({entry.job.push.rule_id for entry in request.entries}),
        "push_class": request.push_class.value,
        "messages": len(request.envelopes),
        "recipients": request.recipients,
        "jobs": len(request.entries),
        "attempt": request.attempt,
        "variants": sorted({entry.job.variant.value for entry in request.entries}),
    }


async def _race(clock: Clock, event: asyncio.Event, until: float | None) -> None:
    """Wait for the event, or until the monotonic time ``until`` (whichever first)."""
    if until is None:
        await event.wait()
        return
    delay = until - clock.monotonic()
    if delay <= 0 or event.is_set():
        await asyncio.sleep(0)
        return
    waiter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future(clock.sleep(delay))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        sleeper.cancel()
