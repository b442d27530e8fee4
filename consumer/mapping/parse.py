"""Turning one YAML document into rules and declared event types, problem by problem.

Every problem is collected as ``file:line: text`` in plain words; parsing goes on
after a problem so one run of the check shows them all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from liquid import Environment
from liquid.exceptions import LiquidError

from consumer.mapping.rules import (
    HISTORY_FIELDS,
    Condition,
    Example,
    HistoryRule,
    Rule,
    Template,
)
from consumer.mapping.yamlfile import LineDict, LineList
from consumer.push import PushClass

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
        "examples",
    }
)
PLATFORMS = ("android", "iOS")
DEFAULT_ORDER_COLLAPSE_KEY = "{{ order.id }}"
_TTL = re.compile(r"^(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?$")
_ID = re.compile(r"^[a-z0-9_]+$")


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


def parse_ttl(value: Any) -> float | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _TTL.match(value.strip()) if isinstance(value, str) and value.strip() else None
    if not match:
        return None
    d, h, m, s = (int(part or 0) for part in match.groups())
    seconds = ((d * 24 + h) * 60 + m) * 60 + s
    return float(seconds) if seconds > 0 else None


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
        fields = body.get("fields") if isinstance(body, LineDict) else None
        if not isinstance(fields, LineList) or not all(isinstance(f, str) for f in fields):
            problems.add(line, f"event type {name}: give its `fields` as a list of paths")
            continue
        declared.append(DeclaredType(str(name), problems.file, line, tuple(fields)))
    return declared


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
        ttl = parse_ttl(body.get("ttl"))
        if ttl is None:
            self.problems.add(
                body.line_of("ttl"), "`ttl` must be a time such as 30m, 2h, 1d or 90s"
            )
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
        examples = self._examples(body)
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
        )

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
            condition = self._condition(str(path), test)
            if condition is None:
                self.problems.add(
                    when.line_of(path),
                    f"condition on `{path}`: write a value, a list of values, "
                    "or `exists: true` / `exists: false`",
                )
            else:
                conditions.append(condition)
        return tuple(conditions)

    @staticmethod
    def _condition(path: str, test: Any) -> Condition | None:
        scalar = (str, int, float)  # bool is an int
        if isinstance(test, scalar):
            return Condition.of(path, [test])
        if isinstance(test, list) and test and all(isinstance(v, scalar) for v in test):
            return Condition.of(path, list(test))
        if isinstance(test, dict) and len(test) == 1:
            ((kind, value),) = test.items()
            if kind == "exists" and isinstance(value, bool):
                return Condition.of(path, exists=value)
            if kind == "equals" and isinstance(value, scalar):
                return Condition.of(path, [value])
            if (
                kind == "one_of"
                and isinstance(value, list)
                and value
                and all(isinstance(v, scalar) for v in value)
            ):
                return Condition.of(path, list(value))
        return None

    def _push_class(self, body: LineDict) -> PushClass:
        value = body.get("class")
        try:
            return PushClass(str(value))
        except ValueError:
            self.problems.add(
                body.line_of("class"),
                "`class` must be transactional (order news) or marketing (bonuses, offers)",
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
            self.problems.add(
                at, f"the {key} is not a valid template: {str(exc.message).splitlines()[0]}"
            )
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
            examples.append(Example(line=line, name=name, event=event, expected=push, now=now))
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
