"""A rule's reach settings: `shared:` texts, `personal_within`, `quiet_hours`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from mapping_helpers import event, write

from consumer.errors import MappingLoadError
from consumer.mapping import Rule, load_mappings
from consumer.push import Message
from consumer.quiet import QuietHours
from consumer.settings import ImshopSettings, MappingSettings
from consumer.studio.cost import cost_lines

NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
ORDER = {"id": "A-1", "number": "77", "status": "handed_to_courier"}
IMSHOP = ImshopSettings(rate_limit_requests=10, rate_limit_window_s=60, max_ids_per_request=1000)

ORDER_RULE = """\
rules:
  - id: order_shipped
    event: order.status_changed
    class: transactional
    ttl: 2h
    title: 'Заказ №{{{{ order.number | default: order.id }}}} передан курьеру'
    summary: Курьер позвонит перед приездом.
    deeplink: 'imshop://orders/{{{{ order.id }}}}'
{extra}
    examples:
      - event:
          order: {{id: A-1, number: '77', status: handed_to_courier}}
        push:
          title: Заказ №77 передан курьеру
          summary: Курьер позвонит перед приездом.
          deeplink: imshop://orders/A-1
{example_extra}
"""
SHARED = """\
    shared:
      title: Ваш заказ передан курьеру
      summary: Курьер позвонит перед приездом. Подробности — в уведомлениях.
      deeplink: imshop://orders"""
SHARED_EXAMPLE = """\
        shared:
          title: Ваш заказ передан курьеру
          summary: Курьер позвонит перед приездом. Подробности — в уведомлениях.
          deeplink: imshop://orders"""

BONUS_RULE = """\
rules:
  - id: bonus_accrued
    event: bonus.accrued
    class: {push_class}
    ttl: 1d
    title: 'Начислили {{{{ bonus.amount | plural: "бонус", "бонуса", "бонусов" }}}}'
    summary: Бонусами можно оплатить покупку.
    deeplink: imshop://bonuses
{extra}
    examples:
      - event: {{bonus: {{amount: 5}}}}
        push: {{title: Начислили 5 бонусов, summary: Бонусами можно оплатить покупку., deeplink: imshop://bonuses}}
"""


def load(tmp_path: Path, extra: str = SHARED, example_extra: str = SHARED_EXAMPLE) -> Rule:
    write(tmp_path, "orders.yaml", ORDER_RULE.format(extra=extra, example_extra=example_extra))
    (rule,) = load_mappings(tmp_path, MappingSettings()).rules
    return rule


def problems(tmp_path: Path, text: str) -> list[str]:
    write(tmp_path, "rules.yaml", text)
    with pytest.raises(MappingLoadError) as caught:
        load_mappings(tmp_path, MappingSettings())
    return [p.split(": ", 1)[1] for p in caught.value.problems]


def order_problems(tmp_path: Path, extra: str, example_extra: str = SHARED_EXAMPLE) -> list[str]:
    return problems(tmp_path, ORDER_RULE.format(extra=extra, example_extra=example_extra))


def bonus_rule(tmp_path: Path, extra: str = "", push_class: str = "marketing") -> Rule:
    write(tmp_path, "bonus.yaml", BONUS_RULE.format(extra=extra, push_class=push_class))
    (rule,) = load_mappings(tmp_path, MappingSettings()).rules
    return rule


def test_the_push_carries_both_texts_and_the_rule_s_reach_settings(tmp_path: Path) -> None:
    load(tmp_path)
    mappings = load_mappings(tmp_path, MappingSettings())
    push = mappings.render(event(order=ORDER), now=NOW)
    assert push is not None
    assert push.message == Message(
        "Заказ №77 передан курьеру", "Курьер позвонит перед приездом.", "imshop://orders/A-1"
    )
    assert push.shared == Message(
        "Ваш заказ передан курьеру",
        "Курьер позвонит перед приездом. Подробности — в уведомлениях.",
        "imshop://orders",
    )
    assert push.personal_within_s == 90  # the default for order news
    assert push.quiet_hours is None
    assert push.collapse_key == "A-1"  # one order: supersession spans both texts


def test_a_rule_without_shared_text_renders_none(tmp_path: Path) -> None:
    load(tmp_path, extra="", example_extra="")
    push = load_mappings(tmp_path, MappingSettings()).render(event(order=ORDER), now=NOW)
    assert push is not None
    assert push.shared is None


def test_personal_within_is_read_as_a_duration(tmp_path: Path) -> None:
    assert load(tmp_path, extra=f"{SHARED}\n    personal_within: 90s").personal_within_s == 90


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("personal_within: soon", "`personal_within` must be a time such as 2m, 90s or 1h"),
        ("personal_within: 0s", "`personal_within` must be a time such as 2m, 90s or 1h"),
        ("personal_within: 3h", "`personal_within: 3h` is longer than the rule's `ttl` (2h)"),
    ],
)
def test_a_bad_personal_within_says_what_to_write(tmp_path: Path, line: str, expected: str) -> None:
    (found,) = order_problems(tmp_path, f"{SHARED}\n    {line}")
    assert found.startswith(expected)


def test_personal_within_without_shared_text_is_refused(tmp_path: Path) -> None:
    (found,) = order_problems(tmp_path, "    personal_within: 2m", example_extra="")
    assert "but the rule has no `shared:`" in found


def test_a_shared_text_that_names_the_order_is_refused(tmp_path: Path) -> None:
    personal = SHARED.replace(
        "title: Ваш заказ передан курьеру", "title: 'Заказ №{{ order.number }} у курьера'"
    ).replace("deeplink: imshop://orders", "deeplink: 'imshop://orders/{{ order.id }}'")
    found = order_problems(tmp_path, personal)
    assert any(
        p.startswith("the shared title shows `order.number`, which differ from one customer")
        for p in found
    )
    assert any(
        p.startswith("the shared deeplink shows `order.id`") and "imshop://orders" in p
        for p in found
    )


def test_a_shared_text_may_show_fields_many_customers_have_in_common(tmp_path: Path) -> None:
    shared = SHARED.replace(
        "title: Ваш заказ передан курьеру",
        'title: \'{% if order.delivery.method == "courier" %}Курьер везёт заказ'
        "{% else %}Заказ в пути{% endif %}'",
    )
    rule = load(
        tmp_path,
        extra=shared,
        example_extra=SHARED_EXAMPLE.replace(
            "title: Ваш заказ передан курьеру", "title: Заказ в пути"
        ),
    )
    assert rule.shared is not None


def test_an_example_must_show_the_shared_text(tmp_path: Path) -> None:
    (found,) = order_problems(tmp_path, SHARED, example_extra="")
    assert found.startswith("no example shows the shared text: give one example a `shared:`")


def test_an_example_s_shared_push_is_compared(tmp_path: Path) -> None:
    wrong = SHARED_EXAMPLE.replace("title: Ваш заказ передан курьеру", "title: Заказ у курьера")
    (found,) = order_problems(tmp_path, SHARED, example_extra=wrong)
    assert found == (
        "example 'example 1': the shared title is «Ваш заказ передан курьеру», "
        "expected «Заказ у курьера»"
    )


def test_a_shared_text_over_the_length_limit_is_a_problem(tmp_path: Path) -> None:
    long = "Очень " * 20 + "длинный заголовок"
    shared = SHARED.replace("title: Ваш заказ передан курьеру", f"title: {long}")
    example = SHARED_EXAMPLE.replace("title: Ваш заказ передан курьеру", f"title: {long}")
    (found,) = order_problems(tmp_path, shared, example_extra=example)
    assert found == (
        "example 'example 1': the shared title is 137 characters, longer than the limit of 65"
    )


def test_shared_text_needs_the_history_it_points_to(tmp_path: Path) -> None:
    found = order_problems(tmp_path, f"{SHARED}\n    history: false")
    assert any("but this rule keeps none (`history: false`)" in p for p in found)


def test_a_shared_text_without_a_summary_is_named(tmp_path: Path) -> None:
    shared = "\n".join(line for line in SHARED.splitlines() if "summary" not in line)
    assert "the shared text has no `summary`" in order_problems(tmp_path, shared)


def test_a_shared_deeplink_with_a_scheme_not_allowed_is_refused(tmp_path: Path) -> None:
    shared = SHARED.replace("imshop://orders", "ftp://orders")
    example = SHARED_EXAMPLE.replace("imshop://orders", "ftp://orders")
    found = order_problems(tmp_path, shared, example_extra=example)
    assert any(p.startswith("the shared deeplink scheme `ftp` is not allowed") for p in found)


def test_an_example_cannot_state_a_shared_push_the_rule_does_not_have(tmp_path: Path) -> None:
    (found,) = order_problems(tmp_path, "")
    assert found == "example 'example 1' states a `shared:` push, but the rule has no shared text"


def test_bonus_marketing_rules_keep_quiet_at_night_by_default(tmp_path: Path) -> None:
    assert bonus_rule(tmp_path).quiet_hours == QuietHours(dt.time(22), dt.time(9))


def test_quiet_hours_can_be_set_or_switched_off(tmp_path: Path) -> None:
    rule = bonus_rule(tmp_path, '    quiet_hours: "21:30 - 08:00"')
    assert rule.quiet_hours == QuietHours(dt.time(21, 30), dt.time(8))
    assert bonus_rule(tmp_path, "    quiet_hours: false").quiet_hours is None


def test_order_news_ignores_quiet_hours(tmp_path: Path) -> None:
    assert bonus_rule(tmp_path, push_class="transactional").quiet_hours is None
    found = problems(
        tmp_path,
        BONUS_RULE.format(extra='    quiet_hours: "22:00-09:00"', push_class="transactional"),
    )
    assert found == [
        "order news and account movements (class: transactional) go out at any hour; quiet "
        "hours are for marketing rules: remove this line"
    ]


@pytest.mark.parametrize("value", ["'22-9'", "'25:00-09:00'", "'09:00-09:00'", "night"])
def test_unreadable_quiet_hours_say_how_to_write_them(tmp_path: Path, value: str) -> None:
    found = problems(
        tmp_path, BONUS_RULE.format(extra=f"    quiet_hours: {value}", push_class="marketing")
    )
    assert found == [
        '`quiet_hours` must be a window of the recipient\'s local time, e.g. "22:00-09:00" '
        "(in quotes), or false for none"
    ]


def test_the_check_shows_both_variants_and_the_quiet_hours(tmp_path: Path) -> None:
    rule = load(tmp_path)
    lines = cost_lines([rule], IMSHOP)
    assert lines[1] == (
        f"    shared text ({rule.file}:{rule.shared.line if rule.shared else 0}), sent instead "
        "when the personal push would go out more than 90s after the event: up to 1000 "
        "recipients per request, up to 10000 pushes per 60 s"
    )
    (tmp_path / "bonus").mkdir()
    (_, quiet) = cost_lines([bonus_rule(tmp_path / "bonus")], IMSHOP)
    assert (
        quiet
        == "    quiet hours 22:00–09:00 in the recipient's time zone: pushes wait until they end"
    )


SHIPPED = Path(__file__).resolve().parents[2] / "mappings"


def test_every_shipped_rule_has_a_shared_text_and_offers_keep_quiet_at_night() -> None:
    rules = load_mappings(SHIPPED, MappingSettings()).rules
    assert [r.id for r in rules if r.shared is None] == []
    assert all(any(e.shared is not None for e in r.examples) for r in rules)
    night = QuietHours(dt.time(22), dt.time(9))
    quiet = {r.id: r.quiet_hours for r in rules if r.quiet_hours is not None}
    assert quiet == {"bonus_accrued": night, "bonus_expiring": night}


def test_render_shows_the_shared_text_beside_the_personal_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from consumer.cli import main

    assert main(["mappings", "render", "--rule", "bonus_expiring", str(SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert (
        "  shared text, sent instead when the personal push would go out more than 1h after "
        "the event:\n    title    Успейте потратить бонусы  (24/65)\n"
    ) in out
    assert "marketing, ttl 12h, quiet hours 22:00–09:00 (the customer's time zone)" in out
