"""The real IMSHOP provider and dispatcher against the simulator, over real HTTP.

A small budget (3 requests per second) keeps each scenario around a second;
every wait is bounded by ``drain``'s deadline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from consumer.clock import SystemClock
from consumer.dispatch import Dispatcher
from consumer.dispatch.budget import provider_budget
from consumer.dispatch.scheduler import Scheduler
from consumer.errors import ConsumerError, InvalidEvent
from consumer.events import Recipient, parse_event
from consumer.local.simulators.imshop import Faults, ImshopSimulator, SimulatorConfig
from consumer.local.simulators.imshop_model import validate
from consumer.metrics import Metrics
from consumer.providers.imshop import ImshopProvider, body
from consumer.providers.registry import build_provider
from consumer.push import Message, Origin, Outcome, PushClass, PushJob, RenderedPush, Variant
from consumer.settings import DispatchSettings, ImshopSettings, Settings

LIMIT, WINDOW_S = 3, 1.0
EVENT = {
    "event_type": "bonus.accrued",
    "occurred_at": "2026-11-22T09:00:00+03:00",
    "bonus": {"amount": 100},
}


def _job(event_id: str, user: str, title: str, ttl_s: float = 600) -> PushJob:
    push = RenderedPush("rule", Message(title, "summary"), PushClass.TRANSACTIONAL, ttl_s=ttl_s)
    return PushJob(
        origin=Origin("orders", 0, int(event_id.strip("e") or 0)),
        event_id=event_id,
        event_type="order.status_changed",
        recipient=Recipient(user_id=user),
        push=push,
        occurred_at=dt.datetime.now(dt.UTC),
    )


@dataclass
class Sink:
    outcomes: dict[str, tuple[Outcome, str | None, ConsumerError | None]] = field(
        default_factory=dict
    )

    def record(
        self,
        origin: Origin,
        outcome: Outcome,
        *,
        event_id: str | None = None,
        event_type: str | None = None,
        reason: str | None = None,
        error: ConsumerError | None = None,
        variant: Variant | None = None,
    ) -> None:
        assert event_id not in self.outcomes, "one outcome per event"
        self.outcomes[event_id or ""] = (outcome, reason, error)


@dataclass
class Stack:
    sim: ImshopSimulator
    dispatcher: Dispatcher
    sink: Sink
    metrics: Metrics


@pytest.fixture
async def sim() -> AsyncIterator[ImshopSimulator]:
    config = SimulatorConfig(api_key="K", rate_limit=LIMIT, window_s=WINDOW_S, max_ids=1000)
    async with ImshopSimulator(config) as made:
        yield made


@pytest.fixture
async def stack(sim: ImshopSimulator) -> AsyncIterator[Stack]:
    settings = Settings(
        imshop=ImshopSettings(
            url=sim.url,
            api_key=SecretStr("K"),
            rate_limit_requests=LIMIT,
            rate_limit_window_s=WINDOW_S,
            rate_limit_margin_s=0.05,
            timeout_s=0.3,
            assume_window_used_at_start=False,
        ),
        dispatch=DispatchSettings(retry_initial_backoff_s=0.05, retry_max_backoff_s=0.1),
    )
    clock, metrics, sink = SystemClock(), Metrics(), Sink()
    provider = build_provider(settings, None, clock=clock, metrics=metrics)
    budget = provider_budget(settings, clock)
    dispatcher = Dispatcher(provider, settings.dispatch, budget, sink, clock, metrics)
    yield Stack(sim, dispatcher, sink, metrics)
    await dispatcher.aclose()
    await provider.aclose()


async def test_pushes_go_out_coalesced_and_within_the_limit(stack: Stack) -> None:
    for i in range(7):
        stack.dispatcher.submit(_job(f"e{i}", f"7999000000{i}", f"Заказ {i} готов"))
    for i in range(40):
        stack.dispatcher.submit(_job(f"e{100 + i}", f"7988000{i:04d}", "Скидка 10%"))

    assert await stack.dispatcher.drain(deadline_s=10) == 0

    pushes = stack.sim.pushes
    assert len(pushes) == 8
    shared = [p for p in pushes if p["message"]["title"] == "Скидка 10%"]
    assert len(shared) == 1
    assert len(shared[0]["userIds"]) == 40
    stats = stack.sim.stats()
    assert stats["violations"] == 0
    assert stats["max_in_window"] <= LIMIT
    assert {o for o, _, _ in stack.sink.outcomes.values()} == {Outcome.SENT}
    assert len(stack.sink.outcomes) == 47
    gaps = [b["at"] - a["at"] for a, b in zip(pushes, pushes[LIMIT:], strict=False)]
    assert min(gaps) >= WINDOW_S


async def test_transient_failures_are_retried_until_the_push_expires(stack: Stack) -> None:
    stack.sim.set_faults(
        Faults(script=["http_503", "timeout"], error_rate=1.0, error_kind="unavailable", hang_s=3)
    )
    stack.dispatcher.submit(_job("e1", "79990000001", "Заказ 1 в пути", ttl_s=1.5))

    assert await stack.dispatcher.drain(deadline_s=10) == 0

    outcome, reason, error = stack.sink.outcomes["e1"]
    assert (outcome, reason) == (Outcome.EXPIRED, "ttl_elapsed")  # not a dead letter
    assert "Integration is unavailable" in str(error)
    assert stack.sim.stats()["requests"] >= 3
    retries = stack.metrics.value
    assert retries("push_retries_total", provider="imshop", reason="outcome_unknown") == 2
    assert retries("push_retries_total", provider="imshop", reason="provider_unavailable") >= 1


async def test_a_retry_that_succeeds_ends_in_sent(stack: Stack) -> None:
    stack.sim.set_faults(Faults(script=["reset", "http_500"]))
    stack.dispatcher.submit(_job("e1", "79990000001", "Заказ 1 в пути"))

    assert await stack.dispatcher.drain(deadline_s=10) == 0

    assert stack.sink.outcomes["e1"][0] is Outcome.SENT
    assert len(stack.sim.pushes) == 1
    assert stack.sim.stats()["requests"] == 3
    assert stack.sim.stats()["violations"] == 0


async def test_a_refused_request_is_dead_lettered_with_the_joi_message(stack: Stack) -> None:
    stack.dispatcher.submit(_job("e1", " ", "Пустой получатель"))  # no recipient: skipped
    job = _job("e2", "79990000002", "Заказ")
    job.push = RenderedPush("rule", Message("Заказ", ""), PushClass.TRANSACTIONAL, ttl_s=600)
    stack.dispatcher.submit(job)

    assert await stack.dispatcher.drain(deadline_s=10) == 0

    assert stack.sink.outcomes["e1"][:2] == (Outcome.SKIPPED, "no_recipients")
    outcome, reason, error = stack.sink.outcomes["e2"]
    assert (outcome, reason) == (Outcome.DEAD_LETTERED, "provider_rejected")
    assert 'child "summary" fails because ["summary" is not allowed to be empty]' in str(error)


async def test_the_run_loop_serves_submissions_that_come_while_it_runs(stack: Stack) -> None:
    runner = asyncio.create_task(stack.dispatcher.run())
    for i in range(5):
        stack.dispatcher.submit(_job(f"e{i}", f"7999000000{i}", f"Заказ {i}"))
        await asyncio.sleep(0.05)

    left = await stack.dispatcher.drain(deadline_s=10)

    assert left == 0
    assert runner.done()
    assert len(stack.sim.pushes) == 5
    assert stack.sim.stats()["violations"] == 0


# Suspected in issue 12: "one bad recipient in a coalesced IMSHOP request dead-letters
# all of its customers". IMSHOP documents one check of userIds: a non-empty array of
# distinct, non-empty strings (research: push-apis.md, 2.2-2.3); a 400 is about the
# request. Shown here: whatever recipient id an event may carry, the request built for
# it and up to 1000 others passes that check and encodes, so no single recipient can
# spoil the request (an id the contract refuses never reaches the dispatcher).

id_text = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates too


@settings(max_examples=200, deadline=None)
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
    now = dt.datetime.now(dt.UTC)
    for number, raw in enumerate(ids):
        field_name = "install_id" if install else "user_id"
        record = {**EVENT, "event_id": f"e{number}", "recipient": {field_name: raw}}
        try:
            event = parse_event(json.dumps(record).encode(), max_bytes=65_536)
        except InvalidEvent:
            continue  # dead-lettered alone by the consume loop, never in a request
        job = _job(event.event_id, event.recipient.push_id, "Скидка 10%")
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
