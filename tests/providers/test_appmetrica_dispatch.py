"""The real dispatcher, budget and AppMetrica provider against the simulator (fake time).

Wired as the service wires them: the provider counts its own calls (group
calls, status polls, lookups) in the budget the dispatcher starts requests
with. The simulator enforces AppMetrica's 30 requests per second on the same
fake clock, so "no quota answer" is checked second by second.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from appmetrica_support import POLL, SEND, TOKEN, Rig, job, rig
from pydantic import SecretStr

from consumer.dispatch import Dispatcher
from consumer.dispatch.budget import provider_budget
from consumer.errors import ConsumerError
from consumer.providers.registry import build_provider
from consumer.push import Origin, Outcome
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
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def record(
        self,
        origin: Origin,
        outcome: Outcome,
        *,
        event_id: str | None = None,
        event_type: str | None = None,
        reason: str | None = None,
        error: ConsumerError | None = None,
    ) -> None:
        assert event_id not in self.outcomes, "one outcome per event"
        self.outcomes[event_id or ""] = outcome


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


async def test_at_high_concurrency_every_call_stays_within_appmetricas_quota() -> None:
    # Before: polls, lookups and group calls were free, and 32 requests in flight
    # polled right after their sends: the simulator answered 429 within the first second.
    async with rig() as am:
        settings, sink = settings_for(am, concurrency=32), Sink()
        budget = provider_budget(settings, am.clock)
        provider = build_provider(
            settings, am.http, clock=am.clock, metrics=am.metrics, quota=budget
        )
        dispatcher = Dispatcher(provider, settings.dispatch, budget, sink, am.clock, am.metrics)
        jobs = [
            job(f"e{n}", [("android_push_token", f"a{n}")], rule=f"rule_{n // 2}", title=f"T{n}")
            for n in range(60)
        ]
        start = asyncio.create_task(provider.start())  # type: ignore[attr-defined]
        for each in jobs:
            dispatcher.submit(each)
        loop = asyncio.create_task(dispatcher.run())
        try:
            for _ in range(MAX_STEPS):
                await am.quiet()
                if len(sink.outcomes) == len(jobs) and not provider.tracker.tracked:  # type: ignore[attr-defined]
                    break
                await am.clock.advance(STEP_S)
            await start
        finally:
            await dispatcher.aclose()
            loop.cancel()
            await provider.aclose()

        assert set(sink.outcomes.values()) == {Outcome.SENT}
        assert len(sink.outcomes) == len(jobs)
        assert am.calls(SEND) == 30  # one rule per request, two texts each
        assert am.calls(POLL) >= 30
        assert am.sim.state.quota_violations == 0
        assert am.metrics.value("appmetrica_transfers_total", status="sent") == 30
