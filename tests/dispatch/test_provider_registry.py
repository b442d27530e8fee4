"""Building the configured provider and its budget; the dry-run provider."""

from __future__ import annotations

import sys

import pytest
from testkit import make_job

from consumer.clock import FakeClock
from consumer.dispatch.budget import provider_budget
from consumer.metrics import Metrics
from consumer.providers.base import Envelope
from consumer.providers.dryrun import DryRunProvider
from consumer.providers.imshop import ImshopProvider
from consumer.providers.registry import build_provider
from consumer.settings import ImshopSettings, ProviderName, ServiceSettings, Settings


def _settings(provider: ProviderName) -> Settings:
    return Settings(
        service=ServiceSettings(push_provider=provider),
        imshop=ImshopSettings(
            rate_limit_requests=4,
            rate_limit_window_s=30,
            max_ids_per_request=500,
            rate_limit_margin_s=0.5,
        ),
    )


async def test_imshop_gets_its_limits_and_a_budget_that_starts_full() -> None:
    settings, clock = _settings(ProviderName.IMSHOP), FakeClock()

    provider = build_provider(settings, None, clock=clock, metrics=Metrics())
    budget = provider_budget(settings, clock)
    try:
        assert isinstance(provider, ImshopProvider)
        assert provider.limits.max_recipients_per_request == 500
        assert provider.limits.max_messages_per_request == 1
        assert (budget.limit, budget.window_s, budget.margin_s) == (4, 30, 0.5)
        assert budget.next_start_at() == pytest.approx(clock.monotonic() + 30.5)
    finally:
        await provider.aclose()


async def test_dry_run_keeps_what_it_would_have_sent() -> None:
    settings = _settings(ProviderName.DRY_RUN)
    provider = build_provider(settings, None, clock=FakeClock(), metrics=Metrics())
    assert isinstance(provider, DryRunProvider)
    job = make_job("e1", user="79990000001")

    await provider.send([Envelope(job.push.message, tuple(provider.recipients(job)), (job,))])

    (envelope,) = provider.sent
    assert envelope.recipients == ("79990000001",)
    assert provider.limits.max_recipients_per_request == 500


async def test_dry_run_holds_no_job_after_its_request() -> None:
    """A long dry run must not keep its events alive: the last thousand envelopes
    carried up to a thousand jobs each."""
    provider = DryRunProvider(keep=10)
    job = make_job("e1", user="79990000001")
    envelope = Envelope(job.push.message, tuple(provider.recipients(job)), (job,))
    held_before = sys.getrefcount(job)

    await provider.send([envelope])
    del envelope

    assert sys.getrefcount(job) == held_before - 1  # only the envelope we dropped held it
    assert [e.recipients for e in provider.sent] == [("79990000001",)]
