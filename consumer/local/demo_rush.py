"""The demo's rush: many orders handed to the courier at once, then a few one by one.

It shows the dispatcher choosing each push's text from the budget: only so many
personal pushes can go out within the rule's ``personal_within``; the rest of
the rush gets the rule's shared text, one request for all of them; once the
rush is over, the next orders go out personal again.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from consumer.events import parse_event
from consumer.local.rush import Status, status_event
from consumer.mapping import MappingSet

Text = tuple[str, str, str | None]  # title, summary, deeplink: what a customer sees
WIDTH = 96
_FIRST_ORDER = 900  # rush orders are numbered from here (the trace's own numbers)


@dataclass(frozen=True, slots=True)
class Rush:
    """The rush's orders and the trickle after it, as events."""

    burst: list[dict[str, Any]]
    trickle: list[dict[str, Any]]

    @classmethod
    def of(cls, burst: int, trickle: int, run: str) -> Rush:
        now = dt.datetime.now(dt.UTC)

        def courier(order: int) -> dict[str, Any]:
            step = Status(0.0, _FIRST_ORDER + order, "handed_to_courier", 4)
            return status_event(step, now, run)

        return cls(
            [courier(n) for n in range(burst)],
            [courier(burst + n) for n in range(trickle)],
        )


def record(event: dict[str, Any], topic: str) -> tuple[str, bytes, bytes]:
    """The event as a record published now (it happens as it is published)."""
    now = dt.datetime.now(dt.UTC).isoformat()
    value = json.dumps({**event, "occurred_at": now}, ensure_ascii=False).encode()
    return topic, event["order"]["id"].encode(), value


def shared_texts(mappings: MappingSet, events: Iterable[dict[str, Any]]) -> set[Text]:
    """The shared texts these events can go out with (to tell them apart when shown)."""
    found = set()
    for event in events:
        raw = json.dumps(event, ensure_ascii=False).encode()
        try:
            parsed = parse_event(raw, max_bytes=len(raw) + 1, extra_types=mappings.extra_types)
            push = mappings.render(parsed, now=parsed.occurred_at)
        except Exception:  # a malformed sample: it has no text to tell apart
            continue
        if push is not None and push.shared is not None:
            found.add((push.shared.title, push.shared.summary, push.shared.deeplink))
    return found


def text_of(push: dict[str, Any]) -> Text:
    message = push["message"]
    return message["title"], message["summary"], push.get("deeplink")


def rush_lines(
    rush: Rush,
    pushes: list[dict[str, Any]],
    shared: set[Text],
    *,
    within_s: float,
    real_within_s: float,
) -> list[str]:
    """What the rush showed: who got which text, and in how many requests."""

    def told(events: list[dict[str, Any]]) -> tuple[int, int, int]:
        users = {e["recipient"]["user_id"] for e in events}
        personal, shared_users, shared_requests = set(), set(), 0
        for push in pushes:
            mine = users & set(push["userIds"])
            if not mine:
                continue
            if text_of(push) in shared:
                shared_users |= mine
                shared_requests += 1
            else:
                personal |= mine
        return len(personal), len(shared_users), shared_requests

    personal, shared_count, requests = told(rush.burst)
    after, after_shared, _ = told(rush.trickle)
    example = rush.burst[0]["order"]["number"] if rush.burst else ""
    notes = [
        f"The rush: {len(rush.burst)} orders handed to the courier at once. {personal} "
        f"customers got their own text («Курьер везёт заказ № {example}»…) and {shared_count} "
        f"the rule's shared one («Ваш заказ передан курьеру») in {requests} "
        f"request{'s' if requests != 1 else ''}: the budget could not carry more personal "
        f"pushes within {within_s:g} s, the rule's personal_within ({real_within_s:g} s at "
        "IMSHOP's real pace). Their personal texts are in their notification history.",
        f"Then {len(rush.trickle)} orders a few seconds apart: {after} of them personal again"
        + (f", {after_shared} shared." if after_shared else "."),
    ]
    lines = ["What the rush showed"]
    for note in notes:
        lines += textwrap.wrap(note, WIDTH, initial_indent="  ", subsequent_indent="      ")
    return lines
