"""The service when its broker dies, hangs, lacks a topic or holds a huge record.

A broker of its own (``faulty_kafka``), killed, frozen and brought back; the
IMSHOP simulator counts what reached each customer. What is checked: nothing
lost, nothing sent twice without a crash, the grace period kept, and health
endpoints that tell the truth.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from e2e_harness import (
    Topics,
    committed_offsets,
    e2e_settings,
    encode,
    order,
    produce,
    running,
    total_outcomes,
    wait_committed,
    wait_until,
)
from test_service_resilience_e2e import service_env, service_process
from testkit import read_records

from consumer.app import Service
from consumer.local.kafka import LocalKafka
from consumer.local.simulators.imshop import ImshopSimulator

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

# Small windows, so each fault shows within seconds.
KAFKA = {"session_timeout_ms": 6000, "failing_after_s": 2.0, "metadata_max_age_ms": 1000}

Offsets = dict[TopicPartition, int]


@pytest_asyncio.fixture(loop_scope="session")
async def admin(faulty_kafka: LocalKafka) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=faulty_kafka.bootstrap_servers)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def create(admin: AIOKafkaAdminClient, name: str, partitions: int, **configs: str) -> str:
    response = await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
    assert all(code == 0 for _, code, *_ in response.topic_errors), response.topic_errors
    for _ in range(200):
        (described,) = await admin.describe_topics([name])
        if described["error_code"] == 0 and all(p["leader"] >= 0 for p in described["partitions"]):
            return name
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} has no leader")


@pytest_asyncio.fixture(loop_scope="session")
async def fault_topics(admin: AIOKafkaAdminClient, unique_name: Callable[[str], str]) -> Topics:
    return Topics(
        orders=await create(admin, unique_name("orders"), 3),
        bonus=await create(admin, unique_name("bonus"), 1),
        dlq=await create(admin, unique_name("dlq"), 1),
        group=unique_name("group"),
    )


def orders(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        order(f"{prefix}-{i}", f"79990{prefix}{i:04d}", f"{prefix}-{i}", "delivered", 1)
        for i in range(count)
    ]


def per_user(simulator: ImshopSimulator) -> Counter[str]:
    return Counter(user for push in simulator.pushes for user in push["userIds"])


def delivered(simulator: ImshopSimulator, events: list[dict[str, Any]]) -> bool:
    return {e["recipient"]["user_id"] for e in events} <= set(per_user(simulator))


async def send(bootstrap: str, topics: Topics, events: list[dict[str, Any]]) -> Offsets:
    """Produce ``events`` to the orders topic; the end offset of each partition written."""
    return await produce(bootstrap, [(topics.orders, None, encode(e)) for e in events])


def assert_each_told_once(simulator: ImshopSimulator, events: list[dict[str, Any]]) -> None:
    counts = per_user(simulator)
    assert set(counts) == {e["recipient"]["user_id"] for e in events}, "every customer told"
    assert set(counts.values()) == {1}, "no push twice without a crash"


def drain_env(
    bootstrap: str,
    topics: Topics,
    simulator: ImshopSimulator,
    *,
    per_window: tuple[int, float],
    grace_s: float,
) -> dict[str, str]:
    """A service process whose budget is ``per_window`` (requests, seconds)."""
    requests, window_s = per_window
    return {
        **service_env(bootstrap, topics, simulator.url),
        "IMSHOP_RATE_LIMIT_REQUESTS": str(requests),
        "IMSHOP_RATE_LIMIT_WINDOW_S": str(window_s),
        "IMSHOP_TIMEOUT_S": "1",
        "SHUTDOWN_GRACE_S": str(grace_s),
    }


async def finish_in_a_new_process(
    env: dict[str, str], log: Path, admin: AIOKafkaAdminClient, group: str, ends: Offsets
) -> list[dict[str, Any]]:
    """Start the service again until it has committed ``ends``, stop it; both processes'
    JSON log lines."""
    with service_process(env, log) as second:
        await wait_committed(admin, group, ends, timeout_s=90)
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait, 30) == 0
    return json_lines(log)


def json_lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


async def wait_until_committed(admin: AIOKafkaAdminClient, group: str, count: int) -> None:
    """Until the group has committed ``count`` records in all (bounded)."""
    deadline = time.monotonic() + 30
    while True:
        found = await committed_offsets(admin, group)
        if sum(offset for offset in found.values() if offset > 0) >= count:
            return
        assert time.monotonic() < deadline, f"{count} records never committed: {found}"
        await asyncio.sleep(0.1)


async def probe(port: int, path: str) -> tuple[int, str]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://127.0.0.1:{port}{path}", timeout=2)
    return answer.status_code, answer.json()["detail"]


async def wait_probe(
    port: int, path: str, status: int, *, saying: str = "", timeout_s: float = 60
) -> str:
    """Poll the probe until it answers ``status`` with ``saying`` in its detail; return it."""
    seen: tuple[int, str] = (0, "")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = await probe(port, path)
        if seen[0] == status and saying in seen[1]:
            return seen[1]
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} answered {seen} for {timeout_s} s, not {status}")


def client_lines(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.name.startswith("aiokafka"))


async def test_a_killed_broker_fails_readiness_and_nothing_is_lost_or_repeated(
    faulty_kafka: LocalKafka,
    admin: AIOKafkaAdminClient,
    fault_topics: Topics,
    imshop: ImshopSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bootstrap = faulty_kafka.bootstrap_servers
    before, after = orders("1", 10), orders("2", 10)
    settings = e2e_settings(bootstrap, fault_topics, imshop.url, kafka=KAFKA)
    ends = await send(bootstrap, fault_topics, before)

    async with running(Service(settings)) as service:
        port = service.health_port
        assert port is not None
        await wait_until(lambda: total_outcomes(service) == 10, what="the first orders")
        await wait_committed(admin, fault_topics.group, ends)
        assert (await probe(port, "/readyz"))[0] == 200

        faulty_kafka.kill()
        caplog.clear()
        detail = await wait_probe(port, "/readyz", 503, saying="Kafka: ")
        await asyncio.sleep(5)  # the outage goes on: aiokafka retries all the while
        lines_in_outage = client_lines(caplog)
        still_live = await probe(port, "/healthz")

        await faulty_kafka.restart()
        await wait_probe(port, "/readyz", 200)
        more = await send(bootstrap, fault_topics, after)
        # The broker forgot the member while it was down: a rebalance may come now, and
        # an event may then have two outcomes (sent, then skipped as a duplicate).
        await wait_until(lambda: delivered(imshop, after), timeout_s=60, what="the later orders")
        await wait_committed(admin, fault_topics.group, {**ends, **more})

    assert detail.startswith("Kafka: "), detail
    assert "no fetch answer" in detail or "commits failing" in detail, detail
    assert still_live[0] == 200, "the process is fine: restarting it would not bring Kafka back"
    assert lines_in_outage <= 20, f"{lines_in_outage} aiokafka lines in 5 s: not summarised"
    assert_each_told_once(imshop, before + after)


async def test_a_frozen_broker_fails_readiness_until_it_answers_again(
    faulty_kafka: LocalKafka,
    admin: AIOKafkaAdminClient,
    fault_topics: Topics,
    imshop: ImshopSimulator,
) -> None:
    """Frozen longer than the session timeout: the broker expires the member."""
    bootstrap = faulty_kafka.bootstrap_servers
    before, after = orders("3", 10), orders("4", 10)
    settings = e2e_settings(bootstrap, fault_topics, imshop.url, kafka=KAFKA)
    ends = await send(bootstrap, fault_topics, before)

    async with running(Service(settings)) as service:
        port = service.health_port
        assert port is not None
        await wait_until(lambda: total_outcomes(service) == 10, what="the first orders")
        await wait_committed(admin, fault_topics.group, ends)

        faulty_kafka.freeze()
        try:
            detail = await wait_probe(port, "/readyz", 503, saying="Kafka: ")
            await asyncio.sleep(7)  # past the 6 s session timeout
        finally:
            faulty_kafka.thaw()
        await wait_probe(port, "/readyz", 200)
        more = await send(bootstrap, fault_topics, after)
        await wait_until(lambda: delivered(imshop, after), timeout_s=60, what="the later orders")
        await wait_committed(admin, fault_topics.group, {**ends, **more})

    assert "no fetch answer for" in detail, detail
    assert_each_told_once(imshop, before + after)


async def test_sigterm_with_a_frozen_broker_sends_nothing_uncommittable_and_keeps_the_grace(
    faulty_kafka: LocalKafka,
    admin: AIOKafkaAdminClient,
    fault_topics: Topics,
    imshop: ImshopSimulator,
    tmp_path: Path,
) -> None:
    """The budget lets 3 pushes out every 6 s. Three go out and are committed, the
    broker hangs, SIGTERM: while the service drains, the budget would let three
    more go, which could never be committed and would go again after the restart."""
    bootstrap = faulty_kafka.bootstrap_servers
    events = orders("5", 9)
    ends = await send(bootstrap, fault_topics, events)
    grace_s = 9
    env = drain_env(bootstrap, fault_topics, imshop, per_window=(3, 6), grace_s=grace_s)
    env["KAFKA_FAILING_AFTER_S"] = "2"
    log = tmp_path / "service.log"

    with service_process(env, log) as first:
        await wait_until(lambda: len(imshop.pushes) == 3, timeout_s=60, what="the first pushes")
        await wait_until_committed(admin, fault_topics.group, 3)
        faulty_kafka.freeze()
        try:
            first.send_signal(signal.SIGTERM)
            started = time.monotonic()
            code = await asyncio.to_thread(first.wait, grace_s + 20)
            took = time.monotonic() - started
        finally:
            faulty_kafka.thaw()
    sent_before_restart = len(imshop.pushes)

    lines = await finish_in_a_new_process(env, log, admin, fault_topics.group, ends)
    assert code == 0, log.read_text()[-3000:]
    # The service is done at the grace period (a few tenths over, at most); the rest is
    # the interpreter ending, which takes up to a couple of seconds on a loaded machine.
    assert took <= grace_s + 3, f"the shutdown took {took:.1f} s with a {grace_s} s grace"
    assert sent_before_restart == 3, "nothing was sent that could not be committed"
    assert any(line["event"] == "drain_sends_nothing" for line in lines)
    assert_each_told_once(imshop, events)


async def test_a_broker_hanging_during_the_drain_stops_the_sending(
    faulty_kafka: LocalKafka,
    admin: AIOKafkaAdminClient,
    fault_topics: Topics,
    imshop: ImshopSimulator,
    tmp_path: Path,
) -> None:
    """The drain sends two pushes a second; the broker hangs while it does. Sending
    stops once a commit goes unanswered (2 s), not at the end of the grace period."""
    bootstrap = faulty_kafka.bootstrap_servers
    events = orders("8", 20)
    ends = await send(bootstrap, fault_topics, events)
    grace_s = 12
    env = drain_env(bootstrap, fault_topics, imshop, per_window=(2, 1), grace_s=grace_s)
    log = tmp_path / "service.log"

    with service_process(env, log) as first:
        await wait_until(lambda: len(imshop.pushes) >= 4, timeout_s=60, what="pushes going out")
        first.send_signal(signal.SIGTERM)
        at_sigterm = len(imshop.pushes)
        await wait_until(lambda: len(imshop.pushes) >= at_sigterm + 2, what="the drain sending")
        faulty_kafka.freeze()
        at_freeze = len(imshop.pushes)
        try:
            code = await asyncio.to_thread(first.wait, grace_s + 20)
        finally:
            faulty_kafka.thaw()
    after_freeze = imshop.pushes[at_freeze:]
    # What the first process got committed: a push sent just before the freeze may
    # still have had its commit on the wire then, so it may rightly go again.
    committed = await committed_offsets(admin, fault_topics.group)
    records = await read_records(bootstrap, fault_topics.orders, len(events))
    uncommitted = {
        json.loads(r.value)["recipient"]["user_id"]
        for r in records
        if r.offset >= committed.get(TopicPartition(r.topic, r.partition), 0)
    }

    lines = await finish_in_a_new_process(env, log, admin, fault_topics.group, ends)
    assert code == 0, log.read_text()[-3000:]
    assert any(line["event"] == "drain_stopped_sending" for line in lines)
    assert len(after_freeze) <= 8, f"{len(after_freeze)} pushes went out after the broker hung"
    counts = per_user(imshop)
    assert set(counts) == {e["recipient"]["user_id"] for e in events}
    twice = {user for user, count in counts.items() if count > 1}
    assert twice <= uncommitted, "a push whose event was committed went again"


async def test_a_huge_record_is_read_dead_lettered_cut_and_the_queue_moves_on(
    faulty_kafka: LocalKafka,
    admin: AIOKafkaAdminClient,
    unique_name: Callable[[str], str],
    imshop: ImshopSimulator,
) -> None:
    """Records of 2 MB and 10 MB (the topic allows 12 MB), each between normal orders."""
    bootstrap = faulty_kafka.bootstrap_servers
    topics = Topics(
        orders=await create(
            admin,
            unique_name("orders"),
            1,
            **{"max.message.bytes": str(12 << 20), "segment.bytes": str(16 << 20)},
        ),
        bonus=await create(admin, unique_name("bonus"), 1),
        dlq=await create(admin, unique_name("dlq"), 1),
        group=unique_name("group"),
    )
    normal = orders("6", 3)
    huge = [b"[" + b"1," * (size // 2) + b"1]" for size in (2 * 1024 * 1024, 10 * 1024 * 1024)]
    values = [encode(normal[0]), huge[0], encode(normal[1]), huge[1], encode(normal[2])]
    ends = await produce(bootstrap, [(topics.orders, None, v) for v in values], max_bytes=12 << 20)
    settings = e2e_settings(bootstrap, topics, imshop.url, kafka=KAFKA)

    async with running(Service(settings)) as service:
        await wait_until(lambda: total_outcomes(service) == 5, timeout_s=60, what="all outcomes")
        await wait_committed(admin, topics.group, ends)

    letters = await read_records(bootstrap, topics.dlq, 2)
    assert [dict(r.headers)["dlq.source_offset"] for r in letters] == [b"1", b"3"]
    for letter, value in zip(letters, huge, strict=True):
        headers = dict(letter.headers)
        assert headers["dlq.reason"] == b"too_large"
        assert headers["dlq.truncated"].startswith(f"value cut from {len(value)} to ".encode())
        assert value.startswith(letter.value)
    assert set(per_user(imshop)) == {e["recipient"]["user_id"] for e in normal}


async def test_a_topic_created_after_start_is_named_by_readiness_then_read(
    faulty_kafka: LocalKafka,
    admin: AIOKafkaAdminClient,
    fault_topics: Topics,
    unique_name: Callable[[str], str],
    imshop: ImshopSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bootstrap = faulty_kafka.bootstrap_servers
    later = unique_name("later")
    topics = Topics(fault_topics.orders, later, fault_topics.dlq, fault_topics.group)
    settings = e2e_settings(bootstrap, topics, imshop.url, kafka=KAFKA)
    event = orders("7", 1)[0]

    async with running(Service(settings)) as service:
        port = service.health_port
        assert port is not None
        detail = await wait_probe(port, "/readyz", 503, saying="topics not in Kafka")
        await create(admin, later, 1)
        await produce(bootstrap, [(later, None, encode(event))])
        await wait_until(lambda: total_outcomes(service) == 1, timeout_s=30, what="its event")
        assert (await probe(port, "/readyz"))[0] == 200

    assert detail == f"Kafka: topics not in Kafka (read once created): {later}"
    assert per_user(imshop) == Counter({event["recipient"]["user_id"]: 1})
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no error-level noise"
