"""The service end to end: real Kafka broker, real HTTP to the IMSHOP simulator."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from e2e_harness import (
    MAPPINGS,
    Topics,
    e2e_settings,
    encode,
    expiring,
    now_iso,
    order,
    produce,
    running,
    total_outcomes,
    wait_committed,
    wait_until,
)
from testkit import read_records

from consumer.app import Service
from consumer.local.simulators.imshop import Faults, ImshopSimulator
from consumer.replay.command import replay
from consumer.replay.select import ReplayFilter

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def delivered(simulator: ImshopSimulator) -> Counter[tuple[str, str, str]]:
    """(userId, title, summary) -> how many times the simulator accepted it."""
    return Counter(
        (user, push["message"]["title"], push["message"]["summary"])
        for push in simulator.pushes
        for user in push["userIds"]
    )


async def test_orders_and_bonuses_become_coalesced_pushes(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, topics: Topics, imshop: Any
) -> None:
    campaign = [expiring(f"exp-{i}", f"7999000{i:04d}") for i in range(40)]
    orders = [
        order("o-1-2", "79990000001", "A-1", "confirmed", 2),
        order("o-1-4", "79990000001", "A-1", "handed_to_courier", 4),  # supersedes o-1-2
        order("o-2-5", "79990000002", "A-2", "delivered", 5),
        order("o-3-6", "79990000003", "A-3", "cancelled", 6),
    ]
    ends = await produce(
        kafka_bootstrap,
        [(topics.bonus, e["recipient"]["user_id"].encode(), encode(e)) for e in campaign]
        + [(topics.orders, e["order"]["id"].encode(), encode(e)) for e in orders],
    )
    # The budget starts spent (as after a restart), so pushes wait and coalesce.
    settings = e2e_settings(
        kafka_bootstrap, topics, imshop.url, imshop={"assume_window_used_at_start": True}
    )

    async with running(Service(settings)) as service:
        await wait_until(lambda: total_outcomes(service) == 44, what="44 outcomes")
        await wait_committed(kafka_admin, topics.group, ends)

    campaign_pushes = [p for p in imshop.pushes if len(p["userIds"]) > 1]
    assert len(campaign_pushes) == 1, "identical texts travel in one request"
    assert sorted(campaign_pushes[0]["userIds"]) == sorted(
        e["recipient"]["user_id"] for e in campaign
    )
    order_titles = sorted(p["message"]["title"] for p in imshop.pushes if len(p["userIds"]) == 1)
    assert len(order_titles) == 3
    assert any("A-1" in title for title in order_titles)
    assert not any("подтверждён" in title for title in order_titles), "superseded status sent"
    assert imshop.stats()["violations"] == 0
    assert all(count == 1 for count in delivered(imshop).values())


def write_failing_rule(directory: Path) -> None:
    """The shipped mappings plus one rule that needs a field the event may lack."""
    for source in MAPPINGS.glob("*.yaml"):
        (directory / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    (directory / "promo.yaml").write_text(
        """
event_types:
  promo.code_issued:
    fields: [promo.code]
rules:
  - id: promo_code
    event: promo.code_issued
    class: marketing
    ttl: 1d
    title: "Ваш промокод"
    summary: "Промокод {{ promo.code }} на следующий заказ"
    deeplink: imshop://promo
    examples:
      - event: {promo: {code: "AUTUMN"}}
        push: {title: "Ваш промокод", summary: "Промокод AUTUMN на следующий заказ",
               deeplink: "imshop://promo"}
""",
        encoding="utf-8",
    )


async def test_malformed_records_go_to_the_dead_letter_topic_with_their_reason(
    kafka_bootstrap: str, topics: Topics, imshop: Any, tmp_path: Path
) -> None:
    write_failing_rule(tmp_path)
    promo_without_code = {
        "event_id": "promo-1",
        "event_type": "promo.code_issued",
        "occurred_at": "2026-11-22T09:00:00Z",
        "recipient": {"user_id": "79990000077"},
        "promo": {},
    }
    bad: list[tuple[bytes | None, str]] = [
        (b"\xff\xfe{}", "invalid_utf8"),
        (b'{"event_id": ', "invalid_json"),
        (b"[1, 2, 3]", "not_an_object"),
        (
            encode({**order("x-1", "1", "A-9", "created", 1), "event_type": "order.lost"}),
            "unknown_event_type",
        ),
        (
            encode({**order("x-2", "1", "A-9", "created", 1), "occurred_at": "today"}),
            "schema_violation",
        ),
        (b'{"pad": "' + b"x" * 70_000 + b'"}', "too_large"),
        (None, "empty_record"),
        (encode(promo_without_code), "render_failed"),
    ]
    good = [order(f"ok-{i}", f"7999111{i:04d}", f"B-{i}", "delivered", 1) for i in range(4)]
    records: list[tuple[str, bytes | None, bytes | None]] = []
    for index, (value, _) in enumerate(bad):  # bad and good records interleaved
        records.append((topics.orders, f"bad-{index}".encode(), value))
        if index < len(good):
            records.append((topics.orders, b"good", encode(good[index])))
    await produce(kafka_bootstrap, records)
    settings = e2e_settings(kafka_bootstrap, topics, imshop.url, mappings_dir=tmp_path)

    async with running(Service(settings)) as service:
        await wait_until(lambda: total_outcomes(service) == len(bad) + 4, what="every outcome")
        written = lambda: sum(  # noqa: E731
            service.metrics.value("push_dead_letters_total", reason=reason) for _, reason in bad
        )
        await wait_until(lambda: written() == len(bad), what="every dead letter written")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.health_port}") as http:
            health = await http.get("/healthz")
            ready = await http.get("/readyz")
            metrics = (await http.get("/metrics")).text

    dead = await read_records(kafka_bootstrap, topics.dlq, len(bad))
    assert len(dead) == len(bad)
    by_key = {record.key: record for record in dead}
    for index, (value, reason) in enumerate(bad):
        record = by_key[f"bad-{index}".encode()]
        headers = {name: raw.decode() for name, raw in record.headers}
        assert record.value == value, "the original bytes are kept"
        assert headers["dlq.reason"] == reason
        assert headers["dlq.source_topic"] == topics.orders
        assert headers["dlq.source_partition"].isdigit()
        assert headers["dlq.source_offset"].isdigit()
        assert headers["dlq.message"]
    render_failure = {n: v.decode() for n, v in by_key[b"bad-7"].headers}
    assert "promo.code" in render_failure["dlq.message"]
    assert render_failure["dlq.event_id"] == "promo-1"
    assert sorted(u for p in imshop.pushes for u in p["userIds"]) == sorted(
        e["recipient"]["user_id"] for e in good
    )
    assert health.status_code == 200
    assert ready.status_code == 200
    assert 'push_dead_letters_total{reason="invalid_json"} 1.0' in metrics


async def test_provider_outage_then_recovery_loses_nothing_and_keeps_the_budget(
    kafka_bootstrap: str, topics: Topics, imshop: Any
) -> None:
    imshop.set_faults(Faults(error_rate=1.0, error_kind="http_503"))
    events = [order(f"out-{i}", f"7999222{i:04d}", f"C-{i}", "delivered", 1) for i in range(8)]
    await produce(kafka_bootstrap, [(topics.orders, b"k", encode(e)) for e in events])
    settings = e2e_settings(kafka_bootstrap, topics, imshop.url)

    async with running(Service(settings)) as service:
        retries = lambda: service.metrics.value(  # noqa: E731
            "push_retries_total", provider="imshop", reason="outcome_unknown"
        )
        await wait_until(lambda: retries() >= 5, what="retries during the outage")
        imshop.set_faults(Faults())
        await wait_until(lambda: total_outcomes(service) == len(events), what="all delivered")
        sent = service.metrics.value(
            "push_events_total", event_type="order.status_changed", outcome="sent"
        )

    assert sent == len(events), "the outage was waited out: nothing dead-lettered"
    assert sorted(delivered(imshop)) == sorted(
        (e["recipient"]["user_id"], *_text(imshop, e["recipient"]["user_id"])) for e in events
    )
    stats = imshop.stats()
    assert stats["violations"] == 0
    assert stats["max_in_window"] <= 5
    assert stats["fault_http_503"] >= 5


def _text(simulator: ImshopSimulator, user: str) -> tuple[str, str]:
    (push,) = [p for p in simulator.pushes if user in p["userIds"]]
    return push["message"]["title"], push["message"]["summary"]


async def test_a_template_fix_and_a_replay_deliver_what_was_dead_lettered(
    kafka_bootstrap: str, topics: Topics, imshop: Any, tmp_path: Path
) -> None:
    """The runbook's path: render_failed -> fix the mapping (hot reload) -> dlq replay -> sent."""
    write_failing_rule(tmp_path)
    promo = {
        "event_id": "promo-fix",
        "event_type": "promo.code_issued",
        "occurred_at": now_iso(),
        "recipient": {"user_id": "79990000088"},
        "promo": {"campaign": "autumn"},  # no code: the template cannot render
    }
    await produce(kafka_bootstrap, [(topics.orders, b"promo", encode(promo))])
    settings = e2e_settings(
        kafka_bootstrap,
        topics,
        imshop.url,
        mappings_dir=tmp_path,
        mappings={"reload_interval_s": 0.1},
    )

    async with running(Service(settings)) as service:
        failed = lambda: service.metrics.value(  # noqa: E731
            "push_dead_letters_total", reason="render_failed"
        )
        await wait_until(lambda: failed() == 1, what="the render failure dead-lettered")
        fixed = (
            (tmp_path / "promo.yaml")
            .read_text(encoding="utf-8")
            .replace(
                'summary: "Промокод {{ promo.code }} на следующий заказ"',
                "summary: '{% if promo.code %}Промокод {{ promo.code }} на следующий заказ"
                "{% else %}Для вас есть промокод{% endif %}'",
            )
        )
        (tmp_path / "promo.yaml").write_text(fixed, encoding="utf-8")
        reloaded = lambda: service.metrics.value(  # noqa: E731
            "mapping_reloads_total", result="loaded"
        )
        await wait_until(lambda: reloaded() == 1, what="the fixed mapping loaded")

        report = await replay(
            settings.kafka, topics.dlq, ReplayFilter(reasons=frozenset({"render_failed"}))
        )
        assert report.replayed == 1
        await wait_until(lambda: bool(imshop.pushes), what="the replayed push sent")

    (push,) = imshop.pushes
    assert push["userIds"] == ["79990000088"]
    assert push["message"]["summary"] == "Для вас есть промокод"


async def test_refused_order_pushes_replayed_into_the_running_service_are_delivered(
    kafka_bootstrap: str, topics: Topics, imshop: Any
) -> None:
    """The runbook's provider path: IMSHOP refuses order pushes for a while (each
    request reached it and was answered 400: dead letters), it is fixed, and
    `dlq replay` runs while the same service keeps running. Every replayed push
    is delivered, not taken for a status already shown by its own failed request."""
    imshop.set_faults(Faults(error_rate=1.0, error_kind="refused"))
    events = [
        order(f"rb-{i}", f"7999333{i:04d}", f"D-{i}", "handed_to_courier", 3) for i in range(5)
    ]
    await produce(
        kafka_bootstrap, [(topics.orders, e["order"]["id"].encode(), encode(e)) for e in events]
    )
    settings = e2e_settings(kafka_bootstrap, topics, imshop.url)

    async with running(Service(settings)) as service:
        written = lambda: service.metrics.value(  # noqa: E731
            "push_dead_letters_total", reason="provider_rejected"
        )
        await wait_until(lambda: written() == len(events), what="the refused pushes dead-lettered")
        assert imshop.pushes == []
        imshop.set_faults(Faults())

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
    assert sorted(user for user, _, _ in delivered(imshop)) == sorted(
        e["recipient"]["user_id"] for e in events
    )
    assert all(count == 1 for count in delivered(imshop).values())
    assert imshop.stats()["fault_refused"] == len(events)
