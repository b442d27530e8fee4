"""Starting a Kafka client in a command (``dlq replay``, ``demo``): fail in one line.

An unreachable broker otherwise shows as an aiokafka error log per refused
connection, a traceback, and an "Unclosed AIOKafka..." warning from the client
left half started.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator

from aiokafka.errors import KafkaError

from consumer.errors import FatalError


async def connect(
    start: Callable[[], Awaitable[None]], close: Callable[[], Awaitable[None]], bootstrap: str
) -> None:
    """Run a client's ``start``; on failure close it and raise a FatalError naming the broker."""
    try:
        with _bootstrap_errors_unlogged():
            await start()
    except (KafkaError, OSError) as exc:
        await close()
        raise FatalError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc


@contextlib.contextmanager
def _bootstrap_errors_unlogged() -> Iterator[None]:
    # aiokafka logs every refused bootstrap connection at error level; the
    # FatalError raised above already says it, once. Scoped to the start only,
    # so errors while running are still logged.
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
