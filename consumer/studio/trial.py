"""Sample events rendered with a set that may still be a draft, for a person to look at.

``mappings render`` uses this; so can any preview. It works where the service
would refuse: a rule whose own examples fail still renders (and its problems
are listed beside the push), an event may leave out what a preview does not
need (``event_id``, ``occurred_at``, ``recipient`` are filled in and said so),
and the push comes with what a person should know before shipping: lengths
against the limits, and warnings when the event would already have expired or
the push speaks of a time already past.

The moment a sample is rendered at is, in order: the one asked for (``--now``),
the example's ``now:``, the event's own ``occurred_at`` (so a saved event
renders as it did when it came), else the current time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from consumer.errors import FatalError, InvalidEvent, RenderError, SettingsError
from consumer.events import BaseEvent
from consumer.mapping.contract import Contract
from consumer.mapping.examples import check_example, event_of, example_event, value_text
from consumer.mapping.parse import ttl_text
from consumer.mapping.render import without_nulls
from consumer.mapping.rules import Example, Rule, lookup, moment_at
from consumer.mapping.usage import uses
from consumer.push import RenderedPush
from consumer.studio.draft import Draft
from consumer.studio.outcome import fill_preview_fields

_DATE_KINDS = frozenset({"date", "time", "date_or_time"})


@dataclass
class Trial:
    """One sample rendered: the push or why there is none, and what to look at."""

    label: str
    now: dt.datetime
    filled: list[str] = field(default_factory=list)  # fields a preview filled in
    event: BaseEvent | None = None
    rule: Rule | None = None
    push: RenderedPush | None = None  # texts not cut to the limits (see ``shown``)
    error: str | None = None  # the event is not valid, no rule matches, or rendering failed
    warnings: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # an example's own failures

    @property
    def ok(self) -> bool:
        return self.push is not None and not self.differences


def read_events(data: bytes, source: str) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """(label, event or why it cannot be read) for a JSON object, a JSON list, or JSON Lines.

    orjson caps the nesting (the standard decoder recurses until Python gives up);
    FatalError when the input is not text at all.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FatalError(f"{source} is not UTF-8 text (byte {exc.start})") from None
    try:
        whole = orjson.loads(text)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        yield source, whole
        return
    if isinstance(whole, list):
        for index, item in enumerate(whole, start=1):
            label = f"{source} #{index}"
            yield label, item if isinstance(item, dict) else "not a JSON object"
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        label = f"{source}:{number}"
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield label, f"not JSON: {exc.msg} at column {exc.colno}"
            continue
        yield label, item if isinstance(item, dict) else "not a JSON object"


def parse_now(text: str | None) -> dt.datetime | None:
    """The moment given with ``--now`` (None when not given); SettingsError says how to write it."""
    if not text:
        return None
    try:
        now = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SettingsError(
            f"--now {text!r} is not a time like 2026-11-25T12:00:00+03:00"
        ) from None
    if now.tzinfo is None:
        raise SettingsError(f"--now {text!r} needs a UTC offset, e.g. {text}+03:00")
    return now


def moment_of(raw: Mapping[str, Any], asked: dt.datetime | None) -> dt.datetime:
    if asked is not None:
        return asked
    occurred = raw.get("occurred_at")
    if isinstance(occurred, str):
        try:
            moment = dt.datetime.fromisoformat(occurred)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    return dt.datetime.now(dt.UTC)


def try_event(
    draft: Draft, raw: Mapping[str, Any], *, label: str, now: dt.datetime | None = None
) -> Trial:
    """Render one sample event with the draft: which rule, which push, what to know."""
    moment = moment_of(raw, now)
    filled_event, filled = fill_preview_fields(raw, moment, event_id=f"preview-{label}")
    trial = Trial(label=label, now=moment, filled=filled)
    mappings = draft.mappings
    try:
        event = event_of(filled_event, mappings.extra_types)
    except InvalidEvent as exc:
        trial.error = f"the event is not valid: {exc}"
        return trial
    trial.event = event
    data = without_nulls(event.template_context())
    rule = mappings.match(event.event_type, data, now=moment)
    if rule is None:
        trial.error = no_rule(draft, event, data, moment)
        return trial
    trial.rule = rule
    try:
        trial.push = mappings.render_rule(rule, data, event, moment, fit=False)
    except RenderError as exc:
        trial.error = f"rendering failed: {exc}"
    trial.warnings = warnings(draft.contract, rule, event, data, moment)
    return trial


def try_example(draft: Draft, rule: Rule, example: Example) -> Trial:
    """Render one of the rule's examples, and say where it differs from its `push:`."""
    raw = example_event(rule, example)
    now = example.now or moment_of(raw, None)
    label = f"example {example.name!r} ({rule.file}:{example.line})"
    trial = try_event(draft, raw, label=label, now=now)
    trial.filled = []  # examples are meant to leave those out
    settings = draft.mappings.settings
    trial.differences = [
        text for _, _, text in check_example(draft.mappings, rule, example, settings)
    ]
    return trial


def no_rule(draft: Draft, event: BaseEvent, data: Mapping[str, Any], now: dt.datetime) -> str:
    """Why no rule takes the event: for each rule of its type, the first condition that fails."""
    candidates = [r for r in draft.mappings.rules if event.event_type in r.event_types]
    if not candidates:
        return f"no rule is written for {event.event_type} events"
    moment = moment_at(data, now)
    lines = [f"no {event.event_type} rule matches the event:"]
    for rule in candidates:
        failing = next((c for c in rule.conditions if not c.matches(data, moment)), None)
        if failing is not None:
            has = value_text(lookup(data, failing.path))
            lines.append(f"- {rule.id} ({rule.where}): `{failing.text}`, the event has {has}")
    return "\n".join(lines)


def warnings(
    contract: Contract, rule: Rule, event: BaseEvent, data: Mapping[str, Any], now: dt.datetime
) -> list[str]:
    """What a person should know before believing the push: expired, or a time gone by."""
    found = []
    expires = event.occurred_at + dt.timedelta(seconds=rule.ttl_s)
    if expires <= now:
        found.append(
            f"the event occurred at {_when(event.occurred_at, event)}; with `ttl: "
            f"{ttl_text(rule.ttl_s)}` its push expired at {_when(expires, event)}, before now "
            f"({_when(now, event)}): the service would drop it as expired, not send it"
        )
    for path in _shown_dates(contract, rule):
        value = _as_moment(lookup(data, path))
        if value is not None and _is_past(value, now, event):
            found.append(
                f"`{path}` ({_when(value, event)}) is already past at now "
                f"({_when(now, event)}): the push speaks of a time gone by"
            )
    return found


def _shown_dates(contract: Contract, rule: Rule) -> list[str]:
    """Date and time fields the rule's texts show (tested-only ones are not read out)."""
    found: dict[str, None] = {}
    for template in rule.templates():
        for use in uses(template.compiled):
            if use.role == "tested":
                continue
            for event_type in rule.event_types:
                fields = contract.get(event_type)
                info = fields.info(use.path) if fields is not None else None
                if info is not None and info.kind in (*_DATE_KINDS, "any"):
                    found[use.path] = None
    return list(found)


def _as_moment(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        return None
    for parse in (dt.datetime.fromisoformat, dt.date.fromisoformat):
        try:
            return parse(value)
        except ValueError:
            continue
    return None


def _is_past(value: dt.date, now: dt.datetime, event: BaseEvent) -> bool:
    if isinstance(value, dt.datetime):
        return value.tzinfo is not None and value < now
    return value < now.astimezone(event.tzinfo).date()


def _when(value: dt.date, event: BaseEvent) -> str:
    if isinstance(value, dt.datetime):
        local = value.astimezone(event.tzinfo) if value.tzinfo else value
        return f"{local:%Y-%m-%d %H:%M} {event.timezone}"
    return value.isoformat()
