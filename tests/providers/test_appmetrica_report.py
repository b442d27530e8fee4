"""The push report per rule: sends by the real provider, read back through the simulator's
Reporting API over real HTTP (fake time for the transfers' progress and the quota)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from appmetrica_support import APP_ID, TOKEN, Rig, envelope, job, rig
from pydantic import SecretStr

from consumer.errors import FatalError, SettingsError
from consumer.local.simulators.appmetrica_model import SimulatorConfig
from consumer.local.simulators.appmetrica_state import Faults
from consumer.push import PushClass
from consumer.reports.command import as_json, as_table, fetch
from consumer.settings import AppMetricaSettings

REPORT = "GET /stat/v1/data"
DELIVERED = "orders.yaml:order_delivered"
CANCELLED = "orders.yaml:order_cancelled"
ACCRUED = "bonus.yaml:bonus_accrued"


@pytest.fixture
async def am() -> AsyncIterator[Rig]:
    config = SimulatorConfig(token=TOKEN, status_step_s=1.0, received_share=0.5, opened_share=0.5)
    async with rig(config=config) as made:
        yield made


def settings(am: Rig, **overrides: Any) -> AppMetricaSettings:
    values: dict[str, Any] = {
        "report_url": am.sim.base_url,
        "token": SecretStr(TOKEN),
        "app_id": APP_ID,
    }
    return AppMetricaSettings(**(values | overrides))


async def send_rules(am: Rig) -> None:
    """Three rules of both classes: delivered in two requests (4 and 2 devices),
    cancelled in one (2), a bonus rule in one (3), each device once."""
    provider = am.provider()
    await provider.start()

    def jobs(rule: str, first: int, count: int, push_class: PushClass) -> list[Any]:
        return [
            job(f"e{n}", [("android_push_token", f"a{n}")], rule=rule, push_class=push_class)
            for n in range(first, first + count)
        ]

    transactional, marketing = PushClass.TRANSACTIONAL, PushClass.MARKETING
    for batch in (
        jobs(DELIVERED, 0, 4, transactional),
        jobs(DELIVERED, 4, 2, transactional),
        jobs(CANCELLED, 6, 2, transactional),
        jobs(ACCRUED, 8, 3, marketing),
    ):
        await provider.send([envelope(provider, *batch)])
    await am.advance(2.0)  # the transfers are `sent`, so the report counts them


async def test_after_sends_of_several_rules_the_report_has_a_row_per_rule(am: Rig) -> None:
    await send_rules(am)
    theirs = am.sim.state.create_group({"group": {"app_id": APP_ID, "name": "web campaign"}})
    am.sim.state.accept_batch(
        {
            "push_batch_request": {
                "group_id": theirs.id,
                "tag": "sale",
                "batch": [
                    {
                        "messages": {"android": {"content": {"title": "t", "text": "x"}}},
                        "devices": [{"id_type": "android_push_token", "id_values": ["z"]}],
                    }
                ],
            }
        }
    )
    await am.advance(2.0)

    report = await fetch(settings(am), "today", "today", clock=am.clock, http=am.http)

    rows = [(r.rule, r.push_class, r.sent, r.received, r.opened, r.transfers) for r in report.rows]
    assert rows == [
        (CANCELLED, "transactional", 2, 1, 1, 1),
        (DELIVERED, "transactional", 6, 3, 2, 2),  # 4 -> 2 -> 1 and 2 -> 1 -> 1
        (ACCRUED, "marketing", 3, 2, 1, 1),
    ]  # the web campaign's group is not this service's: left out
    total = report.total()
    assert (total.sent, total.transfers) == (11, 4)
    assert report.requests == 1
    assert am.calls(REPORT) == 1


async def test_the_report_renders_as_a_table_and_as_json(am: Rig) -> None:
    await send_rules(am)
    report = await fetch(settings(am), "1daysAgo", "today", clock=am.clock, http=am.http)

    table = as_table(report).splitlines()
    assert table[0].startswith(f"AppMetrica push report, app {APP_ID}, ")
    assert table[1].split() == [
        "rule",
        "class",
        "sent",
        "received",
        "opened",
        "open",
        "rate",
        "transfers",
    ]
    assert table[3].split() == [DELIVERED, "transactional", "6", "3", "2", "33.3%", "2"]
    assert table[-1].split() == ["total", "11", "6", "4", "36.4%", "4"]
    shown = as_json(report)
    assert '"rule": "orders.yaml:order_delivered"' in shown
    assert '"open_rate": 0.3333' in shown
    assert '"requests": 1' in shown


async def test_a_rule_can_be_asked_for_with_or_without_its_file(am: Rig) -> None:
    await send_rules(am)
    short = await fetch(settings(am), "today", "today", "order_delivered", http=am.http)
    full = await fetch(settings(am), "today", "today", DELIVERED, http=am.http)
    assert [r.rule for r in short.rows] == [r.rule for r in full.rows] == [DELIVERED]


async def test_a_long_report_is_read_page_by_page_within_the_per_second_quota(am: Rig) -> None:
    await send_rules(am)
    am.sim.state.config = SimulatorConfig(token=TOKEN, requests_per_s=1)  # the Reporting API's

    pulling = asyncio.create_task(
        fetch(
            settings(am, report_requests_per_s=1),
            "today",
            "today",
            clock=am.clock,
            http=am.http,
            page_rows=1,
        )
    )
    await am.quiet()
    asked = [am.calls(REPORT)]
    for _ in range(4):
        await am.advance(1.0)
        asked.append(am.calls(REPORT))
    report = await pulling

    assert asked == [1, 2, 3, 4, 4]  # four rows, a page each, one a second
    assert report.requests == 4
    assert [r.transfers for r in report.rows] == [1, 2, 1]
    assert am.sim.state.quota_violations == 0


@pytest.mark.parametrize(
    ("case", "error", "words"),
    [
        ("bad token", SettingsError, "refused the OAuth token (401 unauthorized"),
        (
            "unknown app",
            SettingsError,
            "no application 4242 this token may read (403 access_denied",
        ),
        ("daily quota", FatalError, "quota is used up (429 quota: more than 1 Reporting API"),
        ("420", FatalError, "quota is used up (420 quota: injected 420)"),
    ],
)
async def test_a_refusal_is_one_clear_line(
    am: Rig, case: str, error: type[Exception], words: str
) -> None:
    await send_rules(am)
    config = {"token": SecretStr("expired")} if case == "bad token" else {}
    if case == "unknown app":
        config = {"app_id": 4242}
    if case == "daily quota":
        am.sim.state.config = SimulatorConfig(token=TOKEN, report_requests_per_day=1)
        await fetch(settings(am), "today", "today", http=am.http)
    if case == "420":
        am.sim.set_faults(Faults(scope="all", error_status=420, error_count=1))

    with pytest.raises(error) as caught:
        await fetch(settings(am, **config), "today", "today", http=am.http)

    message = str(caught.value)
    assert words in message
    assert "\n" not in message
    expected = {
        "bad token": "APPMETRICA_TOKEN",
        "unknown app": "APPMETRICA_APP_ID",
        "daily quota": "5,000 a day per login",
        "420": "requests made by this run: 1",
    }
    assert expected[case] in message


async def test_an_unreachable_reporting_api_names_its_setting(am: Rig) -> None:
    with pytest.raises(FatalError, match=r"did not answer.*APPMETRICA_REPORT_URL"):
        await fetch(settings(am, report_url="http://127.0.0.1:9"), "today", "today", http=am.http)
