"""Dead-letter records on a real broker: original bytes and headers, plus the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from testkit import read_records

from consumer.clock import FakeClock
from consumer.kafka.deadletter import (
    MESSAGE_MAX_BYTES,
    DeadLetterWriter,
    build_producer,
    truncate_utf8,
)
from consumer.metrics import Metrics
from consumer.push import Origin
from consumer.settings import KafkaSettings


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
