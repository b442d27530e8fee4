"""Single decisions of the scheduler, one case each."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest
from dispatch_support import T0, Harness, make_job

from consumer.dispatch.retry import RetryPolicy
from consumer.errors import OutcomeUnknown, ProviderRejected, RateLimited
from consumer.push import Outcome, PushClass
from consumer.settings import DispatchSettings


def test_a_duplicate_event_id_is_skipped() -> None:
    harness = Harness()
    harness.run([(0.0, make_job("e1")), (0.0, make_job("e1", user="other", offset=7))])

    assert sorted(o[:2] for o in harness.outcomes["e1"]) == [
        (Outcome.SENT, "sent"),
        (Outcome.SKIPPED, "duplicate"),
    ]
    assert harness.requests[0][1].envelopes[0].recipients == ("u1",)


def test_a_recipient_appears_once_and_both_its_jobs_ride_along() -> None:
    harness = Harness(max_recipients=2)
    jobs = [(0.0, make_job(f"e{i}", user=u)) for i, u in enumerate(["a", "b", "a", "c", "b"])]

    harness.run(jobs)

    first = harness.requests[0][1].envelopes[0]
    assert first.recipients == ("a", "b")
    assert [job.event_id for job in first.jobs] == ["e0", "e1", "e2", "e4"]
    assert harness.requests[1][1].envelopes[0].recipients == ("c",)


def test_a_provider_with_several_messages_gets_several_groups_per_request() -> None:
    harness = Harness(max_recipients=3, max_messages=2)
    texts = ["x", "y", "x", "z", "z"]
    jobs = [(0.0, make_job(f"e{i}", user=f"u{i}", text=t)) for i, t in enumerate(texts)]

    harness.run(jobs)

    first = harness.requests[0][1]
    assert [e.message.title for e in first.envelopes] == ["x", "y"]
    assert first.recipients == 3
    assert [e.message.title for e in harness.requests[1][1].envelopes] == ["z"]


def test_without_versions_the_later_occurrence_supersedes() -> None:
    harness = Harness(full=True)  # nothing can go out for a window: both wait
    late = make_job("late", text="b", collapse_key="k", occurred_at=T0 + dt.timedelta(seconds=5))
    early = make_job("early", text="a", collapse_key="k", occurred_at=T0)

    harness.run([(0.0, late), (1.0, early)])

    assert harness.outcomes["early"][0][:2] == (Outcome.SUPERSEDED, "newer_pending")
    assert harness.outcome("late") is Outcome.SENT


def test_an_equal_version_after_one_was_sent_is_superseded() -> None:
    harness = Harness()
    first = make_job("a", text="a", collapse_key="k", version=3)
    again = make_job("b", text="b", collapse_key="k", version=3)

    harness.run([(0.0, first), (10.0, again)])

    assert harness.outcome("a") is Outcome.SENT
    assert harness.outcomes["b"][0][:2] == (Outcome.SUPERSEDED, "older_than_sent")


def test_a_retried_job_keeps_its_age_and_coalesces_with_new_arrivals() -> None:
    settings = DispatchSettings(retry_initial_backoff_s=10, retry_max_backoff_s=10)
    harness = Harness(limit=1, window_s=30, settings=settings)
    answers = iter([OutcomeUnknown("timeout"), None, None, None])
    jobs = [
        (0.0, make_job("old", user="a", text="shared")),
        (2.0, make_job("new", user="b", text="shared")),
    ]

    harness.run(jobs, answers)

    assert [at - 1000 for at, _, _ in harness.requests] == [0, 30]
    retry = harness.requests[1][1]
    assert [job.event_id for job in retry.envelopes[0].jobs] == ["old", "new"]
    assert harness.outcome("old") is Outcome.SENT


def test_a_partial_refusal_dead_letters_only_the_named_jobs() -> None:
    harness = Harness()
    refusal = ProviderRejected("bad device", status=400, event_ids=frozenset({"e1"}))
    jobs = [(0.0, make_job(f"e{i}", user=f"u{i}")) for i in range(3)]

    harness.run(jobs, iter([refusal]))

    assert [harness.outcome(f"e{i}") for i in range(3)] == [
        Outcome.SENT,
        Outcome.DEAD_LETTERED,
        Outcome.SENT,
    ]


def test_retries_go_on_until_the_ttl_ends_in_expired_not_dead_lettered() -> None:
    harness = Harness(limit=100, window_s=1)

    harness.run([(0.0, make_job("e1", ttl_s=60))], itertools.repeat(OutcomeUnknown("timeout")))

    assert len(harness.requests) > 5
    assert all(at < 1_060 for at, _, _ in harness.requests), "nothing goes out after its TTL"
    assert harness.outcomes["e1"][0][:2] == (Outcome.EXPIRED, "ttl_elapsed")


def test_a_job_with_too_many_recipients_is_dead_lettered_at_once() -> None:
    harness = Harness(max_recipients=1)
    harness.scheduler._recipients = lambda job: ("a", "b")
    harness.run([(0.0, make_job("e1"))])

    assert harness.outcomes["e1"][0][:2] == (Outcome.DEAD_LETTERED, "too_many_recipients")


def test_dropping_partitions_forgets_waiting_jobs_but_not_those_in_flight() -> None:
    harness = Harness(limit=1, window_s=60)
    scheduler, now = harness.scheduler, harness.clock.t
    for i, partition in enumerate([0, 1, 1, 2]):
        scheduler.add(make_job(f"e{i}", text=f"t{i}", partition=partition), now, T0)
    in_flight = scheduler.next_request(now, T0)
    assert in_flight is not None

    assert scheduler.pending.drop({("orders", 0), ("orders", 1)}) == 2
    assert scheduler.pending.size == 2  # e0 in flight, e3 waiting
    assert scheduler.pop_finished() == []
    scheduler.add(make_job("e1", text="t1", partition=1), now, T0)  # assigned back to us
    assert scheduler.pop_finished() == []  # not taken for a duplicate


def test_oldest_age_is_per_class() -> None:
    harness = Harness(full=True)
    scheduler, now = harness.scheduler, harness.clock.t
    scheduler.add(make_job("m", push_class=PushClass.MARKETING), now, T0)
    scheduler.add(make_job("t", user="b"), now + 5, T0)

    assert scheduler.oldest_age(PushClass.MARKETING, now + 8) == 8
    assert scheduler.oldest_age(PushClass.TRANSACTIONAL, now + 8) == 3


def test_backoff_grows_with_jitter_and_retry_after_wins() -> None:
    policy = RetryPolicy(initial_backoff_s=2, max_backoff_s=10)
    rng = random.Random(1)
    error = OutcomeUnknown("timeout")

    delays = [policy.delay_s(attempt, error, rng) for attempt in (1, 2, 3, 4, 5)]

    for delay, step in zip(delays, [2, 4, 8, 10, 10], strict=True):
        assert step / 2 <= delay <= step
    assert policy.delay_s(1, RateLimited("429", retry_after=42), rng) == pytest.approx(42)
    assert 5 <= policy.delay_s(5_000, error, rng) <= 10, "days of retries stay capped"
