"""``history serve``: the history API apart from Kafka, over real HTTP, on both backends.

Its readiness follows the database alone: the PostgreSQL tests stop the session's
server and start it again, as the service's own outage test does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from history_support import entry
from structlog.testing import capture_logs

from consumer.clock import SystemClock
from consumer.errors import SettingsError
from consumer.history.database import database_url
from consumer.history.lifecycle import open_history
from consumer.history.server import HistoryServer
from consumer.history.store import SqlHistoryStore
from consumer.local.kafka_process import free_ports
from consumer.local.postgres import LocalPostgres
from consumer.metrics import Metrics
from consumer.settings import (
    HistorySettings,
    KafkaSettings,
    ServiceSettings,
    Settings,
)

TOKEN = "history-serve-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NO_BROKER = "127.0.0.1:9"  # nothing listens there: the server must not need Kafka
WAIT_S = 30.0


def settings_for(url: str, **history: Any) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=NO_BROKER),
        history=HistorySettings(
            database_url=url,  # type: ignore[arg-type]
            auth_token=TOKEN,  # type: ignore[arg-type]
            port=0,
            **history,
        ),
        service=ServiceSettings(health_port=0, shutdown_grace_s=5),
    )


class Running:
    """A ``HistoryServer`` in this event loop, and a client for its two ports."""

    def __init__(self, server: HistoryServer, client: httpx.AsyncClient) -> None:
        self.server = server
        self.client = client

    async def history(self, user: str, headers: dict[str, str] = AUTH) -> httpx.Response:
        return await self.client.post(
            f"http://127.0.0.1:{self.server.api_port}/imshop/history",
            json={"userId": user},
            headers=headers,
        )

    async def probe(self, path: str) -> tuple[int, str]:
        response = await self.client.get(f"http://127.0.0.1:{self.server.health_port}{path}")
        return response.status_code, response.json()["detail"]

    async def until_ready(self, ready: bool) -> str:
        """Poll ``/readyz`` (bounded) until it says ``ready``; its detail then."""
        deadline = time.monotonic() + WAIT_S
        while True:
            status, detail = await self.probe("/readyz")
            if (status == 200) is ready:
                return detail
            assert time.monotonic() < deadline, f"/readyz stayed {status}: {detail}"
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def serving(settings: Settings, *, wait_started: bool = True) -> AsyncIterator[Running]:
    server = HistoryServer(settings, check_interval_s=0.1, host="127.0.0.1")
    stop = asyncio.Event()
    task = asyncio.create_task(server.run(stop))
    try:
        deadline = time.monotonic() + WAIT_S

        def up() -> bool:  # the API serving, or (database down at start) only the probes
            return server.started.is_set() if wait_started else server.health_port is not None

        while not up():
            assert not task.done(), task.result()
            assert time.monotonic() < deadline, "the history server did not start"
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(timeout=10) as client:
            yield Running(server, client)
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)


def now_ms() -> int:
    return int(time.time() * 1000)


async def write(url: str, *entries: Any) -> None:
    """As the consumer's writer would: another process's store on the same database."""
    store = await SqlHistoryStore.open(database_url(url), migrate=True)
    try:
        await store.write(list(entries))
    finally:
        await store.aclose()


async def test_serve_answers_imshop_over_http_with_probes_and_metrics(history_url: str) -> None:
    async with serving(settings_for(history_url)) as running:
        await write(history_url, entry("e1", user="u1", at_ms=now_ms(), title="Заказ 1 принят"))
        answer = await running.history("u1")
        refused = await running.history("u1", headers={})
        ready = await running.probe("/readyz")
        live = await running.probe("/healthz")
        metrics = (
            await running.client.get(f"http://127.0.0.1:{running.server.health_port}/metrics")
        ).text
        api_port = running.server.api_port

    assert answer.status_code == 200
    assert [item["title"] for item in answer.json()["history"]] == ["Заказ 1 принят"]
    assert refused.status_code == 401
    assert ready[0] == 200
    assert ready[1].startswith("the history database answers")
    assert live == (200, "serving")
    assert 'history_requests_total{endpoint="history",status="200"} 1.0' in metrics
    with pytest.raises(httpx.ConnectError):  # stopped: the port is closed
        await httpx.AsyncClient().post(f"http://127.0.0.1:{api_port}/imshop/history")


@pytest.fixture
def stoppable_postgres(postgres_server: LocalPostgres | str) -> LocalPostgres:
    if not isinstance(postgres_server, LocalPostgres):
        pytest.skip("stopping the database needs the tests' own PostgreSQL")
    return postgres_server


async def test_readiness_follows_the_database_down_and_back(
    stoppable_postgres: LocalPostgres, fresh_postgres_url: str
) -> None:
    await write(fresh_postgres_url, entry("e1", user="u1", at_ms=now_ms()))
    async with serving(settings_for(fresh_postgres_url)) as running:
        await running.until_ready(True)
        stoppable_postgres.stop_server()
        try:
            down = await running.until_ready(False)
            live_down = await running.probe("/healthz")
            answer_down = await running.history("u1")
        finally:
            stoppable_postgres.start_server()
        back = await running.until_ready(True)
        answer_back = await running.history("u1")

    assert "the history database has not answered" in down
    database = database_url(fresh_postgres_url).render_as_string(hide_password=True)
    assert f"at {database} failed: " in down, down  # where, and the driver's reason
    assert live_down[0] == 200, "a database outage is no reason to restart the API"
    assert "has not answered" in live_down[1]
    assert answer_down.status_code == 503
    assert answer_down.json()["error"] == "unavailable"
    assert back.startswith("the history database answers")
    assert answer_back.status_code == 200
    assert len(answer_back.json()["history"]) == 1


async def test_a_database_down_at_start_is_waited_for_not_fatal(
    stoppable_postgres: LocalPostgres, fresh_postgres_url: str
) -> None:
    settings = settings_for(fresh_postgres_url, retry_max_backoff_s=0.2)
    stoppable_postgres.stop_server()
    try:
        async with serving(settings, wait_started=False) as running:
            waiting = await running.until_ready(False)
            live = await running.probe("/healthz")
            stoppable_postgres.start_server()
            ready = await running.until_ready(True)
            answer = await running.history("nobody")
    finally:
        stoppable_postgres.start_server()

    assert "has not answered" in waiting, waiting
    assert live[0] == 200
    assert ready.startswith("the history database answers")
    assert answer.json() == {"history": []}


@pytest.mark.parametrize(
    ("history", "named"),
    [
        ({"auth_token": ""}, "HISTORY_AUTH_TOKEN is empty"),
        ({"enabled": False}, "HISTORY_ENABLED=false"),
    ],
)
async def test_serve_refuses_what_it_cannot_serve(
    tmp_path: Path, history: dict[str, Any], named: str
) -> None:
    settings = settings_for(f"sqlite:///{tmp_path}/h.sqlite3").model_copy(
        update={"history": HistorySettings(port=0, **history)}
    )

    with pytest.raises(SettingsError, match=named):
        await HistoryServer(settings).run(asyncio.Event())


async def test_run_without_the_api_serves_none_and_warns_of_nothing(tmp_path: Path) -> None:
    """``HISTORY_API_IN_RUN=false``: no token needed, no warning at every start."""
    settings = HistorySettings(
        database_url=f"sqlite:///{tmp_path}/h.sqlite3",  # type: ignore[arg-type]
        api_in_run=False,
    )
    with capture_logs() as logs:
        async with contextlib.AsyncExitStack() as stack:
            history = await open_history(
                stack,
                settings,
                metrics=Metrics(),
                clock=SystemClock(),
                release=lambda _job: None,
                reject=lambda _job, _error: None,
            )

    assert history is not None
    assert history.api is None
    assert [log for log in logs if log["log_level"] in ("warning", "error")] == []
    (opened,) = [log for log in logs if log["event"] == "history_opened"]
    assert "HISTORY_API_IN_RUN=false" in opened["api"]


def test_the_command_stops_on_sigterm_and_exits_0(tmp_path: Path) -> None:
    health, api = free_ports(2)
    env = {
        **os.environ,
        "HISTORY_DATABASE_URL": f"sqlite:///{tmp_path}/h.sqlite3",
        "HISTORY_AUTH_TOKEN": TOKEN,
        "HISTORY_PORT": str(api),
        "HEALTH_PORT": str(health),
        "KAFKA_BOOTSTRAP_SERVERS": NO_BROKER,
        "LOG_FORMAT": "json",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "consumer", "history", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            assert process.poll() is None, process.communicate()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{health}/readyz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.1)
        answer = httpx.post(
            f"http://127.0.0.1:{api}/imshop/history", json={"userId": "u"}, headers=AUTH
        )
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    assert answer.json() == {"history": []}
    assert process.returncode == 0, err
    assert '"history_server_stopped"' in err
