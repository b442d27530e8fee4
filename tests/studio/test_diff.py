"""``mappings diff``: the shipped mappings (a git ref or a directory) against the edited ones."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from studio_support import FIXTURE, edit

from consumer.cli import main

NBSP = "\u00a0"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Product",
    "GIT_AUTHOR_EMAIL": "product@example.com",
    "GIT_COMMITTER_NAME": "Product",
    "GIT_COMMITTER_EMAIL": "product@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_SYSTEM": "/dev/null",
    "PATH": "/usr/bin:/bin",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose `main` ships the studio tests' mappings in `mappings/`."""
    root = tmp_path / "shop"
    shutil.copytree(FIXTURE, root / "mappings")
    git(root, "init", "--quiet", "--initial-branch", "main")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "ship the mappings")
    return root


def diff(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["mappings", "diff", *args])
    return code, capsys.readouterr().out


def diff_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    code, out = diff(capsys, "--json", *args)
    assert code in (0, 1)
    document: dict[str, object] = json.loads(out)
    return document


def test_nothing_edited_means_no_changes(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = diff(capsys, "--against", "main", str(repo / "mappings"))
    assert code == 0
    assert "Shipped: main:mappings: 6 rules, passes the check" in out
    assert "Events:  the rules' examples (8)" in out
    assert "No push changes." in out
    assert "Unchanged: 8 of 8 events give the same push (or none) as before." in out
    assert "every rule costs what it cost before" in out


def test_changed_texts_are_listed_before_and_after(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = repo / "mappings" / "orders.yaml"
    edit(
        orders,
        "summary: Начинаем собирать ваш заказ.\n    deeplink",
        "summary: Начинаем собирать ваш заказ. Спасибо!\n    deeplink",
    )
    code, out = diff(capsys, "--against", "main", str(repo / "mappings"))
    assert code == 0
    assert "does not pass the check (1 problem(s)" in out  # its example still says the old text
    assert "Pushes that change (1)" in out
    block = out.split("Pushes that change (1)\n", 1)[1].split("\n\n", 1)[0]
    assert block.splitlines() == [
        f'  1. order_confirmed, example "example 1" ({orders}:47)',
        "       summary      «Начинаем собирать ваш заказ.»",
        "                →   «Начинаем собирать ваш заказ. Спасибо!»",
    ]
    assert "Unchanged: 7 of 8 events" in out


def test_a_change_of_spaces_alone_is_made_visible(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = repo / "mappings" / "orders.yaml"
    edit(
        orders,
        'title: "Заказ №{{ order.number | default: order.id }} подтверждён"',
        f'title: "Заказ №{NBSP}{{{{ order.number | default: order.id }}}} подтверждён"',
    )
    _, out = diff(capsys, "--against", "main", str(repo / "mappings"))
    assert "«Заказ №10452 подтверждён»\n                →   «Заказ №°10452 подтверждён»" in out
    assert out.rstrip().endswith("° marks a non-breaking space, where an edit adds or removes one.")


def test_a_new_failure_is_reported_and_fails_the_command(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = repo / "mappings" / "orders.yaml"
    edit(
        orders,
        "summary: Начинаем собирать ваш заказ.\n    deeplink",
        "summary: Начинаем собирать {{ order.items_count }} товаров.\n    deeplink",
    )
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            json.dumps(e, ensure_ascii=False)
            for e in (
                {
                    "event_type": "order.status_changed",
                    "order": {"id": "A1", "status": "confirmed"},
                },
                {
                    "event_type": "order.status_changed",
                    "order": {"id": "A2", "status": "confirmed", "items_count": 3},
                },
                {"event_type": "bonus.accrued", "bonus": {"amount": 7}},
            )
        )
        + "\nnot json\n",
        encoding="utf-8",
    )
    code, out = diff(capsys, "--against", "main", "--events", str(events), str(repo / "mappings"))
    assert code == 1
    assert f"Events:  {events} (4 events)" in out
    failures = out.split("New failures: the service would dead-letter these events (1)\n")[1]
    lines = failures.split("\n\n", 1)[0].splitlines()
    assert lines[0] == f"  1. {events}:1"
    assert lines[1].startswith(f"       now:    {orders}:")
    assert "the event has no value for `order.items_count`" in lines[1]
    before = "«Заказ №A1 подтверждён» / «Начинаем собирать ваш заказ.» (rule order_confirmed)"
    assert lines[2] == f"       before: {before}"
    assert "Pushes that change (1)" in out  # A2 renders, with the count
    assert "Still failing (1)" in out  # the line that is not JSON
    assert f"  1. {events}:4\n       now:    the event is not valid: not JSON" in out


def test_json_output_for_tools(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bonus = repo / "mappings" / "bonus.yaml"
    edit(bonus, "    class: marketing\n    ttl: 12h\n", "    class: marketing\n    ttl: 6h\n")
    report = diff_json(capsys, "--against", "HEAD", str(repo / "mappings"))
    assert report["shipped"] == {"mappings": "HEAD:mappings", "rules": 6, "problems": []}
    changed = report["changed"]
    assert isinstance(changed, list)
    assert [c["event"] for c in changed] == [
        f'bonus_expiring, example "the day after tomorrow" ({bonus}:37)'
    ]
    assert changed[0]["before"]["ttl_s"] == 43200
    assert changed[0]["after"]["ttl_s"] == 21600
    assert report["unchanged"] == 7


def test_a_rule_removed_and_the_cost_it_changes(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orders = repo / "mappings" / "orders.yaml"
    text = orders.read_text(encoding="utf-8")
    start = text.index("  # Both match a courier hand-over")
    end = text.index("  - id: order_shipped")
    orders.write_text(text[:start] + text[end:], encoding="utf-8")
    bonus = repo / "mappings" / "bonus.yaml"
    lines = bonus.read_text(encoding="utf-8").splitlines(keepends=True)
    (index,) = [i for i, line in enumerate(lines) if "{% if bonus.balance %}" in line]
    lines[index] = "      Бонусами можно оплатить часть покупки.\n"  # no balance: grouped
    bonus.write_text("".join(lines), encoding="utf-8")
    code, out = diff(capsys, "--against", "main", str(repo / "mappings"))
    assert code == 0
    assert "Pushes that change (2)" in out  # the courier example now gets order_shipped
    assert "rule         «order_with_courier»\n                →   «order_shipped»" in out
    cost = out.split("\nCost\n", 1)[1]
    assert "  bonus_accrued: personal → grouped" in cost
    assert "  order_with_courier: removed (it was personal text (" in cost
    assert "these events' pushes take 8 provider request(s) before and 7 after" in cost


def test_against_a_directory(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = tmp_path / "shipped"
    shutil.copytree(repo / "mappings", shipped)
    edit(
        repo / "mappings" / "orders.yaml",
        "    summary: Следите за посылкой в приложении.\n    deeplink",
        "    summary: Следите за посылкой.\n    deeplink",
    )
    code, out = diff(capsys, "--against", str(shipped), str(repo / "mappings"))
    assert code == 0
    assert f"Shipped: {shipped}: 6 rules, passes the check" in out
    assert "Pushes that change (1)\n  1. order_shipped, example" in out
    assert "«Следите за посылкой в приложении.»\n                →   «Следите за посылкой.»" in out


def test_a_ref_that_does_not_exist_says_so(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["mappings", "diff", "--against", "no-such-branch", str(repo / "mappings")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--against no-such-branch: no such directory, and not a commit, branch or tag" in err


def test_a_ref_without_the_directory_says_so(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "other").mkdir()
    shutil.copytree(FIXTURE, repo / "other" / "mappings")
    code = main(["mappings", "diff", "--against", "main", str(repo / "other" / "mappings")])
    assert code == 2
    assert "other/mappings/ did not exist at main" in capsys.readouterr().err
