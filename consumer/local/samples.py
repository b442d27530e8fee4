"""Realistic sample events for the demo, the compose stack and benchmarks.

Orders walk through the shop's statuses (with growing versions), delivered orders
earn bonuses, and a marketing campaign warns many customers at once that the same
welcome bonus expires (identical text: it coalesces into few requests).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

COURIER_PATH = ["created", "confirmed", "assembling", "handed_to_courier", "delivered"]
PICKUP_PATH = ["created", "confirmed", "assembling", "ready_for_pickup", "delivered"]


@dataclass(frozen=True, slots=True)
class SampleRecord:
    topic: str
    key: bytes
    value: bytes
    event: dict[str, Any]


def _user(index: int) -> str:
    return f"7999{index:07d}"


def _order_events(
    rng: random.Random, order_no: int, user: str, at: dt.datetime
) -> Iterator[dict[str, Any]]:
    pickup = rng.random() < 0.3
    path = PICKUP_PATH if pickup else COURIER_PATH
    if rng.random() < 0.1:
        path = [*path[: rng.randint(1, 3)], "cancelled"]
    total = rng.choice([890, 1490, 2350, 4999, 12500])
    order: dict[str, Any] = {
        "id": f"A-{order_no}",
        "number": str(order_no),
        "total": {"amount": f"{total}.00", "currency": "RUB"},
        "items_count": rng.randint(1, 6),
        "delivery": (
            {"method": "pickup", "pickup_point": "ул. Ленина, 10"}
            if pickup
            else {"method": "courier", "eta": (at + dt.timedelta(hours=4)).isoformat()}
        ),
    }
    previous = None
    for version, status in enumerate(path, start=1):
        yield {
            "event_id": f"order-{order_no}-{version}",
            "event_type": "order.status_changed",
            "occurred_at": (at + dt.timedelta(seconds=version)).isoformat(),
            "recipient": {
                "user_id": user,
                "devices": [{"id_type": "appmetrica_device_id", "id": f"{user}0"}],
            },
            "order": {**order, "status": status, "previous_status": previous, "version": version},
        }
        previous = status
    if path[-1] == "delivered":
        yield {
            "event_id": f"bonus-{order_no}",
            "event_type": "bonus.accrued",
            "occurred_at": (at + dt.timedelta(seconds=10)).isoformat(),
            "recipient": {"user_id": user},
            "bonus": {"amount": total // 20, "order_id": order["id"], "reason": "purchase"},
        }


def _campaign_event(index: int, user: str, at: dt.datetime) -> dict[str, Any]:
    return {
        "event_id": f"expiring-{index}",
        "event_type": "bonus.expiring",
        "occurred_at": at.isoformat(),
        "recipient": {"user_id": user},
        "bonus": {"amount": 500, "expires_at": (at + dt.timedelta(days=7)).date().isoformat()},
    }


def sample_events(
    count: int, *, seed: int = 7, now: dt.datetime | None = None
) -> Iterator[dict[str, Any]]:
    """``count`` events: about two thirds order traffic, one third a bonus campaign."""
    rng = random.Random(seed)
    at = now or dt.datetime.now(dt.UTC)
    produced = 0
    order_no = 1000
    while produced < count:
        if rng.random() < 0.7:
            yield _campaign_event(produced, _user(rng.randrange(100_000)), at)
            produced += 1
            continue
        order_no += 1
        for event in _order_events(rng, order_no, _user(rng.randrange(100_000)), at):
            if produced >= count:
                return
            yield event
            produced += 1


def to_record(
    event: dict[str, Any], *, orders_topic: str = "orders", bonus_topic: str = "bonus"
) -> SampleRecord:
    """Order events keyed by order id (one order stays in order), bonus by user."""
    if event["event_type"].startswith("order."):
        topic, key = orders_topic, event["order"]["id"]
    else:
        topic, key = bonus_topic, event["recipient"].get("user_id", "")
    value = json.dumps(event, ensure_ascii=False).encode()
    return SampleRecord(topic=topic, key=key.encode(), value=value, event=event)


async def produce(bootstrap_servers: str, count: int, seed: int) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=20)
    try:
        await producer.start()
        for event in sample_events(count, seed=seed):
            record = to_record(event)
            await producer.send(record.topic, record.value, key=record.key)
        await producer.flush()
    finally:
        await producer.stop()
    return count


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("samples", help="sample events (for the demo and tests)")
    sub = parser.add_subparsers(metavar="ACTION", required=True)
    produce_parser = sub.add_parser(
        "produce", help="publish sample events to the topics `orders` and `bonus`"
    )
    produce_parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
        help="brokers (default: $KAFKA_BOOTSTRAP_SERVERS, else localhost:9092)",
    )
    produce_parser.add_argument("--count", type=int, default=200, help="how many events")
    produce_parser.add_argument("--seed", type=int, default=7, help="same seed, same events")
    produce_parser.set_defaults(func=_produce)
    show_parser = sub.add_parser("show", help="print sample events as JSON lines")
    show_parser.add_argument("--count", type=int, default=20, help="how many events")
    show_parser.add_argument("--seed", type=int, default=7, help="same seed, same events")
    show_parser.set_defaults(func=_show)


def _produce(args: argparse.Namespace) -> int:
    sent = asyncio.run(produce(args.bootstrap_servers, args.count, args.seed))
    print(f"produced {sent} sample events to orders and bonus at {args.bootstrap_servers}")
    return 0


def _show(args: argparse.Namespace) -> int:
    for event in sample_events(args.count, seed=args.seed):
        print(json.dumps(event, ensure_ascii=False))
    return 0
