"""Each slip a product manager made while editing (issue 15), caught with file:line and a fix.

Every case is one mistake in an otherwise valid rule (``mapping_helpers.RULE``:
title on line 8, summary on line 9, ttl on line 7, the `when:` entries from
line 5), and the check must answer with exactly one problem, on the right line,
saying what is wrong and what to write instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mapping_helpers import rule_yaml, write

from consumer.errors import MappingLoadError
from consumer.mapping import load_mappings
from consumer.settings import MappingSettings
from consumer.studio.draft import load_draft

STATUS = "      order.status: handed_to_courier"
VALUES = """\
event_types:
  order.status_changed:
    fields: []
    values:
      order.status: [created, handed_to_courier, delivered]
"""


def problem(tmp_path: Path, text: str) -> str:
    """The one problem the check finds, without the directory part of the file name."""
    write(tmp_path, "rules.yaml", text)
    with pytest.raises(MappingLoadError) as caught:
        load_mappings(tmp_path, MappingSettings())
    found = caught.value.problems
    assert len(found) == 1, found
    return found[0].removeprefix(f"{tmp_path}/")


def loads(tmp_path: Path, text: str) -> None:
    write(tmp_path, "rules.yaml", text)
    load_mappings(tmp_path, MappingSettings())


def no_problem_on(tmp_path: Path, text: str, line: int) -> None:
    """The rule's text at ``line`` is sound (its example may render something else)."""
    write(tmp_path, "rules.yaml", text)
    draft = load_draft(tmp_path, MappingSettings())
    assert [r.id for r in draft.mappings.rules] == ["order_shipped"], draft.problems
    assert [p for p in draft.problems if p[1] == line] == []


def summary(template: str, *, when: str = STATUS, expected: str = "Скоро будет у вас.") -> str:
    return rule_yaml(summary=template, when=when, expected_summary=expected)


# ---- optional fields used without `default` or an `if`


def test_an_optional_field_shown_without_a_guard(tmp_path: Path) -> None:
    assert problem(tmp_path, summary("'Заказ {{ order.number }}'")) == (
        "rules.yaml:9: the summary shows `order.number`, but some order.status_changed "
        "events have none (the push would fail and be dead-lettered); guard it: "
        "`{% if order.number %}…{% endif %}`, or give a fallback: "
        "`{{ order.number | default: … }}`"
    )


@pytest.mark.parametrize(
    ("template", "when"),
    [
        ("'{% if order.number %}Заказ {{ order.number }}.{% endif %}Скоро будет у вас.'", STATUS),
        ("'{{ order.number | default: \"\" }}Скоро будет у вас.'", STATUS),
        (  # a case on a missing value takes its `else`
            '\'{% case order.delivery.method %}{% when "post" %}П{% else %}Скоро будет у вас.'
            "{% endcase %}'",
            STATUS,
        ),
        (
            "'{% unless order.number %}{% else %}{{ order.number }}{% endunless %}"
            "Скоро будет у вас.'",
            STATUS,
        ),
        (  # a field inside it proves the object is there
            "'{% if order.total.amount > 0 %}{{ order.total | money }}{% endif %}"
            "Скоро будет у вас.'",
            STATUS,
        ),
        (
            "'Скоро будет у вас.{{ order.number | remove: order.number }}'",
            f"{STATUS}\n      order.number: {{exists: true}}",
        ),
    ],
)
def test_guarded_fields_pass(tmp_path: Path, template: str, when: str) -> None:
    text = summary(template, when=when)
    no_problem_on(tmp_path, text, text.splitlines().index(f"    summary: {template}") + 1)


def test_an_or_is_no_guard(tmp_path: Path) -> None:
    text = summary("'{% if order.number or order.id %}{{ order.number }}{% endif %}'")
    assert "the summary shows `order.number`, but some" in problem(tmp_path, text)


def test_a_field_every_event_has_needs_no_guard(tmp_path: Path) -> None:
    no_problem_on(tmp_path, summary("'Заказ {{ order.id }} скоро будет у вас.'"), 9)


# ---- objects printed as they are; filters given the wrong kind of value


TOTAL = f"{STATUS}\n      order.total: {{exists: true}}"


def test_a_sum_of_money_printed_without_money(tmp_path: Path) -> None:
    assert problem(tmp_path, summary("'Сумма {{ order.total }}'", when=TOTAL)) == (
        "rules.yaml:10: the summary: `order.total` is printed as it is, a sum of money: the "
        "push would read «{'amount': …, 'currency': …}»; write `{{ order.total | money }}`"
    )


def test_a_group_of_fields_printed(tmp_path: Path) -> None:
    text = summary("'{% if order.delivery %}{{ order.delivery }}{% endif %}'")
    assert problem(tmp_path, text).endswith(
        "`order.delivery` is a group of fields and would print as «{…}»; print one of them, "
        "e.g. `order.delivery.method`"
    )


def test_a_time_printed_without_a_date_filter(tmp_path: Path) -> None:
    text = summary("'{% if order.delivery.eta %}{{ order.delivery.eta }}{% endif %}'")
    assert "`order.delivery.eta` is printed as the computer writes it" in problem(tmp_path, text)


def test_plural_on_an_object(tmp_path: Path) -> None:
    text = summary('\'{{ order.total | plural: "рубль", "рубля", "рублей" }}\'', when=TOTAL)
    assert problem(tmp_path, text) == (
        "rules.yaml:10: the summary: `plural` needs a number, but `order.total` is a sum of "
        "money (amount and currency); write `order.total.amount | plural: …` for its amount, "
        "or `order.total | money`"
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "'{{ order.id | money }}'",
            "`money` needs a sum of money or a number, but `order.id` is text",
        ),
        (
            "'{% if order.delivery.date %}{{ order.delivery.date | time }}{% endif %}'",
            "`time` needs a time of day, but `order.delivery.date` is a date without a time; "
            "use `day` or `date_ru`",
        ),
        (
            '\'{% if order.delivery.eta %}{{ order.delivery.eta | plural: "a", "b", "c" }}'
            "{% endif %}'",
            "`plural` needs a number, but `order.delivery.eta` is a date and time",
        ),
        (
            "'{% if order.items_count > 0 %}{{ order.items_count | plus: 1 | day }}{% endif %}'",
            "`day` needs a date or a time, but `order.items_count` is a number",
        ),
    ],
)
def test_a_filter_given_the_wrong_kind_of_value(
    tmp_path: Path, template: str, expected: str
) -> None:
    assert problem(tmp_path, summary(template)) == f"rules.yaml:9: the summary: {expected}"


def test_time_on_a_field_that_may_be_a_date_alone(tmp_path: Path) -> None:
    text = """\
    rules:
      - id: bonus_expiring
        event: bonus.expiring
        class: marketing
        ttl: 12h
        title: Успейте потратить бонусы
        summary: 'До {{ bonus.expires_at | time }}'
        examples:
          - event: {bonus: {amount: 5, expires_at: "2026-11-26T18:00:00+03:00"}}
            push: {title: Успейте потратить бонусы, summary: До 18:00}
    """
    assert problem(tmp_path, text).endswith(
        "`time` needs a time of day, but `bonus.expires_at` is a date, or a date and time "
        "(with no time of day); use `moment`, which shows the time when there is one"
    )


# ---- tags


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "{% if order.number %}а{% elseif order.id %}б{% endif %}",
            "`{% elseif %}` is not a tag push templates know; did you mean `{% elsif %}`?",
        ),
        (
            "{% if order.number %}а{% end if %}",
            "`{% end if %}` is written as one word: `{% endif %}`",
        ),
        (
            "{% if order.number %}а{% enfif %}",
            "`{% enfif %}` is not a tag push templates know; did you mean `{% endif %}`?",
        ),
        (
            "{% if order.number Номер {{ order.number }}{% endif %}",
            "the tag `{% if order.number Номер` is not closed: end it with `%}`",
        ),
        (
            "{% if order.number }а{% endif %}",
            "the tag `{% if order.number }а` is not closed: end it with `%}`",
        ),
        (
            "{{ order.id }",
            "the output `{{ order.id }` is not closed: end it with `}}` (it ends with `}`, "
            "write `}}`)",
        ),
        (
            "{% if order.number %}а",
            "a `{% if %}` is not closed: add `{% endif %}` where its text ends",
        ),
        (
            "а{% endif %}",
            "`{% endif %}` is in the wrong place: it has no matching opening tag before it "
            "(an extra one, or one closing a tag that was not opened?)",
        ),
        (
            "{% if not order.number %}а{% endif %}",
            "Liquid has no `not` in conditions; use `{% unless field %}…{% endunless %}`, or "
            "swap the two branches of the `{% if %}`",
        ),
    ],
)
def test_tag_slips_are_named_with_the_fix(tmp_path: Path, template: str, expected: str) -> None:
    assert problem(tmp_path, summary(f"'{template}'")) == f"rules.yaml:9: the summary: {expected}"


def test_else_if_is_not_silently_an_else(tmp_path: Path) -> None:
    text = summary("'{% if order.number %}а{% else if order.id %}б{% endif %}'")
    assert problem(tmp_path, text) == (
        "rules.yaml:9: the summary has `{% else if … %}`, which Liquid reads as a plain "
        "`{% else %}` (its condition is ignored); write `{% elsif … %}`"
    )


# ---- names that look right but are not


def test_a_cyrillic_letter_in_a_field_name(tmp_path: Path) -> None:
    text = summary("'{{ оrder.id }}'")  # the first letter is Cyrillic
    assert problem(tmp_path, text) == (
        "rules.yaml:9: the summary uses `оrder.id`, which mixes alphabets: «о» (character 1) "
        "is a Cyrillic letter among Latin ones (they look alike); retype it in Latin: "
        "`order.id`"
    )


def test_a_cyrillic_letter_in_a_condition(tmp_path: Path) -> None:
    text = rule_yaml(when="      оrder.status: handed_to_courier")
    assert problem(tmp_path, text).startswith(
        "rules.yaml:5: the condition uses `оrder.status`, which mixes alphabets"
    )


def test_plural_forms_without_quotes(tmp_path: Path) -> None:
    text = summary(
        "'{% if order.items_count > 0 %}{{ order.items_count | plural: товар, товара, товаров }}"
        "{% endif %}'"
    )
    assert problem(tmp_path, text) == (
        "rules.yaml:9: the forms of `plural` must be in quotes, or they are read as event "
        'fields: `plural: "товар", "товара", "товаров"`'
    )


# ---- `when:` values


def test_a_misspelt_status_in_when(tmp_path: Path) -> None:
    text = VALUES + rule_yaml(when="      order.status: handed_to_courer")
    assert problem(tmp_path, text) == (
        "rules.yaml:10: the condition `order.status: handed_to_courer` names a value no "
        "order.status_changed event has (the values declared at rules.yaml:5: created, "
        "handed_to_courier, delivered); did you mean `handed_to_courier`?"
    )


def test_a_status_with_a_cyrillic_letter_in_when(tmp_path: Path) -> None:
    text = VALUES + rule_yaml(when="      order.status: hаnded_to_courier")
    assert problem(tmp_path, text).endswith(
        ": `hаnded_to_courier` mixes alphabets: «а» (character 2) is a Cyrillic letter among "
        "Latin ones (they look alike); retype it in Latin: `handed_to_courier`"
    )


def test_an_example_outside_the_conditions_names_the_condition(tmp_path: Path) -> None:
    text = rule_yaml(when="      order.status: delivered")
    assert problem(tmp_path, text) == (
        "rules.yaml:12: example 'example 1': this rule's condition `order.status: delivered` "
        "does not hold (the event has `handed_to_courier`)"
    )


def test_a_rule_setting_indented_under_when(tmp_path: Path) -> None:
    text = rule_yaml(when=f"{STATUS}\n      priority: 5")
    assert problem(tmp_path, text) == (
        "rules.yaml:6: `priority` is indented as a condition under `when:`; move it left to "
        "line up with `when:` (it is a setting of the rule)"
    )


# ---- time to live


@pytest.mark.parametrize(
    ("ttl", "push_class", "expected"),
    [
        (
            "0s",
            "transactional",
            "`ttl: 0s` makes every push expire before it can be sent; give how long the push "
            "stays worth sending, e.g. 2h",
        ),
        ("20s", "transactional", "`ttl: 20s` is shorter than a minute"),
        (
            "30d",
            "transactional",
            "`ttl: 30d` is longer than a transactional push stays true: order news that old "
            "misleads (a courier «on the way» days later); give at most 3d",
        ),
        ("14d", "marketing", "`ttl: 14d` is longer than a marketing push stays true"),
    ],
)
def test_absurd_ttls(tmp_path: Path, ttl: str, push_class: str, expected: str) -> None:
    text = rule_yaml(push_class=push_class).replace("ttl: 2h", f"ttl: {ttl}")
    assert problem(tmp_path, text).startswith(f"rules.yaml:7: {expected}")


def test_a_week_for_an_offer_is_fine(tmp_path: Path) -> None:
    loads(tmp_path, rule_yaml(push_class="marketing").replace("ttl: 2h", "ttl: 7d"))


# ---- YAML, translated, on the line to fix


def with_line(number: int, text: str) -> str:
    lines = rule_yaml().splitlines(keepends=True)
    lines[number - 1] = text
    return "".join(lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            with_line(7, "      ttl: 2h\n"),
            "rules.yaml:7: YAML syntax error: `ttl:` is indented more than `class:` on line 6 "
            "(column 7, not 5); keys of one block start in the same column",
        ),
        (
            with_line(6, "   class: transactional\n"),
            "rules.yaml:6: YAML syntax error: `class:` is indented less than `when:` on line 4 "
            "(column 4, not 5); keys of one block start in the same column",
        ),
        (
            rule_yaml(summary="Курьер в пути: скоро будет"),
            "rules.yaml:9: YAML syntax error: a text contains a colon followed by a space; put "
            "the whole text in quotes",
        ),
        (
            rule_yaml(summary='"Скоро будет у вас.'),
            'rules.yaml:9: YAML syntax error: the text of `summary` opens a quote " that is not '
            'closed on this line; end it with "',
        ),
        (
            rule_yaml(expected_deeplink="'imshop://orders/A-1"),
            "rules.yaml:18: YAML syntax error: the text of `deeplink` opens a quote ' that is "
            "not closed on this line; end it with '",
        ),
        (
            with_line(7, "\tttl: 2h\n"),
            "rules.yaml:7: YAML syntax error: the line has a tab; indent and separate with "
            "spaces (YAML does not allow tabs)",
        ),
        (
            rule_yaml() + "   - id: second\n",
            "rules.yaml:19: YAML syntax error: this `-` starts in column 4, but the items of the "
            "list above start in column 3 (line 2); items of one list must line up",
        ),
        (
            rule_yaml(title="{{ order.id }} отправлен"),
            "rules.yaml:8: YAML syntax error: a text that starts with `{{` must be in quotes: "
            '`title: "{{ order.id }} отправлен…"`',
        ),
        (
            with_line(14, "          order: {id: A-1, number: '77', status: handed_to_courier\n"),
            "rules.yaml:14: YAML syntax error: the `{` opened here is not closed with `}`",
        ),
    ],
)
def test_yaml_slips_in_plain_words(tmp_path: Path, text: str, expected: str) -> None:
    assert problem(tmp_path, text) == expected


def test_nested_single_quotes(tmp_path: Path) -> None:
    title = "'Собираем {{ order.items_count | plural: 'товар', 'товара', 'товаров' }}'"
    found = problem(tmp_path, rule_yaml(title=title))
    assert found.startswith(
        "rules.yaml:8: YAML syntax error: the text of `title` starts with ' and has ' inside, "
        "which ends it early"
    )
    assert found.endswith(
        "inside a text in '…' write the inner quotes as \"…\", e.g. "
        '`title: \'… plural: "бонус", "бонуса", "бонусов" …\'`'
    )
