"""The database URL, errors in plain words, and the schema's migrations (both backends)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from history_support import T0_MS, entry

from consumer.cli import main
from consumer.errors import HistoryDatabaseError, HistoryUnavailable
from consumer.history.database import (
    _config,
    create_engine,
    database_url,
    head_revision,
    prepare_schema,
)
from consumer.history.schema import VERSION_TABLE, metadata
from consumer.history.store import SqlHistoryStore
from consumer.local.kafka_process import free_ports

MIGRATIONS = Path(__file__).resolve().parents[2] / "consumer" / "history" / "migrations"


# ---- the URL


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("", "sqlite+aiosqlite"),
        ("sqlite:///data/h.sqlite3", "sqlite+aiosqlite"),
        ("postgresql://u:p@db:5432/shop", "postgresql+asyncpg"),
        ("postgres://u:p@db/shop", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u:p@db/shop", "postgresql+asyncpg"),
    ],
)
def test_the_url_gets_its_async_driver(given: str, driver: str) -> None:
    assert database_url(given).drivername == driver


def test_libpq_sslmode_is_passed_to_asyncpg_as_ssl() -> None:
    url = database_url("postgresql://u:p@db/shop?sslmode=verify-full")

    assert dict(url.query) == {"ssl": "verify-full"}


def test_the_default_is_a_sqlite_file_in_the_working_directory() -> None:
    assert database_url("").database == "history.sqlite3"


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("mysql://u:s3cret@db/shop", "the database kind 'mysql' is not supported"),
        ("sqlite://", "an in-memory SQLite database would lose the history"),
        ("not a url s3cret", "not a database URL"),
    ],
)
def test_an_unusable_url_names_the_setting_and_never_echoes_it(given: str, problem: str) -> None:
    with pytest.raises(HistoryDatabaseError) as caught:
        database_url(given)

    assert str(caught.value).startswith(f"HISTORY_DATABASE_URL: {problem}")
    assert "s3cret" not in str(caught.value)


async def test_an_unreachable_server_is_unavailable_and_the_password_stays_hidden() -> None:
    (port,) = free_ports(1)  # nothing listens there
    url = database_url(f"postgresql://history:s3cret@127.0.0.1:{port}/shop")

    with pytest.raises(HistoryUnavailable) as caught:
        await SqlHistoryStore.open(url, migrate=True)

    message = str(caught.value)
    assert f"preparing the history schema at postgresql+asyncpg://history:***@127.0.0.1:{port}" in (
        message
    )
    assert "s3cret" not in message
    assert re.search(r"failed: (ConnectionRefusedError|OSError)", message), message


# ---- migrations


async def test_migrating_an_empty_database_makes_the_schema_the_code_uses(
    history_url: str,
) -> None:
    engine = create_engine(database_url(history_url))
    try:
        assert await prepare_schema(engine, upgrade=True) == head_revision()
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"version_table": VERSION_TABLE}),
                    metadata,
                )
            )
            tables = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    finally:
        await engine.dispose()

    assert differences == []
    assert set(tables) == {"history_items", VERSION_TABLE}


async def test_migrating_again_keeps_every_item(history_url: str) -> None:
    url = database_url(history_url)
    store = await SqlHistoryStore.open(url, migrate=True)
    await store.write([entry("a"), entry("b")])
    await store.aclose()

    store = await SqlHistoryStore.open(url, migrate=True)
    try:
        assert len(await store.lookup("u1", limit=50, since_ms=0)) == 2
    finally:
        await store.aclose()


async def test_a_database_of_the_first_revision_keeps_its_items_and_loses_the_lookup_index(
    history_url: str,
) -> None:
    engine = create_engine(database_url(history_url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(_config(sync), "0001"))
        old = SqlHistoryStore(engine)  # the code of revision 0001 wrote the same columns
        await old.write([entry("a", at_ms=T0_MS), entry("b", at_ms=T0_MS + 5), entry("c")])
    finally:
        await engine.dispose()

    store = await SqlHistoryStore.open(database_url(history_url), migrate=True)
    try:
        shown = await store.lookup("u1", limit=50, since_ms=0)
        async with store.engine.connect() as connection:
            indexes = await connection.run_sync(
                lambda sync: {i["name"] for i in sa.inspect(sync).get_indexes("history_items")}
            )
    finally:
        await store.aclose()

    assert store.revision == head_revision() != "0001"
    assert [item.title for item in shown] == ["title of b", "title of c", "title of a"]
    assert "history_items_lookup" not in indexes
    assert "history_items_updated" in indexes


async def test_a_schema_newer_than_the_code_is_refused_untouched(history_url: str) -> None:
    url = database_url(history_url)
    store = await SqlHistoryStore.open(url, migrate=True)
    await store.write([entry("a")])
    async with store.engine.begin() as connection:
        await connection.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0042'"))
    await store.aclose()

    with pytest.raises(HistoryDatabaseError, match=r"schema is at revision 0042, which this ver"):
        await SqlHistoryStore.open(url, migrate=True)

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(sa.text("SELECT count(*) FROM history_items"))
            version = await connection.scalar(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))
    finally:
        await engine.dispose()
    assert (count, version) == (1, "0042")


async def test_without_migrating_at_start_an_old_schema_says_which_command_to_run(
    history_url: str,
) -> None:
    with pytest.raises(HistoryDatabaseError, match=r"run `python -m consumer history migrate`"):
        await SqlHistoryStore.open(database_url(history_url), migrate=False)


def test_the_migrate_command_prepares_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HISTORY_DATABASE_URL", f"sqlite:///{tmp_path}/h.sqlite3")

    assert main(["history", "migrate"]) == 0
    assert main(["history", "show", "u1"]) == 0

    out = capsys.readouterr().out
    assert "the history schema at sqlite+aiosqlite:///" in out
    assert '"history": []' in out


def test_no_migration_drops_or_rewrites_data() -> None:
    scripts = sorted((MIGRATIONS / "versions").glob("v*.py"))
    assert scripts, "the migrations are where the code expects them"
    for script in scripts:
        source = script.read_text(encoding="utf-8")
        upgrade = source.split("def upgrade", 1)[1].split("def downgrade", 1)[0]
        for destructive in ("drop_table", "drop_column", "DROP ", "DELETE ", "TRUNCATE"):
            assert destructive not in upgrade, f"{script.name} upgrade() uses {destructive}"
        assert "raise NotImplementedError" in source.split("def downgrade", 1)[1]
