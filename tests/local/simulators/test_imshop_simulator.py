"""The IMSHOP simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from consumer.errors import FatalError
from consumer.local.simulators.imshop import (
    REFUSED_MESSAGE,
    Faults,
    ImshopSimulator,
    SimulatorConfig,
    serve_showing_pushes,
)

KEY = {"Authorization": "Bearer K"}
GOOD = {"userIds": ["79990000001"], "message": {"title": "Заказ", "summary": "Готов"}}


@pytest.fixture
async def sim() -> AsyncIterator[ImshopSimulator]:
    async with ImshopSimulator(SimulatorConfig(api_key="K", rate_limit=100, max_ids=3)) as made:
        yield made


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as made:
        yield made


async def test_an_accepted_push_is_recorded_with_its_arrival_time(
    sim: ImshopSimulator, client: httpx.AsyncClient
) -> None:
    body = {**GOOD, "deeplink": "imshop://orders/1"}
    answer = await client.post(sim.url, json=body, headers=KEY)

    assert answer.status_code == 200
    assert answer.json() == {"success": True}
    (push,) = (await client.get(f"{sim.base_url}/_sim/pushes")).json()["pushes"]
    assert push["userIds"] == ["79990000001"]
    assert push["deeplink"] == "imshop://orders/1"
    assert push["at"] >= 0
    assert "received_at" in push


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**GOOD, "userIds": "79990000001"}, '"userIds" must be an array'),
        ({"message": GOOD["message"]}, '"userIds" is required'),
        ({**GOOD, "userIds": []}, '"userIds" must contain at least 1 items'),
        ({**GOOD, "userIds": ["1", "2", "3", "4"]}, "less than or equal to 3 items"),
        ({**GOOD, "userIds": ["1", 2]}, '"userIds" at position 1 fails because ["1" must be'),
        ({**GOOD, "userIds": ["1", "1"]}, '"userIds" position 1 contains a duplicate value'),
        ({"userIds": ["1"]}, 'child "message" fails because ["message" is required]'),
        ({**GOOD, "message": {"title": "x"}}, 'child "summary" fails because ["summary" is'),
        ({**GOOD, "message": {"title": "", "summary": "s"}}, "not allowed to be empty"),
        ({**GOOD, "deeplink": 5}, 'child "deeplink" fails because ["deeplink" must be a string]'),
        ({**GOOD, "extra": 1}, '"extra" is not allowed'),
    ],
)
async def test_bad_bodies_get_a_joi_style_400_naming_the_problem(
    sim: ImshopSimulator, client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    answer = await client.post(sim.url, json=body, headers=KEY)

    assert answer.status_code == 400
    assert answer.json()["error"] == "Bad Request"
    assert message in answer.json()["message"]
    assert sim.pushes == []


async def test_invalid_json_and_a_wrong_key(
    sim: ImshopSimulator, client: httpx.AsyncClient
) -> None:
    bad_json = await client.post(sim.url, content=b"{oops", headers=KEY)
    wrong_key = await client.post(sim.url, json=GOOD, headers={"Authorization": "Bearer nope"})

    assert bad_json.json()["message"] == "Invalid request payload JSON format"
    assert wrong_key.status_code == 401
    assert sim.stats()["unauthorized"] == 1


async def test_the_sliding_window_answers_429_and_counts_violations(
    client: httpx.AsyncClient,
) -> None:
    async with ImshopSimulator(SimulatorConfig(rate_limit=2, window_s=30)) as sim:
        answers = [await client.post(sim.url, json=GOOD) for _ in range(3)]

        assert [a.status_code for a in answers] == [200, 200, 429]
        assert 1 <= int(answers[2].headers["Retry-After"]) <= 30
        stats = (await client.get(f"{sim.base_url}/_sim/stats")).json()
        assert stats["violations"] == 1
        assert stats["max_in_window"] == 2
        assert stats["accepted"] == 2


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [
        ("unavailable", 200, {"success": False, "error": "Integration is unavailable"}),
        ("http_503", 503, None),
        ("rate_limited", 429, None),
        ("refused", 400, {"statusCode": 400, "error": "Bad Request", "message": REFUSED_MESSAGE}),
    ],
)
async def test_scripted_faults_answer_in_order_then_stop(
    sim: ImshopSimulator, client: httpx.AsyncClient, kind: str, status: int, body: Any
) -> None:
    set_faults = await client.post(f"{sim.base_url}/_sim/faults", json={"script": [kind]})
    assert set_faults.status_code == 200

    faulty = await client.post(sim.url, json=GOOD, headers=KEY)
    healthy = await client.post(sim.url, json=GOOD, headers=KEY)

    assert faulty.status_code == status
    if body is not None:
        assert faulty.json() == body
    assert healthy.json() == {"success": True}
    assert len(sim.pushes) == 1
    assert sim.stats()[f"fault_{kind}"] == 1


async def test_a_timeout_fault_hangs_past_the_client_timeout(sim: ImshopSimulator) -> None:
    sim.set_faults(Faults(script=["timeout"], hang_s=5))
    async with httpx.AsyncClient(timeout=0.2) as quick:
        with pytest.raises(httpx.ReadTimeout):
            await quick.post(sim.url, json=GOOD, headers=KEY)
    assert sim.pushes == []


async def test_a_lost_answer_is_processed_but_never_answered(sim: ImshopSimulator) -> None:
    sim.set_faults(Faults(script=["lost_answer"], hang_s=5))
    async with httpx.AsyncClient(timeout=0.2) as quick:
        with pytest.raises(httpx.ReadTimeout):
            await quick.post(sim.url, json=GOOD, headers=KEY)
    assert len(sim.pushes) == 1


async def test_a_reset_closes_the_connection_without_an_answer(
    sim: ImshopSimulator, client: httpx.AsyncClient
) -> None:
    sim.set_faults(Faults(script=["reset"]))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(sim.url, json=GOOD, headers=KEY)


async def test_unknown_fault_settings_are_refused(
    sim: ImshopSimulator, client: httpx.AsyncClient
) -> None:
    answer = await client.post(f"{sim.base_url}/_sim/faults", json={"script": ["meteor"]})

    assert answer.status_code == 400
    assert "unknown fault kind 'meteor'" in answer.json()["error"]


async def test_the_command_line_options_set_the_key_limit_and_window(
    client: httpx.AsyncClient,
) -> None:
    command = ["simulate", "imshop", "--port", "0", "--api-key", "K2"]
    command += ["--rate-limit", "2", "--window", "600", "--max-ids", "1", "--path", "/p"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "consumer", *command, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        started = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        url, key = started["url"], {"Authorization": "Bearer K2"}
        two = {**GOOD, "userIds": ["79990000001", "79990000002"]}

        no_key = await client.post(url, json=GOOD)
        too_many_ids = await client.post(url, json=two, headers=key)
        answers = [await client.post(url, json=GOOD, headers=key) for _ in range(3)]
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)

    assert url == started["base_url"] + "/p"
    assert no_key.status_code == 401
    assert too_many_ids.status_code == 400
    assert [a.status_code for a in answers] == [200, 429, 429], "the 400 counted: 2 per window"
    assert 590 <= int(answers[-1].headers["Retry-After"]) <= 600


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("error_rate", "x"),
        ("error_rate", 2),
        ("script", "timeout"),
        ("retry_after_s", 1.5),
        ("latency_s", True),
        ("hang_s", -1),
    ],
)
async def test_fault_settings_of_the_wrong_type_are_refused_by_name(
    sim: ImshopSimulator, client: httpx.AsyncClient, setting: str, value: Any
) -> None:
    answer = await client.post(f"{sim.base_url}/_sim/faults", json={setting: value})

    assert answer.status_code == 400
    assert answer.json()["error"].startswith(f"fault setting '{setting}': must be")
    assert (await client.post(sim.url, json=GOOD, headers=KEY)).status_code == 200, "unchanged"


async def test_the_command_prints_its_addresses_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    serving = asyncio.create_task(ImshopSimulator(SimulatorConfig()).serve_forever("127.0.0.1", 0))
    try:
        for _ in range(200):  # bounded: the line comes once the port is bound
            if out := capsys.readouterr().out:
                break
            await asyncio.sleep(0.01)
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving

    started = json.loads(out)
    assert started["simulator"] == "imshop"
    assert started["url"] == started["base_url"] + "/push"
    assert started["base_url"].startswith("http://127.0.0.1:")


async def test_the_command_shows_each_accepted_push_as_it_arrives(
    capsys: pytest.CaptureFixture[str], client: httpx.AsyncClient
) -> None:
    """What a person running `simulate imshop` by hand sees, after the start-up line."""
    simulator = ImshopSimulator(SimulatorConfig(rate_limit=10, window_s=60))
    serving = asyncio.create_task(serve_showing_pushes(simulator, "127.0.0.1", 0))
    try:
        started = json.loads(await _next_output(capsys))
        body = {**GOOD, "userIds": ["79990001122", "79990003344"], "deeplink": "imshop://orders"}
        assert (await client.post(started["url"], json=body)).status_code == 200
        shown = await _next_output(capsys)
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving

    lines = shown.splitlines()
    assert "request 1 " in lines[0]
    assert "2 recipients" in lines[0]
    assert "budget 1/10 in 60 s   7999***1122, 7999***3344" in lines[0]
    assert lines[1].strip() == "Заказ — Готов"
    assert lines[2].strip() == "-> imshop://orders"


async def _next_output(capsys: pytest.CaptureFixture[str]) -> str:
    for _ in range(300):  # bounded: 3 s
        if out := capsys.readouterr().out:
            return out
        await asyncio.sleep(0.01)
    raise AssertionError("nothing was printed within 3 s")


async def test_a_taken_port_is_one_clear_error(taken_port: int) -> None:
    with pytest.raises(FatalError) as caught:
        await ImshopSimulator().start("127.0.0.1", taken_port)

    assert str(caught.value) == (
        f"the imshop simulator cannot listen on 127.0.0.1:{taken_port}: Address already in use; "
        "pick another --port (0 picks a free one)"
    )
