"""A draft: every rule that can be read, the check's own problems, each placed in its rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from studio_support import FIXTURE, SHIPPED, edit

from consumer.errors import MappingLoadError
from consumer.mapping import load_mappings
from consumer.push import Message
from consumer.settings import ImshopSettings, MappingSettings
from consumer.studio.draft import Problem, load_draft
from consumer.studio.outcome import Renderer, cost_of, quiet_hours, variants

SETTINGS = MappingSettings()
IMSHOP = ImshopSettings()


def check_problems(directory: Path) -> list[str]:
    with pytest.raises(MappingLoadError) as caught:
        load_mappings(directory, SETTINGS)
    return caught.value.problems


def test_the_shipped_mappings_are_a_clean_draft_of_every_rule() -> None:
    draft = load_draft(SHIPPED, SETTINGS)
    assert draft.ok
    assert [r.rule_id for r in draft.rules] == [
        r.rule_id for r in load_mappings(SHIPPED, SETTINGS).rules
    ]


def test_the_problems_are_the_checks_own_and_each_sits_in_its_rule(mappings: Path) -> None:
    orders = mappings / "orders.yaml"
    line = edit(
        orders,
        "{{ order.total | money }}.{% endif %}\n      Сообщим",
        "{{ order.total | mony }}.{% endif %}\n      Сообщим",
    )
    draft = load_draft(mappings, SETTINGS)
    assert [str(p) for p in draft.problems] == check_problems(mappings)
    (problem,) = draft.problems
    assert problem.file == str(orders)
    assert "unknown filter `mony`" in problem.text
    assert problem.line == line - 1  # the check names the line of `summary:`
    created = next(r for r in draft.rules if r.id == "order_created")
    assert draft.problems_of(created) == [problem]
    assert all(not draft.problems_of(r) for r in draft.rules if r is not created)
    assert draft.loose_problems() == []
    assert len(draft.rules) == len(load_draft(FIXTURE, SETTINGS).rules)  # all still shown


def test_a_rule_that_cannot_be_read_keeps_its_problem_off_its_neighbour(mappings: Path) -> None:
    orders = mappings / "orders.yaml"
    line = edit(orders, "    ttl: 6h\n", "    ttl: six hours\n")
    draft = load_draft(mappings, SETTINGS)
    assert [r.id for r in draft.rules if r.file_name == "orders.yaml"] == [
        "order_created",
        "order_with_courier",
        "order_shipped",
    ]
    (problem,) = draft.problems
    assert problem.where == f"{orders}:{line}"
    assert problem in draft.loose_problems()
    assert all(problem not in draft.problems_of(r) for r in draft.rules)


def test_a_file_with_a_yaml_error_keeps_its_last_cards_marked_stale(mappings: Path) -> None:
    bonus = mappings / "bonus.yaml"
    good = load_draft(mappings, SETTINGS)
    edit(
        bonus,
        "    class: marketing\n    ttl: 1d\n    title: 'Начислили",
        "    class: marketing\n  ttl: 1d\n    title: 'Начислили",
    )
    broken = load_draft(mappings, SETTINGS, previous=good)
    assert broken.stale_files == {"bonus.yaml"}
    assert [r.rule_id for r in broken.rules if r.file_name == "bonus.yaml"] == [
        r.rule_id for r in good.rules if r.file_name == "bonus.yaml"
    ]
    assert [str(p) for p in broken.problems] == check_problems(mappings)
    assert all(p.file == str(bonus) for p in broken.loose_problems())
    assert load_draft(mappings, SETTINGS).stale_files == frozenset()  # no previous: nothing kept


def test_an_example_that_no_longer_matches_is_still_rendered(mappings: Path) -> None:
    orders = mappings / "orders.yaml"
    edit(orders, "          title: Заказ №10452 оформлен", "          title: Заказ №10452 создан")
    draft = load_draft(mappings, SETTINGS)
    (problem,) = draft.problems
    assert "the title is «Заказ №10452 оформлен», expected «Заказ №10452 создан»" in problem.text
    rule = next(r for r in draft.rules if r.id == "order_created")
    outcome = Renderer(draft.mappings, SETTINGS).example(rule, rule.examples[0])
    assert outcome.personal is not None
    assert outcome.personal.message.title == "Заказ №10452 оформлен"


def test_a_missing_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    draft = load_draft(tmp_path / "nowhere", SETTINGS)
    assert draft.rules == ()
    assert draft.problems == [
        Problem(str(tmp_path / "nowhere"), 1, "the mappings directory does not exist")
    ]


def test_a_shared_variant_and_quiet_hours_are_shown_when_a_rule_has_them(mappings: Path) -> None:
    orders = mappings / "orders.yaml"
    edit(
        orders,
        '    deeplink: "imshop://orders/{{ order.id | url_encode }}"\n    examples:\n'
        "      - name: with number and total\n",
        '    deeplink: "imshop://orders/{{ order.id | url_encode }}"\n'
        "    shared:\n"
        "      title: Ваш заказ оформлен\n"
        "      summary: Подробности — в уведомлениях.\n"
        "      deeplink: imshop://orders\n"
        "    examples:\n"
        "      - name: with number and total\n"
        "        shared:\n"
        "          title: Ваш заказ оформлен\n"
        "          summary: Подробности — в уведомлениях.\n"
        "          deeplink: imshop://orders\n",
    )
    draft = load_draft(mappings, SETTINGS)
    assert draft.ok, draft.problems
    rule = next(r for r in draft.rules if r.id == "order_created")
    plain = next(r for r in draft.rules if r.id == "order_confirmed")
    accrued = next(r for r in draft.rules if r.id == "bonus_accrued")
    assert [v.name for v in variants(plain, SETTINGS)] == ["personal"]
    assert (quiet_hours(plain), quiet_hours(accrued)) == (None, "22:00–09:00")
    personal, shared_variant = variants(rule, SETTINGS)
    assert (
        cost_of(personal.rule, IMSHOP)["tier"],
        cost_of(shared_variant.rule, IMSHOP)["tier"],
    ) == (
        "personal",
        "shared",
    )
    outcome = Renderer(draft.mappings, SETTINGS).example(rule, rule.examples[0])
    texts = {p.variant: p.push.message if p.push else p.error for p in outcome.pushes}
    assert texts == {
        "personal": Message(
            "Заказ №10452 оформлен",
            "Спасибо за покупку! Сумма заказа — 4\xa0990\xa0₽. Сообщим, когда заказ подтвердят.",
            "imshop://orders/8f3a1c",
        ),
        "shared": Message("Ваш заказ оформлен", "Подробности — в уведомлениях.", "imshop://orders"),
    }


def test_a_record_nested_too_deeply_is_an_invalid_event_not_a_crash() -> None:
    draft = load_draft(FIXTURE, SETTINGS)
    deep = '{"event_type": "bonus.accrued", "x": ' + "[" * 30_000 + "]" * 30_000 + "}"
    outcome = Renderer(draft.mappings, SETTINGS).raw(deep.encode(), max_bytes=100_000)
    assert outcome.invalid is not None
    assert "nested more than 200 levels deep" in outcome.invalid


def test_an_event_is_matched_at_its_own_moment_too() -> None:
    # The shipped bonus_expiring rule has `bonus.expires_at: {after: now}`: an event
    # from 25 November about points burning on the 26th takes it whatever today is.
    draft = load_draft(SHIPPED, SETTINGS)
    document = {
        "event_type": "bonus.expiring",
        "occurred_at": "2026-11-25T12:00:00+03:00",
        "recipient": {"user_id": "u-1"},
        "event_id": "e-1",
        "bonus": {"amount": 21, "expires_at": "2026-11-26T00:00:00+03:00"},
    }
    outcome = Renderer(draft.mappings, SETTINGS).event(document)
    assert outcome.rule is not None
    assert outcome.rule.id == "bonus_expiring"
    later = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    assert Renderer(draft.mappings, SETTINGS).event(document, now=later).rule is None
