"""Reach end to end: the real service, broker and IMSHOP simulator, the shipped mappings.

In a rush the service sends the rule's shared text to the customers the budget
cannot reach personally in time, while their history already holds the personal
text; a marketing push waits out its recipient's night, order news does not.
Time is compressed (the rules' times with it) so the test runs in seconds.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_harness import (
    HISTORY_TOKEN,
    MAPPINGS,
    e2e_settings,
    encode,
    make_topics,
    now_iso,
    order,
    produce,
    running,
    total_outcomes,
    wait_until,
)

from consumer.app import Service
from consumer.local.rush import compressed_mappings, daytime_zone, zone_where
from consumer.local.simulators.imshop import ImshopSimulator, SimulatorConfig

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

SHARED_TITLE = "Ваш заказ передан курьеру"


def courier(number: int) -> dict[str, Any]:
    event = order(f"rush-{number}", f"7993{number:07d}", f"R-{number}", "handed_to_courier", 4)
    event["order"]["delivery"] = {"method": "courier"}
    return event


def accrual(event_id: str, user: str, zone: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "bonus.accrued",
        "occurred_at": now_iso(),
        "timezone": zone,
        "recipient": {"user_id": user},
        "bonus": {"amount": 150, "balance": 1021},
    }


async def history_titles(service: Service, user: str) -> list[str]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"http://127.0.0.1:{service.history_port}/imshop/history",
            json={"userId": user},
            headers={"Authorization": f"Bearer {HISTORY_TOKEN}"},
        )
    return [item["title"].replace("\xa0", " ") for item in response.json()["history"]]


async def test_a_rush_gets_the_shared_text_and_each_history_the_personal_one(
    kafka_bootstrap: str, topic_factory: Any, unique_name: Any, tmp_path: Path
) -> None:
    # 60x: the window is 1 s (one request a window here), personal_within 90 s is 2 s.
    mappings = compressed_mappings(MAPPINGS, tmp_path / "mappings", 60)
    topics = await make_topics(topic_factory, unique_name)
    async with ImshopSimulator(SimulatorConfig(rate_limit=1, window_s=1.0)) as sim:
        settings = e2e_settings(
            kafka_bootstrap,
            topics,
            sim.url,
            mappings_dir=mappings,
            imshop={"url": sim.url, "rate_limit_requests": 1, "rate_limit_margin_s": 0.05},
        )
        async with running(Service(settings)) as service:
            rush = [courier(n) for n in range(8)]
            await produce(
                kafka_bootstrap,
                [(topics.orders, e["order"]["id"].encode(), encode(e)) for e in rush],
            )
            await wait_until(lambda: total_outcomes(service) >= 8, what="the rush's outcomes")
            shared = [p for p in sim.pushes if p["message"]["title"] == SHARED_TITLE]
            personal = [p for p in sim.pushes if p["message"]["title"] != SHARED_TITLE]
            assert shared, sim.pushes
            assert personal, sim.pushes
            told = [user for p in shared for user in p["userIds"]]
            assert len(told) > len(shared), "one shared request told several customers"
            assert sim.stats()["violations"] == 0
            for user in told:  # the personal text waits in their history
                number = int(user[4:])
                assert await history_titles(service, user) == [f"Курьер везёт заказ № R-{number}"]
            variants = {
                v: service.metrics.value(
                    "push_sent_variants_total", event_type="order.status_changed", variant=v
                )
                for v in ("personal", "shared")
            }
            assert variants == {"personal": len(personal), "shared": len(told)}


async def test_a_marketing_push_waits_out_its_recipient_s_night_and_order_news_does_not(
    kafka_bootstrap: str, topic_factory: Any, unique_name: Any
) -> None:
    now = dt.datetime.now(dt.UTC)
    day, night = daytime_zone(now), zone_where(now, 2)
    topics = await make_topics(topic_factory, unique_name)
    async with ImshopSimulator(SimulatorConfig(rate_limit=5, window_s=1.0)) as sim:
        settings = e2e_settings(kafka_bootstrap, topics, sim.url)
        async with running(Service(settings)) as service:
            news = order("news", "79930000003", "N-1", "confirmed", 2)
            news["timezone"] = night
            events = [
                accrual("awake", "79930000001", day),
                accrual("asleep", "79930000002", night),
            ]
            await produce(
                kafka_bootstrap,
                [(topics.bonus, e["event_id"].encode(), encode(e)) for e in events]
                + [(topics.orders, b"N-1", encode(news))],
            )
            await wait_until(lambda: total_outcomes(service) >= 2, what="two pushes sent")
            await wait_until(
                lambda: service.metrics.value("push_pending_events") == 1,
                what="the night's push held",
            )
            told = {user for p in sim.pushes for user in p["userIds"]}
            assert told == {"79930000001", "79930000003"}
            # Held, not lost: it waits in the dispatcher, its offset uncommitted.
            assert total_outcomes(service) == 2
