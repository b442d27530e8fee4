"""The outcome recorder: counted once, dead letters acknowledged before the offset is done."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from consumer.clock import FakeClock
from consumer.errors import InvalidEvent
from consumer.metrics import Metrics
from consumer.outcomes import OutcomeRecorder
from consumer.push import Origin, Outcome, Variant


class FlakyDeadLetters:
    """Fails the first ``failures`` writes, then takes every record."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[tuple[Origin, str]] = []

    async def write(
        self, origin: Origin, *, reason: str, error_class: str, message: str, event_id: str | None
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        self.written.append((origin, reason))


def origin(offset: int) -> Origin:
    return Origin(topic="orders", partition=0, offset=offset, value=b"{")


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_outcomes_are_counted_and_mark_the_offset_done_at_once() -> None:
    done: list[int] = []
    metrics = Metrics()
    recorder = OutcomeRecorder(
        mark_done=lambda o: done.append(o.offset),
        dead_letters=FlakyDeadLetters(0),
        metrics=metrics,
        clock=FakeClock(),
    )

    recorder.record(origin(1), Outcome.SENT, event_id="e1", event_type="bonus.accrued")
    recorder.record(origin(2), Outcome.SKIPPED, event_id="e2", event_type="bonus.accrued")

    assert done == [1, 2]
    assert metrics.value("push_events_total", event_type="bonus.accrued", outcome="sent") == 1
    assert recorder.sent_since_commit.is_set()


async def test_a_sent_push_says_which_text_it_went_out_with() -> None:
    metrics = Metrics()
    recorder = OutcomeRecorder(
        mark_done=lambda o: None,
        dead_letters=FlakyDeadLetters(0),
        metrics=metrics,
        clock=FakeClock(),
    )
    with capture_logs() as logged:
        recorder.record(
            origin(1),
            Outcome.SENT,
            event_id="e1",
            event_type="bonus.accrued",
            variant=Variant.SHARED,
        )
        recorder.record(
            origin(2),
            Outcome.SENT,
            event_id="e2",
            event_type="bonus.accrued",
            variant=Variant.PERSONAL,
        )
        recorder.record(origin(3), Outcome.EXPIRED, event_id="e3", event_type="bonus.accrued")
    assert [(line["event"], line.get("variant")) for line in logged] == [
        ("event_sent", "shared"),
        ("event_sent", "personal"),
        ("event_expired", None),
    ]
    for variant in ("shared", "personal"):
        labels = {"event_type": "bonus.accrued", "variant": variant}
        assert metrics.value("push_sent_variants_total", **labels) == 1


async def test_a_dead_letter_is_done_only_after_kafka_took_it_and_failures_back_off() -> None:
    clock, done, metrics = FakeClock(), [], Metrics()
    sink = FlakyDeadLetters(failures=3)
    recorder = OutcomeRecorder(
        mark_done=lambda o: done.append(o.offset),
        dead_letters=sink,
        metrics=metrics,
        clock=clock,
        retry_delay_s=1.0,
    )
    writer = asyncio.create_task(recorder.run())

    recorder.record(origin(7), Outcome.DEAD_LETTERED, error=InvalidEvent("invalid_json", "bad"))
    await settle()
    assert done == []
    assert recorder.dead_letters_waiting == 1, "the record being written still counts"
    await clock.advance(1.0)  # first retry after 1 s, the next after 2 s, then 4 s
    await clock.advance(2.0)
    assert recorder.failing_for(clock.monotonic()) == 3.0
    assert sink.written == []

    await clock.advance(4.0)
    await settle()

    assert done == [7]
    assert sink.written == [(origin(7), "invalid_event")]
    assert recorder.dead_letters_waiting == 0
    assert recorder.failing_for(clock.monotonic()) == 0.0
    assert metrics.value("push_dead_letter_write_failures_total") == 3
    writer.cancel()
