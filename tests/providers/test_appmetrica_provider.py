"""The AppMetrica provider against the simulator over real HTTP on 127.0.0.1 (fake time)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
from appmetrica_support import (
    ALL_TYPES,
    APP_ID,
    LOOKUP,
    POLL,
    SEND,
    TOKEN,
    Rig,
    envelope,
    job,
    rig,
)

from consumer.dispatch.scheduler import Scheduler
from consumer.errors import (
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    SettingsError,
)
from consumer.local.simulators.appmetrica_model import SimulatorConfig
from consumer.local.simulators.appmetrica_state import Faults
from consumer.providers.appmetrica import AppMetricaProvider
from consumer.providers.base import Verdict
from consumer.push import PushClass
from consumer.settings import AppMetricaSettings, DispatchSettings

ANDROID = [("android_push_token", "a1")]


@pytest.fixture
async def am() -> AsyncIterator[Rig]:
    async with rig() as made:
        yield made


async def test_start_creates_a_group_per_class_once_and_reuses_them(am: Rig) -> None:
    first = await am.provider().start()
    second = await am.provider().start()

    assert first == second
    names = sorted(g.name for g in am.sim.state.groups.values())
    assert names == ["order-push-marketing", "order-push-transactional"]
    assert am.calls("POST /push/v1/management/groups") == 2
    assert am.calls("GET /push/v1/management/groups") == 2


async def test_start_lists_again_when_a_group_appears_meanwhile(am: Rig) -> None:
    async def someone_else_creates_it(response: httpx.Response) -> None:
        if response.request.method == "GET" and not am.sim.state.groups:
            group = {"app_id": APP_ID, "name": "order-push-transactional"}
            am.sim.state.create_group({"group": group})

    am.http.event_hooks["response"] = [someone_else_creates_it]
    groups = await am.provider().start()

    by_name = {g.name: g.id for g in am.sim.state.groups.values()}
    assert groups == {c: by_name[f"order-push-{c.value}"] for c in PushClass}
    assert am.calls("POST /push/v1/management/groups") == 2  # one answered 409
    assert am.calls("GET /push/v1/management/groups") == 2


async def test_start_with_a_bad_token_is_fatal_and_says_so(am: Rig) -> None:
    with pytest.raises(SettingsError, match="APPMETRICA_TOKEN"):
        await am.provider(token="expired").start()


def test_app_id_and_token_are_required(am: Rig) -> None:
    with pytest.raises(SettingsError, match="APPMETRICA_APP_ID"):
        AppMetricaProvider(AppMetricaSettings(token="t", app_id=None), quota=am.budget)
    with pytest.raises(SettingsError, match="APPMETRICA_TOKEN"):
        AppMetricaProvider(AppMetricaSettings(token="", app_id=7), quota=am.budget)


def test_recipients_are_deliveries_and_a_request_key_is_one_rule(am: Rig) -> None:
    provider = am.provider(max_devices_per_request=5000)
    assert provider.limits.max_recipients_per_request == 5000
    assert provider.limits.max_messages_per_request == 1  # one coalesce key per request
    devices = [("ios_push_token", "i1"), ("android_push_token", "a1"), ("ios_push_token", "i1")]
    mine = provider.recipients(job("e1", devices))
    assert [r.split("|")[1] for r in mine] == ["ios_push_token:i1", "android_push_token:a1"]
    other_text = provider.recipients(job("e2", devices, title="Заказ 2 собран"))
    assert set(mine).isdisjoint(other_text)  # a device getting two texts counts twice
    assert provider.recipients(job("e3", [])) == ()  # the dispatcher records `skipped`

    key = provider.coalesce_key
    assert key(job("e4", ANDROID)) == key(job("e5", ANDROID, title="Заказ 5 собран"))
    assert key(job("e6", ANDROID)) != key(job("e7", ANDROID, rule="order_shipped"))
    marketing = job("e8", ANDROID, rule="bonus", push_class=PushClass.MARKETING)
    assert key(marketing) == (PushClass.MARKETING, "bonus", 0)


async def test_one_rules_texts_go_in_one_request_tagged_with_the_rule(am: Rig) -> None:
    provider = am.provider()
    groups = await provider.start()
    shared = [job("e1", ANDROID), job("e2", [("ios_push_token", "i2")])]
    personal = job("e3", [("google_aid", "g3")], title="Заказ 3 в пути")
    badge = job("e4", [("appmetrica_device_id", "42")], title="Бонус", extras={"iOS": {"badge": 1}})

    await provider.send([envelope(provider, *shared, personal, badge)])

    [transfer] = am.sim.state.transfers.values()
    assert (transfer.group_id, transfer.tag) == (groups[PushClass.TRANSACTIONAL], "order_ready")
    assert [e["messages"]["android"]["content"]["title"] for e in transfer.batch] == [
        "Заказ собран",
        "Заказ 3 в пути",
        "Бонус",
    ]
    assert transfer.batch[0]["devices"] == [
        {"id_type": "android_push_token", "id_values": ["a1"]},
        {"id_type": "ios_push_token", "id_values": ["i2"]},
    ]
    assert transfer.batch[2]["messages"]["iOS"]["content"]["badge"] == 1
    assert transfer.client_transfer_id is not None


async def test_send_returns_on_acceptance_and_the_tracker_polls_once_later(am: Rig) -> None:
    provider = am.provider()
    await provider.start()

    confirmation = await provider.send([envelope(provider, job("e1", ANDROID))])

    [transfer] = am.sim.state.record()
    assert transfer["status"] == "pending"  # accepted, not yet validated
    assert am.calls(POLL) == 0  # no poll right after the send: it would only say `pending`
    await am.advance(1.9)
    assert am.calls(POLL) == 0
    await am.advance(0.1)  # status_poll_initial_s after the send; the simulator says `sent`
    assert am.calls(POLL) == 1
    assert am.metrics.value("appmetrica_transfers_total", status="sent") == 1
    assert provider.tracker.tracked == 0
    assert await confirmation == Verdict()  # delivered


async def test_a_failed_transfer_refuses_its_events_with_appmetricas_errors(am: Rig) -> None:
    provider = am.provider()
    await provider.start()
    am.sim.set_faults(Faults(fail_transfers_count=1))

    confirmation = await provider.send([envelope(provider, job("e1", ANDROID))])  # accepted
    waiting = asyncio.ensure_future(confirmation)
    await am.advance(1.9)
    assert not waiting.done()  # no verdict before AppMetrica gave one
    await am.advance(0.1)

    verdict = await waiting
    assert list(verdict.refused) == ["e1"]
    assert str(verdict.refused["e1"]) == (
        "AppMetrica failed transfer 1 of order_ready: Invalid push credentials for platform android"
    )
    assert am.metrics.value("appmetrica_transfers_total", status="failed") == 1
    assert provider.tracker.tracked == 0


async def test_the_verdict_comes_once_validation_passed_and_polls_go_on_to_sent() -> None:
    config = SimulatorConfig(token=TOKEN, status_step_s=1.5)  # in_progress at 1.5 s, sent at 3
    async with rig(config=config) as am:
        provider = am.provider()
        await provider.start()
        waiting = asyncio.ensure_future(
            await provider.send([envelope(provider, job("e1", ANDROID))])
        )
        await am.advance(2.0)  # the first poll says `in_progress`: it can no longer fail

        assert waiting.done()
        assert waiting.result() == Verdict()
        assert provider.tracker.tracked == 1
        await am.advance(4.0)
        assert am.metrics.value("appmetrica_transfers_total", status="sent") == 1


async def test_a_transfer_never_final_leaves_its_events_unconfirmed(am: Rig) -> None:
    provider = am.provider(status_timeout_s=10.0)
    await provider.start()
    am.sim.state.config = SimulatorConfig(token=TOKEN, status_step_s=1000.0)  # stays pending
    confirmation = await provider.send([envelope(provider, job("e1", ANDROID))])
    for _ in range(10):
        await am.advance(1.0)

    assert await confirmation == Verdict(unconfirmed=frozenset({"e1"}))
    assert am.metrics.value("appmetrica_transfers_total", status="timed_out") == 1


async def test_a_closing_provider_leaves_its_confirmations_without_a_verdict(am: Rig) -> None:
    provider = am.provider()
    await provider.start()
    waiting = asyncio.ensure_future(await provider.send([envelope(provider, job("e1", ANDROID))]))
    await am.advance(0.0)

    await provider.aclose()

    with pytest.raises(asyncio.CancelledError):
        await waiting  # the dispatcher records no outcome: uncommitted, sent after a restart


async def test_polls_back_off_and_tracking_gives_up_after_the_status_timeout(am: Rig) -> None:
    provider = am.provider(status_timeout_s=20.0)
    await provider.start()
    am.sim.state.config = SimulatorConfig(token=TOKEN, status_step_s=1000.0)  # stays pending

    await provider.send([envelope(provider, job("e1", ANDROID))])
    polled_at = []
    for _ in range(40):
        before = am.calls(POLL)
        await am.advance(1.0)
        if am.calls(POLL) > before:
            polled_at.append(am.clock.monotonic())

    start = polled_at[0] - 2.0
    assert [round(t - start) for t in polled_at] == [2, 6, 14, 20]  # waits 2, 4, 8, then the end
    assert am.metrics.value("appmetrica_transfers_total", status="timed_out") == 1
    assert provider.tracker.tracked == 0


async def test_status_polls_ride_out_transient_errors_without_resending(am: Rig) -> None:
    provider = am.provider()
    await provider.start()
    await provider.send([envelope(provider, job("e1", ANDROID))])
    am.sim.set_faults(Faults(scope="all", error_status=503, error_count=2))

    await am.advance(2.0)
    await am.advance(4.0)
    await am.advance(8.0)

    assert am.calls(SEND) == 1
    assert am.calls(POLL) == 3
    assert am.metrics.value("appmetrica_transfers_total", status="sent") == 1


async def test_a_too_large_text_is_refused_alone(am: Rig) -> None:
    provider = am.provider()
    good = job("e1", ANDROID)
    big = job(
        "e2", [("android_push_token", "a2")], title="Big", extras={"iOS": {"data": "x" * 4000}}
    )

    confirmation = await provider.send([envelope(provider, good, big)])  # the good one goes
    await am.advance(2.0)
    verdict = await confirmation

    assert list(verdict.refused) == ["e2"]
    assert "3968-byte limit" in str(verdict.refused["e2"])
    assert not verdict.unconfirmed
    [transfer] = am.sim.state.transfers.values()
    assert transfer.devices() == 1
    assert transfer.batch[0]["devices"][0]["id_values"] == ["a1"]


async def test_a_refused_request_keeps_the_documented_error_body(am: Rig) -> None:
    provider = am.provider()
    bad = job("e1", ANDROID, extras={"android": {"priority": 7}})
    with pytest.raises(ProviderRejected, match=r"400 .*invalid_parameter.*priority") as caught:
        await provider.send([envelope(provider, bad)])
    assert caught.value.status == 400
    assert '"error_type":"invalid_parameter"' in caught.value.body.replace(" ", "")
    assert am.sim.state.transfers == {}


@pytest.mark.parametrize(
    ("status", "error"),
    [(420, RateLimited), (429, RateLimited), (503, ProviderUnavailable)],
)
async def test_throttling_and_outages_are_transient(
    am: Rig, status: int, error: type[Exception]
) -> None:
    provider = am.provider()
    await provider.start()
    am.sim.set_faults(Faults(error_status=status, error_count=1))
    request = [envelope(provider, job("e1", ANDROID))]

    with pytest.raises(error, match=str(status)):
        await provider.send(request)
    await am.advance(0.0)  # a 503 may have been processed: its lookup runs now
    await provider.send(request)

    assert len(am.sim.state.transfers) == 1


@pytest.mark.parametrize("drop_mode", ["error", "hang"])
async def test_a_retry_after_a_lost_answer_does_not_push_twice(am: Rig, drop_mode: str) -> None:
    provider = am.provider(timeout_s=0.3)
    await provider.start()
    am.sim.set_faults(Faults.model_validate({"drop_after_accept_count": 1, "drop_mode": drop_mode}))
    request = [envelope(provider, job("e1", ANDROID))]

    with pytest.raises(OutcomeUnknown):
        await provider.send(request)
    await am.advance(0.0)  # the tracker looks the transfer up at once: AppMetrica has it
    confirmation = await provider.send(request)  # the dispatcher's retry: nothing to send

    assert len(am.sim.state.transfers) == 1
    assert (am.calls(SEND), am.calls(LOOKUP)) == (1, 1)
    await am.advance(2.0)  # the found transfer is followed to its end like any other
    assert am.metrics.value("appmetrica_transfers_total", status="sent") == 1
    assert await confirmation == Verdict()


async def test_a_retry_waits_for_the_verdict_on_the_transfer_its_lookup_found(am: Rig) -> None:
    provider = am.provider(timeout_s=0.3)
    await provider.start()
    am.sim.set_faults(Faults(drop_after_accept_count=1, fail_transfers_count=1))
    request = [envelope(provider, job("e1", ANDROID))]
    with pytest.raises(OutcomeUnknown):
        await provider.send(request)
    await am.advance(0.0)  # found

    confirmation = await provider.send(request)
    await am.advance(2.0)

    assert "Invalid push credentials" in str((await confirmation).refused["e1"])
    assert am.calls(SEND) == 1


async def test_a_retry_after_a_request_that_was_never_processed_sends_it(am: Rig) -> None:
    provider = am.provider()
    await provider.start()
    am.sim.set_faults(Faults(error_status=500, error_count=1))
    request = [envelope(provider, job("e1", ANDROID))]

    with pytest.raises(OutcomeUnknown):
        await provider.send(request)
    await am.advance(0.0)  # looked up: 404
    await provider.send(request)

    assert len(am.sim.state.transfers) == 1
    assert (am.calls(SEND), am.calls(LOOKUP)) == (2, 1)


async def test_a_retry_before_the_lookup_answered_sends_nothing_and_asks_for_later() -> None:
    async with rig(limit=3) as am:
        provider = am.provider()
        await provider.start()  # list, create, create: the three places of this second
        await am.advance(1.0)
        am.sim.set_faults(Faults(drop_after_accept_count=1))
        request = [envelope(provider, job("e1", ANDROID))]
        in_flight = [am.budget.try_start() for _ in range(3)]  # the dispatcher's requests
        with pytest.raises(OutcomeUnknown):
            await provider.send(request)  # one of them: its answer is lost
        await am.advance(0.0)  # the lookup is due, but waits for a place

        with pytest.raises(ProviderUnavailable, match="has not yet said"):
            await provider.send(request)
        assert (am.calls(SEND), am.calls(LOOKUP)) == (1, 0)

        for slot in in_flight:
            assert slot is not None
            am.budget.finish(slot)
        await am.advance(1.0)  # a window later the lookup has its place: found
        await provider.send(request)
        assert (am.calls(SEND), am.calls(LOOKUP)) == (1, 1)


async def test_a_retry_coalesced_with_new_jobs_sends_only_the_new_ones(am: Rig) -> None:
    provider = am.provider()
    await provider.start()
    am.sim.set_faults(Faults(drop_after_accept_count=1))
    first = job("e1", ANDROID)
    with pytest.raises(OutcomeUnknown):
        await provider.send([envelope(provider, first)])
    await am.advance(0.0)

    later = job("e2", [("android_push_token", "a2")])
    await provider.send([envelope(provider, first, later)])

    devices = [
        [v for e in t.batch for g in e["devices"] for v in g["id_values"]]
        for t in am.sim.state.transfers.values()
    ]
    assert devices == [["a1"], ["a2"]]


async def test_a_restarted_provider_is_stopped_by_the_409_and_follows_the_transfer(am: Rig) -> None:
    before = am.provider()
    await before.start()
    am.sim.set_faults(Faults(drop_after_accept_count=1))
    jobs = [job("e1", ANDROID)]
    with pytest.raises(OutcomeUnknown):
        await before.send([envelope(before, *jobs)])
    await before.aclose()  # it crashed before it could look the transfer up

    after = am.provider()  # no memory of the attempt
    await after.send([envelope(after, *jobs)])  # 409: AppMetrica has this very content

    assert len(am.sim.state.transfers) == 1
    assert am.calls(SEND) == 2
    await am.advance(2.0)
    assert am.calls(LOOKUP) == 1  # followed by its client id
    assert am.metrics.value("appmetrica_transfers_total", status="sent") == 1


async def test_every_call_but_the_send_takes_its_own_place_in_the_quota() -> None:
    async with rig(limit=3) as am:
        provider = am.provider()
        await provider.start()
        assert am.budget.used() == 3  # list, create, create
        assert am.budget.try_start() is None

        await am.advance(1.0)
        in_flight = [am.budget.try_start() for _ in range(3)]  # one of them covers the send
        await provider.send([envelope(provider, job("e1", ANDROID))])
        await am.advance(2.0)  # the poll is due, but every place is in flight
        assert am.calls(POLL) == 0
        for slot in in_flight:
            assert slot is not None
            am.budget.finish(slot)
        await am.advance(0.9)
        assert am.calls(POLL) == 0
        await am.advance(0.2)  # a window after the requests ended
        assert am.calls(POLL) == 1


async def test_more_than_five_id_types_never_take_a_request_over_the_element_cap(am: Rig) -> None:
    # Proven real before: the scheduler filled a request with 4 envelopes (the cap), each of
    # 7 id types, and the provider made 2 elements of each: 8 elements under a cap of 4.
    provider = am.provider(max_messages_per_request=4)
    scheduler = Scheduler(
        limits=provider.limits,
        coalesce_key=provider.coalesce_key,
        recipients=provider.recipients,
        settings=DispatchSettings(),
    )
    now = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
    for n in range(5):
        devices = [(t, f"{t}-{n}") for t in ALL_TYPES]
        scheduler.add(job(f"e{n}", devices, title=f"Заказ {n} собран"), 0.0, now)

    while (request := scheduler.next_request(0.0, now)) is not None and request.entries:
        await provider.send(request.envelopes)
        scheduler.on_sent(request)

    transfers = am.sim.state.transfers.values()
    assert [len(t.batch) for t in transfers] == [4, 4, 2]  # two texts (two elements each)
    assert all(1 <= len(e["devices"]) <= 5 for t in transfers for e in t.batch)
    assert sum(t.devices() for t in transfers) == 5 * len(ALL_TYPES)  # every device, once


async def test_a_text_already_in_the_open_batch_joins_it_even_when_it_is_full(am: Rig) -> None:
    provider = am.provider(max_messages_per_request=2)
    first = job("e1", ANDROID, title="Скидка 10%")
    second = job("e2", [("android_push_token", "a2")], title="Заказ 2 собран")
    same_text = job("e3", [("android_push_token", "a3")], title="Скидка 10%")
    more_types = job("e4", [(t, "x") for t in ALL_TYPES], title="Скидка 10%")

    keys = [provider.coalesce_key(j) for j in (first, second, same_text, more_types)]

    assert [k[2] for k in keys] == [0, 0, 0, 1]  # the text would need a second element: next


async def test_a_request_mixing_rules_is_refused_as_a_bug_before_any_call(am: Rig) -> None:
    provider = am.provider()
    one, other = job("e1", ANDROID), job("e2", ANDROID, rule="order_shipped")
    with pytest.raises(ValueError, match="one rule's pushes"):
        await provider.send([envelope(provider, one), envelope(provider, other)])
    assert am.calls(SEND) == 0
