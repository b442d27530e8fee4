"""What the service says at start about its budget: a quiet first minute is explained."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from consumer.app import _say_when_the_budget_frees
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
