"""aiokafka's log lines while a broker is down: summarised, and the harmless ones lowered."""

from __future__ import annotations

import logging

import pytest
from aiokafka.errors import GroupCoordinatorNotAvailableError, RequestTimedOutError
from structlog.testing import capture_logs

from consumer.clock import FakeClock
from consumer.kafka.client_logs import ClientLogSummary

FETCHER = logging.getLogger("aiokafka.consumer.fetcher")
COORDINATOR = logging.getLogger("aiokafka.consumer.group_coordinator")
CLUSTER = logging.getLogger("aiokafka.cluster")


@pytest.fixture
def caplog_warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING)
    return caplog


async def test_an_error_repeated_for_every_retry_is_one_line_and_a_count(
    caplog_warnings: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    summary = ClientLogSummary(clock, window_s=30)
    with capture_logs() as ours, summary.installed():
        for attempt in range(300):  # ten a second, as aiokafka retries
            FETCHER.error("Failed fetch messages from %s: %s", attempt % 2, RequestTimedOutError())
            await clock.advance(0.1)
        summary.flush()

    passed = [r.getMessage() for r in caplog_warnings.records]
    assert passed == ["Failed fetch messages from 0: [Error 7] RequestTimedOutError"]
    (repeated,) = ours
    assert repeated["event"] == "kafka_client_log_repeated"
    assert repeated["log_level"] == "error"
    assert repeated["repeats"] == 299
    assert repeated["message"] == "Failed fetch messages from %s: %s"
    assert repeated["last"] == "Failed fetch messages from 1: [Error 7] RequestTimedOutError"


async def test_a_new_window_lets_the_line_through_again_and_reports_the_last_one(
    caplog_warnings: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    with capture_logs() as ours, ClientLogSummary(clock, window_s=30).installed():
        for _ in range(3):
            FETCHER.error("Failed fetch messages from %s: %s", 1, "timeout")
        await clock.advance(31)
        FETCHER.error("Failed fetch messages from %s: %s", 1, "timeout")

    assert len(caplog_warnings.records) == 2
    assert [line["repeats"] for line in ours] == [2]


def test_start_up_noise_is_lowered_below_what_is_shown(
    caplog_warnings: pytest.LogCaptureFixture,
) -> None:
    with ClientLogSummary(FakeClock()).installed():
        CLUSTER.error("Topic %s not found in cluster metadata", "bonus")
        COORDINATOR.error(
            "Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError()
        )
        COORDINATOR.warning("Heartbeat failed for group %s because it is rebalancing", "g")
        COORDINATOR.error("Group Coordinator Request failed: %s", RequestTimedOutError())

    assert [(r.levelname, r.getMessage()) for r in caplog_warnings.records] == [
        ("ERROR", "Group Coordinator Request failed: [Error 7] RequestTimedOutError")
    ]


def test_the_filter_is_gone_after_the_block(caplog_warnings: pytest.LogCaptureFixture) -> None:
    with ClientLogSummary(FakeClock()).installed():
        pass
    CLUSTER.error("Topic %s not found in cluster metadata", "bonus")

    assert len(caplog_warnings.records) == 1
