"""History lookup: one customer's history read from a store holding a million items.

For each backend (SQLite in a temporary file; PostgreSQL in a throwaway
``LocalPostgres`` cluster, durable settings, when its binaries are here) the
table is filled with ``items`` rows: ``customers`` customers with an equal
share each (50 by default, the per-customer bound), times spread over the
retention period, through the store's own schema (migrated as the service does
it) and then ANALYZEd as a running database would be. Then ``lookups`` random
customers are read one after another, in random order, timed twice: the store's
``lookup`` alone (what the database costs) and the whole HTTP request IMSHOP
makes (``POST /imshop/history`` with the token, over loopback: auth, JSON and
all). The figures are p50 and p99 of each.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from consumer.clock import SystemClock
from consumer.errors import FatalError
from consumer.history.api import HistoryApi
from consumer.history.database import database_url
from consumer.history.pruner import retention_cutoff_ms
from consumer.history.schema import items
from consumer.history.store import SqlHistoryStore
from consumer.local.bench.support import percentile
from consumer.local.postgres import LocalPostgres
from consumer.metrics import Metrics
from consumer.settings import HistorySettings

_TOKEN = "bench-history-token"
_CHUNK = 20_000
_COLUMNS = ("user_id", "item_key", "event_id", "rule_id", "title", "text", "deeplink")


async def measure(
    *, items_total: int, lookups: int, postgres_url: str | None = None
) -> dict[str, Any]:
    """The figures; ``postgres_url``: an empty database to use instead of a new cluster."""
    figures: dict[str, Any] = {"history_items": items_total, "history_lookups": lookups}
    with tempfile.TemporaryDirectory(prefix="bench-history-") as directory:
        sqlite_url = f"sqlite:///{Path(directory) / 'history.sqlite3'}"
        figures |= await _backend("sqlite", sqlite_url, items_total, lookups)
    if postgres_url is not None:
        return figures | await _backend("postgresql", postgres_url, items_total, lookups)
    try:
        postgres = LocalPostgres()
        postgres.start()  # on this thread: the server lives as long as it does
    except FatalError as exc:
        figures["history_postgresql"] = f"skipped: {exc}"
        return figures
    try:
        figures |= await _backend("postgresql", postgres.url, items_total, lookups)
    finally:
        postgres.stop()
    return figures


async def _backend(name: str, url: str, items_total: int, lookups: int) -> dict[str, Any]:
    settings = HistorySettings(max_items_per_user=50, retention_days=90)
    customers = max(1, items_total // settings.max_items_per_user)
    store = await SqlHistoryStore.open(database_url(url), migrate=True)
    try:
        started = time.monotonic()
        await _fill(store, items_total, customers, settings)
        fill_s = time.monotonic() - started
        store_ms, http_ms, shown = await _lookups(store, settings, customers, lookups)
    finally:
        await store.aclose()
    return {
        f"history_{name}_fill_s": round(fill_s, 1),
        f"history_{name}_lookup_p50_ms": round(percentile(store_ms, 0.5), 2),
        f"history_{name}_lookup_p99_ms": round(percentile(store_ms, 0.99), 2),
        f"history_{name}_http_p50_ms": round(percentile(http_ms, 0.5), 2),
        f"history_{name}_http_p99_ms": round(percentile(http_ms, 0.99), 2),
        f"history_{name}_items_per_answer": shown,
    }


def _rows(total: int, customers: int, settings: HistorySettings) -> Iterator[dict[str, Any]]:
    """``total`` items, round-robin over customers, times spread over the retention period."""
    newest = int(time.time() * 1000)
    span = int(settings.retention_days * 86_400_000) - 60_000
    rng = random.Random(5)
    for index in range(total):
        user = f"7999{index % customers:07d}"
        at = newest - rng.randrange(span)
        yield {
            "user_id": user,
            "item_key": f"c:order-{index}",
            "event_id": f"e{index}",
            "rule_id": "orders.yaml:order_shipped",
            "title": f"Заказ №{index} передан курьеру",
            "text": "Курьер привезёт заказ сегодня с 14:00 до 16:00.",
            "deeplink": f"imshop://orders/{index}",
            "version": 3,
            "created_on": at,
            "updated_on": at,
        }


async def _fill(
    store: SqlHistoryStore, total: int, customers: int, settings: HistorySettings
) -> None:
    rows = _rows(total, customers, settings)
    if store.backend == "postgresql":
        await _copy(store, rows)
    else:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == _CHUNK:
                await _insert(store, chunk)
                chunk = []
        if chunk:
            await _insert(store, chunk)
    async with store.engine.begin() as connection:
        await connection.exec_driver_sql("ANALYZE")


async def _insert(store: SqlHistoryStore, chunk: list[dict[str, Any]]) -> None:
    async with store.engine.begin() as connection:
        await connection.execute(sa.insert(items), chunk)


async def _copy(store: SqlHistoryStore, rows: Iterator[dict[str, Any]]) -> None:
    """PostgreSQL's COPY: a million rows in seconds (the bench measures reads, not this)."""
    columns = [*_COLUMNS, "version", "created_on", "updated_on"]
    async with store.engine.begin() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(
            "history_items",
            records=(tuple(r[c] for c in columns) for r in rows),
            columns=columns,
            timeout=600,  # not the service's 30 s statement limit: a million rows
        )


async def _lookups(
    store: SqlHistoryStore, settings: HistorySettings, customers: int, lookups: int
) -> tuple[list[float], list[float], int]:
    rng = random.Random(9)
    users = [f"7999{rng.randrange(customers):07d}" for _ in range(lookups)]
    clock = SystemClock()
    store_ms: list[float] = []
    for user in users:
        started = time.perf_counter()
        await store.lookup(
            user,
            limit=settings.max_items_per_user,
            since_ms=retention_cutoff_ms(settings, clock),
        )
        store_ms.append((time.perf_counter() - started) * 1000)
    api = HistoryApi(store, settings, Metrics(), clock, token=_TOKEN, host="127.0.0.1")
    port = await api.start(0)
    http_ms: list[float] = []
    shown = 0
    try:
        headers = {"Authorization": f"Bearer {_TOKEN}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for user in users:
                started = time.perf_counter()
                response = await client.post(
                    "/imshop/history", json={"userId": user}, headers=headers
                )
                http_ms.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                shown = max(shown, len(response.json()["history"]))
    finally:
        await api.stop()
    return store_ms, http_ms, shown
