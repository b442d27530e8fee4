"""Single decisions of the scheduler, one case each: through the running dispatcher
on a fake clock (``play``), or asked of the scheduler directly."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from dispatch_support import make_rig, make_scheduler, play
from testkit import T0, make_job

from consumer.dispatch.retry import RetryPolicy
from consumer.dispatch.scheduler import Scheduler
from consumer.errors import OutcomeUnknown, ProviderRejected, RateLimited
from consumer.providers.base import ProviderLimits
from consumer.push import Outcome, PushClass, PushJob
from consumer.settings import DispatchSettings


async def test_a_duplicate_event_id_is_skipped() -> None:
    rig = await make_rig(limit=10)

    await play(rig, [(0.0, make_job("e1")), (0.0, make_job("e1", user="other", offset=7))])

    assert [(r.outcome, r.reason) for r in rig.sink.outcomes["e1"]] == [
        (Outcome.SKIPPED, "duplicate"),  # at once, while the first goes out
        (Outcome.SENT, "sent"),
    ]
    assert [sent.envelopes[0].recipients for sent in rig.provider.sent] == [("u1",)]
    await rig.close()


async def test_a_recipient_appears_once_and_both_its_jobs_ride_along() -> None:
    rig = await make_rig(limit=10, max_recipients=2, full=True)
    jobs = [(0.0, make_job(f"e{i}", user=u)) for i, u in enumerate(["a", "b", "a", "c", "b"])]

    await play(rig, jobs)

    first, second = (sent.envelopes[0] for sent in rig.provider.sent)
    assert first.recipients == ("a", "b")
    assert [job.event_id for job in first.jobs] == ["e0", "e1", "e2", "e4"]
    assert second.recipients == ("c",)
    await rig.close()


async def test_a_provider_with_several_messages_gets_several_groups_per_request() -> None:
    rig = await make_rig(limit=10, max_recipients=3, max_messages=2, full=True)
    texts = ["x", "y", "x", "z", "z"]
    jobs = [(0.0, make_job(f"e{i}", user=f"u{i}", text=t)) for i, t in enumerate(texts)]

    await play(rig, jobs)

    first, second = rig.provider.sent
    assert [e.message.title for e in first.envelopes] == ["x", "y"]
    assert [e.recipients for e in first.envelopes] == [("u0", "u2"), ("u1",)]
    assert [e.message.title for e in second.envelopes] == ["z"]
    assert rig.sink.count(Outcome.SENT) == 5
    await rig.close()


async def test_without_versions_the_later_occurrence_supersedes() -> None:
    rig = await make_rig(full=True)  # nothing can go out for a window: both wait
    late = make_job("late", text="b", collapse_key="k", occurred_at=T0 + dt.timedelta(seconds=5))
    early = make_job("early", text="a", collapse_key="k", occurred_at=T0)

    await play(rig, [(0.0, late), (1.0, early)])

    (early_end,) = rig.sink.outcomes["early"]
    assert (early_end.outcome, early_end.reason) == (Outcome.SUPERSEDED, "newer_pending")
    assert rig.sink.outcome("late") is Outcome.SENT
    await rig.close()


async def test_an_equal_version_after_one_was_sent_is_superseded() -> None:
    rig = await make_rig()
    first = make_job("a", text="a", collapse_key="k", version=3)
    again = make_job("b", text="b", collapse_key="k", version=3)

    await play(rig, [(0.0, first), (10.0, again)])

    assert rig.sink.outcome("a") is Outcome.SENT
    (end,) = rig.sink.outcomes["b"]
    assert (end.outcome, end.reason) == (Outcome.SUPERSEDED, "older_than_sent")
    await rig.close()


async def test_a_retried_job_keeps_its_age_and_coalesces_with_new_arrivals() -> None:
    rig = await make_rig(limit=1, window_s=30, retry_initial_backoff_s=10, retry_max_backoff_s=10)
    rig.provider.results.append(OutcomeUnknown("timeout"))
    jobs = [
        (0.0, make_job("old", user="a", text="shared")),
        (2.0, make_job("new", user="b", text="shared")),
    ]

    await play(rig, jobs)

    assert [at - 1000 for at in rig.provider.start_times] == [0, 30]
    retry = rig.provider.sent[1].envelopes[0]
    assert [job.event_id for job in retry.jobs] == ["old", "new"]
    assert rig.sink.outcome("old") is Outcome.SENT
    await rig.close()


async def test_a_partial_refusal_dead_letters_only_the_named_jobs() -> None:
    rig = await make_rig()
    refusal = ProviderRejected("bad device", status=400, event_ids=frozenset({"e1"}))
    rig.provider.results.append(refusal)
    jobs = [(0.0, make_job(f"e{i}", user=f"u{i}")) for i in range(3)]

    await play(rig, jobs)

    assert len(rig.provider.sent) == 1, "the jobs it took are not sent again"
    assert [rig.sink.outcome(f"e{i}") for i in range(3)] == [
        Outcome.SENT,
        Outcome.DEAD_LETTERED,
        Outcome.SENT,
    ]
    await rig.close()


async def test_retries_go_on_until_the_ttl_ends_in_expired_not_dead_lettered() -> None:
    rig = await make_rig(limit=100, window_s=1)
    rig.provider.results.extend([OutcomeUnknown("timeout")] * 1_000)

    await play(rig, [(0.0, make_job("e1", ttl_s=60))])

    assert len(rig.provider.sent) > 5
    assert all(at < 1_060 for at in rig.provider.start_times), "nothing goes out after its TTL"
    (end,) = rig.sink.outcomes["e1"]
    assert (end.outcome, end.reason) == (Outcome.EXPIRED, "ttl_elapsed")
    await rig.close()


def test_a_job_with_too_many_recipients_is_dead_lettered_at_once() -> None:
    scheduler = Scheduler(
        limits=ProviderLimits(max_messages_per_request=1, max_recipients_per_request=1),
        coalesce_key=lambda job: job.message,
        recipients=lambda job: ("a", "b"),
        settings=DispatchSettings(),
    )

    scheduler.add(make_job("e1"), 1_000.0, T0)

    ((end,),) = [scheduler.pop_finished()]
    assert (end.job.event_id, end.outcome, end.reason) == (
        "e1",
        Outcome.DEAD_LETTERED,
        "too_many_recipients",
    )
    assert str(end.error) == "2 recipients, more than the 1 one request may carry"
    assert scheduler.pending.size == 0


def test_a_push_the_provider_cannot_address_is_dead_lettered_saying_why() -> None:
    def no_key(job: PushJob) -> str:
        raise ValueError(f"no device for {job.recipient.user_id}")

    scheduler = Scheduler(
        limits=ProviderLimits(max_messages_per_request=1, max_recipients_per_request=10),
        coalesce_key=no_key,
        recipients=lambda job: ("a",),
        settings=DispatchSettings(),
    )

    scheduler.add(make_job("e1", user="u7"), 1_000.0, T0)
    scheduler.add(make_job("e2", user="u8", text="other", offset=1), 1_000.0, T0)

    ends = scheduler.pop_finished()
    assert [(f.job.event_id, f.outcome, f.reason) for f in ends] == [
        ("e1", Outcome.DEAD_LETTERED, "unaddressable"),
        ("e2", Outcome.DEAD_LETTERED, "unaddressable"),
    ]
    assert str(ends[0].error) == (
        "provider could not address this push: ValueError('no device for u7')"
    )
    assert scheduler.pending.size == 0


def test_dropping_partitions_forgets_waiting_jobs_but_not_those_in_flight() -> None:
    scheduler, now = make_scheduler(), 1_000.0
    for i, partition in enumerate([0, 1, 1, 2]):
        scheduler.add(make_job(f"e{i}", text=f"t{i}", partition=partition), now, T0)
    in_flight = scheduler.next_request(now, T0)
    assert in_flight is not None

    assert scheduler.pending.drop({("orders", 0), ("orders", 1)}) == 2
    assert scheduler.pending.size == 2  # e0 in flight, e3 waiting
    assert scheduler.pop_finished() == []
    scheduler.add(make_job("e1", text="t1", partition=1), now, T0)  # assigned back to us
    assert scheduler.pop_finished() == []  # not taken for a duplicate
    assert scheduler.pending.size == 3


def test_oldest_age_is_per_class() -> None:
    scheduler, now = make_scheduler(), 1_000.0
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
    assert policy.delay_s(1, RateLimited("429", retry_after=0), rng) == 0.0, "now, as asked"
    assert policy.delay_s(1, RateLimited("429", retry_after=-3), rng) == 0.0, "a date passed"
    assert 5 <= policy.delay_s(5_000, error, rng) <= 10, "days of retries stay capped"


def test_the_jitter_spreads_retries_over_the_whole_second_half_of_the_step() -> None:
    policy = RetryPolicy(initial_backoff_s=10, max_backoff_s=10)
    rng = random.Random(3)
    delays = [policy.delay_s(1, OutcomeUnknown("timeout"), rng) for _ in range(200)]
    assert 5.0 <= min(delays) < 5.5
    assert 9.5 < max(delays) <= 10.0


def test_marketing_earns_its_share_only_while_both_classes_wait() -> None:
    """Three order pushes alone earn marketing nothing: when an offer then waits beside
    an order push, the order push (worth half a turn to marketing) goes first."""
    s = make_scheduler(marketing_min_share=0.5)
    for i in range(3):
        s.add(make_job(f"t{i}", text=f"order {i}", offset=i), 1_000.0, T0)
        request = s.next_request(1_000.0, T0)
        assert request is not None
        s.on_sent(request)
    s.add(make_job("m", text="sale", push_class=PushClass.MARKETING, offset=3), 1_000.0, T0)
    s.add(make_job("t3", text="order 3", offset=4), 1_000.0, T0)

    classes = []
    while (request := s.next_request(1_000.0, T0)) is not None:
        classes.append((request.push_class, request.entries[0].job.event_id))
        s.on_sent(request)
    assert classes == [(PushClass.TRANSACTIONAL, "t3"), (PushClass.MARKETING, "m")]


def test_a_request_of_several_messages_stops_at_the_recipient_cap() -> None:
    s = make_scheduler(max_messages=3, max_recipients=3)
    for number, (user, text) in enumerate([("u1", "A"), ("u2", "A"), ("u3", "B"), ("u4", "B")]):
        s.add(make_job(f"e{number}", user=user, text=text, offset=number), 1_000.0, T0)

    first, second = s.next_request(1_000.0, T0), s.next_request(1_000.0, T0)

    assert first is not None
    assert second is not None
    assert [[job.event_id for job in e.jobs] for e in first.envelopes] == [["e0", "e1"], ["e2"]]
    assert first.recipients == 3
    assert [[job.event_id for job in e.jobs] for e in second.envelopes] == [["e3"]]


def test_an_event_read_after_its_ttl_ended_is_expired_at_once_saying_so() -> None:
    s = make_scheduler()
    s.add(make_job("late", ttl_s=60, occurred_at=T0), 1_000.0, T0 + dt.timedelta(seconds=60))

    ((end,),) = [s.pop_finished()]
    assert (end.job.event_id, end.outcome, end.reason) == ("late", Outcome.EXPIRED, "ttl_elapsed")
    assert s.next_request(1_000.0, T0 + dt.timedelta(seconds=60)) is None


def test_a_push_waiting_behind_a_request_of_hundreds_goes_next() -> None:
    """Two hundred recipients of one text go in one request, leaving two hundred stale
    items in the ready heaps, rebuilt at once; the one push left waiting is not lost."""
    s = make_scheduler()
    for i in range(200):
        s.add(make_job(f"sale{i}", user=f"u{i}", text="sale", offset=i), 1_000.0, T0)
    s.add(make_job("news", user="u0", text="news", offset=200), 1_000.0, T0)

    first, second = s.next_request(1_000.0, T0), s.next_request(1_000.0, T0)

    assert first is not None
    assert first.recipients == 200
    assert second is not None
    assert [job.event_id for e in second.envelopes for job in e.jobs] == ["news"]
