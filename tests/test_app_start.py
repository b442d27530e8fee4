"""At start: a quiet first minute is explained, and the collector is set for a long run."""

from __future__ import annotations

import gc

import pytest
from structlog.testing import capture_logs

from consumer.app import _collector_for_a_long_run, _say_when_the_budget_frees
from consumer.clock import FakeClock
from consumer.dispatch.budget import provider_budget
from consumer.settings import load_settings


def test_a_budget_spent_at_start_is_announced_with_the_wait_and_the_setting() -> None:
    clock = FakeClock()
    imshop = {
        "assume_window_used_at_start": True,
        "rate_limit_window_s": 60,
        "rate_limit_margin_s": 1,
    }
    budget = provider_budget(load_settings(imshop=imshop), clock)

    with capture_logs() as logged:
        _say_when_the_budget_frees(budget, clock)

    (said,) = logged
    assert said["event"] == "budget_spent_at_start"
    assert said["first_request_in_s"] == pytest.approx(61.0)  # the window plus its margin
    assert "IMSHOP_ASSUME_WINDOW_USED_AT_START" in said["why"]


def test_an_empty_budget_at_start_says_nothing() -> None:
    clock = FakeClock()
    budget = provider_budget(load_settings(imshop={"assume_window_used_at_start": False}), clock)

    with capture_logs() as logged:
        _say_when_the_budget_frees(budget, clock)

    assert logged == []


def test_a_running_service_keeps_the_collector_off_what_it_loaded_and_restores_it() -> None:
    before = gc.get_threshold()
    with _collector_for_a_long_run():
        assert gc.get_freeze_count() > 0  # what was loaded at start is never walked again
        young, middle, old = gc.get_threshold()
        assert young >= 10_000  # a fetched batch's events are not walked on their way
        assert middle >= 100  # nor the history's queue, again and again
        assert old >= 1_000  # full collections are rare
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
