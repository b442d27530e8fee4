"""`mappings render`: sample events (a file, JSON Lines, stdin) or a rule's examples, on drafts."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from mapping_helpers import event, rule_yaml, write

from consumer.cli import main
from consumer.mapping.filters import NBSP
from consumer.studio.trial import read_events

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"
NOW = "2026-11-25T12:00:00+03:00"


def events_file(tmp_path: Path, *events: dict[str, Any], lines: bool = False) -> Path:
    path = tmp_path / ("events.jsonl" if lines else "event.json")
    text = "\n".join(json.dumps(e, ensure_ascii=False) for e in events)
    path.write_text(text if lines else json.dumps(events[0], ensure_ascii=False), encoding="utf-8")
    return path


def render(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["mappings", "render", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def render_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    code, out, _ = render(capsys, "--json", *args)
    return code, [json.loads(line) for line in out.splitlines()]


def test_one_event_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    order = {"id": "X9", "number": "5", "status": "delivered"}
    path = events_file(tmp_path, event(order=order).model_dump(mode="json"))
    code, [shown] = render_json(capsys, "--event", str(path), str(SHIPPED))
    assert code == 0
    assert shown["rule"] == "orders.yaml:order_delivered"
    assert shown["push"]["title"] == f"Заказ №{NBSP}5 получен"
    assert shown["push"]["ttl_s"] == 86400
    assert shown["lengths"]["title"] == [17, 65]
    assert shown["filled"] == []


def test_no_match_names_the_condition_each_rule_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = events_file(
        tmp_path, {"event_type": "order.status_changed", "order": {"id": "X9", "status": "lost"}}
    )
    code, [shown] = render_json(capsys, "--event", str(path), str(SHIPPED))
    assert code == 1
    assert shown["rule"] is None
    assert shown["reason"].startswith("no order.status_changed rule matches the event:\n")
    assert "- order_delivered (" in shown["reason"]
    assert "`order.status: delivered`, the event has `lost`" in shown["reason"]


def test_json_lines_with_the_preview_fields_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = events_file(
        tmp_path,
        {
            "event_type": "order.status_changed",
            "order": {"id": "A", "number": "7", "status": "created"},
        },
        {"event_type": "bonus.accrued", "bonus": {"amount": 150}},
        lines=True,
    )
    code, shown = render_json(capsys, "--event", str(path), "--now", NOW, str(SHIPPED))
    assert code == 0
    assert [s["source"] for s in shown] == [f"{path}:1", f"{path}:2"]
    assert [s["rule"] for s in shown] == ["orders.yaml:order_created", "bonus.yaml:bonus_accrued"]
    assert shown[0]["filled"] == ["event_id", "occurred_at", "recipient"]
    assert shown[1]["push"]["title"] == f"Начислили 150{NBSP}бонусов"


def test_events_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    line = json.dumps({"event_type": "bonus.redeemed", "bonus": {"amount": 2}})
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(f"{line}\n{line}\n".encode())))
    code, shown = render_json(capsys, "--event", "-", str(SHIPPED))
    assert code == 0
    assert [s["source"] for s in shown] == ["stdin:1", "stdin:2"]
    assert shown[0]["push"]["title"] == f"Списали 2{NBSP}бонуса"


def test_text_shows_lengths_and_marks_non_breaking_spaces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order = {
        "id": "A",
        "number": "10452",
        "status": "created",
        "total": {"amount": "4990", "currency": "RUB"},
    }
    path = events_file(tmp_path, {"event_type": "order.status_changed", "order": order})
    code, out, _ = render(capsys, "--event", str(path), "--now", NOW, str(SHIPPED))
    assert code == 0
    assert "  title    Заказ №°10452 оформлен  (22/65)\n" in out
    assert "Сумма заказа — 4°990°₽." in out
    assert "(° marks a non-breaking space)" in out
    assert f"at {NOW}; filled in for the preview: event_id, occurred_at, recipient" in out


def test_an_overlong_title_shows_what_a_phone_gets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order = {"id": "A", "number": "1" * 70, "status": "created"}
    path = events_file(tmp_path, {"event_type": "order.status_changed", "order": order})
    _, out, _ = render(capsys, "--event", str(path), str(SHIPPED))
    assert "(87/65)" in out
    assert "a phone gets «Заказ №°111" in out


def test_the_moment_is_now_else_occurred_at(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bonus = {"amount": 21, "expires_at": "2026-11-26T18:00:00+03:00"}
    sample = {"event_type": "bonus.expiring", "occurred_at": NOW, "bonus": bonus}
    path = events_file(tmp_path, sample)
    _, [at_event] = render_json(capsys, "--event", str(path), str(SHIPPED))
    assert at_event["now"] == NOW
    assert at_event["push"]["summary"].startswith("Завтра в 18:00")
    _, [asked] = render_json(
        capsys, "--event", str(path), "--now", "2026-11-26T09:00:00+03:00", str(SHIPPED)
    )
    assert asked["push"]["summary"].startswith("Сегодня в 18:00")


def test_warns_when_the_push_would_have_expired(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = {
        "event_type": "order.status_changed",
        "occurred_at": "2026-11-20T10:00:00+03:00",
        "order": {"id": "A", "number": "1", "status": "delivered"},
    }
    path = events_file(tmp_path, sample)
    _, [shown] = render_json(capsys, "--event", str(path), "--now", NOW, str(SHIPPED))
    assert shown["warnings"] == [
        "the event occurred at 2026-11-20 10:00 Europe/Moscow; with `ttl: 1d` its push expired "
        "at 2026-11-21 10:00 Europe/Moscow, before now (2026-11-25 12:00 Europe/Moscow): the "
        "service would drop it as expired, not send it"
    ]


def test_warns_when_the_push_speaks_of_a_past_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = (
        "'{% if order.delivery.date %}Доставим {{ order.delivery.date | date_ru }}.{% endif %}'"
    )
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    write(mappings, "orders.yaml", rule_yaml(summary=summary))
    sample = {
        "event_type": "order.status_changed",
        "order": {"id": "A", "status": "handed_to_courier", "delivery": {"date": "2026-11-24"}},
    }
    path = events_file(tmp_path, sample)
    _, [shown] = render_json(capsys, "--event", str(path), "--now", NOW, str(mappings))
    assert shown["push"]["summary"] == "Доставим 24 ноября."
    assert shown["warnings"] == [
        "`order.delivery.date` (2026-11-24) is already past at now (2026-11-25 12:00 "
        "Europe/Moscow): the push speaks of a time gone by"
    ]


def test_a_draft_renders_and_says_what_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The rule's own example expects another title, and another file does not parse:
    # the check refuses the set, but the rule still renders for a look.
    write(tmp_path, "orders.yaml", rule_yaml(expected_title="Заказ №78 отправлен"))
    write(tmp_path, "broken.yaml", "rules:\n  - id: [\n")
    code, out, err = render(capsys, "--rule", "order_shipped", str(tmp_path))
    assert code == 1
    assert "the mappings in" in err
    assert "have 2 problem(s)" in err
    assert "  title    Заказ №77 отправлен  (19/65)\n" in out
    assert (
        "  differs: example 'example 1': the title is «Заказ №77 отправлен», expected "
        "«Заказ №78 отправлен»" in out
    )


def test_a_rule_with_a_problem_still_renders_an_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "orders.yaml", rule_yaml(summary="'Заказ {{ order.number }} в пути'"))
    order = {"id": "A", "number": "9", "status": "handed_to_courier"}
    path = events_file(tmp_path, {"event_type": "order.status_changed", "order": order})
    code, [shown] = render_json(capsys, "--event", str(path), str(tmp_path))
    assert code == 0
    assert shown["push"]["summary"] == "Заказ 9 в пути"
    assert len(shown["rule_problems"]) == 1
    assert "the summary shows `order.number`, but some" in shown["rule_problems"][0]


def test_a_rule_id_used_twice_renders_the_first_rule_with_its_own_texts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The draft's set held both rules, and a set renders by rule id: the event the
    # first rule matched came out with the second rule's texts.
    delivered = rule_yaml(
        when="      order.status: delivered",
        title="'Заказ получен'",
        example_event="          order: {id: A-1, number: '77', status: delivered}",
        expected_title="Заказ получен",
    )
    write(tmp_path, "orders.yaml", rule_yaml() + delivered.split("rules:\n")[1])
    order = {"id": "A", "number": "9", "status": "handed_to_courier"}
    path = events_file(tmp_path, {"event_type": "order.status_changed", "order": order})
    _, [shown] = render_json(capsys, "--event", str(path), str(tmp_path))
    assert shown["rule"] == "orders.yaml:order_shipped"
    assert shown["push"]["title"] == "Заказ №9 отправлен"
    assert shown["rule_problems"] == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--rule", "nope"], "--rule nope: no such rule (rules: bonus_accrued, "),
        (["--event", "missing.json"], "cannot read missing.json"),
        (["--rule", "order_created", "--now", "tomorrow"], "--now 'tomorrow' is not a time"),
    ],
)
def test_clear_errors(capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    code, _, err = render(capsys, *args, str(SHIPPED))
    assert code == 1
    assert expected in err


def test_every_shipped_example_speaks_of_no_past_time(capsys: pytest.CaptureFixture[str]) -> None:
    for rule in [
        "order_ready_until",
        "order_courier_arriving",
        "order_shipped_by_date",
        "bonus_expiring",
    ]:
        _, shown = render_json(capsys, "--rule", rule, str(SHIPPED))
        assert all(s["warnings"] == [] and s["differences"] == [] for s in shown), shown


def test_an_event_nested_too_deeply_is_an_answer_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The standard JSON decoder recursed until Python gave up: a traceback, no answer.
    path = tmp_path / "deep.json"
    path.write_text('{"event_type": "bonus.accrued", "x": ' + "[" * 30_000 + "]" * 30_000 + "}")
    code, [shown] = render_json(capsys, "--event", str(path), str(SHIPPED))
    assert code == 1
    assert shown["source"] == f"{path}:1"
    assert shown["error"].startswith("not JSON: ")


def test_a_json_list_is_read_item_by_item() -> None:
    data = json.dumps([{"event_type": "bonus.accrued"}, 5]).encode()
    assert list(read_events(data, "list.json")) == [
        ("list.json #1", {"event_type": "bonus.accrued"}),
        ("list.json #2", "not a JSON object"),
    ]
