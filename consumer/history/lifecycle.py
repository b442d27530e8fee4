"""The history's parts in the service: opened together, run together, closed in order."""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from consumer.clock import Clock
from consumer.errors import HistoryDatabaseError, HistoryUnavailable
from consumer.history.api import HistoryApi, served_token
from consumer.history.database import database_url, shown
from consumer.history.pruner import HistoryPruner
from consumer.history.store import SqlHistoryStore
from consumer.history.writer import HistoryWriter, Reject, Release
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.settings import HistorySettings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class History:
    store: SqlHistoryStore
    writer: HistoryWriter
    pruner: HistoryPruner
    api: HistoryApi | None
    where: str  # the database, password hidden

    def loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The background loops, by task name, for the service's TaskGroup."""
        return {"history-writer": self.writer.run(), "history-pruner": self.pruner.run()}


async def open_history(
    stack: contextlib.AsyncExitStack,
    settings: HistorySettings,
    *,
    metrics: Metrics,
    clock: Clock,
    release: Release,
    reject: Reject,
) -> History | None:
    """Connect, prepare the schema, start the API; None when the history is off.

    A database that cannot be reached at start stops the service with a clear
    message (an orchestrator restarts it); later outages are retried instead.
    """
    if not settings.enabled:
        log.info("history_disabled", detail="HISTORY_ENABLED=false: nothing is written or served")
        return None
    url = database_url(settings.database_url.get_secret_value())
    try:
        store = await SqlHistoryStore.open(url, migrate=settings.migrate_at_start, metrics=metrics)
    except HistoryUnavailable as exc:
        raise HistoryDatabaseError(
            f"the history database cannot be reached at start: {exc}. Start it or fix "
            "HISTORY_DATABASE_URL (HISTORY_ENABLED=false runs without a history)"
        ) from None
    stack.push_async_callback(store.aclose)
    pruner = HistoryPruner(store, settings, metrics, clock)
    writer = HistoryWriter(
        store,
        release=release,
        reject=reject,
        metrics=metrics,
        clock=clock,
        retry_max_s=settings.retry_max_backoff_s,
        on_written=pruner.touched,
    )
    api = await _start_api(stack, store, settings, metrics, clock)
    where = shown(url)
    log.info(
        "history_opened",
        database=where,
        schema=store.revision,
        api_port=api.port if api else None,
        api=None if settings.api_in_run else "served apart (HISTORY_API_IN_RUN=false)",
    )
    return History(store, writer, pruner, api, where)


async def _start_api(
    stack: contextlib.AsyncExitStack,
    store: SqlHistoryStore,
    settings: HistorySettings,
    metrics: Metrics,
    clock: Clock,
) -> HistoryApi | None:
    """The API in this process, unless ``history serve`` serves it apart or it has no token."""
    if not settings.api_in_run:
        return None  # a choice, not a problem: no warning, and no token needed here
    serve, token = served_token(settings)
    if not serve:
        return None
    api = HistoryApi(store, settings, metrics, clock, token=token)
    await api.start(settings.port)
    stack.push_async_callback(api.stop)
    return api
