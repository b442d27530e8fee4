"""Which text each push goes out with, and quiet hours: single cases on the scheduler."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from dispatch_support import Harness, advance, make_rig
from reach_support import push_job
from testkit import T0

from consumer.dispatch import reach
from consumer.dispatch.pending import Entry
from consumer.dispatch.scheduler import Request
from consumer.errors import ProviderUnavailable
from consumer.events import Recipient
from consumer.push import DEFAULT_ZONE, Outcome, PushClass, PushJob, Variant
from consumer.quiet import QuietHours
from consumer.settings import DispatchSettings

NIGHT = QuietHours(dt.time(22), dt.time(9))
KAMCHATKA = ZoneInfo("Asia/Kamchatka")  # T0 (09:00 UTC) is 21:00 there: quiet at 22:00


def seconds(count: float) -> dt.timedelta:
    return dt.timedelta(seconds=count)


def sent(harness: Harness) -> list[tuple[float, str, list[str]]]:
    """Each request: seconds from the start, the text's variant, the events it carried."""
    start = harness.requests[0][0] if harness.requests else 0.0
    return [
        (at - start, _variant(r), [e.job.event_id for e in r.entries])
        for at, r, _ in harness.requests
    ]


def _variant(request: Request) -> str:
    (variant,) = {e.job.variant.value for e in request.entries}
    return variant


def test_with_a_free_budget_every_push_goes_personal() -> None:
    harness = Harness(limit=10, window_s=60)
    harness.run([(0.0, push_job(f"e{i}", order=i)) for i in range(8)])
    assert [variant for _, variant, _ in sent(harness)] == ["personal"] * 8


def test_a_burst_goes_shared_at_once_beyond_what_goes_out_personal_in_time() -> None:
    # 2 requests a minute; 2 minutes to go personal: requests 0-5 start by 120 s
    harness = Harness(limit=2, window_s=60)
    harness.run([(0.0, push_job(f"e{i}", order=i, within_s=120)) for i in range(20)])
    assert sent(harness) == [
        (0.0, "personal", ["e0"]),
        (0.0, "personal", ["e1"]),
        (60.0, "personal", ["e2"]),
        (60.0, "personal", ["e3"]),
        (120.0, "personal", ["e4"]),
        (120.0, "personal", ["e5"]),
        (180.0, "shared", [f"e{i}" for i in range(6, 20)]),  # one request tells the rest
    ]


def test_pushes_go_personal_again_as_soon_as_the_budget_keeps_up() -> None:
    harness = Harness(limit=2, window_s=60)
    burst = [(0.0, push_job(f"b{i}", order=i, within_s=60)) for i in range(10)]
    later = [
        (
            at,
            push_job(
                f"q{i}", order=100 + i, within_s=60, occurred_at=T0 + dt.timedelta(seconds=at)
            ),
        )
        for i, at in enumerate((600.0, 660.0, 720.0))
    ]
    harness.run(burst + later)
    variants = {e: v for _, v, events in sent(harness) for e in events}
    assert [variants[f"b{i}"] for i in range(10)] == ["personal"] * 4 + ["shared"] * 6
    assert [variants[f"q{i}"] for i in range(3)] == ["personal"] * 3


def test_a_full_shared_request_counts_as_one_request_more_for_those_behind_it() -> None:
    # Two recipients a request: the late ones need two shared requests, so the push
    # after them would wait for both and goes shared too.
    harness = Harness(limit=1, window_s=60, max_recipients=2)
    burst = [(0.0, push_job(f"e{i}", order=i, within_s=60)) for i in range(6)]
    other = (0.0, push_job("x", order=99, rule="other", within_s=200))
    harness.run([*burst, other])
    assert sent(harness) == [
        (0.0, "personal", ["e0"]),
        (60.0, "personal", ["e1"]),
        (120.0, "shared", ["e2", "e3"]),
        (180.0, "shared", ["e4", "e5"]),
        (240.0, "shared", ["x"]),  # personal at 240 s, past its 200 s: shared, alone
    ]


def test_pushes_held_by_quiet_hours_are_not_counted_ahead_of_those_in_line() -> None:
    harness = Harness(limit=1, window_s=60)
    harness.clock.t += 3600  # 22:00 in Kamchatka, 10:00 in Moscow
    now = T0 + dt.timedelta(hours=1)
    held = [
        (
            0.0,
            push_job(
                f"h{i}",
                order=i,
                push_class=PushClass.MARKETING,
                quiet=NIGHT,
                zone=KAMCHATKA,
                ttl_s=86_400,
                occurred_at=now,
            ),
        )
        for i in range(5)
    ]
    awake = [
        (
            1.0,
            push_job(
                f"m{i}",
                order=10 + i,
                push_class=PushClass.MARKETING,
                quiet=NIGHT,
                within_s=90,
                occurred_at=now + dt.timedelta(seconds=1),
            ),
        )
        for i in range(2)
    ]
    harness.run(held + awake)
    carried = {e: v for _, v, events in sent(harness) for e in events}
    assert (carried["m0"], carried["m1"]) == ("personal", "personal")


def test_a_push_already_shared_goes_personal_again_when_the_queue_ahead_shrinks() -> None:
    harness = Harness(limit=2, window_s=60)
    burst = [(0.0, push_job(f"e{i}", order=i, version=1, within_s=60)) for i in range(8)]
    # a second later orders 2 and 3 move on: their first statuses leave the queue
    newer = [
        (
            1.0,
            push_job(
                f"e{i}v2",
                order=i,
                version=2,
                rule="delivered",
                within_s=300,
                occurred_at=T0 + seconds(1),
            ),
        )
        for i in (2, 3)
    ]
    harness.run(burst + newer)
    assert sent(harness) == [
        (0.0, "personal", ["e0"]),
        (0.0, "personal", ["e1"]),
        # e4 and e5 were shared at 0 s (four requests ahead of them); now in time
        (60.0, "personal", ["e4"]),
        (60.0, "personal", ["e5"]),
        (120.0, "shared", ["e6", "e7"]),
        (120.0, "personal", ["e2v2"]),
        (180.0, "personal", ["e3v2"]),
    ]


def test_a_push_whose_history_is_not_written_never_goes_shared() -> None:
    harness = Harness(limit=1, window_s=60)
    harness.run(
        [(0.0, push_job(f"e{i}", order=i, within_s=60, in_history=False)) for i in range(4)]
    )
    assert [variant for _, variant, _ in sent(harness)] == ["personal"] * 4
    assert [at for at, _, _ in sent(harness)] == [0.0, 60.0, 120.0, 180.0]


def test_a_rule_without_shared_text_waits_its_turn() -> None:
    harness = Harness(limit=1, window_s=60)
    harness.run([(0.0, push_job(f"e{i}", order=i, within_s=60, shared=False)) for i in range(3)])
    assert [variant for _, variant, _ in sent(harness)] == ["personal"] * 3


def test_with_shared_variants_switched_off_everything_goes_personal() -> None:
    harness = Harness(limit=1, window_s=60, settings=DispatchSettings(shared_variants=False))
    harness.run([(0.0, push_job(f"e{i}", order=i, within_s=60)) for i in range(3)])
    assert [variant for _, variant, _ in sent(harness)] == ["personal"] * 3


def test_the_estimate_counts_shared_groups_already_ahead() -> None:
    # Two rules burst; each rule's late pushes share one request, counted where the
    # rule's oldest late push stands, so what comes after waits for both.
    harness = Harness(limit=1, window_s=60)
    jobs = [(0.0, push_job(f"a{i}", order=i, rule="a", within_s=60)) for i in range(4)]
    jobs += [(0.0, push_job(f"b{i}", order=10 + i, rule="b", within_s=60)) for i in range(4)]
    harness.run(jobs)
    assert sent(harness) == [
        (0.0, "personal", ["a0"]),
        (60.0, "personal", ["a1"]),
        (120.0, "shared", ["a2", "a3"]),
        (180.0, "shared", ["b0", "b1", "b2", "b3"]),
    ]


def test_a_newer_status_replaces_an_older_one_whatever_text_either_has() -> None:
    harness = Harness(limit=1, window_s=60)
    jobs = [(0.0, push_job(f"e{i}", order=i, within_s=30)) for i in range(3)]
    # order 2's next status arrives while its shared push waits
    jobs.append((30.0, push_job("e2v2", order=2, version=2, rule="delivered", within_s=30)))
    for _, job in jobs[:3]:
        job.version = 1
    harness.run(jobs)
    assert harness.outcome("e2") is Outcome.SUPERSEDED
    assert harness.outcome("e2v2") is Outcome.SENT
    carried = {e: v for _, v, events in sent(harness) for e in events}
    assert carried["e2v2"] == "shared"  # 30 s after it: past its personal_within


def test_a_push_that_expires_while_it_waits_is_expired_whatever_its_text() -> None:
    harness = Harness(limit=1, window_s=600)
    jobs = [
        (0.0, push_job(f"e{i}", order=i, within_s=60, ttl_s=300 if i else 3600)) for i in range(3)
    ]
    harness.run(jobs)
    assert harness.outcome("e0") is Outcome.SENT
    assert harness.outcome("e1") is Outcome.EXPIRED
    assert harness.outcome("e2") is Outcome.EXPIRED


def test_a_marketing_push_waits_out_its_recipient_s_quiet_hours() -> None:
    # 21:59:00 in Kamchatka: the first goes now; one a minute later waits until 09:00
    harness = Harness(limit=10, window_s=60)
    start = T0 + dt.timedelta(seconds=59 * 60)
    early, late = (
        push_job(e, push_class=PushClass.MARKETING, quiet=NIGHT, zone=KAMCHATKA, ttl_s=86_400)
        for e in ("early", "late")
    )
    early.occurred_at = late.occurred_at = start
    harness.clock.t += 59 * 60
    harness.run([(0.0, early), (60.0, late)])
    starts = {r.entries[0].job.event_id: at for at, r, _ in harness.requests}
    assert starts["early"] == harness.requests[0][0]
    ends = dt.datetime(2026, 11, 22, 21, 0, tzinfo=dt.UTC)  # 09:00 in Kamchatka
    assert starts["late"] - starts["early"] == (ends - start).total_seconds()


def test_order_news_ignores_quiet_hours() -> None:
    harness = Harness(limit=10, window_s=60)
    harness.clock.t += 3600  # 22:00 in Kamchatka
    job = push_job("news", quiet=NIGHT, zone=KAMCHATKA, occurred_at=T0 + dt.timedelta(hours=1))
    start = harness.clock.t
    harness.run([(0.0, job)])
    assert harness.outcome("news") is Outcome.SENT
    assert harness.requests[0][0] == start


def test_a_push_waiting_when_its_quiet_hours_begin_waits_until_they_end() -> None:
    # The budget is spent for a window; the push is still waiting at 22:00 Kamchatka.
    harness = Harness(limit=1, window_s=3600, full=True)
    start = T0 + dt.timedelta(minutes=30)  # 21:30 there
    harness.clock.t += 30 * 60
    job = push_job(
        "held",
        push_class=PushClass.MARKETING,
        quiet=NIGHT,
        zone=KAMCHATKA,
        occurred_at=start,
        ttl_s=86_400,
    )
    harness.run([(0.0, job)])
    ((at, request, _),) = harness.requests
    sent_wall = T0 + dt.timedelta(seconds=at - 1_000.0)
    assert sent_wall == dt.datetime(2026, 11, 22, 21, 0, tzinfo=dt.UTC)  # 09:00 in Kamchatka
    assert request.entries[0].job.event_id == "held"


def test_a_held_push_whose_ttl_ends_overnight_expires_at_release() -> None:
    harness = Harness(limit=10, window_s=60)
    harness.clock.t += 3600  # 22:00 in Kamchatka
    job = push_job(
        "stale",
        push_class=PushClass.MARKETING,
        quiet=NIGHT,
        zone=KAMCHATKA,
        ttl_s=3 * 3600,
        occurred_at=T0 + dt.timedelta(hours=1),
    )
    harness.run([(0.0, job)])
    assert harness.requests == []
    ((outcome, reason, at),) = harness.outcomes["stale"]
    assert (outcome, reason) == (Outcome.EXPIRED, "ttl_elapsed")
    assert at == pytest.approx(1_000.0 + 4 * 3600, abs=0.01)  # at 01:00 there, while held


async def test_a_push_back_from_a_failed_request_goes_shared_when_its_retry_is_too_late() -> None:
    """The planner follows a retried push's deadline as it does a new one's: the next
    place in the budget (120 s) is past its 90 s for the personal text."""
    rig = await make_rig(limit=1, window_s=120, retry_initial_backoff_s=1.0)
    rig.provider.results.append(ProviderUnavailable("connection refused"))
    rig.dispatcher.submit(push_job("e1", within_s=90))

    await advance(rig.clock, 200)

    first, second = rig.provider.sent
    assert (first.started, second.started) == (1_000.0, 1_120.0)
    assert [job.variant for job in second.jobs] == [Variant.SHARED]
    assert rig.sink.outcome("e1") is Outcome.SENT
    retried = rig.metrics.value(
        "push_retries_total", provider="fake", reason="provider_unavailable"
    )
    assert retried == 1, "the retry is counted: settling the failure went through"
    await rig.close()


async def test_a_push_beyond_the_walk_rides_an_in_time_request_of_its_own_text() -> None:
    """A backlog longer than ``personal_within``: the walk stops before the last push,
    which is late for a request of its own but has the first push's personal text,
    so it goes personal in that push's request."""
    rig = await make_rig(limit=1, window_s=60)
    first = push_job("e0", within_s=90)
    pushes = [first, *(push_job(f"e{i}", within_s=90, offset=i) for i in (1, 2, 3))]
    rider = replace(first, event_id="x", recipient=Recipient(user_id="u-x"))
    for job in [*pushes, replace(rider, origin=replace(first.origin, offset=4))]:
        rig.dispatcher.submit(job)

    await advance(rig.clock, 200)

    at, request = rig.provider.requests[0]
    assert at == 1_000.0
    assert {job.event_id: job.variant for e in request for job in e.jobs} == {
        "e0": Variant.PERSONAL,
        "x": Variant.PERSONAL,
    }
    await rig.close()


def test_a_push_with_the_personal_text_of_one_counted_ahead_rides_its_request_in_time() -> None:
    """The walk counts a group's request once: a later push of the same personal text
    (another recipient) fits in it, exactly filling it, so it goes personal there
    instead of waiting for a request of its own, which would be late."""
    harness = Harness(limit=1, window_s=60, max_recipients=2)
    burst = [push_job(f"b{i}", within_s=50) for i in range(4)]
    rider = replace(burst[0], event_id="x", recipient=Recipient(user_id="u-x"))
    patient = push_job("slow", order=9, rule="slow", within_s=300)  # the walk goes past x
    harness.run([(0.0, job) for job in [*burst, rider, patient]])
    assert sent(harness) == [
        (0.0, "personal", ["b0", "x"]),
        (60.0, "shared", ["b1", "b2"]),
        (120.0, "shared", ["b3"]),
        (180.0, "personal", ["slow"]),
    ]


HALF_SHARE = DispatchSettings(marketing_min_share=0.5)


def _queue(
    names: str, push_class: PushClass, within_s: dict[str, float], rule: str, first: int
) -> list[PushJob]:
    return [
        push_job(name, order=first + i, rule=rule, within_s=within_s[name], push_class=push_class)
        for i, name in enumerate(names)
    ]


def test_order_news_counts_only_the_marketing_requests_actually_waiting() -> None:
    """Half the turns are marketing's while both classes wait, but two offers take two
    turns, not every other one: "e" is in time at 300 s (the sixth request), so it
    does not join the shared request that goes at 120 s."""
    harness = Harness(limit=1, window_s=60, settings=HALF_SHARE)
    within = {"a": 1000, "b": 10, "c": 10, "d": 330, "e": 330}
    orders = _queue("abcde", PushClass.TRANSACTIONAL, within, "courier", 1)
    offers = _queue("mn", PushClass.MARKETING, {"m": 3600, "n": 3600}, "sale", 50)
    harness.run([(0.0, job) for job in [*orders, *offers]])
    assert sent(harness) == [
        (0.0, "personal", ["a"]),
        (60.0, "personal", ["m"]),
        (120.0, "shared", ["b", "c"]),
        (180.0, "personal", ["n"]),
        (240.0, "personal", ["d"]),
        (300.0, "personal", ["e"]),
    ]


def test_marketing_counts_only_the_order_requests_actually_waiting() -> None:
    """The same from marketing's side: three order pushes take three turns; "E" is in
    time at 360 s, so it does not join the shared offer that goes at 180 s while an
    order push still waits."""
    harness = Harness(limit=1, window_s=60, settings=HALF_SHARE)
    orders = _queue("xyz", PushClass.TRANSACTIONAL, dict.fromkeys("xyz", 3600.0), "courier", 50)
    within = {"A": 1000, "B": 10, "C": 10, "D": 380, "E": 380}
    offers = _queue("ABCDE", PushClass.MARKETING, within, "sale", 1)
    harness.run([(0.0, job) for job in [*orders, *offers]])
    assert sent(harness) == [
        (0.0, "personal", ["x"]),
        (60.0, "personal", ["A"]),
        (120.0, "personal", ["y"]),
        (180.0, "shared", ["B", "C"]),
        (240.0, "personal", ["z"]),
        (300.0, "personal", ["D"]),
        (360.0, "personal", ["E"]),
    ]


def test_the_planner_forgets_the_pushes_that_went_out_under_a_steady_flow() -> None:
    """The planner follows every push going personal in a heap it cleans lazily; a long
    steady flow must not leave it holding every push that ever went out."""
    harness = Harness(limit=100, window_s=60)
    flow = [(float(i), push_job(f"e{i}", order=i, occurred_at=T0 + seconds(i))) for i in range(300)]
    harness.run(flow)
    assert [variant for _, variant, _ in sent(harness)] == ["personal"] * 300
    assert harness.scheduler.reach is not None
    followed = harness.scheduler.reach._personal[PushClass.TRANSACTIONAL]
    assert len(followed) < 100, "the heap keeps pushes long gone"


def test_offers_gone_shared_then_held_overnight_each_go_personal_in_the_morning() -> None:
    """At 21:58 in Kamchatka two offers fit in time; the two behind them go shared, then
    22:00 holds them both. In the morning their minute for the personal text counts
    from 09:00, so each goes out personal, in a request of its own, at 09:00 and 09:01."""
    harness = Harness(limit=1, window_s=60)
    start = T0 + dt.timedelta(minutes=58)
    harness.clock.t += 58 * 60
    offers = [
        push_job(
            f"m{i}",
            order=i,
            within_s=60,
            push_class=PushClass.MARKETING,
            quiet=NIGHT,
            zone=KAMCHATKA,
            ttl_s=86_400,
            occurred_at=start,
        )
        for i in range(1, 5)
    ]
    harness.run([(0.0, job) for job in offers])
    morning = dt.datetime(2026, 11, 22, 21, 0, tzinfo=dt.UTC)  # 09:00 in Kamchatka
    assert [
        (T0 + seconds(at - 1_000.0), [(e.job.variant, e.job.message.title) for e in r.entries])
        for at, r, _ in harness.requests
    ] == [
        (start, [(Variant.PERSONAL, "Заказ 1: courier")]),
        (start + seconds(60), [(Variant.PERSONAL, "Заказ 2: courier")]),
        (morning, [(Variant.PERSONAL, "Заказ 3: courier")]),
        (morning + seconds(60), [(Variant.PERSONAL, "Заказ 4: courier")]),
    ]


def test_a_push_held_by_quiet_hours_does_not_hide_the_late_pushes_behind_it() -> None:
    """The walk passes over a push not in line yet and goes on: the offers behind the
    one held overnight are still decided, the late ones going shared at once."""
    harness = Harness(limit=1, window_s=60)
    harness.clock.t += 3600  # 22:00 in Kamchatka, 13:00 in Moscow
    now = T0 + dt.timedelta(hours=1)
    held = push_job(
        "h",
        order=1,
        push_class=PushClass.MARKETING,
        quiet=NIGHT,
        zone=KAMCHATKA,
        ttl_s=86_400,
        occurred_at=now,
    )
    awake = [
        push_job(
            f"m{i}", order=10 + i, push_class=PushClass.MARKETING, within_s=60, occurred_at=now
        )
        for i in range(4)
    ]
    harness.run([(0.0, job) for job in [held, *awake]])
    assert sent(harness)[:3] == [
        (0.0, "personal", ["m0"]),
        (60.0, "personal", ["m1"]),
        (120.0, "shared", ["m2", "m3"]),
    ]


@pytest.mark.parametrize(
    ("window_s", "within_s", "ahead_s", "walk_limit", "looked_at"),
    [
        (60.5, 60.0, 0.0, 5_000, 2),  # the second request starts past every deadline
        (0.75, 0.5, 0.0, 5_000, 2),  # the same in under a second
        (60.5, 60.0, 30.0, 5_000, 3),  # an event 30 s ahead of our clock has 30 s more
        (60.0, 3600.0, 0.0, 3, 4),  # a long deadline: the walk's own limit ends it
    ],
)
def test_the_walk_looks_no_further_than_a_deadline_could_reach(
    window_s: float, within_s: float, ahead_s: float, walk_limit: int, looked_at: int
) -> None:
    """Bounded work: the walk stops at the first push whose new request would start
    after the latest deadline any push could have (or after ``WALK_LIMIT`` pushes)."""
    harness = Harness(limit=1, window_s=window_s)
    scheduler, pending = harness.scheduler, harness.scheduler.pending
    occurred = T0 + seconds(ahead_s)
    for i in range(10):
        job = push_job(f"e{i}", order=i, within_s=within_s, occurred_at=occurred)
        scheduler.add(job, harness.clock.t, T0)
    looked: set[str] = set()
    in_order = pending.waiting_in_order

    def counted(push_class: PushClass) -> Iterator[Entry]:
        for entry in in_order(push_class):
            looked.add(entry.job.event_id)
            yield entry

    with (
        mock.patch.object(pending, "waiting_in_order", counted),
        mock.patch.object(reach, "WALK_LIMIT", walk_limit),
    ):
        scheduler.next_request(harness.clock.t, T0)
    assert looked == {f"e{i}" for i in range(looked_at)}


def test_pushes_that_cannot_go_shared_count_a_request_per_text_ahead_of_the_others() -> None:
    """Three order pushes without a history item (personal only, each its own text)
    stand between two of rule "courier": counted as three requests, they put "e" past
    its 250 s, so it joins "a"'s shared request at 60 s."""
    harness = Harness(limit=1, window_s=60)

    def personal_only(name: str, order: int) -> PushJob:
        return push_job(name, order=order, rule="other", in_history=False)

    harness.run(
        [
            (0.0, job)
            for job in (
                personal_only("n0", 1),
                push_job("a", order=2, within_s=10),
                personal_only("n1", 3),
                personal_only("n2", 4),
                personal_only("n3", 5),
                push_job("e", order=6, within_s=250),
            )
        ]
    )
    assert sent(harness) == [
        (0.0, "personal", ["n0"]),
        (60.0, "shared", ["a", "e"]),
        (120.0, "personal", ["n1"]),
        (180.0, "personal", ["n2"]),
        (240.0, "personal", ["n3"]),
    ]


def test_two_rules_gone_shared_count_a_request_each() -> None:
    """The shared texts of two rules are two requests: behind both, "e" would go out
    personal at 180 s, past its 150 s, so it joins its rule's shared request at 60 s."""
    harness = Harness(limit=1, window_s=60)
    jobs = [
        push_job("n0", order=1, rule="other", in_history=False),
        push_job("a", order=2, within_s=10),
        push_job("b", order=3, rule="delivered", within_s=10),
        push_job("e", order=4, within_s=150),
    ]
    harness.run([(0.0, job) for job in jobs])
    assert sent(harness) == [
        (0.0, "personal", ["n0"]),
        (60.0, "shared", ["a", "e"]),
        (120.0, "shared", ["b"]),
    ]


def test_pushes_the_walk_found_in_time_stay_personal_when_it_stops_short() -> None:
    """One recipient a request: the walk stops at e2 (its request, at 120 s, is past
    every deadline); e0 and e1, which it found in time, keep their personal texts
    though their requests have no room for anyone else."""
    harness = Harness(limit=1, window_s=60, max_recipients=1)
    harness.run([(0.0, push_job(f"e{i}", order=i + 1, within_s=90)) for i in range(4)])
    assert sent(harness) == [
        (0.0, "personal", ["e0"]),
        (60.0, "personal", ["e1"]),
        (120.0, "shared", ["e2"]),
        (180.0, "shared", ["e3"]),
    ]


def test_beyond_the_walk_a_push_rides_a_request_of_its_text_only_if_it_is_in_time() -> None:
    """x has e0's text and no time to spare: e0's request at 0 s has room for exactly
    one more, so x rides it personal. y has e1's text but 30 s: e1's request at 60 s is
    late for it, so y goes shared."""
    harness = Harness(limit=1, window_s=60, max_recipients=2)
    e0, e1 = push_job("e0", within_s=90), push_job("e1", within_s=90)

    def rider(of: PushJob, name: str, within_s: float) -> PushJob:
        push = replace(of.push, personal_within_s=within_s)
        return replace(of, event_id=name, recipient=Recipient(user_id=f"u-{name}"), push=push)

    later = [push_job(f"e{i}", order=i, within_s=90) for i in (2, 3)]
    jobs = [e0, e1, *later, rider(e0, "x", 0.0), rider(e1, "y", 30.0)]
    harness.run([(0.0, job) for job in jobs])
    assert sent(harness) == [
        (0.0, "personal", ["e0", "x"]),
        (60.0, "personal", ["e1"]),
        (120.0, "shared", ["e2", "e3"]),
        (180.0, "shared", ["y"]),
    ]


def test_a_shared_request_at_22_00_leaves_out_the_recipients_whose_night_began() -> None:
    """One rule's shared text goes to two Moscow users and two in Kamchatka at 22:00
    there: the request carries the Moscow pushes only, the one behind a Kamchatka push
    too; the Kamchatka ones wait for 09:00."""
    harness = Harness(limit=1, window_s=60)
    start = T0 + dt.timedelta(minutes=58)  # 21:58 in Kamchatka
    harness.clock.t += 58 * 60

    def offer(name: str, order: int, zone: ZoneInfo) -> PushJob:
        return push_job(
            name,
            order=order,
            within_s=60,
            push_class=PushClass.MARKETING,
            quiet=NIGHT,
            zone=zone,
            ttl_s=86_400,
            occurred_at=start,
        )

    jobs = [
        offer("k1", 1, KAMCHATKA),
        offer("k2", 2, KAMCHATKA),
        offer("w1", 3, DEFAULT_ZONE),
        offer("k3", 4, KAMCHATKA),
        offer("w2", 5, DEFAULT_ZONE),
        offer("k4", 6, KAMCHATKA),
    ]
    harness.run([(0.0, job) for job in jobs])
    morning = dt.datetime(2026, 11, 22, 21, 0, tzinfo=dt.UTC)  # 09:00 in Kamchatka
    assert [
        (T0 + seconds(at - 1_000.0), [e.job.event_id for e in request.entries])
        for at, request, _ in harness.requests
    ] == [
        (start, ["k1"]),
        (start + seconds(60), ["k2"]),
        (start + seconds(120), ["w1", "w2"]),
        (morning, ["k3"]),
        (morning + seconds(60), ["k4"]),
    ]


def test_a_push_gone_shared_goes_personal_again_when_the_pushes_ahead_expire() -> None:
    """Three personal-only pushes ahead make "e" late (180 s for its 150 s): it goes
    shared. The third expires at 90 s; at 120 s "e" is next and in time: personal."""
    harness = Harness(limit=1, window_s=60)
    ahead = [
        push_job(f"n{i}", order=i, rule="other", in_history=False, ttl_s=90) for i in (1, 2, 3)
    ]
    harness.run([(0.0, job) for job in [*ahead, push_job("e", order=4, within_s=150)]])
    assert sent(harness) == [
        (0.0, "personal", ["n1"]),
        (60.0, "personal", ["n2"]),
        (120.0, "personal", ["e"]),
    ]
    assert harness.outcome("n3") is Outcome.EXPIRED
