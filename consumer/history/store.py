"""Where the history lives: the ``HistoryStore`` seam and its SQL implementation.

``SqlHistoryStore`` writes a whole batch of entries in one transaction: entries
for the same item are folded in memory first (PostgreSQL refuses to touch a row
twice in one statement), then one ``INSERT ... ON CONFLICT DO UPDATE`` per row, in
a fixed order (concurrent writers of the same rows lock them in the same order, so
they cannot deadlock): on PostgreSQL sent as one executemany; on SQLite as one
statement reading the rows from a JSON array, so SQLite does the whole batch in
one step with the GIL released (an executemany binds each row in Python and takes
the GIL back from the busy event loop between rows). The conflict clause
applies ``HistoryEntry.newer_than`` in SQL: only a newer entry replaces the
item's content (and makes it unread again); ``created_on`` only ever moves to an
earlier event. Replaying an entry therefore changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from consumer.history.database import create_engine, prepare_schema, translated
from consumer.history.entry import HistoryEntry, HistoryItem
from consumer.history.schema import items
from consumer.metrics import Metrics

_CONTENT = ("event_id", "rule_id", "title", "text", "url", "deeplink", "promocode", "version")
_WRITTEN = ("user_id", "item_key", *_CONTENT, "created_on", "updated_on")
_ID_DIGITS = 18  # ids are positive 64-bit integers


class HistoryStore(Protocol):
    """What the writer, the pruner and the API need from the history's storage."""

    async def write(self, entries: Sequence[HistoryEntry]) -> None:
        """Apply every entry in one transaction; ``HistoryUnavailable`` or
        ``HistoryRejected`` (then nothing of the batch was written)."""
        ...

    async def lookup(self, user_id: str, *, limit: int, since_ms: int) -> list[HistoryItem]:
        """The customer's newest items updated at or after ``since_ms``, newest first."""
        ...

    async def mark_read(self, user_id: str, ids: Sequence[str], *, at_ms: int) -> int:
        """Mark the customer's items with these ids read; returns how many were unread."""
        ...

    async def prune_users(self, user_ids: Sequence[str], *, keep: int) -> int:
        """Delete all but the ``keep`` newest items of each of these customers."""
        ...

    async def prune_before(self, cutoff_ms: int, *, limit: int) -> int:
        """Delete up to ``limit`` items last updated before ``cutoff_ms``."""
        ...

    async def aclose(self) -> None: ...


class SqlHistoryStore:
    """The history in SQLite or PostgreSQL through SQLAlchemy Core (async)."""

    def __init__(
        self, engine: AsyncEngine, metrics: Metrics | None = None, *, revision: str = ""
    ) -> None:
        self.engine = engine
        self.revision = revision  # the schema's, as prepared at open
        # Reads need no transaction: on PostgreSQL without one a lookup is one round trip,
        # not three (BEGIN, SELECT, ROLLBACK). SQLite begins none for a SELECT anyway, and
        # switching its isolation level would cost two trips to aiosqlite's thread.
        self._reader = (
            engine
            if engine.dialect.name == "sqlite"
            else engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._metrics = metrics
        self._upsert = _upsert_statement(engine.dialect.name)

    @classmethod
    async def open(
        cls, url: sa.URL, *, migrate: bool, metrics: Metrics | None = None
    ) -> SqlHistoryStore:
        """Connect and prepare the schema (``migrate``: upgrade it; else only check it)."""
        engine = create_engine(url)
        try:
            revision = await prepare_schema(engine, upgrade=migrate)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, metrics, revision=revision)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    async def write(self, entries: Sequence[HistoryEntry]) -> None:
        rows = _rows(entries)
        if not rows:
            return
        started = time.perf_counter()
        parameters: Any = (
            {"rows": orjson.dumps(rows).decode()}
            if self.engine.dialect.name == "sqlite"
            else [dict(zip(_WRITTEN, row, strict=True)) for row in rows]
        )
        with translated(f"writing {len(rows)} history items", self.engine.url):
            async with self.engine.begin() as connection:
                await connection.execute(self._upsert, parameters)
        if self._metrics is not None:
            self._metrics.history_write_seconds.observe(time.perf_counter() - started)

    async def lookup(self, user_id: str, *, limit: int, since_ms: int) -> list[HistoryItem]:
        values = {"user_id": user_id, "since_ms": since_ms, "limit": limit}
        with translated("reading a customer's history", self.engine.url):
            async with self._reader.connect() as connection:
                found = (await connection.execute(_LOOKUP, values)).all()
        return [
            HistoryItem(
                id=str(row.id),
                title=row.title,
                created_on=row.created_on,
                updated_on=row.updated_on,
                text=row.text,
                url=row.url,
                deeplink=row.deeplink,
                promocode=row.promocode,
                read=row.read_on is not None,
            )
            for row in found
        ]

    async def mark_read(self, user_id: str, ids: Sequence[str], *, at_ms: int) -> int:
        numbers = sorted({int(i) for i in ids if i.isdigit() and len(i) <= _ID_DIGITS})
        if not numbers:
            return 0
        update = (
            sa.update(items)
            .where(
                items.c.user_id == user_id,
                items.c.id.in_(numbers),
                items.c.read_on.is_(None),
            )
            .values(read_on=at_ms)
        )
        with translated("marking history items read", self.engine.url):
            async with self.engine.begin() as connection:
                result = await connection.execute(update)
        return int(result.rowcount)

    async def prune_users(self, user_ids: Sequence[str], *, keep: int) -> int:
        if not user_ids:
            return 0
        rank = (
            sa.func.row_number()
            .over(
                partition_by=items.c.user_id,
                order_by=(items.c.updated_on.desc(), items.c.id.desc()),
            )
            .label("rank")
        )
        ranked = sa.select(items.c.id, rank).where(items.c.user_id.in_(user_ids)).subquery()
        delete = sa.delete(items).where(
            items.c.id.in_(sa.select(ranked.c.id).where(ranked.c.rank > keep))
        )
        return await self._delete(delete, "pruning customers' oldest history items")

    async def prune_before(self, cutoff_ms: int, *, limit: int) -> int:
        oldest = sa.select(items.c.id).where(items.c.updated_on < cutoff_ms).limit(limit)
        delete = sa.delete(items).where(items.c.id.in_(oldest.scalar_subquery()))
        return await self._delete(delete, "pruning expired history items")

    async def _delete(self, delete: sa.Delete, what: str) -> int:
        with translated(what, self.engine.url):
            async with self.engine.begin() as connection:
                result = await connection.execute(delete)
        return int(result.rowcount)

    async def ping(self) -> None:
        """One round trip to the database; ``HistoryUnavailable`` when it does not answer."""
        with translated("asking the history database", self.engine.url):
            async with self._reader.connect() as connection:
                await connection.execute(_PING)

    async def aclose(self) -> None:
        await self.engine.dispose()


_PING = sa.text("SELECT 1")


# Built once: per lookup only the values change (the lookup is on IMSHOP's request path).
_LOOKUP = (
    sa.select(
        items.c.id,
        items.c.title,
        items.c.created_on,
        items.c.updated_on,
        items.c.text,
        items.c.url,
        items.c.deeplink,
        items.c.promocode,
        items.c.read_on,
    )
    .where(items.c.user_id == sa.bindparam("user_id"))
    .where(items.c.updated_on >= sa.bindparam("since_ms"))
    .order_by(items.c.updated_on.desc(), items.c.id.desc())
    .limit(sa.bindparam("limit"))
)


def _rows(entries: Sequence[HistoryEntry]) -> list[tuple[object, ...]]:
    """One row per item (``_WRITTEN``'s columns): the newest entry's content, the earliest
    entry's time as created."""
    newest: dict[tuple[str, str], HistoryEntry] = {}
    first: dict[tuple[str, str], int] = {}
    for entry in entries:
        item = (entry.user_id, entry.key)
        current = newest.get(item)
        if current is None or entry.newer_than(current):
            newest[item] = entry
        first[item] = min(first.get(item, entry.at_ms), entry.at_ms)
    # An entry's fields up to its version are the row's first columns (``_WRITTEN``).
    return [(*entry[:10], first[item], entry.at_ms) for item, entry in sorted(newest.items())]


def _from_json() -> sa.Select[Any]:
    """SQLite: the batch's rows out of one JSON array of ``_rows`` (``:rows``)."""
    row = sa.func.json_each(sa.bindparam("rows")).table_valued("value", name="row")
    columns = [
        sa.func.json_extract(row.c.value, sa.literal_column(f"'$[{index}]'")).label(name)
        for index, name in enumerate(_WRITTEN)
    ]
    # WHERE: else SQLite would read the upsert's ON CONFLICT as the join's ON.
    return sa.select(*columns).select_from(row).where(sa.true())


def _upsert_statement(dialect: str) -> Any:
    # Both dialects' inserts have excluded and on_conflict_do_update, with one spelling.
    insert: Any = (
        postgresql.insert(items)
        if dialect == "postgresql"
        else sqlite.insert(items).from_select(_WRITTEN, _from_json())
    )
    new, old = insert.excluded, items.c
    newer = sa.or_(
        sa.and_(new.version.is_not(None), old.version.is_not(None), new.version > old.version),
        sa.and_(
            sa.or_(new.version.is_(None), old.version.is_(None)),
            sa.or_(
                new.updated_on > old.updated_on,
                sa.and_(new.updated_on == old.updated_on, new.event_id > old.event_id),
            ),
        ),
    )
    earlier = new.created_on < old.created_on
    changes: dict[str, Any] = {
        name: sa.case((newer, new[name]), else_=old[name]) for name in _CONTENT
    }
    changes["updated_on"] = sa.case((newer, new.updated_on), else_=old.updated_on)
    changes["read_on"] = sa.case((newer, sa.null()), else_=old.read_on)
    changes["created_on"] = sa.case((earlier, new.created_on), else_=old.created_on)
    return insert.on_conflict_do_update(
        index_elements=[items.c.user_id, items.c.item_key],
        set_=changes,
        where=sa.or_(newer, earlier),
    )
