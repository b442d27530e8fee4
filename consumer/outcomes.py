"""Where every event ends: counted, logged once, dead-lettered if needed, then committed.

``OutcomeRecorder`` is the dispatcher's and the consume loop's ``OutcomeSink``.
An outcome other than ``dead_lettered`` marks the offset finished at once; a
dead-lettered event is finished only after its dead-letter record is safely in
Kafka, so a crash in between re-reads the event instead of losing it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from consumer.clock import Clock
from consumer.errors import ConsumerError
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.push import Origin, Outcome, Variant

log = get_logger(__name__)

MarkDone = Callable[[Origin], None]
_LOG_EVENTS = {outcome: f"event_{outcome}" for outcome in Outcome}


class DeadLetterSink(Protocol):
    """What the recorder needs from the dead-letter writer (a seam for tests)."""

    async def write(
        self, origin: Origin, *, reason: str, error_class: str, message: str, event_id: str | None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class _DeadLetter:
    origin: Origin
    reason: str
    error_class: str
    message: str
    event_id: str | None


class OutcomeRecorder:
    def __init__(
        self,
        *,
        mark_done: MarkDone,
        dead_letters: DeadLetterSink,
        metrics: Metrics,
        clock: Clock,
        retry_delay_s: float = 1.0,
        max_retry_delay_s: float = 30.0,
    ) -> None:
        self._mark_done = mark_done
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._clock = clock
        self._retry_delay_s = retry_delay_s
        self._max_retry_delay_s = max_retry_delay_s
        self._queue: asyncio.Queue[_DeadLetter] = asyncio.Queue()
        self._unwritten = 0
        self._failing_since: float | None = None
        self.recorded = 0
        self.sent_since_commit = asyncio.Event()
        self._counters: dict[tuple[str, Outcome], Any] = {}
        self._variants: dict[tuple[str, Variant], Any] = {}

    def _counted(self, event_type: str, outcome: Outcome) -> Any:
        """The counter child for these labels (``labels()`` itself is slow per event)."""
        child = self._counters.get((event_type, outcome))
        if child is None:
            child = self._metrics.events.labels(event_type=event_type, outcome=outcome)
            self._counters[(event_type, outcome)] = child
        return child

    def _sent_as(self, event_type: str, variant: Variant) -> Any:
        child = self._variants.get((event_type, variant))
        if child is None:
            child = self._metrics.sent_variants.labels(event_type=event_type, variant=variant)
            self._variants[(event_type, variant)] = child
        return child

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
        self.recorded += 1
        self._counted(event_type or "unknown", outcome).inc()
        if variant is not None:
            self._sent_as(event_type or "unknown", variant).inc()
        # The event's identity goes in as fields, not contextvars: binding and
        # unbinding them costs more than the log line (this runs per event).
        fields: dict[str, object] = {
            "topic": origin.topic,
            "partition": origin.partition,
            "offset": origin.offset,
        }
        if event_id is not None:
            fields["event_id"] = event_id
        if event_type is not None:
            fields["event_type"] = event_type
        if why := reason or (error.reason if error else None):
            fields["reason"] = why
        if error is not None and (text := str(error)):
            fields["error"] = text
        if variant is not None:
            fields["variant"] = variant.value
        if outcome is Outcome.DEAD_LETTERED:
            log.warning("event_dead_lettered", **fields)
            self._unwritten += 1
            self._queue.put_nowait(
                _DeadLetter(
                    origin=origin,
                    reason=reason or (error.reason if error else "unknown"),
                    error_class=type(error).__name__ if error else "",
                    message=str(error) if error else (reason or ""),
                    event_id=event_id,
                )
            )
        else:
            log.info(_LOG_EVENTS[outcome], **fields)
            self._mark_done(origin)
            if outcome is Outcome.SENT:
                self.sent_since_commit.set()

    @property
    def dead_letters_waiting(self) -> int:
        """Dead letters not yet acknowledged by Kafka (queued or being written)."""
        return self._unwritten

    def failing_for(self, now: float) -> float:
        """Seconds dead-letter writes have been failing without a success (0 if not)."""
        return 0.0 if self._failing_since is None else now - self._failing_since

    async def run(self) -> None:
        """Write queued dead letters in order; retry a failed write until it lands."""
        while True:
            item = await self._queue.get()
            await self._write_until_done(item)
            self._queue.task_done()

    async def flush(self) -> None:
        await self._queue.join()

    async def _write_until_done(self, item: _DeadLetter) -> None:
        delay = self._retry_delay_s
        while True:
            try:
                await self._dead_letters.write(
                    item.origin,
                    reason=item.reason,
                    error_class=item.error_class,
                    message=item.message,
                    event_id=item.event_id,
                )
            except Exception as exc:  # the record must not be lost: retry until Kafka takes it
                self._metrics.dead_letter_failures.inc()
                if self._failing_since is None:
                    self._failing_since = self._clock.monotonic()
                log.error(
                    "dead_letter_write_failed",
                    error=repr(exc),
                    topic=item.origin.topic,
                    partition=item.origin.partition,
                    offset=item.origin.offset,
                    retry_in_s=delay,
                )
                await self._clock.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay_s)
                continue
            self._failing_since = None
            self._unwritten -= 1
            self._mark_done(item.origin)
            return
