"""The history API as a process of its own: ``python -m consumer history serve``.

Why apart from ``run``: in Kubernetes a pod's readiness is one bit, and the
consumer's ``/readyz`` says whether it consumes Kafka. Were IMSHOP's history
served by the consumer's pods, a Kafka outage (or the consumer's own rollout:
one replica, ``Recreate``) would take the customers' history offline while the
database is fine. This process serves only the API, from the database: no Kafka
client, no provider, no mappings. Its ``/readyz`` follows the database alone;
its ``/healthz`` never fails for the database (a restart would not bring it
back); it scales on its own.

It does not prune: the pruner trims the customers the writer touched, which
only the writer (``run``) knows, and every lookup applies both bounds itself.

Start: the health server first, then the database (retried with backoff while
it cannot be reached, the probes saying why; a schema this version cannot use
stops it, exit 2), then the API. On SIGTERM it is not ready at once, the API
finishes the requests it holds within ``SHUTDOWN_GRACE_S``, then all closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from sqlalchemy.engine import URL

from consumer.clock import Clock, SystemClock
from consumer.errors import HistoryUnavailable, SettingsError
from consumer.health import HealthServer
from consumer.history.api import HistoryApi, served_token
from consumer.history.database import database_url, shown
from consumer.history.store import SqlHistoryStore
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.settings import HistoryAuth, HistorySettings, Settings
from consumer.signals import stop_on_signals

log = get_logger(__name__)

# How often the database is asked whether it answers, and how long an answer may take.
CHECK_INTERVAL_S = 2.0
CHECK_TIMEOUT_S = 5.0
FIRST_RETRY_S = 0.5  # connecting at start: doubled after each failure, up to the setting


class Pingable(Protocol):
    async def ping(self) -> None: ...


class DatabaseWatch:
    """Whether the database answers, as the probes read it: asked every ``interval_s``."""

    def __init__(
        self,
        clock: Clock,
        *,
        interval_s: float = CHECK_INTERVAL_S,
        timeout_s: float = CHECK_TIMEOUT_S,
    ) -> None:
        self._clock = clock
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._failing_since: float | None = None
        self.last_error = ""

    def answered(self) -> None:
        self._failing_since = None
        self.last_error = ""

    def failed(self, error: str) -> None:
        if self._failing_since is None:
            self._failing_since = self._clock.monotonic()
        self.last_error = error

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    def trouble(self) -> str:
        """Why the database is not usable now, or "" when it answers."""
        if self._failing_since is None:
            return ""
        failing = self._clock.monotonic() - self._failing_since
        return f"the history database has not answered for {failing:.0f} s ({self.last_error})"

    async def check(self, store: Pingable) -> bool:
        try:
            async with asyncio.timeout(self.timeout_s):
                await store.ping()
        except HistoryUnavailable as exc:
            self.failed(str(exc))
            return False
        except TimeoutError:
            self.failed(f"no answer within {self.timeout_s:g} s")
            return False
        self.answered()
        return True

    async def run(self, store: Pingable) -> None:
        """Ask forever; log when the database stops answering and when it is back."""
        while True:
            was_failing = self.failing
            if await self.check(store):
                if was_failing:
                    log.info("history_database_back")
            elif not was_failing:
                log.warning("history_database_down", error=self.last_error)
            await self._clock.sleep(self.interval_s)


class HistoryServer:
    """The history API, its probes and metrics, and the database: nothing else."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        check_interval_s: float = CHECK_INTERVAL_S,
        host: str = "0.0.0.0",
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self._host = host
        self._watch = DatabaseWatch(self.clock, interval_s=check_interval_s)
        self._stopping = False
        self._where = ""
        self.health_port: int | None = None
        self.api_port: int | None = None
        self.started = asyncio.Event()  # the API is up (tests and callers may wait for it)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; ``FatalError`` when the configuration cannot work."""
        history = self.settings.history
        token = required_token(history)
        url = database_url(history.database_url.get_secret_value())
        self._where = shown(url)
        async with contextlib.AsyncExitStack() as stack:
            health = HealthServer(
                self.metrics, liveness=self._liveness, readiness=self._readiness, host=self._host
            )
            self.health_port = await health.start(self.settings.service.health_port)
            stack.push_async_callback(health.stop)
            store = await self._open(url, stop)
            if store is None:
                return  # asked to stop before the database answered
            stack.push_async_callback(store.aclose)
            api = HistoryApi(store, history, self.metrics, self.clock, token=token, host=self._host)
            self.api_port = await api.start(history.port)
            stack.push_async_callback(self._close_api, api)
            log.info(
                "history_server_started",
                database=self._where,
                schema=store.revision,
                api_port=self.api_port,
                health_port=self.health_port,
            )
            async with asyncio.TaskGroup() as group:
                watch = group.create_task(self._watch.run(store), name="history-database-watch")
                self.started.set()
                await stop.wait()
                self._stopping = True
                watch.cancel()
        log.info("history_server_stopped")

    async def _open(self, url: URL, stop: asyncio.Event) -> SqlHistoryStore | None:
        """The store once the database answers (retried meanwhile); None if stopped first."""
        history = self.settings.history
        wait_s = FIRST_RETRY_S
        while not stop.is_set():
            try:
                store = await SqlHistoryStore.open(
                    url, migrate=history.migrate_at_start, metrics=self.metrics
                )
            except HistoryUnavailable as exc:
                self._watch.failed(str(exc))
                wait_s = min(wait_s, history.retry_max_backoff_s)
                log.warning("history_database_unreachable", error=str(exc), retry_in_s=wait_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait_s)
                wait_s *= 2
                continue
            self._watch.answered()
            return store
        return None

    async def _close_api(self, api: HistoryApi) -> None:
        """Requests being answered finish, within the grace period; no new ones are taken."""
        try:
            await asyncio.wait_for(api.stop(), self.settings.service.shutdown_grace_s)
        except TimeoutError:
            log.warning("close_timed_out", part="history_api")

    # ---- probes

    def _liveness(self) -> tuple[bool, str]:
        # A database outage is no reason to restart: the process answers, and resumes itself.
        return True, self._watch.trouble() or "serving"

    def _readiness(self) -> tuple[bool, str]:
        if self._stopping:
            return False, "stopping"
        if trouble := self._watch.trouble():
            return False, trouble
        if self.api_port is None:
            return False, f"starting: connecting to the history database at {self._where}"
        return True, f"the history database answers ({self._where})"


def required_token(settings: HistorySettings) -> str | None:
    """The token the API requires (None with ``HISTORY_AUTH=none``).

    Serving the API is this process's whole purpose, so where ``run`` only warns,
    a missing token or a disabled history stops it (``SettingsError``, exit 2).
    """
    if not settings.enabled:
        raise SettingsError(
            "HISTORY_ENABLED=false: there is no history to serve; `history serve` needs "
            "the history on (unset HISTORY_ENABLED)"
        )
    if settings.auth is HistoryAuth.TOKEN and not settings.auth_token.get_secret_value():
        raise SettingsError(
            "HISTORY_AUTH_TOKEN is empty, and `history serve` does not serve customers' "
            "histories to anyone who asks: set it to the token IMSHOP sends as "
            "`Authorization: Bearer`, or HISTORY_AUTH=none on a trusted local machine"
        )
    return served_token(settings)[1]


async def serve_history(settings: Settings) -> None:
    """``history serve``: until SIGTERM or SIGINT (a second one exits at once)."""
    await HistoryServer(settings).run(stop_on_signals())
