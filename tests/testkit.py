"""Builders and fakes shared by tests in several folders (import as ``testkit``).

Folder-specific helpers stay beside their tests (``dispatch_support``,
``e2e_harness``...); what more than one folder needs is here, once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from hypothesis import settings

from consumer.clock import Clock
from consumer.errors import ConsumerError
from consumer.events import Recipient
from consumer.push import Message, Origin, Outcome, PushClass, PushJob, RenderedPush, Variant

T0 = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)  # FakeClock's default start

MUTATION_PROFILE = "mutation"  # --hypothesis-profile for make mutation (tests/conftest.py)


def under_mutation() -> bool:
    """The tests run under ``make mutation``'s profile: once per surviving mutant, traced."""
    return settings.get_current_profile_name() == MUTATION_PROFILE


def examples(count: int) -> int:
    """``count`` examples for a property test; a tenth of them (at least 10) under the
    mutation profile, which runs the test once per mutant it reaches, traced: the
    fixed examples still draw from the same strategies, ``@example`` cases stay, and
    the single-case tests beside them pin the exact decisions."""
    return max(10, count // 10) if under_mutation() else count


def make_job(
    event_id: str,
    *,
    user: str = "u1",
    text: str = "T",
    push_class: PushClass = PushClass.TRANSACTIONAL,
    ttl_s: float = 3600.0,
    collapse_key: str | None = None,
    version: int | None = None,
    occurred_at: dt.datetime = T0,
    event_type: str = "order.status_changed",
    recipient: Recipient | None = None,
    topic: str = "orders",
    partition: int = 0,
    offset: int = 0,
) -> PushJob:
    """One event's push: its message is ``text`` (title) and ``summary {text}``."""
    push = RenderedPush(
        rule_id=f"rule-{text}",
        message=Message(title=text, summary=f"summary {text}"),
        push_class=push_class,
        ttl_s=ttl_s,
        collapse_key=collapse_key,
    )
    return PushJob(
        origin=Origin(topic=topic, partition=partition, offset=offset),
        event_id=event_id,
        event_type=event_type,
        recipient=recipient or Recipient(user_id=user),
        push=push,
        occurred_at=occurred_at,
        version=version,
    )


@dataclass
class Recorded:
    outcome: Outcome
    reason: str | None
    error: ConsumerError | None
    at: float
    variant: Variant | None = None
    event_type: str | None = None
    wall: dt.datetime | None = None


@dataclass
class RecordingSink:
    """An ``OutcomeSink`` that keeps every outcome by event id, with its monotonic and
    wall-clock times."""

    clock: Clock | None = None
    outcomes: dict[str, list[Recorded]] = field(default_factory=dict)

    def record(
        self,
        origin: Origin,
        outcome: Outcome,
        *,
        event_id: str | None = None,
        event_type: str | None = None,
        reason: str | None = None,
        error: ConsumerError | None = None,
        variant: Variant | None = None,
    ) -> None:
        at = self.clock.monotonic() if self.clock else 0.0
        wall = self.clock.now() if self.clock else None
        done = Recorded(outcome, reason, error, at, variant, event_type, wall)
        self.outcomes.setdefault(event_id or "", []).append(done)

    def outcome(self, event_id: str) -> Outcome:
        (only,) = self.outcomes[event_id]
        return only.outcome

    def count(self, outcome: Outcome) -> int:
        return sum(1 for records in self.outcomes.values() for r in records if r.outcome is outcome)


async def read_records(
    bootstrap: str,
    topics: str | Sequence[str],
    expected: int,
    *,
    timeout_s: float = 20.0,
    **options: Any,
) -> list[Any]:
    """Read ``expected`` records from the start of ``topics``, with no consumer group.

    Bounded: after ``timeout_s`` it returns what came (the caller asserts the count).
    ``options`` go to the consumer (``fetch_max_bytes`` for big records).
    """
    names = [topics] if isinstance(topics, str) else list(topics)
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **options,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(records) < expected and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records
