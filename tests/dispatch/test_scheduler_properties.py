"""Properties of the scheduling decisions under any schedule, through the running
dispatcher on a fake clock (hypothesis; a scenario of minutes runs in milliseconds)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math

from dispatch_support import Rig, make_rig, max_starts_in_window, play
from hypothesis import given, settings
from hypothesis import strategies as st
from testkit import T0, examples, make_job

from consumer.errors import (
    ConsumerError,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from consumer.push import Outcome, PushClass, PushJob

SOME = settings(max_examples=examples(60), deadline=None)

arrival = st.tuples(
    st.floats(0, 30, allow_nan=False),  # when it arrives
    st.integers(0, 2),  # which text
    st.integers(0, 5),  # which user
    st.sampled_from(list(PushClass)),
)
answer = st.sampled_from(
    [
        None,
        None,
        OutcomeUnknown("read timeout"),
        ProviderUnavailable("connection refused"),
        RateLimited("429", retry_after=3.0),
        RateLimited("429"),
        ProviderRejected("bad request", status=400),
    ]
)


def _jobs(raw: list[tuple[float, int, int, PushClass]]) -> list[tuple[float, PushJob]]:
    return [
        (at, make_job(f"e{i}", user=f"u{user}", text=f"{cls}-{text}", push_class=cls))
        for i, (at, text, user, cls) in enumerate(raw)
    ]


def played(arrivals: list[tuple[float, PushJob]], **rig_settings: float) -> Rig:
    async def run() -> Rig:
        rig = await make_rig(**rig_settings)  # type: ignore[arg-type]
        await play(rig, arrivals)
        await rig.close()
        return rig

    return asyncio.run(run())


@SOME
@given(
    raw=st.lists(arrival, min_size=1, max_size=40),
    answers=st.lists(answer, min_size=1, max_size=30),
    limit=st.integers(1, 4),
    window=st.sampled_from([1.0, 5.0, 60.0]),
    cap=st.integers(1, 4),
    full=st.booleans(),
    latency=st.sampled_from([0.0, 0.5, 7.0]),
)
def test_budget_caps_and_one_outcome_hold_under_failures_and_retries(
    raw: list[tuple[float, int, int, PushClass]],
    answers: list[ConsumerError | None],
    limit: int,
    window: float,
    cap: int,
    full: bool,
    latency: float,
) -> None:
    jobs = _jobs(raw)

    async def run() -> Rig:
        rig = await make_rig(
            limit=limit,
            window_s=window,
            full=full,
            max_recipients=cap,
            retry_initial_backoff_s=0.5,
        )
        rig.provider.latency_s = latency
        rig.provider.results.extend(answers)
        await play(rig, jobs)
        await rig.close()
        return rig

    rig = asyncio.run(run())

    prior = [1_000.0] * limit if full else []  # what a previous process may have sent
    assert max_starts_in_window(prior + rig.provider.start_times, window) <= limit
    for sent in rig.provider.sent:
        (envelope,) = sent.envelopes
        assert 1 <= len(envelope.recipients) <= cap
        assert len(set(envelope.recipients)) == len(envelope.recipients)
        assert {job.recipient.push_id for job in envelope.jobs} == set(envelope.recipients)
    assert sorted(rig.sink.outcomes) == sorted(job.event_id for _, job in jobs)
    assert all(len(records) == 1 for records in rig.sink.outcomes.values())
    sent_ok = {job.event_id for job in rig.provider.delivered}
    for _, job in jobs:
        (end,) = rig.sink.outcomes[job.event_id]
        assert (end.outcome is Outcome.SENT) == (job.event_id in sent_ok)
        if end.outcome is Outcome.DEAD_LETTERED:
            assert end.reason == "provider_rejected", "only a refusal dead-letters a push"
            assert job.event_id in rig.provider.refused


@SOME
@given(
    raw=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 12)), min_size=1, max_size=60),
    cap=st.integers(1, 5),
    limit=st.integers(1, 3),
)
def test_a_backlog_is_packed_into_the_fewest_requests(
    raw: list[tuple[int, int]], cap: int, limit: int
) -> None:
    jobs = [(0.0, make_job(f"e{i}", user=f"u{u}", text=f"t{t}")) for i, (t, u) in enumerate(raw)]

    rig = played(jobs, limit=limit, window_s=60, max_recipients=cap, full=True)

    users_by_text: dict[int, set[int]] = {}
    for t, u in raw:
        users_by_text.setdefault(t, set()).add(u)
    fewest = sum(math.ceil(len(users) / cap) for users in users_by_text.values())
    assert len(rig.provider.sent) == fewest
    assert all(rig.sink.outcome(job.event_id) is Outcome.SENT for _, job in jobs)


@SOME
@given(
    classes=st.lists(st.sampled_from(list(PushClass)), min_size=2, max_size=40),
    share=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
    text_count=st.integers(1, 6),
)
def test_class_order_reservation_and_oldest_first(
    classes: list[PushClass], share: float, text_count: int
) -> None:
    jobs = [
        (0.0, make_job(f"e{i}", user=f"u{i}", text=f"{cls}-{i % text_count}", push_class=cls))
        for i, cls in enumerate(classes)
    ]
    order = {job.event_id: i for i, (_, job) in enumerate(jobs)}

    rig = played(jobs, limit=1, window_s=10, max_recipients=2, marketing_min_share=share)

    remaining = {job.event_id: job.push.push_class for _, job in jobs}
    marketing_while_contended = contended = 0
    for sent in rig.provider.sent:
        waiting = set(remaining.values())
        carried = [job.event_id for job in sent.jobs]
        (push_class,) = {job.push.push_class for job in sent.jobs}
        oldest_of_class = min(
            (e for e, c in remaining.items() if c is push_class), key=order.__getitem__
        )
        assert oldest_of_class in carried  # the group holding the oldest push goes first
        if len(waiting) == 2:
            contended += 1
            marketing_while_contended += push_class is PushClass.MARKETING
            assert marketing_while_contended == math.floor(contended * share + 1e-9)
        else:
            assert push_class in waiting
        for event_id in carried:
            del remaining[event_id]
    assert remaining == {}


@SOME
@given(
    raw=st.lists(
        st.tuples(st.floats(0, 60, allow_nan=False), st.floats(0, 20), st.floats(1, 40)),
        min_size=1,
        max_size=30,
    ),
)
def test_no_push_goes_out_after_its_ttl_and_expiry_is_on_time(
    raw: list[tuple[float, float, float]],
) -> None:
    start = 1_000.0
    jobs = []
    for i, (at, lag, ttl) in enumerate(raw):
        occurred = T0 + dt.timedelta(seconds=at - lag)
        job = make_job(f"e{i}", user=f"u{i}", text=f"t{i}", ttl_s=ttl, occurred_at=occurred)
        jobs.append((at, job))

    rig = played(jobs, limit=1, window_s=5)

    for at, job in jobs:
        expires_mono = start + (job.expires_at - T0).total_seconds()
        (end,) = rig.sink.outcomes[job.event_id]
        if end.outcome is Outcome.EXPIRED:
            assert end.at >= expires_mono - 1e-6
            assert end.at <= max(start + at, expires_mono) + 0.01  # on arrival, or on time
        else:
            assert end.outcome is Outcome.SENT
            sent_at = next(s.started for s in rig.provider.sent if job in s.jobs)
            assert sent_at < expires_mono


@SOME
@given(
    raw=st.lists(
        st.tuples(st.floats(0, 40, allow_nan=False), st.integers(0, 1), st.integers(1, 4)),
        min_size=1,
        max_size=30,
    ),
)
def test_a_collapse_key_never_shows_an_older_or_repeated_status(
    raw: list[tuple[float, int, int]],
) -> None:
    jobs = [
        (at, make_job(f"e{i}", user="u", text=f"t{i}", collapse_key=f"order-{k}", version=v))
        for i, (at, k, v) in enumerate(raw)
    ]

    rig = played(jobs, limit=1, window_s=4)

    shown: dict[str, list[int]] = {}
    for job in (job for sent in rig.provider.sent for job in sent.jobs):
        assert job.push.collapse_key is not None
        assert job.version is not None
        shown.setdefault(job.push.collapse_key, []).append(job.version)
    for key, versions in shown.items():
        assert versions == sorted(set(versions)), key
        newest = max(job.version or 0 for _, job in jobs if job.push.collapse_key == key)
        assert versions[-1] == newest
    assert all(len(records) == 1 for records in rig.sink.outcomes.values())
    assert len(rig.sink.outcomes) == len(jobs)
    assert {r.outcome for records in rig.sink.outcomes.values() for r in records} <= {
        Outcome.SENT,
        Outcome.SUPERSEDED,
    }
