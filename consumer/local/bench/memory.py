"""Memory: the service's peak RSS while a large backlog waits in Kafka.

The backlog is produced first (whole batches, so a million records take
seconds, not minutes), then ``python -m consumer run`` starts as a child
process with the dry-run provider and its default budget, which starts full
(nothing may be sent for a window), so the pending set fills to
``PENDING_MAX_EVENTS`` and fetching pauses. The figure is ``VmHWM`` (peak
resident set) from ``/proc/<pid>/status`` after the service has held the paused
state for a while; the consumer lag it reports shows the backlog still in Kafka.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from consumer.local.bench.support import (
    create_topic,
    history_sqlite_url,
    produce_values,
    repo_mappings,
    sample_values,
    unique,
)
from consumer.local.kafka_process import free_ports

PENDING_MAX_EVENTS = 10_000
_START_TIMEOUT_S = 300.0
_HOLD_S = 10.0


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _metrics(port: int) -> dict[str, float]:
    """Pending events, paused partitions and total lag from the service's /metrics."""
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    found = {"pending": 0.0, "paused": 0.0, "lag": 0.0}
    for line in text.splitlines():
        if line.startswith("push_pending_events "):
            found["pending"] = float(line.split()[-1])
        elif line.startswith("kafka_paused_partitions "):
            found["paused"] = float(line.split()[-1])
        elif line.startswith("kafka_consumer_lag{"):
            found["lag"] += float(line.split()[-1])
    return found


def _environment(bootstrap: str, topic: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPICS": topic,
        "KAFKA_GROUP_ID": unique("memory"),
        "KAFKA_DLQ_TOPIC": f"{topic}-dlq",
        "PUSH_PROVIDER": "dry-run",
        "PENDING_MAX_EVENTS": str(PENDING_MAX_EVENTS),
        "HEALTH_PORT": str(port),
        "HISTORY_DATABASE_URL": history_sqlite_url(),
        "HISTORY_PORT": "0",
        "MAPPINGS_DIR": str(repo_mappings()),
        "LOG_FORMAT": "json",
    }


async def _watch(process: asyncio.subprocess.Process, port: int) -> dict[str, float]:
    """Poll until the service has held its paused state for ``_HOLD_S``; the last metrics."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    held_since: float | None = None
    last: dict[str, float] = {}
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"the service exited with status {process.returncode}")
        last = _metrics(port) or last
        paused = last.get("paused", 0) > 0 and last.get("pending", 0) >= PENDING_MAX_EVENTS
        if paused and held_since is None:
            held_since = time.monotonic()
        if held_since is not None and time.monotonic() - held_since >= _HOLD_S:
            return last
        await asyncio.sleep(0.25)
    raise RuntimeError(f"the service did not pause within {_START_TIMEOUT_S:g} s: {last}")


async def measure(bootstrap: str, *, backlog: int) -> dict[str, Any]:
    topic = await create_topic(bootstrap, unique("memory"))
    started = time.monotonic()
    await produce_values(bootstrap, topic, sample_values(backlog))
    produce_s = time.monotonic() - started
    (port,) = free_ports(1)
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "consumer", "run"],
        env=_environment(bootstrap, topic, port),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        last = await _watch(process, port)
        peak_kb, now_kb = _status_kb(process.pid, "VmHWM"), _status_kb(process.pid, "VmRSS")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()
            await process.wait()
    return {
        "backlog_events": backlog,
        "backlog_produce_s": round(produce_s, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "rss_paused_mb": round(now_kb / 1024, 1),
        "memory_pending_events": int(last.get("pending", 0)),
        "memory_waiting_in_kafka": int(last.get("lag", 0)),
        "memory_paused_partitions": int(last.get("paused", 0)),
    }
