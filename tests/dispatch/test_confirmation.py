"""A provider that confirms later (AppMetrica's seam), against the real dispatcher on a fake clock.

``send`` returns at acceptance with a confirmation; the request's place and
budget slot end there, the jobs' outcomes wait for the verdict.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from dispatch_support import Later, Rig, advance, make_rig, settle
from testkit import T0, make_job

from consumer.errors import ProviderRejected
from consumer.push import Outcome, PushJob

FAILED = ProviderRejected(
    "AppMetrica failed transfer 7 of orders.yaml:order_ready: "
    "Invalid push credentials for platform android"
)
PARTITION = ("orders", 0)


def status(event_id: str, version: int, *, offset: int = 0, ttl_s: float = 3600.0) -> PushJob:
    """Order 1's status ``version`` (each status its own text, as personal pushes are)."""
    return make_job(
        event_id,
        text=f"order 1: status {version}",
        collapse_key="order-1",
        version=version,
        occurred_at=T0 + dt.timedelta(seconds=version),
        ttl_s=ttl_s,
        offset=offset,
    )


async def close(rig: Rig) -> None:
    await rig.dispatcher.aclose()
    await rig.runner


def reasons(rig: Rig, event_id: str) -> list[tuple[Outcome, str | None]]:
    return [(r.outcome, r.reason) for r in rig.sink.outcomes.get(event_id, [])]


async def test_the_request_ends_at_acceptance_and_its_jobs_wait_held_for_the_verdict() -> None:
    rig = await make_rig(limit=1, window_s=1, max_concurrent_requests=1, pending_max_events=2)
    rig.provider.results.extend([Later(after_s=5.0), Later(after_s=5.0)])
    rig.dispatcher.submit(make_job("e1", user="u1", text="A"))
    rig.dispatcher.submit(make_job("e2", user="u2", text="B"))
    await settle()

    # The second request waits for the budget (a window after the first *answer*),
    # not for the first verdict, and not for a place among the requests in flight.
    await advance(rig.clock, 1.0)
    first, second = rig.provider.start_times
    assert second - first == 1.0
    assert rig.sink.outcomes == {}
    assert rig.dispatcher.size == 2  # held: counted in the pending bound
    assert rig.dispatcher.above_high_water()
    assert not await rig.dispatcher.wait_in_flight(0.0)

    await advance(rig.clock, 4.0)
    assert reasons(rig, "e1") == [(Outcome.SENT, "sent")]
    assert reasons(rig, "e2") == []
    await advance(rig.clock, 1.0)
    assert reasons(rig, "e2") == [(Outcome.SENT, "sent")]
    assert rig.dispatcher.size == 0
    assert await rig.dispatcher.wait_in_flight(0.0)
    await close(rig)


async def test_a_failure_after_acceptance_dead_letters_with_the_reason_and_a_replay_goes_out() -> (
    None
):
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.results.append(Later(after_s=2.0, refused=FAILED))
    rig.dispatcher.submit(status("o1v1", 1))
    await advance(rig.clock, 2.0)

    [dead] = rig.sink.outcomes["o1v1"]
    assert (dead.outcome, dead.reason) == (Outcome.DEAD_LETTERED, "provider_rejected")
    assert "Invalid push credentials for platform android" in str(dead.error)
    assert rig.provider.delivered == []

    rig.dispatcher.submit(status("o1v1", 1, offset=9))  # `dlq replay`: the same event, anew
    await advance(rig.clock, 1.0)  # the provider answers at once now (fixed)

    assert reasons(rig, "o1v1")[1] == (Outcome.SENT, "sent")  # never shown: not superseded
    assert len(rig.provider.delivered) == 1
    await close(rig)


async def test_a_newer_status_waits_behind_its_orders_unconfirmed_one_until_the_verdict() -> None:
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.results.append(Later(after_s=5.0))
    rig.dispatcher.submit(status("o1v1", 1))
    await settle()
    rig.dispatcher.submit(status("o1v2", 2, offset=1))
    await advance(rig.clock, 4.0)
    assert len(rig.provider.requests) == 1  # the in-flight claim lasts until the verdict

    await advance(rig.clock, 1.0)
    assert reasons(rig, "o1v1") == [(Outcome.SENT, "sent")]
    assert reasons(rig, "o1v2") == [(Outcome.SENT, "sent")]
    shown = [job.event_id for job in rig.provider.delivered]
    assert shown == ["o1v1", "o1v2"]
    await close(rig)


async def test_an_unconfirmed_push_is_sent_as_such_and_only_maybe_shown() -> None:
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.results.append(Later(after_s=2.0, unconfirmed=True))
    rig.dispatcher.submit(status("o1v2", 2))
    await advance(rig.clock, 2.0)
    assert reasons(rig, "o1v2") == [(Outcome.SENT, "unconfirmed")]

    rig.dispatcher.submit(status("o1v1", 1, offset=1))  # older: refused
    rig.dispatcher.submit(status("o1v2-again", 2, offset=2))  # the same status: may go
    await advance(rig.clock, 1.0)

    assert reasons(rig, "o1v1") == [(Outcome.SUPERSEDED, "older_than_sent")]
    assert reasons(rig, "o1v2-again") == [(Outcome.SENT, "sent")]
    await close(rig)


async def test_a_crashing_confirmation_leaves_its_pushes_sent_as_unconfirmed() -> None:
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.results.append(Later(after_s=1.0, crash=True))
    rig.dispatcher.submit(make_job("e1"))
    await advance(rig.clock, 1.0)

    assert reasons(rig, "e1") == [(Outcome.SENT, "unconfirmed")]  # accepted, so maybe shown
    await close(rig)


async def test_a_revoke_waits_for_the_verdict_within_its_settle_time() -> None:
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.results.append(Later(after_s=3.0))
    rig.dispatcher.submit(make_job("e1"))
    await settle()

    settling = asyncio.create_task(rig.dispatcher.settle_partitions({PARTITION}, 10.0))
    await advance(rig.clock, 3.0)

    assert settling.done()
    assert settling.result() is True
    assert reasons(rig, "e1") == [(Outcome.SENT, "sent")]  # recorded before the commit
    await close(rig)


async def test_a_verdict_after_the_partition_was_given_up_records_nothing() -> None:
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.results.extend([Later(after_s=30.0), Later(after_s=30.0, refused=FAILED)])
    rig.dispatcher.submit(status("o1v1", 1))
    rig.dispatcher.submit(make_job("e2", user="u2", text="B", offset=1))
    await settle()

    settling = asyncio.create_task(rig.dispatcher.settle_partitions({PARTITION}, 5.0))
    await advance(rig.clock, 5.0)
    assert settling.result() is False  # given up: the next owner reads the records again
    rig.dispatcher.drop_partitions({PARTITION})
    await advance(rig.clock, 25.0)  # both verdicts come

    assert rig.sink.outcomes == {}
    assert rig.dispatcher.size == 0
    # Back with this process: the accepted push is not sent again, the refused one is.
    rig.dispatcher.submit(status("o1v1", 1))
    rig.dispatcher.submit(make_job("e2", user="u2", text="B", offset=1))
    await advance(rig.clock, 1.0)
    assert reasons(rig, "o1v1") == [(Outcome.SKIPPED, "duplicate")]
    assert reasons(rig, "e2") == [(Outcome.SENT, "sent")]
    assert [
        job.event_id for _, request in rig.provider.requests for e in request for job in e.jobs
    ] == ["o1v1", "e2", "e2"]
    await close(rig)


async def test_a_record_read_again_while_its_verdict_is_pending_takes_the_verdict() -> None:
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.results.append(Later(after_s=10.0, refused=FAILED))
    rig.dispatcher.submit(make_job("e1"))
    await settle()
    await rig.dispatcher.settle_partitions({PARTITION}, 0.0)
    rig.dispatcher.drop_partitions({PARTITION})

    rig.dispatcher.submit(make_job("e1"))  # reassigned to this process: the same record
    await advance(rig.clock, 10.0)

    assert reasons(rig, "e1") == [(Outcome.DEAD_LETTERED, "provider_rejected")]
    assert len(rig.provider.requests) == 1  # not sent twice
    await close(rig)


async def test_drain_waits_for_verdicts_until_its_deadline_and_leaves_the_rest_uncommitted() -> (
    None
):
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.results.extend([Later(after_s=2.0), Later(after_s=None)])
    rig.dispatcher.submit(make_job("e1", user="u1", text="A"))
    rig.dispatcher.submit(make_job("e2", user="u2", text="B"))
    await settle()

    draining = asyncio.create_task(rig.dispatcher.drain(10.0))
    await advance(rig.clock, 10.0)

    assert draining.result() == 1  # e2's verdict never came
    assert reasons(rig, "e1") == [(Outcome.SENT, "sent")]
    await rig.dispatcher.aclose()  # the wait for e2's verdict ends without an outcome
    await rig.runner
    assert reasons(rig, "e2") == []


async def test_a_push_accepted_in_time_is_sent_though_its_verdict_comes_after_its_ttl() -> None:
    rig = await make_rig(limit=10, window_s=1)
    rig.provider.results.append(Later(after_s=120.0))
    rig.dispatcher.submit(status("o1v1", 1, ttl_s=60.0))
    await settle()
    rig.dispatcher.submit(status("o1v2", 2, offset=1, ttl_s=60.0))  # waits behind the claim
    await advance(rig.clock, 120.0)

    assert reasons(rig, "o1v2") == [(Outcome.EXPIRED, "ttl_elapsed")]
    assert reasons(rig, "o1v1") == [(Outcome.SENT, "sent")]
    await close(rig)


async def test_a_request_accepted_for_a_later_verdict_is_counted_once_with_its_recipients() -> None:
    """Operators read requests and recipients per provider: a request the provider takes
    to confirm later counts as sent at its acceptance, as an immediate one does."""
    rig = await make_rig()
    rig.provider.results.extend([Later(after_s=5.0), None])
    for event_id, user in (("e1", "u1"), ("e2", "u2")):
        rig.dispatcher.submit(make_job(event_id, user=user, text="sale"))  # one request
    await settle()
    rig.dispatcher.submit(make_job("e3", user="u3", text="news"))
    await advance(rig.clock, 6.0)

    assert reasons(rig, "e1") == [(Outcome.SENT, "sent")]
    assert rig.metrics.value("push_requests_total", provider="fake", result="sent") == 2
    assert rig.metrics.value("push_request_recipients_count", provider="fake") == 2
    assert rig.metrics.value("push_request_recipients_sum", provider="fake") == 3
    await close(rig)
