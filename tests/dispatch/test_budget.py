from __future__ import annotations

import pytest
from dispatch_support import StepClock, max_starts_in_window
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.clock import FakeClock
from consumer.dispatch.budget import Budget


def test_a_fresh_budget_assumes_the_last_window_was_used_up() -> None:
    clock = FakeClock()
    budget = Budget(limit=10, window_s=60, clock=clock)

    assert not budget.try_start()
    assert budget.next_start_at() == pytest.approx(clock.monotonic() + 60)
    assert budget.used() == 10


async def test_after_a_full_window_the_whole_budget_is_free() -> None:
    clock = FakeClock()
    budget = Budget(limit=3, window_s=60, clock=clock)

    await clock.advance(60)

    assert [budget.try_start() for _ in range(4)] == [True, True, True, False]


async def test_a_slot_frees_exactly_one_window_plus_margin_after_its_start() -> None:
    clock = FakeClock()
    budget = Budget(limit=2, window_s=10, clock=clock, margin_s=0.5, assume_window_used=False)
    first = clock.monotonic()
    assert budget.try_start()
    await clock.advance(3)
    assert budget.try_start()

    assert budget.next_start_at() == pytest.approx(first + 10.5)
    await clock.advance(7.4)
    assert not budget.try_start()
    await clock.advance(0.1)
    assert budget.try_start()


async def test_hold_until_blocks_starts_even_with_free_slots() -> None:
    clock = FakeClock()
    budget = Budget(limit=5, window_s=10, clock=clock, assume_window_used=False)
    budget.hold_until(clock.monotonic() + 30)

    assert not budget.try_start()
    await clock.advance(30)
    assert budget.try_start()


def test_used_counts_starts_inside_the_window_only() -> None:
    clock = FakeClock()
    budget = Budget(limit=5, window_s=10, clock=clock, assume_window_used=False)
    budget.try_start()
    budget.try_start()

    assert budget.used() == 2


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 6),
    window=st.sampled_from([1.0, 2.5, 60.0]),
    margin=st.sampled_from([0.0, 0.25]),
    full=st.booleans(),
    gaps=st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=80),
)
def test_no_schedule_of_attempts_gets_more_than_limit_starts_in_any_window(
    limit: int, window: float, margin: float, full: bool, gaps: list[float]
) -> None:
    clock = StepClock()
    budget = Budget(
        limit=limit, window_s=window, clock=clock, margin_s=margin, assume_window_used=full
    )
    starts = [clock.monotonic()] * limit if full else []  # what a previous process may have sent
    for gap in gaps:
        clock.t += gap
        while budget.try_start():
            starts.append(clock.monotonic())

    assert max_starts_in_window(starts, window + margin) <= limit
