"""The last N records of a topic, read without a trace: no consumer group, no commit.

Every partition is assigned and read from ``end - N`` (or its beginning) up to
the end offsets captured at the start; the newest N records of the whole topic
are kept. The wait is bounded: a partition that gives nothing within the
deadline ends the read with what was found, and says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from consumer.errors import FatalError
from consumer.kafka.clients import assign_topic, client_kwargs, connect
from consumer.settings import KafkaSettings

MAX_RECORDS = 500


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None

    @property
    def where(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


@dataclass(frozen=True, slots=True)
class Tail:
    records: list[Record]
    unfinished: list[str]  # partitions not read to their end within the deadline


async def read_last(
    settings: KafkaSettings, topic: str, last: int, *, timeout_s: float = 10.0
) -> Tail:
    """The newest ``last`` records of ``topic`` (oldest first); FatalError if unreachable."""
    if not 1 <= last <= MAX_RECORDS:
        raise FatalError(f"the number of records must be between 1 and {MAX_RECORDS}, not {last}")
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        client_id="mappings-studio",
    )
    await connect(consumer.start, consumer.stop, settings.bootstrap_servers)
    try:
        ends = await _assign_tail(consumer, settings, topic, last)
        records, unfinished = await _read(consumer, ends, timeout_s)
    finally:
        await consumer.stop()
    records.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset))
    return Tail(records[-last:], unfinished)


async def _assign_tail(
    consumer: AIOKafkaConsumer, settings: KafkaSettings, topic: str, last: int
) -> dict[TopicPartition, int]:
    """Each partition from ``end - last`` (or its beginning); the ends of those with records."""
    bounds = await assign_topic(consumer, settings, topic)
    starts = {tp: max(begin, end - last) for tp, (begin, end) in bounds.items()}
    for tp, start in starts.items():
        consumer.seek(tp, start)
    return {tp: end for tp, (_, end) in bounds.items() if starts[tp] < end}


async def _read(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], timeout_s: float
) -> tuple[list[Record], list[str]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    open_tps = set(ends)
    records: list[Record] = []
    while open_tps and loop.time() < deadline:
        batches = await consumer.getmany(*open_tps, timeout_ms=200)
        for tp, batch in batches.items():
            records += [
                Record(tp.topic, tp.partition, r.offset, r.timestamp, r.key, r.value)
                for r in batch
                if r.offset < ends[tp]
            ]
        for tp in list(open_tps):
            if await consumer.position(tp) >= ends[tp]:
                open_tps.discard(tp)
    return records, sorted(f"{tp.topic}/{tp.partition}" for tp in open_tps)
