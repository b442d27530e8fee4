"""What goes into the history for a job, and the item's shape for IMSHOP."""

from __future__ import annotations

import datetime as dt

from history_support import entry, job

from consumer.history.entry import MAX_KEY_CHARS, HistoryItem, entry_for
from consumer.push import HistoryText


def test_an_order_push_is_keyed_by_its_collapse_key_and_keeps_its_version() -> None:
    made = entry_for(job("e1", collapse_key="A-1", version=4))

    assert made is not None
    assert (made.user_id, made.key, made.event_id, made.version) == ("u1", "c:A-1", "e1", 4)
    assert made.at_ms == int(dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC).timestamp() * 1000)


def test_a_push_without_a_collapse_key_is_an_item_of_its_own() -> None:
    made = entry_for(job("bonus-7"))

    assert made is not None
    assert made.key == "e:bonus-7"


def test_the_item_shows_what_the_rule_rendered_for_the_history() -> None:
    shown = HistoryText("Заказ отправлен", "Скоро будет", url="https://x", promocode="P1")
    made = entry_for(job("e1", history=shown))

    assert made is not None
    assert (made.title, made.text, made.url, made.deeplink, made.promocode) == (
        "Заказ отправлен",
        "Скоро будет",
        "https://x",
        None,
        "P1",
    )


def test_nothing_is_kept_for_an_opted_out_rule_or_a_customer_without_user_id() -> None:
    assert entry_for(job("e1", history=None)) is None
    assert entry_for(job("e2", user=None, install_id="ed6b1eec-082f-4880")) is None
    assert entry_for(job("e3", user="7" * 257)) is None, "IMSHOP could never ask for it"


def test_only_the_user_id_is_stored_even_when_an_install_id_is_known() -> None:
    made = entry_for(job("e1", user="79991234567", install_id="ed6b1eec-082f-4880"))

    assert made is not None
    assert made.user_id == "79991234567"
    assert "ed6b1eec" not in repr(made)


def test_text_a_database_would_refuse_is_made_storable() -> None:
    made = entry_for(job("e1", history=HistoryText("a\x00b", "c\ud800d")))

    assert made is not None
    assert (made.title, made.text) == ("ab", "c?d")


def test_a_very_long_collapse_key_is_stored_as_its_hash() -> None:
    made = entry_for(job("e1", collapse_key="k" * 1000))
    other = entry_for(job("e2", collapse_key="k" * 999 + "j"))

    assert made is not None
    assert other is not None
    assert made.key.startswith("h:")
    assert len(made.key) <= MAX_KEY_CHARS
    assert made.key != other.key
    assert made.key == (entry_for(job("e3", collapse_key="k" * 1000)) or made).key


def test_the_newer_entry_is_the_higher_version_else_the_later_event() -> None:
    assert entry("a", version=2, at_ms=1).newer_than(entry("b", version=1, at_ms=9))
    assert not entry("a", version=2, at_ms=9).newer_than(entry("b", version=2, at_ms=1))
    assert entry("a", at_ms=9).newer_than(entry("b", version=5, at_ms=1))
    assert entry("b", at_ms=5).newer_than(entry("a", at_ms=5)), "the event id breaks a tie"


def test_the_imshop_shape_camel_cases_deeplink_and_leaves_out_empty_fields() -> None:
    item = HistoryItem(id="7", title="T", created_on=1, updated_on=2, deeplink="imshop://x")

    assert item.imshop() == {
        "id": "7",
        "title": "T",
        "createdOn": 1,
        "updatedOn": 2,
        "deepLink": "imshop://x",
    }
