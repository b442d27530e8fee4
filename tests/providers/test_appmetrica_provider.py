"""The AppMetrica provider against the simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio

from consumer.errors import (
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    SettingsError,
)
from consumer.events import Device, Recipient
from consumer.local.simulators.appmetrica import AppMetricaSimulator
from consumer.local.simulators.appmetrica_model import SimulatorConfig
from consumer.local.simulators.appmetrica_state import Faults
from consumer.metrics import Metrics
from consumer.providers.appmetrica import AppMetricaProvider
from consumer.providers.base import Envelope
from consumer.push import Message, Origin, PushClass, PushJob, RenderedPush
from consumer.settings import AppMetricaSettings

TOKEN = "sim-token"
SEND = "POST /push/v1/send-batch"
LOOKUP = "GET /push/v1/status/{group_id}/{ctid}"


class ManualTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.running = True  # when running, each reading moves time on by one status step

    def __call__(self) -> float:
        if self.running:
            self.now += 1.0
        return self.now


@pytest.fixture
def manual_time() -> ManualTime:
    return ManualTime()


@pytest_asyncio.fixture
async def sim(manual_time: ManualTime) -> AsyncIterator[AppMetricaSimulator]:
    async with AppMetricaSimulator(
        SimulatorConfig(token=TOKEN, status_step_s=1.0), clock=manual_time
    ) as simulator:
        yield simulator


ProviderFactory = Callable[..., AppMetricaProvider]


@pytest_asyncio.fixture
async def make_provider(sim: AppMetricaSimulator) -> AsyncIterator[ProviderFactory]:
    made: list[AppMetricaProvider] = []

    def factory(
        metrics: Metrics | None = None, http: httpx.AsyncClient | None = None, **overrides: Any
    ) -> AppMetricaProvider:
        values: dict[str, Any] = {
            "url": sim.base_url,
            "token": TOKEN,
            "app_id": 7,
            "status_poll_initial_s": 0.001,
            "status_poll_max_s": 0.005,
            "status_timeout_s": 5.0,
            "timeout_s": 5.0,
        }
        provider = AppMetricaProvider(
            AppMetricaSettings(**(values | overrides)), metrics=metrics, http=http
        )
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        await provider.aclose()


def job(
    event_id: str, devices: list[tuple[str, str]], title: str = "Заказ собран", extras: Any = None
) -> PushJob:
    push = RenderedPush(
        rule_id="order_ready",
        message=Message(title, "Можно забирать", "imshop://orders/1"),
        push_class=PushClass.TRANSACTIONAL,
        ttl_s=3600,
        extras={"appmetrica": extras} if extras is not None else {},
    )
    return PushJob(
        origin=Origin("orders", 0, int(event_id.strip("e") or 0)),
        event_id=event_id,
        event_type="order.status_changed",
        recipient=Recipient(user_id="u1", devices=[Device(id_type=t, id=i) for t, i in devices]),
        push=push,
        occurred_at=dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC),
    )


def envelope(provider: AppMetricaProvider, *jobs: PushJob) -> Envelope:
    recipients = tuple(dict.fromkeys(r for j in jobs for r in provider.recipients(j)))
    return Envelope(jobs[0].push.message, recipients, jobs)


def sends(sim: AppMetricaSimulator, route: str = SEND) -> int:
    return sim.state.requests.get(route, 0)


async def test_start_creates_the_group_once_and_reuses_it(
    sim: AppMetricaSimulator, make_provider: ProviderFactory
) -> None:
    first = await make_provider().start()
    second = await make_provider().start()
    assert first == second
    assert [g.name for g in sim.state.groups.values()] == ["order-push"]
    assert sends(sim, "POST /push/v1/management/groups") == 1


async def test_start_lists_again_when_the_group_appears_meanwhile(
    sim: AppMetricaSimulator, make_provider: ProviderFactory
) -> None:
    async def someone_else_creates_it(response: httpx.Response) -> None:
        if response.request.method == "GET" and not sim.state.groups:
            sim.state.create_group({"group": {"app_id": 7, "name": "order-push"}})

    async with httpx.AsyncClient(event_hooks={"response": [someone_else_creates_it]}) as http:
        group_id = await make_provider(http=http).start()
    assert [g.id for g in sim.state.groups.values()] == [group_id]
    assert sends(sim, "POST /push/v1/management/groups") == 1  # answered 409
    assert sends(sim, "GET /push/v1/management/groups") == 2


async def test_start_with_a_bad_token_is_fatal_and_says_so(make_provider: ProviderFactory) -> None:
    with pytest.raises(SettingsError, match="APPMETRICA_TOKEN"):
        await make_provider(token="expired").start()


def test_app_id_and_token_are_required() -> None:
    with pytest.raises(SettingsError, match="APPMETRICA_APP_ID"):
        AppMetricaProvider(AppMetricaSettings(token="t", app_id=None))
    with pytest.raises(SettingsError, match="APPMETRICA_TOKEN"):
        AppMetricaProvider(AppMetricaSettings(token="", app_id=7))


def test_recipients_are_devices_and_extras_join_the_coalescing_key(
    make_provider: ProviderFactory,
) -> None:
    provider = make_provider(max_devices_per_request=5000, max_messages_per_request=40)
    assert provider.limits.max_recipients_per_request == 5000
    assert provider.limits.max_messages_per_request == 40
    devices = [("ios_push_token", "i1"), ("android_push_token", "a1"), ("ios_push_token", "i1")]
    assert provider.recipients(job("e1", devices)) == ("ios_push_token:i1", "android_push_token:a1")
    assert provider.recipients(job("e2", [])) == ()  # the dispatcher records `skipped`
    same = job("e3", [], extras={"android": {"priority": 1, "channel_id": "c"}})
    reordered = job("e4", [], extras={"android": {"channel_id": "c", "priority": 1}})
    other = job("e5", [], extras={"android": {"priority": 2}})
    assert provider.coalesce_key(same) == provider.coalesce_key(reordered)
    assert provider.coalesce_key(same) != provider.coalesce_key(other)


async def test_many_messages_travel_in_one_request_until_sent(
    sim: AppMetricaSimulator, make_provider: ProviderFactory
) -> None:
    metrics = Metrics()
    provider = make_provider(metrics=metrics)
    shared = [job("e1", [("android_push_token", "a1")]), job("e2", [("ios_push_token", "i2")])]
    personal = job("e3", [("google_aid", "g3")], title="Заказ 3 в пути")
    bonus = job(
        "e4", [("appmetrica_device_id", "42")], title="Бонусы", extras={"iOS": {"badge": 1}}
    )
    request = [envelope(provider, *shared), envelope(provider, personal), envelope(provider, bonus)]

    await provider.send(request)

    [transfer] = sim.state.transfers.values()
    assert sends(sim) == 1
    assert [e["messages"]["android"]["content"]["title"] for e in transfer.batch] == [
        "Заказ собран",
        "Заказ 3 в пути",
        "Бонусы",
    ]
    assert transfer.batch[0]["devices"] == [
        {"id_type": "android_push_token", "id_values": ["a1"]},
        {"id_type": "ios_push_token", "id_values": ["i2"]},
    ]
    assert transfer.batch[2]["messages"]["iOS"]["content"]["badge"] == 1
    assert transfer.client_transfer_id is not None
    assert transfer.status(1.0, sim.state.clock()) == "sent"
    assert metrics.value("appmetrica_transfers_total", status="sent") == 1


async def test_a_too_large_message_is_refused_alone(
    sim: AppMetricaSimulator, make_provider: ProviderFactory
) -> None:
    provider = make_provider()
    good = job("e1", [("android_push_token", "a1")])
    big = job(
        "e2", [("android_push_token", "a2")], title="Big", extras={"iOS": {"data": "x" * 4000}}
    )

    with pytest.raises(ProviderRejected, match="3968-byte limit") as caught:
        await provider.send([envelope(provider, good), envelope(provider, big)])

    assert caught.value.event_ids == frozenset({"e2"})
    [transfer] = sim.state.transfers.values()
    assert transfer.devices() == 1
    assert transfer.batch[0]["devices"][0]["id_values"] == ["a1"]


async def test_a_failed_transfer_rejects_its_jobs_with_appmetricas_errors(
    sim: AppMetricaSimulator, make_provider: ProviderFactory
) -> None:
    metrics = Metrics()
    provider = make_provider(metrics=metrics)
    sim.set_faults(Faults(fail_transfers_count=1))
    with pytest.raises(ProviderRejected, match="Invalid push credentials") as caught:
        await provider.send([envelope(provider, job("e1", [("android_push_token", "a1")]))])
    assert caught.value.event_ids is None  # every job of the request
    assert metrics.value("appmetrica_transfers_total", status="failed") == 1


@pytest.mark.parametrize("drop_mode", ["error", "hang"])
async def test_a_retry_after_a_lost_answer_does_not_push_twice(
    sim: AppMetricaSimulator, make_provider: ProviderFactory, drop_mode: str
) -> None:
    provider = make_provider(timeout_s=0.3)
    await provider.start()
    sim.set_faults(Faults.model_validate({"drop_after_accept_count": 1, "drop_mode": drop_mode}))
    request = [envelope(provider, job("e1", [("android_push_token", "a1")]))]

    with pytest.raises(OutcomeUnknown):
        await provider.send(request)
    await provider.send(request)  # the dispatcher's retry

    assert len(sim.state.transfers) == 1
    assert sends(sim) == 1
    assert sends(sim, LOOKUP) == 1


async def test_a_retry_after_a_request_that_was_never_processed_sends_it(
    sim: AppMetricaSimulator, make_provider: ProviderFactory
) -> None:
    provider = make_provider()
    await provider.start()
    sim.set_faults(Faults(error_status=500, error_count=1))
    request = [envelope(provider, job("e1", [("android_push_token", "a1")]))]

    with pytest.raises(OutcomeUnknown):
        await provider.send(request)
    await provider.send(request)

    assert len(sim.state.transfers) == 1
    assert (sends(sim), sends(sim, LOOKUP)) == (2, 1)  # looked up (404), then sent


async def test_a_retry_coalesced_with_new_jobs_sends_only_the_new_ones(
    sim: AppMetricaSimulator, make_provider: ProviderFactory
) -> None:
    provider = make_provider()
    await provider.start()
    sim.set_faults(Faults(drop_after_accept_count=1))
    first = job("e1", [("android_push_token", "a1")])
    with pytest.raises(OutcomeUnknown):
        await provider.send([envelope(provider, first)])

    later = job("e2", [("android_push_token", "a2")])
    await provider.send([envelope(provider, first, later)])

    devices = [
        [v for e in t.batch for g in e["devices"] for v in g["id_values"]]
        for t in sim.state.transfers.values()
    ]
    assert devices == [["a1"], ["a2"]]


async def test_a_restarted_provider_is_stopped_by_the_409_and_tracks_the_transfer(
    sim: AppMetricaSimulator, make_provider: ProviderFactory
) -> None:
    before = make_provider()
    await before.start()
    sim.set_faults(Faults(drop_after_accept_count=1))
    jobs = [job("e1", [("android_push_token", "a1")])]
    with pytest.raises(OutcomeUnknown):
        await before.send([envelope(before, *jobs)])

    after = make_provider()  # no memory of the attempt
    await after.send([envelope(after, *jobs)])

    assert len(sim.state.transfers) == 1
    assert (sends(sim), sends(sim, LOOKUP)) == (2, 1)  # 409, then looked up


@pytest.mark.parametrize(
    ("status", "error"),
    [(420, RateLimited), (429, RateLimited), (503, ProviderUnavailable)],
)
async def test_throttling_and_outages_are_transient(
    sim: AppMetricaSimulator,
    make_provider: ProviderFactory,
    status: int,
    error: type[Exception],
) -> None:
    provider = make_provider()
    await provider.start()
    sim.set_faults(Faults(error_status=status, error_count=1))
    request = [envelope(provider, job("e1", [("android_push_token", "a1")]))]
    with pytest.raises(error, match=str(status)):
        await provider.send(request)
    await provider.send(request)
    assert len(sim.state.transfers) == 1


async def test_a_refused_request_keeps_the_documented_error_body(
    sim: AppMetricaSimulator, make_provider: ProviderFactory
) -> None:
    provider = make_provider()
    bad = job("e1", [("android_push_token", "a1")], extras={"android": {"priority": 7}})
    with pytest.raises(ProviderRejected, match=r"400 .*invalid_parameter.*priority") as caught:
        await provider.send([envelope(provider, bad)])
    assert caught.value.status == 400
    assert '"error_type":"invalid_parameter"' in caught.value.body.replace(" ", "")
    assert sim.state.transfers == {}


async def test_status_polls_ride_out_transient_errors_without_resending(
    sim: AppMetricaSimulator, make_provider: ProviderFactory
) -> None:
    metrics = Metrics()

    async def status_fails_after_send(response: httpx.Response) -> None:
        if response.request.url.path.endswith("send-batch"):
            sim.set_faults(Faults(scope="all", error_status=503, error_count=2))

    async with httpx.AsyncClient(event_hooks={"response": [status_fails_after_send]}) as http:
        provider = make_provider(metrics=metrics, http=http)
        await provider.send([envelope(provider, job("e1", [("android_push_token", "a1")]))])

    assert sends(sim) == 1
    assert sends(sim, "GET /push/v1/status/{transfer_id}") >= 3
    assert metrics.value("appmetrica_transfers_total", status="sent") == 1


async def test_tracking_gives_up_after_the_status_timeout_and_the_retry_only_looks(
    sim: AppMetricaSimulator, make_provider: ProviderFactory, manual_time: ManualTime
) -> None:
    metrics = Metrics()
    provider = make_provider(metrics=metrics, status_timeout_s=0.02)
    manual_time.running = False  # the transfer stays `pending`
    request = [envelope(provider, job("e1", [("android_push_token", "a1")]))]

    with pytest.raises(OutcomeUnknown, match="still pending"):
        await provider.send(request)
    assert metrics.value("appmetrica_transfers_total", status="timed_out") == 1

    manual_time.running = True
    await provider.send(request)
    assert len(sim.state.transfers) == 1
    assert metrics.value("appmetrica_transfers_total", status="sent") == 1
