"""The demo's Kafka chores: its own topics (created, then deleted) and publishing.

Every failure to reach the broker or to create the topics is a ``FatalError``:
the command says it in one line instead of a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from consumer.errors import FatalError
from consumer.kafka.clients import connect


async def create_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    """Create the topics and wait until each partition has a leader (bounded)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await connect(admin.start, admin.close, bootstrap)
    try:
        new = [NewTopic(name, count, 1) for name, count in partitions.items()]
        response = await admin.create_topics(new)
        errors = [error for error in response.topic_errors if error[1] != 0]
        if errors:
            raise FatalError(f"creating the demo topics at {bootstrap} failed: {errors}")
        deadline = time.monotonic() + 30
        while not await _led(admin, partitions):
            if time.monotonic() > deadline:
                raise FatalError(f"the demo topics had no leaders within 30 s: {list(partitions)}")
            await asyncio.sleep(0.1)
    except KafkaError as exc:
        raise FatalError(f"creating the demo topics at {bootstrap} failed: {exc}") from exc
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


async def publish(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    await connect(producer.start, producer.stop, bootstrap)
    try:
        sent = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*sent)
    except KafkaError as exc:
        raise FatalError(f"publishing the demo events to {bootstrap} failed: {exc}") from exc
    finally:
        await producer.stop()
