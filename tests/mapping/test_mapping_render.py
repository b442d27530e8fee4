"""Rendering events with the shipped mappings: matching, strictness, the cost report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from mapping_helpers import event, rule_yaml, write

from consumer.errors import MappingLoadError, RenderError
from consumer.events import BaseEvent
from consumer.mapping import MappingSet, load_mappings
from consumer.mapping.filters import NBSP
from consumer.push import PushClass
from consumer.settings import ImshopSettings, MappingSettings
from consumer.studio.cost import cost_lines

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"
NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def shipped() -> MappingSet:
    return load_mappings(SHIPPED, MappingSettings())


STATUSES = [
    ("created", "order_created"),
    ("confirmed", "order_confirmed"),
    ("assembling", "order_assembling"),
    ("ready_for_pickup", "order_ready_for_pickup"),
    ("handed_to_courier", "order_shipped"),
    ("delivered", "order_delivered"),
    ("cancelled", "order_cancelled"),
    ("returned", "order_returned"),
]


@pytest.mark.parametrize(("status", "rule"), STATUSES)
def test_every_order_status_has_a_push_naming_the_order(
    shipped: MappingSet, status: str, rule: str
) -> None:
    push = shipped.render(event(order={"id": "X9", "number": "10452", "status": status}), now=NOW)
    assert push is not None
    assert push.rule_id == f"orders.yaml:{rule}"
    assert "10452" in push.message.title
    assert push.push_class is PushClass.TRANSACTIONAL
    assert push.collapse_key == "X9"
    assert push.message.deeplink is not None
    assert push.message.deeplink.startswith("imshop://orders/X9")


def test_courier_rule_wins_by_priority_and_has_a_short_ttl(shipped: MappingSet) -> None:
    order = {"id": "X9", "status": "handed_to_courier", "delivery": {"method": "courier"}}
    push = shipped.render(event(order=order), now=NOW)
    assert push is not None
    assert push.rule_id == "orders.yaml:order_with_courier"
    assert push.ttl_s == 2 * 3600
    assert push.message.title == "Курьер везёт ваш заказ"  # no number: the id is not for reading
    assert push.extras == {
        "appmetrica": {
            "android": {"channel_id": "orders", "urgency": "high"},
            "iOS": {"thread_id": "order-X9", "sound": "default"},
        }
    }


@pytest.mark.parametrize(
    ("amount", "title"),
    [(1, "Начислили 1 бонус"), (3, "Начислили 3 бонуса"), ("11", "Начислили 11 бонусов")],
)
def test_bonus_push_inflects_the_amount(shipped: MappingSet, amount: object, title: str) -> None:
    push = shipped.render(event(event_type="bonus.accrued", bonus={"amount": amount}), now=NOW)
    assert push is not None
    verb, amount_text = title.split(" ", 1)
    assert push.message.title == f"{verb} {amount_text.replace(' ', NBSP)}"
    assert push.push_class is PushClass.MARKETING
    assert push.collapse_key is None


def test_unknown_status_matches_no_rule(shipped: MappingSet) -> None:
    assert shipped.render(event(order={"id": "X9", "status": "lost_in_space"})) is None


PROMO = """\
event_types:
  promo.sent:
    fields: [promo.code]
rules:
  - id: promo
    event: promo.sent
    class: marketing
    ttl: 1d
    title: Промокод
    summary: 'Промокод {{ promo.code }}'
    examples:
      - event: {promo: {code: ZIMA}}
        push: {title: Промокод, summary: Промокод ZIMA}
"""


def promo(**fields: object) -> BaseEvent:
    return event(event_type="promo.sent", promo=fields)


def test_missing_variable_is_an_error_naming_rule_and_field(tmp_path: Path) -> None:
    write(tmp_path, "promo.yaml", PROMO)
    mappings = load_mappings(tmp_path, MappingSettings())
    with pytest.raises(RenderError) as caught:
        mappings.render(promo())
    assert str(caught.value) == (
        f"{tmp_path}/promo.yaml:10: rule promo: the summary cannot be rendered: "
        "the event has no value for `promo.code`"
    )


@pytest.mark.parametrize("empty", [None, ""])
def test_null_or_empty_field_counts_as_missing(tmp_path: Path, empty: object) -> None:
    write(tmp_path, "promo.yaml", PROMO)
    mappings = load_mappings(tmp_path, MappingSettings())
    with pytest.raises(RenderError, match=r"no value for `promo\.code`"):
        mappings.render(promo(code=empty))


def test_an_empty_number_is_no_number(tmp_path: Path) -> None:
    title = "'{% if order.number %}Заказ №{{ order.number }}{% else %}Ваш заказ{% endif %} в пути'"
    write(tmp_path, "orders.yaml", rule_yaml(title=title, expected_title="Заказ №77 в пути"))
    mappings = load_mappings(tmp_path, MappingSettings())
    order = {"id": "A-1", "number": "", "status": "handed_to_courier"}
    push = mappings.render(event(order=order))
    assert push is not None
    assert push.message.title == "Ваш заказ в пути"


def test_unguarded_money_is_refused_before_it_could_say_zero(tmp_path: Path) -> None:
    write(tmp_path, "orders.yaml", rule_yaml(summary="'К оплате {{ order.total | money }}'"))
    with pytest.raises(MappingLoadError, match=r"shows `order\.total`, but some order"):
        load_mappings(tmp_path, MappingSettings())


def test_text_is_plain_not_html_escaped(tmp_path: Path) -> None:
    write(tmp_path, "orders.yaml", rule_yaml())
    mappings = load_mappings(tmp_path, MappingSettings())
    order = {"id": "A-1", "number": '<7> & "8"', "status": "handed_to_courier"}
    push = mappings.render(event(order=order))
    assert push is not None
    assert push.message.title == 'Заказ №<7> & "8" отправлен'


def test_resource_limits_stop_a_runaway_template(tmp_path: Path) -> None:
    loop = "'{% for i in (1..100000) %}x{% endfor %}'"
    write(tmp_path, "orders.yaml", rule_yaml(summary=loop, expected_summary="x"))
    with pytest.raises(MappingLoadError, match="limit"):
        load_mappings(tmp_path, MappingSettings())


def test_overlong_real_title_is_cut_with_an_ellipsis(tmp_path: Path) -> None:
    write(tmp_path, "orders.yaml", rule_yaml())
    mappings = load_mappings(tmp_path, MappingSettings(title_max_chars=30))
    order = {"id": "A-1", "number": "1" * 40, "status": "handed_to_courier"}
    push = mappings.render(event(order=order))
    assert push is not None
    assert len(push.message.title) == 30
    assert push.message.title.endswith("…")


def test_cost_report_tells_personal_grouped_and_shared_apart(tmp_path: Path) -> None:
    shared = rule_yaml(
        id="order_news",
        title="'{% if order.status == \"delivered\" %}Доставлено{% else %}Новости{% endif %}'",
        deeplink="imshop://orders",
        expected_title="Новости",
        expected_deeplink="imshop://orders",
    )
    write(tmp_path, "orders.yaml", shared)
    write(tmp_path, "bonus.yaml", rule_yaml().replace("handed_to_courier", "delivered"))
    grouped = rule_yaml(
        id="order_items",
        title='\'Собираем {{ order.items_count | plural: "товар", "товара", "товаров" }}\'',
        deeplink="imshop://orders",
        when="      order.status: assembling\n      order.items_count: {more_than: 0}",
        example_event="          order: {id: A-1, status: assembling, items_count: 3}",
        expected_title="Собираем 3 товара",
        expected_deeplink="imshop://orders",
    )
    write(tmp_path, "items.yaml", grouped)
    mappings = load_mappings(tmp_path, MappingSettings())
    report = cost_lines(
        mappings.rules,
        ImshopSettings(rate_limit_requests=10, rate_limit_window_s=60, max_ids_per_request=1000),
    )
    assert report == [
        f"{tmp_path}/bonus.yaml:2: order_shipped — personal text (order.number, order.id): "
        "1 push per request, at most 10 pushes per 60 s",
        f"{tmp_path}/items.yaml:2: order_items — grouped text (order.items_count): pushes "
        "with equal values share a request (up to 1000 recipients); each distinct value "
        "costs a request",
        f"{tmp_path}/orders.yaml:2: order_news — shared text: up to 1000 recipients per "
        "request, up to 10000 pushes per 60 s",
    ]
