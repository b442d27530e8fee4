"""The history database: which one, connecting to it, its errors in our words, its schema.

``HISTORY_DATABASE_URL`` names SQLite (``sqlite:///PATH``, the embedded default)
or PostgreSQL (``postgresql://...``); the async drivers (aiosqlite, asyncpg) are
chosen here. SQLite runs in WAL mode (readers never wait for the writer) with
full syncs (a committed batch survives a power cut, as its Kafka offset will).

The schema is Alembic's (``migrations/``). ``prepare_schema`` upgrades it, or
only checks it, and refuses a schema newer than this code knows: an older
release never writes into a table whose meaning it does not know. On PostgreSQL
an advisory lock keeps replicas that start together from migrating twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from consumer.errors import HistoryDatabaseError, HistoryRejected, HistoryUnavailable
from consumer.history.schema import VERSION_TABLE
from consumer.logs import get_logger

log = get_logger(__name__)

DEFAULT_URL = "sqlite:///history.sqlite3"
URL_HELP = "give sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
_MIGRATIONS = "consumer.history:migrations"
_MIGRATION_LOCK = 0x6869_7374_6F72_79  # "history": one advisory lock id for every replica
_REASON_CHARS = 300


def database_url(raw: str) -> URL:
    """The URL with its async driver; ``HistoryDatabaseError`` naming the setting if unusable.

    The text is never echoed: it may hold a password.
    """
    try:
        url = make_url(raw.strip() or DEFAULT_URL)
    except sa_exc.ArgumentError:
        raise HistoryDatabaseError(
            f"HISTORY_DATABASE_URL: not a database URL; {URL_HELP}"
        ) from None
    backend = url.drivername.partition("+")[0]
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise HistoryDatabaseError(
                "HISTORY_DATABASE_URL: an in-memory SQLite database would lose the history at "
                "every restart; give a file, e.g. sqlite:///history.sqlite3"
            )
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        query = dict(url.query)
        if "sslmode" in query:  # libpq's spelling; asyncpg takes the same values as `ssl`
            query["ssl"] = query.pop("sslmode")
        return url.set(drivername="postgresql+asyncpg", query=query)
    raise HistoryDatabaseError(
        f"HISTORY_DATABASE_URL: the database kind {backend!r} is not supported; {URL_HELP}"
    )


def shown(url: URL) -> str:
    """The URL for logs and messages: the password hidden."""
    return url.render_as_string(hide_password=True)


def create_engine(url: URL) -> AsyncEngine:
    common: dict[str, Any] = {"hide_parameters": True}  # errors never echo customers' data
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # timeout: how long a writer waits for the lock held by another (the pruner).
        # No reset on return: every write commits or rolls back itself, and a read opens no
        # transaction (pysqlite begins none for SELECT), so the reset would only cost each
        # lookup another trip to aiosqlite's thread.
        engine = create_async_engine(
            url, connect_args={"timeout": 10}, pool_reset_on_return=None, **common
        )
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping (a round trip per checkout, more than the lookup itself): a connection
    # that died with the server fails one statement, SQLAlchemy then discards the pool's
    # connections, and the writer retries (the API answers that request with 503).
    return create_async_engine(
        url,
        pool_size=5,
        max_overflow=5,
        pool_timeout=10,
        connect_args={
            "timeout": 5,
            "command_timeout": 30,
            "server_settings": {"application_name": "order-push-consumer"},
        },
        **common,
    )


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


# ---- errors


_REFUSED: tuple[type[Exception], ...] = (sa_exc.DataError, sa_exc.IntegrityError)
_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.SQLAlchemyError,
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


@contextmanager
def translated(what: str, url: URL) -> Iterator[None]:
    """Database failures as ``HistoryRejected`` (this data, for good) or
    ``HistoryUnavailable`` (the database, for now), saying what failed where."""
    try:
        yield
    except _REFUSED as exc:
        raise HistoryRejected(f"{what}: the database refused it: {reason(exc)}") from exc
    except _UNAVAILABLE as exc:
        raise HistoryUnavailable(f"{what} at {shown(url)} failed: {reason(exc)}") from exc


def reason(exc: BaseException) -> str:
    """The driver's own words, one line, without the SQL statement."""
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    text = " ".join(str(cause).split()) or "no message"
    text = f"{type(cause).__name__}: {text}"
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


# ---- schema


async def prepare_schema(engine: AsyncEngine, *, upgrade: bool) -> str:
    """Bring the schema to this code's revision (or, ``upgrade=False``, check it is there).

    Returns the revision; raises ``HistoryDatabaseError`` if the schema is newer
    than the code or (when not upgrading) older, ``HistoryUnavailable`` if the
    database cannot be reached.
    """
    with translated("preparing the history schema", engine.url):
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK}
                )
            revision: str = await connection.run_sync(_prepare, upgrade)
            return revision


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config(None)).get_current_head()
    assert head is not None
    return head


def _config(connection: sa.Connection | None) -> Config:
    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    config.attributes["connection"] = connection
    return config


def _prepare(connection: sa.Connection, upgrade: bool) -> str:
    config = _config(connection)
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    assert head is not None
    current = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()
    if current is not None and not _known(script, current):
        raise HistoryDatabaseError(
            f"the history database's schema is at revision {current}, which this version "
            f"does not know (it knows up to {head}): a newer release migrated it. Run that "
            "release or a newer one; this one does not touch a schema it cannot read"
        )
    if current == head:
        return head
    if not upgrade:
        raise HistoryDatabaseError(
            f"the history database's schema is at {current or 'nothing (empty)'}, this "
            f"version needs {head}: run `python -m consumer history migrate` first, or set "
            "HISTORY_MIGRATE_AT_START=true"
        )
    command.upgrade(config, "head")
    log.info("history_schema_upgraded", revision_from=current, revision_to=head)
    return head


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False
