"""Prometheus metrics, in a registry of their own (no global state).

One ``Metrics`` is built by the service and passed to each stage; tests build
their own and read values with ``Metrics.value``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "push_events",
            "Events by type and final outcome.",
            ["event_type", "outcome"],
            registry=r,
        )
        self.sent_variants = Counter(
            "push_sent_variants",
            "Sent events by type and the text they went out with (`personal`, `shared`).",
            ["event_type", "variant"],
            registry=r,
        )
        self.pending = Gauge("push_pending_events", "Events waiting in the dispatcher.", registry=r)
        self.oldest_pending_age = Gauge(
            "push_pending_oldest_age_seconds",
            "Age of the oldest pending push, per class.",
            ["push_class"],
            registry=r,
        )
        self.requests = Counter(
            "push_requests", "Provider requests by outcome.", ["provider", "result"], registry=r
        )
        self.request_recipients = Histogram(
            "push_request_recipients",
            "Recipients per provider request.",
            ["provider"],
            buckets=(1, 2, 5, 10, 50, 100, 250, 500, 750, 1000, 10_000, 250_000),
            registry=r,
        )
        self.budget_used = Gauge(
            "push_budget_used",
            "Requests started in the current sliding window.",
            ["provider"],
            registry=r,
        )
        self.budget_limit = Gauge(
            "push_budget_limit", "Requests allowed per sliding window.", ["provider"], registry=r
        )
        self.retries = Counter(
            "push_retries",
            "Requests retried after a transient failure.",
            ["provider", "reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "push_dead_letters", "Records written to the dead-letter topic.", ["reason"], registry=r
        )
        self.dead_letter_failures = Counter(
            "push_dead_letter_write_failures",
            "Failed attempts to write a dead-letter record (each is retried).",
            registry=r,
        )
        self.lag = Gauge(
            "kafka_consumer_lag",
            "Records behind the end of the partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.paused_partitions = Gauge(
            "kafka_paused_partitions", "Partitions paused for backpressure.", registry=r
        )
        self.mapping_reloads = Counter(
            "mapping_reloads",
            "Mapping reloads by result (loaded, rejected).",
            ["result"],
            registry=r,
        )
        self.history_waiting = Gauge(
            "history_waiting_events",
            "Rendered events waiting for their history write (fetching pauses at the bound).",
            registry=r,
        )
        self.history_written = Counter(
            "history_items_written",
            "History items written (each event's item once per write, replays included).",
            registry=r,
        )
        self.history_write_seconds = Histogram(
            "history_write_seconds",
            "Time of one history write transaction (one or more fetched batches).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=r,
        )
        self.history_write_failures = Counter(
            "history_write_failures",
            "Failed history write attempts (each is retried with backoff; offsets wait).",
            registry=r,
        )
        self.history_pruned = Counter(
            "history_pruned_items",
            "History items removed, by why (`max_items`, `retention`).",
            ["reason"],
            registry=r,
        )
        self.history_requests = Counter(
            "history_requests",
            "Requests to the history API, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=r,
        )
        self.history_auth_failures = Counter(
            "history_auth_failures",
            "History API requests refused for authentication (`missing`, `wrong`).",
            ["reason"],
            registry=r,
        )
        self.history_lookup_seconds = Histogram(
            "history_lookup_seconds",
            "Time to read one customer's history from the database.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.transfers = Counter(
            "appmetrica_transfers", "AppMetrica transfers by final status.", ["status"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def outcome_counts(self) -> dict[tuple[str, str], float]:
        """Events counted so far, by (event_type, outcome)."""
        counts: dict[tuple[str, str], float] = {}
        for metric in self.events.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["event_type"], sample.labels["outcome"])
                    counts[key] = sample.value
        return counts

    def value(self, name: str, **labels: str) -> float:
        """Current value of one sample (0.0 if it was never set), for tests and the demo."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else float(found)
