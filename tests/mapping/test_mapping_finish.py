"""What reaches a phone: typography, no control bytes, huge values cut, not refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from mapping_helpers import event, rule_yaml, write

from consumer.errors import RenderError
from consumer.mapping import MappingSet, load_mappings
from consumer.mapping.finish import NBSP, clean, typeset
from consumer.settings import MappingSettings
from consumer.studio.draft import load_draft

ORDER = {"id": "A-1", "status": "handed_to_courier"}


@pytest.fixture
def mappings(tmp_path: Path) -> MappingSet:
    write(
        tmp_path,
        "orders.yaml",
        rule_yaml(
            title="'Заказ № {{ order.number | default: order.id }} отправлен'",
            expected_title="Заказ № 77 отправлен",
        ),
    )
    return load_mappings(tmp_path, MappingSettings())


def title(mappings: MappingSet, **order: object) -> str:
    push = mappings.render(event(order={**ORDER, **order}))
    assert push is not None
    return push.message.title


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Заказ № 10452 оформлен", f"Заказ №{NBSP}10452 оформлен"),
        ("Заказ №   10452", f"Заказ №{NBSP}10452"),
        ("Заказ №10452", "Заказ №10452"),  # nothing is inserted
        ("Пункт выдачи: ул. Ленина, 12..", "Пункт выдачи: ул. Ленина, 12."),
        ("Ждём вас!.", "Ждём вас!"),
        ("Подождите...", "Подождите..."),  # an ellipsis stays
        ("Скоро  будет  у вас .", "Скоро будет у вас."),
        ("Сумма — 5 ₽ , спасибо", "Сумма — 5 ₽, спасибо"),
    ],
)
def test_typeset(text: str, expected: str) -> None:
    assert typeset(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Заказ\x00 10452", "Заказ 10452"),
        ("\x1b[31mЗаказ\x1b[0m готов", "Заказ готов"),
        ("\x1b]0;title\x07Заказ", "Заказ"),
        ("Заказ\x07\x08\x7f готов\x9b", "Заказ готов"),
        ("Заказ\nготов\tк выдаче", "Заказ готов к выдаче"),
        ("Заказ \u202eвотог", "Заказ вотог"),  # no right-to-left override
        ("Заказ готов 👨\u200d👩\u200d👧", "Заказ готов 👨\u200d👩\u200d👧"),  # joiners stay
    ],
)
def test_clean_removes_what_no_phone_can_show(text: str, expected: str) -> None:
    assert clean(text) == expected


def test_the_push_has_a_non_breaking_space_after_the_number_sign(mappings: MappingSet) -> None:
    assert title(mappings, number="10452") == f"Заказ №{NBSP}10452 отправлен"


def test_nul_and_escape_codes_never_reach_a_push(mappings: MappingSet) -> None:
    # Issue 12, item 10: a shop's value with NUL and ANSI codes went into the title as is.
    assert title(mappings, number="10\x00452\x1b[2J") == f"Заказ №{NBSP}10452 отправлен"


def test_a_deeplink_with_control_characters_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "orders.yaml", rule_yaml())
    mappings = load_mappings(tmp_path, MappingSettings())
    order = {**ORDER, "id": "A-1\x00"}
    with pytest.raises(RenderError, match="contains control characters; pass event values"):
        mappings.render(event(order=order))


def test_a_huge_value_is_cut_not_dead_lettered(mappings: MappingSet) -> None:
    # Issue 12, item 10: a 60 KB order number gave render_failed ("output stream
    # limit reached"); long values are meant to be cut, like any long title.
    text = title(mappings, number="7" * 60_000)
    assert len(text) == MappingSettings().title_max_chars
    assert text.startswith(f"Заказ №{NBSP}777")
    assert text.endswith("…")


def test_a_huge_value_in_a_deeplink_still_fails(tmp_path: Path) -> None:
    deeplink = "'imshop://orders/{{ order.id }}{{ order.id }}'"
    write(
        tmp_path,
        "orders.yaml",
        rule_yaml(deeplink=deeplink, expected_deeplink="imshop://orders/A-1A-1"),
    )
    mappings = load_mappings(tmp_path, MappingSettings())
    with pytest.raises(RenderError, match=r"the deeplink cannot be rendered: .*limit"):
        mappings.render(event(order={**ORDER, "id": "x" * 30_000}))


def test_a_runaway_template_is_still_stopped(tmp_path: Path) -> None:
    # Values of ordinary length repeated 900 times: cutting values does not help,
    # and the limit still stops it.
    loop = "'{% for i in (1..900) %}{{ order.id }}{% endfor %}'"
    write(tmp_path, "orders.yaml", rule_yaml(summary=loop))
    mappings = load_draft(tmp_path, MappingSettings()).mappings
    with pytest.raises(RenderError, match="the summary cannot be rendered: output stream limit"):
        mappings.render(event(order={**ORDER, "id": "y" * 100}))
