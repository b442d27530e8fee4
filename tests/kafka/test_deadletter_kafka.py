"""Dead-letter records on a real broker: original bytes and headers, plus the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from testkit import read_records

from consumer.clock import FakeClock
from consumer.kafka.deadletter import (
    KEY_MAX_BYTES,
    MESSAGE_MAX_BYTES,
    RECORD_MAX_BYTES,
    DeadLetterRecord,
    DeadLetterWriter,
    build_producer,
    dead_letter_headers,
    fit,
    truncate_utf8,
)
from consumer.metrics import Metrics
from consumer.push import Origin
from consumer.settings import KafkaSettings

BIG = 4 * 1024 * 1024  # fetch_max_bytes for the two-megabyte record


def test_truncation_keeps_whole_characters_within_the_byte_limit() -> None:
    text = "Шаблон не отрисован: " * 200
    cut = truncate_utf8(text, MESSAGE_MAX_BYTES)
    assert len(cut.encode("utf-8")) <= MESSAGE_MAX_BYTES
    assert cut.endswith("…")
    assert text.startswith(cut[:-1])
    assert truncate_utf8("short", MESSAGE_MAX_BYTES) == "short"


@pytest_asyncio.fixture(loop_scope="session")
async def writer_and_topic(
    kafka_bootstrap: str, topic_factory: Any
) -> AsyncIterator[tuple[DeadLetterWriter, str, Metrics]]:
    topic = await topic_factory(prefix="dlq", partitions=1)
    metrics = Metrics()
    producer = build_producer(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    await producer.start()
    try:
        yield DeadLetterWriter(producer, topic, metrics, clock=FakeClock()), topic, metrics
    finally:
        await producer.stop()


@pytest.mark.kafka
async def test_dead_letter_record_carries_original_bytes_and_all_headers(
    kafka_bootstrap: str, writer_and_topic: tuple[DeadLetterWriter, str, Metrics]
) -> None:
    writer, topic, metrics = writer_and_topic
    origin = Origin(
        topic="orders",
        partition=2,
        offset=41,
        key=b"order-17",
        value=b'{"event_id": "e-1", \xff not json',
        headers=(("traceparent", b"00-abc-01"), ("dlq.reason", b"stale"), ("raw", b"\x00\xff")),
        timestamp_ms=1_700_000_000_000,
    )
    long_message = "Ошибка разбора JSON: " * 100

    await writer.write(
        origin,
        reason="invalid_event",
        error_class="InvalidEvent",
        message=long_message,
        event_id="e-1",
    )

    (record,) = await read_records(kafka_bootstrap, topic, 1, timeout_s=30)
    assert record.key == origin.key
    assert record.value == origin.value
    headers = list(record.headers)
    assert headers[:2] == [("traceparent", b"00-abc-01"), ("raw", b"\x00\xff")]
    ours = {name: value.decode("utf-8") for name, value in headers[2:]}
    assert ours == {
        "dlq.reason": "invalid_event",
        "dlq.error_class": "InvalidEvent",
        "dlq.message": truncate_utf8(long_message, MESSAGE_MAX_BYTES),
        "dlq.source_topic": "orders",
        "dlq.source_partition": "2",
        "dlq.source_offset": "41",
        "dlq.source_timestamp_ms": "1700000000000",
        "dlq.event_id": "e-1",
        "dlq.time": "2026-11-22T09:00:00.000+00:00",
    }
    assert len(headers) == len({name for name, _ in headers}), "each header name once"
    assert metrics.value("push_dead_letters_total", reason="invalid_event") == 1


def _ours(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode() for name, value in headers if name.startswith("dlq.")}


def _letter(value: bytes, *extra: tuple[str, bytes]) -> DeadLetterRecord:
    origin = Origin("orders", 0, 7, b"order-1", value, extra, 1)
    headers = dead_letter_headers(
        origin,
        reason="too_large",
        error_class="InvalidEvent",
        message="big",
        event_id="e-9",
        time="t",
    )
    return DeadLetterRecord(origin.key, origin.value, headers)


@pytest.mark.parametrize(
    "value_bytes", [999_000, RECORD_MAX_BYTES - 100, 1_048_000, 2 * 1024 * 1024, 10 * 1024 * 1024]
)
def test_a_dead_letter_too_large_for_kafka_is_cut_to_fit_and_says_so(value_bytes: int) -> None:
    letter = _letter(b"v" * value_bytes, ("trace", b"t"))

    fitted = fit(letter)

    assert fitted.size <= RECORD_MAX_BYTES
    assert _ours(fitted.headers).items() >= _ours(letter.headers).items(), "every dlq header kept"
    if letter.size <= RECORD_MAX_BYTES:
        assert fitted is letter
        return
    assert fitted.key == letter.key
    assert fitted.value == letter.value[: len(fitted.value or b"")]  # type: ignore[index]
    assert len(fitted.value or b"") > RECORD_MAX_BYTES - 2_000, "as much of the value as fits"
    assert ("trace", b"t") in fitted.headers
    cut = _ours(fitted.headers)["dlq.truncated"]
    assert (
        cut
        == f"value cut from {value_bytes} to {len(fitted.value or b'')} bytes to fit a Kafka record"
    )


def test_original_headers_that_crowd_out_the_value_are_dropped_and_a_long_key_cut() -> None:
    letter = _letter(b"v" * 600_000, ("blob", b"b" * 700_000), ("trace", b"t"))
    letter = DeadLetterRecord(b"k" * 5_000, letter.value, letter.headers)

    fitted = fit(letter)

    assert fitted.size <= RECORD_MAX_BYTES
    assert [name for name, _ in fitted.headers if not name.startswith("dlq.")] == []
    assert fitted.value == letter.value
    assert fitted.key == b"k" * KEY_MAX_BYTES
    assert _ours(fitted.headers)["dlq.truncated"] == (
        "key cut from 5000 to 1024 bytes; 2 original headers dropped to fit a Kafka record"
    )


@pytest.mark.kafka
async def test_a_two_megabyte_record_is_dead_lettered_cut_and_the_next_one_whole(
    kafka_bootstrap: str, writer_and_topic: tuple[DeadLetterWriter, str, Metrics]
) -> None:
    writer, topic, _ = writer_and_topic
    big = Origin("orders", 0, 5, b"k", b"[" + b"1," * 1_048_576 + b"1]", (("trace", b"t"),), 1)
    small = Origin("orders", 0, 6, b"k", b"{}", (), 2)

    await writer.write(
        big, reason="too_large", error_class="InvalidEvent", message="big", event_id=None
    )
    await writer.write(small, reason="not_an_object", error_class="X", message="m", event_id=None)

    first, second = await read_records(kafka_bootstrap, topic, 2, timeout_s=30, fetch_max_bytes=BIG)
    assert big.value is not None
    assert first.value == big.value[: len(first.value)]
    assert _ours(first.headers)["dlq.source_offset"] == "5"
    assert _ours(first.headers)["dlq.truncated"].startswith(f"value cut from {len(big.value)} to ")
    assert second.value == b"{}"
    assert "dlq.truncated" not in _ours(second.headers)


@pytest.mark.kafka
async def test_a_topic_taking_less_than_kafkas_default_gets_the_dead_letter_without_value(
    kafka_bootstrap: str, topic_factory: Any
) -> None:
    topic = await topic_factory(prefix="dlq", partitions=1, configs={"max.message.bytes": "20000"})
    producer = build_producer(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    await producer.start()
    try:
        writer = DeadLetterWriter(producer, topic, Metrics(), clock=FakeClock())
        origin = Origin("orders", 1, 9, b"k", b"x" * 50_000, (("trace", b"t"),), 1)
        await writer.write(origin, reason="too_large", error_class="E", message="m", event_id="e-1")
    finally:
        await producer.stop()

    (record,) = await read_records(kafka_bootstrap, topic, 1, timeout_s=30)
    assert record.value is None
    assert record.key == b"k"
    headers = _ours(record.headers)
    assert (headers["dlq.reason"], headers["dlq.event_id"]) == ("too_large", "e-1")
    assert headers["dlq.truncated"].startswith(
        "value of 50000 bytes and original headers left out: the broker refused"
    )
