"""Shared pieces of the end-to-end tests: topics, settings, the service, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from consumer.app import Service
from consumer.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
MAPPINGS = REPO / "mappings"
HISTORY_TOKEN = "history-test-token"
# Each service gets its own SQLite history in here (removed when the session ends).
_HISTORY_DIR = tempfile.TemporaryDirectory(prefix="e2e-history-")


def history_sqlite_url() -> str:
    return f"sqlite:///{_HISTORY_DIR.name}/{uuid.uuid4().hex[:12]}.sqlite3"


@dataclass(frozen=True)
class Topics:
    orders: str
    bonus: str
    dlq: str
    group: str


async def make_topics(topic_factory: Any, unique_name: Callable[[str], str]) -> Topics:
    return Topics(
        orders=await topic_factory(prefix="orders", partitions=3),
        bonus=await topic_factory(prefix="bonus", partitions=3),
        dlq=await topic_factory(prefix="dlq", partitions=1),
        group=unique_name("group"),
    )


def e2e_settings(
    bootstrap: str,
    topics: Topics,
    push_url: str,
    *,
    mappings_dir: Path = MAPPINGS,
    **sections: dict[str, Any],
) -> Settings:
    """Small windows and short intervals, so each test runs in seconds."""
    base: dict[str, dict[str, Any]] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [topics.orders, topics.bonus],
            "group_id": topics.group,
            "dlq_topic": topics.dlq,
            "commit_interval_s": 0.2,
            "session_timeout_ms": 6000,
        },
        "imshop": {
            "url": push_url,
            "api_key": "test-key",
            "rate_limit_requests": 5,
            "rate_limit_window_s": 1.0,
            "rate_limit_margin_s": 0.1,
            "assume_window_used_at_start": False,
            "timeout_s": 2.0,
        },
        "dispatch": {"retry_initial_backoff_s": 0.05, "retry_max_backoff_s": 0.5},
        "mappings": {"dir": mappings_dir},
        "history": {
            "database_url": history_sqlite_url(),
            "port": 0,
            "auth_token": HISTORY_TOKEN,
            "retry_max_backoff_s": 0.5,
        },
        "service": {"health_port": 0, "shutdown_grace_s": 5.0},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return load_settings(**base)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def order(event_id: str, user: str, order_id: str, status: str, version: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "order.status_changed",
        "occurred_at": now_iso(),
        "recipient": {"user_id": user},
        "order": {"id": order_id, "number": order_id, "status": status, "version": version},
    }


# Ahead of any test run: the shipped rule sends nothing for points already expired.
CAMPAIGN_EXPIRES = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).date().isoformat()


def expiring(event_id: str, user: str, amount: int = 500) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "bonus.expiring",
        "occurred_at": now_iso(),
        "recipient": {"user_id": user},
        "bonus": {"amount": amount, "expires_at": CAMPAIGN_EXPIRES},
    }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


async def produce(
    bootstrap: str,
    records: Iterable[tuple[str, bytes | None, bytes | None]],
    *,
    max_bytes: int = 2_000_000,
) -> dict[TopicPartition, int]:
    """Publish (topic, key, value) records; return each partition's end offset after them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=max_bytes)
    await producer.start()
    ends: dict[TopicPartition, int] = {}
    try:
        sent = [await producer.send(topic, value, key=key) for topic, key, value in records]
        for future in sent:
            meta = await future
            tp = TopicPartition(meta.topic, meta.partition)
            ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
    finally:
        await producer.stop()
    return ends


async def wait_until(
    condition: Callable[[], bool], *, timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """Poll a condition every 50 ms; fail with ``what`` after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def running(service: Service) -> contextlib.AbstractAsyncContextManager[Service]:
    """Run the service in this event loop; stop it gracefully on exit."""
    return service.serving(ready_timeout_s=30)


def outcomes(service: Service) -> dict[tuple[str, str], float]:
    """Events counted by (event_type, outcome) so far."""
    return service.metrics.outcome_counts()


def total_outcomes(service: Service) -> float:
    return sum(outcomes(service).values())


async def committed_offsets(
    admin: AIOKafkaAdminClient, group: str, timeout_s: float = 30
) -> dict[TopicPartition, int]:
    """The group's committed offsets. A broker just thawed or restarted takes a moment
    to elect the group's coordinator, so a retriable error is asked again (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            answer = await admin.list_consumer_group_offsets(group)
        except KafkaError as exc:
            if not exc.retriable or loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        return {tp: meta.offset for tp, meta in answer.items()}


async def wait_committed(
    admin: AIOKafkaAdminClient, group: str, ends: dict[TopicPartition, int], timeout_s: float = 20
) -> None:
    """Wait until the group has committed every partition up to its end offset."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        committed = await committed_offsets(admin, group)
        behind = {
            tp: (committed.get(tp), end) for tp, end in ends.items() if committed.get(tp) != end
        }
        if not behind:
            return
        if loop.time() > deadline:
            raise AssertionError(f"offsets not committed to the end: {behind}")
        await asyncio.sleep(0.1)
