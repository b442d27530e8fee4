"""`when:` conditions: values, presence, numbers above or below, times after or before now."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from mapping_helpers import event, write

from consumer.errors import MappingLoadError
from consumer.mapping import MappingSet, load_mappings
from consumer.settings import MappingSettings

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))

BONUS = """\
rules:
  - id: expiring_soon
    event: bonus.expiring
    when:
      bonus.amount: {more_than: 0}
      bonus.expires_at: {after: now}
    class: marketing
    ttl: 12h
    title: Успейте потратить бонусы
    summary: Скоро сгорят.
    examples:
      - now: "2026-11-25T12:00:00+03:00"
        event: {bonus: {amount: 5, expires_at: "2026-11-26"}}
        push: {title: Успейте потратить бонусы, summary: Скоро сгорят.}
  - id: refund
    event: bonus.accrued
    when:
      bonus.amount: {less_than: 0, more_than: -100}
    class: marketing
    ttl: 1d
    title: Вернули бонусы
    summary: Вернули.
    examples:
      - event: {bonus: {amount: -5}}
        push: {title: Вернули бонусы, summary: Вернули.}
"""


@pytest.fixture
def mappings(tmp_path: Path) -> MappingSet:
    write(tmp_path, "bonus.yaml", BONUS)
    return load_mappings(tmp_path, MappingSettings())


def matched(
    mappings: MappingSet, event_type: str, now: dt.datetime = NOW, **bonus: object
) -> str | None:
    push = mappings.render(event(event_type=event_type, bonus=bonus), now=now)
    return push.rule_id.split(":")[1] if push else None


@pytest.mark.parametrize(
    ("amount", "rule"), [(5, "expiring_soon"), ("0.5", "expiring_soon"), (0, None), (-5, None)]
)
def test_more_than_zero_keeps_zero_and_negative_amounts_silent(
    mappings: MappingSet, amount: object, rule: str | None
) -> None:
    assert matched(mappings, "bonus.expiring", amount=amount, expires_at="2026-11-26") == rule


@pytest.mark.parametrize(
    ("amount", "rule"), [(-5, "refund"), (-99.5, "refund"), (-100, None), (0, None), (3, None)]
)
def test_both_bounds_must_hold(mappings: MappingSet, amount: object, rule: str | None) -> None:
    assert matched(mappings, "bonus.accrued", amount=amount) == rule


@pytest.mark.parametrize(
    ("expires_at", "rule"),
    [
        ("2026-11-25T12:00:01+03:00", "expiring_soon"),
        ("2026-11-25T12:00:00+03:00", None),  # the moment itself has passed
        ("2026-11-25T08:59:59Z", None),
        ("2026-11-25", "expiring_soon"),  # a date alone: today is not yet past
        ("2026-11-24", None),
    ],
)
def test_after_now(mappings: MappingSet, expires_at: str, rule: str | None) -> None:
    assert matched(mappings, "bonus.expiring", amount=5, expires_at=expires_at) == rule


def test_a_date_is_counted_in_the_recipients_zone(mappings: MappingSet) -> None:
    # 23:30 on the 25th in Moscow is already the 26th in Yekaterinburg
    late = dt.datetime(2026, 11, 25, 20, 30, tzinfo=dt.UTC)
    push = mappings.render(
        event(
            event_type="bonus.expiring",
            timezone="Asia/Yekaterinburg",
            bonus={"amount": 5, "expires_at": "2026-11-25"},
        ),
        now=late,
    )
    assert push is None
    assert matched(mappings, "bonus.expiring", late, amount=5, expires_at="2026-11-25")


EXPIRED = """\
  - id: expired
    event: bonus.expiring
    when:
      bonus.expires_at: {before: now}
    class: marketing
    ttl: 12h
    title: Бонусы сгорели
    summary: Сгорели.
    examples:
      - now: "2026-11-25T12:00:00+03:00"
        event: {bonus: {amount: 5, expires_at: "2026-11-24"}}
        push: {title: Бонусы сгорели, summary: Сгорели.}
"""


def test_after_and_before_now_exclude_each_other(tmp_path: Path) -> None:
    write(tmp_path, "bonus.yaml", BONUS + EXPIRED)
    mappings = load_mappings(tmp_path, MappingSettings())  # same priority, no overlap
    assert matched(mappings, "bonus.expiring", amount=5, expires_at="2026-11-24") == "expired"


def test_rules_that_can_both_match_still_need_a_priority(tmp_path: Path) -> None:
    write(tmp_path, "bonus.yaml", BONUS + EXPIRED.replace("{before: now}", "{exists: true}"))
    with pytest.raises(MappingLoadError, match=r"`expiring_soon` .* and `expired` can match"):
        load_mappings(tmp_path, MappingSettings())


def test_a_condition_that_cannot_be_read_says_what_can(tmp_path: Path) -> None:
    write(tmp_path, "bonus.yaml", BONUS.replace("{more_than: 0}", "{more_than: zero}"))
    with pytest.raises(MappingLoadError) as caught:
        load_mappings(tmp_path, MappingSettings())
    assert str(caught.value).count("bonus.yaml:5: condition on `bonus.amount`: write a value") == 1
    assert "`more_than: 0`, `less_than: 100`, `after: now` or `before: now`" in str(caught.value)
