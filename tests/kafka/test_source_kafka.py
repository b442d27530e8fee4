"""KafkaSource against a real broker: commits, restart skips, rebalances, pause."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from consumer.clock import FakeClock
from consumer.errors import SettingsError
from consumer.kafka.clients import client_kwargs
from consumer.kafka.offsets import decode_runs
from consumer.kafka.source import KafkaSource, consumer_kwargs
from consumer.metrics import Metrics
from consumer.settings import KafkaSettings, SecurityProtocol

# Quick rebalances: members notice a rebalance on their next heartbeat.
FAST = {"heartbeat_interval_ms": 200, "retry_backoff_ms": 50, "metadata_max_age_ms": 5_000}
DEADLINE_S = 45


@pytest_asyncio.fixture(loop_scope="session")
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


def _settings(bootstrap: str, topic: str, group: str, **extra: Any) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        topics=[topic],
        group_id=group,
        session_timeout_ms=6000,
        **extra,
    )


def _source(settings: KafkaSettings, **kwargs: Any) -> KafkaSource:
    return KafkaSource(settings, Metrics(), FakeClock(), consumer_options=FAST, **kwargs)


async def _produce(producer: AIOKafkaProducer, topic: str, partition: int, count: int) -> None:
    for i in range(count):
        await producer.send_and_wait(topic, f"{partition}-{i}".encode(), partition=partition)


async def _collect(source: KafkaSource, until: Callable[[list[Any]], bool]) -> list[Any]:
    """Poll until ``until(records)``; a bounded loop that fails with what it saw."""
    records: list[Any] = []
    deadline = time.monotonic() + DEADLINE_S
    while not until(records):
        assert time.monotonic() < deadline, f"gave up; got {_offsets(records)}"
        records += await source.getmany(200)
    return records


async def _collect_both(
    a: KafkaSource, b: KafkaSource, until: Callable[[list[Any], list[Any]], bool]
) -> tuple[list[Any], list[Any]]:
    """Poll two members of one group together (both must poll to rebalance quickly)."""
    got_a: list[Any] = []
    got_b: list[Any] = []
    deadline = time.monotonic() + DEADLINE_S
    while not until(got_a, got_b):
        assert time.monotonic() < deadline, f"gave up; got {_offsets(got_a)} {_offsets(got_b)}"
        more_a, more_b = await asyncio.gather(a.getmany(200), b.getmany(200))
        got_a += more_a
        got_b += more_b
    return got_a, got_b


def _settled(source: KafkaSource, partitions: int) -> bool:
    """Assigned ``partitions`` partitions, and the assignment listener has finished."""
    return len(source.assigned) == partitions and source.book.partitions == source.assigned


def _offsets(records: list[Any]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in records]


async def _committed(
    admin: AIOKafkaAdminClient, group: str, tp: TopicPartition
) -> tuple[int, str] | None:
    found = await admin.list_consumer_group_offsets(group, partitions=[tp])
    meta = found.get(tp)
    return None if meta is None or meta.offset < 0 else (meta.offset, meta.metadata)


@pytest.mark.kafka
async def test_restart_resends_only_what_was_not_finished(
    kafka_bootstrap: str,
    topic_factory: Any,
    producer: AIOKafkaProducer,
    kafka_admin: AIOKafkaAdminClient,
    unique_name: Callable[[str], str],
) -> None:
    topic = await topic_factory(partitions=1)
    group = unique_name("group")
    tp = TopicPartition(topic, 0)
    await _produce(producer, topic, 0, 10)
    settings = _settings(kafka_bootstrap, topic, group)

    async with _source(settings) as first:
        records = await _collect(first, lambda got: len(got) >= 10)
        assert [r.offset for r in records] == list(range(10))
        for offset in (8, 0, 4, 2, 1, 7, 5):  # out of order; 3, 6 and 9 stay unfinished
            first.done(topic, 0, offset)
        await first.commit()
        assert first.ready

    committed = await _committed(kafka_admin, group, tp)
    assert committed is not None
    offset, metadata = committed
    assert offset == 3
    assert decode_runs(3, metadata) == [(4, 6), (7, 9)]

    await _produce(producer, topic, 0, 1)  # offset 10: marks the end of what comes again
    async with _source(settings) as second:
        again = await _collect(second, lambda got: any(r.offset == 10 for r in got))
    assert [r.offset for r in again] == [3, 6, 9, 10]


@pytest.mark.kafka
async def test_rebalance_commits_on_revoke_and_the_new_owner_skips_finished(
    kafka_bootstrap: str,
    topic_factory: Any,
    producer: AIOKafkaProducer,
    unique_name: Callable[[str], str],
) -> None:
    topic = await topic_factory(partitions=2)
    group = unique_name("group")
    both = {TopicPartition(topic, 0), TopicPartition(topic, 1)}
    for partition in (0, 1):
        await _produce(producer, topic, partition, 6)
    settings = _settings(kafka_bootstrap, topic, group)
    revoked: list[set[TopicPartition]] = []

    async with _source(settings, on_revoked=revoked.append) as first:
        await _collect(first, lambda got: len(got) >= 12)
        for partition in (0, 1):
            for offset in (0, 1, 3, 4, 5):  # offset 2 of each partition stays unfinished
                first.done(topic, partition, offset)
        # No explicit commit: the revoke listener commits what is finished.

        async with _source(settings) as second:
            mine, theirs = await _collect_both(
                first, second, lambda *_: _settled(first, 1) and _settled(second, 1)
            )
            assert revoked[0] == both, "the first member gave up everything it had"
            assert first.assigned | second.assigned == both
            for partition in (0, 1):
                await _produce(producer, topic, partition, 1)  # offset 6 ends each partition
            more_mine, more_theirs = await _collect_both(
                first,
                second,
                lambda a, b: (
                    any(r.offset == 6 for r in mine + a) and any(r.offset == 6 for r in theirs + b)
                ),
            )
            (kept,) = first.assigned
            (given,) = second.assigned

    assert _offsets(mine + more_mine) == [(kept.partition, 2), (kept.partition, 6)]
    assert _offsets(theirs + more_theirs) == [(given.partition, 2), (given.partition, 6)]


@pytest.mark.kafka
async def test_pause_survives_a_rebalance(
    kafka_bootstrap: str,
    topic_factory: Any,
    producer: AIOKafkaProducer,
    unique_name: Callable[[str], str],
) -> None:
    topic = await topic_factory(partitions=2)
    group = unique_name("group")
    settings = _settings(kafka_bootstrap, topic, group)

    async with _source(settings) as paused_member:
        await _collect(paused_member, lambda _: _settled(paused_member, 2))
        paused_member.pause_all()
        assert paused_member.paused == paused_member.assigned
        for partition in (0, 1):
            await _produce(producer, topic, partition, 3)

        async with _source(settings) as other:
            seen_while_paused, theirs = await _collect_both(
                paused_member,
                other,
                lambda _, got: _settled(paused_member, 1) and _settled(other, 1) and len(got) >= 3,
            )
            assert paused_member.paused == paused_member.assigned, "pause lost on rebalance"
            # The other member read its whole partition; the paused one got nothing.
            assert seen_while_paused == []
            assert {r.partition for r in theirs} == {tp.partition for tp in other.assigned}

            paused_member.resume_all()
            assert paused_member.paused == frozenset()
            mine = await _collect(paused_member, lambda got: len(got) >= 3)
            assert {r.partition for r in mine} == {tp.partition for tp in paused_member.assigned}


@pytest.mark.kafka
async def test_metadata_over_the_limit_pauses_the_partition_until_it_shrinks(
    kafka_bootstrap: str,
    topic_factory: Any,
    producer: AIOKafkaProducer,
    kafka_admin: AIOKafkaAdminClient,
    unique_name: Callable[[str], str],
) -> None:
    topic = await topic_factory(partitions=1)
    group = unique_name("group")
    tp = TopicPartition(topic, 0)
    await _produce(producer, topic, 0, 100)
    metrics = Metrics()
    settings = _settings(kafka_bootstrap, topic, group, commit_metadata_max_bytes=64)

    source = KafkaSource(settings, metrics, FakeClock(), consumer_options=FAST)
    async with source:
        await _collect(source, lambda got: len(got) >= 100)
        for offset in range(1, 100, 2):  # offset 0 stuck: 50 runs above it, 2 bytes each
            source.done(topic, 0, offset)
        await source.commit()
        assert source.paused == {tp}
        assert metrics.value("kafka_paused_partitions") == 1

        committed = await _committed(kafka_admin, group, tp)
        assert committed is not None
        offset, metadata = committed
        assert offset == 0
        assert 0 < len(metadata) <= 64
        assert (
            decode_runs(0, metadata)
            == [(o, o + 1) for o in range(1, 100, 2)][: len(decode_runs(0, metadata))]
        )

        await _produce(producer, topic, 0, 2)  # offsets 100, 101
        for _ in range(3):
            assert await source.getmany(200) == [], "a partition over the limit is not fetched"

        for offset in range(0, 100, 2):
            source.done(topic, 0, offset)
        await source.commit()
        assert source.paused == frozenset()
        assert metrics.value("kafka_paused_partitions") == 0
        assert await _committed(kafka_admin, group, tp) == (100, "")
        more = await _collect(source, lambda got: len(got) >= 2)
        assert [r.offset for r in more] == [100, 101]


@pytest.mark.kafka
async def test_progress_time_and_lag_are_reported(
    kafka_bootstrap: str,
    topic_factory: Any,
    producer: AIOKafkaProducer,
    unique_name: Callable[[str], str],
) -> None:
    topic = await topic_factory(partitions=1)
    await _produce(producer, topic, 0, 5)
    metrics = Metrics()
    clock = FakeClock()
    settings = _settings(kafka_bootstrap, topic, unique_name("group"))
    source = KafkaSource(settings, metrics, clock, consumer_options=FAST)
    async with source:
        assert not source.ready, "not ready before the group is joined"
        records: list[Any] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(records) < 2:
            assert time.monotonic() < deadline
            records += await source.getmany(200, max_records=1)
        assert source.ready
        await clock.advance(30)
        await source.getmany(0, max_records=1)
        assert source.last_progress == clock.monotonic()
        await source.commit()
        partition = source.book.get(TopicPartition(topic, 0))
        assert partition is not None
        assert partition.next_fetch is not None
        lag = metrics.value("kafka_consumer_lag", topic=topic, partition="0")
        assert lag == 5 - partition.next_fetch > 0
    assert not source.ready


def test_security_settings_reach_the_client() -> None:
    sasl = KafkaSettings(
        security_protocol=SecurityProtocol.SASL_SSL,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="push",
        sasl_password="s3cret",
    )
    kwargs = client_kwargs(sasl)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "push"
    assert kwargs["sasl_plain_password"] == "s3cret"
    assert kwargs["ssl_context"].check_hostname

    plain = client_kwargs(
        KafkaSettings(
            security_protocol=SecurityProtocol.SASL_PLAINTEXT,
            sasl_username="push",
            sasl_password="x",
        )
    )
    assert plain["sasl_mechanism"] == "PLAIN"
    assert "ssl_context" not in plain


def test_incomplete_security_settings_say_which_variables() -> None:
    with pytest.raises(SettingsError, match="KAFKA_SASL_USERNAME"):
        client_kwargs(KafkaSettings(security_protocol=SecurityProtocol.SASL_PLAINTEXT))
    with pytest.raises(SettingsError, match="KAFKA_SSL_CAFILE"):
        client_kwargs(
            KafkaSettings(security_protocol=SecurityProtocol.SSL, ssl_cafile="/nonexistent/ca.pem")
        )


def test_consumer_commits_only_by_hand_and_uses_static_membership_when_set() -> None:
    kwargs = consumer_kwargs(KafkaSettings(group_instance_id="replica-1"))
    assert kwargs["enable_auto_commit"] is False
    assert kwargs["auto_offset_reset"] == "earliest"
    assert kwargs["group_instance_id"] == "replica-1"
    assert kwargs["heartbeat_interval_ms"] * 3 <= kwargs["session_timeout_ms"]
