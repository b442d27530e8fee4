"""What the history keeps: one event's entry going in, one customer's item coming out.

An entry belongs to an *item* named by ``(user_id, key)``: the push's collapse key
when it has one (an order: every status of the order is the same item), else the
event id (one item per event). Of two entries for one item the newer wins
(``newer_than``: the higher order version, else the later event, the event id
breaking ties), so the result does not depend on the order entries arrive in,
and a redelivered or replayed event changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, NamedTuple

from consumer.push import PushJob

# IMSHOP asks by userId; the API refuses longer ones, so an item for one could never be read.
MAX_USER_ID_CHARS = 256
# A longer collapse key is stored as its hash: index entries must stay small (PostgreSQL
# refuses btree entries over ~2.7 kB).
MAX_KEY_CHARS = 200


class HistoryEntry(NamedTuple):
    """One event's entry (a tuple: made per event, and cheaper to make than a frozen
    dataclass; ``_rows`` in the store reads its fields in this order)."""

    user_id: str
    key: str
    event_id: str
    rule_id: str
    title: str
    text: str | None
    url: str | None
    deeplink: str | None
    promocode: str | None
    version: int | None
    at_ms: int  # the event's occurred_at, Unix milliseconds

    def newer_than(self, other: HistoryEntry) -> bool:
        """True when this entry should replace ``other`` as its item's content.

        The store's SQL applies the same rule (``consumer.history.store``).
        """
        if self.version is not None and other.version is not None:
            return self.version > other.version
        return (self.at_ms, self.event_id) > (other.at_ms, other.event_id)


def entry_for(job: PushJob) -> HistoryEntry | None:
    """The job's history entry; None when its rule keeps none or it has no customer id.

    Only ``recipient.user_id`` is stored: the history is asked for by it, and an
    install id is not a customer's.
    """
    shown = job.push.history
    user_id = job.recipient.user_id
    if shown is None or user_id is None or len(user_id) > MAX_USER_ID_CHARS:
        return None
    collapse = job.push.collapse_key
    key = f"c:{collapse}" if collapse is not None else f"e:{job.event_id}"
    return HistoryEntry(
        user_id=_storable(user_id),
        key=_short_key(_storable(key)),
        event_id=_storable(job.event_id),
        rule_id=job.push.rule_id,
        title=_storable(shown.title),
        text=_optional(shown.text),
        url=_optional(shown.url),
        deeplink=_optional(shown.deeplink),
        promocode=_optional(shown.promocode),
        version=job.version,
        at_ms=int(job.occurred_at.timestamp() * 1000),
    )


def _storable(text: str) -> str:
    """Text any database takes: PostgreSQL refuses NUL characters, UTF-8 lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _optional(text: str | None) -> str | None:
    return _storable(text) if text else None


def _short_key(key: str) -> str:
    if len(key) <= MAX_KEY_CHARS:
        return key
    return "h:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One item of a customer's history as the store returns it."""

    id: str
    title: str
    created_on: int
    updated_on: int
    text: str | None = None
    url: str | None = None
    deeplink: str | None = None
    promocode: str | None = None
    read: bool = False

    def imshop(self) -> dict[str, Any]:
        """The item in IMSHOP's shape: times in ms, ``deepLink`` camel-cased, empty
        optional fields left out."""
        shown: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "createdOn": self.created_on,
            "updatedOn": self.updated_on,
        }
        for name, value in (
            ("text", self.text),
            ("url", self.url),
            ("deepLink", self.deeplink),
            ("promocode", self.promocode),
        ):
            if value is not None:
                shown[name] = value
        return shown
