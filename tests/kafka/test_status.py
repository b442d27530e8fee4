"""KafkaStatus: what readiness says about the broker, on a fake clock."""

from __future__ import annotations

from aiokafka.structs import TopicPartition

from consumer.clock import FakeClock
from consumer.kafka.status import KafkaStatus

A, B = TopicPartition("orders", 0), TopicPartition("orders", 1)


def status() -> tuple[KafkaStatus, FakeClock]:
    clock = FakeClock()
    return KafkaStatus(clock, failing_after_s=10), clock


async def test_a_healthy_broker_shows_no_problem() -> None:
    kafka, clock = status()
    for stamp in range(30):
        kafka.fetch_answers({A: stamp, B: stamp}, delivered=())
        kafka.commit_started()
        kafka.commit_ended()
        kafka.getmany_ended(waited_for_rebalance=False)
        await clock.advance(1)

    assert kafka.problems() == []
    assert not kafka.commits_stalled(2)


async def test_partitions_without_fetch_answers_are_named_once_it_lasts() -> None:
    kafka, clock = status()
    kafka.fetch_answers({A: 1, B: 1}, delivered=())
    for _ in range(9):
        await clock.advance(1)
        kafka.fetch_answers({A: 1, B: 2 + int(clock.monotonic())}, delivered=())
    assert kafka.problems() == [], "not yet ten seconds"

    await clock.advance(1)
    kafka.fetch_answers({A: 1, B: 99}, delivered=())

    assert kafka.problems() == ["no fetch answer for 10 s from 1 partition(s): orders/0"]


async def test_records_handed_out_count_as_answers_and_a_resumed_partition_starts_afresh() -> None:
    kafka, clock = status()
    kafka.fetch_answers({A: 1}, delivered=())
    await clock.advance(20)
    kafka.fetch_answers({A: 1}, delivered={A})  # buffered records: no new stamp, yet data
    assert kafka.problems() == []

    kafka.fetch_answers({}, delivered=())  # paused: nothing is fetched, nothing is expected
    await clock.advance(60)
    kafka.fetch_answers({A: 1}, delivered=())  # resumed with its old stamp
    assert kafka.problems() == []


async def test_commits_failing_say_since_when_and_why_until_one_succeeds() -> None:
    kafka, clock = status()
    kafka.commit_started()
    await clock.advance(3)
    assert kafka.commits_stalled(2), "an answer overdue stops the drain at once"
    kafka.commit_ended("KafkaConnectionError: Connection refused")
    await clock.advance(10)

    assert kafka.problems() == [
        "commits failing for 10 s (KafkaConnectionError: Connection refused)"
    ]

    kafka.commit_started()
    kafka.commit_ended()
    assert kafka.problems() == []
    assert not kafka.commits_stalled(2)


async def test_a_commit_without_answer_and_a_stuck_rebalance_are_problems() -> None:
    kafka, clock = status()
    kafka.commit_started()
    kafka.getmany_ended(waited_for_rebalance=True)
    await clock.advance(12)
    kafka.getmany_ended(waited_for_rebalance=True)

    assert kafka.problems() == [
        "a commit unanswered for 12 s",
        "the group rebalance has not finished for 12 s",
    ]


def test_missing_topics_are_named_at_once() -> None:
    kafka, _ = status()
    kafka.missing_topics = frozenset({"orders", "bonus"})

    assert kafka.problems() == ["topics not in Kafka (read once created): bonus, orders"]
