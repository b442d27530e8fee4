"""Build the configured provider from settings.

``PUSH_PROVIDER`` picks an entry of ``PROVIDERS``. The budget that guards it is
built by ``consumer.dispatch.budget.provider_budget``.

AppMetrica's provider has ``async start()`` (find or create its push groups):
await it at start, so a bad token stops the service instead of failing pushes.
It counts its calls other than sends (status polls, lookups) in the same
budget the dispatcher uses: pass that budget as ``quota``.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from consumer.clock import Clock
from consumer.errors import SettingsError
from consumer.metrics import Metrics
from consumer.providers.appmetrica import AppMetricaProvider
from consumer.providers.base import CallQuota, PushProvider
from consumer.providers.dryrun import DryRunProvider
from consumer.providers.imshop import ImshopProvider
from consumer.settings import ProviderName, Settings

Quota = CallQuota | None
ProviderBuilder = Callable[
    [Settings, httpx.AsyncClient | None, Clock, Metrics, Quota], PushProvider
]


def _imshop(
    settings: Settings,
    client: httpx.AsyncClient | None,
    _clock: Clock,
    _metrics: Metrics,
    _quota: Quota,
) -> PushProvider:
    return ImshopProvider(settings.imshop, client)


def _dry_run(
    settings: Settings,
    _client: httpx.AsyncClient | None,
    _clock: Clock,
    _metrics: Metrics,
    _quota: Quota,
) -> PushProvider:
    return DryRunProvider(max_recipients_per_request=settings.imshop.max_ids_per_request)


def _appmetrica(
    settings: Settings,
    client: httpx.AsyncClient | None,
    clock: Clock,
    metrics: Metrics,
    quota: Quota,
) -> PushProvider:
    if quota is None:
        raise ValueError("the AppMetrica provider counts its calls in the dispatcher's budget")
    return AppMetricaProvider(
        settings.appmetrica, quota=quota, metrics=metrics, clock=clock, http=client
    )


PROVIDERS: dict[ProviderName, ProviderBuilder] = {
    ProviderName.IMSHOP: _imshop,
    ProviderName.APPMETRICA: _appmetrica,
    ProviderName.DRY_RUN: _dry_run,
}


def build_provider(
    settings: Settings,
    client: httpx.AsyncClient | None,
    *,
    clock: Clock,
    metrics: Metrics,
    quota: CallQuota | None = None,
) -> PushProvider:
    """The provider ``PUSH_PROVIDER`` names, to be closed with ``aclose()``.

    ``client`` is shared and stays open (its owner closes it); with None the
    provider makes its own pooled client and closes it in ``aclose()``.
    """
    name = settings.service.push_provider
    if name not in PROVIDERS:
        raise SettingsError(f"PUSH_PROVIDER: {name.value!r} is not available in this build")
    return PROVIDERS[name](settings, client, clock, metrics, quota)
