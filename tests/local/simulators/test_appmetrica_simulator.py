"""The AppMetrica simulator over real HTTP on 127.0.0.1: the documented shapes and limits."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from consumer.local.simulators.appmetrica import AppMetricaSimulator, add_parser
from consumer.local.simulators.appmetrica_model import SimulatorConfig

TOKEN = "sim-token"
AUTH = {"Authorization": f"OAuth {TOKEN}"}


class ManualTime:
    """The simulator's clock, moved by the test (status steps without sleeping)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def manual_time() -> ManualTime:
    return ManualTime()


@pytest_asyncio.fixture
async def sim(manual_time: ManualTime) -> AsyncIterator[AppMetricaSimulator]:
    config = SimulatorConfig(token=TOKEN, status_step_s=1.0, max_devices_per_request=10)
    async with AppMetricaSimulator(config, clock=manual_time) as simulator:
        yield simulator


@pytest_asyncio.fixture
async def api(sim: AppMetricaSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url, headers=AUTH, timeout=5) as client:
        yield client


async def make_group(api: httpx.AsyncClient, name: str = "orders", app_id: int = 7) -> int:
    response = await api.post(
        "/push/v1/management/groups", json={"group": {"app_id": app_id, "name": name}}
    )
    assert response.status_code == 200, response.text
    return int(response.json()["group"]["id"])


def message(title: str = "Заказ 1 собран") -> dict[str, Any]:
    return {"silent": False, "content": {"title": title, "text": "Можно забирать"}}


def element(devices: list[dict[str, Any]], **messages: dict[str, Any]) -> dict[str, Any]:
    chosen = messages or {"android": message(), "iOS": message()}
    return {"messages": chosen, "devices": devices}


def batch_body(group_id: int, batch: list[dict[str, Any]], ctid: int | None = None) -> Any:
    request: dict[str, Any] = {"group_id": group_id, "tag": "t", "batch": batch}
    if ctid is not None:
        request["client_transfer_id"] = ctid
    return {"push_batch_request": request}


ANDROID = {"id_type": "android_push_token", "id_values": ["a1", "a2"]}


async def test_api_needs_the_oauth_token(sim: AppMetricaSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        missing = await client.get("/push/v1/management/groups", params={"app_id": 7})
        wrong = await client.get(
            "/push/v1/management/groups",
            params={"app_id": 7},
            headers={"Authorization": "OAuth nope"},
        )
    for response in (missing, wrong):
        assert response.status_code == 401
        body = response.json()
        assert body["code"] == 401
        assert body["errors"][0]["error_type"] == "unauthorized"


async def test_groups_are_created_listed_fetched_and_unique_per_app(
    api: httpx.AsyncClient,
) -> None:
    group_id = await make_group(api, "orders", app_id=7)
    other_app = await make_group(api, "orders", app_id=8)  # same name, other app: fine
    duplicate = await api.post(
        "/push/v1/management/groups", json={"group": {"app_id": 7, "name": "orders"}}
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["errors"][0]["error_type"] == "conflict"

    listed = (await api.get("/push/v1/management/groups", params={"app_id": 7})).json()
    assert [g["id"] for g in listed["groups"]] == [group_id]
    assert listed["groups"][0]["send_rate"] == 5000
    fetched = (await api.get(f"/push/v1/management/group/{other_app}")).json()
    assert fetched["group"]["app_id"] == 8
    assert (await api.get("/push/v1/management/group/999")).status_code == 404
    no_app = await api.get("/push/v1/management/groups")
    assert no_app.status_code == 400
    assert no_app.json()["errors"][0]["error_type"] == "missing_parameter"


@pytest.mark.parametrize(
    ("batch", "location", "words"),
    [
        ([element([ANDROID] * 6)], "batch[0].devices", "1 to 5"),
        ([element([])], "batch[0].devices", "1 to 5"),
        (
            [element([{"id_type": "android_push_token", "id_values": []}])],
            "batch[0].devices[0].id_values",
            "non-empty",
        ),
        (
            [element([{"id_type": "profile_id", "id_values": ["p"]}])],
            "batch[0].devices[0].id_type",
            "unknown id_type",
        ),
        ([element([ANDROID], ios=message())], "batch[0].messages.ios", "use android, iOS"),
        (
            [element([ANDROID], android=message("x" * 4000))],
            "batch[0].messages.android",
            "over 3968",
        ),
        ([element([ANDROID] * 3)] * 2, "push_batch_request.batch", "more than 10"),
        ([], "push_batch_request.batch", "non-empty"),
    ],
)
async def test_send_batch_refuses_what_the_docs_forbid(
    api: httpx.AsyncClient, batch: list[Any], location: str, words: str
) -> None:
    group_id = await make_group(api)
    response = await api.post("/push/v1/send-batch", json=batch_body(group_id, batch))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 400
    assert any(
        e["location"].endswith(location) and words in e["message"] for e in body["errors"]
    ), body


async def test_status_moves_pending_in_progress_sent(
    api: httpx.AsyncClient, manual_time: ManualTime
) -> None:
    group_id = await make_group(api)
    sent = await api.post("/push/v1/send-batch", json=batch_body(group_id, [element([ANDROID])]))
    transfer_id = sent.json()["push_response"]["transfer_id"]
    seen = []
    for _ in range(3):
        status = (await api.get(f"/push/v1/status/{transfer_id}")).json()["transfer"]
        seen.append(status["status"])
        manual_time.now += 1.0
    assert seen == ["pending", "in_progress", "sent"]
    assert "errors" not in status


async def test_missing_platform_message_fails_the_transfer_as_documented(
    api: httpx.AsyncClient, manual_time: ManualTime
) -> None:
    group_id = await make_group(api)
    google = {"id_type": "google_aid", "id_values": ["g1"]}
    body = batch_body(group_id, [element([google], iOS=message())])
    transfer_id = (await api.post("/push/v1/send-batch", json=body)).json()["push_response"][
        "transfer_id"
    ]
    manual_time.now += 1.0
    transfer = (await api.get(f"/push/v1/status/{transfer_id}")).json()["transfer"]
    assert transfer["status"] == "failed"
    assert transfer["errors"] == [
        "Identifier type google_aid requires defined message for platform android"
    ]


async def test_client_transfer_id_is_unique_per_group_and_can_be_looked_up(
    api: httpx.AsyncClient,
) -> None:
    group_id = await make_group(api)
    other_group = await make_group(api, "bonus")
    body = batch_body(group_id, [element([ANDROID])], ctid=42)
    first = await api.post("/push/v1/send-batch", json=body)
    assert first.json()["push_response"] == {"transfer_id": 1, "client_transfer_id": 42}
    again = await api.post("/push/v1/send-batch", json=body)
    assert again.status_code == 409
    elsewhere = await api.post(
        "/push/v1/send-batch", json=batch_body(other_group, [element([ANDROID])], ctid=42)
    )
    assert elsewhere.status_code == 200

    found = (await api.get(f"/push/v1/status/{group_id}/42")).json()["transfer"]
    assert (found["id"], found["client_transfer_id"]) == (1, 42)
    unknown = await api.get(f"/push/v1/status/{group_id}/43")
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["error_type"] == "not_found"


async def test_sim_transfers_records_messages_and_devices(api: httpx.AsyncClient) -> None:
    group_id = await make_group(api)
    batch = [element([ANDROID]), element([{"id_type": "ios_push_token", "id_values": ["i1"]}])]
    await api.post("/push/v1/send-batch", json=batch_body(group_id, batch, ctid=5))
    recorded = (await api.get("/_sim/transfers")).json()["transfers"]
    assert len(recorded) == 1
    assert recorded[0]["client_transfer_id"] == 5
    assert recorded[0]["devices"] == 3
    assert recorded[0]["batch"] == batch


async def test_injected_errors_are_used_up_one_request_each(api: httpx.AsyncClient) -> None:
    group_id = await make_group(api)
    faults = await api.post("/_sim/faults", json={"error_status": 429, "error_count": 2})
    assert faults.status_code == 200
    body = batch_body(group_id, [element([ANDROID])])
    codes = [(await api.post("/push/v1/send-batch", json=body)).status_code for _ in range(3)]
    assert codes == [429, 429, 200]
    assert (await api.post("/_sim/faults", json={"error_count": -1})).status_code == 400


async def test_a_dropped_answer_still_records_the_transfer(api: httpx.AsyncClient) -> None:
    group_id = await make_group(api)
    await api.post("/_sim/faults", json={"drop_after_accept_count": 1})
    body = batch_body(group_id, [element([ANDROID])], ctid=9)
    lost = await api.post("/push/v1/send-batch", json=body)
    assert lost.status_code == 500
    found = await api.get(f"/push/v1/status/{group_id}/9")
    assert found.status_code == 200
    assert len((await api.get("/_sim/transfers")).json()["transfers"]) == 1


async def test_a_hang_ends_in_a_client_timeout(
    sim: AppMetricaSimulator, api: httpx.AsyncClient
) -> None:
    group_id = await make_group(api)
    await api.post("/_sim/faults", json={"hang_count": 1})
    with pytest.raises(httpx.ReadTimeout):
        await api.post(
            "/push/v1/send-batch", json=batch_body(group_id, [element([ANDROID])]), timeout=0.2
        )
    assert sim.state.transfers == {}


async def test_failed_transfers_and_invalid_devices_end_failed(
    api: httpx.AsyncClient, manual_time: ManualTime
) -> None:
    group_id = await make_group(api)
    await api.post(
        "/_sim/faults", json={"fail_transfers_count": 1, "invalid_device_ids": ["bad-one"]}
    )
    first = await api.post("/push/v1/send-batch", json=batch_body(group_id, [element([ANDROID])]))
    bad = {"id_type": "android_push_token", "id_values": ["bad-one"]}
    second = await api.post("/push/v1/send-batch", json=batch_body(group_id, [element([bad])]))
    manual_time.now += 1.0
    errors = []
    for response in (first, second):
        transfer_id = response.json()["push_response"]["transfer_id"]
        transfer = (await api.get(f"/push/v1/status/{transfer_id}")).json()["transfer"]
        assert transfer["status"] == "failed"
        errors.append(transfer["errors"])
    assert errors == [
        ["Invalid push credentials for platform android"],
        ["Identifier bad-one of type android_push_token is invalid"],
    ]


def test_cli_parser_builds_the_simulator_options() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["appmetrica", "--port", "0", "--status-step-s", "0.1", "--invalid-device", "x"]
    )
    assert (args.port, args.status_step_s, args.invalid_device) == (0, 0.1, ["x"])
    assert callable(args.func)


async def test_more_than_the_per_second_quota_is_refused_with_429(
    manual_time: ManualTime,
) -> None:
    config = SimulatorConfig(token=TOKEN, requests_per_s=3)
    async with (
        AppMetricaSimulator(config, clock=manual_time) as sim,
        httpx.AsyncClient(base_url=sim.base_url, headers=AUTH, timeout=5) as api,
    ):
        answers = [await api.get("/push/v1/management/groups?app_id=7") for _ in range(4)]
        stats = await api.get("/_sim/stats")  # control routes are not counted
        manual_time.now += 1.0
        after_a_second = await api.get("/push/v1/management/groups?app_id=7")

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json() == {
        "errors": [
            {"error_type": "quota", "message": "more than 3 requests per second", "location": ""}
        ],
        "code": 429,
        "message": "more than 3 requests per second",
    }
    assert stats.status_code == 200
    assert stats.json()["quota_violations"] == 1
    assert after_a_second.status_code == 200


async def test_the_command_prints_its_base_url_as_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    serving = asyncio.create_task(
        AppMetricaSimulator(SimulatorConfig()).serve_forever("127.0.0.1", 0)
    )
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
    assert started["simulator"] == "appmetrica"
    assert started["base_url"].startswith("http://127.0.0.1:")
