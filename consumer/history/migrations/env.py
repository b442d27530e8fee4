"""Alembic's entry point for the history's migrations.

They run inside the service (at start) or ``python -m consumer history migrate``,
both through ``consumer.history.database.prepare_schema``, which hands over its
connection: there is no alembic.ini and no URL here.
"""

from __future__ import annotations

from alembic import context

from consumer.history.schema import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the history migrations run through `python -m consumer history migrate`, "
        "not the alembic command"
    )
context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    # SQLite alters a table by copying it; Alembic's batch mode does that safely.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
