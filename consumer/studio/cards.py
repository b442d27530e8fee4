"""The preview page's model: every rule, its examples as phone cards, and its problems.

Plain JSON, built in Python and drawn by ``page/preview.js`` (which only ever
sets text, never HTML). A card is one outcome: the rule it went through and,
per variant (``personal``, and ``shared`` when the rule has one), the push as
the service sends it and as each lock screen shows it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from consumer.mapping.rules import Condition, Exists, Rule
from consumer.settings import ImshopSettings
from consumer.studio.draft import Draft, Problem
from consumer.studio.outcome import Outcome, Pushed, Renderer, cost_of, quiet_hours, variants
from consumer.studio.phone import lock_screens
from consumer.studio.tail import Record, Tail


def page_model(
    draft: Draft,
    imshop: ImshopSettings,
    *,
    version: int,
    recent: Tail | None = None,
    recent_topic: str | None = None,
    max_event_bytes: int = 65_536,
) -> dict[str, Any]:
    renderer = Renderer(draft.mappings, draft.settings)
    return {
        "version": version,
        "directory": str(draft.directory),
        "ok": draft.ok,
        "problems": [_problem(p, draft) for p in draft.problems],
        "loose_problems": [_problem(p, draft) for p in draft.loose_problems()],
        "stale_files": sorted(draft.stale_files),
        "rules": [_rule(rule, draft, renderer, imshop) for rule in draft.rules],
        "limits": {
            "title": draft.settings.title_max_chars,
            "summary": draft.settings.summary_max_chars,
            "event_bytes": max_event_bytes,
        },
        "recent": _recent(recent, recent_topic, renderer, max_event_bytes),
    }


def _problem(problem: Problem, draft: Draft) -> dict[str, Any]:
    owner = next((r.id for r in draft.rules if problem in draft.problems_of(r)), None)
    return {"where": problem.where, "text": problem.text, "rule": owner}


def _rule(rule: Rule, draft: Draft, renderer: Renderer, imshop: ImshopSettings) -> dict[str, Any]:
    return {
        "id": rule.id,
        "where": rule.where,
        "stale": rule.file_name in draft.stale_files,
        "events": list(rule.event_types),
        "when": [_condition(c) for c in rule.conditions],
        "priority": rule.priority,
        "class": rule.push_class.value,
        "ttl": _duration(rule.ttl_s),
        "quiet_hours": quiet_hours(rule),
        "variants": [
            {"name": v.name, "cost": cost_of(v.rule, imshop)}
            for v in variants(rule, draft.settings)
        ],
        "problems": [{"where": p.where, "text": p.text} for p in draft.problems_of(rule)],
        "examples": [
            {
                "name": example.name,
                "where": f"{rule.file}:{example.line}",
                **card(renderer.example(rule, example), renderer),
            }
            for example in rule.examples
        ],
    }


def card(outcome: Outcome, renderer: Renderer) -> dict[str, Any]:
    """One outcome as the page draws it."""
    rule = outcome.rule
    return {
        "rule": None if rule is None else {"id": rule.id, "where": rule.where},
        "now": None if outcome.now is None else outcome.now.isoformat(),
        "invalid": outcome.invalid,
        "no_push": outcome.no_push,
        "variants": [_variant(p, renderer) for p in outcome.pushes],
    }


def _variant(pushed: Pushed, renderer: Renderer) -> dict[str, Any]:
    push, sent = pushed.push, pushed.sent(renderer.settings)
    if push is None or sent is None:
        return {"name": pushed.variant, "error": pushed.error}
    title, summary = sent
    message = push.message
    return {
        "name": pushed.variant,
        "error": None,
        "title": title,
        "summary": summary,
        "deeplink": message.deeplink,
        "collapse_key": push.collapse_key,
        "lengths": {"title": len(message.title), "summary": len(message.summary)},
        "shortened": [
            key
            for key, full, shown in (
                ("title", message.title, title),
                ("summary", message.summary, summary),
            )
            if full != shown
        ],
        "screens": lock_screens(title, summary),
    }


def _recent(
    tail: Tail | None, topic: str | None, renderer: Renderer, max_bytes: int
) -> dict[str, Any] | None:
    if tail is None:
        return None
    return {
        "topic": topic,
        "unfinished": tail.unfinished,
        "records": [_record(r, renderer, max_bytes) for r in reversed(tail.records)],
    }


def _record(record: Record, renderer: Renderer, max_bytes: int) -> dict[str, Any]:
    outcome = renderer.raw(record.value or b"", max_bytes)
    return {
        "where": record.where,
        "time": dt.datetime.fromtimestamp(record.timestamp_ms / 1000, dt.UTC).isoformat(),
        **card(outcome, renderer),
    }


def _condition(condition: Condition) -> str:
    if isinstance(condition.test, Exists):
        return f"{condition.path} {'is present' if condition.exists else 'is absent'}"
    if condition.values is None:  # a bound (more_than) or a time (after: now), as written
        return condition.text
    values = sorted(str(v) for v in condition.values)
    return f"{condition.path} = {_one_or_any(values)}"


def _one_or_any(values: Iterable[str]) -> str:
    items = list(values)
    return items[0] if len(items) == 1 else f"one of {', '.join(items)}"


def _duration(seconds: float) -> str:
    whole = int(seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"
