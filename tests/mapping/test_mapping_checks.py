"""Each class of mistake the check catches, reported as file:line in plain words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mapping_helpers import rule_yaml, write

from consumer.cli import main
from consumer.errors import MappingLoadError
from consumer.mapping import load_mappings
from consumer.settings import MappingSettings

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"


def problems_of(directory: Path, settings: MappingSettings | None = None) -> list[str]:
    with pytest.raises(MappingLoadError) as caught:
        load_mappings(directory, settings or MappingSettings())
    for problem in caught.value.problems:
        assert re.match(r"^\S+\.yaml:\d+: \S", problem), problem
    return caught.value.problems


def only_problem(tmp_path: Path, text: str, **settings: object) -> str:
    write(tmp_path, "rules.yaml", text)
    found = problems_of(tmp_path, MappingSettings(**settings))  # type: ignore[arg-type]
    assert len(found) == 1, found
    return found[0]


def test_the_shipped_mappings_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mappings", "check", str(SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: ")
    assert "order_with_courier — personal text (order.number" in out


def test_a_valid_rule_loads(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", rule_yaml())
    assert [r.rule_id for r in load_mappings(tmp_path, MappingSettings()).rules] == [
        "rules.yaml:order_shipped"
    ]


def test_yaml_syntax_error_says_where_and_how_to_fix(tmp_path: Path) -> None:
    text = rule_yaml(summary="Курьер в пути: скоро будет")
    problem = only_problem(tmp_path, text)
    assert problem.startswith(f"{tmp_path}/rules.yaml:9: YAML syntax error")
    assert "put the whole text in quotes" in problem


def test_structure_problems(tmp_path: Path) -> None:
    text = rule_yaml(push_class="urgent").replace(
        "    ttl: 2h\n", "    ttl: soon\n    colour: red\n"
    )
    write(tmp_path, "rules.yaml", text)
    found = problems_of(tmp_path)
    assert any(":6: `class` must be transactional" in p for p in found), found
    assert any(":7: `ttl` must be a time such as 30m" in p for p in found), found
    assert any(":8: unknown key `colour`" in p for p in found), found


def test_duplicate_key_is_a_problem_not_silently_the_last(tmp_path: Path) -> None:
    text = rule_yaml().replace("    ttl: 2h\n", "    ttl: 2h\n    ttl: 3h\n")
    assert only_problem(tmp_path, text).endswith(":8: `ttl` is given twice (also on line 7)")


def test_misspelt_variable_path_is_caught_with_a_suggestion(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, rule_yaml(title="'Заказ №{{ order.numbr }}'"))
    assert problem.endswith(
        ":8: the title uses `order.numbr`, which order.status_changed events do not have "
        "(did you mean `order.number`?)"
    )


def test_bonus_amount_typo_is_caught(tmp_path: Path) -> None:
    text = rule_yaml(
        event="bonus.accrued",
        when="      bonus.amount: {exists: true}",
        push_class="marketing",
        deeplink="imshop://bonuses",
        title='\'+{{ bonus.amout | plural: "бонус", "бонуса", "бонусов" }}\'',
    )
    assert "uses `bonus.amout`, which bonus.accrued events do not have" in only_problem(
        tmp_path, text
    )


def test_condition_on_an_unknown_field(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, rule_yaml(when="      order.state: shipped"))
    assert "the condition uses `order.state`" in problem


def test_unknown_filter(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, rule_yaml(summary="'{{ order.total | monney }}'"))
    assert problem.endswith(
        ":9: the summary uses an unknown filter `monney` (did you mean `money`?)"
    )


def test_english_date_filter_is_not_offered(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, rule_yaml(summary="'{{ occurred_at | date: \"%d %B\" }}'"))
    assert "unknown filter `date`" in problem


def test_plural_needs_all_three_forms(tmp_path: Path) -> None:
    summary = '\'{{ order.items_count | plural: "товар", "товаров" }}\''
    problem = only_problem(tmp_path, rule_yaml(summary=summary))
    assert ":9: `plural` needs all three forms, for 1, 2 and 5" in problem
    assert problem.endswith("but got 2")


def test_filter_with_wrong_argument_count(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, rule_yaml(summary="'{{ order.total | money: \"RUB\", 2 }}'"))
    assert "the filter `money` is given 2 argument(s)" in problem


def test_disallowed_tag(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, rule_yaml(summary="'{% include \"x\" %}'"))
    assert "uses the tag `include`" in problem


def test_deeplink_scheme_must_be_allowed(tmp_path: Path) -> None:
    text = rule_yaml(deeplink="'myshop://orders/{{ order.id }}'")
    assert ":10: the deeplink scheme `myshop` is not allowed" in only_problem(tmp_path, text)
    # the allowed list is a setting: a shop with its own slug adds it
    write(tmp_path, "rules.yaml", text.replace("imshop://orders/A-1", "myshop://orders/A-1"))
    load_mappings(tmp_path, MappingSettings(allowed_deeplink_schemes=["myshop"]))


def test_deeplink_must_start_with_a_written_scheme(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, rule_yaml(deeplink="'{{ order.id }}'"))
    assert "the deeplink must start with its scheme written out" in problem


def test_example_mismatch_shows_plain_text_not_escapes(tmp_path: Path) -> None:
    title = "'Собрали {{ order.total | money }}'"
    when = "      order.status: handed_to_courier\n      order.total: {exists: true}"
    text = rule_yaml(title=title, when=when, expected_title="Собрали 1500 ₽").replace(
        "status: handed_to_courier}",
        "status: handed_to_courier, total: {amount: '1500.00', currency: RUB}}",
    )
    problem = only_problem(tmp_path, text)
    assert "the title is «Собрали 1 500 ₽», expected «Собрали 1500 ₽»" in problem
    assert "\\xa0" not in problem


def test_example_that_renders_differently(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, rule_yaml(expected_title="Заказ №78 отправлен"))
    assert problem.endswith(
        ":12: example 'example 1': the title is «Заказ №77 отправлен», "
        "expected «Заказ №78 отправлен»"
    )


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


def test_example_missing_a_variable_fails_strictly(tmp_path: Path) -> None:
    # A new type's declared fields are what its events carry: shown unguarded, and
    # an event without one fails (never an empty space).
    problem = only_problem(tmp_path, PROMO.replace("{promo: {code: ZIMA}}", "{promo: {}}"))
    assert "the summary cannot be rendered: the event has no value for `promo.code`" in problem


def test_example_event_must_be_valid(tmp_path: Path) -> None:
    text = rule_yaml(example_event="          order: {number: '77', status: handed_to_courier}")
    assert "the event is not valid: order.id: missing" in only_problem(tmp_path, text)


def test_rendered_title_must_fit_the_limit(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, rule_yaml(), title_max_chars=10)
    assert problem.endswith("the title is 19 characters, longer than the limit of 10")


def test_overlapping_rules_need_a_priority(tmp_path: Path) -> None:
    second = rule_yaml(id="courier", when="      order.delivery.method: courier").split("rules:\n")[
        1
    ]
    write(tmp_path, "rules.yaml", rule_yaml() + second)
    found = problems_of(tmp_path)
    assert any("rules `order_shipped`" in p and "can match the same event" in p for p in found), (
        found
    )
    prioritized = second.replace("    class:", "    priority: 5\n    class:")
    write(tmp_path, "rules.yaml", rule_yaml() + prioritized)
    with pytest.raises(MappingLoadError) as caught:
        load_mappings(tmp_path, MappingSettings())
    # with a priority the overlap is fine; the courier rule now wins its example's event
    assert all("can match the same event" not in p for p in caught.value.problems)


def test_exclusive_conditions_do_not_overlap(tmp_path: Path) -> None:
    second = rule_yaml(id="order_delivered", when="      order.status: [delivered, returned]")
    second = second.split("rules:\n")[1].replace("handed_to_courier}", "delivered}")
    write(tmp_path, "rules.yaml", rule_yaml() + second)
    assert len(load_mappings(tmp_path, MappingSettings()).rules) == 2


def test_a_rule_id_used_twice_keeps_each_rules_own_problems(tmp_path: Path) -> None:
    # The check kept each rule's problems by rule id: the second rule's (none) took
    # the place of the first's, and its unknown filter went unreported.
    first = rule_yaml(title="'Заказ {{ order.id | mony }} отправлен'")
    second = rule_yaml(
        when="      order.status: delivered",
        example_event="          order: {id: A-1, number: '77', status: delivered}",
    ).split("rules:\n")[1]
    write(tmp_path, "rules.yaml", first + second)
    found = problems_of(tmp_path)
    assert len(found) == 2, found
    assert "rules.yaml:8: the title uses an unknown filter `mony`" in found[0]
    assert found[1].endswith(
        "rules.yaml:19: rule id `order_shipped` is used twice (also on line 2)"
    )


def test_check_command_prints_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "rules.yaml", rule_yaml(title="'{{ order.numbr }}'", summary="'{{ x | y }}'"))
    assert main(["mappings", "check", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{tmp_path}/rules.yaml:") for line in lines)


def test_new_event_type_declared_with_its_fields(tmp_path: Path) -> None:
    text = """\
    event_types:
      promo.sent:
        fields: [promo.title, promo.code]
    rules:
      - id: promo
        event: promo.sent
        class: marketing
        ttl: 1d
        title: '{{ promo.title }}'
        summary: 'Промокод {{ promo.code }}, а {{ promo.cod }} нет'
        examples:
          - event: {promo: {title: Скидки, code: ZIMA}}
            push: {title: Скидки, summary: Промокод ZIMA}
    """
    problem = only_problem(tmp_path, text)
    assert "uses `promo.cod`, which promo.sent events do not have" in problem


def test_a_declared_optional_field_must_be_guarded(tmp_path: Path) -> None:
    text = PROMO.replace("fields: [promo.code]", "fields: []\n    optional: [promo.code]")
    problem = only_problem(tmp_path, text)
    assert problem.endswith(
        ":11: the summary shows `promo.code`, but some promo.sent events have none (the push "
        "would fail and be dead-lettered); guard it: `{% if promo.code %}…{% endif %}`, or "
        "give a fallback: `{{ promo.code | default: … }}`"
    )


def test_the_guide_s_sample_rule_passes_the_check(tmp_path: Path) -> None:
    guide = (SHIPPED / "README.md").read_text(encoding="utf-8")
    sample = guide.split("## A rule\n\n```yaml\n", 1)[1].split("```", 1)[0]
    write(tmp_path, "rules.yaml", sample)
    assert [r.id for r in load_mappings(tmp_path, MappingSettings()).rules] == ["order_shipped"]
