"""An AppMetrica Push API simulator: a real HTTP server for tests, demos and trials.

    python -m consumer simulate appmetrica --port 8091 --token sim-token --status-step-s 1

API (as documented): `POST|GET /push/v1/management/groups`,
`GET /push/v1/management/group/{id}`, `POST /push/v1/send-batch`,
`GET /push/v1/status/{transferId}`, `GET /push/v1/status/{groupId}/{clientTransferId}`,
and the Reporting API's `GET /stat/v1/data` for the push-campaign report
(``appmetrica_report``), all behind `Authorization: OAuth <token>` (401 otherwise).

Control (no token): `GET /_sim/transfers` (every accepted transfer with its
messages and devices), `GET /_sim/groups`, `GET /_sim/stats` (requests per
route, and the requests refused by a quota), `GET|POST|DELETE
/_sim/faults` (see ``Faults``), `POST /_sim/reset`. The API routes answer 429
`quota` beyond `requests_per_s` (the documented 30 per IP) in any second, counted
apart for the Push API and the Reporting API, and the Reporting API beyond
`report_requests_per_day` (5,000 per login) in a UTC day.
A lost answer (`drop_after_accept_count`) is the ambiguous case: the transfer is
recorded, the client sees a 5xx or no answer at all.

Embedded: ``async with AppMetricaSimulator(SimulatorConfig(...)) as sim:`` then
``sim.base_url``; or ``await sim.start(port=0)`` and ``await sim.stop()``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from consumer.local.simulators.appmetrica_model import ApiError, SimulatorConfig
from consumer.local.simulators.appmetrica_state import Faults, SimulatorState
from consumer.local.simulators.server import SimulatorServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SEND_PATH = "/push/v1/send-batch"
REPORT_PREFIX = "/stat/"


class AppMetricaSimulator(SimulatorServer):
    name = "appmetrica"

    def __init__(
        self, config: SimulatorConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``clock`` drives the status steps (tests may pass a function they control)."""
        self.config = config or SimulatorConfig()
        self._clock = clock
        self.state = SimulatorState(self.config, clock)
        super().__init__()

    def set_faults(self, faults: Faults) -> None:
        self.state.faults = faults

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._api_guard])
        api = self._api
        app.router.add_post("/push/v1/management/groups", api(self._create_group))
        app.router.add_get("/push/v1/management/groups", api(self._list_groups))
        app.router.add_get("/push/v1/management/group/{group_id}", api(self._get_group))
        app.router.add_post(SEND_PATH, api(self._send_batch))
        app.router.add_get("/push/v1/status/{transfer_id}", api(self._status))
        app.router.add_get("/push/v1/status/{group_id}/{ctid}", api(self._status_by_client_id))
        app.router.add_get("/stat/v1/data", api(self._stat_data))
        app.router.add_get("/_sim/transfers", self._sim_transfers)
        app.router.add_get("/_sim/groups", self._sim_groups)
        app.router.add_get("/_sim/stats", self._sim_stats)
        app.router.add_get("/_sim/faults", self._sim_get_faults)
        app.router.add_post("/_sim/faults", self._sim_set_faults)
        app.router.add_delete("/_sim/faults", self._sim_clear_faults)
        app.router.add_post("/_sim/reset", self._sim_reset)
        return app

    @web.middleware
    async def _api_guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Token check and injected faults, for the API routes only."""
        if request.path.startswith("/_sim/"):
            return await handler(request)
        self.state.count(f"{request.method} {_route_name(request)}")
        report = request.path.startswith(REPORT_PREFIX)
        if self.state.over_quota("report" if report else "push"):
            limit = self.state.config.requests_per_s
            return _error(ApiError.one(429, "quota", f"more than {limit} requests per second"))
        if request.headers.get("Authorization") != f"OAuth {self.config.token}":
            return _error(ApiError.one(401, "unauthorized", "invalid or missing OAuth token"))
        if report and self.state.over_daily_report_quota(_today()):
            limit = self.state.config.report_requests_per_day
            message = f"more than {limit} Reporting API requests a day for this login"
            return _error(ApiError.one(429, "quota", f"{message}; it resets at 00:00 GMT"))
        faults = self.state.faults
        in_scope = faults.scope == "all" or request.path == SEND_PATH
        if faults.latency_s and in_scope:
            await self._wait_or_stop(faults.latency_s)
        if self.state.take_hang(in_scope):
            await self._wait_or_stop(self.config.hang_s)
            return _error(ApiError.one(503, "backend_error", "the simulator hung up"))
        status = self.state.take_error(in_scope)
        if status is not None:
            return _error(ApiError.one(status, _error_type(status), f"injected {status}"))
        return await handler(request)

    def _api(self, handler: Callable[[web.Request], Awaitable[Any]]) -> Handler:
        async def answer(request: web.Request) -> web.StreamResponse:
            try:
                result = await handler(request)
            except ApiError as exc:
                return _error(exc)
            return result if isinstance(result, web.StreamResponse) else web.json_response(result)

        return answer

    async def _create_group(self, request: web.Request) -> Any:
        return {"group": self.state.create_group(await _json(request)).view()}

    async def _list_groups(self, request: web.Request) -> Any:
        app_id = _int_param(request.query.get("app_id"), "app_id", missing_ok=False)
        groups = [g.view() for g in self.state.groups.values() if g.app_id == app_id]
        return {"groups": groups}

    async def _get_group(self, request: web.Request) -> Any:
        group_id = _int_param(request.match_info["group_id"], "groupId")
        return {"group": self.state.group(group_id).view()}

    async def _send_batch(self, request: web.Request) -> Any:
        transfer = self.state.accept_batch(await _json(request))
        if self.state.take_drop():
            if self.state.faults.drop_mode == "hang":
                await self._wait_or_stop(self.config.hang_s)
            status = self.state.faults.drop_status
            return _error(ApiError.one(status, "backend_error", "answer lost after accepting"))
        response: dict[str, Any] = {"transfer_id": transfer.id}
        if transfer.client_transfer_id is not None:
            response["client_transfer_id"] = transfer.client_transfer_id
        return {"push_response": response}

    async def _status(self, request: web.Request) -> Any:
        transfer = self.state.transfer(_int_param(request.match_info["transfer_id"], "transferId"))
        return {"transfer": self.state.view(transfer)}

    async def _status_by_client_id(self, request: web.Request) -> Any:
        group_id = _int_param(request.match_info["group_id"], "groupId")
        ctid = _int_param(request.match_info["ctid"], "clientTransferId")
        transfer = self.state.transfer_by_client_id(group_id, ctid)
        return {"transfer": self.state.view(transfer, with_client_id=True)}

    async def _stat_data(self, request: web.Request) -> Any:
        return self.state.stat_data(request.query, _today())

    async def _sim_transfers(self, _request: web.Request) -> web.Response:
        return web.json_response({"transfers": self.state.record()})

    async def _sim_groups(self, _request: web.Request) -> web.Response:
        return web.json_response({"groups": [g.view() for g in self.state.groups.values()]})

    async def _sim_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.state.requests,
                "quota_violations": self.state.quota_violations,
                "requests_per_s": self.config.requests_per_s,
                "report_requests_today": self.state.report_requests_today,
            }
        )

    async def _sim_get_faults(self, _request: web.Request) -> web.Response:
        return web.json_response(self.state.faults.model_dump())

    async def _sim_set_faults(self, request: web.Request) -> web.Response:
        try:
            self.state.faults = Faults.model_validate(await request.json())
        except (ValidationError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.state.faults.model_dump())

    async def _sim_clear_faults(self, _request: web.Request) -> web.Response:
        self.state.faults = Faults()
        return web.json_response(self.state.faults.model_dump())

    async def _sim_reset(self, _request: web.Request) -> web.Response:
        self.state = SimulatorState(self.config, self._clock)
        return web.json_response({"reset": True})


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise ApiError.one(400, "invalid_json", f"body is not JSON: {exc}") from None


def _int_param(raw: str | None, name: str, *, missing_ok: bool = True) -> int:
    if raw is None and not missing_ok:
        raise ApiError.one(400, "missing_parameter", f"{name} is required", name)
    try:
        return int(raw or "")
    except ValueError:
        raise ApiError.one(400, "invalid_parameter", f"{name} must be an integer", name) from None


def _today() -> dt.date:
    """The Reporting API's day, in UTC (its daily quota resets at 00:00 GMT)."""
    return dt.datetime.now(dt.UTC).date()


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


def _error_type(status: int) -> str:
    return {420: "quota", 429: "quota", 503: "backend_error"}.get(status, "backend_error")


def _error(exc: ApiError) -> web.Response:
    return web.json_response(exc.body(), status=exc.status)


def add_parser(sub: Any) -> None:
    """Add `appmetrica` to the `simulate` command's subcommands."""
    parser = sub.add_parser("appmetrica", help="run the AppMetrica Push API simulator")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8091, help="port (0 picks a free one)")
    parser.add_argument("--token", default="sim-token", help="the OAuth token it accepts")
    parser.add_argument(
        "--status-step-s", type=float, default=1.0, help="seconds per transfer status step"
    )
    parser.add_argument(
        "--invalid-device", action="append", default=[], help="a device id that fails transfers"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of random fault injection")
    parser.add_argument(
        "--requests-per-s", type=int, default=30, help="API requests per second (0: no limit)"
    )
    parser.add_argument(
        "--report-requests-per-day",
        type=int,
        default=5000,
        help="Reporting API requests a day (0: no limit)",
    )
    parser.add_argument(
        "--received-share", type=_share, default=0.9, help="report: share of devices that received"
    )
    parser.add_argument(
        "--opened-share", type=_share, default=0.25, help="report: share of receivers that opened"
    )
    parser.set_defaults(func=_run)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1")
    return value


def _run(args: argparse.Namespace) -> int:
    config = SimulatorConfig(
        token=args.token,
        status_step_s=args.status_step_s,
        invalid_device_ids=frozenset(args.invalid_device),
        seed=args.seed,
        requests_per_s=args.requests_per_s,
        report_requests_per_day=args.report_requests_per_day,
        received_share=args.received_share,
        opened_share=args.opened_share,
    )
    asyncio.run(AppMetricaSimulator(config).serve_forever(args.host, args.port))
    return 0
