"""The lookup index goes: a customer's items are found through their unique key.

Every row written went into two B-trees ordered by customer, the unique
``(user_id, item_key)`` and the lookup's ``(user_id, updated_on DESC, id DESC)``:
a batch of rows for many customers touches a page per row in each, and each such
page is written again at the commit (and in SQLite once more at the checkpoint).
The unique index finds the same rows for the lookup (a customer keeps at most
``HISTORY_MAX_ITEMS_PER_USER`` items); sorting them costs less than a second index
costs every write. Measured in docs/benchmarks.md (issue 16, third round).

Revision ID: 0002
Revises: 0001
Created: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("history_items_lookup", table_name="history_items")


def downgrade() -> None:
    raise NotImplementedError("the history is never migrated down; restore a backup instead")
