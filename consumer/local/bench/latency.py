"""Latency: event produced -> request received by the IMSHOP simulator, budget free.

The service runs in this process against the simulator (a budget far above the
traffic), and events are produced one at a time at a modest rate, each a
personal push (its own request), so every sample is one event's full path:
producer, broker, fetch, validate, render, pending, budget, HTTP. The clock on
both ends is this machine's wall clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from consumer.app import Service
from consumer.local.bench.support import create_topic, percentile, service_settings, unique
from consumer.local.simulators.imshop import ImshopSimulator, SimulatorConfig

_RATE_PER_S = 20.0
_WAIT_S = 60.0


def _event(index: int) -> bytes:
    event = {
        "event_id": f"latency-{index}",
        "event_type": "order.status_changed",
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "recipient": {"user_id": f"7999{index:07d}"},
        "order": {"id": f"L{index}", "number": f"L{index}", "status": "created", "version": 1},
    }
    return json.dumps(event, ensure_ascii=False).encode()


def _received(sim: ImshopSimulator) -> dict[str, float]:
    """Order id -> wall time the simulator accepted its push."""
    arrivals = {}
    for push in sim.pushes:
        order_id = str(push.get("deeplink", "")).rsplit("/", 1)[-1]
        arrivals[order_id] = dt.datetime.fromisoformat(push["received_at"]).timestamp()
    return arrivals


async def _wait_for(sim: ImshopSimulator, ids: set[str], timeout_s: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        arrivals = _received(sim)
        if ids <= arrivals.keys():
            return arrivals
        await asyncio.sleep(0.05)
    missing = len(ids - _received(sim).keys())
    raise RuntimeError(f"{missing} of {len(ids)} pushes did not reach the simulator")


async def measure(bootstrap: str, *, events: int) -> dict[str, Any]:
    topic = await create_topic(bootstrap, unique("latency"))
    config = SimulatorConfig(rate_limit=1_000_000, window_s=1.0)
    async with ImshopSimulator(config) as sim:
        settings = service_settings(
            bootstrap,
            topic,
            imshop={
                "url": sim.url,
                "rate_limit_requests": 1_000_000,
                "rate_limit_window_s": 1.0,
                "assume_window_used_at_start": False,
            },
        )
        async with Service(settings).serving():
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
            await producer.start()
            try:
                # One event first: every connection is warm.
                await producer.send_and_wait(topic, _event(-1))
                await _wait_for(sim, {"L-1"}, _WAIT_S)
                produced: dict[str, float] = {}
                for index in range(events):
                    value = _event(index)
                    produced[f"L{index}"] = time.time()
                    await producer.send_and_wait(topic, value)
                    await asyncio.sleep(1 / _RATE_PER_S)
                arrivals = await _wait_for(sim, set(produced), _WAIT_S)
            finally:
                await producer.stop()
    samples = [(arrivals[key] - sent) * 1000 for key, sent in produced.items()]
    return {
        "latency_events": events,
        "latency_rate_per_s": _RATE_PER_S,
        "latency_p50_ms": round(percentile(samples, 0.5), 1),
        "latency_p99_ms": round(percentile(samples, 0.99), 1),
        "latency_max_ms": round(max(samples), 1),
    }
