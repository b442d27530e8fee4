"""Compiled mapping rules, and the set the service renders events with.

Everything here is built once per load (templates parsed, rules grouped by
event type and ordered by priority); ``MappingSet.render`` does per event only a
dictionary walk for the conditions and the Liquid renders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from liquid.template import BoundTemplate

from consumer.errors import RenderError
from consumer.events import BaseEvent
from consumer.mapping.filters import truncate
from consumer.mapping.render import (
    PartFailed,
    TextPlan,
    explain,
    render_context,
    without_nulls,
)
from consumer.push import HistoryText, Message, PushClass, RenderedPush
from consumer.settings import MappingSettings

_ABSENT = object()


def lookup(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if type(value) is not dict or part not in value:  # context dicts are plain
            return _ABSENT
        value = value[part]
    return value


def _comparable(value: Any) -> Any:
    if type(value) is str or isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    return value


@dataclass(frozen=True, slots=True)
class Condition:
    """One test on a field: equals a value, is one of values, or exists (or not)."""

    path: str
    values: frozenset[Any] | None = None  # None: only existence is tested
    exists: bool = True

    def matches(self, data: Mapping[str, Any]) -> bool:
        value = lookup(data, self.path)
        if value is _ABSENT:
            return not self.exists
        if not self.exists:
            return False
        return self.values is None or _comparable(value) in self.values

    def excludes(self, other: Condition) -> bool:
        """True when no event can pass both tests (so two rules cannot both match)."""
        if self.path != other.path:
            return False
        if self.exists != other.exists:
            return True
        if self.values is None or other.values is None:
            return False
        return not (self.values & other.values)

    @staticmethod
    def of(path: str, values: list[Any] | None = None, *, exists: bool = True) -> Condition:
        vals = None if values is None else frozenset(_comparable(v) for v in values)
        return Condition(path=path, values=vals, exists=exists)


@dataclass(frozen=True, slots=True)
class Template:
    name: str  # title, summary, deeplink, collapse_key, extras path
    source: str
    compiled: BoundTemplate
    line: int


@dataclass(frozen=True, slots=True)
class Example:
    line: int
    name: str
    event: Mapping[str, Any]
    expected: Mapping[str, Any]
    now: dt.datetime | None


HISTORY_FIELDS = ("title", "text", "url", "deeplink", "promocode")
_URL_SCHEMES = ("https://", "http://")


@dataclass(frozen=True, slots=True)
class HistoryRule:
    """What the rule's item in the customer's history shows.

    ``keep=False`` (``history: false``) keeps no item. Otherwise each field with a
    template here replaces the default: the push's title, summary (as ``text``)
    and deeplink; ``url`` and ``promocode`` have no default.
    """

    keep: bool = True
    templates: Mapping[str, Template] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    file: str  # as shown in problems (the path given)
    file_name: str  # as used in rule ids
    line: int
    event_types: tuple[str, ...]
    conditions: tuple[Condition, ...]
    priority: int
    push_class: PushClass
    ttl_s: float
    title: Template
    summary: Template
    deeplink: Template | None
    collapse_key: Template | None
    extras: Mapping[str, Mapping[str, Template | Any]] = field(default_factory=dict)
    examples: tuple[Example, ...] = ()
    history: HistoryRule = HistoryRule()

    @property
    def rule_id(self) -> str:
        return f"{self.file_name}:{self.id}"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def templates(self) -> list[Template]:
        return list(self.keyed_templates().values())

    def keyed_templates(self) -> dict[str, Template]:
        """Every template of the rule under the key its text is rendered to."""
        found = {"title": self.title, "summary": self.summary}
        if self.deeplink is not None:
            found["deeplink"] = self.deeplink
        if self.collapse_key is not None:
            found["collapse_key"] = self.collapse_key
        for platform, values in self.extras.items():
            for key, value in values.items():
                if isinstance(value, Template):
                    found[f"{platform}.{key}"] = value
        for key, template in self.history.templates.items():
            found[f"history.{key}"] = template
        return found

    def plan(self) -> TextPlan:
        parts = {k: (t.source, t.compiled) for k, t in self.keyed_templates().items()}
        return TextPlan(self.title.compiled.env, parts)

    def matches(self, data: Mapping[str, Any]) -> bool:
        return all(condition.matches(data) for condition in self.conditions)


class MappingSet:
    """One consistent, checked set of rules; swapped whole on reload."""

    def __init__(
        self,
        rules: list[Rule],
        *,
        settings: MappingSettings,
        extra_types: frozenset[str],
        digest: str,
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.extra_types = extra_types
        self.digest = digest
        self._settings = settings
        self._schemes = tuple(f"{s}://" for s in settings.allowed_deeplink_schemes)
        by_type: dict[str, list[Rule]] = {}
        for rule in self.rules:
            for event_type in rule.event_types:
                by_type.setdefault(event_type, []).append(rule)
        self._by_type = {
            t: tuple(sorted(rs, key=lambda r: -r.priority)) for t, rs in by_type.items()
        }
        self._plans = {rule.rule_id: rule.plan() for rule in self.rules}

    def match(self, event_type: str, data: Mapping[str, Any]) -> Rule | None:
        for rule in self._by_type.get(event_type, ()):
            if rule.matches(data):
                return rule
        return None

    def render(self, event: BaseEvent, *, now: dt.datetime | None = None) -> RenderedPush | None:
        """The push for this event, None when no rule matches; ``RenderError`` if it fails."""
        data = without_nulls(event.template_context())
        rule = self.match(event.event_type, data)
        if rule is None:
            return None
        return self.render_rule(rule, data, event, now)

    def render_rule(
        self,
        rule: Rule,
        data: Mapping[str, Any],
        event: BaseEvent,
        now: dt.datetime | None,
        *,
        fit: bool = True,
    ) -> RenderedPush:
        """Render with one given rule; ``fit=False`` keeps overlong texts (for the check)."""
        texts = self._texts(rule, render_context(data, event.tzinfo, now))
        deeplink = texts.get("deeplink")
        if deeplink is not None and not deeplink.startswith(self._schemes):
            raise RenderError(
                f"{rule.where}: rule {rule.id}: the deeplink {deeplink!r} does not start "
                f"with an allowed scheme ({', '.join(self._schemes)})"
            )
        title, summary = texts["title"], texts["summary"]
        if fit:
            title = self._fit(title, self._settings.title_max_chars)
            summary = self._fit(summary, self._settings.summary_max_chars)
        message = Message(title=title, summary=summary, deeplink=deeplink)
        return RenderedPush(
            rule_id=rule.rule_id,
            message=message,
            push_class=rule.push_class,
            ttl_s=rule.ttl_s,
            collapse_key=texts.get("collapse_key") or None,
            extras=self._extras(rule, texts),
            history=self._history(rule, texts, message),
        )

    def _history(
        self, rule: Rule, texts: Mapping[str, str], message: Message
    ) -> HistoryText | None:
        """The history item: the push itself unless the rule says otherwise."""
        spec = rule.history
        if not spec.keep:
            return None
        if not spec.templates:
            return HistoryText(message.title, message.summary, deeplink=message.deeplink)

        def given(key: str, default: str | None = None) -> str | None:
            if key not in spec.templates:
                return default
            return texts[f"history.{key}"] or default

        item = HistoryText(
            title=given("title") or message.title,
            text=given("text", message.summary),
            url=given("url"),
            deeplink=given("deeplink", message.deeplink),
            promocode=given("promocode"),
        )
        if item.deeplink is not None and not item.deeplink.startswith(self._schemes):
            template = spec.templates["deeplink"]
            raise RenderError(
                f"{rule.file}:{template.line}: rule {rule.id}: the history deeplink "
                f"{item.deeplink!r} does not start with an allowed scheme "
                f"({', '.join(self._schemes)})"
            )
        if item.url is not None and not item.url.startswith(_URL_SCHEMES):
            template = spec.templates["url"]
            raise RenderError(
                f"{rule.file}:{template.line}: rule {rule.id}: the history url "
                f"{item.url!r} must start with https:// or http://"
            )
        return item

    def _texts(self, rule: Rule, context: Mapping[str, Any]) -> dict[str, str]:
        templates = rule.keyed_templates()
        try:
            texts = self._plans[rule.rule_id].render(context)
        except PartFailed as failed:
            template = templates[failed.key]
            raise RenderError(
                f"{rule.file}:{template.line}: rule {rule.id}: the {template.name} cannot be "
                f"rendered: {explain(failed.cause)}"
            ) from None
        for key in ("title", "summary"):
            if not texts[key]:
                raise RenderError(
                    f"{rule.file}:{templates[key].line}: rule {rule.id}: the {key} rendered empty"
                )
        return texts

    @staticmethod
    def _fit(text: str, limit: int) -> str:
        # The check keeps the examples within limits; a longer real value is cut
        # rather than dropped, since a shortened push beats no push.
        return text if len(text) <= limit else truncate(text, limit)

    @staticmethod
    def _extras(rule: Rule, texts: Mapping[str, str]) -> dict[str, Any]:
        if not rule.extras:
            return {}
        platforms = {
            platform: {
                key: texts[f"{platform}.{key}"] if isinstance(v, Template) else v
                for key, v in values.items()
            }
            for platform, values in rule.extras.items()
        }
        return {"appmetrica": platforms}
