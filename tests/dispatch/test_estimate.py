"""The estimate of when future requests start: against the real budget and class rule."""

from __future__ import annotations

from dispatch_support import StepClock
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.dispatch.budget import Budget
from consumer.dispatch.estimate import NEVER, SendTimes, Turns
from consumer.push import PushClass

# Pure arithmetic, milliseconds an example: the full count under mutation testing too.
CHEAP = settings(max_examples=100, deadline=None)


def test_free_slots_first_then_ended_ones_as_they_leave_the_window() -> None:
    times = SendTimes.of(now=100.0, limit=3, period_s=60.0, ended=[70.0], in_flight=1)
    # one free now, the ended one leaves at 130, the one in flight (ends now) at 160
    assert [times.at(k) for k in range(7)] == [100.0, 130.0, 160.0, 160.0, 190.0, 220.0, 220.0]


def test_a_retry_after_holds_every_start() -> None:
    times = SendTimes.of(now=0.0, limit=2, period_s=10.0, ended=[], in_flight=0, hold_until=5.0)
    assert [times.at(k) for k in range(4)] == [5.0, 5.0, 10.0, 10.0]
    assert times.at(NEVER) == NEVER


@CHEAP
@given(
    now=st.floats(0.0, 100.0),
    limit=st.integers(1, 8),
    ended=st.lists(st.floats(-50.0, 100.0), max_size=10),
    in_flight=st.integers(0, 3),
    ks=st.lists(st.integers(0, 40), max_size=10),
)
def test_the_slots_are_every_free_and_taken_slot_in_time_order(
    now: float, limit: int, ended: list[float], in_flight: int, ks: list[int]
) -> None:
    """Held as a count of free slots, the window gives the times a sorted list of
    every slot gives (the free ones at ``now``), cut at the limit."""
    times = SendTimes.of(now=now, limit=limit, period_s=30.0, ended=ended, in_flight=in_flight)
    leaving = [end + 30.0 for end in ended] + [now + 30.0] * in_flight
    slots = sorted([now] * max(0, limit - len(leaving)) + leaving)[:limit]
    for k in ks:
        cycle, slot = divmod(k, len(slots))
        assert times.at(k) == slots[slot] + cycle * 30.0


def test_a_budget_of_a_million_keeps_no_list_of_its_free_slots() -> None:
    times = SendTimes.of(now=5.0, limit=1_000_000, period_s=1.0, ended=[4.5], in_flight=2)
    assert times.free == 999_997
    assert times.taken == (5.5, 6.0, 6.0)
    assert [times.at(k) for k in (0, 999_996, 999_997, 999_999, 1_000_000)] == [
        5.0,
        5.0,
        5.5,
        6.0,
        6.0,
    ]


@CHEAP
@given(
    limit=st.integers(1, 5),
    window=st.sampled_from([1.0, 10.0, 60.0]),
    margin=st.sampled_from([0.0, 0.5]),
    ended_ago=st.lists(st.floats(0.0, 70.0), max_size=5),
    in_flight=st.integers(0, 2),
)
def test_the_estimate_is_when_the_real_budget_lets_each_request_start(
    limit: int, window: float, margin: float, ended_ago: list[float], in_flight: int
) -> None:
    clock = StepClock()
    budget = Budget(
        limit=limit, window_s=window, clock=clock, margin_s=margin, assume_window_used=False
    )
    # requests that ended in the past, in order, then some in flight now
    start = clock.t
    for ago in sorted(ended_ago, reverse=True)[:limit]:
        clock.t = start - ago
        slot = budget.try_start()
        if slot is not None:
            budget.finish(slot)
    clock.t = start
    flying = [s for _ in range(in_flight) if (s := budget.try_start()) is not None]
    times = budget.send_times()
    for slot in flying:  # as the estimate assumes: they end now
        budget.finish(slot)
    starts = []
    for _ in range(3 * limit):
        at = budget.next_start_at()
        assert at is not None
        clock.t = max(clock.t, at)
        slot = budget.try_start()
        assert slot is not None
        budget.finish(slot)  # a request that ends as it starts
        starts.append(clock.t)
    assert starts == [times.at(k) for k in range(3 * limit)]


def picks(share: float, credit: float, transactional: int, marketing: int) -> list[PushClass]:
    """The scheduler's class rule, request by request, while work of each class waits."""
    order = []
    for _ in range(transactional + marketing):
        if transactional and marketing:
            credit += share
            if credit >= 1 - 1e-9:
                credit -= 1
                chosen = PushClass.MARKETING
            else:
                chosen = PushClass.TRANSACTIONAL
        else:
            chosen = PushClass.TRANSACTIONAL if transactional else PushClass.MARKETING
        if chosen is PushClass.TRANSACTIONAL:
            transactional -= 1
        else:
            marketing -= 1
        order.append(chosen)
    return order


@CHEAP
@given(
    share=st.sampled_from([0.0, 0.1, 0.2, 0.25, 1 / 3, 0.5, 0.9, 1.0]),
    credit=st.floats(0.0, 0.99),
    transactional=st.integers(0, 30),
    marketing=st.integers(0, 30),
)
def test_turns_follow_the_scheduler_s_class_rule(
    share: float, credit: float, transactional: int, marketing: int
) -> None:
    order = picks(share, credit, transactional, marketing)
    for mine, count, others in (
        (PushClass.TRANSACTIONAL, transactional, marketing),
        (PushClass.MARKETING, marketing, transactional),
    ):
        turns = Turns(mine, share=share, credit=credit, others=others)
        expected = [i for i, chosen in enumerate(order) if chosen is mine]
        assert [turns.position(j) for j in range(count)] == expected


def test_a_class_without_a_share_never_gets_a_turn_while_the_other_keeps_waiting() -> None:
    assert Turns(PushClass.MARKETING, share=0.0, credit=0.0, others=None).position(0) == NEVER
    assert Turns(PushClass.TRANSACTIONAL, share=1.0, credit=0.0, others=None).position(0) == NEVER
    one_in_five = Turns(PushClass.MARKETING, share=0.2, credit=0.0, others=None)
    assert [one_in_five.position(j) for j in range(3)] == [4, 9, 14]


def test_once_the_other_class_is_done_every_later_turn_is_ours_asked_in_any_order() -> None:
    turns = Turns(PushClass.MARKETING, share=0.5, credit=0.0, others=1)
    assert turns.position(3) == 4  # order, offer, then offers only: 1, 2, 3, 4
    assert [turns.position(j) for j in range(4)] == [1, 2, 3, 4]
