"""Checks on parsed rules: fields, filters and their types, guards, tags, deeplinks.

The examples are checked in ``examples.py``; both only report problems, as
``(file, line, text)``, in words a product manager can act on: what is wrong,
where, and what to write instead.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from typing import Any

from consumer.mapping.contract import Contract, EventFields, Kind, normalize
from consumer.mapping.filters import FILTER_SPECS
from consumer.mapping.rules import Rule, Template
from consumer.mapping.usage import FilterCall, filter_calls, is_present, personal_paths, uses

Problem = tuple[str, int, str]
ALLOWED_TAGS = frozenset(
    {"if", "unless", "case", "assign", "capture", "comment", "raw", "for", "break", "continue"}
)
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_ELSE_IF = re.compile(r"\{%-?\s*else\s+if\b")
_PLURALS = ("plural", "plural_word")

# What each filter takes, and what it gives (None: what it was given).
_NUMBER_FILTERS = ("plural", "plural_word", "number", "plus", "minus", "abs", "round")
_TEXT_FILTERS = (
    "upcase",
    "downcase",
    "capitalize",
    "strip",
    "append",
    "prepend",
    "replace",
    "remove",
    "url_encode",
    "truncate",
)
_DATES: frozenset[Kind] = frozenset({"date", "time", "date_or_time"})
_TAKES: dict[str, tuple[frozenset[Kind], str]] = {  # filter -> (kinds it takes, in words)
    "money": (frozenset({"money", "number"}), "a sum of money or a number"),
    **dict.fromkeys(_NUMBER_FILTERS, (frozenset({"number"}), "a number")),
    **dict.fromkeys(("day", "date_ru", "moment"), (_DATES, "a date or a time")),
    **dict.fromkeys(("time", "time_range"), (frozenset({"time"}), "a time of day")),
    **dict.fromkeys(_TEXT_FILTERS, (frozenset({"text", "number"}), "text or a number")),
    "size": (frozenset({"text", "list", "object", "money"}), "text or a list"),
}
_GIVES: dict[str, Kind | None] = {  # what a filter gives, if not text (None: what it got)
    "default": None,
    **dict.fromkeys(("size", "plus", "minus", "abs", "round"), "number"),
}
_KIND_WORDS: dict[str, str] = {
    "text": "text",
    "number": "a number",
    "money": "a sum of money (amount and currency)",
    "date": "a date without a time",
    "time": "a date and time",
    "date_or_time": "a date, or a date and time",
    "object": "a group of fields",
    "list": "a list",
}

# Cyrillic letters that look like Latin ones, and the Latin letter each is mistaken for.
_LOOKALIKES = str.maketrans("аеорсухкіјѕԁһԛԝАВЕКМНОРСТХУІЈЅ", "aeopcyxkijsdhqwABEKMHOPCTXYIJS")
_CYRILLIC = re.compile("[\u0400-\u052f]")
_LATIN = re.compile("[A-Za-z]")


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def mixed_alphabets(word: str) -> str | None:
    """Says how a Latin name hides Cyrillic look-alikes (о, а, с...), or None if it does not.

    The text starts with "mixes alphabets:", to follow the name in a sentence.
    """
    cyrillic = [(i, ch) for i, ch in enumerate(word) if _CYRILLIC.match(ch)]
    if not cyrillic or not _LATIN.search(word):
        return None
    letters = ", ".join(f"«{ch}» (character {i + 1})" for i, ch in cyrillic)
    one = len(cyrillic) == 1
    text = (
        f"mixes alphabets: {letters} {'is a Cyrillic letter' if one else 'are Cyrillic'} "
        "among Latin ones (they look alike)"
    )
    fixed = word.translate(_LOOKALIKES)
    if _CYRILLIC.search(fixed):
        return f"{text}; retype the name in Latin letters"
    return f"{text}; retype {'it' if one else 'them'} in Latin: `{fixed}`"


# ---- filters and tags


def check_filters(rule: Rule, template: Template) -> Iterator[Problem]:
    where = (rule.file, template.line)
    for used in filter_calls(template.compiled):
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
        yield from _filter_arguments(where, used, spec.usage, spec.min_args, spec.max_args)


def _filter_arguments(
    where: tuple[str, int], used: FilterCall, usage: str, low: int, high: int
) -> Iterator[Problem]:
    count = len(used.texts)
    if used.named:
        yield *where, f"the filter `{used.name}` takes no named arguments"
    elif used.name in _PLURALS and any(used.paths):
        words = ", ".join(f'"{p or t or "…"}"' for p, t in zip(used.paths, used.texts, strict=True))
        yield (
            *where,
            (
                f"the forms of `{used.name}` must be in quotes, or they are read as event "
                f"fields: `{used.name}: {words}`"
            ),
        )
    elif used.name in _PLURALS and count != 3:
        yield (
            *where,
            (
                f"`{used.name}` needs all three forms, for 1, 2 and 5 "
                f"(e.g. {usage}), but got {count}"
            ),
        )
    elif not low <= count <= high:
        yield (
            *where,
            (
                f"the filter `{used.name}` is given {count} argument(s); write it as "
                f"`{usage or used.name}`"
            ),
        )
    elif used.name in _PLURALS and any(t is not None and not t.strip() for t in used.texts):
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
    if _ELSE_IF.search(template.source):
        yield (
            rule.file,
            template.line,
            (
                f"the {template.name} has `{{% else if … %}}`, which Liquid reads as a plain "
                "`{% else %}` (its condition is ignored); write `{% elsif … %}`"
            ),
        )


# ---- fields


def _plural_form_paths(template: Template) -> set[str]:
    """Words given to `plural` without quotes: reported as such, not as unknown fields."""
    found: set[str] = set()
    for used in filter_calls(template.compiled):
        if used.name in _PLURALS:
            found.update(p for p in used.paths if p)
    return found


def check_paths(rule: Rule, template: Template, known: Contract) -> Iterator[Problem]:
    analysis = template.compiled.analyze(include_partials=False)
    forms = _plural_form_paths(template)
    for variables in analysis.globals.values():
        for variable in variables:
            path = normalize(list(variable.segments))
            if path not in forms:
                yield from _path_problems(rule, template.line, template.name, path, known)


def _path_problems(
    rule: Rule, line: int, what: str, path: str, known: Contract
) -> Iterator[Problem]:
    for event_type in rule.event_types:
        fields = known.get(event_type)
        if fields is None or path in fields:
            continue
        mixed = mixed_alphabets(path)
        if mixed:
            yield rule.file, line, f"the {what} uses `{path}`, which {mixed}"
        else:
            yield (
                rule.file,
                line,
                (
                    f"the {what} uses `{path}`, which {event_type} events do not have"
                    f"{_suggest(path, fields.paths())}"
                ),
            )
        return


def check_event_types(rule: Rule, known: Contract) -> Iterator[Problem]:
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


def check_conditions(rule: Rule, known: Contract) -> Iterator[Problem]:
    for condition in rule.conditions:
        line = condition.line or rule.line
        yield from _path_problems(rule, line, "condition", condition.path, known)
        for value in sorted(condition.values or (), key=str):
            yield from _value_problems(rule, line, condition.path, value, known)


def _value_problems(
    rule: Rule, line: int, path: str, value: Any, known: Contract
) -> Iterator[Problem]:
    for event_type in rule.event_types:
        fields = known.get(event_type)
        declared = fields.values.get(path) if fields is not None else None
        if not declared or str(value) in declared:
            continue
        assert fields is not None
        mixed = mixed_alphabets(str(value))
        close = difflib.get_close_matches(str(value), declared, n=1, cutoff=0.6)
        if mixed:
            hint = f": `{value}` {mixed}"
        elif close:
            hint = f"; did you mean `{close[0]}`?"
        else:
            hint = f"; if the shop sends `{value}`, add it to that list"
        yield (
            rule.file,
            line,
            (
                f"the condition `{path}: {value}` names a value no {event_type} event has "
                f"(the values declared at {fields.values_at[path]}: {', '.join(declared)}){hint}"
            ),
        )
        return


def _proven_by_conditions(rule: Rule) -> frozenset[str]:
    return frozenset(c.path for c in rule.conditions if c.test.needs_value)


def check_guards(rule: Rule, template: Template, known: Contract) -> Iterator[Problem]:
    """Fields some events lack, shown without `default` or an `{% if %}` around them."""
    proven = _proven_by_conditions(rule)
    reported: set[str] = set()
    for use in uses(template.compiled):
        if use.role == "tested" or use.defaulted or use.path in reported:
            continue
        if is_present(use.path, use.present | proven):
            continue
        lacking = _lacking(rule, use.path, known)
        if lacking is None:
            continue
        reported.add(use.path)
        verb = "shows" if use.role == "shown" else "passes to a filter"
        fallback = (
            ""
            if use.role == "argument"
            else f", or give a fallback: `{{{{ {use.path} | default: … }}}}`"
        )
        yield (
            rule.file,
            template.line,
            (
                f"the {template.name} {verb} `{use.path}`, but some {lacking} events have none "
                "(the push would fail and be dead-lettered); guard it: "
                f"`{{% if {use.path} %}}…{{% endif %}}`{fallback}"
            ),
        )


def _lacking(rule: Rule, path: str, known: Contract) -> str | None:
    """The first event type of the rule whose events may lack the field."""
    for event_type in rule.event_types:
        fields = known.get(event_type)
        info = fields.info(path) if fields is not None else None
        if info is not None and not info.always:
            return event_type
    return None


def check_kinds(rule: Rule, template: Template, known: Contract) -> Iterator[Problem]:
    """Filters given the wrong kind of value, and objects printed as they are."""
    for use in uses(template.compiled):
        if use.role != "shown":
            continue
        fields = _first_known(rule, use.path, known)
        if fields is None:
            continue
        info = fields.info(use.path)
        assert info is not None
        kind: Kind = info.kind
        problem = None
        for call in use.filters:
            takes = _TAKES.get(call.name)
            if kind != "any" and takes is not None and kind not in takes[0]:
                problem = _wrong_input(call.name, use.path, kind, fields)
                break
            gives = _GIVES.get(call.name, "text")
            kind = kind if gives is None else gives
        else:
            if use.printed:
                problem = _printed_as_is(use.path, kind, fields)
        if problem:
            yield rule.file, template.line, f"the {template.name}: {problem}"


def _first_known(rule: Rule, path: str, known: Contract) -> EventFields | None:
    for event_type in rule.event_types:
        fields = known.get(event_type)
        if fields is not None and fields.info(path) is not None:
            return fields
    return None


def _wrong_input(name: str, path: str, kind: Kind, fields: EventFields) -> str:
    text = f"`{name}` needs {_TAKES[name][1]}, but `{path}` is {_KIND_WORDS[kind]}"
    if kind == "money" and name in _NUMBER_FILTERS:
        return f"{text}; write `{path}.amount | {name}: …` for its amount, or `{path} | money`"
    if kind == "date_or_time" and name in ("time", "time_range"):
        return f"{text} (with no time of day); use `moment`, which shows the time when there is one"
    if kind == "date" and name in ("time", "time_range"):
        return f"{text}; use `day` or `date_ru`"
    if kind == "object":
        return f"{text}; use one of its fields, e.g. `{_child(path, fields)}`"
    return text


def _printed_as_is(path: str, kind: Kind, fields: EventFields) -> str | None:
    if kind == "money":
        return (
            f"`{path}` is printed as it is, a sum of money: the push would read "
            f"«{{'amount': …, 'currency': …}}»; write `{{{{ {path} | money }}}}`"
        )
    if kind in _DATES:
        return (
            f"`{path}` is printed as the computer writes it («2026-11-25 10:00:00+03:00»); "
            "show it with `day`, `date_ru`, `moment` or `time`"
        )
    if kind == "object":
        return (
            f"`{path}` is a group of fields and would print as «{{…}}»; print one of them, "
            f"e.g. `{_child(path, fields)}`"
        )
    if kind == "list":
        return f"`{path}` is a list and would print as «[…]»; `{path} | size` gives how many"
    return None


def _child(path: str, fields: EventFields) -> str:
    prefix = f"{path}."
    return next((p for p in fields.paths() if p.startswith(prefix)), f"{path}.…")


# ---- deeplinks and overlaps


def check_deeplink(rule: Rule, schemes: list[str]) -> Iterator[Problem]:
    links = [rule.deeplink, rule.shared.deeplink if rule.shared is not None else None]
    for link in links:
        if link is None:
            continue
        match = _SCHEME.match(link.source)
        if match is None:
            yield (
                rule.file,
                link.line,
                (
                    f"the {link.name} must start with its scheme written out, "
                    "e.g. imshop://orders/..."
                ),
            )
        elif match.group(1) not in schemes:
            yield (
                rule.file,
                link.line,
                (
                    f"the {link.name} scheme `{match.group(1)}` is not allowed "
                    f"(allowed: {', '.join(schemes)}; setting MAPPINGS_ALLOWED_DEEPLINK_SCHEMES)"
                ),
            )


def check_shared(rule: Rule) -> Iterator[Problem]:
    """A shared text must name nothing personal, or it coalesces with no one."""
    if rule.shared is None:
        return
    for template in rule.shared.keyed().values():
        personal = personal_paths([template.compiled])
        if not personal:
            continue
        fields = ", ".join(f"`{p}`" for p in personal)
        hint = ": link to a list, e.g. imshop://orders" if "deeplink" in template.name else ""
        yield (
            rule.file,
            template.line,
            (
                f"the {template.name} shows {fields}, which differ from one customer to the "
                "next, so each push would need a request of its own like the personal text; "
                "a shared text names nothing personal (the details are in the customer's "
                f"notification history){hint}"
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


def static_problems(rule: Rule, known: Contract, schemes: list[str]) -> list[Problem]:
    """Everything wrong with one rule that shows without rendering an example."""
    problems = list(check_event_types(rule, known))
    problems += check_conditions(rule, known)
    for template in rule.templates():
        found = [
            *check_tags(rule, template),
            *check_filters(rule, template),
            *check_paths(rule, template, known),
        ]
        if not found:  # kinds and guards mean something once names and filters are right
            found += check_kinds(rule, template, known)
            found += check_guards(rule, template, known)
        problems += found
    problems += check_deeplink(rule, schemes)
    problems += check_shared(rule)
    return problems
