"""KafkaSource when the broker hangs, dies or loses records: a broker of its own per session."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from structlog.testing import capture_logs

from consumer.clock import FakeClock
from consumer.kafka.source import KafkaSource
from consumer.local.kafka import LocalKafka
from consumer.metrics import Metrics
from consumer.settings import KafkaSettings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

FAST = {"heartbeat_interval_ms": 200, "retry_backoff_ms": 50, "metadata_max_age_ms": 60_000}
DEADLINE_S = 30


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture(loop_scope="session")
async def admin(faulty_kafka: LocalKafka) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=faulty_kafka.bootstrap_servers)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def _create_topic(admin: AIOKafkaAdminClient, name: str, partitions: int = 1) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:  # a topic just deleted may take a moment to be gone for good
        response = await admin.create_topics([NewTopic(name, partitions, 1)])
        if all(code == 0 for _, code, *_ in response.topic_errors):
            break
        assert time.monotonic() < deadline, f"cannot create {name}: {response.topic_errors}"
        await asyncio.sleep(0.2)
    while True:
        (described,) = await admin.describe_topics([name])
        if described["error_code"] == 0 and all(p["leader"] >= 0 for p in described["partitions"]):
            return
        assert time.monotonic() < deadline, f"{name} has no leader"
        await asyncio.sleep(0.05)


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


def _source(
    bootstrap: str, topic: str, group: str, *, settings: dict[str, Any] | None = None, **kwargs: Any
) -> KafkaSource:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap,
        topics=[topic],
        group_id=group,
        session_timeout_ms=6000,
        **(settings or {}),
    )
    kwargs.setdefault("consumer_options", FAST)
    return KafkaSource(settings, Metrics(), FakeClock(), **kwargs)


async def _poll(source: KafkaSource, until: Callable[[list[Any]], bool]) -> list[Any]:
    records: list[Any] = []
    deadline = time.monotonic() + DEADLINE_S
    while not until(records):
        assert time.monotonic() < deadline, f"gave up; got {[r.offset for r in records]}"
        records += await source.getmany(200)
    return records


async def test_getmany_returns_while_a_rebalance_cannot_finish(
    faulty_kafka: LocalKafka, admin: AIOKafkaAdminClient
) -> None:
    """aiokafka's getmany waits for the next assignment without a timeout: a
    rebalance the broker never completes would keep the loop from seeing stop."""
    bootstrap = faulty_kafka.bootstrap_servers
    topic, group = _name("hang"), _name("group")
    await _create_topic(admin, topic, partitions=2)
    frozen = asyncio.Event()

    def freeze(_revoked: object) -> None:  # in the middle of the rebalance
        faulty_kafka.freeze()
        frozen.set()

    source = _source(bootstrap, topic, group, on_revoked=freeze)
    async with source:
        await _poll(source, lambda _: len(source.assigned) == 2)
        other = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group)
        # A second member: the group rebalances (its start() waits for the broker too).
        joining = asyncio.create_task(other.start())
        try:
            await asyncio.wait_for(frozen.wait(), DEADLINE_S)
            started = time.monotonic()
            await asyncio.wait_for(source.getmany(200), timeout=5)
            assert time.monotonic() - started < 2, "getmany keeps to its timeout"
        finally:
            faulty_kafka.thaw()
            await joining
            await other.stop()


async def test_records_below_the_committed_offset_after_a_reset_are_handed_out(
    faulty_kafka: LocalKafka, admin: AIOKafkaAdminClient
) -> None:
    """The log ends below the group's committed offset (an unclean leader election
    lost its tail, or the topic was recreated and the old commit survived): Kafka
    resets the position to the earliest record, and those are new records to handle."""
    bootstrap = faulty_kafka.bootstrap_servers
    topic, group = _name("reset"), _name("group")
    tp = TopicPartition(topic, 0)
    await _create_topic(admin, topic)
    await _produce(bootstrap, topic, [b"new-%d" % i for i in range(3)])
    await _commit_beyond_the_end(bootstrap, group, tp, offset=10)

    async with _source(bootstrap, topic, group) as source:
        records = await _poll(source, lambda got: len(got) >= 3)
        for record in records:
            source.done(topic, 0, record.offset)
        await source.commit()

    assert [(r.offset, r.value) for r in records] == [(0, b"new-0"), (1, b"new-1"), (2, b"new-2")]
    committed = await admin.list_consumer_group_offsets(group, partitions=[tp])
    assert committed[tp].offset == 3, "the commit follows the log as it is now"


async def _commit_beyond_the_end(
    bootstrap: str, group: str, tp: TopicPartition, offset: int
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(offset, "o1:BA")})  # 12 was finished too
    finally:
        await consumer.stop()


@pytest.mark.parametrize(
    ("request_timeout_ms", "between_s"),
    [(40_000, 0.0), (2_000, 2.5)],
    ids=["one connection", "a new connection"],
)
async def test_a_timed_out_commit_never_lands_after_a_newer_one(
    faulty_kafka: LocalKafka, admin: AIOKafkaAdminClient, request_timeout_ms: int, between_s: float
) -> None:
    """The first commit times out while the broker hangs, a second one is made; when
    the broker answers again, the group's offset is the second's, never the first's.
    (With a short request timeout aiokafka drops the hung connection, so the two
    would travel on different connections.)"""
    bootstrap = faulty_kafka.bootstrap_servers
    topic, group = _name("order"), _name("group")
    tp = TopicPartition(topic, 0)
    await _create_topic(admin, topic)
    await _produce(bootstrap, topic, [b"%d" % i for i in range(6)])
    options = {**FAST, "request_timeout_ms": request_timeout_ms}
    source = _source(bootstrap, topic, group, consumer_options=options, commit_timeout_s=1.0)
    async with source:
        records = await _poll(source, lambda got: len(got) >= 6)
        faulty_kafka.freeze()
        try:
            source.done(topic, 0, records[0].offset)
            await source.commit()  # offset 1: times out
            await asyncio.sleep(between_s)
            for record in records[1:]:
                source.done(topic, 0, record.offset)
            await source.commit()  # offset 6: times out too
        finally:
            faulty_kafka.thaw()
        deadline = time.monotonic() + DEADLINE_S
        while (await _committed_offset(admin, group, tp)) != 6:
            assert time.monotonic() < deadline, "the newer commit never landed"
            await source.commit()
            await asyncio.sleep(0.2)
        for _ in range(10):  # and nothing older lands afterwards
            await asyncio.sleep(0.3)
            assert await _committed_offset(admin, group, tp) == 6


async def _committed_offset(admin: AIOKafkaAdminClient, group: str, tp: TopicPartition) -> int:
    found = await admin.list_consumer_group_offsets(group, partitions=[tp])
    return found[tp].offset if tp in found else -1


async def test_a_topic_created_after_start_is_named_missing_then_read_within_the_refresh(
    faulty_kafka: LocalKafka, admin: AIOKafkaAdminClient
) -> None:
    """The 30 s bound of the poll is far below aiokafka's own refresh (5 minutes):
    the topic is found through KAFKA_METADATA_MAX_AGE_MS."""
    bootstrap = faulty_kafka.bootstrap_servers
    topic, group = _name("later"), _name("group")
    options = {k: v for k, v in FAST.items() if k != "metadata_max_age_ms"}
    source = _source(
        bootstrap, topic, group, settings={"metadata_max_age_ms": 1_000}, consumer_options=options
    )
    async with source:
        with capture_logs() as logs:
            await _poll(source, lambda _: bool(source.status.missing_topics))
        assert source.status.missing_topics == {topic}
        assert source.status.problems() == [f"topics not in Kafka (read once created): {topic}"]
        missing = [line for line in logs if line["event"] == "kafka_topic_missing"]
        assert [line["topic"] for line in missing] == [topic]
        assert missing[0]["log_level"] == "warning"

        await _create_topic(admin, topic)
        await _produce(bootstrap, topic, [b"first"])
        with capture_logs() as logs:
            records = await _poll(source, lambda got: len(got) >= 1)

    assert [r.value for r in records] == [b"first"]
    assert source.status.missing_topics == frozenset()
    assert [line["topic"] for line in logs if line["event"] == "kafka_topic_found"] == [topic]
