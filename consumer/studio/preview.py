"""``python -m consumer mappings preview``: the live preview page, served locally.

One aiohttp app. It polls the mappings directory (one read of every file, the
digest compared) and rebuilds the page model when a file changes; the page
listens on a server-sent events stream and fetches the new model, so a save
shows on the page within a second, without a manual refresh.

Safe by default, though it is a local tool: it binds to 127.0.0.1; it answers
only requests whose Host is a loopback name (so a web page cannot reach it by
DNS rebinding); it requires a token when bound to any other address; POSTs must
be JSON from the page's own origin; request bodies are capped at the service's
event size; and the page is served with a Content-Security-Policy that allows
only its own script, which sets text, never HTML.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import ipaddress
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from consumer.errors import ConsumerError, MappingLoadError
from consumer.logs import get_logger
from consumer.mapping.loader import digest_of, read_sources
from consumer.settings import Settings
from consumer.studio.cards import card, page_model
from consumer.studio.draft import Draft, load_draft
from consumer.studio.outcome import Renderer, fill_preview_fields
from consumer.studio.tail import MAX_RECORDS, Tail, read_last

_log = get_logger(__name__)
TOKEN_COOKIE = "preview_token"
KEEPALIVE_S = 15.0
_PAGE_FILES = {
    "/": ("index.html", "text/html"),
    "/preview.js": ("preview.js", "text/javascript"),
    "/preview.css": ("preview.css", "text/css"),
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class PreviewOptions:
    directory: Path
    host: str = "127.0.0.1"
    port: int = 8770
    token: str | None = None
    topic: str | None = None  # suggested in the "recent events" box
    poll_interval_s: float = 0.5
    kafka_timeout_s: float = 10.0


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def needs_token(options: PreviewOptions) -> str | None:
    """The token the server requires: the one given, a new one off loopback, else none."""
    if options.token:
        return options.token
    return None if is_loopback(options.host) else secrets.token_urlsafe(24)


class Preview:
    """The page's state: the current draft and model, and the recent Kafka records."""

    def __init__(self, options: PreviewOptions, settings: Settings) -> None:
        self.options = options
        self.settings = settings
        self.version = 0
        self.draft: Draft | None = None
        self.model = b"{}"
        self.digest: str | None = None
        self.recent: Tail | None = None
        self.recent_topic: str | None = None
        self.closing = False
        self.changed = asyncio.Event()
        self._render_lock = asyncio.Lock()  # the mapping set's caches are not thread-safe

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload when the files changed (or ``force``); True when the model changed."""
        directory = self.options.directory
        try:
            digest = digest_of(await asyncio.to_thread(read_sources, directory))
        except MappingLoadError as exc:
            digest = f"unreadable:{exc}"
        if digest == self.digest and not force:
            return False
        self.digest = digest
        async with self._render_lock:
            self.draft, model = await asyncio.to_thread(self._build)
        self.model = model
        self._announce()
        return True

    def _build(self) -> tuple[Draft, bytes]:
        draft = load_draft(self.options.directory, self.settings.mappings, previous=self.draft)
        model = page_model(
            draft,
            self.settings.imshop,
            version=self.version + 1,
            recent=self.recent,
            recent_topic=self.recent_topic,
            max_event_bytes=self.settings.event.max_bytes,
        )
        model["suggested_topic"] = self.options.topic
        return draft, json.dumps(model, ensure_ascii=False).encode()

    def _announce(self) -> None:
        self.version += 1
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def watch(self) -> None:
        while not self.closing:
            await asyncio.sleep(self.options.poll_interval_s)
            try:
                await self.refresh()
            except Exception:  # a bug of ours must not stop the page following the files
                _log.exception("preview_refresh_failed", directory=str(self.options.directory))

    async def render_pasted(self, text: str) -> dict[str, Any]:
        try:
            document = orjson.loads(text)  # nesting is capped, unlike json's recursion
        except orjson.JSONDecodeError as exc:
            return {"error": f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"}
        if not isinstance(document, dict):
            return {"error": "an event is a JSON object: { ... }"}
        document, filled = fill_preview_fields(document, dt.datetime.now(dt.UTC).astimezone())
        async with self._render_lock:
            result = await asyncio.to_thread(self._render_document, document)
        return {**result, "filled": filled}

    def _render_document(self, document: dict[str, Any]) -> dict[str, Any]:
        assert self.draft is not None
        renderer = Renderer(self.draft.mappings, self.draft.settings)
        return card(renderer.event(document), renderer)

    async def load_recent(self, topic: str, last: int) -> dict[str, Any]:
        tail = await read_last(
            self.settings.kafka, topic, last, timeout_s=self.options.kafka_timeout_s
        )
        self.recent, self.recent_topic = tail, topic
        await self.refresh(force=True)
        return {"records": len(tail.records), "unfinished": tail.unfinished}


PREVIEW = web.AppKey("preview", Preview)
WATCHER = web.AppKey("watcher", asyncio.Task[None])


def build_app(preview: Preview, token: str | None) -> web.Application:
    limit = preview.settings.event.max_bytes
    app = web.Application(
        client_max_size=limit + 1024,
        middlewares=[_guard(preview, token)],
    )
    app[PREVIEW] = preview
    for path in _PAGE_FILES:
        app.router.add_get(path, _page_file)
    app.router.add_get("/favicon.ico", _no_icon)
    app.router.add_get("/api/model", _model)
    app.router.add_get("/api/events", _events)
    app.router.add_post("/api/render", _render)
    app.router.add_post("/api/recent", _recent)
    app.on_startup.append(_start_watching)
    app.on_shutdown.append(_stop_watching)
    return app


def _guard(preview: Preview, token: str | None) -> Any:
    loopback_only = token is None

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if loopback_only and not is_loopback(_host_name(request.host)):
            return _text(421, "this preview answers on 127.0.0.1 or localhost only")
        if token is not None:
            given = request.query.get("token")
            if request.path == "/" and given is not None and _same(given, token):
                # The token moves into a cookie and out of the address bar.
                found = web.HTTPFound("/")
                found.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
                raise found
            if not _authorized(request, token):
                return _text(401, "open the address the preview printed (it carries the token)")
        if request.method == "POST":
            problem = _post_problem(request)
            if problem is not None:
                return problem
        response = await handler(request)
        response.headers.update(_SECURITY_HEADERS)
        return response

    return guard


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def _authorized(request: web.Request, token: str) -> bool:
    bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    cookie = request.cookies.get(TOKEN_COOKIE, "")
    return any(value and _same(value, token) for value in (bearer, cookie))


def _post_problem(request: web.Request) -> web.Response | None:
    # A JSON content type cannot be sent cross-site without a CORS preflight,
    # which this server never grants; the Origin check covers the rest.
    if request.content_type != "application/json":
        return _text(415, "send JSON (Content-Type: application/json)")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return _text(403, "requests from other sites are refused")
    return None


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, headers=_SECURITY_HEADERS)


async def _page_file(request: web.Request) -> web.Response:
    name, content_type = _PAGE_FILES[request.path]
    body = resources.files("consumer.studio").joinpath("page", name).read_bytes()
    return web.Response(body=body, content_type=content_type, charset="utf-8")


async def _no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def _model(request: web.Request) -> web.Response:
    preview = request.app[PREVIEW]
    return web.Response(body=preview.model, content_type="application/json", charset="utf-8")


async def _events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``model`` with the version, at connect and on every change."""
    preview = request.app[PREVIEW]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    sent = -1
    try:
        while not preview.closing:
            if preview.version != sent:
                sent = preview.version
                await response.write(f"event: model\ndata: {sent}\n\n".encode())
            changed = preview.changed
            try:
                await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": still here\n\n")
    except ConnectionResetError:  # the page was closed or reloaded
        pass
    return response


async def _render(request: web.Request) -> web.Response:
    preview = request.app[PREVIEW]
    body = await request.read()
    limit = preview.settings.event.max_bytes
    if len(body) > limit:
        return web.json_response(
            {
                "error": f"the event is {len(body)} bytes; events may be at most {limit} "
                "(EVENT_MAX_BYTES)"
            },
            status=413,
        )
    text = body.decode("utf-8", errors="replace")
    return web.json_response(await preview.render_pasted(text), dumps=_dumps)


async def _recent(request: web.Request) -> web.Response:
    preview = request.app[PREVIEW]
    try:
        asked = await request.json()
        topic, last = str(asked["topic"]).strip(), int(asked.get("last", 20))
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": 'send {"topic": "orders", "last": 20}'}, status=400)
    if not topic or not 1 <= last <= MAX_RECORDS:
        return web.json_response(
            {"error": f"give a topic and a number of records from 1 to {MAX_RECORDS}"}, status=400
        )
    try:
        return web.json_response(await preview.load_recent(topic, last), dumps=_dumps)
    except ConsumerError as exc:
        return web.json_response({"error": str(exc)}, status=502)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


async def _start_watching(app: web.Application) -> None:
    preview = app[PREVIEW]
    await preview.refresh(force=True)
    app[WATCHER] = asyncio.create_task(preview.watch(), name="mappings-watch")


async def _stop_watching(app: web.Application) -> None:
    preview = app[PREVIEW]
    preview.closing = True
    preview.changed.set()  # ends every open event stream
    watcher = app[WATCHER]
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)


@contextlib.asynccontextmanager
async def running(preview: Preview, token: str | None) -> AsyncIterator[str]:
    """The page served while inside; yields its address (with the token, if any)."""
    runner = web.AppRunner(build_app(preview, token), shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, preview.options.host, preview.options.port)
        await site.start()
        yield page_url(runner, token)
    finally:
        await runner.cleanup()


async def serve(preview: Preview, token: str | None, *, ready: Callable[[str], None]) -> None:
    """Serve until cancelled (Ctrl-C); ``ready`` gets the page's address once it listens."""
    async with running(preview, token) as url:
        ready(url)
        await asyncio.Event().wait()


def page_url(runner: web.AppRunner, token: str | None) -> str:
    host, port = runner.addresses[0][:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
