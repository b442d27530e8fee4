"""What flows from mapping to dispatch to providers: rendered pushes and outcomes.

A ``Message`` is the provider-visible text; two pushes whose messages are equal
(byte-identical title, summary and deeplink) can share one provider request.
A ``PushJob`` is one event's push waiting in the dispatcher, with the ``Origin``
that says where in Kafka it came from (everything a dead-letter record needs).

A rule may give a push two texts: its own (*personal*) and a *shared* one that
names nothing personal, so it coalesces with everyone else's. The dispatcher
chooses per push (``PushJob.variant``); ``PushJob.message`` is the text it goes
out with.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from consumer.errors import ConsumerError
from consumer.events import Recipient
from consumer.quiet import QuietHours

DEFAULT_ZONE = ZoneInfo("Europe/Moscow")  # the event contract's default time zone


class PushClass(enum.StrEnum):
    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


class Variant(enum.StrEnum):
    """Which of its rule's texts a push goes out with."""

    PERSONAL = "personal"
    SHARED = "shared"


class Outcome(enum.StrEnum):
    """The one recorded end of every event; only then may its offset be committed."""

    SENT = "sent"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    summary: str
    deeplink: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryText:
    """What the customer's notification history shows for one push (IMSHOP's item)."""

    title: str
    text: str | None = None
    url: str | None = None
    deeplink: str | None = None
    promocode: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedPush:
    """The push one mapping rule rendered for one event.

    ``history`` is what the customer's history keeps of it (by default the same
    title, summary and deeplink); None when the rule opts out (``history: false``).
    ``shared`` is the rule's text that names nothing personal, sent instead of
    ``message`` when the personal one could not go out within
    ``personal_within_s`` of the event. ``quiet_hours``: not sent in this window
    of the recipient's local time.
    """

    rule_id: str
    message: Message
    push_class: PushClass
    ttl_s: float
    collapse_key: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    history: HistoryText | None = None
    shared: Message | None = None
    personal_within_s: float = 0.0
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from, with its original bytes (for the dead-letter topic)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None


@dataclass(slots=True)
class PushJob:
    """One event's push, waiting in (or travelling through) the dispatcher."""

    origin: Origin
    event_id: str
    event_type: str
    recipient: Recipient
    push: RenderedPush
    occurred_at: dt.datetime
    version: int | None = None
    attempts: int = 0
    zone: ZoneInfo = DEFAULT_ZONE  # the recipient's time zone (the event's ``timezone``)
    in_history: bool = False  # its item is written in the customer's notification history
    variant: Variant = Variant.PERSONAL

    @property
    def expires_at(self) -> dt.datetime:
        return self.occurred_at + dt.timedelta(seconds=self.push.ttl_s)

    @property
    def message(self) -> Message:
        """The text this push goes out with: its variant's."""
        shared = self.push.shared
        return (
            shared if self.variant is Variant.SHARED and shared is not None else self.push.message
        )

    @property
    def shareable(self) -> bool:
        """It may go out as its shared text: the rule has one, and the customer's history
        already holds the personal details the shared text points to."""
        return self.push.shared is not None and self.in_history


class OutcomeSink(Protocol):
    """Receives the final outcome of each event (the source commits on it).

    Must not block: a dead-letter write is queued by the implementation.
    """

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
        """``variant``: which text a sent push went out with (None for other outcomes)."""
        ...
