"""The shipped texts, read with a Russian editor's eye (issue 15, item 1)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from mapping_helpers import event

from consumer.mapping import MappingSet, load_mappings
from consumer.mapping.filters import NBSP
from consumer.push import PushClass, RenderedPush
from consumer.settings import MappingSettings

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"
MSK = dt.timezone(dt.timedelta(hours=3))
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=MSK)
STATUSES = [
    "created",
    "confirmed",
    "assembling",
    "ready_for_pickup",
    "handed_to_courier",
    "delivered",
    "cancelled",
    "returned",
]


@pytest.fixture(scope="module")
def shipped() -> MappingSet:
    return load_mappings(SHIPPED, MappingSettings())


def render(shipped: MappingSet, now: dt.datetime = NOW, **fields: object) -> RenderedPush | None:
    return shipped.render(event(**fields), now=now)


def order_push(shipped: MappingSet, now: dt.datetime = NOW, **order: object) -> RenderedPush:
    push = render(shipped, now, order={"id": "X9", **order})
    assert push is not None
    return push


def text(push: RenderedPush | None) -> str:
    assert push is not None
    return f"{push.message.title} | {push.message.summary}".replace(NBSP, " ")


def bonus(
    shipped: MappingSet, kind: str, now: dt.datetime = NOW, **fields: object
) -> RenderedPush | None:
    return render(shipped, now, event_type=f"bonus.{kind}", bonus=fields)


@pytest.mark.parametrize("status", STATUSES)
def test_the_number_sign_is_joined_to_the_number(shipped: MappingSet, status: str) -> None:
    title = order_push(shipped, number="10452", status=status).message.title
    assert f"№{NBSP}10452" in title


@pytest.mark.parametrize("status", STATUSES)
def test_no_internal_id_is_shown_without_a_display_number(shipped: MappingSet, status: str) -> None:
    push = order_push(
        shipped,
        id="8f3a1c-internal",
        status=status,
        total={"amount": "10", "currency": "RUB"},
        delivery={"method": "courier", "eta": "2026-11-25T15:00:00+03:00", "date": "2026-11-30"},
    )
    assert "8f3a1c" not in text(push)
    assert "№" not in text(push)
    assert push.message.deeplink is not None
    assert "8f3a1c-internal" in push.message.deeplink


def test_agreement_after_the_item_count(shipped: MappingSet) -> None:
    push = order_push(shipped, number="1", status="confirmed", items_count=3)
    assert text(push).endswith("Начинаем собирать 3 товара. Напишем, когда всё будет готово.")


@pytest.mark.parametrize(
    ("order", "not_said"),
    [
        ({"status": "confirmed", "items_count": 0}, "0 товаров"),
        ({"status": "created", "total": {"amount": "0", "currency": "RUB"}}, "0 ₽"),
        ({"status": "cancelled", "total": {"amount": "0.00", "currency": "RUB"}}, "0 ₽"),
    ],
)
def test_zero_is_never_said(shipped: MappingSet, order: dict[str, object], not_said: str) -> None:
    assert not_said not in text(order_push(shipped, **order))


@pytest.mark.parametrize("kind", ["accrued", "redeemed", "expiring"])
@pytest.mark.parametrize("amount", [0, "0.00", -5])
def test_zero_or_negative_points_send_nothing(
    shipped: MappingSet, kind: str, amount: object
) -> None:
    assert bonus(shipped, kind, amount=amount, expires_at="2026-12-01") is None


def courier(shipped: MappingSet, now: dt.datetime = NOW, **order: object) -> RenderedPush:
    return order_push(shipped, now, number="10452", status="handed_to_courier", **order)


def test_a_prepaid_order_is_not_asked_to_pay(shipped: MappingSet) -> None:
    delivery = {"method": "courier", "eta": "2026-11-25T15:00:00+03:00"}
    total = {"amount": "4990", "currency": "RUB"}
    assert "К оплате" not in text(courier(shipped, total=total, delivery=delivery))
    nothing = {"amount": "0", "currency": "RUB"}
    assert "К оплате" not in text(courier(shipped, total=total, to_pay=nothing, delivery=delivery))
    owed = {"amount": "1250.50", "currency": "RUB"}
    assert text(courier(shipped, to_pay=owed, delivery=delivery)).endswith(
        "Привезём сегодня около 15:00. К оплате при получении: 1 250,50 ₽."
    )


def test_a_time_already_past_is_not_promised(shipped: MappingSet) -> None:
    delivery = {"method": "courier", "eta": "2026-11-25T10:00:00+03:00"}
    push = courier(shipped, delivery=delivery)
    assert push.rule_id == "orders.yaml:order_with_courier"
    assert text(push).endswith("Курьер позвонит перед приездом.")


def test_a_storage_date_already_past_is_not_promised(shipped: MappingSet) -> None:
    delivery = {"pickup_point": "ул. Ленина, 12", "date": "2026-11-24"}
    push = order_push(shipped, number="1", status="ready_for_pickup", delivery=delivery)
    assert "24 ноября" not in text(push)
    ahead = order_push(
        shipped, number="1", status="ready_for_pickup", delivery={"date": "2027-02-01"}
    )
    assert "Храним до 1 февраля 2027 года в пункте выдачи." in text(ahead)


def test_the_date_leads_when_it_matters(shipped: MappingSet) -> None:
    push = order_push(
        shipped,
        number="1",
        status="handed_to_courier",
        delivery={"method": "post", "date": "2026-11-26"},
    )
    assert push.message.summary.startswith("Доставка ожидается завтра.")


def test_no_double_period_after_a_value_ending_in_one(shipped: MappingSet) -> None:
    delivery = {"pickup_point": "пр. Мира, д. 5."}
    push = order_push(shipped, number="1", status="ready_for_pickup", delivery=delivery)
    assert "д. 5. Не забудьте" in text(push)
    assert ".." not in text(push)


@pytest.mark.parametrize(
    ("amount", "said"),
    [
        (1, "сгорит 1 бонус"),
        (2, "сгорят 2 бонуса"),
        (5, "сгорят 5 бонусов"),
        (21, "сгорит 21 бонус"),
        (111, "сгорят 111 бонусов"),
        ("1.5", "сгорят 1,5 бонуса"),
    ],
)
def test_the_verb_agrees_with_the_amount(shipped: MappingSet, amount: object, said: str) -> None:
    assert said in text(bonus(shipped, "expiring", amount=amount, expires_at="2026-12-01"))


@pytest.mark.parametrize(
    ("expires_at", "summary_start"),
    [
        ("2026-11-26T00:00:00+03:00", "Сегодня в полночь сгорит"),  # not «Завтра»
        ("2026-11-27T00:00:00+03:00", "В ночь на 27 ноября сгорит"),
        ("2026-11-25T20:00:00+03:00", "Сегодня в 20:00 сгорит"),
        ("2026-11-25", "Сегодня сгорит"),
        ("2027-01-10", "10 января 2027 года сгорит"),
    ],
)
def test_expiry_dates_say_when_the_points_burn(
    shipped: MappingSet, expires_at: str, summary_start: str
) -> None:
    push = bonus(shipped, "expiring", amount=21, expires_at=expires_at)
    assert push is not None
    assert push.message.summary.replace(NBSP, " ").startswith(summary_start)


@pytest.mark.parametrize(
    "expires_at", ["2026-11-20", "2026-11-25T11:59:00+03:00", "2026-11-25T00:00:00+03:00"]
)
def test_a_past_expiry_sends_nothing(shipped: MappingSet, expires_at: str) -> None:
    assert bonus(shipped, "expiring", amount=21, expires_at=expires_at) is None


def test_spending_points_is_transactional(shipped: MappingSet) -> None:
    push = bonus(shipped, "redeemed", amount=300, balance=0)
    assert push is not None
    assert push.push_class is PushClass.TRANSACTIONAL
    assert (
        text(push)
        == "Списали 300 бонусов | Бонусы пошли в оплату покупки. Бонусов на счёте больше нет."
    )


def test_every_shipped_template_takes_the_compiled_path(shipped: MappingSet) -> None:
    # The hot path: a template that falls back to Liquid costs several times more.
    assert [r.id for r in shipped.rules if r.plan().functions is None] == []
