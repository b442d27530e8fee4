"""The lock-screen model: where a phone cuts a push; it never splits a non-breaking space."""

from __future__ import annotations

from consumer.studio.phone import (
    ANDROID_COLLAPSED,
    IOS_LOCK_SCREEN,
    Block,
    fit,
    lock_screens,
    wrap,
)

NBSP = "\u00a0"


def test_a_short_push_is_shown_whole() -> None:
    shown = fit("Заказ №10452 оформлен", IOS_LOCK_SCREEN.title)
    assert shown.lines == ("Заказ №10452 оформлен",)
    assert not shown.cut


def test_an_ios_title_keeps_one_line_and_ends_in_an_ellipsis() -> None:
    title = "Курьер везёт заказ №10452 по адресу ул. Ленина, 12"
    shown = fit(title, IOS_LOCK_SCREEN.title)
    assert shown.cut
    assert shown.lines == ("Курьер везёт заказ №10452 по адрес…",)
    assert len(shown.lines[0]) == IOS_LOCK_SCREEN.title.chars_per_line


def test_the_ios_body_shows_four_lines_and_cuts_the_fourth() -> None:
    summary = " ".join(["слово"] * 40)  # 239 characters, ~6 lines of 40
    shown = fit(summary, IOS_LOCK_SCREEN.body)
    assert shown.cut
    assert len(shown.lines) == 4
    assert shown.lines[-1].endswith("…")
    assert all(len(line) <= 40 for line in shown.lines)


def test_android_collapsed_shows_one_line_of_text() -> None:
    summary = "Привезём завтра с 10:00 до 14:00. Будьте на связи."
    shown = fit(summary, ANDROID_COLLAPSED.body)
    assert shown.cut
    assert shown.lines == ("Привезём завтра с 10:00 до 14:00. Будьте на связ…",)


def test_lines_break_at_spaces_but_never_at_a_non_breaking_one() -> None:
    text = f"К оплате при получении: 4{NBSP}990{NBSP}₽ наличными"
    lines = wrap(text, 27)
    assert lines == ["К оплате при получении:", f"4{NBSP}990{NBSP}₽ наличными"]
    assert all(not line.endswith(f"4{NBSP}") for line in wrap(text, 25))


def test_a_word_wider_than_the_line_is_split() -> None:
    assert wrap("a" * 90, 40) == ["a" * 40, "a" * 40, "a" * 10]


def test_text_that_fills_its_lines_exactly_is_not_cut() -> None:
    shown = fit("one two three", Block(lines=2, chars_per_line=9))
    assert shown.lines == ("one two", "three")
    assert not shown.cut


def test_the_last_line_fills_to_its_width_then_cuts_mid_word() -> None:
    # As a phone's tail truncation does: not at the last whole word.
    shown = fit("one two three four", Block(lines=2, chars_per_line=9))
    assert shown.lines == ("one two", "three fo…")
    assert shown.cut


def test_every_screen_is_given_for_a_push() -> None:
    screens = lock_screens("Заказ №1 оформлен", "Спасибо за покупку!")
    assert set(screens) == {"ios", "android", "android_expanded"}
    assert screens["ios"]["title"] == {"lines": ["Заказ №1 оформлен"], "cut": False, "length": 17}
