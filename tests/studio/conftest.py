"""Fixtures for the studio: a copy of the shipped mappings, the preview served, a real Chromium.

The browser is Debian's ``chromium`` (``$PREVIEW_TEST_CHROMIUM`` to use another
build), driven by Playwright, never a browser Playwright downloads. It runs
headless with a fresh profile and Chromium's background connections off (no
sync, updates or field trials: a closed network would otherwise make them fail
noisily). Missing, the browser tests are skipped, unless ``REQUIRE_BROWSER=1``
(CI), where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from studio_support import FIXTURE, ServePreview

from consumer.settings import KafkaSettings, Settings
from consumer.studio.preview import Preview, PreviewOptions, running

CHROMIUM = Path(os.environ.get("PREVIEW_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FOUND = CHROMIUM.exists()
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def mappings(tmp_path: Path) -> Path:
    """A copy of the studio tests' mappings, free to edit."""
    copy = tmp_path / "mappings"
    shutil.copytree(FIXTURE, copy)
    return copy


@pytest.fixture
def serve_preview() -> ServePreview:
    """``async with serve_preview(directory, token=None, bootstrap=None) as (url, preview)``."""

    @contextlib.asynccontextmanager
    async def serve(
        directory: Path, *, token: str | None = None, bootstrap: str = "127.0.0.1:9"
    ) -> AsyncIterator[tuple[str, Preview]]:
        settings = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap))
        options = PreviewOptions(
            directory=directory, port=0, token=token, topic="orders", poll_interval_s=0.05
        )
        preview = Preview(options, settings)
        async with running(preview, token) as url:
            yield url, preview

    return serve


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """One headless Chromium for the session (a persistent context with a fresh profile)."""
    if not CHROMIUM_FOUND:
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh tab; a script error on the page fails the test."""
    tab = await browser.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    try:
        yield tab
    finally:
        await tab.close()
    assert errors == [], f"the page logged errors: {errors}"
