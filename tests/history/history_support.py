"""Builders for the history tests: entries and jobs with only what matters set."""

from __future__ import annotations

import datetime as dt
from typing import Any

from consumer.events import Recipient
from consumer.history.entry import HistoryEntry
from consumer.push import HistoryText, Message, Origin, PushClass, PushJob, RenderedPush

DEFAULT_TEXT = HistoryText("T", "S")
T0_MS = 1_795_000_000_000  # 2026-11-18, well inside any retention measured from FakeClock's now


def entry(
    event_id: str,
    *,
    user: str = "u1",
    key: str | None = None,
    version: int | None = None,
    at_ms: int = T0_MS,
    title: str | None = None,
    **fields: Any,
) -> HistoryEntry:
    return HistoryEntry(
        user_id=user,
        key=key or f"e:{event_id}",
        event_id=event_id,
        rule_id="orders.yaml:rule",
        title=title or f"title of {event_id}",
        text=fields.get("text"),
        url=fields.get("url"),
        deeplink=fields.get("deeplink"),
        promocode=fields.get("promocode"),
        version=version,
        at_ms=at_ms,
    )


def job(
    event_id: str,
    *,
    user: str | None = "u1",
    install_id: str | None = None,
    collapse_key: str | None = None,
    version: int | None = None,
    history: HistoryText | None = DEFAULT_TEXT,
    partition: int = 0,
    offset: int = 0,
    at: dt.datetime = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC),
) -> PushJob:
    return PushJob(
        origin=Origin(topic="orders", partition=partition, offset=offset),
        event_id=event_id,
        event_type="order.status_changed",
        recipient=Recipient(user_id=user, install_id=install_id),
        push=RenderedPush(
            rule_id="orders.yaml:order_shipped",
            message=Message("T", "S"),
            push_class=PushClass.TRANSACTIONAL,
            ttl_s=3600,
            collapse_key=collapse_key,
            history=history,
        ),
        occurred_at=at,
        version=version,
    )
