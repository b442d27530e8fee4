"""Compiled templates render exactly as Liquid does, or hand the render back to Liquid."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from liquid.exceptions import LiquidError

from consumer.events import parse_event
from consumer.mapping import load_mappings
from consumer.mapping.compiled import Fallback, compile_template
from consumer.mapping.examples import example_event
from consumer.mapping.render import (
    _CONTEXT_FILTERS,
    build_environment,
    render_context,
    without_nulls,
)
from consumer.settings import MappingSettings

ENV = build_environment()
NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)

COMPILABLE = [
    "plain text",
    "Заказ №{{ order.number | default: order.id }} оформлен",
    "{{ order.total | money }} / {{ order.total.amount | money: 'USD' }}",
    "{{ bonus.amount | plural: 'бонус', 'бонуса', 'бонусов' }}",
    "{{ bonus.amount | number }} {{ bonus.amount | plural_word: 'день', 'дня', 'дней' }}",
    "{{ order.delivery.eta | day | capitalize }} {{ order.delivery.eta | time }}",
    "{{ order.delivery.eta | time_range: order.delivery.eta_until }} {{ order.date | date_ru }}",
    "imshop://orders/{{ order.id | url_encode }}?q={{ order.note | truncate: 8 }}",
    "{% if order.total %}Сумма {{ order.total | money }}.{% else %}Без суммы.{% endif %}",
    "{% if a and c %}A{% elsif b or c %}B{% elsif b %}D{% else %}C{% endif %}!",
    "{% if order.total %}   {% endif %}[{{ flag }}][{{ zero }}][{{ items }}][{{ none_yet }}]",
    "{{ order.missing | default: 'нет' }} {{ order.missing | default }}|",
    "{{ order.number | append: '-' | prepend: '#' | upcase | replace: '#', '№' }}",
    "{{ bonus.amount | plus: 1 | minus: 0.5 | round: 1 | abs }} {{ items | size }}",
    # comparisons run Liquid's own functions; a missing value compares as Liquid's does
    "{% if order.status == 'created' %}a{% elsif order.status != 'x' %}b{% endif %}",
    "{% if bonus.amount > 0 %}+{% elsif bonus.amount < 0 %}-{% else %}0{% endif %}",
    "{% if bonus.amount >= 21 and bonus.amount <= 21.0 %}=21{% endif %}",
    "{% if order.missing > 0 or order.missing < 0 or order.missing >= 0 %}no{% endif %}",
    "{% if order.missing == nil and order.missing != 'x' %}nil{% endif %}",
    "{% if order.missing == order.other_missing %}same{% endif %}",
    "{% if flag == true and zero == 0 and zero != false and c == '' %}t{% endif %}",
    "{% if order.number > 5 %}text and a number: Liquid's type error{% endif %}",
    "{% if order.total > 0 %}an object and a number: Liquid's type error{% endif %}",
]

NOT_COMPILED = [
    "{% for item in items %}{{ item }}{% endfor %}",
    "{% if order.status contains 'cr' %}x{% endif %}",
    "{% if items == empty %}x{% endif %}",
    "{{ items.first }} {{ items.size }}",
    "{{ items[0] }}",
    "{% assign x = 1 %}{{ x }}",
]

FAILING = [
    "{{ order.missing }}",  # strict: a missing value is an error, not ""
    "{{ order.missing | upcase }}",
    "{{ order.id | money }}",  # a filter refusing its input
    "{{ order.number.deeper }}",  # a path through a string
]


def _context(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order": {
            "id": "A 1/2",
            "number": "10452",
            "total": {"amount": Decimal("1990.50"), "currency": "RUB"},
            "delivery": {
                "eta": dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC),
                "eta_until": "2026-11-25T14:00:00+03:00",
            },
            "date": dt.date(2027, 1, 2),
            "note": "позвоните заранее, пожалуйста",
        },
        "bonus": {"amount": Decimal("21")},
        "a": 1,
        "c": "",
        "flag": True,
        "zero": 0,
        "items": ["x", "y"],
        "none_yet": [],
    }
    data.update(overrides)
    return render_context(data, ZoneInfo("Europe/Moscow"), NOW)


def _liquid(source: str, context: dict[str, Any]) -> str:
    return ENV.from_string(source).render(context)


@pytest.mark.parametrize("source", COMPILABLE)
@pytest.mark.parametrize("overrides", [{}, {"a": False, "b": 0, "order": {"id": "B"}}])
def test_compiled_output_equals_liquid(source: str, overrides: dict[str, Any]) -> None:
    function = compile_template(ENV.from_string(source), _CONTEXT_FILTERS)
    assert function is not None
    context = _context(**overrides)
    try:
        expected = _liquid(source, context)
    except LiquidError:
        with pytest.raises(Fallback):
            function(context)
        return
    assert function(context) == expected


@pytest.mark.parametrize("source", NOT_COMPILED)
def test_tags_and_operators_beyond_the_subset_stay_on_liquid(source: str) -> None:
    assert compile_template(ENV.from_string(source), _CONTEXT_FILTERS) is None


@pytest.mark.parametrize("source", FAILING)
def test_what_liquid_refuses_falls_back_so_liquid_names_the_error(source: str) -> None:
    function = compile_template(ENV.from_string(source), _CONTEXT_FILTERS)
    assert function is not None
    with pytest.raises(LiquidError):
        _liquid(source, _context())
    with pytest.raises(Fallback):
        function(_context())


def test_a_name_the_event_lacks_falls_back_to_liquid_builtins() -> None:
    function = compile_template(ENV.from_string("{{ now }}"), _CONTEXT_FILTERS)
    assert function is not None
    with pytest.raises(Fallback):
        function(_context())


def test_every_shipped_example_renders_the_same_compiled_and_in_liquid() -> None:
    shipped = load_mappings(Path(__file__).resolve().parents[2] / "mappings", MappingSettings())
    compared = 0
    for rule in shipped.rules:
        compiled, liquid = rule.plan(), rule.plan()
        assert compiled.functions is not None, rule.id
        liquid.functions = None  # the same parts, rendered by Liquid itself
        for example in rule.examples:
            raw = json.dumps(example_event(rule, example), default=str).encode()
            event = parse_event(raw, max_bytes=1 << 20)
            now = example.now or event.occurred_at
            context = render_context(without_nulls(event.template_context()), event.tzinfo, now)
            assert compiled.render(context) == liquid.render(context), (rule.id, example.name)
            compared += 1
    assert compared == sum(len(r.examples) for r in shipped.rules) > 20
