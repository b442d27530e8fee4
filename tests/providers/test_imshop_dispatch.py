"""The real IMSHOP provider and dispatcher against the simulator, over real HTTP,
on fake time.

The dispatcher, its budget and the simulator's window share a ``FakeClock``:
``finish`` lets requests run on loopback, and moves time to the dispatcher's next
wake-up only while none is on the wire. A budget of 3 requests per second and
retries of a second make minutes of provider behaviour cost a few real
round trips.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from testkit import T0, RecordingSink, examples, make_job

from consumer.clock import FakeClock
from consumer.dispatch import Dispatcher
from consumer.dispatch.budget import provider_budget
from consumer.dispatch.scheduler import Scheduler
from consumer.errors import InvalidEvent
from consumer.events import parse_event
from consumer.local.simulators.imshop import Faults, ImshopSimulator, SimulatorConfig
from consumer.local.simulators.imshop_model import validate
from consumer.metrics import Metrics
from consumer.providers.imshop import ImshopProvider, body
from consumer.providers.registry import build_provider
from consumer.push import Message, Outcome, PushJob, RenderedPush
from consumer.settings import DispatchSettings, ImshopSettings, Settings

LIMIT, WINDOW_S = 3, 1.0
REAL_WAIT_S = 10.0  # one loopback round trip, however loaded the machine
MAX_TURNS = 1_000
TURNS = 20  # loop turns the dispatcher gets to react, with nothing on the wire
EVENT = {
    "event_type": "bonus.accrued",
    "occurred_at": "2026-11-22T09:00:00+03:00",
    "bonus": {"amount": 100},
}


@dataclass
class Stack:
    clock: FakeClock
    sim: ImshopSimulator
    dispatcher: Dispatcher
    sink: RecordingSink
    metrics: Metrics

    def job(self, event_id: str, user: str, title: str, ttl_s: float = 600) -> PushJob:
        return make_job(event_id, user=user, text=title, ttl_s=ttl_s, occurred_at=self.clock.now())

    def outcome(self, event_id: str) -> tuple[Outcome, str | None, str]:
        (record,) = self.sink.outcomes[event_id]
        return record.outcome, record.reason, str(record.error)

    async def finish(self, deadline_s: float = 600) -> int:
        """``drain`` on fake time: requests take real (loopback) time, and time jumps
        to the dispatcher's next wake-up only while none is on the wire."""
        drained = asyncio.create_task(self.dispatcher.drain(deadline_s))
        for _ in range(MAX_TURNS):
            await self.quiet()
            if drained.done():
                return drained.result()
            wake = self.clock.next_wakeup
            assert wake is not None, "drain waits, yet nothing is due"
            await self.clock.advance(wake - self.clock.monotonic())
        raise AssertionError(f"drain did not end in {MAX_TURNS} turns")

    async def quiet(self) -> None:
        """Return once the loop has had ``TURNS`` turns in a row with no request on the
        wire: it has reacted to the last one's end (one started meanwhile is waited for)."""
        calm = 0
        while calm < TURNS:
            if await self.dispatcher.wait_in_flight(0):
                calm += 1
                await asyncio.sleep(0)
            else:
                calm = 0
                await asyncio.wait_for(self.dispatcher.wait_in_flight(), REAL_WAIT_S)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[ImshopSimulator]:
    config = SimulatorConfig(api_key="K", rate_limit=LIMIT, window_s=WINDOW_S, max_ids=1000)
    async with ImshopSimulator(config, clock=clock.monotonic) as made:
        yield made


@pytest.fixture
async def stack(clock: FakeClock, sim: ImshopSimulator) -> AsyncIterator[Stack]:
    settings = Settings(
        imshop=ImshopSettings(
            url=sim.url,
            api_key=SecretStr("K"),
            rate_limit_requests=LIMIT,
            rate_limit_window_s=WINDOW_S,
            rate_limit_margin_s=0.05,
            assume_window_used_at_start=False,
        ),
        dispatch=DispatchSettings(retry_initial_backoff_s=1.0, retry_max_backoff_s=4.0),
    )
    metrics, sink = Metrics(), RecordingSink()
    sink.clock = clock
    provider = build_provider(settings, None, clock=clock, metrics=metrics)
    budget = provider_budget(settings, clock)
    dispatcher = Dispatcher(
        provider, settings.dispatch, budget, sink, clock, metrics, rng=random.Random(7)
    )
    yield Stack(clock, sim, dispatcher, sink, metrics)
    await dispatcher.aclose()
    await provider.aclose()


async def test_pushes_go_out_coalesced_and_within_the_limit(stack: Stack) -> None:
    for i in range(7):
        stack.dispatcher.submit(stack.job(f"e{i}", f"7999000000{i}", f"Заказ {i} готов"))
    for i in range(40):
        stack.dispatcher.submit(stack.job(f"e{100 + i}", f"7988000{i:04d}", "Скидка 10%"))

    assert await stack.finish() == 0

    pushes = stack.sim.pushes
    assert len(pushes) == 8
    shared = [p for p in pushes if p["message"]["title"] == "Скидка 10%"]
    assert len(shared) == 1
    assert len(shared[0]["userIds"]) == 40
    stats = stack.sim.stats()
    assert stats["violations"] == 0
    assert stats["max_in_window"] == LIMIT
    assert stack.sink.count(Outcome.SENT) == 47
    assert len(stack.sink.outcomes) == 47
    gaps = [b["at"] - a["at"] for a, b in zip(pushes, pushes[LIMIT:], strict=False)]
    assert min(gaps) >= WINDOW_S
    assert max(gaps) <= WINDOW_S + 0.05 + 0.01, "the budget waits its margin, no longer"


async def test_transient_failures_are_retried_until_the_push_expires(stack: Stack) -> None:
    stack.sim.set_faults(
        Faults(script=["http_503", "http_504"], error_rate=1.0, error_kind="unavailable")
    )
    stack.dispatcher.submit(stack.job("e1", "79990000001", "Заказ 1 в пути", ttl_s=30))

    assert await stack.finish() == 0

    outcome, reason, error = stack.outcome("e1")
    assert (outcome, reason) == (Outcome.EXPIRED, "ttl_elapsed")  # not a dead letter
    assert "Integration is unavailable" in error
    assert stack.clock.monotonic() == pytest.approx(1_030, abs=0.01), "expired at its TTL"
    requests = stack.sim.stats()["requests"]
    assert 9 <= requests <= 17, "retries 0.5-1, 1-2, 2-4 s apart, then 2-4 s (jitter) for 30 s"
    retries = stack.metrics.value
    assert retries("push_retries_total", provider="imshop", reason="outcome_unknown") == 2
    unavailable = retries("push_retries_total", provider="imshop", reason="provider_unavailable")
    assert unavailable == requests - 2


async def test_a_retry_that_succeeds_ends_in_sent(stack: Stack) -> None:
    stack.sim.set_faults(Faults(script=["reset", "http_500"]))
    stack.dispatcher.submit(stack.job("e1", "79990000001", "Заказ 1 в пути"))

    assert await stack.finish() == 0

    assert stack.outcome("e1")[0] is Outcome.SENT
    assert len(stack.sim.pushes) == 1
    assert stack.sim.stats()["requests"] == 3
    assert stack.sim.stats()["violations"] == 0


async def test_a_refused_request_is_dead_lettered_with_the_joi_message(stack: Stack) -> None:
    stack.dispatcher.submit(stack.job("e1", " ", "Пустой получатель"))  # no recipient: skipped
    job = stack.job("e2", "79990000002", "Заказ")
    job.push = RenderedPush("rule", Message("Заказ", ""), job.push.push_class, ttl_s=600)
    stack.dispatcher.submit(job)

    assert await stack.finish() == 0

    assert stack.outcome("e1")[:2] == (Outcome.SKIPPED, "no_recipients")
    outcome, reason, error = stack.outcome("e2")
    assert (outcome, reason) == (Outcome.DEAD_LETTERED, "provider_rejected")
    assert 'child "summary" fails because ["summary" is not allowed to be empty]' in error


async def test_the_run_loop_serves_submissions_that_come_while_it_runs(stack: Stack) -> None:
    runner = asyncio.create_task(stack.dispatcher.run())
    for i in range(5):  # one every 50 ms; the budget takes 3 a second (and 50 ms of margin)
        stack.dispatcher.submit(stack.job(f"e{i}", f"7999000000{i}", f"Заказ {i}"))
        await stack.quiet()
        await stack.clock.advance(0.05)

    assert await stack.finish() == 0

    assert runner.done()
    assert [p["at"] for p in stack.sim.pushes] == pytest.approx([0, 0.05, 0.1, 1.05, 1.1])
    assert stack.sim.stats()["violations"] == 0


# Suspected in issue 12: "one bad recipient in a coalesced IMSHOP request dead-letters
# all of its customers". IMSHOP documents one check of userIds: a non-empty array of
# distinct, non-empty strings (research: push-apis.md, 2.2-2.3); a 400 is about the
# request. Shown here: whatever recipient id an event may carry, the request built for
# it and up to 1000 others passes that check and encodes, so no single recipient can
# spoil the request (an id the contract refuses never reaches the dispatcher).

id_text = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates too


@settings(max_examples=examples(200), deadline=None)
@given(ids=st.lists(id_text, min_size=1, max_size=40), install=st.booleans())
def test_no_recipient_an_event_may_carry_can_spoil_a_coalesced_request(
    ids: list[str], install: bool
) -> None:
    unused = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(500)))
    provider = ImshopProvider(ImshopSettings(), client=unused)  # addresses, never sends
    scheduler = Scheduler(
        limits=provider.limits,
        coalesce_key=provider.coalesce_key,
        recipients=provider.recipients,
        settings=DispatchSettings(),
    )
    now = T0
    for number, raw in enumerate(ids):
        field_name = "install_id" if install else "user_id"
        record = {**EVENT, "event_id": f"e{number}", "recipient": {field_name: raw}}
        try:
            event = parse_event(json.dumps(record).encode(), max_bytes=65_536)
        except InvalidEvent:
            continue  # dead-lettered alone by the consume loop, never in a request
        job = make_job(event.event_id, user=event.recipient.push_id, text="Скидка 10%")
        job.recipient = event.recipient
        scheduler.add(job, 1_000.0, now)

    while (request := scheduler.next_request(1_000.0, now)) is not None and request.envelopes:
        (envelope,) = request.envelopes
        payload = body(envelope)
        assert validate(payload, provider.limits.max_recipients_per_request) is None, payload
        httpx.Request("POST", "http://imshop.invalid/push", json=payload)  # encodes as JSON
        scheduler.on_sent(request)
    outcomes = {f.outcome for f in scheduler.pop_finished()}
    assert outcomes <= {Outcome.SENT, Outcome.SKIPPED}
