"""Properties of the scheduling decisions under any schedule (hypothesis, no sleeping)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator

from dispatch_support import Harness, make_job, max_starts_in_window
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.errors import (
    ConsumerError,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from consumer.push import Outcome, PushClass, PushJob
from consumer.settings import DispatchSettings

FEW = settings(max_examples=40, deadline=None)

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


@FEW
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
    policy = DispatchSettings(retry_initial_backoff_s=0.5)
    harness = Harness(
        limit=limit,
        window_s=window,
        full=full,
        max_recipients=cap,
        settings=policy,
        latency_s=latency,
    )
    results: Iterator[ConsumerError | None] = iter(answers + [None] * 10_000)
    jobs = _jobs(raw)

    harness.run(jobs, results)

    assert max_starts_in_window(harness.starts, window) <= limit
    for _, request, _ in harness.requests:
        (envelope,) = request.envelopes
        assert 1 <= len(envelope.recipients) <= cap
        assert len(set(envelope.recipients)) == len(envelope.recipients)
        assert {job.recipient.push_id for job in envelope.jobs} == set(envelope.recipients)
    assert sorted(harness.outcomes) == sorted(job.event_id for _, job in jobs)
    assert all(len(records) == 1 for records in harness.outcomes.values())
    sent_ok = {
        job.event_id
        for _, request, error in harness.requests
        if error is None
        for job in request.envelopes[0].jobs
    }
    for _, job in jobs:
        outcome, reason, _ = harness.outcomes[job.event_id][0]
        assert (outcome is Outcome.SENT) == (job.event_id in sent_ok)
        if outcome is Outcome.DEAD_LETTERED:
            assert reason == "provider_rejected", "only a refusal dead-letters a push"


@FEW
@given(
    raw=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 12)), min_size=1, max_size=60),
    cap=st.integers(1, 5),
    limit=st.integers(1, 3),
)
def test_a_backlog_is_packed_into_the_fewest_requests(
    raw: list[tuple[int, int]], cap: int, limit: int
) -> None:
    harness = Harness(limit=limit, window_s=60, max_recipients=cap)
    jobs = [(0.0, make_job(f"e{i}", user=f"u{u}", text=f"t{t}")) for i, (t, u) in enumerate(raw)]

    harness.run(jobs)

    users_by_text: dict[int, set[int]] = {}
    for t, u in raw:
        users_by_text.setdefault(t, set()).add(u)
    fewest = sum(math.ceil(len(users) / cap) for users in users_by_text.values())
    assert len(harness.requests) == fewest
    assert all(harness.outcome(job.event_id) is Outcome.SENT for _, job in jobs)


@FEW
@given(
    classes=st.lists(st.sampled_from(list(PushClass)), min_size=2, max_size=40),
    share=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
    text_count=st.integers(1, 6),
)
def test_class_order_reservation_and_oldest_first(
    classes: list[PushClass], share: float, text_count: int
) -> None:
    harness = Harness(
        limit=1, window_s=10, max_recipients=2, settings=DispatchSettings(marketing_min_share=share)
    )
    jobs = [
        (0.0, make_job(f"e{i}", user=f"u{i}", text=f"{cls}-{i % text_count}", push_class=cls))
        for i, cls in enumerate(classes)
    ]
    order = {job.event_id: i for i, (_, job) in enumerate(jobs)}

    harness.run(jobs)

    remaining = {job.event_id: job.push.push_class for _, job in jobs}
    marketing_while_contended = contended = 0
    for _, request, _ in harness.requests:
        waiting = set(remaining.values())
        carried = [job.event_id for job in request.envelopes[0].jobs]
        oldest_of_class = min(
            (e for e, c in remaining.items() if c is request.push_class), key=order.__getitem__
        )
        assert oldest_of_class in carried  # the group holding the oldest push goes first
        if len(waiting) == 2:
            contended += 1
            marketing_while_contended += request.push_class is PushClass.MARKETING
            assert marketing_while_contended == math.floor(contended * share + 1e-9)
        else:
            assert request.push_class in waiting
        for event_id in carried:
            del remaining[event_id]


@FEW
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
    harness = Harness(limit=1, window_s=5)
    start, start_wall = harness.clock.t, harness.clock.now()
    jobs = []
    for i, (at, lag, ttl) in enumerate(raw):
        occurred = start_wall + dt.timedelta(seconds=at - lag)
        job = make_job(f"e{i}", user=f"u{i}", text=f"t{i}", ttl_s=ttl, occurred_at=occurred)
        jobs.append((at, job))

    harness.run(jobs)

    for at, job in jobs:
        expires_mono = start + (job.expires_at - start_wall).total_seconds()
        outcome, _, when = harness.outcomes[job.event_id][0]
        if outcome is Outcome.EXPIRED:
            assert when >= expires_mono - 1e-6
            assert when <= max(start + at, expires_mono) + 0.01  # on arrival, or on time
        else:
            assert outcome is Outcome.SENT
            sent_at = next(t for t, r, _ in harness.requests if job in r.envelopes[0].jobs)
            assert sent_at < expires_mono


@FEW
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
    harness = Harness(limit=1, window_s=4)
    jobs = [
        (at, make_job(f"e{i}", user="u", text=f"t{i}", collapse_key=f"order-{k}", version=v))
        for i, (at, k, v) in enumerate(raw)
    ]

    harness.run(jobs)

    shown: dict[str, list[int]] = {}
    for _, request, _ in harness.requests:
        for job in request.envelopes[0].jobs:
            assert job.push.collapse_key is not None
            assert job.version is not None
            shown.setdefault(job.push.collapse_key, []).append(job.version)
    for key, versions in shown.items():
        assert versions == sorted(set(versions)), key
        newest = max(job.version or 0 for _, job in jobs if job.push.collapse_key == key)
        assert versions[-1] == newest
    assert all(len(records) == 1 for records in harness.outcomes.values())
    assert len(harness.outcomes) == len(jobs)
    assert {o for records in harness.outcomes.values() for o, _, _ in records} <= {
        Outcome.SENT,
        Outcome.SUPERSEDED,
    }
