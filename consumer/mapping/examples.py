"""The product team's golden tests: each example event must render to its push.

An example may leave out the fields every event has (id, type, time,
recipient); sensible ones are filled in. It is rendered at its ``now:``, else
at its event's ``occurred_at``, else at ``DEFAULT_NOW`` (a fixed Wednesday noon
in Moscow), so an example never starts failing as the calendar moves on. Texts
are compared as a reader sees them: a non-breaking space in the push equals a
plain space in the YAML.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from consumer.errors import InvalidEvent, RenderError
from consumer.events import BaseEvent, parse_event
from consumer.mapping.filters import NARROW_NBSP, NBSP
from consumer.mapping.render import without_nulls
from consumer.mapping.rules import Example, MappingSet, Rule, is_absent, lookup, moment_at
from consumer.push import Message, RenderedPush
from consumer.settings import MappingSettings

Problem = tuple[str, int, str]
DEFAULT_NOW = "2026-11-25T12:00:00+03:00"
_COMPARED = ("title", "summary", "deeplink", "collapse_key")
_SHARED_COMPARED = ("title", "summary", "deeplink")
# A person's event, not a record from Kafka: EVENT_MAX_BYTES is not its limit.
_SAMPLE_MAX_BYTES = 1 << 20


def example_event(rule: Rule, example: Example) -> dict[str, Any]:
    event = dict(example.event)
    event.setdefault("event_id", f"example-{example.line}")
    if rule.event_types:
        event.setdefault("event_type", rule.event_types[0])
    event.setdefault("occurred_at", example.now.isoformat() if example.now else DEFAULT_NOW)
    event.setdefault("recipient", {"user_id": "example-user"})
    return event


def why_not_matched(
    rule: Rule,
    matched: Rule | None,
    event: BaseEvent,
    data: Mapping[str, Any],
    now: dt.datetime,
) -> str:
    if event.event_type not in rule.event_types:
        takes = ", ".join(rule.event_types)
        return f"the event is a {event.event_type}, and this rule takes {takes}"
    moment = moment_at(data, now)
    failing = [c for c in rule.conditions if not c.matches(data, moment)]
    if failing:
        return "this rule's condition " + "; ".join(
            f"`{c.text}` does not hold (the event has {value_text(lookup(data, c.path))})"
            for c in failing
        )
    if matched is None:  # pragma: no cover - a rule whose conditions hold is matched
        return "the event is matched by no rule"
    return (
        f"the event is matched by rule `{matched.id}` ({matched.where}), which has a higher "
        "priority"
    )


def value_text(value: object) -> str:
    """An event's value as a sentence names it: `value`, or "no such field"."""
    return "no such field" if is_absent(value) else f"`{value}`"


def _reader_text(value: object) -> object:
    return value.replace(NBSP, " ").replace(NARROW_NBSP, " ") if isinstance(value, str) else value


def _actual(push: RenderedPush, key: str) -> object:
    if key == "collapse_key":
        return push.collapse_key
    return getattr(push.message, key)


def event_of(document: Mapping[str, Any], extra_types: Collection[str]) -> BaseEvent:
    """An event a person wrote (an example's, a sample's), read as the service reads a
    record; InvalidEvent says what is wrong with it."""
    raw = json.dumps(document, ensure_ascii=False, default=str).encode()
    return parse_event(raw, max_bytes=_SAMPLE_MAX_BYTES, extra_types=extra_types)


def check_example(
    mappings: MappingSet, rule: Rule, example: Example, settings: MappingSettings
) -> Iterator[Problem]:
    where = (rule.file, example.line)
    label = f"example {example.name!r}"
    try:
        event = event_of(example_event(rule, example), mappings.extra_types)
    except InvalidEvent as exc:
        yield *where, f"{label}: the event is not valid: {exc}"
        return
    data = without_nulls(event.template_context())
    now = example.now or event.occurred_at
    matched = mappings.match(event.event_type, data, now=now)
    if matched is not rule:
        yield *where, f"{label}: {why_not_matched(rule, matched, event, data, now)}"
        return
    try:
        push = mappings.render_rule(rule, data, event, now, fit=False)
    except RenderError as exc:
        detail = str(exc).partition(f"rule {rule.id}: ")[2] or str(exc)
        yield *where, f"{label}: {detail}"
        return
    yield from _compare(where, label, rule, example, push)
    yield from _lengths(where, label, push, settings)


def _compare(
    where: tuple[str, int], label: str, rule: Rule, example: Example, push: RenderedPush
) -> Iterator[Problem]:
    expected = example.expected
    for key in expected:
        if key not in _COMPARED:
            yield *where, f"{label}: unknown key `{key}` under push (use {', '.join(_COMPARED)})"
    for key in _COMPARED:
        required = key in ("title", "summary") or (key == "deeplink" and rule.deeplink)
        if key not in expected:
            if required:
                yield *where, f"{label}: say which {key} the push must have"
            continue
        yield from _differs(where, f"{label}: the {key}", _actual(push, key), expected[key])
    if example.shared is not None and rule.shared is not None and push.shared is not None:
        yield from _compare_shared(where, label, rule, example.shared, push.shared)


def _compare_shared(
    where: tuple[str, int],
    label: str,
    rule: Rule,
    expected: Mapping[str, Any],
    shared: Message,
) -> Iterator[Problem]:
    for key in expected:
        if key not in _SHARED_COMPARED:
            yield (
                *where,
                f"{label}: unknown key `{key}` under shared (use {', '.join(_SHARED_COMPARED)})",
            )
    for key in _SHARED_COMPARED:
        if key not in expected:
            if key != "deeplink" or (rule.shared is not None and rule.shared.deeplink):
                yield *where, f"{label}: say which {key} the shared push must have"
            continue
        actual = getattr(shared, key)
        yield from _differs(where, f"{label}: the shared {key}", actual, expected[key])


def _differs(
    where: tuple[str, int], what: str, actual: object, expected: object
) -> Iterator[Problem]:
    if _reader_text(actual) != _reader_text(expected):
        yield *where, f"{what} is {_quoted(actual)}, expected {_quoted(expected)}"


def _quoted(value: object) -> str:
    """Text as the reader sees it, in quotes (no Python escapes like \\xa0)."""
    return "(none)" if value is None else f"«{_reader_text(value)}»"


def _lengths(
    where: tuple[str, int], label: str, push: RenderedPush, settings: MappingSettings
) -> Iterator[Problem]:
    limits = (("title", settings.title_max_chars), ("summary", settings.summary_max_chars))
    variants = [("", push.message)] + ([("shared ", push.shared)] if push.shared else [])
    for variant, message in variants:
        for key, limit in limits:
            text = str(getattr(message, key))
            if len(text) > limit:
                yield (
                    *where,
                    (
                        f"{label}: the {variant}{key} is {len(text)} characters, longer than "
                        f"the limit of {limit}"
                    ),
                )


def rule_example_problems(
    mappings: MappingSet, rule: Rule, settings: MappingSettings
) -> list[Problem]:
    problems: list[Problem] = []
    for example in rule.examples:
        problems += check_example(mappings, rule, example, settings)
    return problems
