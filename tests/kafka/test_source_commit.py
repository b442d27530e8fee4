"""KafkaSource.commit under cancellation, without a broker (the consumer is a stand-in)."""

from __future__ import annotations

import asyncio

import pytest

from consumer.clock import FakeClock
from consumer.kafka.source import KafkaSource
from consumer.metrics import Metrics
from consumer.settings import KafkaSettings


class Consumer:
    """What commit() asks of aiokafka's consumer: nothing assigned, nothing to commit."""

    def assignment(self) -> set[object]:
        return set()

    def paused(self) -> set[object]:
        return set()


async def test_a_commit_cancelled_as_it_gets_the_lock_ends_cancelled() -> None:
    """The service's commit loop waits for the lock while the drain's final commit holds
    it; the drain then cancels the loop. A cancel that arrives as the lock is handed
    over must end the commit (on Python 3.11 asyncio.wait_for swallowed it, so the
    loop went on and the shutdown never finished)."""
    source = KafkaSource(KafkaSettings(), Metrics(), FakeClock())
    source._consumer = Consumer()
    await source._commit_lock.acquire()  # another commit holds it
    waiting = asyncio.create_task(source.commit(5.0))
    for _ in range(5):
        await asyncio.sleep(0)

    source._commit_lock.release()  # handed over ...
    waiting.cancel()  # ... as the cancel comes

    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not source._commit_lock.locked()
