"""The outcome recorder: counted once, dead letters acknowledged before the offset is done."""

from __future__ import annotations

import asyncio
from typing import Any

from structlog.testing import capture_logs

from consumer.clock import FakeClock
from consumer.errors import InvalidEvent, ProviderUnavailable
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


class KeepingDeadLetters:
    """Takes every record and keeps everything it was given."""

    def __init__(self) -> None:
        self.written: list[dict[str, object]] = []

    async def write(
        self, origin: Origin, *, reason: str, error_class: str, message: str, event_id: str | None
    ) -> None:
        self.written.append(
            {
                "offset": origin.offset,
                "reason": reason,
                "error_class": error_class,
                "message": message,
                "event_id": event_id,
            }
        )


def recorder_for(dead_letters: object, done: list[int] | None = None) -> OutcomeRecorder:
    return OutcomeRecorder(
        mark_done=lambda o: done.append(o.offset) if done is not None else None,
        dead_letters=dead_letters,  # type: ignore[arg-type]
        metrics=Metrics(),
        clock=FakeClock(),
    )


def test_each_outcome_is_one_log_line_with_the_events_identity() -> None:
    recorder = recorder_for(KeepingDeadLetters())

    with capture_logs() as logs:
        recorder.record(
            origin(3), Outcome.SENT, event_id="e3", event_type="bonus.accrued", reason="sent"
        )
        recorder.record(origin(4), Outcome.EXPIRED, error=ProviderUnavailable("down"))
        recorder.record(
            origin(5), Outcome.DEAD_LETTERED, event_id="e5", error=InvalidEvent("k", "no id")
        )

    place = {"logger_name": "consumer.outcomes", "topic": "orders", "partition": 0}
    assert logs == [
        {
            "event": "event_sent",
            "log_level": "info",
            **place,
            "offset": 3,
            "event_id": "e3",
            "event_type": "bonus.accrued",
            "reason": "sent",
        },
        {
            "event": "event_expired",
            "log_level": "info",
            **place,
            "offset": 4,
            "reason": "provider_unavailable",  # the error's, when no reason is given
            "error": "down",
        },
        {
            "event": "event_dead_lettered",
            "log_level": "warning",
            **place,
            "offset": 5,
            "event_id": "e5",
            "reason": "invalid_event",
            "error": "no id",
        },
    ]
    assert recorder.recorded == 3


async def test_a_dead_letter_carries_the_reason_the_error_class_and_its_message() -> None:
    dead_letters, done = KeepingDeadLetters(), []
    recorder = recorder_for(dead_letters, done)
    writer = asyncio.create_task(recorder.run())

    recorder.record(origin(1), Outcome.DEAD_LETTERED, event_id="e1", error=InvalidEvent("k", "bad"))
    recorder.record(origin(2), Outcome.DEAD_LETTERED, reason="unaddressable")
    recorder.record(origin(3), Outcome.DEAD_LETTERED)
    assert recorder.dead_letters_waiting == 3
    await recorder.flush()
    assert recorder.dead_letters_waiting == 0
    writer.cancel()

    assert dead_letters.written == [
        {
            "offset": 1,
            "reason": "invalid_event",
            "error_class": "InvalidEvent",
            "message": "bad",
            "event_id": "e1",
        },
        {
            "offset": 2,
            "reason": "unaddressable",
            "error_class": "",
            "message": "unaddressable",
            "event_id": None,
        },
        {"offset": 3, "reason": "unknown", "error_class": "", "message": "", "event_id": None},
    ]
    assert done == [1, 2, 3]


def test_only_a_sent_push_calls_for_a_commit_and_unknown_types_are_counted_as_such() -> None:
    metrics = Metrics()
    recorder = OutcomeRecorder(
        mark_done=lambda o: None,
        dead_letters=KeepingDeadLetters(),
        metrics=metrics,
        clock=FakeClock(),
    )

    recorder.record(origin(1), Outcome.SKIPPED)
    recorder.record(origin(2), Outcome.SUPERSEDED, event_type="bonus.accrued")
    assert not recorder.sent_since_commit.is_set()
    recorder.record(origin(3), Outcome.SENT, event_type="bonus.accrued")
    recorder.record(origin(4), Outcome.SENT, event_type="bonus.accrued")

    assert recorder.sent_since_commit.is_set()
    assert metrics.value("push_events_total", event_type="unknown", outcome="skipped") == 1
    assert metrics.value("push_events_total", event_type="bonus.accrued", outcome="sent") == 2


async def test_failed_dead_letter_writes_back_off_from_one_second_to_thirty() -> None:
    clock = FakeClock()
    dead_letters = FlakyDeadLetters(failures=7)
    attempts: list[float] = []
    write = dead_letters.write

    async def timed(origin: Origin, **fields: Any) -> None:
        attempts.append(clock.monotonic() - 1_000)
        await write(origin, **fields)

    dead_letters.write = timed  # type: ignore[method-assign]
    recorder = OutcomeRecorder(
        mark_done=lambda o: None, dead_letters=dead_letters, metrics=Metrics(), clock=clock
    )
    writer = asyncio.create_task(recorder.run())
    with capture_logs() as logs:
        recorder.record(origin(9), Outcome.DEAD_LETTERED, error=InvalidEvent("k", "bad"))
        for _ in range(10):
            await settle()
            await clock.advance(30)
    writer.cancel()

    assert attempts == [0, 1, 3, 7, 15, 31, 61, 91]  # 1, 2, 4, 8, 16, then 30 s apart
    failures = [entry for entry in logs if entry["event"] == "dead_letter_write_failed"]
    assert failures[0] == {
        "logger_name": "consumer.outcomes",
        "event": "dead_letter_write_failed",
        "log_level": "error",
        "error": "ConnectionError('broker unreachable')",
        "topic": "orders",
        "partition": 0,
        "offset": 9,
        "retry_in_s": 1.0,
    }
    assert [entry["retry_in_s"] for entry in failures] == [1, 2, 4, 8, 16, 30, 30]
    assert dead_letters.written == [(origin(9), "invalid_event")]
