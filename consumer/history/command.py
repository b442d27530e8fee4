"""``python -m consumer history serve|migrate|show``: the API apart, the schema, one customer."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from consumer.clock import SystemClock
from consumer.history.database import database_url, shown
from consumer.history.pruner import retention_cutoff_ms
from consumer.history.server import serve_history
from consumer.history.store import SqlHistoryStore
from consumer.logs import configure_logging
from consumer.settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "history",
        help="the notification history: serve its API apart, migrate its schema, show a customer's",
    )
    commands = parser.add_subparsers(title="history commands", metavar="ACTION", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve only the history API for IMSHOP, from the database (no Kafka)",
        description="Serve the history API (HISTORY_PORT) and /healthz, /readyz, /metrics "
        "(HEALTH_PORT) from the database at HISTORY_DATABASE_URL, until SIGTERM. No Kafka, "
        "provider or mappings: /readyz follows the database alone, so a Kafka outage does "
        "not take the history offline. Run `run` with HISTORY_API_IN_RUN=false beside it "
        "(it writes the history). Configured by environment like `run`.",
    )
    serve.set_defaults(func=_serve)
    migrate = commands.add_parser(
        "migrate",
        help="bring the schema at HISTORY_DATABASE_URL to this version's (never drops data)",
    )
    migrate.set_defaults(func=_migrate)
    show = commands.add_parser(
        "show", help="print a customer's history as IMSHOP receives it (JSON)"
    )
    show.add_argument("user_id", help="the customer's id (recipient.user_id)")
    show.set_defaults(func=_show)


def _serve(_args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings.service.log_level, settings.service.log_format)
    asyncio.run(serve_history(settings))
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    settings = load_settings().history
    url = database_url(settings.database_url.get_secret_value())

    async def migrate() -> None:
        store = await SqlHistoryStore.open(url, migrate=True)
        await store.aclose()

    asyncio.run(migrate())
    print(f"the history schema at {shown(url)} is up to date")
    return 0


def _show(args: argparse.Namespace) -> int:
    settings = load_settings().history
    url = database_url(settings.database_url.get_secret_value())

    async def show() -> list[dict[str, Any]]:
        store = await SqlHistoryStore.open(url, migrate=False)
        try:
            found = await store.lookup(
                args.user_id,
                limit=settings.max_items_per_user,
                since_ms=retention_cutoff_ms(settings, SystemClock()),
            )
        finally:
            await store.aclose()
        return [item.imshop() for item in found]

    items = asyncio.run(show())
    print(json.dumps({"history": items}, ensure_ascii=False, indent=2))
    return 0
