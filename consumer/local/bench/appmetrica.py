"""AppMetrica throughput within its quota, at the default and at a high concurrency.

The real dispatcher, budget and AppMetrica provider (wired as the service
wires them: the provider's status polls and lookups count in the dispatcher's
budget) send a backlog of personal order pushes, one text per customer, eight
rules, two devices each, to the AppMetrica simulator over HTTP. The simulator
enforces AppMetrica's 30 requests per second and moves each transfer to `sent`
after 2 s (its default steps). The same backlog goes out with
``MAX_CONCURRENT_REQUESTS`` 4 (the default) and 32, interleaved; the figures
are the events per second until every event has its outcome (an event's
outcome waits for its transfer's verdict: the first status poll, 2 s after the
send), the time until every transfer was seen final, the requests by kind, and
the simulator's quota answers (429), which must be none.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from pydantic import SecretStr

from consumer.clock import SystemClock
from consumer.dispatch.budget import provider_budget
from consumer.dispatch.dispatcher import Dispatcher
from consumer.errors import ConsumerError
from consumer.events import Device, Recipient
from consumer.local.simulators.appmetrica import AppMetricaSimulator
from consumer.local.simulators.appmetrica_model import SimulatorConfig
from consumer.metrics import Metrics
from consumer.providers.registry import build_provider
from consumer.push import Message, Origin, Outcome, PushClass, PushJob, RenderedPush, Variant
from consumer.settings import (
    AppMetricaSettings,
    DispatchSettings,
    ProviderName,
    ServiceSettings,
    Settings,
)

TOKEN = "bench-token"
RULES = 8
CONCURRENCIES = (4, 32)
_DRAIN_TIMEOUT_S = 300.0
_FOLLOW_TIMEOUT_S = 60.0
_LOOK_EVERY_S = 0.05  # how often the wait for the last transfers looks (not a figure)


class _Counter:
    def __init__(self) -> None:
        self.outcomes: dict[Outcome, int] = {}

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
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def jobs(events: int) -> list[PushJob]:
    now = dt.datetime.now(dt.UTC)
    made = []
    for n in range(events):
        push = RenderedPush(
            f"orders.yaml:rule_{n % RULES}",
            Message(f"Заказ №{n} в пути", "Курьер приедет сегодня", f"imshop://orders/{n}"),
            PushClass.TRANSACTIONAL,
            ttl_s=3600,
        )
        devices = [
            Device(id_type="android_push_token", id=f"a-{n}"),
            Device(id_type="ios_push_token", id=f"i-{n}"),
        ]
        made.append(
            PushJob(
                origin=Origin("bench", 0, n),
                event_id=f"am-{n}",
                event_type="order.status_changed",
                recipient=Recipient(user_id=f"u{n}", devices=devices),
                push=push,
                occurred_at=now,
            )
        )
    return made


async def run_once(events: int, concurrency: int) -> dict[str, Any]:
    clock, metrics, sink = SystemClock(), Metrics(), _Counter()
    async with AppMetricaSimulator(SimulatorConfig(token=TOKEN)) as sim:
        settings = Settings(
            service=ServiceSettings(push_provider=ProviderName.APPMETRICA),
            appmetrica=AppMetricaSettings(url=sim.base_url, token=SecretStr(TOKEN), app_id=1),
            dispatch=DispatchSettings(
                max_concurrent_requests=concurrency, pending_max_events=events
            ),
        )
        budget = provider_budget(settings, clock)
        provider = build_provider(settings, None, clock=clock, metrics=metrics, quota=budget)
        await provider.start()  # type: ignore[attr-defined]
        dispatcher = Dispatcher(provider, settings.dispatch, budget, sink, clock, metrics)
        try:
            started = time.perf_counter()
            for job in jobs(events):
                dispatcher.submit(job)
            left = await dispatcher.drain(_DRAIN_TIMEOUT_S)
            sent_s = time.perf_counter() - started
            await _followed(provider, sim)
            final_s = time.perf_counter() - started
        finally:
            await dispatcher.aclose()
            await provider.aclose()
        requests = sim.state.requests
    return {
        "concurrency": concurrency,
        "events": events,
        "left": left,
        "sent": sink.outcomes.get(Outcome.SENT, 0),
        "events_per_s": round(events / sent_s, 1),
        "sent_s": round(sent_s, 2),
        "final_s": round(final_s, 2),
        "sends": requests.get("POST /push/v1/send-batch", 0),
        "polls": requests.get("GET /push/v1/status/{transfer_id}", 0),
        "lookups": requests.get("GET /push/v1/status/{group_id}/{ctid}", 0),
        "quota_answers": sim.state.quota_violations,
    }


async def _followed(provider: Any, sim: AppMetricaSimulator) -> None:
    """Wait (bounded) until the provider has seen every transfer final."""
    for _ in range(round(_FOLLOW_TIMEOUT_S / _LOOK_EVERY_S)):
        if not provider.tracker.tracked:
            return
        await asyncio.sleep(_LOOK_EVERY_S)


async def measure(events: int = 4000, pairs: int = 2) -> dict[str, Any]:
    runs: dict[int, list[dict[str, Any]]] = {c: [] for c in CONCURRENCIES}
    for _ in range(pairs):
        for concurrency in CONCURRENCIES:
            runs[concurrency].append(await run_once(events, concurrency))
    figures: dict[str, Any] = {"appmetrica_runs": runs}
    for concurrency, done in runs.items():
        rates = sorted(run["events_per_s"] for run in done)
        figures[f"appmetrica_events_per_s_c{concurrency}"] = rates[len(rates) // 2]
        figures[f"appmetrica_quota_answers_c{concurrency}"] = sum(r["quota_answers"] for r in done)
    low, high = CONCURRENCIES
    figures["appmetrica_concurrency_ratio"] = round(
        figures[f"appmetrica_events_per_s_c{low}"] / figures[f"appmetrica_events_per_s_c{high}"], 3
    )
    return figures
