"""A rule's `history:` key: what the customer's notification history keeps of its push."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from mapping_helpers import event, write

from consumer.errors import MappingLoadError
from consumer.mapping import load_mappings
from consumer.push import HistoryText
from consumer.settings import MappingSettings

NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
SHIPPED = Path(__file__).resolve().parents[2] / "mappings"

RULE = """\
rules:
  - id: order_shipped
    event: order.status_changed
    class: transactional
    ttl: 2h
    title: 'Заказ №{{{{ order.number | default: order.id }}}} отправлен'
    summary: Скоро будет у вас.
    deeplink: 'imshop://orders/{{{{ order.id }}}}'
{history}
    examples:
      - event:
          order: {{id: A-1, number: '77', status: handed_to_courier}}
        push:
          title: Заказ №77 отправлен
          summary: Скоро будет у вас.
          deeplink: imshop://orders/A-1
"""
ORDER = {"id": "A-1", "number": "77", "status": "handed_to_courier"}


def render(tmp_path: Path, history: str, **order: object) -> HistoryText | None:
    write(tmp_path, "orders.yaml", RULE.format(history=history))
    push = load_mappings(tmp_path, MappingSettings()).render(
        event(order={**ORDER, **order}), now=NOW
    )
    assert push is not None
    return push.history


def test_by_default_the_history_keeps_the_push_itself(tmp_path: Path) -> None:
    assert render(tmp_path, "") == HistoryText(
        title="Заказ №77 отправлен", text="Скоро будет у вас.", deeplink="imshop://orders/A-1"
    )


def test_history_false_keeps_no_item(tmp_path: Path) -> None:
    assert render(tmp_path, "    history: false") is None


def test_a_rule_sets_what_the_item_shows_and_the_rest_stays_the_push(tmp_path: Path) -> None:
    history = """\
    history:
      text: 'Заказ №{{ order.id }} у курьера. Промокод на следующий: NEXT{{ order.id }}'
      url: 'https://shop.example/orders/{{ order.id }}'
      promocode: 'NEXT{{ order.id }}'"""

    item = render(tmp_path, history)

    assert item == HistoryText(
        title="Заказ №77 отправлен",
        text="Заказ №A-1 у курьера. Промокод на следующий: NEXTA-1",
        url="https://shop.example/orders/A-1",
        deeplink="imshop://orders/A-1",
        promocode="NEXTA-1",
    )


def test_the_check_holds_history_templates_to_the_same_rules_as_the_push(
    tmp_path: Path,
) -> None:
    history = "    history:\n      text: 'Пункт выдачи: {{ order.delivery.pickup_point }}'"
    write(tmp_path, "orders.yaml", RULE.format(history=history))

    with pytest.raises(MappingLoadError) as caught:
        load_mappings(tmp_path, MappingSettings())

    assert any(
        "/orders.yaml:10: the history text shows `order.delivery.pickup_point`" in problem
        for problem in caught.value.problems
    ), caught.value.problems


def test_a_history_url_that_is_not_a_web_address_is_refused(tmp_path: Path) -> None:
    history = "    history:\n      url: 'ftp://{{ order.id }}'"
    write(tmp_path, "orders.yaml", RULE.format(history=history))

    with pytest.raises(MappingLoadError, match="history url 'ftp://A-1' must start with https://"):
        load_mappings(tmp_path, MappingSettings())


@pytest.mark.parametrize(
    ("history", "problem"),
    [
        ("    history: maybe", "orders.yaml:9: `history` must be false"),
        ("    history:\n      colour: red", "orders.yaml:10: unknown key `colour` under `history`"),
        ("    history:\n      text: '{{ order.nope'", "orders.yaml:10: the text: the output"),
    ],
)
def test_a_wrong_history_key_is_a_problem_with_its_line(
    tmp_path: Path, history: str, problem: str
) -> None:
    write(tmp_path, "orders.yaml", RULE.format(history=history))

    with pytest.raises(MappingLoadError) as caught:
        load_mappings(tmp_path, MappingSettings())

    assert any(f"/{problem}" in line for line in caught.value.problems), caught.value.problems


def test_the_check_reports_an_unknown_field_in_a_history_template(tmp_path: Path) -> None:
    history = "    history:\n      promocode: '{{ order.promocode_of_the_day }}'"
    write(tmp_path, "orders.yaml", RULE.format(history=history))

    with pytest.raises(MappingLoadError) as caught:
        load_mappings(tmp_path, MappingSettings())

    assert any(
        "/orders.yaml:10: the history promocode uses `order.promocode_of_the_day`" in line
        for line in caught.value.problems
    ), caught.value.problems


def test_every_shipped_rule_keeps_its_push_in_the_history() -> None:
    mappings = load_mappings(SHIPPED, MappingSettings())

    assert all(rule.history.keep and not rule.history.templates for rule in mappings.rules)
