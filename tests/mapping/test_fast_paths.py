"""The service's fast render path gives what Liquid gives, push for push and error for error.

The fast path reads the validated event through ``EventView`` and renders each
rule with one generated function; the reference dumps the event to dicts, drops
its nulls and renders every template with Liquid itself. A seeded generator
makes a large corpus from the sample traffic and every example in the shipped
mappings, then breaks it in the ways real events are odd: fields missing, null,
empty or very long, numbers of every sign and size, dates past and future, extra
fields (with nulls inside) beside the contract's.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from consumer.errors import InvalidEvent, RenderError
from consumer.events import BaseEvent, parse_event
from consumer.local.samples import sample_events
from consumer.mapping import MappingSet, load_mappings
from consumer.mapping.examples import example_event
from consumer.mapping.render import build_environment, render_context
from consumer.mapping.rules import Template, _RuleIndex
from consumer.mapping.view import EventView, plain, without_nulls
from consumer.push import RenderedPush
from consumer.settings import MappingSettings

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"
NOW = dt.datetime(2026, 11, 25, 9, 30, tzinfo=dt.UTC)
CORPUS = 6000


# Templates that name optional fields without a guard (the check refuses them in a
# mapping file): the strict render's errors, compared one by one.
_STRICT = {
    "order.status_changed": (
        "Заказ {{ order.number }} на {{ order.total | money }}",
        "{% if order.delivery.eta %}Привезём {{ order.delivery.eta | day }} в "
        "{{ order.delivery.eta | time }}.{% endif %} {% if order.items_count > 2 %}Много."
        "{% elsif order.items_count == 1 %}Один.{% endif %} {{ order.delivery.method }}"
        " {{ order.extra.note | truncate: 20 }}",
    ),
    "bonus": (
        "{{ bonus.balance | plural: 'бонус', 'бонуса', 'бонусов' }}",
        "{{ bonus.expires_at | date_ru }} {{ shop.extra.note }} {{ bonus.amount | money }}",
    ),
}


def _strict(mappings: MappingSet) -> MappingSet:
    env = build_environment()
    rules = []
    for rule in mappings.rules:
        title, summary = _STRICT[
            "order.status_changed" if "order.status_changed" in rule.event_types else "bonus"
        ]
        rules.append(
            dataclasses.replace(
                rule,
                title=Template("title", title, env.from_string(title), rule.title.line),
                summary=Template("summary", summary, env.from_string(summary), rule.line),
            )
        )
    return MappingSet(
        rules, settings=mappings.settings, extra_types=mappings.extra_types, digest="strict"
    )


def _liquid_only(mappings: MappingSet) -> MappingSet:
    """The same rules, every one tried in priority order (no index), every template
    rendered by Liquid itself (no compiled path)."""
    reference = MappingSet(
        list(mappings.rules),
        settings=mappings.settings,
        extra_types=mappings.extra_types,
        digest=mappings.digest,
    )
    reference._indexes = {t: _RuleIndex(rules) for t, rules in reference._by_type.items()}
    for plan in reference._plans.values():
        plan.functions = None
        plan.rule_function = None
        plan.cache = None
    return reference


def _reference(mappings: MappingSet, event: BaseEvent) -> RenderedPush | None:
    """The push as rendered before the fast path: dumped context, nulls dropped."""
    data = without_nulls(event.template_context())
    rule = mappings.match(event.event_type, data, now=NOW)
    return None if rule is None else mappings.render_rule(rule, data, event, NOW)


def _outcome(render: Any) -> tuple[str, object]:
    try:
        return "push", render()
    except RenderError as exc:
        return "error", str(exc)


_ODD_TEXTS = ["", " ", "Ё" * 1500, "line\nbreak", "<b>&amp;</b>", "10452", "0"]
_ODD_NUMBERS: list[object] = [0, -1, 1, 21, "1.5", "0.00", "-0.5", 1e3, "999999999999.99", True]
_ODD_DATES = [
    "2026-11-25",
    "2026-11-24",
    "2027-01-02",
    "2026-11-25T08:00:00+00:00",
    "2026-11-25T23:59:00+03:00",
    "2030-05-01T10:00:00-05:00",
]


def _paths(document: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(document, dict):
        for key, value in document.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


def _set(document: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    for key in path[:-1]:
        document = document.setdefault(key, {})
        if not isinstance(document, dict):
            return
    document[path[-1]] = value


def _odd(rng: random.Random, document: dict[str, Any], statuses: list[str]) -> dict[str, Any]:
    odd = copy.deepcopy(document)
    for _ in range(rng.randint(1, 4)):
        paths = [p for p in _paths(odd) if p[0] not in ("event_id", "event_type", "recipient")]
        path = rng.choice(paths) if paths and rng.random() < 0.7 else None
        roll = rng.random()
        if path is None or roll < 0.1:
            extra = {"note": rng.choice(_ODD_TEXTS), "gone": None, "deep": {"x": None, "y": 1}}
            _set(odd, (rng.choice(["order", "bonus", "shop"]), "extra"), extra)
        elif roll < 0.25:
            _set(odd, path, None)
        elif roll < 0.4:
            _set(odd, path, rng.choice(_ODD_TEXTS))
        elif roll < 0.55:
            _set(odd, path, rng.choice(_ODD_NUMBERS))
        elif roll < 0.7:
            _set(odd, path, rng.choice(_ODD_DATES))
        elif roll < 0.85 and statuses:
            _set(odd, ("order", "status"), rng.choice(statuses))
        else:
            parent = odd
            for key in path[:-1]:
                parent = parent.get(key, {}) if isinstance(parent, dict) else {}
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
    return odd


def _corpus(mappings: MappingSet) -> Iterator[bytes]:
    rng = random.Random(20261125)
    statuses = sorted(
        {str(v) for r in mappings.rules for c in r.conditions for v in (c.values or ())}
    )
    documents = [
        example_event(rule, example) for rule in mappings.rules for example in rule.examples
    ]
    documents += list(sample_events(400, seed=7, now=NOW))
    for document in documents:  # each as it is, then broken
        yield json.dumps(document, default=str, ensure_ascii=False).encode()
    while True:
        odd = _odd(rng, rng.choice(documents), statuses)
        yield json.dumps(odd, default=str, ensure_ascii=False).encode()


@pytest.mark.parametrize("strict", [False, True], ids=["shipped", "strict"])
def test_the_fast_path_renders_every_push_and_error_as_liquid_does(strict: bool) -> None:
    fast = load_mappings(SHIPPED, MappingSettings())
    if strict:
        fast = _strict(fast)
    assert all(p.rule_function is not None for p in fast._plans.values())
    reference = _liquid_only(fast)
    compared = pushes = errors = 0
    for raw in _corpus(fast):
        if compared >= CORPUS:
            break
        try:
            event = parse_event(raw, max_bytes=1 << 20, extra_types=fast.extra_types)
        except InvalidEvent:
            continue
        got = _outcome(lambda e=event: fast.render(e, now=NOW))
        expected = _outcome(lambda e=event: _reference(reference, e))
        assert got == expected, raw.decode()
        compared += 1
        pushes += got[0] == "push" and got[1] is not None
        errors += got[0] == "error"
    assert compared == CORPUS
    # both kinds well covered: the shipped texts mostly render, the strict ones often fail
    if strict:
        assert pushes > CORPUS / 10, (pushes, errors)
        assert errors > CORPUS / 3, (pushes, errors)
    else:
        assert pushes > CORPUS / 2, (pushes, errors)


def test_every_shipped_example_renders_the_same_through_the_view() -> None:
    mappings = load_mappings(SHIPPED, MappingSettings())
    reference = _liquid_only(mappings)
    for rule in mappings.rules:
        for example in rule.examples:
            raw = json.dumps(example_event(rule, example), default=str).encode()
            event = parse_event(raw, max_bytes=1 << 20, extra_types=mappings.extra_types)
            now = example.now or NOW
            data = without_nulls(event.template_context())
            expected = reference.render_rule(rule, data, event, now)
            assert mappings.render_rule(rule, EventView(event), event, now) == expected


@pytest.mark.parametrize(
    "document",
    [
        {"order": {"id": "A-1", "status": "created", "number": "", "note": None}},
        {"order": {"id": "A-1", "status": "created", "extra": {"a": None, "b": ["", 1, None]}}},
        {"order": {"id": "A-1", "status": "created", "total": {"amount": "5", "currency": "RUB"}}},
        {"bonus": {"amount": Decimal("1.50")}, "shop": {"name": "", "city": "Тула"}},
    ],
)
def test_a_view_holds_what_the_dumped_context_holds(document: dict[str, Any]) -> None:
    kind = "order.status_changed" if "order" in document else "bonus.accrued"
    raw = {
        "event_id": "e-1",
        "event_type": kind,
        "occurred_at": "2026-11-25T09:00:00+00:00",
        "recipient": {"user_id": "u-1", "devices": [{"id_type": "ios_ifa", "id": "d"}]},
        **document,
    }
    event = parse_event(json.dumps(raw, default=str).encode(), max_bytes=1 << 20)
    dumped = without_nulls(event.template_context())
    view = EventView(event)

    assert dict(view) == dumped
    for key, value in dumped.items():
        assert key in view
        assert plain(view[key]) == value
    assert "number" not in dumped.get("order", {})  # "" is no value, as null is


def test_the_rule_index_tries_only_rules_whose_list_holds_the_value_in_priority_order() -> None:
    mappings = load_mappings(SHIPPED, MappingSettings())
    orders = mappings._by_type["order.status_changed"]
    index = mappings._indexes["order.status_changed"]
    assert index.path == ("order", "status")

    tried = index.candidates({"order": {"status": "delivered"}})
    assert tried == tuple(r for r in orders if r in tried)  # priority order kept
    assert tried
    assert all(
        any(c.values is not None and "delivered" in c.values for c in r.conditions)
        or r in index.without_value
        for r in tried
    )
    assert index.candidates({"order": {"status": "no-such-status"}}) == index.without_value
    assert index.candidates({"order": {}}) == index.without_value
    # a value no list can hold (a group) is tried against every rule, as before
    assert index.candidates({"order": {"status": {"code": 1}}}) == orders


def test_a_plan_rendering_with_liquid_reads_the_dumped_context_of_a_view() -> None:
    mappings = load_mappings(SHIPPED, MappingSettings())
    rule = mappings.rules[0]
    example = rule.examples[0]
    raw = json.dumps(example_event(rule, example), default=str).encode()
    event = parse_event(raw, max_bytes=1 << 20, extra_types=mappings.extra_types)
    plan = rule.plan()
    plan.rule_function = None  # as for a rule only Liquid renders

    view = render_context(EventView(event), event.tzinfo, NOW)
    dumped = render_context(without_nulls(event.template_context()), event.tzinfo, NOW)
    assert plan.render(view) == rule.plan().render(dumped)
