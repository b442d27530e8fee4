"""The renderer's parts on their own: null stripping, long values cut, one Liquid pass
per rule (and its fallbacks), the text cache, the plain-words explanation."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from liquid.exceptions import LiquidError, UndefinedError

from consumer.mapping.render import (
    LONG_VALUE_CHARS,
    SEPARATOR,
    PartFailed,
    TextPlan,
    build_environment,
    explain,
    render_context,
    shortened,
)
from consumer.mapping.view import without_nulls


def plan(**sources: str) -> TextPlan:
    env = build_environment()
    return TextPlan(env, {key: (src, env.from_string(src)) for key, src in sources.items()})


def test_nulls_leave_at_any_depth_in_dicts_and_lists() -> None:
    data = {"a": None, "b": {"c": None, "d": [1, None, {"e": None}]}, "f": [None, [None]]}

    assert without_nulls(data) == {"b": {"d": [1, {}]}, "f": [[]]}
    assert without_nulls([None, {"a": None, "b": 2}]) == [{"b": 2}]
    assert without_nulls("text") == "text"


def test_texts_longer_than_the_cap_are_cut_at_any_depth() -> None:
    exact, over = "x" * LONG_VALUE_CHARS, "y" * (LONG_VALUE_CHARS + 1)

    cut = shortened({"a": exact, "b": [over, {"c": over}], "n": 5})

    assert cut["a"] == exact
    assert cut["b"][0] == "y" * LONG_VALUE_CHARS + "…"
    assert cut["b"][1]["c"] == "y" * LONG_VALUE_CHARS + "…"
    assert cut["n"] == 5


def test_a_missing_value_is_explained_in_plain_words() -> None:
    missing = UndefinedError("'order.number' is undefined", token=None)
    assert explain(missing) == "the event has no value for `order.number`"
    assert explain(LiquidError("unexpected tag\nat line 2", token=None)) == "unexpected tag"
    assert explain(LiquidError(None, token=None)) == "LiquidError"  # type: ignore[arg-type]


def test_a_failed_part_is_named() -> None:
    failed = PartFailed("summary", LiquidError("boom", token=None))

    assert str(failed) == "summary"
    assert failed.key == "summary"


class CountingRenders:
    """Counts Liquid renders of a plan's combined template."""

    def __init__(self, text_plan: TextPlan) -> None:
        assert text_plan.combined is not None
        self.calls = 0
        render = text_plan.combined.render

        def counted(*args: Any, **kwargs: Any) -> str:
            self.calls += 1
            return render(*args, **kwargs)

        text_plan.combined.render = counted  # type: ignore[method-assign]


def test_texts_rendered_by_liquid_come_from_the_cache_for_the_same_values() -> None:
    liquid = plan(title="{{ name | upcase }}", summary="{% unless n %}no {% endunless %}items")
    assert liquid.functions is None, "`unless` stays on Liquid: the cache serves it"
    renders = CountingRenders(liquid)

    moscow, now = ZoneInfo("Europe/Moscow"), dt.datetime(2026, 11, 22, 9, tzinfo=dt.UTC)

    first = liquid.render(render_context({"name": "anna", "n": 2}, moscow, now))
    again = liquid.render(render_context({"name": "anna", "n": 2}, moscow, now))
    other = liquid.render(render_context({"name": "boris", "n": False}, moscow, now))

    assert first == again == {"title": "ANNA", "summary": "items"}
    assert other == {"title": "BORIS", "summary": "no items"}
    assert renders.calls == 2
    # Without the render time and zone there is no key: nothing is kept or reused.
    assert liquid.render({"name": "vera", "n": 1})["title"] == "VERA"
    assert liquid.render({"name": "gleb", "n": 1})["title"] == "GLEB"
    assert renders.calls == 4


def test_a_value_holding_the_separator_is_rendered_part_by_part() -> None:
    liquid = plan(title="{{ name | upcase }}", summary="{% unless n %}{{ name }}{% endunless %}")

    texts = liquid.render({"name": f"a{SEPARATOR}b", "n": False})

    assert texts == {"title": f"A{SEPARATOR}B", "summary": f"a{SEPARATOR}b"}


def test_a_compiled_rule_falls_back_to_liquid_which_names_the_missing_part() -> None:
    compiled = plan(title="Заказ {{ order.number }}", summary="Статус: {{ order.status }}")
    assert compiled.functions is not None

    assert compiled.render({"order": {"number": "7", "status": "ok"}}) == {
        "title": "Заказ 7",
        "summary": "Статус: ok",
    }
    with pytest.raises(PartFailed) as failed:
        compiled.render({"order": {"number": "7"}})  # compiled code cannot say what is missing

    assert failed.value.key == "summary"
    assert explain(failed.value.cause) == "the event has no value for `order.status`"


def test_constant_parts_are_kept_as_written() -> None:
    mixed = plan(title="  Скидка  ", summary="{{ amount }} ₽")

    assert mixed.render({"amount": 5}) == {"title": "Скидка", "summary": "5 ₽"}
    assert plan(title="Только текст").render({}) == {"title": "Только текст"}


def test_an_unknown_filter_fails_the_render_instead_of_passing_the_value_through() -> None:
    template = build_environment().from_string("{{ name | shout }}")

    with pytest.raises(LiquidError, match="shout"):
        template.render(name="anna")


def test_text_is_never_html_escaped() -> None:
    template = build_environment().from_string("{{ name }}")

    assert template.render(name="<b>Tom & Jerry</b>") == "<b>Tom & Jerry</b>"
