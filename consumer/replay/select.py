"""Which dead letters a replay takes: the record split into original and ``dlq.*``
headers, the filter, and the time arguments (``--since 2h``)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from dataclasses import dataclass

from aiokafka import ConsumerRecord

from consumer.kafka.deadletter import HEADER_PREFIX, TRUNCATED_HEADER

MARKER = HEADER_PREFIX + "replayed_from"
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-letter record, split into the original record and our headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]  # the original ones, without dlq.*
    dlq: dict[str, str]
    timestamp_ms: int | None

    @classmethod
    def from_record(cls, record: ConsumerRecord) -> DeadLetter:
        headers = tuple(record.headers or ())
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=tuple((n, v) for n, v in headers if not n.startswith(HEADER_PREFIX)),
            dlq={
                n[len(HEADER_PREFIX) :]: v.decode("utf-8", "replace")
                for n, v in headers
                if n.startswith(HEADER_PREFIX)
            },
            timestamp_ms=record.timestamp,
        )

    @property
    def where(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"

    @property
    def reason(self) -> str:
        return self.dlq.get("reason", "unknown")

    @property
    def cut(self) -> str | None:
        """What was cut to fit the dead-letter topic (such a record cannot be replayed)."""
        return self.dlq.get(TRUNCATED_HEADER[len(HEADER_PREFIX) :])

    @property
    def event_type(self) -> str | None:
        try:
            event = json.loads(self.value or b"")
        except (ValueError, UnicodeDecodeError):
            return None
        kind = event.get("event_type") if isinstance(event, dict) else None
        return kind if isinstance(kind, str) else None

    @property
    def time(self) -> dt.datetime | None:
        with_header = self.dlq.get("time")
        if with_header:
            try:
                return _aware(dt.datetime.fromisoformat(with_header))
            except ValueError:
                pass
        if self.timestamp_ms is None or self.timestamp_ms < 0:
            return None
        return dt.datetime.fromtimestamp(self.timestamp_ms / 1000, dt.UTC)

    def replay_headers(self) -> list[tuple[str, bytes]]:
        return [*self.headers, (MARKER, self.where.encode())]


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    reasons: frozenset[str] = frozenset()
    event_types: frozenset[str] = frozenset()
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.event_types and letter.event_type not in self.event_types:
            return False
        if self.since is None and self.until is None:
            return True
        at = letter.time
        if at is None:
            return False
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)


def parse_time(text: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """An ISO 8601 time (UTC unless it says otherwise) or an age: ``30m``, ``2h``, ``7d``."""
    if match := _RELATIVE.match(text.strip()):
        age = dt.timedelta(**{_UNITS[match[2]]: float(match[1])})
        return (now or dt.datetime.now(dt.UTC)) - age
    try:
        return _aware(dt.datetime.fromisoformat(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO 8601 time (2026-11-22T10:00Z) nor an age (30m, 2h, 7d)"
        ) from None


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def describe(letter: DeadLetter, target: str | None) -> str:
    parts = [
        letter.where,
        f"reason={letter.reason}",
        f"event_type={letter.event_type or '-'}",
        f"event_id={letter.dlq.get('event_id', '-')}",
        f"source={letter.dlq.get('source_topic', '?')}/{letter.dlq.get('source_partition', '?')}"
        f"@{letter.dlq.get('source_offset', '?')}",
        f"time={letter.dlq.get('time', '-')}",
        f"-> {target or _why_skipped(letter)}",
    ]
    return "  ".join(parts)


def _why_skipped(letter: DeadLetter) -> str:
    if letter.cut is not None:
        return "SKIPPED (cut to fit the dead-letter topic: replay the original from its source)"
    return "SKIPPED (no dlq.source_topic)"
