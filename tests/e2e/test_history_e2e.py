"""The history end to end: Kafka -> service -> PostgreSQL -> IMSHOP's HTTP request.

On the real broker, a real PostgreSQL and the IMSHOP simulator. The last test
stops PostgreSQL mid-stream and starts it again: nothing unwritten is committed
or sent while it is down, fetching pauses, the probes say why, and afterwards
every event is written once and pushed once.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from e2e_harness import (
    HISTORY_TOKEN,
    MAPPINGS,
    Topics,
    committed_offsets,
    e2e_settings,
    encode,
    expiring,
    order,
    produce,
    running,
    total_outcomes,
    wait_committed,
    wait_until,
)

from consumer.app import Service
from consumer.events import parse_event
from consumer.local.postgres import LocalPostgres
from consumer.local.simulators.imshop import ImshopSimulator
from consumer.mapping import load_mappings
from consumer.settings import MappingSettings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

AUTH = {"Authorization": f"Bearer {HISTORY_TOKEN}"}
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
SHIPPED = load_mappings(MAPPINGS, MappingSettings())


def at(event: dict[str, Any], seconds: int) -> dict[str, Any]:
    """The event, happening ``seconds`` after T0 (distinct, ordered times)."""
    return {**event, "occurred_at": (T0 + dt.timedelta(seconds=seconds)).isoformat()}


def title_of(event: dict[str, Any]) -> str:
    push = SHIPPED.render(parse_event(encode(event), max_bytes=65_536))
    assert push is not None
    return push.message.title


def records(topics: Topics, events: list[dict[str, Any]]) -> list[tuple[str, bytes, bytes]]:
    out = []
    for event in events:
        if "order" in event:
            out.append((topics.orders, event["order"]["id"].encode(), encode(event)))
        else:
            out.append((topics.bonus, event["recipient"]["user_id"].encode(), encode(event)))
    return out


async def history_of(port: int | None, user: str, headers: dict[str, str] = AUTH) -> Any:
    assert port is not None, "the history API is served"
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"http://127.0.0.1:{port}/imshop/history", json={"userId": user}, headers=headers
        )
    return response


async def probe(service: Service, path: str) -> tuple[int, str]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{service.health_port}{path}")
    return response.status_code, response.json()["detail"]


async def test_a_customer_reads_one_item_per_order_latest_status_on_top(
    kafka_bootstrap: str,
    kafka_admin: AIOKafkaAdminClient,
    topics: Topics,
    imshop: ImshopSimulator,
    fresh_postgres_url: str,
) -> None:
    user = "79991110001"
    events = [
        at(order("a1", user, "A-1", "created", 1), 0),
        at(order("b1", user, "B-1", "created", 1), 1),
        at(expiring("bonus", user), 2),
        at(order("a2", user, "A-1", "confirmed", 2), 3),
        at(order("a3", user, "A-1", "delivered", 3), 4),
        at(order("other", "79992220002", "C-1", "created", 1), 5),
    ]
    ends = await produce(kafka_bootstrap, records(topics, events))
    settings = e2e_settings(
        kafka_bootstrap, topics, imshop.url, history={"database_url": fresh_postgres_url}
    )

    async with running(Service(settings)) as service:
        await wait_until(lambda: total_outcomes(service) == len(events), what="every outcome")
        await wait_committed(kafka_admin, topics.group, ends)
        answer = await history_of(service.history_port, user)
        refused = await history_of(service.history_port, user, headers={})
        first_id = answer.json()["history"][0]["id"]
        async with httpx.AsyncClient(timeout=10) as client:
            read = await client.post(
                f"http://127.0.0.1:{service.history_port}/imshop/history/read",
                json={"userId": user, "ids": [first_id]},
                headers=AUTH,
            )

    assert answer.status_code == 200
    history = answer.json()["history"]
    assert [item["title"] for item in history] == [
        title_of(events[4]),  # order A-1, delivered: its third status, on top
        title_of(events[2]),
        title_of(events[1]),
    ]
    order_a = history[0]
    assert order_a["createdOn"] == int(T0.timestamp() * 1000)
    assert order_a["updatedOn"] == int(T0.timestamp() * 1000) + 4000
    assert order_a["deepLink"] == "imshop://orders/A-1/review"  # the delivered rule's link
    assert refused.status_code == 401
    assert read.json() == {"success": True, "marked": 1}


async def test_postgres_down_mid_stream_loses_nothing_and_sends_nothing_twice(
    kafka_bootstrap: str,
    kafka_admin: AIOKafkaAdminClient,
    topics: Topics,
    imshop: ImshopSimulator,
    postgres_server: LocalPostgres | str,
    fresh_postgres_url: str,
) -> None:
    if not isinstance(postgres_server, LocalPostgres):
        pytest.skip("stopping the database needs the tests' own PostgreSQL")
    settings = e2e_settings(
        kafka_bootstrap,
        topics,
        imshop.url,
        dispatch={"pending_max_events": 8, "pending_resume_ratio": 0.5},
        history={"database_url": fresh_postgres_url, "retry_max_backoff_s": 0.5},
    )
    before = [at(order(f"p{i}", f"7999000{i:04d}", f"P-{i}", "created", 1), i) for i in range(4)]
    # While the database is down: 12 customers, each order through three statuses.
    during = [
        at(order(f"d{i}-{v}", f"7999100{i:04d}", f"D-{i}", status, v), 100 + 10 * v + i)
        for v, status in ((1, "created"), (2, "confirmed"), (3, "delivered"))
        for i in range(12)
    ]

    async with running(Service(settings)) as service:
        ends_before = await produce(kafka_bootstrap, records(topics, before))
        await wait_until(lambda: total_outcomes(service) == len(before), what="every outcome")
        await wait_committed(kafka_admin, topics.group, ends_before)
        pushed_before = len(imshop.pushes)

        postgres_server.stop_server()
        try:
            ends = await produce(kafka_bootstrap, records(topics, during))
            await wait_until(
                lambda: service.metrics.value("history_write_failures_total") >= 3,
                what="history writes failing and retried",
            )
            await wait_until(
                lambda: service.metrics.value("kafka_paused_partitions") > 0,
                what="fetching paused at the pending bound",
            )
            ready = await probe(service, "/readyz")
            live = await probe(service, "/healthz")
            committed_down = await committed_offsets(kafka_admin, topics.group)
            pushed_down = len(imshop.pushes)
            waiting_down = service.metrics.value("history_waiting_events")
        finally:
            postgres_server.start_server()

        await wait_committed(kafka_admin, topics.group, ends, timeout_s=60)
        ready_after = await probe(service, "/readyz")
        histories = {
            user: (await history_of(service.history_port, user)).json()["history"]
            for user in sorted({e["recipient"]["user_id"] for e in during})
        }

    # While down: nothing of the new events committed or sent; the probes said why.
    orders_ends = {tp: end for tp, end in ends_before.items() if tp.topic == topics.orders}
    assert {tp: committed_down.get(tp) for tp in orders_ends} == orders_ends
    assert pushed_down == pushed_before
    assert waiting_down > 0
    assert ready[0] == 503
    assert "history writes failing" in ready[1]
    assert "Connect call failed" in ready[1] or "connection" in ready[1].lower(), ready[1]
    assert live[0] == 200, "a database outage is no reason to restart the service"
    assert "history writes failing" in live[1]
    assert ready_after[0] == 200

    # After: every customer's order is one item showing its last status, written once.
    for index in range(12):
        user = f"7999100{index:04d}"
        assert [item["title"] for item in histories[user]] == [title_of(during[24 + index])]
    # Every push went out at most once, and every order's last status went out.
    delivered = Counter(
        (user, push["message"]["title"]) for push in imshop.pushes for user in push["userIds"]
    )
    assert max(delivered.values()) == 1, delivered.most_common(3)
    for event in during[24:]:
        assert delivered[(event["recipient"]["user_id"], title_of(event))] == 1
    # Every event has exactly one outcome (sent, or superseded by its order's next status).
    assert sum(service.metrics.outcome_counts().values()) == len(before) + len(during)


async def test_with_the_history_off_pushes_flow_and_nothing_is_served(
    kafka_bootstrap: str,
    kafka_admin: AIOKafkaAdminClient,
    topics: Topics,
    imshop: ImshopSimulator,
    tmp_path: Path,
) -> None:
    events = [at(order(f"off-{i}", f"7999333{i:04d}", f"F-{i}", "created", 1), i) for i in range(3)]
    ends = await produce(kafka_bootstrap, records(topics, events))
    database = tmp_path / "history.sqlite3"
    settings = e2e_settings(
        kafka_bootstrap,
        topics,
        imshop.url,
        history={"enabled": False, "database_url": f"sqlite:///{database}"},
    )

    async with running(Service(settings)) as service:
        await wait_until(lambda: total_outcomes(service) == len(events), what="every outcome")
        await wait_committed(kafka_admin, topics.group, ends)
        port = service.history_port

    assert port is None
    assert len(imshop.pushes) == len(events)
    assert not database.exists()
