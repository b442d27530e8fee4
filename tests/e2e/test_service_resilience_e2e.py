"""The service under crashes, rebalances and backlogs, on the real broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner
from e2e_harness import (
    MAPPINGS,
    Topics,
    committed_offsets,
    e2e_settings,
    encode,
    expiring,
    history_sqlite_url,
    order,
    produce,
    running,
    total_outcomes,
    wait_committed,
    wait_until,
)

from consumer.app import Service
from consumer.local.kafka_process import free_ports
from consumer.local.simulators.imshop import Faults, ImshopSimulator

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


def deliveries(simulator: ImshopSimulator, pushes: list[dict[str, Any]] | None = None) -> Counter:
    return Counter(
        (user, push["message"]["title"])
        for push in (simulator.pushes if pushes is None else pushes)
        for user in push["userIds"]
    )


async def settled(count: Callable[[], int], quiet_s: float = 0.5, timeout_s: float = 10) -> None:
    """Wait until ``count()`` stops changing for ``quiet_s`` (bounded by ``timeout_s``)."""
    last, still = count(), 0.0
    for _ in range(int(timeout_s / 0.05)):
        await asyncio.sleep(0.05)
        still = still + 0.05 if count() == last else 0.0
        last = count()
        if still >= quiet_s:
            return
    raise AssertionError(f"still changing after {timeout_s} s")


def service_env(bootstrap: str, topics: Topics, push_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPICS": f"{topics.orders},{topics.bonus}",
        "KAFKA_GROUP_ID": topics.group,
        "KAFKA_DLQ_TOPIC": topics.dlq,
        "KAFKA_COMMIT_INTERVAL_S": "0.2",
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "IMSHOP_URL": push_url,
        "IMSHOP_API_KEY": "test-key",
        "IMSHOP_RATE_LIMIT_REQUESTS": "5",
        "IMSHOP_RATE_LIMIT_WINDOW_S": "1",
        "IMSHOP_RATE_LIMIT_MARGIN_S": "0.1",
        "IMSHOP_TIMEOUT_S": "10",
        "MAPPINGS_DIR": str(MAPPINGS),
        "HEALTH_PORT": "0",
        "HISTORY_DATABASE_URL": history_sqlite_url(),
        "HISTORY_PORT": "0",
        "SHUTDOWN_GRACE_S": "5",
        "LOG_FORMAT": "json",
    }


@contextmanager
def service_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "consumer", "run"], env=env, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


async def test_kill_9_and_restart_resends_only_what_was_in_flight(
    kafka_bootstrap: str,
    kafka_admin: AIOKafkaAdminClient,
    topics: Topics,
    imshop: Any,
    tmp_path: Path,
) -> None:
    personal = [order(f"k-{i}", f"7999333{i:04d}", f"K-{i}", "delivered", 1) for i in range(40)]
    campaign = [expiring(f"kc-{i}", f"7999444{i:04d}") for i in range(60)]
    ends = await produce(
        kafka_bootstrap,
        [(topics.orders, e["order"]["id"].encode(), encode(e)) for e in personal]
        + [(topics.bonus, e["recipient"]["user_id"].encode(), encode(e)) for e in campaign],
    )
    env = service_env(kafka_bootstrap, topics, imshop.url)
    log = tmp_path / "service.log"

    with service_process(env, log) as first:
        await wait_until(lambda: len(imshop.pushes) >= 8, timeout_s=60, what="pushes going out")
        # From now on the simulator takes each push but never answers: in flight at the kill.
        imshop.set_faults(Faults(script=["lost_answer"] * 50, hang_s=5.0))
        answered = len(imshop.pushes)
        await wait_until(lambda: len(imshop.pushes) > answered, what="a push taken, unanswered")
        # Until every request slot hangs: by then the answered requests are committed.
        await settled(lambda: imshop.stats()["requests"])
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 10)
        # Requests the killed process sent just before dying may still sit in the
        # simulator's socket buffers: let it take them all before counting.
        await settled(lambda: imshop.stats()["requests"])
        in_flight = deliveries(imshop, imshop.pushes[answered:])
        imshop.set_faults(Faults())
    assert in_flight, "the kill should have caught a request in flight"

    with service_process(env, log) as second:
        await wait_committed(kafka_admin, topics.group, ends, timeout_s=90)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, log.read_text()[-3000:]

    counts = deliveries(imshop)
    expected = {(e["recipient"]["user_id"]) for e in personal + campaign}
    assert {user for user, _ in counts} == expected, "every event was delivered"
    duplicated = {key for key, count in counts.items() if count > 1}
    assert duplicated <= set(in_flight), "only requests in flight at the kill were sent twice"
    assert all(count <= 2 for count in counts.values())
    # Within each process. The restart takes longer than the 1 s window, so a burst
    # across it cannot show here: the budget starting spent is tested in
    # tests/dispatch/test_provider_registry.py.
    assert imshop.stats()["violations"] == 0, "no more than the limit in any window"


async def test_second_instance_takes_over_when_the_first_stops(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, topics: Topics, imshop: Any
) -> None:
    events = [order(f"t-{i}", f"7999555{i:04d}", f"T-{i}", "delivered", 1) for i in range(40)]
    ends = await produce(
        kafka_bootstrap, [(topics.orders, e["order"]["id"].encode(), encode(e)) for e in events]
    )
    # Two replicas share the provider account here, so each takes half the budget.
    half = {"rate_limit_requests": 2, "assume_window_used_at_start": True}
    first = Service(e2e_settings(kafka_bootstrap, topics, imshop.url, imshop=half))
    second = Service(e2e_settings(kafka_bootstrap, topics, imshop.url, imshop=half))

    async with running(second):
        async with running(first):
            await wait_until(lambda: total_outcomes(first) >= 3, what="the first instance working")
            await wait_until(lambda: bool(second.assigned), what="partitions shared by both")
        await wait_committed(kafka_admin, topics.group, ends, timeout_s=90)

    counts = deliveries(imshop)
    assert {user for user, _ in counts} == {e["recipient"]["user_id"] for e in events}
    assert all(count == 1 for count in counts.values()), "a graceful stop re-sends nothing"
    assert total_outcomes(first) + total_outcomes(second) == len(events)
    assert total_outcomes(second) > len(events) / 2, "the second took over the first's share"
    assert imshop.stats()["violations"] == 0


async def test_a_backlog_larger_than_the_pending_bound_pauses_and_resumes(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, topics: Topics, imshop: Any
) -> None:
    bound = 100
    campaign = [
        expiring(f"b-{i}", f"7999666{i:04d}", amount=100 * (i % 3 + 1)) for i in range(1500)
    ]
    ends = await produce(
        kafka_bootstrap,
        [(topics.bonus, e["recipient"]["user_id"].encode(), encode(e)) for e in campaign],
    )
    settings = e2e_settings(
        kafka_bootstrap,
        topics,
        imshop.url,
        dispatch={"pending_max_events": bound, "pending_resume_ratio": 0.5},
    )
    held: list[float] = []
    paused: list[float] = []

    def observe(service: Service) -> bool:
        held.append(service.metrics.value("push_pending_events"))
        paused.append(service.metrics.value("kafka_paused_partitions"))
        return total_outcomes(service) == len(campaign)

    async with running(Service(settings)) as service:
        await wait_until(lambda: observe(service), timeout_s=90, what="the backlog drained")
        await wait_committed(kafka_admin, topics.group, ends)
        resumed = service.metrics.value("kafka_paused_partitions")

    assert max(held) <= bound, "the pending set never grows past its bound"
    assert max(paused) > 0, "fetching paused while the pending set was full"
    assert resumed == 0, "fetching resumed once the backlog drained"
    counts = deliveries(imshop)
    assert len(counts) == len(campaign)
    assert all(count == 1 for count in counts.values())
    assert imshop.stats()["violations"] == 0


async def pending_events(port: int) -> float:
    async with httpx.AsyncClient() as http:
        try:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=2)).text
        except httpx.HTTPError:
            return 0.0
    for line in text.splitlines():
        if line.startswith("push_pending_events "):
            return float(line.split()[1])
    return 0.0


async def wait_for_pending(port: int, count: int, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if await pending_events(port) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the service never held {count} pending events")


async def start_with_pending_pushes(
    kafka_bootstrap: str, topics: Topics, imshop: Any, tmp_path: Path, grace_s: str
) -> tuple[dict[str, str], Path, dict[Any, int], int]:
    """Three pushes the budget will not let out: it starts spent, for a 60 s window."""
    events = [order(f"g-{i}", f"7999888{i:04d}", f"G-{i}", "delivered", 1) for i in range(3)]
    ends = await produce(kafka_bootstrap, [(topics.orders, b"g", encode(e)) for e in events])
    (port,) = free_ports(1)
    env = {
        **service_env(kafka_bootstrap, topics, imshop.url),
        "IMSHOP_RATE_LIMIT_WINDOW_S": "60",
        "IMSHOP_ASSUME_WINDOW_USED_AT_START": "true",
        "SHUTDOWN_GRACE_S": grace_s,
        "HEALTH_PORT": str(port),
    }
    return env, tmp_path / "service.log", ends, port


async def test_sigterm_drains_for_the_grace_period_then_exits_leaving_unsent_uncommitted(
    kafka_bootstrap: str,
    kafka_admin: AIOKafkaAdminClient,
    topics: Topics,
    imshop: Any,
    tmp_path: Path,
) -> None:
    env, log, ends, port = await start_with_pending_pushes(
        kafka_bootstrap, topics, imshop, tmp_path, grace_s="1"
    )
    with service_process(env, log) as process:
        await wait_for_pending(port, 3)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)

    assert code == 0, log.read_text()[-3000:]
    assert '"service_drained"' in log.read_text()
    committed = await committed_offsets(kafka_admin, topics.group)
    assert all(committed.get(tp, 0) == 0 for tp in ends), "unsent pushes were committed"
    assert imshop.pushes == []


async def test_a_second_signal_exits_at_once(
    kafka_bootstrap: str, topics: Topics, imshop: Any, tmp_path: Path
) -> None:
    env, log, _, port = await start_with_pending_pushes(
        kafka_bootstrap, topics, imshop, tmp_path, grace_s="120"
    )
    with service_process(env, log) as process:
        await wait_for_pending(port, 3)
        process.send_signal(signal.SIGTERM)
        await wait_until(lambda: '"fetching_stopped"' in log.read_text(), what="draining")
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 10)

    assert code == 1
    assert '"second_signal_exit_now"' in log.read_text()


def keys_on(partitions: set[int], count: int, prefix: str) -> list[str]:
    """Order ids whose records the default partitioner puts on ``partitions`` (of 3)."""
    partitioner, every = DefaultPartitioner(), [0, 1, 2]
    ids = (f"{prefix}-{i}" for i in range(10_000))
    return [k for k in ids if partitioner(k.encode(), every, every) in partitions][:count]


async def test_a_rebalance_lets_requests_in_flight_finish_and_commits_them_first(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, topics: Topics, imshop: Any
) -> None:
    """The second instance joins while the first has four requests on the wire (each
    takes the provider 5 s), for orders on partitions 0 and 1, which the round-robin
    assignor always gives to different members: one of them moves. The first gives
    its partitions up only after those requests finished and were committed."""
    order_ids = keys_on({0}, 2, "R") + keys_on({1}, 2, "R")
    events = [
        order(f"r-{k}", f"7999777{i:04d}", k, "delivered", 1) for i, k in enumerate(order_ids)
    ]
    ends = await produce(
        kafka_bootstrap, [(topics.orders, e["order"]["id"].encode(), encode(e)) for e in events]
    )
    imshop.set_faults(Faults(latency_s=5.0))
    wide = {"rate_limit_requests": 4, "assume_window_used_at_start": True, "timeout_s": 10.0}
    narrow = {**wide, "rate_limit_requests": 1}  # together within the simulator's 5 a second
    first = Service(e2e_settings(kafka_bootstrap, topics, imshop.url, imshop=wide))
    second = Service(e2e_settings(kafka_bootstrap, topics, imshop.url, imshop=narrow))

    async with running(first):
        await wait_until(
            lambda: imshop.stats()["requests"] == len(events), what="all four on the wire"
        )
        async with running(second):
            await wait_committed(kafka_admin, topics.group, ends, timeout_s=60)

    counts = deliveries(imshop)
    assert {user for user, _ in counts} == {e["recipient"]["user_id"] for e in events}
    assert {key: n for key, n in counts.items() if n > 1} == {}, "a rebalance re-sent pushes"
    assert imshop.stats()["violations"] == 0
