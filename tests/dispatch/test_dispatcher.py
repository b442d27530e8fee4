"""The async dispatcher with an in-memory provider and a fake clock (no sleeping)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dispatch_support import (
    Later,
    Rig,
    advance,
    make_rig,
    max_starts_in_window,
    refuse_first,
    settle,
)
from structlog.testing import capture_logs
from testkit import RecordingSink, make_job

from consumer.errors import (
    FatalError,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from consumer.push import Outcome, PushClass, Variant


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made = await make_rig()
    yield made
    await made.dispatcher.aclose()
    await made.runner


async def test_a_submission_goes_out_at_once_when_the_budget_is_free(rig: Rig) -> None:
    rig.dispatcher.submit(make_job("e1"))
    await settle()

    assert len(rig.provider.requests) == 1
    assert rig.sink.outcome("e1") is Outcome.SENT
    assert rig.metrics.value("push_requests_total", provider="fake", result="sent") == 1
    assert rig.metrics.value("push_budget_limit", provider="fake") == 3  # the rig's limit


async def test_a_batch_handed_over_at_once_waits_coalesces_and_dedupes_as_one_by_one() -> None:
    rig = await make_rig(limit=1, window_s=60, full=True)  # nothing goes out yet
    batch = [make_job(f"b{i}", user=f"u{i}", text="sale", offset=i) for i in range(5)]
    batch.append(make_job("b0", user="u0", text="sale", offset=5))  # the same event again

    rig.dispatcher.submit_many(batch)
    await settle()

    assert rig.dispatcher.size == 5
    assert rig.sink.outcome("b0") is Outcome.SKIPPED  # the duplicate, reported at once
    await advance(rig.clock, 61)
    (envelope,) = rig.provider.requests[0][1]
    assert len(envelope.recipients) == 5
    assert rig.sink.count(Outcome.SENT) == 5
    await rig.close()


async def test_while_the_budget_is_spent_pushes_wait_and_coalesce() -> None:
    rig = await make_rig(limit=2, window_s=60)
    for i in range(2):
        rig.dispatcher.submit(make_job(f"personal{i}", user=f"p{i}", text=f"p{i}"))
    await settle()
    for i in range(50):
        rig.dispatcher.submit(make_job(f"shared{i}", user=f"s{i}", text="sale"))
    await settle()
    assert len(rig.provider.requests) == 2
    assert rig.clock.next_wakeup == pytest.approx(rig.provider.start_times[0] + 60)

    await advance(rig.clock, 60)

    assert len(rig.provider.requests) == 3
    (envelope,) = rig.provider.requests[2][1]
    assert len(envelope.recipients) == 50
    assert rig.sink.count(Outcome.SENT) == 52
    await rig.dispatcher.aclose()
    await rig.runner


async def test_a_failed_request_is_retried_after_backoff_and_spends_budget() -> None:
    rig = await make_rig(limit=10, window_s=60, retry_initial_backoff_s=4)
    rig.provider.results.append(OutcomeUnknown("read timeout"))
    rig.dispatcher.submit(make_job("e1"))
    await settle()
    assert rig.sink.outcomes == {}

    await advance(rig.clock, 4)

    assert len(rig.provider.requests) == 2
    assert 2 <= rig.provider.start_times[1] - rig.provider.start_times[0] <= 4
    assert rig.sink.outcome("e1") is Outcome.SENT
    assert rig.metrics.value("push_budget_used", provider="fake") == 2
    assert rig.metrics.value("push_retries_total", provider="fake", reason="outcome_unknown") == 1
    await rig.dispatcher.aclose()
    await rig.runner


async def test_retry_after_holds_the_whole_budget() -> None:
    rig = await make_rig(limit=10, window_s=60)
    rig.provider.results.append(RateLimited("429", retry_after=30))
    rig.dispatcher.submit(make_job("e1"))
    await settle()
    rig.dispatcher.submit(make_job("e2", text="other"))
    await advance(rig.clock, 29.9)
    assert len(rig.provider.requests) == 1

    await advance(rig.clock, 0.2)

    assert len(rig.provider.requests) == 3
    assert rig.sink.outcome("e1") is Outcome.SENT
    assert rig.sink.outcome("e2") is Outcome.SENT
    await rig.dispatcher.aclose()
    await rig.runner


async def test_a_rejection_dead_letters_with_the_provider_message(rig: Rig) -> None:
    message = 'child "userIds" fails because ["userIds" must be an array]'
    rig.provider.results.append(ProviderRejected(message, status=400))
    rig.dispatcher.submit(make_job("e1"))
    await settle()

    (record,) = rig.sink.outcomes["e1"]
    assert record.outcome is Outcome.DEAD_LETTERED
    assert record.reason == "provider_rejected"
    assert str(record.error) == message


async def test_a_push_expires_while_the_budget_is_spent() -> None:
    rig = await make_rig(limit=1, window_s=600, full=True)
    rig.dispatcher.submit(make_job("e1", ttl_s=120))
    await settle()

    await advance(rig.clock, 121)

    (record,) = rig.sink.outcomes["e1"]
    assert record.outcome is Outcome.EXPIRED
    assert record.at == pytest.approx(rig.clock.monotonic() - 1, abs=0.01)
    assert rig.provider.requests == []
    await rig.dispatcher.aclose()
    await rig.runner


async def test_at_most_max_concurrent_requests_are_in_flight() -> None:
    rig = await make_rig(limit=10, max_concurrent_requests=4)
    rig.provider.gate = asyncio.Event()
    for i in range(6):  # the budget would let all six start
        rig.dispatcher.submit(make_job(f"e{i}", user=f"u{i}", text=f"t{i}"))
    await settle()

    assert len(rig.provider.sent) == 4
    assert rig.provider.in_flight == 4
    rig.provider.gate.set()
    await settle()
    assert len(rig.provider.sent) == 6, "the other two start as the first ones end"
    assert rig.provider.max_in_flight == 4
    assert rig.sink.count(Outcome.SENT) == 6
    await rig.close()


async def test_high_and_low_water_count_jobs_in_flight() -> None:
    rig = await make_rig(limit=10, pending_max_events=4, pending_resume_ratio=0.5)
    rig.provider.gate = asyncio.Event()
    rig.dispatcher.submit(make_job("e0", user="u0", text="t0"))
    await settle()
    assert rig.dispatcher.below_low_water()  # 1 of 4: below half
    for i in (1, 2):
        rig.dispatcher.submit(make_job(f"e{i}", user=f"u{i}", text=f"t{i}"))
    assert not rig.dispatcher.above_high_water()  # 3 of 4
    rig.dispatcher.submit(make_job("e3", user="u3", text="t3"))
    await settle()
    assert rig.provider.in_flight == 4  # default concurrency 4: all in flight
    assert rig.dispatcher.above_high_water()
    assert not rig.dispatcher.below_low_water()

    assert rig.dispatcher.below_low_water(held_elsewhere=-3)
    assert not rig.dispatcher.below_low_water(held_elsewhere=-2), "resume below half, not at it"
    assert not rig.dispatcher.above_high_water(held_elsewhere=-1)

    rig.provider.gate.set()
    await settle()

    assert rig.dispatcher.size == 0
    assert rig.dispatcher.below_low_water()
    assert not rig.dispatcher.below_low_water(held_elsewhere=2)
    assert rig.dispatcher.above_high_water(held_elsewhere=4)
    await rig.close()


async def test_drop_partitions_forgets_waiting_jobs_without_outcomes() -> None:
    rig = await make_rig(limit=1, full=True)
    for i, partition in enumerate([0, 1, 1]):
        rig.dispatcher.submit(make_job(f"e{i}", text=f"t{i}", partition=partition))

    assert rig.dispatcher.drop_partitions({("orders", 1)}) == 2
    assert rig.dispatcher.size == 1
    assert rig.sink.outcomes == {}
    await rig.dispatcher.aclose()
    await rig.runner


async def test_drain_sends_what_the_budget_allows_then_stops() -> None:
    rig = await make_rig(limit=2, window_s=10)
    for i in range(5):
        rig.dispatcher.submit(make_job(f"e{i}", user=f"u{i}", text=f"t{i}"))
    drained = asyncio.create_task(rig.dispatcher.drain(deadline_s=15))

    await advance(rig.clock, 16)

    assert drained.done()
    assert drained.result() == 1  # 2 at once, 2 at t=10, the fifth would need t=20
    assert rig.sink.count(Outcome.SENT) == 4
    assert rig.runner.done()


async def test_drain_returns_early_once_everything_has_an_outcome() -> None:
    rig = await make_rig(limit=1, window_s=60, full=True)
    rig.dispatcher.submit(make_job("e1"))
    drained = asyncio.create_task(rig.dispatcher.drain(deadline_s=600))

    await advance(rig.clock, 59)
    assert not drained.done(), "the budget frees its slot at 60 s"
    await advance(rig.clock, 1)

    assert drained.done(), "drain waited on for its deadline with nothing left"
    assert drained.result() == 0
    assert rig.sink.outcome("e1") is Outcome.SENT
    assert rig.runner.done()


async def test_drain_with_nothing_held_returns_at_once(rig: Rig) -> None:
    rig.dispatcher.submit(make_job("e1"))
    drained = asyncio.create_task(rig.dispatcher.drain(deadline_s=60))
    await settle()  # no time passes

    assert drained.done()
    assert drained.result() == 0
    assert rig.sink.outcome("e1") is Outcome.SENT


async def test_a_request_cancelled_at_shutdown_still_counts_against_the_window() -> None:
    rig = await make_rig(limit=1, window_s=60)
    rig.provider.gate = asyncio.Event()  # the request hangs
    rig.dispatcher.submit(make_job("e1"))
    await settle()
    assert rig.budget.used() == 1

    await advance(rig.clock, 5)
    await rig.close()  # cancels the request: it may have reached the provider

    assert rig.sink.outcomes == {}, "no outcome: its offset stays uncommitted"
    assert rig.budget.used() == 1
    assert rig.budget.next_start_at() == pytest.approx(rig.clock.monotonic() + 60)


async def test_a_fatal_provider_error_stops_the_loop_and_keeps_the_jobs(rig: Rig) -> None:
    rig.provider.results.append(FatalError("IMSHOP answered HTTP 401"))
    rig.dispatcher.submit(make_job("e1"))
    await settle()

    with pytest.raises(FatalError, match="401"):
        await rig.runner
    assert rig.sink.outcomes == {}
    assert rig.dispatcher.size == 1
    rig.runner = asyncio.create_task(asyncio.sleep(0))  # for the fixture's teardown


async def test_marketing_waits_behind_transactional_but_gets_its_share() -> None:
    rig = await make_rig(limit=1, window_s=10, full=True, marketing_min_share=0.25)
    for i in range(6):
        rig.dispatcher.submit(
            make_job(f"m{i}", user=f"m{i}", text=f"m{i}", push_class=PushClass.MARKETING)
        )
        rig.dispatcher.submit(make_job(f"t{i}", user=f"t{i}", text=f"t{i}"))

    await advance(rig.clock, 80)

    sent = [envelopes[0].jobs[0].push.push_class for _, envelopes in rig.provider.requests]
    assert sent[:8] == [PushClass.TRANSACTIONAL] * 3 + [PushClass.MARKETING] + [
        PushClass.TRANSACTIONAL
    ] * 3 + [PushClass.MARKETING]
    assert max_starts_in_window(rig.provider.start_times, 10) == 1
    assert rig.dispatcher.oldest_age(PushClass.MARKETING) == pytest.approx(80)
    await rig.dispatcher.aclose()
    await rig.runner


async def test_waiting_for_requests_in_flight_without_a_timeout_returns_when_they_end(
    rig: Rig,
) -> None:
    rig.provider.gate = asyncio.Event()
    rig.dispatcher.submit(make_job("e1"))
    await settle()
    waiting = asyncio.create_task(rig.dispatcher.wait_in_flight())
    await settle()
    assert not waiting.done()

    rig.provider.gate.set()
    await settle()

    assert waiting.done(), "wait_in_flight() hung after its last request ended"
    assert waiting.result() is True


async def test_drain_ends_as_soon_as_the_last_pushes_expire() -> None:
    rig = await make_rig(limit=1, window_s=600, full=True)
    rig.dispatcher.submit(make_job("e1", ttl_s=30))
    drained = asyncio.create_task(rig.dispatcher.drain(deadline_s=300))

    await advance(rig.clock, 31)

    assert rig.sink.outcome("e1") is Outcome.EXPIRED
    assert drained.done(), "drain waited for its deadline with nothing left to send"
    assert drained.result() == 0


async def test_a_provider_outage_is_waited_out_not_dead_lettered() -> None:
    rig = await make_rig(limit=10, window_s=60)  # default backoff: 2 s, doubling to 120 s
    rig.provider.results.extend([OutcomeUnknown("HTTP 503")] * 8)  # about 3 minutes down
    rig.dispatcher.submit(make_job("e1", ttl_s=3600))

    await advance(rig.clock, 600)

    assert [r.outcome for r in rig.sink.outcomes["e1"]] == [Outcome.SENT]
    assert len(rig.provider.requests) == 9
    gaps = [b - a for a, b in itertools.pairwise(rig.provider.start_times)]
    assert max(gaps) <= 120, "the backoff is capped"
    await rig.close()


async def test_a_push_failing_until_its_ttl_expires_with_the_last_error() -> None:
    rig = await make_rig(limit=10, window_s=60, retry_max_backoff_s=10)
    rig.provider.results.extend([ProviderUnavailable("Integration is unavailable")] * 100)
    rig.dispatcher.submit(make_job("e1", ttl_s=120))

    await advance(rig.clock, 200)

    (record,) = rig.sink.outcomes["e1"]
    assert (record.outcome, record.reason) == (Outcome.EXPIRED, "ttl_elapsed")
    assert str(record.error) == "Integration is unavailable"
    assert record.at == pytest.approx(1_120, abs=0.01)
    assert len(rig.provider.requests) > 10, "retried with capped backoff until the TTL"
    await rig.close()


async def test_a_provider_crash_is_dead_lettered_at_once_not_retried(rig: Rig) -> None:
    rig.provider.results.append(KeyError("a provider bug"))  # type: ignore[arg-type]
    rig.dispatcher.submit(make_job("e1"))
    await advance(rig.clock, 600)

    (record,) = rig.sink.outcomes["e1"]
    assert (record.outcome, record.reason) == (Outcome.DEAD_LETTERED, "unexpected_error")
    assert "a provider bug" in str(record.error)
    assert len(rig.provider.requests) == 1


async def test_waiting_for_requests_in_flight_gives_up_at_its_timeout(rig: Rig) -> None:
    rig.provider.gate = asyncio.Event()  # the request hangs
    rig.dispatcher.submit(make_job("e1"))
    await settle()
    waiting = asyncio.create_task(rig.dispatcher.wait_in_flight(timeout_s=5))

    await advance(rig.clock, 4.9)
    assert not waiting.done()
    await advance(rig.clock, 0.1)

    assert waiting.done()
    assert waiting.result() is False
    assert await rig.dispatcher.wait_in_flight(0) is False
    rig.provider.gate.set()
    await settle()
    assert await rig.dispatcher.wait_in_flight(0) is True


async def test_drain_after_a_fatal_answer_reports_what_is_left_without_raising() -> None:
    rig = await make_rig()
    await rig.close()  # drain() runs the loop itself
    rig.provider.results.append(FatalError("IMSHOP answered HTTP 401"))
    rig.dispatcher.submit(make_job("e1"))

    with capture_logs() as logs:
        left = await rig.dispatcher.drain(deadline_s=60)

    assert left == 1
    assert rig.clock.monotonic() == 1_000, "it stopped at the fatal answer, not the deadline"
    drained = [entry for entry in logs if entry["event"] == "dispatcher_drained"]
    assert drained == [
        {
            "event": "dispatcher_drained",
            "log_level": "info",
            "logger_name": "consumer.dispatch.dispatcher",
            "left": 1,
            "in_flight": 0,
            "confirming": 0,
        }
    ]


def lines_of(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    drop = ("event", "log_level", "logger_name", "exc_info")
    return [{k: v for k, v in e.items() if k not in drop} for e in logs if e["event"] == event]


async def test_each_request_is_one_log_line_describing_it() -> None:
    rig = await make_rig(limit=10, max_messages=2)
    rig.provider.results.extend([None, FatalError("IMSHOP answered HTTP 401")])
    for number, (user, text) in enumerate([("a", "x"), ("b", "x"), ("c", "y")]):
        push_class = PushClass.MARKETING if text == "y" else PushClass.TRANSACTIONAL
        rig.dispatcher.submit(make_job(f"e{number}", user=user, text=text, push_class=push_class))

    with capture_logs() as logs:
        await settle()
        rig.dispatcher.submit(make_job("e9", user="d", text="z"))
        await settle()

    assert lines_of(logs, "push_sent") == [
        {
            "provider": "fake",
            "rules": ["rule-x", "rule-y"],
            "push_class": "transactional",
            "messages": 2,
            "recipients": 3,
            "jobs": 3,
            "attempt": 1,
            "variants": ["personal"],
        }
    ]
    (fatal,) = lines_of(logs, "push_provider_fatal")
    assert fatal == {
        "provider": "fake",
        "error": "IMSHOP answered HTTP 401",
        "rules": ["rule-z"],
        "push_class": "transactional",
        "messages": 1,
        "recipients": 1,
        "jobs": 1,
        "attempt": 1,
        "variants": ["personal"],
    }
    assert rig.metrics.value("push_requests_total", provider="fake", result="fatal") == 1
    assert rig.metrics.value("push_requests_total", provider="fake", result="sent") == 1
    with pytest.raises(FatalError):
        await rig.runner
    rig.runner = asyncio.create_task(asyncio.sleep(0))


async def test_a_provider_crash_and_a_sink_failure_are_logged_with_what_they_hit() -> None:
    class FailingSink(RecordingSink):
        def record(self, origin: Any, outcome: Outcome, **fields: Any) -> None:
            raise RuntimeError("the sink's bug")

    rig = await make_rig(sink=FailingSink())
    rig.provider.results.append(KeyError("a provider bug"))

    with capture_logs() as logs:
        rig.dispatcher.submit(make_job("e1"))
        await settle()

    assert lines_of(logs, "push_send_crashed") == [{"provider": "fake"}]
    assert lines_of(logs, "outcome_sink_failed") == [{"event_id": "e1"}]
    await rig.close()


async def test_wait_in_flight_waits_for_requests_on_the_wire_and_verdicts_awaited() -> None:
    """The drain's wait: one request accepted and awaiting its verdict, one still
    on the wire; it ends when both have ended, and not before."""
    rig = await make_rig(limit=10)
    rig.provider.results.append(Later(after_s=5.0))
    rig.dispatcher.submit(make_job("e1", user="u1", text="A"))
    await settle()
    rig.provider.gate = asyncio.Event()
    rig.dispatcher.submit(make_job("e2", user="u2", text="B"))
    await settle()

    waiting = asyncio.create_task(rig.dispatcher.wait_in_flight(30.0))
    await advance(rig.clock, 2.0)
    assert not waiting.done(), "both are under way"
    rig.provider.gate.set()
    await advance(rig.clock, 1.0)
    assert not waiting.done(), "the verdict is still awaited"
    await advance(rig.clock, 2.0)

    assert waiting.done()
    assert waiting.result() is True
    assert rig.clock.monotonic() == 1_005.0
    await rig.close()


async def test_the_oldest_pending_age_is_kept_per_class_and_zero_without_any() -> None:
    rig = await make_rig(limit=1, full=True)  # the budget is spent: pushes wait
    rig.dispatcher.submit(make_job("e1", user="u1", push_class=PushClass.TRANSACTIONAL))
    await advance(rig.clock, 5.0)

    rig.dispatcher.submit(make_job("e2", user="u2", push_class=PushClass.TRANSACTIONAL))
    await settle()  # the loop's turn updates the gauges

    def age(push_class: PushClass) -> float:
        name = "push_pending_oldest_age_seconds"
        return rig.metrics.value(name, push_class=push_class.value)

    assert (age(PushClass.TRANSACTIONAL), age(PushClass.MARKETING)) == (5.0, 0.0)
    await advance(rig.clock, 120.0)  # the budget frees twice: both go out
    assert rig.sink.count(Outcome.SENT) == 2
    assert age(PushClass.TRANSACTIONAL) == 0.0
    await rig.close()


async def test_a_request_still_in_flight_when_the_loop_stops_reports_its_outcome() -> None:
    """``stop()`` ends the loop, not the requests under way: one answered after it still
    records its outcome (its offset may then be committed), with no loop to do it."""
    rig = await make_rig()
    rig.provider.latency_s = 5.0
    rig.dispatcher.submit(make_job("e1"))
    await settle()
    rig.dispatcher.stop()
    await rig.runner

    await advance(rig.clock, 5.0)

    assert rig.sink.outcome("e1") is Outcome.SENT
    assert await rig.dispatcher.wait_in_flight(0.0)
    await rig.dispatcher.aclose()


async def test_a_later_verdict_is_one_log_line_saying_how_the_request_ended() -> None:
    rig = await make_rig(limit=10)
    rig.provider.results.extend([Later(), Later(unconfirmed=True), Later(crash=True)])
    with capture_logs() as logs:
        for text in ("a", "b", "c"):
            rig.dispatcher.submit(make_job(f"e-{text}", user=text, text=text))
        await advance(rig.clock, 2.0)

    def described(text: str) -> dict[str, Any]:
        return {
            "provider": "fake",
            "rules": [f"rule-{text}"],
            "push_class": "transactional",
            "messages": 1,
            "recipients": 1,
            "jobs": 1,
            "attempt": 1,
            "variants": ["personal"],
        }

    assert lines_of(logs, "push_accepted") == [described(t) for t in "abc"]
    assert lines_of(logs, "push_confirmed") == [described("a")]
    assert lines_of(logs, "push_confirmation_crashed") == [{"provider": "fake"}]
    not_confirmed = [e for e in logs if e["event"] == "push_not_confirmed"]
    assert [e["log_level"] for e in not_confirmed] == ["warning", "warning"]
    assert lines_of(logs, "push_not_confirmed") == [
        {**described(t), "refused": 0, "unconfirmed": 1} for t in "bc"
    ]
    await rig.close()


async def test_each_outcome_reaches_the_sink_with_its_event_type_and_a_sent_one_its_text() -> None:
    """The sink records what happened to which event (its type included); which text went
    out (personal or shared) is told only for a push that was sent."""
    rig = await make_rig()
    rig.provider.results.extend([None, refuse_first])
    rig.dispatcher.submit(make_job("sent", text="a"))
    await settle()
    rig.dispatcher.submit(make_job("refused", text="b", event_type="bonus.accrued"))
    await settle()

    (sent,) = rig.sink.outcomes["sent"]
    (refused,) = rig.sink.outcomes["refused"]
    assert (sent.outcome, sent.event_type, sent.variant) == (
        Outcome.SENT,
        "order.status_changed",
        Variant.PERSONAL,
    )
    assert (refused.outcome, refused.event_type, refused.variant) == (
        Outcome.DEAD_LETTERED,
        "bonus.accrued",
        None,
    )
    await rig.close()


async def test_a_crash_while_settling_a_request_is_logged_with_what_it_carried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug in settling leaves the jobs without an outcome, so their offsets stay
    uncommitted: the log must say so, not asyncio's garbage collector, or nothing."""
    rig = await make_rig()

    def broken(request: object) -> None:
        raise RuntimeError("the scheduler lost track")

    monkeypatch.setattr(rig.dispatcher._scheduler, "on_sent", broken)
    with capture_logs() as logs:
        rig.dispatcher.submit(make_job("e1"))
        await settle()

    (crash,) = [entry for entry in logs if entry["event"] == "push_settle_crashed"]
    assert crash["log_level"] == "error"
    assert isinstance(crash["exc_info"], RuntimeError)
    assert (crash["provider"], crash["rules"], crash["jobs"]) == ("fake", ["rule-T"], 1)
    assert rig.sink.outcomes == {}, "no outcome: the offset stays uncommitted"
    await rig.close()
