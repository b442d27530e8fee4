"""An IMSHOP push API simulator: a real HTTP server for tests, the demo and trials.

    python -m consumer simulate imshop --port 8090 --rate-limit 10 --window 60 --api-key K

API: ``POST /push`` with ``Authorization: Bearer <key>`` (401 otherwise, when a
key is configured), answering with IMSHOP's documented shapes: ``{"success":
true}``, ``{"success": false, "error": "Integration is unavailable"}``, and a
Joi-style 400 naming the problem (or, as the ``refused`` fault, refusing a valid
push). It enforces the recipient cap and the sliding window: a request beyond
``rate-limit`` admitted requests in any ``window`` seconds gets 429 with
Retry-After and counts as a violation (the real service documents no 429; a
client that never sees one kept the limit).

Control (no key): ``GET /_sim/pushes`` (every accepted push, with its arrival
time), ``GET /_sim/stats`` (counters, violations, the most requests seen in one
window), ``GET|POST|DELETE /_sim/faults`` (see ``Faults``), ``POST /_sim/reset``.

Embedded: ``async with ImshopSimulator(SimulatorConfig(...)) as sim:`` then
``sim.url`` (the push URL) or ``sim.base_url``. ``PushPrinter`` prints each
accepted push as it comes, with the budget it used (the command and the demo).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from aiohttp import web

from consumer.local.simulators.imshop_model import (
    Faults,
    SimulatorConfig,
    SimulatorState,
    retry_after_header,
    validate,
)
from consumer.local.simulators.server import SimulatorServer

__all__ = [
    "REFUSED_MESSAGE",
    "Faults",
    "ImshopSimulator",
    "PushPrinter",
    "SimulatorConfig",
    "add_parser",
]

SHOW_EVERY_S = 0.2
SHOWN_RECIPIENTS = 3  # of each printed push
REFUSED_MESSAGE = '"value" fails because [the push was refused (an injected fault)]'
_REASONS = {400: "Bad Request", 401: "Unauthorized", 429: "Too Many Requests"}
_REASONS |= {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
_REASONS |= {504: "Gateway Timeout"}


class ImshopSimulator(SimulatorServer):
    def __init__(
        self, config: SimulatorConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or SimulatorConfig()
        self.state = SimulatorState(self.config, clock)
        super().__init__()

    name = "imshop"

    def announcement(self) -> dict[str, Any]:
        return {**super().announcement(), "url": self.url}

    @property
    def url(self) -> str:
        """The push endpoint (what ``IMSHOP_URL`` should be)."""
        return self.base_url + self.config.path

    @property
    def pushes(self) -> list[dict[str, Any]]:
        return self.state.pushes

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def set_faults(self, faults: Faults) -> None:
        self.state.faults = faults

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(self.config.path, self._push)
        app.router.add_get("/_sim/pushes", self._sim_pushes)
        app.router.add_get("/_sim/stats", self._sim_stats)
        app.router.add_get("/_sim/faults", self._sim_get_faults)
        app.router.add_post("/_sim/faults", self._sim_set_faults)
        app.router.add_delete("/_sim/faults", self._sim_clear_faults)
        app.router.add_post("/_sim/reset", self._sim_reset)
        return app

    async def _push(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        state.counters["requests"] += 1
        key = self.config.api_key
        if key is not None and request.headers.get("Authorization") != f"Bearer {key}":
            state.counters["unauthorized"] += 1
            return _error(401, "Missing or invalid API key")
        wait_s = state.admit()
        if wait_s is not None:
            limit = f"{self.config.rate_limit} requests per {self.config.window_s:g} s"
            return _error(429, f"Rate limit exceeded: {limit}", retry_after=wait_s)
        if state.faults.latency_s:
            await self._wait_or_stop(state.faults.latency_s)
        fault = state.take_fault()
        if fault is not None and fault != "lost_answer":
            return await self._fault(request, fault)
        raw = await request.read()
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            state.counters["bad_requests"] += 1
            return _error(400, "Invalid request payload JSON format")
        if (problem := validate(payload, self.config.max_ids)) is not None:
            state.counters["bad_requests"] += 1
            return _error(400, problem)
        state.record(payload)
        if fault == "lost_answer":
            return await self._fault(request, "timeout")
        return web.json_response({"success": True})

    async def _fault(self, request: web.Request, kind: str) -> web.StreamResponse:
        if kind == "unavailable":
            return web.json_response({"success": False, "error": "Integration is unavailable"})
        if kind == "refused":
            return _error(400, REFUSED_MESSAGE)
        if kind == "rate_limited":
            return _error(429, "Rate limit exceeded", retry_after=self.state.faults.retry_after_s)
        if kind == "timeout":
            await self._wait_or_stop(self.state.faults.hang_s)
            return _error(504, "The simulator hung up")
        if kind == "reset":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # aiohttp drops the request without an answer
        return _error(int(kind.removeprefix("http_")), "An internal server error occurred")

    async def _sim_pushes(self, _request: web.Request) -> web.Response:
        return web.json_response({"pushes": self.state.pushes})

    async def _sim_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.state.stats())

    async def _sim_get_faults(self, _request: web.Request) -> web.Response:
        return web.json_response(self.state.faults.to_json())

    async def _sim_set_faults(self, request: web.Request) -> web.Response:
        try:
            self.state.faults = Faults.from_json(await request.json())
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.state.faults.to_json())

    async def _sim_clear_faults(self, _request: web.Request) -> web.Response:
        self.state.faults = Faults()
        return web.json_response(self.state.faults.to_json())

    async def _sim_reset(self, _request: web.Request) -> web.Response:
        self.state.reset()
        return web.json_response({"reset": True})


def _error(status: int, message: str, *, retry_after: float | None = None) -> web.Response:
    headers = {} if retry_after is None else {"Retry-After": retry_after_header(retry_after)}
    body = {"statusCode": status, "error": _REASONS.get(status, "Error"), "message": message}
    return web.json_response(body, status=status, headers=headers)


def add_parser(sub: Any) -> None:
    """Add `imshop` to the `simulate` command's subcommands."""
    parser = sub.add_parser("imshop", help="run the IMSHOP push API simulator")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=8090, help="port to listen on; 0 picks a free one"
    )
    parser.add_argument("--rate-limit", type=int, default=10, help="requests per window")
    parser.add_argument("--window", type=float, default=60.0, help="window length, seconds")
    parser.add_argument("--max-ids", type=int, default=1000, help="userIds per request")
    parser.add_argument("--api-key", default=None, help="the Bearer key it accepts (any if unset)")
    parser.add_argument("--path", default="/push", help="path of the push endpoint")
    parser.add_argument("--seed", type=int, default=None, help="seed of random fault injection")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    config = SimulatorConfig(
        api_key=args.api_key,
        rate_limit=args.rate_limit,
        window_s=args.window,
        max_ids=args.max_ids,
        path=args.path,
        seed=args.seed,
    )
    asyncio.run(serve_showing_pushes(ImshopSimulator(config), args.host, args.port))
    return 0


async def serve_showing_pushes(simulator: ImshopSimulator, host: str, port: int) -> None:
    """Serve until interrupted, printing each accepted push as the demo does."""
    printer = PushPrinter(simulator, sys.stdout, window_s=simulator.config.window_s, quiet=False)

    async def show() -> None:
        while True:
            printer.show_new()
            await asyncio.sleep(SHOW_EVERY_S)

    showing = asyncio.create_task(show())
    try:
        await simulator.serve_forever(host, port)
    finally:
        showing.cancel()


def mask(user_id: str) -> str:
    """``79990001122`` -> ``7999***1122``: enough to tell users apart on screen."""
    return f"{user_id[:4]}***{user_id[-4:]}" if len(user_id) > 8 else user_id


class PushPrinter:
    """Prints the simulator's accepted pushes that were not shown yet."""

    def __init__(
        self,
        simulator: ImshopSimulator,
        out: TextIO,
        *,
        window_s: float,
        quiet: bool,
        label: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> None:
        """``label``: a word to show with a push (the demo marks shared texts)."""
        self._simulator = simulator
        self._out = out
        self._window_s = window_s
        self._quiet = quiet
        self._label = label
        self._shown = 0

    def show_new(self) -> None:
        pushes = self._simulator.pushes
        while self._shown < len(pushes):
            push = pushes[self._shown]
            self._shown += 1
            if not self._quiet:
                in_window = sum(
                    1 for p in pushes[: self._shown] if p["at"] > push["at"] - self._window_s
                )
                self._print(self._shown, push, in_window)

    def _print(self, number: int, push: dict[str, Any], in_window: int) -> None:
        limit = self._simulator.config.rate_limit
        ids = push["userIds"]
        shown = ", ".join(mask(i) for i in ids[:SHOWN_RECIPIENTS])
        more = f" +{len(ids) - SHOWN_RECIPIENTS} more" if len(ids) > SHOWN_RECIPIENTS else ""
        noun = "recipient" if len(ids) == 1 else "recipients"
        message = push["message"]
        label = self._label(push) if self._label is not None else None
        lines = [
            f"{push['at']:7.1f}s  request {number:<3} {len(ids):>4} {noun:<10}  "
            f"budget {in_window}/{limit} in {self._window_s:g} s   {shown}{more}",
            f"{'':10}{f'[{label}] ' if label else ''}{message['title']} — {message['summary']}",
        ]
        if push.get("deeplink"):
            lines.append(f"{'':10}-> {push['deeplink']}")
        print("\n".join(lines), file=self._out, flush=True)
