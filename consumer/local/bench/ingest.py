"""Ingest: events per second through the whole service, against a bare getmany loop.

All read the same pre-filled topic from the start with a fresh consumer group,
in the same process, interleaved (baseline, candidate without history,
candidate with history, baseline...); each figure is the median of the
per-round ratios. The candidate is the real ``Service`` with the dry-run
provider and a budget that never binds, so every event goes consume -> validate
-> match -> render -> (history written) -> pending -> request -> outcome
(logged, counted, offset marked done). With history, each run writes a fresh
SQLite file (the embedded default). Time runs from the first record handed out
(baseline) or the first outcome (candidate) to the last one.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer

from consumer.app import Service
from consumer.kafka.source import FETCH_MAX_BYTES, MAX_PARTITION_FETCH_BYTES
from consumer.local.bench.support import (
    create_topic,
    median,
    outcomes_recorded,
    produce_values,
    sample_values,
    service_settings,
    unique,
)

_TIMEOUT_S = 600.0
_POLL_S = 0.005
_STALL_S = 60.0


@dataclass(frozen=True, slots=True)
class Run:
    events: int
    wall_s: float
    cpu_s: float

    @property
    def per_s(self) -> float:
        return self.events / self.wall_s

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.events * 1e6


async def baseline(bootstrap: str, topic: str, total: int) -> Run:
    """A getmany loop that only counts, with the service's fetch sizes and batch bound."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=unique("baseline"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        fetch_max_bytes=FETCH_MAX_BYTES,
        max_poll_records=500,
    )
    await consumer.start()
    try:
        seen, start = 0, None
        first = 0
        wall0 = cpu0 = 0.0
        deadline = time.monotonic() + _TIMEOUT_S
        while seen < total and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            got = sum(len(b) for b in batches.values())
            if got and start is None:
                start, first = True, got
                wall0, cpu0 = time.perf_counter(), time.process_time()
            seen += got
        if seen < total:
            raise RuntimeError(f"baseline read {seen} of {total} records in {_TIMEOUT_S:g} s")
        return Run(seen - first, time.perf_counter() - wall0, time.process_time() - cpu0)
    finally:
        await consumer.stop()


async def candidate(bootstrap: str, topic: str, total: int, *, history: bool) -> Run:
    settings = service_settings(
        bootstrap,
        topic,
        imshop={
            "rate_limit_requests": 1_000_000,
            "rate_limit_window_s": 1.0,
            "assume_window_used_at_start": False,
        },
        dispatch={"max_concurrent_requests": 64},
        service={"push_provider": "dry-run", "health_port": 0, "shutdown_grace_s": 5.0},
        history={"enabled": history},
    )
    service = Service(settings)
    async with service.serving():
        first, wall0, cpu0 = 0, 0.0, 0.0
        deadline = time.monotonic() + _TIMEOUT_S
        done, moved_at = 0, time.monotonic()
        while done < total and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_S)
            done, before = outcomes_recorded(service.metrics), done
            if done != before:
                moved_at = time.monotonic()
            elif time.monotonic() - moved_at > _STALL_S:
                # A service that died mid-run ends here; leaving the block raises its error.
                raise RuntimeError(f"the service finished no event for {_STALL_S:g} s")
            if done and not first:
                first, wall0, cpu0 = done, time.perf_counter(), time.process_time()
        if done < total:
            raise RuntimeError(f"the service finished {done} of {total} events in {_TIMEOUT_S:g} s")
        return Run(done - first, time.perf_counter() - wall0, time.process_time() - cpu0)


async def measure(bootstrap: str, *, events: int, pairs: int) -> dict[str, Any]:
    topic = await create_topic(bootstrap, unique("ingest"))
    await produce_values(bootstrap, topic, sample_values(events))
    runs: list[tuple[Run, Run, Run]] = []
    for _ in range(pairs):
        base = await baseline(bootstrap, topic, events)
        cand = await candidate(bootstrap, topic, events, history=False)
        kept = await candidate(bootstrap, topic, events, history=True)
        runs.append((base, cand, kept))
    ratios = [cand.per_s / base.per_s for base, cand, _ in runs]
    history_ratios = [kept.per_s / cand.per_s for _, cand, kept in runs]
    return {
        "ingest_events": events,
        "ingest_pairs": pairs,
        "ingest_events_per_s": round(median([c.per_s for _, c, _ in runs])),
        "baseline_events_per_s": round(median([b.per_s for b, _, _ in runs])),
        "ingest_ratio": round(median(ratios), 3),
        "ingest_ratios": [round(r, 3) for r in ratios],
        "cpu_us_per_event": round(median([c.cpu_us for _, c, _ in runs]), 1),
        "baseline_cpu_us_per_event": round(median([b.cpu_us for b, _, _ in runs]), 1),
        "history_ingest_events_per_s": round(median([k.per_s for _, _, k in runs])),
        "history_ingest_ratio": round(median(history_ratios), 3),
        "history_ingest_ratios": [round(r, 3) for r in history_ratios],
        "history_cpu_us_per_event": round(median([k.cpu_us for _, _, k in runs]), 1),
    }
