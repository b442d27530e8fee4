"""Turning one YAML document into rules and declared event types, problem by problem.

Every problem is collected as ``file:line: text`` in plain words; parsing goes on
after a problem so one run of the check shows them all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from liquid import Environment
from liquid.exceptions import LiquidError

from consumer.mapping.rules import (
    HISTORY_FIELDS,
    Compare,
    Condition,
    Example,
    Exists,
    HistoryRule,
    OneOf,
    Relative,
    Rule,
    SharedText,
    Template,
    Test,
)
from consumer.mapping.template_errors import explain_syntax
from consumer.mapping.yamlfile import LineDict, LineList
from consumer.push import PushClass
from consumer.quiet import QuietHours

RULE_KEYS = frozenset(
    {
        "id",
        "description",
        "event",
        "when",
        "priority",
        "class",
        "ttl",
        "collapse_key",
        "title",
        "summary",
        "deeplink",
        "appmetrica",
        "history",
        "shared",
        "personal_within",
        "quiet_hours",
        "examples",
    }
)
SHARED_KEYS = ("title", "summary", "deeplink")
PLATFORMS = ("android", "iOS")
DEFAULT_ORDER_COLLAPSE_KEY = "{{ order.id }}"
_TTL = re.compile(r"^(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?$")
_ID = re.compile(r"^[a-z0-9_]+$")
# A push waits for the provider's budget (IMSHOP: 10 requests a minute), so a
# shorter life means it expires before its turn; beyond the longest, the news is
# stale (an order status days old misleads, an offer a week old is noise).
TTL_MIN_S = 60
TTL_MAX_S = {PushClass.TRANSACTIONAL: 3 * 86_400, PushClass.MARKETING: 7 * 86_400}
# How late a personal text may go out before the shared one is sent instead. Order
# news is read at once: a minute and a half on, «передан курьеру» now is worth more
# than «Заказ № 10452 передан курьеру» later (the details wait in the history), and
# in a rush most customers hear within two minutes. An offer keeps longer, and
# marketing gets only a share of the budget.
PERSONAL_WITHIN_S = {PushClass.TRANSACTIONAL: 90.0, PushClass.MARKETING: 3600.0}
# Offers and reminders about points are not worth waking anyone for.
BONUS_QUIET_HOURS = QuietHours(dt.time(22, 0), dt.time(9, 0))
_QUIET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–—]\s*(\d{1,2}):(\d{2})\s*$")
_CONDITION_HELP = (
    "write a value, a list of values, `exists: true` / `exists: false`, "
    "`more_than: 0`, `less_than: 100`, `after: now` or `before: now`"
)


@dataclass
class Problems:
    file: str
    found: list[tuple[str, int, str]] = field(default_factory=list)

    def add(self, line: int, text: str) -> None:
        self.found.append((self.file, line, text))


@dataclass(frozen=True)
class DeclaredType:
    name: str
    file: str
    line: int
    fields: tuple[str, ...]
    optional: tuple[str, ...] = ()  # fields its events may lack (new types only)
    values: tuple[tuple[str, tuple[str, ...], int], ...] = ()  # (path, values, line)


def ttl_seconds(value: Any) -> float | None:
    """The time written (30m, 2h, 1d, 90s, or seconds as a number); None if unreadable."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _TTL.match(value.strip()) if isinstance(value, str) and value.strip() else None
    if not match:
        return None
    d, h, m, s = (int(part or 0) for part in match.groups())
    return float(((d * 24 + h) * 60 + m) * 60 + s)


def ttl_text(seconds: float) -> str:
    """2h, 1d, 90s: a time as a rule would write it."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_declared_types(doc: LineDict, problems: Problems) -> list[DeclaredType]:
    section = doc.get("event_types")
    if section is None:
        return []
    if not isinstance(section, LineDict):
        problems.add(doc.line_of("event_types"), "`event_types` must list event types by name")
        return []
    declared = []
    for name, body in section.items():
        line = section.line_of(name)
        if not isinstance(body, LineDict):
            problems.add(line, f"event type {name}: give its `fields` as a list of paths")
            continue
        for key in body:
            if key not in ("fields", "optional", "values"):
                problems.add(
                    body.line_of(key),
                    f"event type {name}: unknown key `{key}` (use fields, optional, values)",
                )
        fields = _paths_list(body, "fields", name, problems, required=True)
        optional = _paths_list(body, "optional", name, problems, required=False)
        values = _declared_values(body, name, problems)
        if fields is not None and optional is not None:
            declared.append(
                DeclaredType(str(name), problems.file, line, fields + optional, optional, values)
            )
    return declared


def _paths_list(
    body: LineDict, key: str, name: str, problems: Problems, *, required: bool
) -> tuple[str, ...] | None:
    items = body.get(key)
    if items is None and not required:
        return ()
    if not isinstance(items, LineList) or not all(isinstance(f, str) for f in items):
        problems.add(body.line_of(key), f"event type {name}: give its `{key}` as a list of paths")
        return None
    return tuple(items)


def _declared_values(
    body: LineDict, name: str, problems: Problems
) -> tuple[tuple[str, tuple[str, ...], int], ...]:
    section = body.get("values")
    if section is None:
        return ()
    if not isinstance(section, LineDict):
        problems.add(
            body.line_of("values"),
            f"event type {name}: `values` lists the values of a field, e.g. "
            "`order.status: [created, confirmed]`",
        )
        return ()
    found = []
    for path, values in section.items():
        if not isinstance(values, LineList) or not all(
            isinstance(v, str | int) and not isinstance(v, bool) for v in values
        ):
            problems.add(
                section.line_of(path),
                f"event type {name}: the values of `{path}` must be a list, "
                "e.g. [created, confirmed]",
            )
            continue
        found.append((str(path), tuple(str(v) for v in values), section.line_of(path)))
    return tuple(found)


class RuleParser:
    def __init__(self, env: Environment, problems: Problems, file_name: str) -> None:
        self.env = env
        self.problems = problems
        self.file_name = file_name

    def parse_rules(self, doc: LineDict) -> list[Rule]:
        section = doc.get("rules")
        if section is None:
            return []
        if not isinstance(section, LineList):
            self.problems.add(
                doc.line_of("rules"), "`rules` must be a list (each rule starts with -)"
            )
            return []
        rules = []
        seen: dict[str, int] = {}
        for index, body in enumerate(section):
            line = section.line_of(index)
            if not isinstance(body, LineDict):
                self.problems.add(line, "a rule must be a set of `key: value` lines")
                continue
            rule = self.parse_rule(body)
            if rule is None:
                continue
            if rule.id in seen:
                self.problems.add(
                    line, f"rule id `{rule.id}` is used twice (also on line {seen[rule.id]})"
                )
            seen[rule.id] = line
            rules.append(rule)
        return rules

    def parse_rule(self, body: LineDict) -> Rule | None:
        before = len(self.problems.found)
        for key in body:
            if key not in RULE_KEYS:
                self.problems.add(
                    body.line_of(key),
                    f"unknown key `{key}` (allowed: {', '.join(sorted(RULE_KEYS))})",
                )
        rule_id = body.get("id")
        if not isinstance(rule_id, str) or not _ID.match(rule_id):
            self.problems.add(
                body.line, "each rule needs an `id` of lowercase letters, digits and _"
            )
            rule_id = f"rule_at_line_{body.line}"
        event_types = self._event_types(body)
        conditions = self._conditions(body)
        push_class = self._push_class(body)
        ttl = self._ttl(body, push_class)
        priority = body.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            self.problems.add(body.line_of("priority"), "`priority` must be a whole number")
            priority = 0
        title = self._template(body, "title", required=True)
        summary = self._template(body, "summary", required=True)
        deeplink = self._template(body, "deeplink", required=False)
        collapse_key = self._collapse_key(body, event_types)
        extras = self._extras(body)
        history = self._history(body)
        shared = self._shared(body, history)
        personal_within = self._personal_within(body, push_class, ttl, shared)
        quiet_hours = self._quiet_hours(body, push_class, event_types)
        examples = self._examples(body)
        self._shared_examples(body, shared, examples)
        if len(self.problems.found) > before or title is None or summary is None:
            return None
        return Rule(
            id=rule_id,
            file=self.problems.file,
            file_name=self.file_name,
            line=body.line,
            event_types=event_types,
            conditions=conditions,
            priority=priority,
            push_class=push_class,
            ttl_s=ttl or 0.0,
            title=title,
            summary=summary,
            deeplink=deeplink,
            collapse_key=collapse_key,
            extras=extras,
            examples=examples,
            history=history,
            shared=shared,
            personal_within_s=personal_within,
            quiet_hours=quiet_hours,
        )

    def _ttl(self, body: LineDict, push_class: PushClass) -> float | None:
        value = body.get("ttl")
        seconds = ttl_seconds(value)
        line = body.line_of("ttl")
        if seconds is None:
            self.problems.add(line, "`ttl` must be a time such as 30m, 2h, 1d or 90s")
        elif seconds == 0:
            self.problems.add(
                line,
                f"`ttl: {value}` makes every push expire before it can be sent; give how long "
                "the push stays worth sending, e.g. 2h",
            )
        elif seconds < TTL_MIN_S:
            self.problems.add(
                line,
                f"`ttl: {value}` is shorter than a minute: while the provider's budget is "
                "busy (IMSHOP takes 10 requests a minute) the push expires before its turn; "
                "give at least 1m",
            )
        elif seconds > TTL_MAX_S[push_class]:
            longest = ttl_text(TTL_MAX_S[push_class])
            why = (
                "order news that old misleads (a courier «on the way» days later)"
                if push_class is PushClass.TRANSACTIONAL
                else "an offer that old is noise"
            )
            self.problems.add(
                line,
                f"`ttl: {value}` is longer than a {push_class.value} push stays true: {why}; "
                f"give at most {longest}",
            )
        else:
            return seconds
        return None

    def _event_types(self, body: LineDict) -> tuple[str, ...]:
        value = body.get("event")
        types = [value] if isinstance(value, str) else value
        if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
            self.problems.add(
                body.line_of("event"), "`event` must name the event type, e.g. order.status_changed"
            )
            return ()
        return tuple(types)

    def _conditions(self, body: LineDict) -> tuple[Condition, ...]:
        when = body.get("when")
        if when is None:
            return ()
        if not isinstance(when, LineDict):
            self.problems.add(body.line_of("when"), "`when` must list `field: value` conditions")
            return ()
        conditions = []
        for path, test in when.items():
            line = when.line_of(path)
            if path in RULE_KEYS:
                self.problems.add(
                    line,
                    f"`{path}` is indented as a condition under `when:`; move it left to line "
                    "up with `when:` (it is a setting of the rule)",
                )
                continue
            tests = condition_tests(test)
            if tests is None:
                self.problems.add(line, f"condition on `{path}`: {_CONDITION_HELP}")
                continue
            text = f"{path}: {_written(test)}"
            conditions += [Condition(str(path), t, line=line, text=text) for t in tests]
        return tuple(conditions)

    def _push_class(self, body: LineDict) -> PushClass:
        value = body.get("class")
        try:
            return PushClass(str(value))
        except ValueError:
            self.problems.add(
                body.line_of("class"),
                ("the rule has no `class`: " if value is None else "`class` must be ")
                + "transactional (order news, account movements) or marketing (offers, reminders)",
            )
            return PushClass.MARKETING

    def _template(
        self,
        body: LineDict,
        key: str,
        *,
        required: bool,
        line: int | None = None,
        source: Any = None,
    ) -> Template | None:
        value = body.get(key) if source is None else source
        at = line if line is not None else body.line_of(key)
        if value is None:
            if required:
                self.problems.add(body.line, f"the rule has no `{key}`")
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.problems.add(at, f"`{key}` must be text")
            return None
        try:
            compiled = self.env.from_string(str(value))
        except LiquidError as exc:
            self.problems.add(at, f"the {key}: {explain_syntax(str(value), exc)}")
            return None
        return Template(name=key, source=str(value), compiled=compiled, line=at)

    def _collapse_key(self, body: LineDict, event_types: tuple[str, ...]) -> Template | None:
        if "collapse_key" in body:
            return self._template(body, "collapse_key", required=False)
        if event_types and all(t.startswith("order.") for t in event_types):
            return self._template(
                body,
                "collapse_key",
                required=False,
                line=body.line,
                source=DEFAULT_ORDER_COLLAPSE_KEY,
            )
        return None

    def _extras(self, body: LineDict) -> dict[str, dict[str, Template | Any]]:
        section = body.get("appmetrica")
        if section is None:
            return {}
        if not isinstance(section, LineDict) or not set(section) <= set(PLATFORMS):
            self.problems.add(
                body.line_of("appmetrica"),
                "`appmetrica` may hold only `android:` and `iOS:` fields",
            )
            return {}
        extras: dict[str, dict[str, Template | Any]] = {}
        for platform, fields in section.items():
            if not isinstance(fields, LineDict):
                self.problems.add(
                    section.line_of(platform), f"`{platform}` must hold `field: value` lines"
                )
                continue
            extras[platform] = {
                key: self._template(fields, str(key), required=False)
                if isinstance(value, str)
                else value
                for key, value in fields.items()
            }
        return extras

    def _history(self, body: LineDict) -> HistoryRule:
        value = body.get("history")
        if value is None or value is True:
            return HistoryRule()
        if value is False:
            return HistoryRule(keep=False)
        if not isinstance(value, LineDict):
            self.problems.add(
                body.line_of("history"),
                "`history` must be false (keep no item in the customer's history) or the "
                f"item's fields: {', '.join(HISTORY_FIELDS)}",
            )
            return HistoryRule()
        templates: dict[str, Template] = {}
        for key in value:
            if key not in HISTORY_FIELDS:
                self.problems.add(
                    value.line_of(key),
                    f"unknown key `{key}` under `history` (allowed: {', '.join(HISTORY_FIELDS)})",
                )
            elif template := self._template(value, str(key), required=False):
                templates[str(key)] = dataclasses.replace(template, name=f"history {key}")
        return HistoryRule(templates=templates)

    def _shared(self, body: LineDict, history: HistoryRule) -> SharedText | None:
        value = body.get("shared")
        if value is None:
            return None
        line = body.line_of("shared")
        if not isinstance(value, LineDict):
            self.problems.add(
                line,
                "`shared` gives the texts sent when the personal push would be late: "
                "`title:`, `summary:` and (best) `deeplink:`, naming nothing personal",
            )
            return None
        for key in value:
            if key not in SHARED_KEYS:
                self.problems.add(
                    value.line_of(key),
                    f"unknown key `{key}` under `shared` (allowed: {', '.join(SHARED_KEYS)})",
                )
        if not history.keep:
            self.problems.add(
                line,
                "the shared text stands in for the personal one, whose details the customer "
                "finds in the notification history, but this rule keeps none (`history: "
                "false`); keep the history or remove `shared`",
            )
        texts = {}
        for key in SHARED_KEYS:
            if key not in value:
                if key != "deeplink":
                    self.problems.add(line, f"the shared text has no `{key}`")
                continue
            template = self._template(value, key, required=False)
            if template is not None:
                texts[key] = dataclasses.replace(template, name=f"shared {key}")
        if "title" not in texts or "summary" not in texts:
            return None
        return SharedText(texts["title"], texts["summary"], texts.get("deeplink"), line)

    def _personal_within(
        self,
        body: LineDict,
        push_class: PushClass,
        ttl: float | None,
        shared: SharedText | None,
    ) -> float:
        default = PERSONAL_WITHIN_S[push_class]
        if "personal_within" not in body:
            return default if ttl is None else min(default, ttl)
        value = body.get("personal_within")
        line = body.line_of("personal_within")
        seconds = ttl_seconds(value)
        if "shared" not in body:
            self.problems.add(
                line,
                "`personal_within` says how late the personal push may go out before the "
                "shared text is sent instead, but the rule has no `shared:`; add one or "
                "remove this line",
            )
        elif seconds is None or seconds == 0:
            self.problems.add(
                line,
                "`personal_within` must be a time such as 2m, 90s or 1h: how late after the "
                "event the personal push may still go out",
            )
        elif ttl is not None and seconds > ttl:
            self.problems.add(
                line,
                f"`personal_within: {value}` is longer than the rule's `ttl` "
                f"({ttl_text(ttl)}): a push that late is dropped as expired; give at most "
                f"{ttl_text(ttl)}",
            )
        else:
            return seconds
        return default

    def _quiet_hours(
        self, body: LineDict, push_class: PushClass, event_types: tuple[str, ...]
    ) -> QuietHours | None:
        if "quiet_hours" not in body:
            bonus = bool(event_types) and all(t.startswith("bonus.") for t in event_types)
            return BONUS_QUIET_HOURS if bonus and push_class is PushClass.MARKETING else None
        value = body.get("quiet_hours")
        line = body.line_of("quiet_hours")
        if value is False:
            return None
        hours = _quiet_window(value)
        if hours is None:
            self.problems.add(
                line,
                "`quiet_hours` must be a window of the recipient's local time, e.g. "
                '"22:00-09:00" (in quotes), or false for none',
            )
        elif push_class is PushClass.TRANSACTIONAL:
            self.problems.add(
                line,
                "order news and account movements (class: transactional) go out at any "
                "hour; quiet hours are for marketing rules: remove this line",
            )
        else:
            return hours
        return None

    def _shared_examples(
        self, body: LineDict, shared: SharedText | None, examples: tuple[Example, ...]
    ) -> None:
        stated = [example for example in examples if example.shared is not None]
        if shared is not None and examples and not stated:
            self.problems.add(
                shared.line,
                "no example shows the shared text: give one example a `shared:` with the "
                "push it must give (title, summary, deeplink), as under `push:`",
            )
        if "shared" not in body:
            for example in stated:
                self.problems.add(
                    example.line,
                    f"example {example.name!r} states a `shared:` push, but the rule has no "
                    "shared text",
                )

    def _examples(self, body: LineDict) -> tuple[Example, ...]:
        section = body.get("examples")
        if not isinstance(section, LineList) or not section:
            self.problems.add(
                body.line_of("examples"),
                "the rule needs `examples`: sample events with the push each must give",
            )
            return ()
        examples = []
        for index, item in enumerate(section):
            line = section.line_of(index)
            event, push = (
                (item.get("event"), item.get("push"))
                if isinstance(item, LineDict)
                else (None, None)
            )
            if not isinstance(event, LineDict) or not isinstance(push, LineDict):
                self.problems.add(
                    line,
                    "an example needs `event:` (a sample event) and `push:` (what it must give)",
                )
                continue
            now = self._now(item, line)
            name = str(item.get("name", f"example {index + 1}"))
            shared = item.get("shared")
            if shared is not None and not isinstance(shared, LineDict):
                self.problems.add(
                    item.line_of("shared"),
                    "an example's `shared:` gives the shared push it must give: title, "
                    "summary, deeplink",
                )
                shared = None
            examples.append(
                Example(line=line, name=name, event=event, expected=push, now=now, shared=shared)
            )
        return tuple(examples)

    def _now(self, item: LineDict, line: int) -> dt.datetime | None:
        value = item.get("now")
        if value is None:
            return None
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            self.problems.add(
                item.line_of("now"),
                "`now` must be a time with its offset, e.g. 2026-11-25T12:00:00+03:00",
            )
            return None
        return moment


def _quiet_window(value: Any) -> QuietHours | None:
    """``22:00-09:00`` read as quiet hours, or None if it cannot be."""
    match = _QUIET.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59 or (h1, m1) == (h2, m2):
        return None
    return QuietHours(dt.time(h1, m1), dt.time(h2, m2))


def condition_tests(test: Any) -> list[Test] | None:
    """The tests one `when:` entry asks for, or None if it cannot be read."""
    if _is_scalar(test):
        return [OneOf.of([test])]
    if isinstance(test, list) and test and all(_is_scalar(v) for v in test):
        return [OneOf.of(test)]
    if not isinstance(test, dict) or not test:
        return None
    tests = [_keyed_test(str(kind), value) for kind, value in test.items()]
    return None if any(t is None for t in tests) else [t for t in tests if t is not None]


def _keyed_test(kind: str, value: Any) -> Test | None:
    if kind == "exists" and isinstance(value, bool):
        return Exists(value)
    if kind == "equals" and _is_scalar(value):
        return OneOf.of([value])
    if kind == "one_of" and isinstance(value, list) and value and all(_is_scalar(v) for v in value):
        return OneOf.of(value)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind in ("more_than", "less_than") and number:
        return Compare(Decimal(str(value)), more=kind == "more_than")
    if kind in ("after", "before") and value == "now":
        return Relative(after=kind == "after")
    return None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float)  # bool is an int


def _written(test: Any) -> str:
    if isinstance(test, dict):
        return "{" + ", ".join(f"{k}: {_written(v)}" for k, v in test.items()) + "}"
    if isinstance(test, list):
        return "[" + ", ".join(_written(v) for v in test) + "]"
    if isinstance(test, bool):
        return str(test).lower()
    return str(test)
