"""The history API over real HTTP (loopback), on both backends: IMSHOP's contract."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import structlog
from history_support import T0_MS, entry

from consumer.clock import FakeClock
from consumer.history.api import MAX_BODY_BYTES, HistoryApi, served_token
from consumer.history.store import SqlHistoryStore
from consumer.metrics import Metrics
from consumer.settings import HistorySettings

TOKEN = "imshop-history-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORDER = "c:order-1"


class Api:
    def __init__(self, client: httpx.AsyncClient, metrics: Metrics) -> None:
        self.client = client
        self.metrics = metrics

    async def post(
        self,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes = b"",
    ) -> httpx.Response:
        content = raw or (
            httpx.Request("POST", "/", json=body).content if body is not None else b""
        )
        return await self.client.post(
            path, content=content, headers=AUTH if headers is None else headers
        )


class UntouchableStore:
    """For requests that must be answered before the database is asked."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was asked ({name}) for a request it must not see")


@pytest.fixture
async def api(store: SqlHistoryStore) -> AsyncIterator[Api]:
    async with serving(store) as running:
        yield running


@pytest.fixture
async def storeless_api() -> AsyncIterator[Api]:
    async with serving(UntouchableStore()) as running:  # type: ignore[arg-type]
        yield running


@contextlib.asynccontextmanager
async def serving(store: SqlHistoryStore) -> AsyncIterator[Api]:
    metrics = Metrics()
    server = HistoryApi(
        store,
        HistorySettings(max_items_per_user=3),
        metrics,
        FakeClock(),
        token=TOKEN,
        host="127.0.0.1",
    )
    port = await server.start(0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield Api(client, metrics)
    finally:
        await server.stop()


async def test_the_history_answers_in_imshops_shape_newest_first(
    api: Api, store: SqlHistoryStore
) -> None:
    await store.write(
        [
            entry("v1", key=ORDER, version=1, at_ms=T0_MS, title="Заказ 1 оформлен"),
            entry(
                "bonus",
                at_ms=T0_MS + 5,
                title="Начислили 150 бонусов",
                text="Спасибо!",
                deeplink="imshop://bonuses",
                promocode="BONUS150",
                url="https://shop.example/b",
            ),
            entry(
                "v2",
                key=ORDER,
                version=2,
                at_ms=T0_MS + 9,
                title="Заказ 1 отправлен",
                text="Скоро будет у вас.",
                deeplink="imshop://orders/1",
            ),
        ]
    )

    response = await api.post("/imshop/history", {"userId": "u1"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    history = response.json()["history"]
    assert [{k: v for k, v in item.items() if k != "id"} for item in history] == [
        {
            "title": "Заказ 1 отправлен",
            "createdOn": T0_MS,
            "updatedOn": T0_MS + 9,
            "text": "Скоро будет у вас.",
            "deepLink": "imshop://orders/1",
        },
        {
            "title": "Начислили 150 бонусов",
            "createdOn": T0_MS + 5,
            "updatedOn": T0_MS + 5,
            "text": "Спасибо!",
            "url": "https://shop.example/b",
            "deepLink": "imshop://bonuses",
            "promocode": "BONUS150",
        },
    ]
    assert all(isinstance(item["id"], str) for item in history)
    assert api.metrics.value("history_requests_total", endpoint="history", status="200") == 1


async def test_a_customer_without_items_gets_an_empty_history(api: Api) -> None:
    response = await api.post("/imshop/history", {"userId": "79990000000"})

    assert (response.status_code, response.json()) == (200, {"history": []})


async def test_at_most_the_configured_number_of_items_is_shown(
    api: Api, store: SqlHistoryStore
) -> None:
    await store.write([entry(f"e{i}", at_ms=T0_MS + i) for i in range(5)])

    history = (await api.post("/imshop/history", {"userId": "u1"})).json()["history"]

    assert [item["title"] for item in history] == ["title of e4", "title of e3", "title of e2"]


async def test_the_read_endpoint_marks_the_customers_items_read(
    api: Api, store: SqlHistoryStore
) -> None:
    await store.write([entry("a"), entry("b", at_ms=T0_MS + 1)])
    ids = {
        i["title"]: i["id"]
        for i in (await api.post("/imshop/history", {"userId": "u1"})).json()["history"]
    }

    response = await api.post(
        "/imshop/history/read", {"userId": "u1", "ids": [ids["title of a"], "x"]}
    )

    assert (response.status_code, response.json()) == (200, {"success": True, "marked": 1})
    read = {i.title: i.read for i in await store.lookup("u1", limit=9, since_ms=0)}
    assert read == {"title of a": True, "title of b": False}


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "missing"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing"),
        ({"Authorization": "Bearer"}, "missing"),
        ({"Authorization": "Bearer imshop-history-token-2"}, "wrong"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "wrong"),
    ],
)
async def test_without_the_right_token_the_answer_is_401_json_and_counted(
    storeless_api: Api, headers: dict[str, str], why: str
) -> None:
    for path in ("/imshop/history", "/imshop/history/read", "/anything-else"):
        response = await storeless_api.post(path, {"userId": "u1", "ids": []}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    assert storeless_api.metrics.value("history_auth_failures_total", reason=why) == 3


async def test_the_token_scheme_is_case_insensitive(api: Api) -> None:
    response = await api.post(
        "/imshop/history", {"userId": "u1"}, headers={"Authorization": f"bearer {TOKEN}"}
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/imshop/history", b"", "the body is empty"),
        ("/imshop/history", b"{userId: 1}", "the body is not JSON"),
        ("/imshop/history", b"[1, 2]", "the body must be a JSON object, not a list"),
        ("/imshop/history", b"{}", "`userId` is missing"),
        ("/imshop/history", b'{"userId": 79990000000}', "`userId` must be a string, not a number"),
        ("/imshop/history", b'{"userId": null}', "`userId` must be a string, not null"),
        ("/imshop/history", b'{"userId": ""}', "`userId` is empty"),
        ("/imshop/history", b'{"userId": "' + b"7" * 257 + b'"}', "`userId` is longer than 256"),
        ("/imshop/history", b'{"userId": "7\\u0000"}', "`userId` holds a NUL character"),
        ("/imshop/history", b'{"userId": "\\ud800"}', "the body is not JSON"),
        ("/imshop/history/read", b'{"userId": "u1"}', "`ids` is missing"),
        (
            "/imshop/history/read",
            b'{"userId": "u1", "ids": "1,2"}',
            "`ids` must be a list of strings, not a string",
        ),
        (
            "/imshop/history/read",
            b'{"userId": "u1", "ids": ["1", 2]}',
            "`ids[1]` must be a string, not a number",
        ),
        (
            "/imshop/history/read",
            b'{"userId": "u1", "ids": ["' + b"1" * 65 + b'"]}',
            "`ids[0]` is longer than 64",
        ),
        (
            "/imshop/history/read",
            b'{"userId": "u1", "ids": [' + b'"1",' * 1000 + b'"1"]}',
            "`ids` has 1001 items, more than 1000",
        ),
        ("/imshop/history/read", b'{"ids": []}', "`userId` is missing"),
    ],
)
async def test_each_bad_body_gets_400_naming_the_problem(
    storeless_api: Api, path: str, body: bytes, message: str
) -> None:
    response = await storeless_api.post(path, raw=body or b" ")

    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert response.json()["message"].startswith(message), response.json()


async def test_a_body_over_the_limit_gets_413(storeless_api: Api) -> None:
    body = b'{"userId": "u1", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'

    response = await storeless_api.post("/imshop/history", raw=body)

    assert response.status_code == 413
    assert response.json() == {
        "error": "too_large",
        "message": f"the body is over {MAX_BODY_BYTES} bytes",
    }


async def test_other_methods_and_paths_answer_json(storeless_api: Api) -> None:
    get = await storeless_api.client.get("/imshop/history", headers=AUTH)
    missing = await storeless_api.post("/imshop/elsewhere", {"userId": "u1"})

    assert (get.status_code, get.json()["error"]) == (405, "method_not_allowed")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")


async def test_a_database_failure_is_503_and_says_nothing_of_it(
    api: Api, store: SqlHistoryStore
) -> None:
    await store.engine.dispose()
    if store.backend == "sqlite":  # the file vanishes under the store
        async with store.engine.begin() as connection:
            await connection.exec_driver_sql("DROP TABLE history_items")
    else:
        async with store.engine.begin() as connection:
            await connection.exec_driver_sql("ALTER TABLE history_items RENAME TO moved_away")

    response = await api.post("/imshop/history", {"userId": "u1"})

    assert response.status_code == 503
    assert response.json() == {
        "error": "unavailable",
        "message": "the history database is unavailable; try again",
    }


def test_without_a_token_the_api_is_not_served_and_the_log_says_why() -> None:
    with structlog.testing.capture_logs() as logs:
        serve, token = served_token(HistorySettings())

    assert (serve, token) == (False, None)
    assert logs[0]["event"] == "history_api_not_served"
    assert "HISTORY_AUTH_TOKEN is empty" in logs[0]["detail"]


def test_auth_none_serves_it_unauthenticated_with_a_warning() -> None:
    with structlog.testing.capture_logs() as logs:
        serve, token = served_token(HistorySettings(auth="none"))  # type: ignore[arg-type]

    assert (serve, token) == (True, None)
    assert (logs[0]["event"], logs[0]["log_level"]) == ("history_api_unauthenticated", "warning")
