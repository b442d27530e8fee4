"""Compiled mapping rules, and the set the service renders events with.

Everything here is built once per load (templates parsed, rules grouped by
event type and ordered by priority); ``MappingSet.render`` does per event only a
dictionary walk for the conditions and the Liquid renders.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from liquid.exceptions import OutputStreamLimitError
from liquid.template import BoundTemplate

from consumer.errors import RenderError
from consumer.events import BaseEvent, zone_named
from consumer.mapping.filters import truncate
from consumer.mapping.finish import clean, finish, has_controls
from consumer.mapping.render import (
    DISPLAY_KEYS,
    PartFailed,
    TextPlan,
    explain,
    render_context,
    shortened,
)
from consumer.mapping.view import ABSENT, NOT_A_GROUP, EventView, follow, plain_context
from consumer.push import HistoryText, Message, PushClass, RenderedPush
from consumer.quiet import QuietHours
from consumer.settings import MappingSettings

_ABSENT = object()


def lookup(data: Mapping[str, Any], path: str) -> Any:
    return _lookup_parts(data, path.split("."))


def _lookup_parts(data: Mapping[str, Any], parts: tuple[str, ...] | list[str]) -> Any:
    """The value at the path in the dumped context or an ``EventView`` of it."""
    value = follow(data, tuple(parts))
    return _ABSENT if value is ABSENT or value is NOT_A_GROUP else value


def is_absent(value: Any) -> bool:
    """True for what ``lookup`` gives when the event has no such field."""
    return value is _ABSENT


def _comparable(value: Any) -> Any:
    if type(value) is str or isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    return value


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


@dataclass(frozen=True, slots=True)
class Moment:
    """When a condition is tested, and where: ``after: now`` needs both."""

    now: dt.datetime
    tz: ZoneInfo


class Test(Protocol):
    """One kind of test on a field's value (``_ABSENT`` when the event lacks it)."""

    @property
    def needs_value(self) -> bool: ...  # passing proves the field is present

    def passes(self, value: Any, moment: Callable[[], Moment]) -> bool: ...

    def excludes(self, other: Test) -> bool: ...  # no value passes both


@dataclass(frozen=True, slots=True)
class OneOf:
    values: frozenset[Any]
    written: tuple[Any, ...] = field(default=(), compare=False)  # as in the file, in order
    needs_value = True

    @staticmethod
    def of(values: list[Any]) -> OneOf:
        return OneOf(frozenset(_comparable(v) for v in values), tuple(values))

    def passes(self, value: Any, moment: Callable[[], Moment]) -> bool:
        return value is not _ABSENT and _comparable(value) in self.values

    def excludes(self, other: Test) -> bool:
        if isinstance(other, OneOf):
            return not (self.values & other.values)
        if isinstance(other, Compare):
            return not any(other.holds(_number(v)) for v in self.values)
        return isinstance(other, Exists) and not other.present


@dataclass(frozen=True, slots=True)
class Exists:
    present: bool

    @property
    def needs_value(self) -> bool:
        return self.present

    def passes(self, value: Any, moment: Callable[[], Moment]) -> bool:
        return (value is not _ABSENT) == self.present

    def excludes(self, other: Test) -> bool:
        if isinstance(other, Exists):
            return other.present != self.present
        return not self.present and other.needs_value


@dataclass(frozen=True, slots=True)
class Compare:
    """``more_than: N`` or ``less_than: N``: numbers only; text never passes."""

    bound: Decimal
    more: bool
    needs_value = True

    def holds(self, number: Decimal | None) -> bool:
        if number is None:
            return False
        return number > self.bound if self.more else number < self.bound

    def passes(self, value: Any, moment: Callable[[], Moment]) -> bool:
        return value is not _ABSENT and self.holds(_number(value))

    def excludes(self, other: Test) -> bool:
        if isinstance(other, Compare) and other.more != self.more:
            low, high = (self, other) if self.more else (other, self)
            return low.bound >= high.bound
        return other.excludes(self) if isinstance(other, OneOf | Exists) else False


@dataclass(frozen=True, slots=True)
class Relative:
    """``after: now`` / ``before: now``. A date alone counts as its whole day
    in the recipient's zone: today's date is not yet past."""

    after: bool
    needs_value = True

    def passes(self, value: Any, moment: Callable[[], Moment]) -> bool:
        if isinstance(value, str):
            value = _parse_moment(value)
        if not isinstance(value, dt.date):
            return False
        at = moment()
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                return False
            return value > at.now if self.after else value <= at.now
        today = at.now.astimezone(at.tz).date()
        return value >= today if self.after else value < today

    def excludes(self, other: Test) -> bool:
        if isinstance(other, Relative):
            return other.after != self.after
        return isinstance(other, Exists) and not other.present


def _parse_moment(text: str) -> dt.date | None:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Condition:
    """One test on a field of the event, as written under ``when:`` (at ``line``)."""

    path: str
    test: Test
    line: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)  # as written, for messages
    parts: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.path.split(".")))  # split once, not per event

    def matches(self, data: Mapping[str, Any], moment: Callable[[], Moment]) -> bool:
        return self.test.passes(_lookup_parts(data, self.parts), moment)

    def excludes(self, other: Condition) -> bool:
        """True when no event can pass both tests (so two rules cannot both match)."""
        return self.path == other.path and self.test.excludes(other.test)

    @property
    def values(self) -> frozenset[Any] | None:
        """The values it accepts, or None when it tests something else (presence, a bound)."""
        return self.test.values if isinstance(self.test, OneOf) else None

    @property
    def exists(self) -> bool:
        """False only for ``exists: false``; ``text`` says what any condition tests."""
        return not (isinstance(self.test, Exists) and not self.test.present)


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
    shared: Mapping[str, Any] | None = None  # the shared push it must give, if stated


@dataclass(frozen=True, slots=True)
class SharedText:
    """The rule's shared variant (``shared:`` at ``line``): texts that name nothing
    personal, so one provider request carries them to many customers."""

    title: Template
    summary: Template
    deeplink: Template | None
    line: int

    def keyed(self) -> dict[str, Template]:
        found = {"shared.title": self.title, "shared.summary": self.summary}
        if self.deeplink is not None:
            found["shared.deeplink"] = self.deeplink
        return found


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
    shared: SharedText | None = None
    personal_within_s: float = 0.0  # how late the personal text may go out (with `shared`)
    quiet_hours: QuietHours | None = None

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
        if self.shared is not None:
            found |= self.shared.keyed()
        return found

    def as_shared(self) -> Rule | None:
        """The rule with its shared texts in place of its own (None without ``shared:``)."""
        if self.shared is None:
            return None
        return dataclasses.replace(
            self,
            title=self.shared.title,
            summary=self.shared.summary,
            deeplink=self.shared.deeplink,
            shared=None,
            examples=(),
        )

    def plan(self) -> TextPlan:
        parts = {k: (t.source, t.compiled) for k, t in self.keyed_templates().items()}
        return TextPlan(self.title.compiled.env, parts)

    def matches(self, data: Mapping[str, Any], moment: Callable[[], Moment]) -> bool:
        return all(condition.matches(data, moment) for condition in self.conditions)


_LINKS = frozenset({"deeplink", "collapse_key", "shared.deeplink"})
_SHARED_DISPLAY = ("shared.title", "shared.summary")
# Per prefix of ``_message``: the keys of its title, summary and deeplink.
_MESSAGE_KEYS = {
    prefix: (f"{prefix}title", f"{prefix}summary", f"{prefix}deeplink")
    for prefix in ("", "shared.")
}


def _no_moment() -> Moment:  # pragma: no cover - only conditions on time call it
    raise AssertionError("a condition on time in a set that has none")


_NO_MOMENT: Callable[[], Moment] = _no_moment


class _MomentOf:
    """The time and zone that conditions like ``after: now`` test against, made on
    first use (most rules have no such condition)."""

    __slots__ = ("_data", "_moment", "_now")

    def __init__(self, data: Mapping[str, Any], now: dt.datetime | None) -> None:
        self._data = data
        self._now = now
        self._moment: Moment | None = None

    def __call__(self) -> Moment:
        if self._moment is None:
            zone = self._data.get("timezone")
            self._moment = Moment(
                now=self._now if self._now is not None else dt.datetime.now(dt.UTC),
                tz=zone_named(zone if isinstance(zone, str) else "Europe/Moscow"),
            )
        return self._moment


def moment_at(data: Mapping[str, Any], now: dt.datetime | None) -> Callable[[], Moment]:
    """What conditions like ``after: now`` compare with, for one event at ``now``."""
    return _MomentOf(data, now)


@dataclass(frozen=True, slots=True)
class _RuleIndex:
    """An event type's rules by the value of the field most of them test with a list
    of values (``order.status: [created]``): a rule whose list lacks the event's
    value cannot match, so it is not tried. The rules tried keep their priority
    order, and each is still tested whole, so the first that matches is the one
    the full walk finds."""

    rules: tuple[Rule, ...]  # every rule, by priority
    path: tuple[str, ...] = ()  # the field; () when no field is worth an index
    by_value: Mapping[Any, tuple[Rule, ...]] = field(default_factory=dict)
    without_value: tuple[Rule, ...] = ()  # the rules an absent or unlisted value can match

    @staticmethod
    def of(rules: tuple[Rule, ...]) -> _RuleIndex:
        listed: dict[tuple[str, ...], int] = {}
        for rule in rules:
            for path in {c.parts for c in rule.conditions if isinstance(c.test, OneOf)}:
                listed[path] = listed.get(path, 0) + 1
        if not listed or max(listed.values()) < 2:
            return _RuleIndex(rules)
        path = max(listed, key=lambda p: listed[p])  # the first of the most tested

        def lists(rule: Rule) -> list[frozenset[Any]]:
            return [c.values for c in rule.conditions if c.parts == path and c.values is not None]

        values = {v for rule in rules for allowed in lists(rule) for v in allowed}
        by_value = {
            v: tuple(r for r in rules if all(v in allowed for allowed in lists(r))) for v in values
        }
        return _RuleIndex(rules, path, by_value, tuple(r for r in rules if not lists(r)))

    def candidates(self, data: Mapping[str, Any]) -> tuple[Rule, ...]:
        if not self.path:
            return self.rules
        value = _lookup_parts(data, self.path)
        if value is _ABSENT:
            return self.without_value
        key = _comparable(value)
        if type(key) not in _INDEXABLE:  # a group or a list: tested (and refused) one by one
            return self.rules
        return self.by_value.get(key, self.without_value)


_INDEXABLE = frozenset({str, bool, Decimal})


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
        self._indexes = {t: _RuleIndex.of(rules) for t, rules in self._by_type.items()}
        # Event types with a rule that compares with now (`after: now`): only their
        # matching needs the time and zone.
        self._timed = frozenset(
            t
            for rule in self.rules
            if any(isinstance(c.test, Relative) for c in rule.conditions)
            for t in rule.event_types
        )

    @property
    def settings(self) -> MappingSettings:
        return self._settings

    def match(
        self, event_type: str, data: Mapping[str, Any], *, now: dt.datetime | None = None
    ) -> Rule | None:
        """The rule with the highest priority whose conditions hold (at ``now``)."""
        moment = _MomentOf(data, now) if event_type in self._timed else _NO_MOMENT
        index = self._indexes.get(event_type)
        rules = index.candidates(data) if index is not None else ()
        for rule in rules:
            if rule.matches(data, moment):
                return rule
        return None

    def render(self, event: BaseEvent, *, now: dt.datetime | None = None) -> RenderedPush | None:
        """The push for this event, None when no rule matches; ``RenderError`` if it fails."""
        data = EventView(event)
        rule = self.match(event.event_type, data, now=now)
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
        # ^ an EventView stays one (with the render info); a dict gets it added
        message = self._message(rule, texts, "", fit=fit)
        return RenderedPush(
            rule_id=rule.rule_id,
            message=message,
            push_class=rule.push_class,
            ttl_s=rule.ttl_s,
            collapse_key=texts.get("collapse_key") or None,
            extras=self._extras(rule, texts),
            history=self._history(rule, texts, message),
            shared=self._message(rule, texts, "shared.", fit=fit) if rule.shared else None,
            personal_within_s=rule.personal_within_s,
            quiet_hours=rule.quiet_hours,
        )

    def _message(self, rule: Rule, texts: Mapping[str, str], prefix: str, *, fit: bool) -> Message:
        """The push's own texts (``prefix`` ""), or its shared ones ("shared.")."""
        title_key, summary_key, link_key = _MESSAGE_KEYS[prefix]
        deeplink = texts.get(link_key)
        if deeplink is not None and not deeplink.startswith(self._schemes):
            raise RenderError(
                f"{rule.where}: rule {rule.id}: the {link_key.replace('.', ' ')} {deeplink!r} "
                f"does not start with an allowed scheme ({', '.join(self._schemes)})"
            )
        if deeplink is not None and has_controls(deeplink):
            raise RenderError(
                f"{rule.where}: rule {rule.id}: the {link_key.replace('.', ' ')} {deeplink!r} "
                "contains control characters; pass event values through `url_encode`"
            )
        title, summary = texts[title_key], texts[summary_key]
        if fit:
            title = self._fit(title, self._settings.title_max_chars)
            summary = self._fit(summary, self._settings.summary_max_chars)
        return Message(title=title, summary=summary, deeplink=deeplink)

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
        plan = self._plans[rule.rule_id]
        try:
            texts = plan.render(context)
        except PartFailed as failed:
            if failed.key not in DISPLAY_KEYS or not isinstance(
                failed.cause, OutputStreamLimitError
            ):
                raise self._failed(rule, templates, failed) from None
            # A huge value (a 60 KB order number) shown in a text that a phone cuts
            # to a line anyway: shorten the values, not the strictness.
            try:
                context = plain_context(context)
                texts = plan.render_shortened(context, shortened(context))
            except PartFailed as again:
                raise self._failed(rule, templates, again) from None
        shown = (*DISPLAY_KEYS, *_SHARED_DISPLAY) if rule.shared else DISPLAY_KEYS
        for key, text in texts.items():
            if key in shown:
                texts[key] = finish(text)
            elif key not in _LINKS:  # a link or a key is refused or kept, never edited
                texts[key] = clean(text)
        for key in shown:
            if not texts[key]:
                raise RenderError(
                    f"{rule.file}:{templates[key].line}: rule {rule.id}: the {templates[key].name} "
                    "rendered empty"
                )
        return texts

    @staticmethod
    def _failed(rule: Rule, templates: Mapping[str, Template], failed: PartFailed) -> RenderError:
        template = templates[failed.key]
        return RenderError(
            f"{rule.file}:{template.line}: rule {rule.id}: the {template.name} cannot be "
            f"rendered: {explain(failed.cause)}"
        )

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
