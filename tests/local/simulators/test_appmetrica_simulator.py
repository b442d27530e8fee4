"""The AppMetrica simulator over real HTTP on 127.0.0.1: the documented shapes and limits."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import io
import json
import sys
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


class Announced(io.StringIO):
    """Standard output that says when a line has been printed."""

    def __init__(self) -> None:
        super().__init__()
        self.line = asyncio.Event()

    def write(self, text: str) -> int:
        if "\n" in text:
            self.line.set()
        return super().write(text)


async def test_the_command_prints_its_base_url_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    out = Announced()
    monkeypatch.setattr(sys, "stdout", out)
    serving = asyncio.create_task(
        AppMetricaSimulator(SimulatorConfig()).serve_forever("127.0.0.1", 0)
    )
    try:
        await asyncio.wait_for(out.line.wait(), 10)  # printed once the port is bound
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving

    started = json.loads(out.getvalue())
    assert started["simulator"] == "appmetrica"
    assert started["base_url"].startswith("http://127.0.0.1:")


# --- the Reporting API: GET /stat/v1/data --------------------------------------------

REPORT = "/stat/v1/data"
PC = "ym:pc:"
ALL_METRICS = f"{PC}sentDevices,{PC}receivedDevices,{PC}openedDevices"


def devices(prefix: str, count: int) -> dict[str, Any]:
    return {"id_type": "android_push_token", "id_values": [f"{prefix}{i}" for i in range(count)]}


async def send_tagged(api: httpx.AsyncClient, group_id: int, tag: str, count: int) -> None:
    body = batch_body(group_id, [element([devices(tag, count)])])
    body["push_batch_request"]["tag"] = tag
    response = await api.post("/push/v1/send-batch", json=body)
    assert response.status_code == 200, response.text


@pytest.fixture
async def reports(manual_time: ManualTime) -> AsyncIterator[httpx.AsyncClient]:
    config = SimulatorConfig(
        token=TOKEN, received_share=0.5, opened_share=0.5, app_ids=frozenset({9})
    )
    async with (
        AppMetricaSimulator(config, clock=manual_time) as simulator,
        httpx.AsyncClient(base_url=simulator.base_url, headers=AUTH, timeout=5) as client,
    ):
        yield client


async def test_the_report_adds_up_sent_transfers_by_group_tag_and_transfer(
    reports: httpx.AsyncClient, manual_time: ManualTime
) -> None:
    orders = await make_group(reports, "order-push-transactional")
    other_app = await make_group(reports, "theirs", app_id=8)
    await send_tagged(reports, orders, "orders.yaml:order_delivered", 4)
    await send_tagged(reports, orders, "orders.yaml:order_delivered", 6)
    await send_tagged(reports, orders, "orders.yaml:order_cancelled", 2)
    await send_tagged(reports, other_app, "not ours", 5)
    manual_time.now += 2.0  # every transfer is `sent` now
    await send_tagged(reports, orders, "orders.yaml:order_cancelled", 8)  # still pending

    by_transfer = await reports.get(
        REPORT,
        params={
            "ids": "7",
            "metrics": ALL_METRICS,
            "dimensions": f"{PC}group,{PC}tag,{PC}transfer",
        },
    )
    by_tag = await reports.get(
        REPORT, params={"ids": "7", "metrics": ALL_METRICS, "dimensions": f"{PC}group,{PC}tag"}
    )

    assert by_transfer.status_code == 200, by_transfer.text
    body = by_transfer.json()
    assert body["query"]["dimensions"] == [f"{PC}group", f"{PC}tag", f"{PC}transfer"]
    today = dt.datetime.now(dt.UTC).date()  # the default period: 6daysAgo .. today
    assert body["query"]["date1"] == (today - dt.timedelta(days=6)).isoformat()
    assert body["query"]["date2"] == today.isoformat()
    assert [
        (r["dimensions"][1]["name"], r["dimensions"][2]["name"], r["metrics"]) for r in body["data"]
    ] == [
        ("orders.yaml:order_delivered", "2", [6.0, 3.0, 2.0]),
        ("orders.yaml:order_delivered", "1", [4.0, 2.0, 1.0]),
        ("orders.yaml:order_cancelled", "3", [2.0, 1.0, 1.0]),
    ]
    assert body["data"][0]["dimensions"][0] == {
        "id": str(orders),
        "name": "order-push-transactional",
    }
    assert (body["total_rows"], body["sampled"], body["totals"]) == (3, False, [12.0, 6.0, 4.0])
    assert (body["min"], body["max"]) == ([2.0, 1.0, 1.0], [6.0, 3.0, 2.0])
    summed = [(r["dimensions"][1]["name"], r["metrics"]) for r in by_tag.json()["data"]]
    assert summed == [
        ("orders.yaml:order_delivered", [10.0, 5.0, 3.0]),
        ("orders.yaml:order_cancelled", [2.0, 1.0, 1.0]),
    ]


async def test_the_report_pages_with_limit_and_offset(
    reports: httpx.AsyncClient, manual_time: ManualTime
) -> None:
    group_id = await make_group(reports)
    for count in (1, 2, 3):
        await send_tagged(reports, group_id, f"rule{count}", count)
    manual_time.now += 2.0
    params = {"ids": "7", "metrics": f"{PC}sentDevices", "dimensions": f"{PC}tag", "limit": "2"}

    first = (await reports.get(REPORT, params=params)).json()
    second = (await reports.get(REPORT, params=params | {"offset": "3"})).json()

    assert [r["dimensions"][0]["name"] for r in first["data"]] == ["rule3", "rule2"]
    assert [r["dimensions"][0]["name"] for r in second["data"]] == ["rule1"]
    assert first["total_rows"] == second["total_rows"] == 3
    assert first["totals"] == [6.0]


async def test_a_known_app_without_sends_has_an_empty_report(reports: httpx.AsyncClient) -> None:
    body = (await reports.get(REPORT, params={"ids": "9", "metrics": f"{PC}sentDevices"})).json()
    assert (body["data"], body["total_rows"], body["totals"]) == ([], 0, [0.0])


@pytest.mark.parametrize(
    ("params", "status", "error_type", "words"),
    [
        ({"metrics": f"{PC}sentDevices"}, 400, "missing_parameter", "ids is required"),
        ({"ids": "4242", "metrics": f"{PC}sentDevices"}, 403, "access_denied", "application 4242"),
        ({"ids": "9"}, 400, "missing_parameter", "metrics is required"),
        ({"ids": "9", "metrics": "ym:s:visits"}, 400, "invalid_parameter", "unknown metric"),
        (
            {"ids": "9", "metrics": f"{PC}sentDevices", "dimensions": "ym:pc:os"},
            400,
            "invalid_parameter",
            "unknown dimension",
        ),
        (
            {"ids": "9", "metrics": f"{PC}sentDevices", "date1": "last week"},
            400,
            "invalid_parameter",
            "date1 must be",
        ),
        (
            {"ids": "9", "metrics": f"{PC}sentDevices", "date1": "today", "date2": "yesterday"},
            400,
            "invalid_parameter",
            "after date2",
        ),
        (
            {"ids": "9", "metrics": f"{PC}sentDevices", "limit": "100001"},
            400,
            "invalid_parameter",
            "limit must be",
        ),
        (
            {"ids": "9", "metrics": f"{PC}sentDevices", "filters": "ym:pc:tag=='x'"},
            400,
            "invalid_parameter",
            "filters",
        ),
    ],
)
async def test_a_bad_report_query_gets_the_documented_error(
    reports: httpx.AsyncClient, params: dict[str, str], status: int, error_type: str, words: str
) -> None:
    response = await reports.get(REPORT, params=params)
    assert response.status_code == status
    [error] = response.json()["errors"]
    assert error["error_type"] == error_type
    assert words in error["message"]


async def test_the_report_needs_the_token_and_has_a_daily_quota_of_its_own(
    manual_time: ManualTime,
) -> None:
    config = SimulatorConfig(
        token=TOKEN, requests_per_s=2, report_requests_per_day=2, app_ids=frozenset({9})
    )
    query = {"ids": "9", "metrics": f"{PC}sentDevices"}
    async with (
        AppMetricaSimulator(config, clock=manual_time) as sim,
        httpx.AsyncClient(base_url=sim.base_url, headers=AUTH, timeout=5) as api,
    ):
        no_token = await api.get(REPORT, params=query, headers={"Authorization": "OAuth nope"})
        manual_time.now += 1.0
        answers = [(await api.get(REPORT, params=query)).status_code for _ in range(2)]
        push_calls = [
            (await api.get("/push/v1/management/groups?app_id=9")).status_code for _ in range(2)
        ]
        manual_time.now += 1.0
        over = await api.get(REPORT, params=query)
        stats = (await api.get("/_sim/stats")).json()

    assert no_token.status_code == 401
    assert answers == [200, 200]
    assert push_calls == [200, 200]  # the per-second quota counts each API apart
    assert over.status_code == 429
    assert over.json()["errors"][0]["error_type"] == "quota"
    assert "2 Reporting API requests a day" in over.json()["message"]
    assert stats["report_requests_today"] == 2
