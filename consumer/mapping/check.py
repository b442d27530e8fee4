"""Checks on parsed rules: contract paths, filters, tags, deeplinks, overlaps.

The examples are checked in ``examples.py``; both only report problems, as
``(file, line, text)``, in words a product manager can act on.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from liquid.builtin.expressions.arguments import KeywordArgument
from liquid.builtin.expressions.filtered import Filter
from liquid.builtin.expressions.primitive import StringLiteral
from liquid.context import RenderContext
from liquid.template import BoundTemplate

from consumer.mapping.contract import normalize, path_known
from consumer.mapping.filters import FILTER_SPECS
from consumer.mapping.rules import Rule, Template

Problem = tuple[str, int, str]
ALLOWED_TAGS = frozenset(
    {"if", "unless", "case", "assign", "capture", "comment", "raw", "for", "break", "continue"}
)
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def _walk_filters(template: BoundTemplate) -> Iterator[Filter]:
    static = RenderContext(template)

    def expressions(expr: Any) -> Iterator[Filter]:
        for attr in ("filters", "tail_filters"):
            yield from getattr(expr, attr, None) or ()
        for child in expr.children():
            yield from expressions(child)

    def nodes(node: Any) -> Iterator[Filter]:
        for expr in node.expressions():
            yield from expressions(expr)
        for child in node.children(static, include_partials=False):
            yield from nodes(child)

    for node in template.nodes:
        yield from nodes(node)


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def check_filters(rule: Rule, template: Template) -> Iterator[Problem]:
    where = (rule.file, template.line)
    for used in _walk_filters(template.compiled):
        spec = FILTER_SPECS.get(used.name)
        if spec is None:
            yield (
                *where,
                (
                    f"the {template.name} uses an unknown filter `{used.name}`"
                    f"{_suggest(used.name, FILTER_SPECS)}"
                ),
            )
            continue
        if any(isinstance(arg, KeywordArgument) for arg in used.args):
            yield *where, f"the filter `{used.name}` takes no named arguments"
            continue
        count = len(used.args)
        if used.name in ("plural", "plural_word") and count != 3:
            yield (
                *where,
                (
                    f"`{used.name}` needs all three forms, for 1, 2 and 5 "
                    f"(e.g. {spec.usage}), but got {count}"
                ),
            )
        elif not spec.min_args <= count <= spec.max_args:
            yield (
                *where,
                (
                    f"the filter `{used.name}` is given {count} argument(s); write it as "
                    f"`{spec.usage or used.name}`"
                ),
            )
        elif used.name.startswith("plural") and any(
            isinstance(arg.value, StringLiteral) and not arg.value.value.strip()
            for arg in used.args
        ):
            yield *where, f"`{used.name}` has an empty form; give three words"


def check_tags(rule: Rule, template: Template) -> Iterator[Problem]:
    analysis = template.compiled.analyze(include_partials=False)
    for tag in analysis.tags:
        if tag not in ALLOWED_TAGS:
            yield (
                rule.file,
                template.line,
                (f"the {template.name} uses the tag `{tag}`, which push templates do not allow"),
            )


def check_paths(
    rule: Rule, template: Template, known: Mapping[str, frozenset[str]]
) -> Iterator[Problem]:
    analysis = template.compiled.analyze(include_partials=False)
    for variables in analysis.globals.values():
        for variable in variables:
            path = normalize(list(variable.segments))
            yield from _path_problems(rule, template.line, template.name, path, known)


def _path_problems(
    rule: Rule, line: int, what: str, path: str, known: Mapping[str, frozenset[str]]
) -> Iterator[Problem]:
    for event_type in rule.event_types:
        paths = known.get(event_type)
        if paths is None or path_known(path, paths):
            continue
        yield (
            rule.file,
            line,
            (
                f"the {what} uses `{path}`, which {event_type} events do not have"
                f"{_suggest(path, paths)}"
            ),
        )


def check_event_types(rule: Rule, known: Mapping[str, frozenset[str]]) -> Iterator[Problem]:
    for event_type in rule.event_types:
        if event_type not in known:
            yield (
                rule.file,
                rule.line,
                (
                    f"unknown event type `{event_type}`{_suggest(event_type, known)}; "
                    "declare new types under `event_types:`"
                ),
            )


def check_conditions(rule: Rule, known: Mapping[str, frozenset[str]]) -> Iterator[Problem]:
    for condition in rule.conditions:
        yield from _path_problems(rule, rule.line, "condition", condition.path, known)


def check_deeplink(rule: Rule, schemes: list[str]) -> Iterator[Problem]:
    if rule.deeplink is None:
        return
    match = _SCHEME.match(rule.deeplink.source)
    if match is None:
        yield (
            rule.file,
            rule.deeplink.line,
            ("the deeplink must start with its scheme written out, e.g. imshop://orders/..."),
        )
    elif match.group(1) not in schemes:
        yield (
            rule.file,
            rule.deeplink.line,
            (
                f"the deeplink scheme `{match.group(1)}` is not allowed "
                f"(allowed: {', '.join(schemes)}; setting MAPPINGS_ALLOWED_DEEPLINK_SCHEMES)"
            ),
        )


def check_overlaps(rules: list[Rule]) -> Iterator[Problem]:
    """Two rules that can match one event need different priorities."""
    for index, first in enumerate(rules):
        for second in rules[index + 1 :]:
            if not set(first.event_types) & set(second.event_types):
                continue
            if first.priority == second.priority and _can_both_match(first, second):
                yield (
                    second.file,
                    second.line,
                    (
                        f"rules `{first.id}` ({first.where}) and `{second.id}` can match the "
                        "same event; make their conditions exclusive or give one a higher "
                        "`priority`"
                    ),
                )


def _can_both_match(first: Rule, second: Rule) -> bool:
    return not any(a.excludes(b) for a in first.conditions for b in second.conditions)


def static_problems(
    rule: Rule, known: Mapping[str, frozenset[str]], schemes: list[str]
) -> list[Problem]:
    problems = list(check_event_types(rule, known))
    problems += check_conditions(rule, known)
    for template in rule.templates():
        problems += check_tags(rule, template)
        problems += check_filters(rule, template)
        problems += check_paths(rule, template, known)
    problems += check_deeplink(rule, schemes)
    return problems
