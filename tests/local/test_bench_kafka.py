"""The benchmark's topic chores on the real broker: clear failures, nothing left behind."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from consumer.errors import FatalError
from consumer.local.bench.peers import PEERS
from consumer.local.bench.support import (
    create_topic,
    own_topics_deleted,
    produce_values,
    sample_values,
    unique,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


async def test_creating_a_topic_that_exists_fails_with_the_kafka_error(
    kafka_bootstrap: str, topic_factory: Any
) -> None:
    existing = await topic_factory(prefix="bench-exists")

    with pytest.raises(FatalError, match=f"creating topic {existing} .* TopicAlreadyExistsError"):
        await create_topic(kafka_bootstrap, existing)


async def test_topics_created_in_the_block_are_deleted_after_it(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, topic_factory: Any
) -> None:
    before = await topic_factory(prefix="bench-before")

    async with own_topics_deleted(kafka_bootstrap):
        created = await create_topic(kafka_bootstrap, unique("cleanup"), partitions=1)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while created in (topics := await kafka_admin.list_topics()):
        assert loop.time() < deadline, f"{created} was not deleted"
        await asyncio.sleep(0.2)
    assert before in topics, "a topic that existed before the block is kept"


@pytest.mark.parametrize("name", sorted(PEERS))
async def test_each_ingest_peer_handles_every_event_and_commits_them(
    name: str, kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, topic_factory: Any
) -> None:
    topic = await topic_factory(prefix="bench-peer", partitions=3)
    produced = await produce_values(kafka_bootstrap, topic, sample_values(600, distinct=50))

    counter = await PEERS[name](kafka_bootstrap, topic, produced)

    assert counter.done == produced
    committed = await kafka_admin.list_consumer_group_offsets(counter.group)
    assert sum(meta.offset for tp, meta in committed.items() if tp.topic == topic) == produced
