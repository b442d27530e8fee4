"""The history over HTTP, as IMSHOP's "История уведомлений" integration asks for it.

    POST /imshop/history       {"userId": "..."}              -> {"history": [item, ...]}
    POST /imshop/history/read  {"userId": "...", "ids": [...]} -> {"success": true, "marked": n}

Served on its own port (``HISTORY_PORT``), never beside health and metrics: by
``run`` (``lifecycle.py``) or, apart from Kafka, by ``history serve`` (``server.py``).
IMSHOP's server is the only caller: every request must carry ``Authorization:
Bearer <HISTORY_AUTH_TOKEN>`` (compared in constant time), else 401 with a JSON
body, counted in ``history_auth_failures_total``. Without a token the API is not
served at all, unless ``HISTORY_AUTH=none`` says so explicitly. Bodies are
limited to ``MAX_BODY_BYTES``; a bad one gets 400 naming what is wrong. Every
answer is JSON.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from consumer.clock import Clock
from consumer.errors import HistoryRejected, HistoryUnavailable
from consumer.health import start_site
from consumer.history.entry import MAX_USER_ID_CHARS
from consumer.history.pruner import retention_cutoff_ms
from consumer.history.store import HistoryStore
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.settings import HistoryAuth, HistorySettings

log = get_logger(__name__)

HISTORY_PATH = "/imshop/history"
READ_PATH = "/imshop/history/read"
MAX_BODY_BYTES = 64 * 1024
MAX_IDS = 1_000
MAX_ID_CHARS = 64
_ENDPOINTS = {HISTORY_PATH: "history", READ_PATH: "read"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    """The body is not what the endpoint takes; the message says what is wrong."""


def served_token(settings: HistorySettings) -> tuple[bool, str | None]:
    """(serve the API?, the token it requires or None), with the start-up warning logged."""
    token = settings.auth_token.get_secret_value()
    if settings.auth is HistoryAuth.NONE:
        log.warning(
            "history_api_unauthenticated",
            detail="HISTORY_AUTH=none: anyone who reaches the history port can read every "
            "customer's history; use it only on a trusted local machine",
        )
        return True, None
    if not token:
        log.warning(
            "history_api_not_served",
            detail="HISTORY_AUTH_TOKEN is empty, so the history API would be open to anyone; "
            "the history is still written. Set HISTORY_AUTH_TOKEN (and give IMSHOP the same "
            "token), or HISTORY_AUTH=none for a local run",
        )
        return False, None
    return True, token


class HistoryApi:
    def __init__(
        self,
        store: HistoryStore,
        settings: HistorySettings,
        metrics: Metrics,
        clock: Clock,
        *,
        token: str | None,
        host: str = "0.0.0.0",
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._token = token.encode() if token is not None else None
        self._host = host
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def application(self) -> web.Application:
        app = web.Application(
            client_max_size=MAX_BODY_BYTES,
            middlewares=[self._counted, self._json_errors, self._authenticated],
        )
        app.router.add_post(HISTORY_PATH, self._history)
        app.router.add_post(READ_PATH, self._read)
        return app

    async def start(self, port: int) -> int:
        self._runner, self.port = await start_site(
            self.application(), self._host, port, setting="HISTORY_PORT"
        )
        log.info(
            "history_api_started",
            port=self.port,
            auth="bearer" if self._token is not None else "none",
        )
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- endpoints

    async def _history(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        user_id = _user_id(body)
        started = time.perf_counter()
        found = await self._store.lookup(
            user_id,
            limit=self._settings.max_items_per_user,
            since_ms=retention_cutoff_ms(self._settings, self._clock),
        )
        self._metrics.history_lookup_seconds.observe(time.perf_counter() - started)
        return _json({"history": [item.imshop() for item in found]})

    async def _read(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        user_id = _user_id(body)
        ids = _ids(body)
        now_ms = int(self._clock.now().timestamp() * 1000)
        marked = await self._store.mark_read(user_id, ids, at_ms=now_ms)
        return _json({"success": True, "marked": marked})

    # ---- middlewares (outermost first)

    @web.middleware
    async def _counted(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        endpoint = _ENDPOINTS.get(request.path, "other")
        self._metrics.history_requests.labels(endpoint, str(response.status)).inc()
        return response

    @web.middleware
    async def _json_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except BadRequest as exc:
            return _error(400, "bad_request", str(exc))
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        except web.HTTPException as exc:  # 404, 405
            return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        except (HistoryUnavailable, HistoryRejected) as exc:
            log.error("history_api_database_failed", path=request.path, error=str(exc))
            return _error(503, "unavailable", "the history database is unavailable; try again")

    @web.middleware
    async def _authenticated(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._token is None:
            return await handler(request)
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return self._refused(request, "missing")
        if not hmac.compare_digest(presented.strip().encode(), self._token):
            return self._refused(request, "wrong")
        return await handler(request)

    def _refused(self, request: web.Request, why: str) -> web.Response:
        self._metrics.history_auth_failures.labels(why).inc()
        log.warning("history_api_unauthorized", reason=why, path=request.path, peer=request.remote)
        message = (
            "send the token as `Authorization: Bearer <token>`"
            if why == "missing"
            else "the token is not the one configured (HISTORY_AUTH_TOKEN)"
        )
        response = _error(401, "unauthorized", message)
        response.headers["WWW-Authenticate"] = 'Bearer realm="history"'
        return response


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_BODY_BYTES, request.content_length)
    raw = await request.read()
    if not raw.strip():
        raise BadRequest('the body is empty; send a JSON object such as {"userId": "..."}')
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, not {_kind(body)}")
    return body


def _user_id(body: dict[str, Any]) -> str:
    if "userId" not in body:
        raise BadRequest("`userId` is missing")
    user_id = body["userId"]
    if not isinstance(user_id, str):
        raise BadRequest(f"`userId` must be a string, not {_kind(user_id)}")
    if not user_id:
        raise BadRequest("`userId` is empty")
    if len(user_id) > MAX_USER_ID_CHARS:
        raise BadRequest(f"`userId` is longer than {MAX_USER_ID_CHARS} characters")
    if "\x00" in user_id:
        raise BadRequest("`userId` holds a NUL character")
    return user_id


def _ids(body: dict[str, Any]) -> list[str]:
    if "ids" not in body:
        raise BadRequest("`ids` is missing")
    ids = body["ids"]
    if not isinstance(ids, list):
        raise BadRequest(f"`ids` must be a list of strings, not {_kind(ids)}")
    if len(ids) > MAX_IDS:
        raise BadRequest(f"`ids` has {len(ids)} items, more than {MAX_IDS}")
    for index, value in enumerate(ids):
        if not isinstance(value, str):
            raise BadRequest(f"`ids[{index}]` must be a string, not {_kind(value)}")
        if len(value) > MAX_ID_CHARS:
            raise BadRequest(f"`ids[{index}]` is longer than {MAX_ID_CHARS} characters")
    return ids


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _json(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _error(status: int, error: str, message: str) -> web.Response:
    return _json({"error": error, "message": message}, status)
