"""Pruning, on both backends: the per-customer bound and retention, in the background."""

from __future__ import annotations

import asyncio
import datetime as dt

from history_support import entry

from consumer.clock import FakeClock
from consumer.history.pruner import HistoryPruner, retention_cutoff_ms
from consumer.history.store import SqlHistoryStore
from consumer.metrics import Metrics
from consumer.settings import HistorySettings

NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)  # FakeClock's start
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 86_400_000


def pruner(store: SqlHistoryStore, **settings: object) -> tuple[HistoryPruner, Metrics, FakeClock]:
    metrics, clock = Metrics(), FakeClock()
    config = HistorySettings(**{"max_items_per_user": 3, "retention_days": 30, **settings})  # type: ignore[arg-type]
    return HistoryPruner(store, config, metrics, clock), metrics, clock


async def count(store: SqlHistoryStore, user: str) -> int:
    return len(await store.lookup(user, limit=1000, since_ms=0))


async def test_customers_written_to_keep_only_their_newest_items(store: SqlHistoryStore) -> None:
    prune, metrics, _ = pruner(store)
    await store.write(
        [entry(f"{u}-{i}", user=u, at_ms=NOW_MS - i) for u in ("u1", "u2") for i in range(5)]
    )
    prune.touched(["u1"])

    assert await prune.prune_once() == (2, 0)

    assert [i.title for i in await store.lookup("u1", limit=10, since_ms=0)] == [
        "title of u1-0",
        "title of u1-1",
        "title of u1-2",
    ]
    assert await count(store, "u2") == 5, "not written to since the last round: left for now"
    assert metrics.value("history_pruned_items_total", reason="max_items") == 2
    assert await prune.prune_once() == (0, 0), "a round forgets the customers it trimmed"


async def test_items_past_retention_go_whoever_they_belong_to(store: SqlHistoryStore) -> None:
    prune, metrics, _ = pruner(store, max_items_per_user=50)
    old = [entry(f"old-{i}", user=f"u{i}", at_ms=NOW_MS - 31 * DAY_MS) for i in range(1500)]
    await store.write([*old, entry("fresh", user="keeper", at_ms=NOW_MS - 29 * DAY_MS)])

    assert await prune.prune_once() == (0, 1500)  # in chunks of 1000

    assert await count(store, "u1") == 0
    assert await count(store, "u0") == 0
    assert metrics.value("history_pruned_items_total", reason="retention") == 1500
    assert [i.title for i in await store.lookup("keeper", limit=10, since_ms=0)] == [
        "title of fresh"
    ]


async def test_the_cutoff_follows_the_clock() -> None:
    clock = FakeClock()
    settings = HistorySettings(retention_days=1.5)

    assert retention_cutoff_ms(settings, clock) == NOW_MS - int(1.5 * DAY_MS)
    await clock.advance(60)
    assert retention_cutoff_ms(settings, clock) == NOW_MS - int(1.5 * DAY_MS) + 60_000


async def test_the_loop_prunes_every_interval(store: SqlHistoryStore) -> None:
    prune, _, clock = pruner(store, prune_interval_s=60)
    await store.write([entry(f"e{i}", at_ms=NOW_MS - i) for i in range(5)])
    prune.touched(["u1"])
    task = asyncio.create_task(prune.run())
    await asyncio.sleep(0)  # the loop starts its first wait
    try:
        await clock.advance(59)
        assert await count(store, "u1") == 5
        await clock.advance(1)
        for _ in range(200):  # the round's statements run on the database: bounded wait
            if await count(store, "u1") == 3:
                break
            await asyncio.sleep(0.01)
        assert await count(store, "u1") == 3
    finally:
        task.cancel()
