"""The benchmark's pure helpers: packing bound, window arithmetic, percentiles (no timing)."""

from __future__ import annotations

import pytest

from consumer.local.bench import history as history_bench
from consumer.local.bench.budget import Workload, allowed_starts, jobs, naive_drain_s
from consumer.local.bench.support import optimal_requests, percentile, sample_values


def test_optimal_packing_is_one_request_per_cap_recipients_of_each_text() -> None:
    assert optimal_requests([2500, 2500, 2500] + [1] * 20, 1000) == 29
    assert optimal_requests([1000, 1001, 0], 1000) == 3
    assert Workload().optimal() == 29


def test_the_workload_holds_the_events_it_names() -> None:
    work = Workload(shared_texts=2, recipients_per_text=5, personal=3)
    made = jobs(work)
    assert len(made) == work.events == 13
    assert len({job.push.message for job in made}) == 2 + 3
    assert len({job.event_id for job in made}) == 13


def test_window_arithmetic() -> None:
    assert allowed_starts(0.0) == 10  # an empty window lets the first ten start at once
    assert allowed_starts(4.1) == 30
    assert naive_drain_s(10) == 0.0
    assert naive_drain_s(11) == pytest.approx(2.05)


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_sample_values_have_unique_event_ids() -> None:
    values = list(sample_values(50, distinct=7))
    assert len(values) == 50
    assert len(set(values)) == 50


async def test_the_history_lookup_bench_fills_both_stores_and_reads_them(
    fresh_postgres_url: str,
) -> None:
    figures = await history_bench.measure(
        items_total=600, lookups=10, postgres_url=fresh_postgres_url
    )

    for backend in ("sqlite", "postgresql"):
        # 600 items over 12 customers: every answer is a full page of 50.
        assert figures[f"history_{backend}_items_per_answer"] == 50
        assert figures[f"history_{backend}_lookup_p50_ms"] > 0
        assert (
            figures[f"history_{backend}_lookup_p50_ms"]
            <= figures[f"history_{backend}_lookup_p99_ms"]
        )
