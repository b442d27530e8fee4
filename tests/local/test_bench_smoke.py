"""The benchmark's pure helpers: packing bound, window arithmetic, percentiles, the rush
(no timing)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from consumer.local.bench import history as history_bench
from consumer.local.bench.budget import Workload, allowed_starts, jobs, naive_drain_s
from consumer.local.bench.support import optimal_requests, percentile, sample_values
from consumer.local.rush import STATUSES, compressed_mappings, daytime_zone, order_trace
from consumer.mapping import load_mappings
from consumer.settings import MappingSettings

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"


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


def test_the_rush_runs_on_the_shipped_mappings_with_times_divided(tmp_path: Path) -> None:
    copy = compressed_mappings(SHIPPED, tmp_path / "mappings", 45)
    shipped = {r.rule_id: r for r in load_mappings(SHIPPED, MappingSettings()).rules}
    for rule in load_mappings(copy, MappingSettings()).rules:
        original = shipped[rule.rule_id]
        assert rule.ttl_s == original.ttl_s / 45
        assert rule.personal_within_s == original.personal_within_s / 45  # 90 s -> 2 s
        assert rule.quiet_hours == original.quiet_hours  # the recipient's real clock


@pytest.mark.parametrize("hour", range(24))
def test_the_campaign_goes_where_it_is_early_afternoon(hour: int) -> None:
    now = dt.datetime(2026, 11, 25, hour, 10, tzinfo=dt.UTC)
    assert now.astimezone(ZoneInfo(daytime_zone(now))).hour == 14


def test_a_trace_walks_each_order_through_its_statuses_in_order() -> None:
    trace = order_trace(500, 30)
    assert len(trace) == 250 * 4
    assert [s.at_s for s in trace] == sorted(s.at_s for s in trace)
    by_order: dict[int, list[str]] = {}
    for step in trace:
        by_order.setdefault(step.order, []).append(step.status)
    assert all(statuses == list(STATUSES) for statuses in by_order.values())
    assert max(s.at_s for s in trace) <= (30 + 45) * 60
