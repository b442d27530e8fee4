"""Reach under the budget: a rush hour of order statuses through the real service.

Time is compressed ``SCALE`` times (the IMSHOP window of 60 s becomes 1.33 s, the
rules' ttl and personal_within likewise, ``consumer.local.rush``; 45 divides every
shipped time into whole seconds, 90 s into 2). The trace: orders
created at a steady rate for ``minutes``, each going created → confirmed →
assembling → handed to the courier over about 45 minutes, and a bonus campaign
(3 000 accruals, each naming the customer's own balance) ten minutes in, to
customers where it is day (so quiet hours do not hold it). It is produced to a
real broker as it happens, read by the real service (history in SQLite), and
sent to the IMSHOP simulator (10 requests per window, 1 000 ids per request),
once with shared texts and once with every push personal (``SHARED_VARIANTS``
off), in the same run.

For each order status: the delay from its ``occurred_at`` until the customer got
a push about that order with this status or a newer one (a shared push about
the status counts), in real-world minutes; whether that came within the
status's ttl. Also: the share of sent order statuses that went out personal,
the requests used, and the simulator's count of rate-limit violations.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import tempfile
import time
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from consumer.app import Service
from consumer.events import parse_event
from consumer.local.bench.support import (
    create_topic,
    percentile,
    repo_mappings,
    service_settings,
    unique,
)
from consumer.local.rush import (
    Status,
    campaign_event,
    compressed_mappings,
    customer,
    daytime_zone,
    order_trace,
    status_event,
)
from consumer.local.simulators.imshop import ImshopSimulator, SimulatorConfig
from consumer.mapping import MappingSet, load_mappings
from consumer.push import Message
from consumer.settings import MappingSettings

SCALE = 45.0
LIMIT, REAL_WINDOW_S = 10, 60.0
CAMPAIGN_AT_MIN = 10.0
_POLL_S = 0.25
_MAX_EVENT_BYTES = 1 << 20


@dataclass(slots=True)
class _Sent:
    """One order status as produced, and when its customer first heard of it."""

    step: Status
    user: str
    occurred: float  # wall clock, seconds
    ttl_s: float  # compressed
    informed: float | None = None


async def measure(
    bootstrap: str,
    *,
    rates: tuple[int, ...] = (500, 5000),
    minutes: float = 40.0,
    campaign: int = 3000,
) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "reach_compression": f"{SCALE:g}x: window {REAL_WINDOW_S / SCALE:.3g} s, ttl and "
        "personal_within divided alike",
        "reach_minutes_of_orders": minutes,
        "reach_campaign": campaign,
    }
    with tempfile.TemporaryDirectory(prefix="bench-reach-") as folder:
        mappings = compressed_mappings(repo_mappings(), Path(folder) / "mappings", SCALE)
        rules = load_mappings(mappings, MappingSettings(dir=mappings))
        for rate in rates:
            trace = order_trace(rate, minutes)
            figures[f"reach_{rate}_statuses"] = len(trace)
            for shared in (True, False):
                run = await _run(bootstrap, mappings, rules, trace, campaign, shared=shared)
                name = "shared" if shared else "personal_only"
                figures |= {f"reach_{rate}_{name}_{key}": value for key, value in run.items()}
    return figures


async def _run(
    bootstrap: str,
    mappings: Path,
    rules: MappingSet,
    trace: list[Status],
    campaign: int,
    *,
    shared: bool,
) -> dict[str, Any]:
    topic = await create_topic(bootstrap, unique("reach"))
    window_s = REAL_WINDOW_S / SCALE
    config = SimulatorConfig(rate_limit=LIMIT, window_s=window_s)
    async with ImshopSimulator(config) as sim:
        settings = service_settings(
            bootstrap,
            topic,
            imshop={
                "url": sim.url,
                "rate_limit_requests": LIMIT,
                "rate_limit_window_s": window_s,
                "rate_limit_margin_s": 1.0 / SCALE,
                "assume_window_used_at_start": False,
                "timeout_s": 5.0,
            },
            dispatch={
                "shared_variants": shared,
                "retry_initial_backoff_s": 2.0 / SCALE,
                "retry_max_backoff_s": 120.0 / SCALE,
            },
            mappings={"dir": mappings},
        )
        async with Service(settings).serving() as service:
            run = unique("rush")
            produced: list[_Sent] = []
            producing = asyncio.create_task(
                _produce(bootstrap, topic, trace, campaign, run, rules, produced)
            )
            texts = _Texts(rules)
            await _follow(sim, texts, produced, producing)
            metrics = service.metrics
            variants = {
                v: metrics.value(
                    "push_sent_variants_total", event_type="order.status_changed", variant=v
                )
                for v in ("personal", "shared")
            }
        stats = sim.stats()
    return _figures(produced, variants, stats)


async def _produce(
    bootstrap: str,
    topic: str,
    trace: list[Status],
    campaign: int,
    run: str,
    rules: MappingSet,
    produced: list[_Sent],
) -> None:
    """Publish each event at its compressed moment, stamped with the time it happens."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        start = time.time()
        campaign_at = CAMPAIGN_AT_MIN * 60
        steps: list[Status | None] = [*trace]
        steps.append(None)  # the campaign's place in time
        steps.sort(key=lambda s: campaign_at if s is None else s.at_s)
        pending = []
        for step in steps:
            at = campaign_at if step is None else step.at_s
            await asyncio.sleep(max(0.0, start + at / SCALE - time.time()))
            now = dt.datetime.now(dt.UTC)
            if step is None:
                zone = daytime_zone(now)
                for index in range(campaign):
                    value = json.dumps(campaign_event(index, now, zone, run)).encode()
                    pending.append(await producer.send(topic, value, key=f"c{index}".encode()))
                continue
            event = status_event(step, now, run)
            value = json.dumps(event, ensure_ascii=False).encode()
            key = event["order"]["id"].encode()
            pending.append(await producer.send(topic, value, key=key))
            ttl = rules.render(_parsed(event, rules), now=now)
            assert ttl is not None
            produced.append(_Sent(step, customer(step.order), now.timestamp(), ttl.ttl_s))
            if len(pending) > 500:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def _parsed(event: dict[str, Any], rules: MappingSet) -> Any:
    raw = json.dumps(event, ensure_ascii=False).encode()
    return parse_event(raw, max_bytes=_MAX_EVENT_BYTES, extra_types=rules.extra_types)


class _Texts:
    """Which order status a push announces: each text of every status, personal or shared."""

    def __init__(self, rules: MappingSet) -> None:
        self._rules = rules
        self.personal: dict[tuple[str, Hashable], int] = {}  # (user, message) -> rank
        self.shared: dict[Hashable, int] = {}  # message -> rank

    def learn(self, sent: _Sent) -> None:
        moment = dt.datetime.fromtimestamp(sent.occurred, dt.UTC)
        event = status_event(sent.step, moment, "texts")
        push = self._rules.render(_parsed(event, self._rules), now=moment)
        assert push is not None
        self.personal[(sent.user, push.message)] = sent.step.rank
        if push.shared is not None:
            self.shared[push.shared] = sent.step.rank

    def rank(self, user: str, message: Message) -> int | None:
        found = self.personal.get((user, message))
        return self.shared.get(message) if found is None else found


async def _follow(
    sim: ImshopSimulator, texts: _Texts, produced: list[_Sent], producing: asyncio.Task[None]
) -> None:
    """Match the simulator's pushes to the statuses they announce, until every status is
    known or past its ttl."""
    seen, learnt = 0, 0
    heard: dict[str, list[tuple[float, int]]] = {}
    while True:
        for sent in produced[learnt:]:
            texts.learn(sent)
        learnt = len(produced)
        pushes = sim.pushes
        for push in pushes[seen:]:
            message = Message(
                push["message"]["title"], push["message"]["summary"], push.get("deeplink")
            )
            at = dt.datetime.fromisoformat(push["received_at"]).timestamp()
            for user in push["userIds"]:
                rank = texts.rank(user, message)
                if rank is not None:
                    heard.setdefault(user, []).append((at, rank))
        seen = len(pushes)
        now = time.time()
        open_ = 0
        for sent in produced:
            if sent.informed is None:
                sent.informed = _first(heard.get(sent.user, ()), sent)
            if sent.informed is None and now < sent.occurred + sent.ttl_s:
                open_ += 1
        if producing.done() and not open_:
            producing.result()
            return
        await asyncio.sleep(_POLL_S)


def _first(heard: Any, sent: _Sent) -> float | None:
    """When the customer first got this status or a newer one."""
    times = [at for at, rank in heard if rank >= sent.step.rank and at >= sent.occurred - 1e-3]
    return min(times, default=None)


def _figures(
    produced: list[_Sent], variants: dict[str, float], stats: dict[str, Any]
) -> dict[str, Any]:
    delays = [
        math.inf if s.informed is None else max(0.0, s.informed - s.occurred) * SCALE / 60
        for s in produced
    ]
    in_time = sum(
        1 for s in produced if s.informed is not None and s.informed - s.occurred <= s.ttl_s
    )
    sent = sum(variants.values())

    def minutes(value: float) -> float | None:
        return None if math.isinf(value) else round(value, 2)

    return {
        "p50_min": minutes(percentile(delays, 0.5)),
        "p90_min": minutes(percentile(delays, 0.9)),
        "max_min": minutes(max(delays)),
        "informed_in_ttl": round(in_time / len(produced), 4),
        "personal_share": round(variants["personal"] / sent, 3) if sent else None,
        "requests": int(stats["accepted"]),
        "violations": int(stats["violations"]),
    }
