"""Pieces every benchmark shares: topics, fast producing, quiet logs, statistics.

Nothing here is timed itself; the benchmarks time around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import statistics
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from consumer.errors import FatalError
from consumer.kafka.clients import connect
from consumer.local.kafka_topics import create_topics, delete_topics
from consumer.local.samples import sample_events
from consumer.logs import configure_logging
from consumer.metrics import Metrics
from consumer.settings import LogFormat, MappingSettings, Settings, load_settings

_ID_MARK = "@@event-id@@"
# The services a benchmark runs keep their SQLite histories in here (removed at exit).
_HISTORY_DIR = tempfile.TemporaryDirectory(prefix="bench-history-")


def history_sqlite_url() -> str:
    """A fresh SQLite history file, so no run sees another's items."""
    return f"sqlite:///{_HISTORY_DIR.name}/{uuid.uuid4().hex[:10]}.sqlite3"


def unique(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:10]}"


def quiet_logs() -> None:
    """JSON logs at info into /dev/null: the service pays for every line, nobody reads them."""
    configure_logging("info", LogFormat.JSON, stream=open(os.devnull, "w"))  # noqa: SIM115


async def create_topic(bootstrap: str, name: str, partitions: int = 3) -> str:
    """Create ``name`` and its dead-letter topic ``name-dlq`` (the service checks that
    one at start: brokers without topic auto-creation would refuse it) and wait (30 s
    at most) until every partition has a leader."""
    await create_topics(bootstrap, {name: partitions, f"{name}-dlq": 1})
    return name


@contextlib.asynccontextmanager
async def own_topics_deleted(bootstrap: str) -> AsyncIterator[None]:
    """Delete the ``bench-`` topics that appear during the block: on a broker we did
    not start, the run leaves nothing behind (its topics, and the dead-letter topics
    the service created)."""
    before = set(await list_topics(bootstrap))
    try:
        yield
    finally:
        with contextlib.suppress(FatalError):
            after = await list_topics(bootstrap)
            created = sorted(t for t in after if t.startswith("bench-") and t not in before)
            if created:
                await delete_topics(bootstrap, created)


async def list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await connect(admin.start, admin.close, bootstrap)
    try:
        topics: list[str] = await admin.list_topics()
        return topics
    finally:
        await admin.close()


def sample_values(count: int, *, distinct: int = 2000, seed: int = 11) -> Iterator[bytes]:
    """``count`` realistic event values (the sample mix) with unique event ids.

    A few thousand distinct events are rendered once and reused with a fresh id,
    so producing a million costs a bytes replace per record, not a JSON dump.
    """
    templates = []
    for event in sample_events(distinct, seed=seed):
        templates.append(json.dumps({**event, "event_id": _ID_MARK}, ensure_ascii=False).encode())
    mark = _ID_MARK.encode()
    for index in range(count):
        yield templates[index % distinct].replace(mark, f"e{index}".encode(), 1)


async def produce_values(
    bootstrap: str, topic: str, values: Iterator[bytes], *, partitions: int = 3
) -> int:
    """Publish values round-robin over partitions in whole batches (fast: no per-record future)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    produced, partition = 0, 0
    pending: list[asyncio.Future[Any]] = []
    try:
        batch = producer.create_batch()
        for value in values:
            if batch.append(key=None, value=value, timestamp=None) is None:
                pending.append(await producer.send_batch(batch, topic, partition=partition))
                partition = (partition + 1) % partitions
                batch = producer.create_batch()
                batch.append(key=None, value=value, timestamp=None)
                if len(pending) > 64:
                    await asyncio.gather(*pending)
                    pending.clear()
            produced += 1
        if batch.record_count():
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return produced


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (the smallest value with at least ``fraction`` at or below it)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def optimal_requests(recipients_per_text: Sequence[int], cap: int) -> int:
    """The fewest requests that deliver every text: one message per request, ``cap`` ids each."""
    return sum(math.ceil(n / cap) for n in recipients_per_text if n > 0)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def repo_mappings() -> Path:
    """The shipped mappings (the repository's), else ``MAPPINGS_DIR``'s default."""
    shipped = Path(__file__).resolve().parents[2] / "mappings"
    return shipped if shipped.is_dir() else MappingSettings().dir


def service_settings(bootstrap: str, topic: str, **sections: dict[str, Any]) -> Settings:
    """Settings for a service under test: one topic, a fresh group, no health port clash."""
    base: dict[str, dict[str, Any]] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "group_id": unique("group"),
            "dlq_topic": f"{topic}-dlq",
            "commit_interval_s": 1.0,
        },
        "mappings": {"dir": repo_mappings()},
        "history": {"database_url": history_sqlite_url(), "port": 0},
        "service": {"health_port": 0, "shutdown_grace_s": 5.0},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return load_settings(**base)


def outcomes_recorded(metrics: Metrics) -> int:
    """Events with an outcome so far (every outcome, every type)."""
    total = 0.0
    for metric in metrics.events.collect():
        total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return int(total)
