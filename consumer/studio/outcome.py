"""What one event gives with one set of mappings: a push (each variant), no push, or a failure.

Both studio tools ask this question: the preview page for every example, a
pasted event or a recent Kafka record; the diff for the same event against the
shipped and the edited files.

A rule may carry a second, *shared* variant of its texts (``shared:``: words
that name nothing personal, so one provider request reaches many customers) and
*quiet hours*; ``variants`` and ``quiet_hours`` give them to both tools.

``as_sent`` and ``marked`` show a text as a phone gets it and with its
non-breaking spaces visible, for every tool that prints pushes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consumer.errors import InvalidEvent, RenderError
from consumer.events import BaseEvent, parse_event
from consumer.mapping.examples import event_of, example_event
from consumer.mapping.filters import NARROW_NBSP, NBSP, truncate
from consumer.mapping.render import without_nulls
from consumer.mapping.rules import Example, MappingSet, Rule
from consumer.push import RenderedPush
from consumer.settings import ImshopSettings, MappingSettings
from consumer.studio.cost import cost_line, grouped_paths, personal_paths

PREVIEW_RECIPIENT = {"user_id": "preview-user"}
SPACE_MARK = "°"  # how a non-breaking space is shown, as word processors do
_HARD_SPACES = str.maketrans({NBSP: SPACE_MARK, NARROW_NBSP: SPACE_MARK})


@dataclass(frozen=True, slots=True)
class Variant:
    """One text of a rule: ``personal`` (the rule's own) or ``shared``."""

    name: str
    rule: Rule


@dataclass(frozen=True, slots=True)
class Pushed:
    """One variant's push as rendered (full length), or why it failed."""

    variant: str
    push: RenderedPush | None
    error: str | None = None

    def sent(self, settings: MappingSettings) -> tuple[str, str] | None:
        """Title and summary as the service sends them: cut to the limits with "…"."""
        if self.push is None:
            return None
        message = self.push.message
        return (
            as_sent(message.title, settings.title_max_chars),
            as_sent(message.summary, settings.summary_max_chars),
        )


def as_sent(text: str, limit: int) -> str:
    """The text as a phone gets it: cut to the limit with "…", as MappingSet does when
    sending (a longer real value is cut, not dropped)."""
    return text if len(text) <= limit else truncate(text, limit)


def marked(text: str) -> str:
    """The text with each non-breaking space shown as ``SPACE_MARK``."""
    return text.translate(_HARD_SPACES)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer for one event; exactly one of ``pushes``, ``no_push``, ``invalid``."""

    rule: Rule | None = None
    pushes: tuple[Pushed, ...] = ()
    no_push: str | None = None  # why no rule matched
    invalid: str | None = None  # why the event is not a valid event
    now: dt.datetime | None = None

    @property
    def failed(self) -> str | None:
        """The first render failure, or None."""
        if self.invalid is not None:
            return f"the event is not valid: {self.invalid}"
        return next((p.error for p in self.pushes if p.error is not None), None)

    @property
    def personal(self) -> RenderedPush | None:
        return next((p.push for p in self.pushes if p.variant == "personal"), None)


def variants(rule: Rule, settings: MappingSettings) -> list[Variant]:
    """The rule's own texts, and its shared texts when it declares them."""
    found = [Variant("personal", rule)]
    shared = rule.as_shared()
    if shared is not None:
        found.append(Variant("shared", shared))
    return found


def quiet_hours(rule: Rule) -> str | None:
    """The rule's quiet hours as a reader writes them (``22:00–09:00``), if it has any."""
    return rule.quiet_hours.text if rule.quiet_hours is not None else None


def cost_of(rule: Rule, imshop: ImshopSettings) -> dict[str, str]:
    """The rule's cost tier (personal, grouped, shared) and the check's words for it."""
    tier = "personal" if personal_paths(rule) else "grouped" if grouped_paths(rule) else "shared"
    line = cost_line(rule, imshop)
    return {"tier": tier, "text": line.partition(" — ")[2] or line}


class Renderer:
    """Renders events with one set of mappings, each variant of the matched rule."""

    def __init__(self, mappings: MappingSet, settings: MappingSettings) -> None:
        self.mappings = mappings
        self.settings = settings
        self._variant_sets: dict[str, list[tuple[Variant, MappingSet]]] = {}

    def _sets(self, rule: Rule) -> list[tuple[Variant, MappingSet]]:
        # A variant renders through a set of its own: the rule's plans are built per set.
        if rule.rule_id not in self._variant_sets:
            self._variant_sets[rule.rule_id] = [
                (v, self.mappings if v.rule is rule else self._alone(v.rule))
                for v in variants(rule, self.settings)
            ]
        return self._variant_sets[rule.rule_id]

    def _alone(self, rule: Rule) -> MappingSet:
        return MappingSet(
            [rule], settings=self.settings, extra_types=self.mappings.extra_types, digest=""
        )

    def example(self, rule: Rule, example: Example) -> Outcome:
        """The example rendered with its own rule (as the check does), each variant."""
        document = example_event(rule, example)
        event = self._parse(document)
        if isinstance(event, str):
            return Outcome(rule=rule, invalid=event)
        now = example.now or event.occurred_at
        return self._render(rule, event, now)

    def event(self, document: Mapping[str, Any], now: dt.datetime | None = None) -> Outcome:
        """An event as the service would handle it: the first matching rule, or none.

        ``now`` defaults to the event's ``occurred_at``: the moment the service
        would have rendered it, so "завтра" means what the customer read.
        """
        parsed = self._parse(document)
        if isinstance(parsed, str):
            return Outcome(invalid=parsed)
        return self.parsed(parsed, now)

    def raw(self, value: bytes, max_bytes: int, now: dt.datetime | None = None) -> Outcome:
        """A record's bytes as they came from Kafka (nothing filled in)."""
        try:
            event = parse_event(value, max_bytes=max_bytes, extra_types=self.mappings.extra_types)
        except InvalidEvent as exc:  # deep nesting included (parse_event says so)
            return Outcome(invalid=str(exc))
        return self.parsed(event, now)

    def parsed(self, event: BaseEvent, now: dt.datetime | None = None) -> Outcome:
        data = without_nulls(event.template_context())
        moment = now or event.occurred_at
        rule = self.mappings.match(event.event_type, data, now=moment)  # `after: now` too
        if rule is None:
            return Outcome(no_push=self.why_no_rule(event.event_type), now=moment)
        return self._render(rule, event, moment)

    def _parse(self, document: Mapping[str, Any]) -> BaseEvent | str:
        try:
            return event_of(document, self.mappings.extra_types)
        except InvalidEvent as exc:
            return str(exc)

    def _render(self, rule: Rule, event: BaseEvent, now: dt.datetime) -> Outcome:
        data = without_nulls(event.template_context())
        pushes = []
        for variant, mappings in self._sets(rule):
            try:
                push = mappings.render_rule(variant.rule, data, event, now, fit=False)
            except RenderError as exc:
                pushes.append(Pushed(variant.name, None, _plain(str(exc), rule)))
                continue
            pushes.append(Pushed(variant.name, push))
        return Outcome(rule=rule, pushes=tuple(pushes), now=now)

    def why_no_rule(self, event_type: str) -> str:
        candidates = [r for r in self.mappings.rules if event_type in r.event_types]
        if not candidates:
            return f"no rule is written for {event_type} events"
        names = ", ".join(r.id for r in candidates)
        return f"the conditions of every {event_type} rule are false for this event ({names})"


def fill_preview_fields(
    document: Mapping[str, Any], now: dt.datetime, *, event_id: str = "preview"
) -> tuple[dict[str, Any], list[str]]:
    """An event for a preview, with the fields every event has filled in where missing,
    and the names of those filled (a preview says so)."""
    defaults = {
        "event_id": event_id,
        "occurred_at": now.isoformat(),
        "recipient": dict(PREVIEW_RECIPIENT),
    }
    filled = [key for key in defaults if key not in document]
    return {**document, **{key: defaults[key] for key in filled}}, filled


def _plain(message: str, rule: Rule) -> str:
    """A render error without the rule's own name (the card already says it)."""
    return message.replace(f"rule {rule.id}: ", "", 1)
