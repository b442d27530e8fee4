"""Russian filters: plurals, numbers, money, dates in the recipient's zone, truncation."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from liquid.exceptions import LiquidError

from consumer.mapping.filters import NBSP, format_number, money, plural, plural_word, truncate
from consumer.mapping.render import build_environment, render_context, render_text

FORMS = ("бонус", "бонуса", "бонусов")
MSK = ZoneInfo("Europe/Moscow")
# 12:00 in Moscow on 25 November 2026
NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (0, "0 бонусов"),
        (1, "1 бонус"),
        (2, "2 бонуса"),
        (4, "4 бонуса"),
        (5, "5 бонусов"),
        (11, "11 бонусов"),
        (12, "12 бонусов"),
        (14, "14 бонусов"),
        (21, "21 бонус"),
        (22, "22 бонуса"),
        (25, "25 бонусов"),
        (101, "101 бонус"),
        (111, "111 бонусов"),
        (1001, "1 001 бонус"),
        (Decimal("1.5"), "1,5 бонуса"),
        (Decimal("0.5"), "0,5 бонуса"),
        (Decimal("21.25"), "21,25 бонуса"),
        (Decimal("100.00"), "100 бонусов"),
        (Decimal("2.0"), "2 бонуса"),
        ("5", "5 бонусов"),
        (1500, "1 500 бонусов"),
    ],
)
def test_plural_matrix(amount: object, expected: str) -> None:
    assert plural(amount, *FORMS) == expected.replace(" ", NBSP)


def test_plural_word_gives_the_noun_alone() -> None:
    assert [plural_word(n, "день", "дня", "дней") for n in (1, 3, 7, 21)] == [
        "день",
        "дня",
        "дней",
        "день",
    ]


@pytest.mark.parametrize("bad", [None, True, "много", Decimal("NaN")])
def test_plural_refuses_what_is_not_a_number(bad: object) -> None:
    with pytest.raises(LiquidError, match="expected a number"):
        plural(bad, *FORMS)


def test_numbers_group_digits_with_non_breaking_spaces() -> None:
    assert format_number(1234567) == "1\u00a0234\u00a0567"
    assert format_number(Decimal("1234.5")) == "1\u00a0234,5"
    assert format_number(999) == "999"
    assert " " not in format_number(10_000)  # never a plain, breakable space


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"amount": Decimal("1990"), "currency": "RUB"}, "1 990 ₽"),
        ({"amount": Decimal("1990.00"), "currency": "RUB"}, "1 990 ₽"),
        ({"amount": Decimal("1990.5"), "currency": "RUB"}, "1 990,50 ₽"),
        ({"amount": Decimal("0.99"), "currency": "RUB"}, "0,99 ₽"),
        ({"amount": Decimal("250"), "currency": "USD"}, "250 $"),
        (Decimal("12500"), "12 500 ₽"),
        (350, "350 ₽"),
    ],
)
def test_money_as_russian_shops_write_it(value: object, expected: str) -> None:
    assert money(value) == expected.replace(" ", NBSP)


def test_money_without_an_amount_is_an_error_not_zero() -> None:
    with pytest.raises(LiquidError, match="no amount"):
        money({"currency": "RUB"})


def _render(source: str, now: dt.datetime = NOW, tz: ZoneInfo = MSK, **data: object) -> str:
    template = build_environment().from_string(source)
    return render_text(template, render_context(data, tz, now))


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (dt.datetime(2026, 11, 25, 20, 0, tzinfo=dt.UTC), "сегодня"),  # 23:00 in Moscow
        (dt.datetime(2026, 11, 25, 21, 30, tzinfo=dt.UTC), "завтра"),  # 00:30 next day
        (dt.date(2026, 11, 27), "послезавтра"),
        (dt.date(2026, 11, 24), "вчера"),
        (dt.date(2026, 12, 1), "1 декабря"),
        (dt.date(2027, 1, 9), "9 января 2027 года"),
        ("2026-11-26T08:00:00+03:00", "завтра"),
    ],
)
def test_day_is_relative_to_now_in_the_recipients_zone(when: object, expected: str) -> None:
    assert _render("{{ when | day }}", when=when) == expected


def test_the_same_instant_is_another_day_in_another_zone() -> None:
    when = dt.datetime(2026, 11, 25, 21, 30, tzinfo=dt.UTC)
    assert _render("{{ when | day }}", when=when, tz=ZoneInfo("Europe/Moscow")) == "завтра"
    assert _render("{{ when | day }}", when=when, tz=ZoneInfo("Europe/London")) == "сегодня"


def test_date_and_times_in_russian() -> None:
    start = dt.datetime(2026, 11, 26, 7, 0, tzinfo=dt.UTC)
    end = dt.datetime(2026, 11, 26, 11, 0, tzinfo=dt.UTC)
    text = _render(
        "{{ start | date_ru }}; {{ start | day }} {{ start | time_range: end }}; {{ end | time }}",
        start=start,
        end=end,
    )
    assert text == "26 ноября; завтра с 10:00 до 14:00; 14:00"


def test_time_range_over_midnight_names_the_second_day() -> None:
    start = dt.datetime(2026, 11, 25, 19, 0, tzinfo=dt.UTC)  # 22:00
    end = dt.datetime(2026, 11, 25, 22, 0, tzinfo=dt.UTC)  # 01:00 next day
    assert _render("{{ a | time_range: b }}", a=start, b=end) == "с 22:00 до завтра 01:00"


def test_time_of_a_bare_date_is_an_error() -> None:
    with pytest.raises(LiquidError, match="expected a time"):
        _render("{{ d | time }}", d=dt.date(2026, 11, 25))


@pytest.mark.parametrize(
    ("text", "length", "expected"),
    [
        ("Короткий текст", 40, "Короткий текст"),
        ("Ваш заказ собран и ждёт вас в пункте выдачи", 30, "Ваш заказ собран и ждёт вас…"),
        ("Сверхдлинноесловобезпробелов", 10, "Сверхдлин…"),
    ],
)
def test_truncate_ends_with_one_ellipsis_character(text: str, length: int, expected: str) -> None:
    result = truncate(text, length)
    assert result == expected
    assert len(result) <= length


def test_filters_in_templates_with_arguments() -> None:
    text = _render(
        '{{ bonus.amount | plural: "бонус", "бонуса", "бонусов" }} за {{ total | money }}',
        bonus={"amount": Decimal("21")},
        total={"amount": Decimal("1500"), "currency": "RUB"},
    )
    assert text == f"21{NBSP}бонус за 1{NBSP}500{NBSP}₽"


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        # points that burn at 00:00 on the 26th burn tonight, not "tomorrow"
        ("2026-11-26T00:00:00+03:00", "сегодня в полночь"),
        ("2026-11-27T00:00:00+03:00", "в ночь на 27 ноября"),
        ("2027-01-01T00:00:00+03:00", "в ночь на 1 января 2027 года"),
        ("2026-11-25T18:00:00+03:00", "сегодня в 18:00"),
        ("2026-11-26T10:30:00+03:00", "завтра в 10:30"),
        ("2026-12-01T10:00:00+03:00", "1 декабря в 10:00"),
        ("2026-11-25T21:00:00+00:00", "сегодня в полночь"),  # 00:00 in Moscow
        (dt.date(2026, 11, 26), "завтра"),
        (dt.date(2027, 2, 1), "1 февраля 2027 года"),
    ],
)
def test_moment_says_when_as_a_person_would(when: object, expected: str) -> None:
    assert _render("{{ when | moment }}", when=when) == expected


def test_moment_is_counted_in_the_recipients_zone() -> None:
    # 00:00 in Moscow is 02:00 in Yekaterinburg: not midnight there
    when = "2026-11-26T00:00:00+03:00"
    assert _render("{{ w | moment }}", w=when, tz=ZoneInfo("Asia/Yekaterinburg")) == (
        "завтра в 02:00"
    )


def test_a_date_in_another_year_says_the_year() -> None:
    assert _render("{{ d | date_ru }}", d=dt.date(2027, 2, 1)) == "1 февраля 2027 года"
    assert _render("{{ d | date_ru }}", d=dt.date(2026, 2, 1)) == "1 февраля"


def test_plural_on_a_sum_of_money_says_so() -> None:
    with pytest.raises(
        LiquidError, match=r"got a group of fields \(amount, currency\); use its amount"
    ):
        plural({"amount": Decimal("5"), "currency": "RUB"}, *FORMS)
