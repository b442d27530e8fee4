"""``python -m consumer appmetrica report`` as a user runs it, against the simulator over HTTP."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from consumer.local.simulators.appmetrica import AppMetricaSimulator
from consumer.local.simulators.appmetrica_model import SimulatorConfig
from consumer.reports.command import report_day

TOKEN = "report-token"
APP_ID = 4242


class Time:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def sim() -> AsyncIterator[AppMetricaSimulator]:
    time = Time()
    config = SimulatorConfig(token=TOKEN, status_step_s=1.0, received_share=1.0, opened_share=0.5)
    async with AppMetricaSimulator(config, clock=time) as simulator:
        groups = {
            name: simulator.state.create_group({"group": {"app_id": APP_ID, "name": name}}).id
            for name in ("order-push-transactional", "order-push-marketing")
        }
        for group, tag, devices in [
            ("order-push-transactional", "orders.yaml:order_delivered", ["a1", "a2", "a3"]),
            ("order-push-transactional", "orders.yaml:order_delivered", ["a4"]),
            ("order-push-marketing", "bonus.yaml:bonus_accrued", ["b1", "b2"]),
        ]:
            simulator.state.accept_batch(batch(groups[group], tag, devices))
        time.now += 2.0  # sent
        yield simulator


def batch(group_id: int, tag: str, devices: list[str]) -> dict[str, Any]:
    message = {"content": {"title": "Заказ доставлен", "text": "Спасибо!"}}
    element = {
        "messages": {"android": message, "iOS": message},
        "devices": [{"id_type": "android_push_token", "id_values": devices}],
    }
    return {"push_batch_request": {"group_id": group_id, "tag": tag, "batch": [element]}}


async def run(sim: AppMetricaSimulator, *args: str, token: str = TOKEN) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPMETRICA_")}
    env |= {
        "APPMETRICA_REPORT_URL": sim.base_url,
        "APPMETRICA_TOKEN": token,
        "APPMETRICA_APP_ID": str(APP_ID),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consumer",
        "appmetrica",
        "report",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_command_prints_a_row_per_rule_and_counts_its_requests(
    sim: AppMetricaSimulator,
) -> None:
    code, out, err = await run(sim, "--since", "0d")

    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["rule", "class", "sent"]
    rows = [line.split() for line in lines[2:]]
    # opened: half of each transfer's receivers, rounded: 3 -> 2 and 1 -> 1
    assert rows == [
        ["orders.yaml:order_delivered", "transactional", "4", "4", "3", "75.0%", "2"],
        ["bonus.yaml:bonus_accrued", "marketing", "2", "2", "1", "50.0%", "1"],
        ["total", "6", "6", "4", "66.7%", "3"],
    ]
    assert err.startswith("1 Reporting API request(s)")
    assert sim.state.requests["GET /stat/v1/data"] == 1


async def test_the_json_form_carries_the_same_rows(sim: AppMetricaSimulator) -> None:
    code, out, _ = await run(sim, "--json", "--rule", "bonus_accrued")

    assert code == 0
    shown = json.loads(out)
    assert shown["rules"] == [
        {
            "rule": "bonus.yaml:bonus_accrued",
            "class": "marketing",
            "sent": 2,
            "received": 2,
            "opened": 1,
            "open_rate": 0.5,
            "transfers": 1,
        }
    ]
    assert (shown["app_id"], shown["requests"]) == (APP_ID, 1)


async def test_a_refused_token_is_one_line_on_standard_error(sim: AppMetricaSimulator) -> None:
    code, out, err = await run(sim, token="expired")

    assert code == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("error: AppMetrica refused the OAuth token (401 unauthorized")
    assert "APPMETRICA_TOKEN" in line


def test_days_are_taken_as_the_reporting_api_knows_them() -> None:
    assert [report_day(d) for d in ("0d", "1d", "30d", "today", "yesterday", "2026-11-01")] == [
        "today",
        "1daysAgo",
        "30daysAgo",
        "today",
        "yesterday",
        "2026-11-01",
    ]
    with pytest.raises(argparse.ArgumentTypeError, match=r"use Nd .* YYYY-MM-DD"):
        report_day("12h")
