"""Topic chores on a broker we run: creating topics (and waiting for their leaders), deleting them.

Used by ``kafka start --topics``, the demo and the benchmarks. Every failure to
reach the broker or to create a topic is a ``FatalError`` naming the topic and
Kafka's error, so a command says it in one line instead of a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code

from consumer.errors import FatalError
from consumer.kafka.clients import connect

LEADERS_WITHIN_S = 30.0


async def create_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    """Create the topics (replication 1) and wait until each partition has a leader."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await connect(admin.start, admin.close, bootstrap)
    try:
        new = [NewTopic(name, count, 1) for name, count in partitions.items()]
        response = await admin.create_topics(new)
        for topic, code, *message in response.topic_errors:
            if code != 0:
                raise FatalError(
                    f"creating topic {topic} at {bootstrap} failed: {for_code(code).__name__} "
                    f"(Kafka error {code}) {' '.join(map(str, message))}".rstrip()
                )
        deadline = time.monotonic() + LEADERS_WITHIN_S
        while not await _led(admin, partitions):
            if time.monotonic() > deadline:
                raise FatalError(
                    f"topics at {bootstrap} got no partition leaders within "
                    f"{LEADERS_WITHIN_S:g} s: {', '.join(partitions)}"
                )
            await asyncio.sleep(0.1)
    except KafkaError as exc:
        raise FatalError(f"creating topics at {bootstrap} failed: {exc}") from exc
    finally:
        await admin.close()


async def _led(admin: AIOKafkaAdminClient, partitions: dict[str, int]) -> bool:
    described = await admin.describe_topics(list(partitions))
    return all(
        topic["error_code"] == 0
        and sum(1 for p in topic["partitions"] if p["leader"] >= 0) == partitions[topic["topic"]]
        for topic in described
    )


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Best effort: a broker that went away takes its topics with it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            await admin.start()
            await admin.delete_topics(names)
    finally:
        await admin.close()
