"""Records read again (after a rebalance, or replayed from the dead-letter topic),
and two statuses of one order in flight."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest
from dispatch_support import advance, make_rig, make_scheduler, settle
from structlog.testing import capture_logs
from testkit import T0, make_job

from consumer.dispatch.scheduler import Request, Scheduler
from consumer.errors import OutcomeUnknown, ProviderRejected, ProviderUnavailable
from consumer.push import Outcome, PushJob

NOW = 1_000.0
PARTITION = {("orders", 0)}


def scheduler(**dispatch: float) -> Scheduler:
    return make_scheduler(retry_initial_backoff_s=1.0, retry_max_backoff_s=1.0, **dispatch)


def send_next(s: Scheduler, at: float = NOW) -> Request:
    request = s.next_request(at, T0)
    assert request is not None
    return request


def outcomes(s: Scheduler) -> list[tuple[str, Outcome]]:
    return [(f.job.event_id, f.outcome) for f in s.pop_finished()]


def test_a_record_read_again_while_its_push_is_in_flight_gets_no_second_outcome() -> None:
    s = scheduler()
    s.add(make_job("e1", offset=5), NOW, T0)
    request = send_next(s)

    s.add(make_job("e1", offset=5), NOW, T0)  # a rebalance gave the partition back
    assert outcomes(s) == []

    s.on_sent(request)
    assert outcomes(s) == [("e1", Outcome.SENT)]
    assert s.pending.size == 0


def test_the_same_event_id_in_another_record_is_a_duplicate() -> None:
    s = scheduler()
    s.add(make_job("e1", offset=5), NOW, T0)
    send_next(s)

    s.add(make_job("e1", offset=9), NOW, T0)

    assert outcomes(s) == [("e1", Outcome.SKIPPED)]


def test_a_request_of_a_given_up_partition_that_fails_is_left_to_its_new_owner() -> None:
    s = scheduler()
    s.add(make_job("e1", offset=5), NOW, T0)
    request = send_next(s)
    assert s.pending.drop(PARTITION) == 0  # in flight: its result will not be recorded

    again = s.on_failed(request, OutcomeUnknown("timeout"), NOW + 1, T0)

    assert again is None, "no retry is scheduled (nor counted) for it"
    assert outcomes(s) == []
    assert s.pending.size == 0
    assert s.next_request(NOW + 10, T0) is None, "a given-up request is not retried"
    s.add(make_job("e1", offset=5), NOW + 20, T0)  # read again later: processed afresh
    assert outcomes(s) == []
    assert s.pending.size == 1


def test_a_given_up_request_whose_record_comes_back_is_retried() -> None:
    s = scheduler()
    s.add(make_job("e1", offset=5), NOW, T0)
    request = send_next(s)
    s.pending.drop(PARTITION)
    s.add(make_job("e1", offset=5), NOW, T0)  # the partition came back to us

    s.on_failed(request, OutcomeUnknown("timeout"), NOW + 1, T0)
    retry = send_next(s, NOW + 5)
    s.on_sent(retry)

    assert outcomes(s) == [("e1", Outcome.SENT)]


def order_status(event_id: str, version: int, text: str, ttl_s: float = 3600.0) -> PushJob:
    return make_job(
        event_id, text=text, collapse_key="A-1", version=version, offset=version, ttl_s=ttl_s
    )


def test_a_newer_status_waits_while_an_older_one_of_the_order_is_in_flight() -> None:
    s = scheduler()
    s.add(order_status("v1", 1, "confirmed"), NOW, T0)
    first = send_next(s)

    s.add(order_status("v2", 2, "shipped"), NOW, T0)
    assert s.next_request(NOW + 1, T0) is None, "two statuses of one order never race"

    s.on_sent(first)
    second = send_next(s, NOW + 2)
    assert [job.event_id for e in second.envelopes for job in e.jobs] == ["v2"]
    s.on_sent(second)
    assert outcomes(s) == [("v1", Outcome.SENT), ("v2", Outcome.SENT)]


def test_held_back_statuses_are_superseded_by_a_newer_one() -> None:
    s = scheduler()
    s.add(order_status("v1", 1, "confirmed"), NOW, T0)
    first = send_next(s)
    s.add(order_status("v2", 2, "assembling"), NOW, T0)
    s.add(order_status("v3", 3, "shipped"), NOW, T0)

    again = s.on_failed(first, OutcomeUnknown("timeout"), NOW + 1, T0)
    request = send_next(s, NOW + 5)

    assert again is None, "v1 is superseded, not retried"
    assert [job.event_id for e in request.envelopes for job in e.jobs] == ["v3"]
    assert sorted(outcomes(s)) == [("v1", Outcome.SUPERSEDED), ("v2", Outcome.SUPERSEDED)]


async def test_a_held_back_status_expires_on_time_while_its_order_is_on_the_wire() -> None:
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.latency_s = 120  # the request carrying v1 hangs for two minutes
    rig.dispatcher.submit(order_status("v1", 1, "confirmed"))
    await settle()
    rig.dispatcher.submit(order_status("v2", 2, "shipped", ttl_s=30))  # held back behind v1

    await advance(rig.clock, 31)

    (record,) = rig.sink.outcomes["v2"]
    assert (record.outcome, record.reason) == (Outcome.EXPIRED, "ttl_elapsed")
    assert record.at == pytest.approx(1_030, abs=0.01)
    await advance(rig.clock, 120)
    assert rig.sink.outcome("v1") is Outcome.SENT
    assert [job.event_id for sent in rig.provider.sent for job in sent.jobs] == ["v1"]
    await rig.close()


def test_the_duplicate_memory_holds_exactly_the_last_n_event_ids() -> None:
    s = scheduler(dedupe_memory_events=3)
    for number in range(4):
        s.add(make_job(f"e{number}", text=f"t{number}", offset=number), NOW, T0)
        s.on_sent(send_next(s))
    assert outcomes(s) == [(f"e{number}", Outcome.SENT) for number in range(4)]

    s.add(make_job("e1", text="t1", offset=11), NOW, T0)  # e1, e2, e3 are remembered
    assert outcomes(s) == [("e1", Outcome.SKIPPED)]
    s.add(make_job("e0", text="t0", offset=10), NOW, T0)  # e0 was forgotten: it goes again
    assert outcomes(s) == []
    assert s.pending.size == 1


def test_a_status_without_a_version_is_ordered_by_when_it_happened() -> None:
    s = scheduler()
    versioned = make_job("v3", text="a", collapse_key="A-1", version=3, occurred_at=T0)
    later = T0 + dt.timedelta(seconds=5)
    unversioned = make_job("late", text="b", collapse_key="A-1", occurred_at=later, offset=1)

    s.add(versioned, NOW, T0)
    s.add(unversioned, NOW, T0)

    assert outcomes(s) == [("v3", Outcome.SUPERSEDED)]
    assert [job.event_id for e in send_next(s).envelopes for job in e.jobs] == ["late"]


def test_a_dead_lettered_event_replayed_after_a_fix_is_sent_not_skipped() -> None:
    s = scheduler()
    s.add(make_job("e1", offset=5), NOW, T0)
    s.on_failed(send_next(s), ProviderRejected("400: bad userIds"), NOW, T0)
    assert outcomes(s) == [("e1", Outcome.DEAD_LETTERED)]

    s.add(make_job("e1", offset=77), NOW + 60, T0)  # replayed: a new record, same event
    s.on_sent(send_next(s, NOW + 60))

    assert outcomes(s) == [("e1", Outcome.SENT)]


# --- the running dispatcher: replays and rebalances -------------------------------


def replayed(job: PushJob, offset: int) -> PushJob:
    """The same event in a new record, as `dlq replay` publishes it."""
    fresh = order_status(job.event_id, job.version or 0, job.push.message.title)
    return dataclasses.replace(fresh, origin=dataclasses.replace(fresh.origin, offset=offset))


async def test_a_replayed_order_status_goes_out_though_its_failed_request_reached_the_wire() -> (
    None
):
    """The runbook: the answer is lost, the retry is refused and dead-lettered, the
    provider is fixed, the dead letter is replayed into the same running service."""
    rig = await make_rig(limit=10, window_s=1, retry_initial_backoff_s=1, retry_max_backoff_s=1)
    rig.provider.results.extend(
        [OutcomeUnknown("HTTP 503"), ProviderRejected("HTTP 400: refused", status=400)]
    )
    rig.dispatcher.submit(order_status("v2", 2, "shipped"))
    await advance(rig.clock, 5)
    assert [r.outcome for r in rig.sink.outcomes["v2"]] == [Outcome.DEAD_LETTERED]

    rig.dispatcher.submit(replayed(order_status("v2", 2, "shipped"), offset=77))
    await settle()

    assert [r.outcome for r in rig.sink.outcomes["v2"]] == [Outcome.DEAD_LETTERED, Outcome.SENT]
    assert len(rig.provider.requests) == 3
    await rig.close()


async def test_a_push_waiting_for_its_retry_at_a_revoke_goes_out_when_read_again() -> None:
    rig = await make_rig(limit=10, window_s=1, retry_initial_backoff_s=5, retry_max_backoff_s=5)
    rig.provider.results.append(OutcomeUnknown("read timeout"))
    rig.dispatcher.submit(order_status("v1", 1, "confirmed"))
    await settle()
    assert rig.dispatcher.drop_partitions(PARTITION) == 1  # its retry was due in 5 s

    rig.dispatcher.submit(order_status("v1", 1, "confirmed"))  # the partition came back
    await settle()

    assert [r.outcome for r in rig.sink.outcomes["v1"]] == [Outcome.SENT]
    assert len(rig.provider.requests) == 2
    await rig.close()


async def test_a_request_in_flight_at_a_revoke_that_fails_leaves_the_record_to_be_sent() -> None:
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.gate = asyncio.Event()
    rig.provider.results.append(OutcomeUnknown("read timeout"))
    rig.dispatcher.submit(order_status("v1", 1, "confirmed"))
    await settle()
    assert rig.dispatcher.drop_partitions(PARTITION) == 0  # in flight: not dropped
    rig.provider.gate.set()
    await settle()
    assert rig.sink.outcomes == {}, "a revoked partition's failure is its new owner's"

    rig.dispatcher.submit(order_status("v1", 1, "confirmed"))  # read again later
    await settle()

    assert [r.outcome for r in rig.sink.outcomes["v1"]] == [Outcome.SENT]
    assert len(rig.provider.requests) == 2
    await rig.close()


async def test_a_result_of_an_earlier_assignment_is_not_recorded_nor_its_push_repeated() -> None:
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.gate = asyncio.Event()
    rig.dispatcher.submit(order_status("v1", 1, "confirmed"))
    await settle()
    rig.dispatcher.drop_partitions(PARTITION)
    rig.provider.gate.set()
    await settle()
    assert rig.sink.outcomes == {}, "sent, but its partition was given up meanwhile"

    rig.dispatcher.submit(order_status("v1", 1, "confirmed"))  # the next assignment reads it

    assert len(rig.provider.requests) == 1, "it was shown: not sent twice"
    (record,) = rig.sink.outcomes["v1"]
    assert record.outcome in (Outcome.SKIPPED, Outcome.SUPERSEDED)
    await rig.close()


async def test_on_revoke_the_partitions_requests_in_flight_end_and_are_recorded_first() -> None:
    rig = await make_rig(limit=2, window_s=60)
    rig.provider.latency_s = 2.0
    rig.dispatcher.submit(make_job("p0", text="a", partition=0))
    rig.dispatcher.submit(make_job("p1", text="b", partition=1))
    rig.dispatcher.submit(make_job("waiting", text="c", partition=0))  # the budget is spent
    await settle()

    with capture_logs() as logs:
        settling = asyncio.create_task(
            rig.dispatcher.settle_partitions({("orders", 0)}, timeout_s=10)
        )
        await advance(rig.clock, 2)

    assert settling.done()
    assert settling.result() is True
    assert rig.sink.outcome("p0") is Outcome.SENT  # before the commit that follows
    assert "waiting" not in rig.sink.outcomes, "a waiting job is left to the next owner"
    assert logged(logs, "revoked_requests_settled") == {
        "partitions": [("orders", 0)],
        "forgotten": 1,
    }
    with capture_logs() as logs:
        assert rig.dispatcher.drop_partitions({("orders", 0)}) == 0  # forgotten already
    assert logs == []
    await advance(rig.clock, 120)
    assert [e.jobs[0].event_id for _, (e,) in rig.provider.requests] == ["p0", "p1"]
    await rig.close()


async def test_on_revoke_the_wait_is_bounded_and_a_late_result_is_not_recorded() -> None:
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.latency_s = 30.0
    rig.dispatcher.submit(make_job("slow"))
    await settle()

    with capture_logs() as logs:
        settling = asyncio.create_task(rig.dispatcher.settle_partitions(PARTITION, timeout_s=5))
        await advance(rig.clock, 5)
    assert settling.done()
    assert settling.result() is False
    assert logged(logs, "revoked_requests_unsettled") == {
        "requests": 1,
        "timeout_s": 5,
        "partitions": [("orders", 0)],
        "forgotten": 0,
    }
    rig.dispatcher.drop_partitions(PARTITION)
    await advance(rig.clock, 30)

    assert rig.sink.outcomes == {}
    assert rig.dispatcher.size == 0
    await rig.close()


async def test_while_a_revoke_waits_a_failed_request_of_the_partition_is_not_retried() -> None:
    rig = await make_rig(limit=10, window_s=1, retry_initial_backoff_s=0.1)
    rig.provider.latency_s = 1.0
    rig.provider.results.append(OutcomeUnknown("HTTP 502"))
    rig.dispatcher.submit(make_job("e1"))
    await settle()

    settling = asyncio.create_task(rig.dispatcher.settle_partitions(PARTITION, timeout_s=10))
    await advance(rig.clock, 5)

    assert settling.result() is True
    assert len(rig.provider.requests) == 1
    assert rig.sink.outcomes == {}
    assert rig.dispatcher.size == 0
    await rig.close()


def logged(logs: list[dict[str, object]], event: str) -> dict[str, object]:
    """The fields of the one line logged as ``event``."""
    (line,) = [entry for entry in logs if entry["event"] == event]
    return {k: v for k, v in line.items() if k not in ("event", "log_level", "logger_name")}


async def test_dropping_waiting_jobs_is_logged_with_their_count() -> None:
    rig = await make_rig(limit=1, full=True)
    for number in range(3):
        rig.dispatcher.submit(make_job(f"e{number}", text=f"t{number}", offset=number))

    with capture_logs() as logs:
        assert rig.dispatcher.drop_partitions(PARTITION) == 3

    assert logged(logs, "pending_dropped") == {"jobs": 3, "partitions": [("orders", 0)]}
    await rig.close()


def test_a_result_of_an_earlier_assignment_is_not_recorded_after_several_rebalances() -> None:
    s = scheduler()
    s.pending.drop(PARTITION)  # the first assignment ends
    s.add(make_job("e1", offset=5), NOW, T0)  # read in the second
    request = send_next(s)
    s.pending.drop(PARTITION)  # the second ends with e1 in flight

    s.on_sent(request)

    assert outcomes(s) == [], "the third assignment's owner decides e1"


def test_partitions_closed_one_after_the_other_all_stay_closed() -> None:
    s = scheduler()
    other = ("orders", 1)
    s.add(make_job("p0", offset=1), NOW, T0)
    s.add(make_job("p1", text="other", partition=1, offset=1), NOW, T0)
    first, second = send_next(s), send_next(s)

    s.pending.close(PARTITION)
    s.pending.close({other})
    s.on_failed(first, OutcomeUnknown("timeout"), NOW + 1, T0)
    s.on_failed(second, OutcomeUnknown("timeout"), NOW + 1, T0)

    assert s.next_request(NOW + 60, T0) is None, "neither partition's push is retried"
    assert outcomes(s) == []


def test_a_waiting_job_forgotten_by_the_duplicate_memory_can_still_be_dropped() -> None:
    s = scheduler(dedupe_memory_events=1)
    s.add(make_job("e1", offset=1), NOW, T0)
    s.add(make_job("e2", text="other", offset=2), NOW, T0)  # the memory keeps e2 only

    assert s.pending.drop(PARTITION) == 2
    assert s.pending.size == 0


def test_of_two_statuses_that_happened_at_once_the_later_read_wins() -> None:
    s = scheduler()
    s.add(make_job("first", text="a", collapse_key="A-1", offset=1), NOW, T0)
    s.add(make_job("second", text="b", collapse_key="A-1", offset=2), NOW, T0)

    ((first,),) = [s.pop_finished()]
    assert (first.job.event_id, first.outcome, first.reason) == (
        "first",
        Outcome.SUPERSEDED,
        "replaced_by_newer",
    )


async def test_a_push_whose_request_outlives_its_ttl_expires_when_the_request_fails() -> None:
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.latency_s = 60  # answers exactly when the push expires
    rig.provider.results.append(OutcomeUnknown("read timeout"))
    rig.dispatcher.submit(make_job("e1", ttl_s=60))

    with capture_logs() as logs:
        await advance(rig.clock, 60)

    (record,) = rig.sink.outcomes["e1"]
    assert (record.outcome, record.reason, str(record.error)) == (
        Outcome.EXPIRED,
        "ttl_elapsed",
        "read timeout",
    )
    assert record.at == 1_060
    assert len(rig.provider.sent) == 1
    assert not [entry for entry in logs if entry["event"] == "push_retry_scheduled"]
    assert rig.metrics.value("push_retries_total", provider="fake", reason="outcome_unknown") == 0
    await rig.close()


async def test_a_request_is_retried_if_any_of_its_jobs_still_waits() -> None:
    rig = await make_rig(limit=10, window_s=1, retry_initial_backoff_s=2, retry_max_backoff_s=2)
    rig.provider.latency_s = 30
    rig.provider.results.append(ProviderUnavailable("HTTP 503"))
    rig.dispatcher.submit(make_job("long", user="a", text="sale", ttl_s=600))
    rig.dispatcher.submit(make_job("short", user="b", text="sale", ttl_s=20))  # rides along

    with capture_logs() as logs:
        await advance(rig.clock, 30)

    assert rig.sink.outcome("short") is Outcome.EXPIRED
    (retry,) = [entry for entry in logs if entry["event"] == "push_retry_scheduled"]
    assert {k: retry[k] for k in ("provider", "reason", "error", "jobs", "attempt")} == {
        "provider": "fake",
        "reason": "provider_unavailable",
        "error": "HTTP 503",
        "jobs": 2,
        "attempt": 1,
    }
    assert 1 <= retry["delay_s"] <= 2  # type: ignore[operator]
    assert rig.metrics.value("push_retries_total", provider="fake", reason="provider_unavailable")
    assert rig.metrics.value("push_requests_total", provider="fake", result="provider_unavailable")
    await advance(rig.clock, 60)
    assert rig.sink.outcome("long") is Outcome.SENT
    await rig.close()


def test_an_older_status_after_a_lost_answer_of_a_newer_one_is_not_sent() -> None:
    s = scheduler()
    s.add(order_status("v2", 2, "shipped"), NOW, T0)
    s.on_failed(send_next(s), OutcomeUnknown("read timeout"), NOW, T0)  # may have been shown

    s.add(order_status("v1", 1, "confirmed"), NOW + 1, T0)

    assert outcomes(s) == [("v1", Outcome.SUPERSEDED)]


def test_a_refused_result_of_an_earlier_assignment_leaves_the_record_to_be_read_again() -> None:
    s = scheduler()
    s.add(make_job("e1", offset=5), NOW, T0)
    request = send_next(s)
    s.pending.drop(PARTITION)
    s.on_failed(request, ProviderRejected("HTTP 400"), NOW + 1, T0)
    assert outcomes(s) == [], "not dead-lettered: the partition is someone else's now"

    s.add(make_job("e1", offset=5), NOW + 2, T0)  # its next owner (us again) reads it

    assert outcomes(s) == [], "not a duplicate of itself"
    assert s.pending.size == 1


def test_results_of_an_earlier_assignment_whose_ids_were_forgotten_are_dropped_quietly() -> None:
    s = scheduler(dedupe_memory_events=1)
    s.add(make_job("e1", offset=1), NOW, T0)
    s.add(make_job("e2", text="other", offset=2), NOW, T0)
    first, second = send_next(s), send_next(s)
    s.add(make_job("e3", text="third", offset=3), NOW, T0)  # the memory keeps e3 only
    s.pending.drop(PARTITION)

    s.on_failed(first, OutcomeUnknown("timeout"), NOW + 1, T0)
    s.on_failed(second, ProviderRejected("HTTP 400"), NOW + 1, T0)

    assert outcomes(s) == []
    assert s.pending.size == 0


def test_a_push_retried_hundreds_of_times_keeps_the_heaps_small_and_still_expires() -> None:
    s = scheduler()  # a retry a second
    s.add(make_job("e1", ttl_s=3600), NOW, T0)
    for step in range(400):  # each retry leaves stale heap items behind
        at = NOW + 2 * step
        request = send_next(s, at)
        s.on_failed(request, OutcomeUnknown("timeout"), at, T0 + dt.timedelta(seconds=2 * step))

    heaps = [s.pending._expiry, s.pending._delayed, *s.pending._ready.values()]
    heaps += s.pending._aging.values()
    assert max(len(heap) for heap in heaps) <= 2 * s.pending.size + 64 + 1, "stale items pruned"
    s.advance(NOW + 3_601, T0 + dt.timedelta(seconds=3_601))  # it waits for a retry
    assert outcomes(s) == [("e1", Outcome.EXPIRED)]


def test_an_older_status_held_back_behind_a_newer_one_on_the_wire_is_superseded_once_shown() -> (
    None
):
    """An older status read while a newer one of its order is in flight waits behind it;
    once the newer one is shown, the older one never goes out: it is superseded, with
    its reason, and the order gets no second request."""
    s = scheduler()
    s.add(order_status("v2", 2, "shipped"), NOW, T0)
    newer = send_next(s)
    s.add(order_status("v1", 1, "confirmed"), NOW + 1, T0)  # read late: a replay, a rebalance
    assert s.next_request(NOW + 1, T0) is None

    s.on_sent(newer)

    assert [(f.job.event_id, f.outcome, f.reason) for f in s.pop_finished()] == [
        ("v1", Outcome.SUPERSEDED, "older_than_sent"),
        ("v2", Outcome.SENT, "sent"),
    ]
    assert s.next_request(NOW + 2, T0) is None
    assert not s.has_ready()
    assert s.pending.next_retry_at() is None


def test_a_status_accepted_on_retry_after_a_lost_answer_is_not_sent_once_more() -> None:
    """The first answer was lost (maybe shown), the retry's came back (surely shown): the
    same status read again under another event id is not pushed a third time."""
    s = scheduler()
    s.add(order_status("v1", 1, "confirmed"), NOW, T0)
    s.on_failed(send_next(s), OutcomeUnknown("read timeout"), NOW, T0)
    s.on_sent(send_next(s, NOW + 5))
    assert outcomes(s) == [("v1", Outcome.SENT)]

    s.add(dataclasses.replace(order_status("v1", 1, "confirmed"), event_id="v1-again"), NOW + 6, T0)

    assert [(f.job.event_id, f.outcome, f.reason) for f in s.pop_finished()] == [
        ("v1-again", Outcome.SUPERSEDED, "older_than_sent")
    ]
    assert s.next_request(NOW + 7, T0) is None


def test_a_status_whose_answer_was_lost_then_expired_still_refuses_older_ones() -> None:
    """v2's answer was lost, so it may be on screen; its time-to-live then ends before a
    retry. v1, read afterwards, must not overwrite it: superseded as older than sent."""
    s = scheduler()
    s.add(order_status("v2", 2, "shipped", ttl_s=10), NOW, T0)
    later = T0 + dt.timedelta(seconds=11)
    s.on_failed(send_next(s), OutcomeUnknown("read timeout"), NOW + 11, later)

    s.add(order_status("v1", 1, "confirmed"), NOW + 12, later)

    assert [(f.job.event_id, f.outcome, f.reason) for f in s.pop_finished()] == [
        ("v2", Outcome.EXPIRED, "ttl_elapsed"),
        ("v1", Outcome.SUPERSEDED, "older_than_sent"),
    ]
    assert s.next_request(NOW + 13, later) is None


def test_a_partition_given_up_with_many_retries_waiting_leaves_the_others_on_time() -> None:
    """A hundred pushes waiting for their retries are forgotten at once: their heap items
    go stale and the heaps are rebuilt. What waits on the other partition is still
    retried when due, and still expires at the end of its time-to-live."""
    s = scheduler()
    for i in range(100):
        s.add(make_job(f"e{i}", text=f"t{i}", offset=i), NOW, T0)
    for _ in range(100):
        s.on_failed(send_next(s), OutcomeUnknown("timeout"), NOW, T0)  # each waits a second
    s.add(make_job("retried", text="r", partition=1, offset=1), NOW, T0)
    s.on_failed(send_next(s), OutcomeUnknown("timeout"), NOW, T0)
    s.add(make_job("short", text="s", partition=1, offset=2, ttl_s=10), NOW, T0)

    assert s.pending.drop(PARTITION) == 100
    heaps = [s.pending._expiry, s.pending._delayed]
    assert max(len(heap) for heap in heaps) <= 2 * s.pending.size + 64, "stale items pruned"

    later = T0 + dt.timedelta(seconds=11)
    s.advance(NOW + 11, later)
    assert outcomes(s) == [("short", Outcome.EXPIRED)]
    again = send_next(s, NOW + 11)
    assert [job.event_id for e in again.envelopes for job in e.jobs] == ["retried"]
