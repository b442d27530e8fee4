"""Reach under the budget, against the real async ``Dispatcher`` (hypothesis, fake clock).

Schedules of order statuses arrive in bursts and trickles; every request the
dispatcher starts is observed at the moment it is built: what waited, and which
text each push got. An oracle (``reach_support``) replays the scheduler's
serving order by brute force and says, for each push, whether its personal text
would have gone out within its ``personal_within``. Then:

- the budget holds;
- a push goes out shared exactly when the oracle says its personal text would
  have been late, and only if its history item is written;
- with a budget that keeps up, everything goes personal;
- a newer status replaces an older one whatever text either has, no customer
  sees an older status after a newer one, and nothing goes out past its ttl;
- marketing pushes keep their recipients' quiet hours (zones from Kamchatka to
  Los Angeles, the days clocks change), and the held ones go out after.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from dataclasses import dataclass, field
from unittest import mock
from zoneinfo import ZoneInfo

from dispatch_support import FakeProvider, advance, max_starts_in_window, settle
from hypothesis import example, given, settings
from hypothesis import strategies as st
from reach_support import Waiting, Window, in_line, oracle_variants, push_job
from testkit import RecordingSink, examples

from consumer.clock import FakeClock
from consumer.dispatch import reach
from consumer.dispatch.budget import Budget
from consumer.dispatch.dispatcher import Dispatcher
from consumer.dispatch.scheduler import Request, Scheduler
from consumer.metrics import Metrics
from consumer.push import Outcome, PushClass, PushJob, Variant
from consumer.quiet import QuietHours
from consumer.settings import DispatchSettings

START = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)


@dataclass
class Decision:
    """One request as it was built: what was in line, and the texts chosen."""

    at: float
    waiting: list[Waiting]
    window: Window
    request: Request
    chosen: dict[int, Variant]  # seq -> text, for everything in line
    history: dict[int, bool]  # seq -> its item is written


@dataclass
class Run:
    clock: FakeClock
    provider: FakeProvider
    sink: RecordingSink
    dispatcher: Dispatcher
    limit: int
    window_s: float
    decisions: list[Decision] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    jobs: dict[str, PushJob] = field(default_factory=dict)

    def observe(self, scheduler: Scheduler) -> None:
        """Watch each request being built (the dispatcher's own call, unchanged)."""
        build = scheduler.next_request

        def next_request(now_mono: float, now_wall: dt.datetime) -> Request | None:
            scheduler.advance(now_mono, now_wall)
            waiting = [e for c in PushClass for e in scheduler.pending.waiting_in_order(c)]
            line = in_line(waiting, now_mono)
            window = Window(self.limit, self.window_s, list(self.starts), now_mono)
            request = build(now_mono, now_wall)
            if request is not None:
                self.starts.append(now_mono)
                self.decisions.append(
                    Decision(
                        now_mono,
                        [Waiting.of(e, now_mono, now_wall) for e in line],
                        window,
                        request,
                        {e.seq: e.job.variant for e in line},
                        {e.seq: e.job.in_history for e in line},
                    )
                )
            return request

        scheduler.next_request = next_request  # type: ignore[method-assign]


async def start_run(
    *, limit: int, window_s: float, start: dt.datetime = START, room: int = 1000
) -> Run:
    clock = FakeClock(start)
    provider = FakeProvider(clock, max_recipients=room)
    sink = RecordingSink(clock)
    budget = Budget(limit=limit, window_s=window_s, clock=clock, assume_window_used=False)
    dispatcher = Dispatcher(
        provider, DispatchSettings(), budget, sink, clock, Metrics(), rng=random.Random(3)
    )
    run = Run(clock, provider, sink, dispatcher, limit, window_s)
    run.observe(dispatcher._scheduler)
    return run


async def play(
    run: Run, events: list[tuple[float, PushJob]], step_s: float = 60.0, age_s: float = 0.0
) -> None:
    """Submit each job after its pause (those without one together, as one fetched
    batch is handed on), then let everything end (bounded: 200 steps). Each happened
    ``age_s`` before it comes (a backlog after a pause, a replay)."""
    runner = asyncio.create_task(run.dispatcher.run())
    await settle()
    for pause, job in events:
        if pause:  # a pause ends a batch: jobs without one come in the same fetch
            await settle()
            await advance(run.clock, pause)
        job.occurred_at = run.clock.now() - dt.timedelta(seconds=age_s)
        run.jobs[job.event_id] = job
        run.dispatcher.submit(job)
    await settle()
    for _ in range(200):
        if run.dispatcher.size == 0:
            break
        await advance(run.clock, step_s)
    await run.dispatcher.aclose()
    await runner


def delivered(run: Run) -> list[tuple[float, PushJob, Variant]]:
    return [
        (at, job, job.variant)
        for at, request in run.provider.requests
        for envelope in request
        for job in envelope.jobs
    ]


# ---- order statuses: bursts and trickles, one class

status = st.tuples(
    st.sampled_from([0.0, 0.0, 0.0, 1.0, 5.0, 20.0, 90.0]),  # pause before it
    st.integers(0, 11),  # the order
    st.sampled_from(["confirmed", "courier", "courier"]),  # its rule
    st.booleans(),  # history written (else it may not go shared)
)


def order_events(
    drawn: list[tuple[float, int, str, bool]], within_s: dict[str, float], ttl_s: float
) -> list[tuple[float, PushJob]]:
    versions: dict[int, int] = {}
    events = []
    for number, (pause, order, rule, written) in enumerate(drawn):
        versions[order] = versions.get(order, 0) + 1
        job = push_job(
            f"o{order}v{versions[order]}",
            order=order,
            version=versions[order],
            rule=rule,
            user=f"c{order}",
            within_s=within_s[rule],
            ttl_s=ttl_s,
            in_history=written,
            offset=number,
        )
        events.append((pause, job))
    return events


# A burst whose late pushes fill two shared requests, then pushes of a rule with
# more time: they must count both requests ahead of them.
TWO_FULL_SHARED = [(0.0, n, "confirmed", True) for n in range(5)] + [
    (0.0, n, "courier", True) for n in range(5, 10)
]


@settings(max_examples=examples(200), deadline=None)
@example(
    drawn=TWO_FULL_SHARED,
    limit=1,
    window_s=10.0,
    within_s={"confirmed": 5.0, "courier": 30.0},
    ttl_s=3600.0,
    room=2,
    age_s=0.0,
)
@given(
    drawn=st.lists(status, min_size=1, max_size=40),
    limit=st.integers(1, 3),
    window_s=st.sampled_from([10.0, 60.0]),
    within_s=st.fixed_dictionaries(
        {rule: st.sampled_from([5.0, 30.0, 60.0, 120.0]) for rule in ("confirmed", "courier")}
    ),
    ttl_s=st.sampled_from([180.0, 3600.0]),
    room=st.sampled_from([2, 1000]),
    age_s=st.sampled_from([0.0, 0.0, 45.0]),
)
def test_a_push_goes_shared_exactly_when_its_personal_text_would_be_late(
    drawn: list[tuple[float, int, str, bool]],
    limit: int,
    window_s: float,
    within_s: dict[str, float],
    ttl_s: float,
    room: int,
    age_s: float,
) -> None:
    async def scenario() -> Run:
        run = await start_run(limit=limit, window_s=window_s, room=room)
        await play(run, order_events(drawn, within_s, ttl_s), age_s=age_s)
        return run

    run = asyncio.run(scenario())
    assert max_starts_in_window(run.starts, window_s) <= limit
    for decision in run.decisions:
        oracle = oracle_variants(
            decision.waiting, decision.window, share=0.2, credit=0.0, room=room
        )
        for entry in decision.request.entries:
            assert entry.job.variant is oracle[entry.seq], (
                f"at {decision.at - 1000:g} s: {entry.job.event_id} went {entry.job.variant}, "
                f"the oracle says {oracle[entry.seq]}"
            )
        for seq, chosen in decision.chosen.items():  # and everything else in line
            assert chosen is oracle[seq], f"at {decision.at - 1000:g} s: seq {seq} {chosen}"
            if chosen is Variant.SHARED:
                assert decision.history[seq], f"seq {seq} shared without its history item"
    supersession_and_ttl_hold(run)


@settings(max_examples=examples(100), deadline=None)
@given(
    drawn=st.lists(status, min_size=1, max_size=40),
    within_s=st.fixed_dictionaries(
        {rule: st.sampled_from([5.0, 30.0, 60.0, 120.0]) for rule in ("confirmed", "courier")}
    ),
    walk=st.integers(1, 4),
)
def test_beyond_a_short_walk_a_push_still_goes_shared_only_when_late(
    drawn: list[tuple[float, int, str, bool]], within_s: dict[str, float], walk: int
) -> None:
    # The walk is bounded (WALK_LIMIT); past it, a push is handed to its shared text
    # only when even the earliest request it could get is late.
    async def scenario() -> Run:
        run = await start_run(limit=1, window_s=10.0)
        await play(run, order_events(drawn, within_s, 3600.0))
        return run

    with mock.patch.object(reach, "WALK_LIMIT", walk):
        run = asyncio.run(scenario())
    for decision in run.decisions:
        oracle = oracle_variants(
            decision.waiting, decision.window, share=0.2, credit=0.0, room=1000
        )
        for seq, chosen in decision.chosen.items():
            if chosen is Variant.SHARED:
                assert oracle[seq] is Variant.SHARED, f"seq {seq} shared though in time"
    supersession_and_ttl_hold(run)


def supersession_and_ttl_hold(run: Run) -> None:
    shown: dict[str | None, list[int]] = {}
    for at, job, _ in delivered(run):
        shown.setdefault(job.push.collapse_key, []).append(job.version or 0)
        sent_wall = run.clock.now() - dt.timedelta(seconds=run.clock.monotonic() - at)
        assert sent_wall <= job.expires_at, f"{job.event_id} went out past its ttl"
        if not job.in_history:
            assert job.variant is Variant.PERSONAL
    for key, versions in shown.items():
        assert versions == sorted(versions), f"{key}: an older status after a newer one"
    newest: dict[str | None, PushJob] = {}
    for job in run.jobs.values():
        key = job.push.collapse_key
        if key not in newest or (job.version or 0) > (newest[key].version or 0):
            newest[key] = job
    for key, job in newest.items():
        (done,) = run.sink.outcomes[job.event_id]
        outcome = done.outcome
        assert outcome in (Outcome.SENT, Outcome.EXPIRED), f"{key}: newest ended {outcome}"
        if outcome is Outcome.EXPIRED:
            assert done.wall is not None
            assert done.wall >= job.expires_at
        else:
            assert done.variant is job.variant
    for event_id, records in run.sink.outcomes.items():
        assert len(records) == 1, f"{event_id}: {records}"


@settings(max_examples=examples(50), deadline=None)
@given(
    drawn=st.lists(status, min_size=1, max_size=20),
    within_s=st.sampled_from([5.0, 60.0]),
    age_s=st.sampled_from([0.0, 600.0]),  # events from ten minutes ago: a backlog
)
def test_with_a_budget_that_keeps_up_every_push_goes_personal(
    drawn: list[tuple[float, int, str, bool]], within_s: float, age_s: float
) -> None:
    async def scenario() -> Run:
        run = await start_run(limit=len(drawn), window_s=60.0)
        rules = {"confirmed": within_s, "courier": within_s}
        await play(run, order_events(drawn, rules, 3600.0), age_s=age_s)
        return run

    run = asyncio.run(scenario())
    assert delivered(run)
    assert {variant for _, _, variant in delivered(run)} == {Variant.PERSONAL}


@settings(max_examples=100, deadline=None)
@given(
    drawn=st.lists(status, min_size=1, max_size=40),
    limit=st.sampled_from([40, 1000]),
    within_s=st.fixed_dictionaries(
        {rule: st.sampled_from([5.0, 30.0, 120.0]) for rule in ("confirmed", "courier")}
    ),
    age_s=st.sampled_from([0.0, 0.0, 45.0]),
)
def test_with_room_for_every_request_the_texts_are_the_oracle_s_without_a_walk(
    drawn: list[tuple[float, int, str, bool]],
    limit: int,
    within_s: dict[str, float],
    age_s: float,
) -> None:
    # A budget with a slot free now for every request the walk could count skips the
    # walk while no push is shared or late; the texts must still be the oracle's.
    async def scenario() -> Run:
        run = await start_run(limit=limit, window_s=60.0)
        await play(run, order_events(drawn, within_s, 3600.0), age_s=age_s)
        return run

    run = asyncio.run(scenario())
    for decision in run.decisions:
        oracle = oracle_variants(
            decision.waiting, decision.window, share=0.2, credit=0.0, room=1000
        )
        for seq, chosen in decision.chosen.items():
            assert chosen is oracle[seq], f"at {decision.at - 1000:g} s: seq {seq} {chosen}"
    supersession_and_ttl_hold(run)


def test_a_budget_far_above_the_traffic_costs_no_walk() -> None:
    drawn = [(0.0, n % 7, "courier", True) for n in range(30)]
    walks = 0
    walk = reach.ReachPlanner._walk

    def counted(self: reach.ReachPlanner, *args: object) -> reach._Walk:
        nonlocal walks
        walks += 1
        return walk(self, *args)  # type: ignore[arg-type]

    async def scenario() -> Run:
        run = await start_run(limit=1_000_000, window_s=1.0)
        await play(run, order_events(drawn, {"confirmed": 90.0, "courier": 90.0}, 3600.0))
        return run

    with mock.patch.object(reach.ReachPlanner, "_walk", counted):
        run = asyncio.run(scenario())
    assert run.decisions
    assert walks == 0
    assert {variant for _, _, variant in delivered(run)} == {Variant.PERSONAL}


# ---- quiet hours, in zones far apart and on the days clocks change

ZONES = {
    "Europe/Moscow": ZoneInfo("Europe/Moscow"),
    "Asia/Kamchatka": ZoneInfo("Asia/Kamchatka"),
    "America/Los_Angeles": ZoneInfo("America/Los_Angeles"),
    "Europe/Berlin": ZoneInfo("Europe/Berlin"),
}
STARTS = [
    dt.datetime(2026, 3, 8, 9, 30, tzinfo=dt.UTC),  # 01:30 PST: Los Angeles springs forward
    dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC),  # 02:30 CEST: Berlin falls back
    dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC),  # 01:00 PDT: Los Angeles falls back
    dt.datetime(2026, 11, 25, 18, 50, tzinfo=dt.UTC),  # 21:50 Moscow, 06:50 Kamchatka
]
WINDOWS = [
    QuietHours(dt.time(22), dt.time(9)),
    QuietHours(dt.time(1), dt.time(2, 30)),  # ends inside Los Angeles' spring gap
    QuietHours(dt.time(0, 30), dt.time(1, 30)),  # ends in the autumn's repeated hour
]

offer = st.tuples(
    st.sampled_from([0.0, 60.0, 600.0, 3600.0]),  # pause before it
    st.sampled_from(sorted(ZONES)),
    st.sampled_from(range(len(WINDOWS))),
    st.booleans(),  # marketing (else order news, which ignores quiet hours)
)


def quiet(hours: QuietHours, at: dt.datetime, zone: ZoneInfo) -> bool:
    """Whether ``at`` is inside the window, read off the local clock (no library math)."""
    clock = at.astimezone(zone).time().replace(tzinfo=None)
    if hours.start < hours.end:
        return hours.start <= clock < hours.end
    return clock >= hours.start or clock < hours.end


@settings(max_examples=examples(120), deadline=None)
@given(
    drawn=st.lists(offer, min_size=1, max_size=15),
    start=st.sampled_from(STARTS),
    limit=st.integers(1, 3),
)
def test_marketing_pushes_keep_each_recipient_s_quiet_hours(
    drawn: list[tuple[float, str, int, bool]], start: dt.datetime, limit: int
) -> None:
    events = []
    for number, (pause, zone, window, marketing) in enumerate(drawn):
        job = push_job(
            f"p{number}",
            order=number,
            push_class=PushClass.MARKETING if marketing else PushClass.TRANSACTIONAL,
            quiet=WINDOWS[window],  # order news carries them too, and ignores them
            zone=ZONES[zone],
            ttl_s=86_400 if number % 3 else 4 * 3600,
            within_s=3600,
            offset=number,
        )
        events.append((pause, job))

    async def scenario() -> Run:
        run = await start_run(limit=limit, window_s=60.0, start=start)
        await play(run, events, step_s=1800.0)  # quiet hours last up to 11 hours
        return run

    run = asyncio.run(scenario())
    assert max_starts_in_window(run.starts, 60.0) <= limit
    sent_at = {}
    for at, job, _ in delivered(run):
        wall = run.clock.now() - dt.timedelta(seconds=run.clock.monotonic() - at)
        sent_at[job.event_id] = wall
        hours = job.push.quiet_hours
        if job.push.push_class is PushClass.MARKETING and hours is not None:
            local = wall.astimezone(job.zone)
            assert not quiet(hours, wall, job.zone), (
                f"{job.event_id} went out at {local:%Y-%m-%d %H:%M} {job.zone}, in {hours.text}"
            )
    for event_id, job in run.jobs.items():
        (done,) = run.sink.outcomes[event_id]
        outcome = done.outcome
        if outcome is Outcome.EXPIRED:
            assert done.wall is not None
            assert done.wall >= job.expires_at
        else:
            assert outcome is Outcome.SENT, f"{event_id}: {outcome}"
        if job.push.push_class is PushClass.TRANSACTIONAL:
            assert outcome is Outcome.SENT
    assert run.dispatcher.size == 0
