"""Where the service meets Kafka: the source of records and the dead-letter writer.

``BrokerEdge`` opens the real ones (aiokafka). The service takes any ``KafkaEdge``,
so its lifecycle (probes, backpressure, dead letters, the drain) can be tested
without a broker; the end-to-end tests use ``BrokerEdge`` against a real one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiokafka.structs import ConsumerRecord, TopicPartition

from consumer.clock import Clock
from consumer.kafka.clients import connect
from consumer.kafka.deadletter import DeadLetterWriter, build_producer, check_dead_letter_topic
from consumer.kafka.source import KafkaSource, RevokedCallback, RevokingHook
from consumer.kafka.status import KafkaStatus
from consumer.metrics import Metrics
from consumer.outcomes import DeadLetterSink
from consumer.settings import Settings

# The service's way of closing a part within its grace period: (name, close).
CloseWithinGrace = Callable[[str, Callable[[], Awaitable[None]]], Awaitable[None]]


class Source(Protocol):
    """What the service uses of ``KafkaSource``."""

    status: KafkaStatus
    last_progress: float  # monotonic time of the last poll

    @property
    def assigned(self) -> frozenset[TopicPartition]: ...

    @property
    def ready(self) -> bool: ...

    async def start(self) -> None: ...

    async def getmany(
        self, timeout_ms: int = 1000, *, max_records: int | None = None
    ) -> list[ConsumerRecord]: ...

    def done(self, topic: str, partition: int, offset: int) -> None: ...

    async def commit(self, timeout_s: float | None = None, *, probe: bool = False) -> bool: ...

    def pause_all(self) -> None: ...

    def resume_all(self) -> None: ...

    async def stop(self, timeout_s: float | None = None) -> None: ...


class KafkaEdge(Protocol):
    async def dead_letters(
        self, stack: contextlib.AsyncExitStack, close: CloseWithinGrace
    ) -> DeadLetterSink:
        """Open the dead-letter writer (its closing pushed on ``stack`` through
        ``close``); raise when no dead letter could be written."""
        ...

    def source(self, *, on_revoking: RevokingHook, on_revoked: RevokedCallback) -> Source:
        """An unstarted source with the service's rebalance hooks."""
        ...


class BrokerEdge:
    """The real Kafka side: an aiokafka producer for dead letters, ``KafkaSource``."""

    def __init__(self, settings: Settings, metrics: Metrics, clock: Clock) -> None:
        self._kafka = settings.kafka
        self._metrics = metrics
        self._clock = clock

    async def dead_letters(
        self, stack: contextlib.AsyncExitStack, close: CloseWithinGrace
    ) -> DeadLetterSink:
        producer = build_producer(self._kafka)
        # The first Kafka client: an unreachable broker ends the start here, in one line.
        await connect(producer.start, producer.stop, self._kafka.bootstrap_servers)
        stack.push_async_callback(close, "dead_letter_producer", producer.stop)
        # A dead-letter topic that cannot be written stops the start, not the first dead letter.
        await check_dead_letter_topic(producer.client, self._kafka)
        return DeadLetterWriter(producer, self._kafka.dlq_topic, self._metrics)

    def source(self, *, on_revoking: RevokingHook, on_revoked: RevokedCallback) -> Source:
        return KafkaSource(
            self._kafka,
            self._metrics,
            self._clock,
            on_revoking=on_revoking,
            on_revoked=on_revoked,
        )
