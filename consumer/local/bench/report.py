"""The machine and versions a run was on, and the printed summary of its figures."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

from consumer.kafka.clients import aiokafka_c_extension_problem
from consumer.local.kafka_jars import KAFKA_VERSION

_PACKAGES = (
    "aiokafka",
    "pydantic",
    "pydantic-core",
    "python-liquid",
    "structlog",
    "httpx",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gb() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def environment() -> dict[str, Any]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    problem = aiokafka_c_extension_problem()
    return {
        "machine": {"cpus": os.cpu_count(), "cpu_model": _cpu_model(), "ram_gb": _ram_gb()},
        "versions": {
            "python": platform.python_version(),
            "kafka_broker": KAFKA_VERSION,
            **versions,
            "aiokafka_c_extension": "yes" if problem is None else f"no: {problem}",
        },
    }


_LINES = (
    ("ingest_events_per_s", "ingest, events/s (full service)"),
    ("baseline_events_per_s", "bare getmany loop, events/s"),
    ("ingest_ratio", "ingest / bare loop (median of pairs; target >= 0.6)"),
    ("history_ingest_events_per_s", "ingest with history (SQLite), events/s"),
    ("history_ingest_ratio", "ingest with / without history (median; target >= 0.8)"),
    ("cpu_us_per_event", "CPU per event, µs (service process)"),
    ("baseline_cpu_us_per_event", "CPU per event, µs (bare loop)"),
    ("budget_requests", "budget: requests used"),
    ("budget_optimal_requests", "budget: optimal packing"),
    ("budget_mean_recipients", "budget: mean recipients per request"),
    ("budget_utilization", "budget: used / allowed while work waited"),
    ("budget_violations", "budget: rate-limit violations (must be 0)"),
    ("naive_requests", "naive (one request per event): requests"),
    ("naive_drain_s", "naive: time to drain, s (computed)"),
    ("budget_drain_s", "dispatcher: time to drain, s"),
    ("latency_p50_ms", "latency produce -> provider, p50 ms"),
    ("latency_p99_ms", "latency produce -> provider, p99 ms (target < 100)"),
    ("peak_rss_mb", "memory: service peak RSS, MB (target < 300)"),
    ("backlog_events", "memory: backlog produced before the service started"),
    ("memory_waiting_in_kafka", "memory: still waiting in Kafka (lag) at the peak"),
    ("memory_pending_events", "memory: events held by the service (pending)"),
    ("appmetrica_events_per_s_c4", "appmetrica: events/s, 4 requests in flight"),
    ("appmetrica_events_per_s_c32", "appmetrica: events/s, 32 requests in flight"),
    ("appmetrica_concurrency_ratio", "appmetrica: 4 in flight / 32 in flight (about 1)"),
    ("appmetrica_quota_answers_c4", "appmetrica: quota answers, 4 in flight (must be 0)"),
    ("appmetrica_quota_answers_c32", "appmetrica: quota answers, 32 in flight (must be 0)"),
    ("history_items", "history: items in the store"),
    ("history_sqlite_lookup_p99_ms", "history: SQLite lookup p99 ms (target <= 10)"),
    ("history_sqlite_http_p99_ms", "history: SQLite, whole HTTP request p99 ms"),
    ("history_postgresql_lookup_p99_ms", "history: PostgreSQL lookup p99 ms (target <= 10)"),
    ("history_postgresql_http_p99_ms", "history: PostgreSQL, whole HTTP request p99 ms"),
    ("history_postgresql", "history: PostgreSQL"),
    *(
        (f"reach_{rate}_{run}_{key}", f"reach {rate}/h, {label}: {text}")
        for rate in (500, 5000)
        for run, label in (("shared", "shared texts"), ("personal_only", "personal only"))
        for key, text in (
            ("p50_min", "delay p50, real-world min"),
            ("p90_min", "delay p90, real-world min (target <= 2 at 500/h, <= 5 at 5000/h)"),
            ("max_min", "delay max, real-world min"),
            ("informed_in_ttl", "informed within ttl (target >= 0.99 at 500/h)"),
            ("personal_share", "share sent personal"),
            ("requests", "requests used"),
            ("violations", "rate-limit violations (must be 0)"),
        )
    ),
)


def summary(figures: dict[str, Any]) -> str:
    width = max(len(text) for _, text in _LINES)
    lines = [f"{'quick' if figures.get('quick') else 'full'} run on {figures['machine']}"]
    lines += [
        f"  {text:<{width}}  {_shown(figures[key])}" for key, text in _LINES if key in figures
    ]
    return "\n".join(lines)


def _shown(value: Any) -> Any:
    """A figure as printed; None is a delay no percentile of customers was told within."""
    return "— (not told within the ttl)" if value is None else value
