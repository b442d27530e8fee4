"""Keeping the history bounded, in the background, in small steps.

Two bounds: at most ``HISTORY_MAX_ITEMS_PER_USER`` items per customer (the
oldest go first) and none older than ``HISTORY_RETENTION_DAYS`` (by the time of
the event they show). Every ``HISTORY_PRUNE_INTERVAL_S`` the pruner trims the
customers written to since its last round (a customer's count only grows by a
write), a chunk of customers per statement, then deletes expired items a chunk
per statement. Each statement is a short transaction of its own, so the writer
never waits long behind it. The lookup applies both bounds itself, so what
IMSHOP sees never depends on when the pruner last ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from consumer.clock import Clock
from consumer.errors import HistoryUnavailable
from consumer.history.store import HistoryStore
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.settings import HistorySettings

log = get_logger(__name__)

USERS_PER_STATEMENT = 500
# Customers remembered between rounds; past it the rest wait for retention (bounded memory).
MAX_TOUCHED = 1_000_000
ITEMS_PER_STATEMENT = 1_000
_DAY_MS = 86_400_000


def retention_cutoff_ms(settings: HistorySettings, clock: Clock) -> int:
    """Items last updated before this (Unix ms) are past retention."""
    return int(clock.now().timestamp() * 1000 - settings.retention_days * _DAY_MS)


class HistoryPruner:
    def __init__(
        self, store: HistoryStore, settings: HistorySettings, metrics: Metrics, clock: Clock
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._touched: set[str] = set()

    def touched(self, user_ids: Iterable[str]) -> None:
        """These customers got items: trim them in the next round."""
        if len(self._touched) < MAX_TOUCHED:
            self._touched.update(user_ids)

    async def run(self) -> None:
        while True:
            await self._clock.sleep(self._settings.prune_interval_s)
            try:
                await self.prune_once()
            except HistoryUnavailable as exc:  # the writer reports outages; try next round
                log.warning("history_prune_failed", error=str(exc))

    async def prune_once(self) -> tuple[int, int]:
        """One round: (items over the per-customer bound, items past retention) removed."""
        over = await self._trim_customers()
        expired = await self._expire()
        if over or expired:
            log.info("history_pruned", over_max_items=over, past_retention=expired)
        return over, expired

    async def _trim_customers(self) -> int:
        users, self._touched = sorted(self._touched), set()
        removed = 0
        for start in range(0, len(users), USERS_PER_STATEMENT):
            chunk = users[start : start + USERS_PER_STATEMENT]
            try:
                count = await self._store.prune_users(chunk, keep=self._settings.max_items_per_user)
            except HistoryUnavailable:
                self._touched.update(users[start:])  # keep the rest for the next round
                raise
            removed += count
            self._metrics.history_pruned.labels("max_items").inc(count)
            await asyncio.sleep(0)  # let the writer's transaction in between
        return removed

    async def _expire(self) -> int:
        cutoff = retention_cutoff_ms(self._settings, self._clock)
        removed = 0
        while True:
            count = await self._store.prune_before(cutoff, limit=ITEMS_PER_STATEMENT)
            removed += count
            self._metrics.history_pruned.labels("retention").inc(count)
            if count < ITEMS_PER_STATEMENT:
                return removed
            await asyncio.sleep(0)
