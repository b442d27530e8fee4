"""The history's table, as the code reads and writes it (the migrations create it).

One row per item: ``(user_id, item_key)`` is unique; ``id`` is what IMSHOP sees.
Times are Unix milliseconds of the events (``created_on`` the first event of the
item, ``updated_on`` the one it shows), so a replay writes the same times again.
The lookup finds a customer's items through the unique ``(user_id, item_key)`` and
sorts them (at most ``HISTORY_MAX_ITEMS_PER_USER``): a second index ordered by
customer would cost every write a page more per row (migration 0002); retention
deletes by ``updated_on``.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite makes only an INTEGER PRIMARY KEY an alias of its rowid (auto-numbered).
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

items = sa.Table(
    "history_items",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Text(), nullable=False),
    sa.Column("item_key", sa.Text(), nullable=False),
    sa.Column("event_id", sa.Text(), nullable=False),
    sa.Column("rule_id", sa.Text(), nullable=False),
    sa.Column("title", sa.Text(), nullable=False),
    sa.Column("text", sa.Text()),
    sa.Column("url", sa.Text()),
    sa.Column("deeplink", sa.Text()),
    sa.Column("promocode", sa.Text()),
    sa.Column("version", sa.BigInteger()),
    sa.Column("created_on", sa.BigInteger(), nullable=False),
    sa.Column("updated_on", sa.BigInteger(), nullable=False),
    sa.Column("read_on", sa.BigInteger()),
    sa.UniqueConstraint("user_id", "item_key", name="history_items_user_item"),
)
sa.Index("history_items_updated", items.c.updated_on)

# The schema version table's name: its own, so a database shared with other
# applications (and their Alembic) keeps the two apart.
VERSION_TABLE = "history_schema_version"
