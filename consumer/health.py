"""Health and metrics over HTTP: ``/healthz``, ``/readyz``, ``/metrics``.

``/healthz`` answers 200 while the service is making progress (the consume loop
polled Kafka recently); a stalled loop makes it 503 so the orchestrator restarts
the container. ``/readyz`` answers 200 once the consumer has joined its group
(the provider was set up before that) and until shutdown begins, unless Kafka is
in trouble (a missing topic, failing commits or fetches, a rebalance that does
not finish) or history writes fail, which its detail names: a restart would not
cure those, so liveness does not fail for them. Each probe is a function
returning (ok, detail).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from consumer.errors import SettingsError
from consumer.metrics import Metrics

Probe = Callable[[], tuple[bool, str]]


async def start_site(
    app: web.Application, host: str, port: int, *, setting: str
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port``; returns the runner (to clean up) and the port bound.

    A port that cannot be listened on is a ``SettingsError`` naming ``setting``.
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:  # e.g. the port is taken
        await runner.cleanup()
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise SettingsError(f"{setting}={port}: cannot listen on it: {why}") from exc
    except BaseException:
        await runner.cleanup()
        raise
    # port 0 asks the OS for a free port; read back which one it gave
    sockets = getattr(site._server, "sockets", None) or []
    return runner, int(sockets[0].getsockname()[1]) if sockets else port


class HealthServer:
    def __init__(
        self, metrics: Metrics, *, liveness: Probe, readiness: Probe, host: str = "0.0.0.0"
    ) -> None:
        self._metrics = metrics
        self._liveness = liveness
        self._readiness = readiness
        self._host = host
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, port: int) -> int:
        app = web.Application()
        app.router.add_get("/healthz", self._probe(self._liveness))
        app.router.add_get("/readyz", self._probe(self._readiness))
        app.router.add_get("/metrics", self._render_metrics)
        self._runner, self.port = await start_site(app, self._host, port, setting="HEALTH_PORT")
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @staticmethod
    def _probe(probe: Probe) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(_request: web.Request) -> web.StreamResponse:
            ok, detail = probe()
            return web.json_response(
                {"status": "ok" if ok else "fail", "detail": detail}, status=200 if ok else 503
            )

        return handler

    async def _render_metrics(self, _request: web.Request) -> web.Response:
        response = web.Response(body=self._metrics.render())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response
