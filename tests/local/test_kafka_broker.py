"""The session's Kafka broker works the way the service relies on it.

Producing and consuming, creating topics, and committing an explicit offset with
a metadata string that a later member of the same group reads back.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from structlog.testing import capture_logs

from consumer.local.kafka import KafkaStartFailed, KafkaUnavailable, LocalKafka
from consumer.local.kafka_jars import ensure_jars, require_java
from consumer.local.kafka_process import dying_with_parent

pytestmark = pytest.mark.kafka

TopicFactory = Callable[..., Awaitable[str]]
NameFactory = Callable[[str], str]

_DEADLINE_S = 30.0


@asynccontextmanager
async def _producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@asynccontextmanager
async def _consumer(
    bootstrap: str, group: str | None, *topics: str
) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def _read(consumer: AIOKafkaConsumer, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """Up to ``count`` records, giving up after a deadline; never more than asked."""
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + _DEADLINE_S
    while len(records) < count and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=500, max_records=count - len(records))
        for batch in batches.values():
            records.extend(batch)
    return records


async def test_records_produced_to_each_partition_are_consumed_in_order(
    kafka_bootstrap: str, topic_factory: TopicFactory, unique_name: NameFactory
) -> None:
    topic = await topic_factory("roundtrip", partitions=3)
    sent = {(p, f"p{p}-{i}".encode()) for p in range(3) for i in range(5)}
    async with _producer(kafka_bootstrap) as producer:
        for partition, value in sorted(sent):
            await producer.send_and_wait(topic, value, key=b"k", partition=partition)

    async with _consumer(kafka_bootstrap, unique_name("group"), topic) as consumer:
        records = await _read(consumer, len(sent))

    assert {(r.partition, r.value) for r in records} == sent
    for partition in range(3):
        offsets = [r.offset for r in records if r.partition == partition]
        assert offsets == list(range(5))


async def test_admin_creates_topic_with_requested_partitions(
    kafka_admin: AIOKafkaAdminClient, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory("admin", partitions=5)

    (described,) = await kafka_admin.describe_topics([topic])

    assert described["error_code"] == 0
    assert sorted(p["partition"] for p in described["partitions"]) == [0, 1, 2, 3, 4]
    assert topic in await kafka_admin.list_topics()


async def test_committed_offset_and_metadata_survive_to_the_next_group_member(
    kafka_bootstrap: str,
    kafka_admin: AIOKafkaAdminClient,
    topic_factory: TopicFactory,
    unique_name: NameFactory,
) -> None:
    topic = await topic_factory("commit", partitions=1)
    tp = TopicPartition(topic, 0)
    group = unique_name("group")
    metadata = '{"v":1,"done":[5,7]}'
    async with _producer(kafka_bootstrap) as producer:
        for i in range(10):
            await producer.send_and_wait(topic, f"r{i}".encode(), partition=0)

    async with _consumer(kafka_bootstrap, group, topic) as first:
        assert [r.offset for r in await _read(first, 4)] == [0, 1, 2, 3]
        # An explicit offset map, never a bare commit(): see DESIGN.md.
        await first.commit({tp: OffsetAndMetadata(4, metadata)})
        assert await first.committed(tp) == 4

    # aiokafka's consumer.committed() returns only the offset; the metadata string
    # comes back through the admin client's OffsetFetch, which is public API and
    # works from any process (the service reads it when partitions are assigned).
    stored = await kafka_admin.list_consumer_group_offsets(group, partitions=[tp])
    assert stored[tp] == OffsetAndMetadata(4, metadata)

    async with _consumer(kafka_bootstrap, group, topic) as second:
        resumed = await _read(second, 1)
    assert [(r.offset, r.value) for r in resumed] == [(4, b"r4")]


def test_the_broker_command_runs_with_a_death_signal_set_before_its_exec() -> None:
    pr_get_pdeathsig = (
        "import ctypes; v = ctypes.c_int(); "
        "ctypes.CDLL(None).prctl(2, ctypes.byref(v), 0, 0, 0); print(v.value)"
    )
    command = dying_with_parent([sys.executable, "-c", pr_get_pdeathsig])

    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)

    assert (done.returncode, done.stdout.strip()) == (0, str(int(signal.SIGKILL))), done.stderr


def test_the_broker_is_not_started_when_its_parent_is_already_gone() -> None:
    command = dying_with_parent(["/bin/echo", "started"])
    parent_at = command.index(str(os.getpid()))
    command[parent_at] = "1"  # as if we had died and init had adopted the child

    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)

    assert done.returncode == 1
    assert done.stdout == ""
    assert "is gone; not starting it" in done.stderr


class _OutlivesSigkill:
    """A broker whose wait never succeeds; ``pid`` is a real process group to signal."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def wait(self, timeout: float | None = None) -> int:
        raise subprocess.TimeoutExpired("kafka.Kafka", timeout or 0)


def test_stop_removes_the_data_dir_even_when_the_broker_outlives_sigkill(tmp_path: Path) -> None:
    stand_in = subprocess.Popen(["sleep", "60"], start_new_session=True)
    data = tmp_path / "localkafka-data"
    data.mkdir()
    kafka = LocalKafka()
    kafka._data, kafka._process = data, _OutlivesSigkill(stand_in.pid)  # type: ignore[assignment]

    with capture_logs() as logs:
        kafka.stop(timeout_s=0.1)

    assert not data.exists()
    assert [entry["event"] for entry in logs] == ["kafka_broker_not_stopped"]
    assert stand_in.wait(timeout=10) in (-signal.SIGTERM, -signal.SIGKILL), "it was signalled"


def test_a_port_in_use_is_refused_before_anything_starts(taken_port: int) -> None:
    with pytest.raises(KafkaStartFailed, match=f"port {taken_port} on 127.0.0.1 is in use"):
        LocalKafka(port=taken_port).start()


@pytest.mark.timeout(150)
def test_kafka_start_prints_an_export_line_creates_topics_and_stops_on_ctrl_c() -> None:
    try:
        require_java()
        ensure_jars()
    except KafkaUnavailable as exc:
        pytest.skip(f"no local Kafka broker can start here: {exc}")
    command = [sys.executable, "-m", "consumer", "kafka", "start", "--port", "0"]
    broker = subprocess.Popen(
        [*command, "--topics", "orders, bonus", "--partitions", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert broker.stdout is not None
        line = broker.stdout.readline()  # printed once it serves clients and has the topics
        match = re.fullmatch(r"export KAFKA_BOOTSTRAP_SERVERS=(127\.0\.0\.1:\d+)\n", line)
        assert match, line
        topics = asyncio.run(_partition_counts(match[1], ["orders", "bonus"]))
        assert topics == {"orders": 2, "bonus": 2}
        broker.send_signal(signal.SIGINT)
        stdout, stderr = broker.communicate(timeout=60)
    finally:
        if broker.poll() is None:
            broker.kill()
            broker.wait(10)
    assert broker.returncode == 0, stderr
    assert stdout == "", "stdout carries only the line to eval"
    assert f"is running at {match[1]}; topics orders, bonus created" in stderr
    assert stderr.rstrip().endswith("Kafka stopped; its data is removed.")


async def _partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(topics)}
    finally:
        await admin.close()
