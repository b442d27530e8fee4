"""The history's items: one row per customer and item (an order, or one event).

Revision ID: 0001
Revises:
Created: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "history_items",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
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
    op.create_index(
        "history_items_lookup",
        "history_items",
        ["user_id", sa.text("updated_on DESC"), sa.text("id DESC")],
    )
    op.create_index("history_items_updated", "history_items", ["updated_on"])


def downgrade() -> None:
    raise NotImplementedError("the history is never migrated down; restore a backup instead")
