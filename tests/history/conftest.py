"""Every store-backed history test runs twice: on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from consumer.history.database import database_url
from consumer.history.store import SqlHistoryStore
from consumer.metrics import Metrics


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``HISTORY_DATABASE_URL`` of an empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/history.sqlite3"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest_asyncio.fixture(loop_scope="session")
async def store(history_url: str) -> AsyncIterator[SqlHistoryStore]:
    opened = await SqlHistoryStore.open(database_url(history_url), migrate=True, metrics=Metrics())
    try:
        yield opened
    finally:
        await opened.aclose()
