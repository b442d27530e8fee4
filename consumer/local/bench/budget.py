"""Budget efficiency: the real dispatcher packing a backlog into a small request window.

The dispatcher, its sliding-window budget and the IMSHOP provider send a
prepared backlog (a few shared texts to thousands of recipients, plus personal
pushes) to the IMSHOP simulator over HTTP, 10 requests per 2 s. Optimal is one
request per ``cap`` recipients of each distinct text. The naive dispatcher (one
request per event, in arrival order) is computed, not run: its request count is
the event count, and its drain time follows from the same window.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from dataclasses import dataclass
from typing import Any

from consumer.clock import SystemClock
from consumer.dispatch.budget import Budget
from consumer.dispatch.dispatcher import Dispatcher
from consumer.errors import ConsumerError
from consumer.events import Recipient
from consumer.local.bench.support import optimal_requests
from consumer.local.simulators.imshop import ImshopSimulator, SimulatorConfig
from consumer.metrics import Metrics
from consumer.providers.imshop import ImshopProvider
from consumer.push import Message, Origin, Outcome, PushClass, PushJob, RenderedPush, Variant
from consumer.settings import DispatchSettings, ImshopSettings

LIMIT, WINDOW_S, MARGIN_S, CAP = 10, 2.0, 0.05, 1000
_DRAIN_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Workload:
    shared_texts: int = 3
    recipients_per_text: int = 2500
    personal: int = 20

    @property
    def events(self) -> int:
        return self.shared_texts * self.recipients_per_text + self.personal

    def optimal(self) -> int:
        counts = [self.recipients_per_text] * self.shared_texts + [1] * self.personal
        return optimal_requests(counts, CAP)


class _Counter:
    """An outcome sink that only counts."""

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


def jobs(workload: Workload, seed: int = 5) -> list[PushJob]:
    now = dt.datetime.now(dt.UTC)
    made: list[PushJob] = []

    def job(message: Message, push_class: PushClass, user: str) -> PushJob:
        index = len(made)
        push = RenderedPush(f"bench:{push_class}", message, push_class, ttl_s=3600)
        return PushJob(
            origin=Origin("bench", 0, index),
            event_id=f"budget-{index}",
            event_type="bench",
            recipient=Recipient(user_id=user),
            push=push,
            occurred_at=now,
        )

    for text in range(workload.shared_texts):
        message = Message(f"Акция {text}", "Скидки на всё", "imshop://sale")
        for user in range(workload.recipients_per_text):
            made.append(job(message, PushClass.MARKETING, f"u{user}"))
    for user in range(workload.personal):
        message = Message(f"Заказ №{user} готов", "Можно забирать", f"imshop://orders/{user}")
        made.append(job(message, PushClass.TRANSACTIONAL, f"p{user}"))
    random.Random(seed).shuffle(made)
    return made


def allowed_starts(seconds: float) -> int:
    """The most requests a sliding window lets start in ``seconds`` (from an empty window)."""
    return LIMIT * (math.floor(seconds / WINDOW_S) + 1)


def naive_drain_s(events: int) -> float:
    """One request per event, in order: request k starts after ``k // LIMIT`` full windows."""
    return (events - 1) // LIMIT * (WINDOW_S + MARGIN_S)


async def measure(workload: Workload | None = None) -> dict[str, Any]:
    work = workload or Workload()
    clock, sink = SystemClock(), _Counter()
    async with ImshopSimulator(SimulatorConfig(rate_limit=LIMIT, window_s=WINDOW_S)) as sim:
        settings = ImshopSettings(
            url=sim.url,
            rate_limit_requests=LIMIT,
            rate_limit_window_s=WINDOW_S,
            rate_limit_margin_s=MARGIN_S,
            assume_window_used_at_start=False,
        )
        provider = ImshopProvider(settings)
        budget = Budget(
            limit=LIMIT, window_s=WINDOW_S, clock=clock, margin_s=MARGIN_S, assume_window_used=False
        )
        dispatcher = Dispatcher(provider, DispatchSettings(), budget, sink, clock, Metrics())
        for job in jobs(work):
            dispatcher.submit(job)
        started = time.monotonic()
        unsent = await dispatcher.drain(_DRAIN_TIMEOUT_S)  # runs the loop until all is sent
        waited = time.monotonic() - started
        await provider.aclose()
        stats = sim.stats()
    requests = int(stats["requests"])
    return {
        "budget_events": work.events,
        "budget_window": f"{LIMIT} requests / {WINDOW_S:g} s, {CAP} recipients each",
        "budget_requests": requests,
        "budget_optimal_requests": work.optimal(),
        "budget_mean_recipients": round(stats["recipients"] / max(1, stats["accepted"]), 1),
        "budget_utilization": round(requests / allowed_starts(waited), 3),
        "budget_violations": int(stats["violations"]),
        "budget_drain_s": round(waited, 2),
        "budget_unsent": unsent,
        "naive_requests": work.events,
        "naive_drain_s": round(naive_drain_s(work.events), 1),
        "naive_mode": "computed: one request per event in order, same window",
    }
