"""The preview server's guards and streams, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from studio_support import ServePreview, edit

from consumer.studio.preview import PreviewOptions, needs_token

EVENT = {"event_type": "bonus.accrued", "bonus": {"amount": 5}}


async def test_it_answers_only_to_loopback_host_names(
    mappings: Path, serve_preview: ServePreview
) -> None:
    async with serve_preview(mappings) as (url, _), aiohttp.ClientSession() as http:
        async with http.get(f"{url}api/model", headers={"Host": "127.0.0.1:1"}) as ok:
            assert ok.status == 200
        async with http.get(f"{url}api/model", headers={"Host": "localhost"}) as named:
            assert named.status == 200
        # A page on another site that rebinds its name to 127.0.0.1 sends its own Host.
        async with http.get(f"{url}api/model", headers={"Host": "evil.example:80"}) as evil:
            assert evil.status == 421


async def test_posts_must_be_json_from_the_page_itself(
    mappings: Path, serve_preview: ServePreview
) -> None:
    body = json.dumps(EVENT)
    async with serve_preview(mappings) as (url, _), aiohttp.ClientSession() as http:
        async with http.post(f"{url}api/render", data=body) as form:  # no JSON content type
            assert form.status == 415
        headers = {"Content-Type": "application/json", "Origin": "http://evil.example"}
        async with http.post(f"{url}api/render", data=body, headers=headers) as foreign:
            assert foreign.status == 403
        headers["Origin"] = url.rstrip("/")
        async with http.post(f"{url}api/render", data=body, headers=headers) as own:
            assert own.status == 200
            answer = await own.json()
        assert answer["rule"]["id"] == "bonus_accrued"
        assert answer["variants"][0]["title"] == "Начислили 5\xa0бонусов"
        assert answer["filled"] == ["event_id", "occurred_at", "recipient"]


async def test_a_pasted_event_larger_than_the_service_takes_is_refused(
    mappings: Path, serve_preview: ServePreview
) -> None:
    async with serve_preview(mappings) as (url, preview), aiohttp.ClientSession() as http:
        limit = preview.settings.event.max_bytes
        padded = {**EVENT, "padding": "x" * limit}
        headers = {"Content-Type": "application/json"}
        async with http.post(f"{url}api/render", json=padded, headers=headers) as answer:
            assert answer.status == 413
            text = await answer.text()
    assert "EVENT_MAX_BYTES" in text or "Request Entity Too Large" in text


async def test_a_token_is_needed_when_one_is_set(
    mappings: Path, serve_preview: ServePreview
) -> None:
    token = "s3cret-token"
    async with serve_preview(mappings, token=token) as (url, _):
        assert url.endswith(f"/?token={token}")
        base = url.split("?")[0]
        # unsafe: the default jar ignores cookies from IP addresses; a browser does not.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            for path in ("", "api/model", "api/events", "preview.js"):
                async with http.get(f"{base}{path}") as refused:
                    assert refused.status == 401, path
            async with http.get(f"{base}?token=wrong", allow_redirects=False) as wrong:
                assert wrong.status == 401
            headers = {"Authorization": f"Bearer {token}"}
            async with http.get(f"{base}api/model", headers=headers) as bearer:
                assert bearer.status == 200
            async with http.get(url, allow_redirects=False) as entry:
                assert entry.status == 302
                assert entry.headers["Location"] == "/"
                cookie = entry.cookies["preview_token"]
                assert cookie.value == token
                assert cookie["httponly"]
                assert cookie["samesite"] == "Strict"
            async with http.get(f"{base}api/model") as with_cookie:  # the session kept it
                assert with_cookie.status == 200


def test_a_token_is_made_up_for_any_address_but_loopback() -> None:
    directory = Path("mappings")
    assert needs_token(PreviewOptions(directory, host="127.0.0.1")) is None
    assert needs_token(PreviewOptions(directory, host="localhost")) is None
    assert needs_token(PreviewOptions(directory, host="::1")) is None
    assert needs_token(PreviewOptions(directory, host="0.0.0.0", token="given")) == "given"
    made = needs_token(PreviewOptions(directory, host="0.0.0.0"))
    assert made is not None
    assert len(made) >= 32
    assert made != needs_token(PreviewOptions(directory, host="192.168.1.5"))


async def test_the_page_is_served_with_a_strict_content_security_policy(
    mappings: Path, serve_preview: ServePreview
) -> None:
    async with serve_preview(mappings) as (url, _), aiohttp.ClientSession() as http:
        async with http.get(url) as page:
            html = await page.text()
            policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "default-src 'none'" in policy
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        # Offline: nothing is loaded from anywhere but the preview itself.
        assert "http" not in html.replace('href="/', "").replace('src="/', "")


async def test_the_event_stream_announces_each_new_version(
    mappings: Path, serve_preview: ServePreview
) -> None:
    async with serve_preview(mappings) as (url, _), aiohttp.ClientSession() as http:
        async with http.get(f"{url}api/events") as stream:
            assert stream.headers["Content-Type"] == "text/event-stream"
            assert await _next_event(stream) == ("model", "1")
            edit(mappings / "bonus.yaml", "    ttl: 12h\n", "    ttl: 13h\n")
            assert await _next_event(stream) == ("model", "2")
        async with http.get(f"{url}api/model") as model:
            document = await model.json()
        assert document["version"] == 2
        assert [r["ttl"] for r in document["rules"] if r["id"] == "bonus_expiring"] == ["13h"]


async def _next_event(stream: aiohttp.ClientResponse) -> tuple[str, str]:
    fields: dict[str, str] = {}
    async with asyncio.timeout(10):
        while True:
            line = (await stream.content.readline()).decode().rstrip("\n")
            if not line and fields:
                return fields["event"], fields["data"]
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value


@contextlib.contextmanager
def preview_command(*args: str) -> Iterator[str]:
    """Run ``mappings preview`` with ``args``; yields the first line it prints."""
    command = [sys.executable, "-m", "consumer", "mappings", "preview", "--port", "0", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            yield process.stdout.readline()
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_the_command_prints_the_address_and_serves_the_page(mappings: Path) -> None:
    with preview_command(str(mappings)) as first:
        assert first.startswith(f"Preview of {mappings} at http://127.0.0.1:"), first
        url = first.rsplit(" at ", 1)[1].strip()
        html = asyncio.run(_get(url))
    assert "<title>Push preview</title>" in html


async def _get(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return await response.text()


def test_with_a_token_the_command_prints_an_address_that_carries_it(mappings: Path) -> None:
    # (Tests listen on loopback only; off loopback a token is made up: see needs_token.)
    with preview_command("--token", "t0ken", str(mappings)) as first:
        assert first.rstrip().endswith("/?token=t0ken"), first


async def test_a_pasted_event_nested_too_deeply_gets_an_answer_not_a_crash(
    mappings: Path, serve_preview: ServePreview
) -> None:
    deep = '{"event_type": "bonus.accrued", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    headers = {"Content-Type": "application/json"}
    async with (
        serve_preview(mappings) as (url, _),
        aiohttp.ClientSession() as http,
        http.post(f"{url}api/render", data=deep, headers=headers) as answer,
    ):
        assert answer.status == 200
        document = await answer.json()
    assert document["error"].startswith("not JSON: depth limit exceeded")
