"""The real dispatcher, budget and AppMetrica provider against the simulator (fake time).

Wired as the service wires them: the provider counts its own calls (group
calls, status polls, lookups) in the budget the dispatcher starts requests
with. The simulator enforces AppMetrica's 30 requests per second on the same
fake clock, so "no quota answer" is checked second by second.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from appmetrica_support import POLL, SEND, TOKEN, Rig, job, rig
from pydantic import SecretStr

from consumer.dispatch import Dispatcher
from consumer.dispatch.budget import provider_budget
from consumer.errors import ConsumerError
from consumer.local.simulators.appmetrica_state import Faults
from consumer.providers.appmetrica import AppMetricaProvider
from consumer.providers.registry import build_provider
from consumer.push import Origin, Outcome, Variant
from consumer.settings import (
    AppMetricaSettings,
    DispatchSettings,
    ProviderName,
    ServiceSettings,
    Settings,
)

STEP_S = 0.05
MAX_STEPS = 2_000  # 100 s of fake time: far more than any scenario here needs


@dataclass
class Sink:
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # by event id, the latest
    errors: dict[str, str] = field(default_factory=dict)
    records: set[Origin] = field(default_factory=set)

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
        assert origin not in self.records, "one outcome per record"
        self.records.add(origin)
        self.outcomes[event_id or ""] = outcome
        self.errors[event_id or ""] = f"{reason}: {error}"


def settings_for(am: Rig, concurrency: int) -> Settings:
    return Settings(
        service=ServiceSettings(push_provider=ProviderName.APPMETRICA),
        appmetrica=AppMetricaSettings(
            url=am.sim.base_url,
            token=SecretStr(TOKEN),
            app_id=7,
            max_messages_per_request=2,
        ),
        dispatch=DispatchSettings(max_concurrent_requests=concurrency),
    )


@asynccontextmanager
async def wired(am: Rig, settings: Settings, sink: Sink) -> AsyncIterator[Wired]:
    """The dispatcher running with the provider and budget as the service wires them."""
    budget = provider_budget(settings, am.clock)
    provider = build_provider(settings, am.http, clock=am.clock, metrics=am.metrics, quota=budget)
    assert isinstance(provider, AppMetricaProvider)
    dispatcher = Dispatcher(provider, settings.dispatch, budget, sink, am.clock, am.metrics)
    start = asyncio.create_task(provider.start())
    loop = asyncio.create_task(dispatcher.run())
    try:
        yield Wired(dispatcher, provider)
        await start
    finally:
        start.cancel()  # nothing, once it has ended
        await dispatcher.aclose()
        loop.cancel()
        await provider.aclose()


@dataclass
class Wired:
    dispatcher: Dispatcher
    provider: AppMetricaProvider

    async def until(self, am: Rig, done: Callable[[], bool]) -> None:
        """Move fake time on in small steps until ``done`` (bounded)."""
        for _ in range(MAX_STEPS):
            await am.quiet()
            if done():
                return
            await am.clock.advance(STEP_S)
        raise AssertionError("the scenario did not settle")


async def test_at_high_concurrency_every_call_stays_within_appmetricas_quota() -> None:
    # Before: polls, lookups and group calls were free, and 32 requests in flight
    # polled right after their sends: the simulator answered 429 within the first second.
    async with rig() as am:
        settings, sink = settings_for(am, concurrency=32), Sink()
        jobs = [
            job(f"e{n}", [("android_push_token", f"a{n}")], rule=f"rule_{n // 2}", title=f"T{n}")
            for n in range(60)
        ]
        async with wired(am, settings, sink) as run:
            for each in jobs:
                run.dispatcher.submit(each)
            await run.until(
                am, lambda: len(sink.outcomes) == len(jobs) and not run.provider.tracker.tracked
            )

        assert set(sink.outcomes.values()) == {Outcome.SENT}
        assert len(sink.outcomes) == len(jobs)
        assert am.calls(SEND) == 30  # one rule per request, two texts each
        assert am.calls(POLL) >= 30
        assert am.sim.state.quota_violations == 0
        assert am.metrics.value("appmetrica_transfers_total", status="sent") == 30


async def test_only_the_events_of_a_failed_transfer_are_dead_lettered_and_a_replay_sends_them() -> (
    None
):
    async with rig() as am:
        settings, sink = settings_for(am, concurrency=4), Sink()
        jobs = [job(f"e{n}", [("android_push_token", f"a{n}")], title=f"T{n}") for n in range(4)]
        async with wired(am, settings, sink) as run:
            am.sim.set_faults(Faults(fail_transfers_count=1))
            for each in jobs:  # one rule, two texts per request: two transfers
                run.dispatcher.submit(each)
            await run.until(am, lambda: len(sink.outcomes) == len(jobs))
            failed = {e for e, outcome in sink.outcomes.items() if outcome is Outcome.DEAD_LETTERED}
            assert failed == {"e0", "e1"}  # the first transfer's
            assert {sink.outcomes[e] for e in ("e2", "e3")} == {Outcome.SENT}
            assert "Invalid push credentials for platform android" in sink.errors["e0"]

            for each in jobs[:2]:  # `dlq replay`: the same events in new records
                origin = dataclasses.replace(each.origin, offset=each.origin.offset + 100)
                run.dispatcher.submit(dataclasses.replace(each, origin=origin, attempts=0))
            await run.until(am, lambda: not run.dispatcher.size)

        assert set(sink.outcomes.values()) == {Outcome.SENT}
        assert [t["status"] for t in am.sim.state.record()] == ["failed", "sent", "sent"]
        assert am.sim.state.quota_violations == 0
