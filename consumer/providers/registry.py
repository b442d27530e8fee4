"""Build the configured provider, and the budget that guards it, from settings.

``PUSH_PROVIDER`` picks an entry of ``PROVIDERS``; each entry says how to build
the provider and its budget. The dry-run provider takes IMSHOP's limits, so a
dry run schedules exactly as production would.

AppMetrica's provider has ``async start()`` (find or create its push group):
await it at start, so a bad token stops the service instead of failing pushes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from consumer.clock import Clock
from consumer.dispatch.budget import Budget
from consumer.errors import SettingsError
from consumer.metrics import Metrics
from consumer.providers.appmetrica import AppMetricaProvider
from consumer.providers.base import PushProvider
from consumer.providers.dryrun import DryRunProvider
from consumer.providers.imshop import ImshopProvider
from consumer.settings import ProviderName, Settings

ProviderBuilder = Callable[[Settings, httpx.AsyncClient | None, Clock, Metrics], PushProvider]
BudgetBuilder = Callable[[Settings, Clock], Budget]


@dataclass(frozen=True, slots=True)
class _Entry:
    build: ProviderBuilder
    budget: BudgetBuilder


def _imshop(
    settings: Settings, client: httpx.AsyncClient | None, _clock: Clock, _metrics: Metrics
) -> PushProvider:
    return ImshopProvider(settings.imshop, client)


def _dry_run(
    settings: Settings, _client: httpx.AsyncClient | None, _clock: Clock, _metrics: Metrics
) -> PushProvider:
    return DryRunProvider(max_recipients_per_request=settings.imshop.max_ids_per_request)


def imshop_budget(settings: Settings, clock: Clock) -> Budget:
    imshop = settings.imshop
    return Budget(
        limit=imshop.rate_limit_requests,
        window_s=imshop.rate_limit_window_s,
        clock=clock,
        margin_s=imshop.rate_limit_margin_s,
        assume_window_used=imshop.assume_window_used_at_start,
    )


def _appmetrica(
    settings: Settings, client: httpx.AsyncClient | None, clock: Clock, metrics: Metrics
) -> PushProvider:
    return AppMetricaProvider(settings.appmetrica, metrics=metrics, clock=clock, http=client)


def appmetrica_budget(settings: Settings, clock: Clock) -> Budget:
    appmetrica = settings.appmetrica
    return Budget(
        limit=appmetrica.rate_limit_requests, window_s=appmetrica.rate_limit_window_s, clock=clock
    )


PROVIDERS: dict[ProviderName, _Entry] = {
    ProviderName.IMSHOP: _Entry(_imshop, imshop_budget),
    ProviderName.APPMETRICA: _Entry(_appmetrica, appmetrica_budget),
    ProviderName.DRY_RUN: _Entry(_dry_run, imshop_budget),
}


def _entry(settings: Settings) -> _Entry:
    name = settings.service.push_provider
    if name not in PROVIDERS:
        raise SettingsError(f"PUSH_PROVIDER: {name.value!r} is not available in this build")
    return PROVIDERS[name]


def build_provider(
    settings: Settings,
    client: httpx.AsyncClient | None,
    *,
    clock: Clock,
    metrics: Metrics,
) -> PushProvider:
    """The provider ``PUSH_PROVIDER`` names, to be closed with ``aclose()``.

    ``client`` is shared and stays open (its owner closes it); with None the
    provider makes its own pooled client and closes it in ``aclose()``.
    """
    return _entry(settings).build(settings, client, clock, metrics)


def build_budget(settings: Settings, clock: Clock) -> Budget:
    """The request budget of the provider ``PUSH_PROVIDER`` names."""
    return _entry(settings).budget(settings, clock)
