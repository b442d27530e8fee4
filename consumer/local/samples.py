"""Realistic sample events for trying the service, the demo, the compose stack and benchmarks.

Orders walk through the shop's statuses (with growing versions), delivered orders
earn bonuses, and a marketing campaign warns many customers at once that the same
welcome bonus expires (identical text: it coalesces into few requests).
``samples produce`` publishes them; ``samples show`` prints them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from consumer.errors import FatalError
from consumer.kafka.clients import client_kwargs, connect
from consumer.settings import KafkaSettings, bootstrap_servers_arg, load_settings

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


def _campaign_event(run: str, index: int, user: str, at: dt.datetime) -> dict[str, Any]:
    return {
        "event_id": f"expiring-{run}-{index}",
        "event_type": "bonus.expiring",
        "occurred_at": at.isoformat(),
        "recipient": {"user_id": user},
        "bonus": {"amount": 500, "expires_at": (at + dt.timedelta(days=7)).date().isoformat()},
    }


def sample_events(
    count: int, *, seed: int | None = None, now: dt.datetime | None = None
) -> Iterator[dict[str, Any]]:
    """``count`` events: two in three order traffic, every third one the bonus campaign.

    Orders walk through their statuses between the campaign's events, so even a
    handful of events reaches both topics. The same ``seed`` gives the same events;
    without one, order numbers and event ids are fresh on every call, so a second
    run is not skipped as duplicates (or superseded versions) of the first.
    """
    rng = random.Random(seed)
    at = now or dt.datetime.now(dt.UTC)
    run = f"{rng.getrandbits(32):08x}"
    order_no = rng.randrange(100_000, 900_000)
    walk: Iterator[dict[str, Any]] = iter(())
    for index in range(count):
        if index % 3 == 2:
            yield _campaign_event(run, index, _user(rng.randrange(100_000)), at)
            continue
        event = next(walk, None)
        if event is None:
            order_no += 1
            walk = _order_events(rng, order_no, _user(rng.randrange(100_000)), at)
            event = next(walk)
        yield event


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


async def publish(kafka: KafkaSettings, records: Iterable[tuple[str, bytes, bytes]]) -> None:
    """Publish ``(topic, key, value)`` records and wait until every one is acknowledged."""
    producer = AIOKafkaProducer(**client_kwargs(kafka), linger_ms=20, acks="all")
    await connect(producer.start, producer.stop, kafka.bootstrap_servers)
    try:
        sent = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*sent)
    except KafkaError as exc:
        raise FatalError(f"publishing to Kafka at {kafka.bootstrap_servers} failed: {exc}") from exc
    finally:
        await producer.stop()


def describe(records: Iterable[SampleRecord]) -> str:
    """``"2 to bonus (bonus.expiring 2), 5 to orders (order.status_changed 5)"``."""
    by_topic: dict[str, Counter[str]] = {}
    for record in records:
        by_topic.setdefault(record.topic, Counter())[record.event["event_type"]] += 1
    return ", ".join(
        f"{sum(types.values())} to {topic} ("
        + ", ".join(f"{kind} {n}" for kind, n in sorted(types.items()))
        + ")"
        for topic, types in sorted(by_topic.items())
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("samples", help="sample events (for trying the service)")
    sub = parser.add_subparsers(metavar="ACTION", required=True)
    produce_parser = sub.add_parser(
        "produce",
        help="publish sample events to the topics `orders` and `bonus`",
        description="Publish sample events: orders walking through their statuses to "
        "`orders`, bonus accruals and a bonus campaign to `bonus`. Connects with the "
        "KAFKA_* settings (address and security), like the service.",
    )
    produce_parser.add_argument(
        "--bootstrap-servers",
        type=bootstrap_servers_arg,
        help="brokers (default: $KAFKA_BOOTSTRAP_SERVERS, else localhost:9092)",
    )
    produce_parser.add_argument("--count", type=int, default=20, help="how many events")
    produce_parser.add_argument("--seed", type=int, help=SEED_HELP)
    produce_parser.set_defaults(func=_produce)
    show_parser = sub.add_parser("show", help="print sample events as JSON lines")
    show_parser.add_argument("--count", type=int, default=20, help="how many events")
    show_parser.add_argument("--seed", type=int, help=SEED_HELP)
    show_parser.set_defaults(func=_show)


SEED_HELP = (
    "repeat a run: the same seed gives the same events and ids (a running service skips "
    "repeats as duplicates); without it, order numbers and ids are fresh each run"
)


def _produce(args: argparse.Namespace) -> int:
    overrides = {"bootstrap_servers": args.bootstrap_servers} if args.bootstrap_servers else {}
    kafka = load_settings(kafka=overrides).kafka
    records = [to_record(event) for event in sample_events(args.count, seed=args.seed)]
    asyncio.run(publish(kafka, [(r.topic, r.key, r.value) for r in records]))
    print(
        f"published {len(records)} sample events at {kafka.bootstrap_servers}: {describe(records)}"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    for event in sample_events(args.count, seed=args.seed):
        print(json.dumps(event, ensure_ascii=False))
    return 0
