"""What a rule costs in provider requests, and whether a send of a given size fits its ttl."""

from __future__ import annotations

from pathlib import Path

import pytest
from mapping_helpers import rule_yaml, write

from consumer.cli import main
from consumer.mapping import Rule, load_mappings
from consumer.settings import ImshopSettings, MappingSettings
from consumer.studio.cost import Volume, cost_lines, grouped_paths, personal_paths, requests_needed

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"
IMSHOP = ImshopSettings(rate_limit_requests=10, rate_limit_window_s=60, max_ids_per_request=1000)


def only_rule(tmp_path: Path, text: str) -> Rule:
    write(tmp_path, "rules.yaml", text)
    (rule,) = load_mappings(tmp_path, MappingSettings()).rules
    return rule


def test_a_field_only_tested_makes_nothing_personal(tmp_path: Path) -> None:
    # Issue 15: `{% if bonus.order_id %}` picked one of two texts, and the report
    # called the rule personal for it.
    rule = only_rule(
        tmp_path,
        """\
        rules:
          - id: bonus_accrued
            event: bonus.accrued
            when:
              bonus.amount: {more_than: 0}
            class: marketing
            ttl: 1d
            title: 'Начислили {{ bonus.amount | plural: "бонус", "бонуса", "бонусов" }}'
            summary: '{% if bonus.order_id %}Спасибо за заказ!{% else %}Спасибо!{% endif %}'
            deeplink: imshop://bonuses
            examples:
              - event: {bonus: {amount: 5, order_id: "A-1"}}
                push: {title: Начислили 5 бонусов, summary: Спасибо за заказ!, deeplink: imshop://bonuses}
        """,
    )
    assert personal_paths(rule) == []
    assert grouped_paths(rule) == ["bonus.amount"]


def test_a_fallback_value_is_shown_like_any_other(tmp_path: Path) -> None:
    rule = only_rule(
        tmp_path, rule_yaml(deeplink="imshop://orders", expected_deeplink="imshop://orders")
    )
    assert personal_paths(rule) == ["order.number", "order.id"]  # default: order.id


@pytest.mark.parametrize(
    ("tier", "volume", "expected"),
    [
        ("personal", Volume(5000), (5000, 5000)),
        ("shared", Volume(5000, 37), (5, 5)),
        ("shared", Volume(1), (1, 1)),
        # 37 amounts: at least one request each; at most 36 lone ones plus 4964 in 5
        ("grouped", Volume(5000, 37), (37, 41)),
        ("grouped", Volume(5000, 2), (5, 6)),
        ("grouped", Volume(30, 100), (30, 30)),  # no more values than recipients
        ("grouped", Volume(5000), (5, 5000)),  # unknown: all equal to all different
    ],
)
def test_requests_needed(tier: str, volume: Volume, expected: tuple[int, int]) -> None:
    assert requests_needed(tier, volume, 1000) == expected


def test_a_campaign_of_5000_with_37_amounts() -> None:
    shipped = load_mappings(SHIPPED, MappingSettings())
    (rule,) = [r for r in shipped.rules if r.id == "bonus_expiring"]
    line = cost_lines([rule], IMSHOP, volume=Volume(5000, 37), marketing_share=0.2)[1]
    assert line == (
        "    5000 recipients, 37 distinct values: 37–41 requests; with the whole budget: the "
        "last request goes out after about 4 min, within its ttl 12h; at the marketing share "
        "(20%) while order news is busy: the last request goes out after about 20 min, within "
        "its ttl 12h"
    )


def test_a_personal_send_that_does_not_fit_says_how_much_does(tmp_path: Path) -> None:
    rule = only_rule(tmp_path, rule_yaml())  # personal, transactional, ttl 2h
    (_, line) = cost_lines([rule], IMSHOP, volume=Volume(5000))
    assert line == (
        "    5000 recipients: 5000 requests; with the whole budget: the last request goes out "
        "after about 8 h 19 min, past its ttl 2h: only about 1210 requests go out in time and "
        "the rest expire; a shared or grouped text needs fewer"
    )


def test_check_takes_a_volume(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["mappings", "check", "--recipients", "5000", "--distinct", "37"]
    assert main([*args, "--rule", "bonus_expiring", str(SHIPPED)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith("  mappings/bonus.yaml:") or out[2].startswith(
        f"  {SHIPPED}/bonus.yaml:"
    )
    assert out[3].startswith("      5000 recipients, 37 distinct values: 37–41 requests;")
    assert out[4].startswith("      shared text (")
    assert out[5].startswith("        all as the shared text: 5000 recipients: 5 requests;")
    assert out[6].startswith("      quiet hours 22:00–09:00 in the recipient's time zone")
    assert len(out) == 7


def test_distinct_without_recipients_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mappings", "check", "--distinct", "37", str(SHIPPED)]) == 2
    assert "give both" in capsys.readouterr().err
