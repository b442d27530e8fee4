"""The budget: a slot is held from a request's start until a window after it ended."""

from __future__ import annotations

import random

import pytest
from dispatch_support import StepClock, max_starts_in_window
from hypothesis import given, settings
from hypothesis import strategies as st
from testkit import examples

from consumer.clock import FakeClock
from consumer.dispatch.budget import Budget


def started(budget: Budget) -> bool:
    slot = budget.try_start()
    if slot is not None:
        budget.finish(slot)
    return slot is not None


def test_a_fresh_budget_assumes_the_last_window_was_used_up() -> None:
    clock = FakeClock()
    budget = Budget(limit=10, window_s=60, clock=clock)

    assert budget.try_start() is None
    assert budget.next_start_at() == pytest.approx(clock.monotonic() + 60)
    assert budget.used() == 10


async def test_after_a_full_window_the_whole_budget_is_free() -> None:
    clock = FakeClock()
    budget = Budget(limit=3, window_s=60, clock=clock)

    await clock.advance(60)

    assert [started(budget) for _ in range(4)] == [True, True, True, False]


async def test_a_slot_frees_one_window_plus_margin_after_its_request_ended() -> None:
    clock = FakeClock()
    budget = Budget(limit=2, window_s=10, clock=clock, margin_s=0.5, assume_window_used=False)
    first = budget.try_start()
    assert first is not None
    await clock.advance(2)  # the first request takes 2 s to answer
    budget.finish(first)
    await clock.advance(1)
    assert started(budget)

    assert budget.next_start_at() == pytest.approx(first.started + 2 + 10.5)
    await clock.advance(9.4)
    assert budget.try_start() is None
    await clock.advance(0.1)
    assert started(budget)


async def test_while_every_slot_is_in_flight_only_an_answer_frees_one() -> None:
    clock = FakeClock()
    budget = Budget(limit=1, window_s=1, clock=clock, assume_window_used=False)
    slot = budget.try_start()
    assert slot is not None

    await clock.advance(3600)
    assert budget.next_start_at() is None, "a request in flight may still arrive"
    budget.finish(slot)
    assert budget.next_start_at() == pytest.approx(clock.monotonic() + 1)


async def test_hold_until_blocks_starts_even_with_free_slots() -> None:
    clock = FakeClock()
    budget = Budget(limit=5, window_s=10, clock=clock, assume_window_used=False)
    budget.hold_until(clock.monotonic() + 30)

    assert budget.try_start() is None
    assert budget.send_times().at(0) == clock.monotonic() + 30, "the planner's view holds too"
    await clock.advance(30)
    assert started(budget)


def test_used_counts_requests_in_flight_and_ended_within_the_window() -> None:
    clock = StepClock()
    budget = Budget(limit=5, window_s=10, clock=clock, assume_window_used=False)
    assert started(budget)
    in_flight = budget.try_start()
    assert in_flight is not None

    assert budget.used() == 2
    clock.t += 10.5
    assert budget.used() == 1, "the ended one left the window; the one in flight stays"


@settings(max_examples=examples(80), deadline=None)
@given(
    limit=st.integers(1, 6),
    window=st.sampled_from([1.0, 2.5, 60.0]),
    margin=st.sampled_from([0.0, 0.25]),
    full=st.booleans(),
    steps=st.lists(
        st.tuples(st.floats(0, 5, allow_nan=False), st.floats(0, 10, allow_nan=False)),
        min_size=1,
        max_size=80,
    ),
    seed=st.integers(0, 1000),
)
def test_no_schedule_of_attempts_and_latencies_gets_more_than_limit_arrivals_in_a_window(
    limit: int,
    window: float,
    margin: float,
    full: bool,
    steps: list[tuple[float, float]],
    seed: int,
) -> None:
    """The provider counts arrivals, anywhere between our start and the answer."""
    clock = StepClock()
    rng = random.Random(seed)
    budget = Budget(
        limit=limit, window_s=window, clock=clock, margin_s=margin, assume_window_used=full
    )
    arrivals = [clock.monotonic()] * limit if full else []  # what a previous process sent
    in_flight: list[tuple[float, object]] = []
    for gap, latency in steps:
        clock.t += gap
        for ends, slot in sorted(in_flight, key=lambda item: item[0]):
            if ends <= clock.t:
                budget.finish(slot)  # type: ignore[arg-type]
        in_flight = [(ends, slot) for ends, slot in in_flight if ends > clock.t]
        while (slot := budget.try_start()) is not None:
            start = clock.monotonic()
            arrivals.append(start + rng.random() * latency)
            in_flight.append((start + latency, slot))

    assert max_starts_in_window(arrivals, window) <= limit
