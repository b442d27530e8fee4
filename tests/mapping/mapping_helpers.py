"""Small builders for mapping tests: a rule in YAML, an event as JSON."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from consumer.events import BaseEvent, parse_event

RULE = """\
rules:
  - id: {id}
    event: {event}
    when:
{when}
    class: {push_class}
    ttl: 2h
    title: {title}
    summary: {summary}
    deeplink: {deeplink}
    examples:
      - now: "2026-11-25T12:00:00+03:00"
        event:
{example_event}
        push:
          title: {expected_title}
          summary: {expected_summary}
          deeplink: {expected_deeplink}
"""

DEFAULTS: dict[str, str] = {
    "id": "order_shipped",
    "event": "order.status_changed",
    "when": "      order.status: handed_to_courier",
    "push_class": "transactional",
    "title": "'Заказ №{{ order.number | default: order.id }} отправлен'",
    "summary": "Скоро будет у вас.",
    "deeplink": "'imshop://orders/{{ order.id }}'",
    "example_event": "          order: {id: A-1, number: '77', status: handed_to_courier}",
    "expected_title": "Заказ №77 отправлен",
    "expected_summary": "Скоро будет у вас.",
    "expected_deeplink": "imshop://orders/A-1",
}


def rule_yaml(**changes: str) -> str:
    return RULE.format(**{**DEFAULTS, **changes})


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def event(**fields: Any) -> BaseEvent:
    data: dict[str, Any] = {
        "event_id": "e-1",
        "event_type": "order.status_changed",
        "occurred_at": "2026-11-25T12:00:00+03:00",
        "recipient": {"user_id": "u-1"},
    }
    data.update(fields)
    return parse_event(json.dumps(data).encode(), max_bytes=65_536, extra_types={"promo.sent"})
