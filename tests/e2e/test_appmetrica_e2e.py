"""PUSH_PROVIDER=appmetrica end to end: real broker, AppMetrica simulator over HTTP."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from e2e_harness import (
    Topics,
    e2e_settings,
    encode,
    make_topics,
    order,
    produce,
    running,
    total_outcomes,
    wait_committed,
    wait_until,
)
from testkit import read_records

from consumer.app import Service
from consumer.local.simulators.appmetrica import AppMetricaSimulator
from consumer.local.simulators.appmetrica_model import SimulatorConfig
from consumer.local.simulators.appmetrica_state import Faults
from consumer.mapping.finish import NBSP
from consumer.replay.command import replay
from consumer.replay.select import ReplayFilter
from consumer.reports.command import fetch
from consumer.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

TOKEN = "e2e-oauth-token"
DEVICE_TYPES = ["appmetrica_device_id", "ios_push_token", "android_push_token"]
STATUSES = ["delivered", "cancelled", "confirmed"]  # three rules: order_<status>


@pytest.fixture
async def appmetrica() -> AsyncIterator[AppMetricaSimulator]:
    async with AppMetricaSimulator(SimulatorConfig(token=TOKEN, status_step_s=0.05)) as sim:
        yield sim


def with_devices(event: dict[str, Any], index: int) -> dict[str, Any]:
    """Each customer has one to three devices of different kinds."""
    devices = [
        {"id_type": id_type, "id": f"{id_type[:3]}-{index}-{n}"}
        for n, id_type in enumerate(DEVICE_TYPES[: index % 3 + 1])
    ]
    return {**event, "recipient": {**event["recipient"], "devices": devices}}


def delivered_devices(
    sim: AppMetricaSimulator, *, only_sent: bool = False
) -> dict[str, set[tuple[str, str]]]:
    """Android title -> the (id_type, id) pairs every sent transfer carried it to
    (every transfer must be sent, unless ``only_sent`` leaves the others out)."""
    seen: dict[str, set[tuple[str, str]]] = {}
    for transfer in sim.state.record():
        if only_sent and transfer["status"] != "sent":
            continue
        assert transfer["status"] == "sent", transfer
        for element in transfer["batch"]:
            title = element["messages"]["android"]["content"]["title"]
            assert element["messages"]["iOS"]["content"]["title"] == title
            for group in element["devices"]:
                seen.setdefault(title, set()).update(
                    (group["id_type"], value) for value in group["id_values"]
                )
    return seen


async def test_order_events_reach_every_device_of_every_recipient(
    kafka_bootstrap: str,
    kafka_admin: AIOKafkaAdminClient,
    topic_factory: Any,
    unique_name: Callable[[str], str],
    appmetrica: AppMetricaSimulator,
) -> None:
    topics: Topics = await make_topics(topic_factory, unique_name)
    events = [
        with_devices(order(f"am-{i}", f"7999777{i:04d}", f"M-{i}", STATUSES[i % 3], 1), i)
        for i in range(12)
    ]
    no_devices = order("am-none", "79997770999", "M-none", "delivered", 1)
    ends = await produce(
        kafka_bootstrap,
        [(topics.orders, e["order"]["id"].encode(), encode(e)) for e in [*events, no_devices]],
    )
    settings = appmetrica_settings(kafka_bootstrap, topics, appmetrica)

    async with running(Service(settings)) as service:
        await wait_until(lambda: total_outcomes(service) == len(events) + 1, what="all outcomes")
        await wait_committed(kafka_admin, topics.group, ends)
        skipped = service.metrics.value(
            "push_events_total", event_type="order.status_changed", outcome="skipped"
        )
        # Sent once AppMetrica validated them; the provider follows each transfer to its end.
        await wait_until(
            lambda: finished_transfers(service) == len(appmetrica.state.transfers),
            what="every transfer followed to its end",
        )

    seen = delivered_devices(appmetrica)
    for event in events:
        number = event["order"]["number"]
        named = f"№{NBSP}{number}"  # the shipped titles join № to the number
        (title,) = [t for t in seen if f"{named} " in t or t.endswith(named)]
        wanted = {(d["id_type"], d["id"]) for d in event["recipient"]["devices"]}
        assert wanted <= seen[title], f"order {number} missed a device"
    assert skipped == 1, "a recipient without devices is skipped, not sent"
    groups = {g.id: g.name for g in appmetrica.state.groups.values()}
    assert sorted(groups.values()) == ["order-push-marketing", "order-push-transactional"]
    tags = {(groups[t.group_id], t.tag) for t in appmetrica.state.transfers.values()}
    assert tags == {("order-push-transactional", f"orders.yaml:order_{s}") for s in STATUSES}
    assert appmetrica.state.quota_violations == 0

    # The push report, through the simulator's Reporting API: a row per rule.
    reporting = settings.appmetrica.model_copy(update={"report_url": appmetrica.base_url})
    report = await fetch(reporting, "today", "today")
    sent = {row.rule: row.sent for row in report.rows}
    assert sent == {  # event i has i % 3 + 1 devices and the rule of STATUSES[i % 3]
        "orders.yaml:order_delivered": 4 * 1,
        "orders.yaml:order_cancelled": 4 * 2,
        "orders.yaml:order_confirmed": 4 * 3,
    }


async def test_a_failed_transfer_is_dead_lettered_with_appmetricas_errors_and_replayed(
    kafka_bootstrap: str,
    kafka_admin: AIOKafkaAdminClient,
    topic_factory: Any,
    unique_name: Callable[[str], str],
    appmetrica: AppMetricaSimulator,
) -> None:
    """The runbook path for a transfer AppMetrica accepted and then failed (the app's
    push credentials): its events are dead-lettered with AppMetrica's errors, not
    committed as sent; after the fix, `dlq replay` into the running service delivers
    every one (a replayed record is a new transfer, not a duplicate of the failed one)."""
    topics: Topics = await make_topics(topic_factory, unique_name)
    events = [
        with_devices(order(f"fail-{i}", f"7999555{i:04d}", f"F-{i}", "delivered", 2), i)
        for i in range(4)
    ]
    settings = appmetrica_settings(kafka_bootstrap, topics, appmetrica)
    appmetrica.set_faults(Faults(fail_transfers_count=100))

    async with running(Service(settings)) as service:
        ends = await produce(
            kafka_bootstrap,
            [(topics.orders, e["order"]["id"].encode(), encode(e)) for e in events],
        )
        written = lambda: service.metrics.value(  # noqa: E731
            "push_dead_letters_total", reason="provider_rejected"
        )
        await wait_until(lambda: written() == len(events), what="the failed pushes dead-lettered")
        await wait_committed(kafka_admin, topics.group, ends)
        dead = await read_records(kafka_bootstrap, topics.dlq, len(events))
        appmetrica.set_faults(Faults())  # the credentials are fixed

        report = await replay(
            settings.kafka, topics.dlq, ReplayFilter(reasons=frozenset({"provider_rejected"}))
        )
        assert report.replayed == len(events)
        sent = lambda: service.metrics.value(  # noqa: E731
            "push_events_total", event_type="order.status_changed", outcome="sent"
        )
        await wait_until(lambda: sent() == len(events), what="every replayed push sent")
        superseded = service.metrics.value(
            "push_events_total", event_type="order.status_changed", outcome="superseded"
        )

    assert superseded == 0
    for record in dead:
        headers = {name: raw.decode() for name, raw in record.headers}
        assert headers["dlq.reason"] == "provider_rejected"
        assert "Invalid push credentials for platform android" in headers["dlq.message"]
    statuses = Counter(t["status"] for t in appmetrica.state.record())
    assert statuses["sent"] >= 1
    assert statuses["failed"] >= 1
    delivered = delivered_devices(appmetrica, only_sent=True)
    for event in events:
        wanted = {(d["id_type"], d["id"]) for d in event["recipient"]["devices"]}
        assert any(wanted <= devices for devices in delivered.values()), event["event_id"]
    assert appmetrica.state.quota_violations == 0


def appmetrica_settings(
    bootstrap: str, topics: Topics, appmetrica: AppMetricaSimulator
) -> Settings:
    return e2e_settings(
        bootstrap,
        topics,
        "http://unused.invalid/push",
        service={"push_provider": "appmetrica"},
        appmetrica={
            "url": appmetrica.base_url,
            "token": TOKEN,
            "app_id": 4242,
            "status_poll_initial_s": 0.05,
            "status_poll_max_s": 0.2,
        },
    )


def finished_transfers(service: Service) -> float:
    return sum(
        service.metrics.value("appmetrica_transfers_total", status=status)
        for status in ("sent", "failed", "timed_out")
    )
