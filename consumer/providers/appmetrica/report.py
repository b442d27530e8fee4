"""The push-campaign report per rule, from the AppMetrica Reporting API.

The provider sends each class to its own group and tags each request with the
rule id, so one query (`GET /stat/v1/data`, dimensions group, tag and
transfer; metrics sent, received and opened devices) gives, per rule: the
devices its pushes were sent to, received and opened (summed over its
transfers: a device that got the rule's push twice counts twice), and the
number of transfers (one row each). Rows of other groups (campaigns started in
AppMetrica's web interface, other services) are left out.

Every request takes a place in the Reporting API's quota first (``CallQuota``;
AppMetrica allows 30 per second per IP and 5,000 a day per login, counted
apart from the Push API's) and is counted in ``Report.requests``. A page holds
up to 100,000 rows, the documented maximum, so a report is one request unless a
period has more transfers than that.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from consumer.errors import FatalError, SettingsError
from consumer.providers.appmetrica.batching import group_name
from consumer.providers.appmetrica.client import describe_error_body
from consumer.providers.base import CallQuota
from consumer.push import PushClass
from consumer.settings import AppMetricaSettings

PATH = "/stat/v1/data"
DIMENSIONS = ("ym:pc:group", "ym:pc:tag", "ym:pc:transfer")
METRICS = ("ym:pc:sentDevices", "ym:pc:receivedDevices", "ym:pc:openedDevices")
PAGE_ROWS = 100_000
QUOTA_TEXT = "30 requests a second per IP and 5,000 a day per login, the day ending at 00:00 GMT"


@dataclass(slots=True)
class RuleRow:
    rule: str  # the tag: the mappings' rule id
    push_class: str
    sent: int = 0
    received: int = 0
    opened: int = 0
    transfers: int = 0

    @property
    def open_rate(self) -> float | None:
        """Opened of the devices sent to (iOS counts "received" only with a
        notification service extension, so sent is the steadier base)."""
        return self.opened / self.sent if self.sent else None

    def add(self, sent: int, received: int, opened: int, transfers: int) -> None:
        self.sent += sent
        self.received += received
        self.opened += opened
        self.transfers += transfers


@dataclass(slots=True)
class Report:
    app_id: int
    date1: str  # as AppMetrica resolved the period (YYYY-MM-DD)
    date2: str
    rows: list[RuleRow]
    requests: int  # Reporting API requests this report took

    def total(self) -> RuleRow:
        total = RuleRow("total", "")
        for row in self.rows:
            total.add(row.sent, row.received, row.opened, row.transfers)
        return total


class ReportClient:
    def __init__(
        self,
        settings: AppMetricaSettings,
        quota: CallQuota,
        *,
        http: httpx.AsyncClient | None = None,
        page_rows: int = PAGE_ROWS,
    ) -> None:
        if settings.app_id is None:
            raise SettingsError("APPMETRICA_APP_ID is required for the report")
        if not settings.token.get_secret_value():
            raise SettingsError("APPMETRICA_TOKEN is required for the report")
        self._settings = settings
        self._app_id = settings.app_id
        self._quota = quota
        self._http = http or httpx.AsyncClient(timeout=settings.timeout_s)
        self._owns_http = http is None
        self._url = settings.report_url.rstrip("/") + PATH
        self._headers = {"Authorization": f"OAuth {settings.token.get_secret_value()}"}
        self._page_rows = page_rows
        self.requests = 0

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def report(self, date1: str, date2: str, rule: str | None = None) -> Report:
        """Rows per rule for the period (dates as the API takes them: YYYY-MM-DD,
        today, yesterday, NdaysAgo); ``rule`` keeps one (``orders.yaml:order_delivered``,
        or just ``order_delivered``)."""
        groups = {group_name(self._settings, c): c.value for c in PushClass}
        rows: dict[tuple[str, str], RuleRow] = {}
        query: dict[str, Any] = {}
        offset, total = 1, 1
        while offset <= total:
            page = await self._page(date1, date2, offset)
            query, total = page.get("query", {}), int(page.get("total_rows", 0))
            for group, tag, values in _rows(page.get("data", [])):
                push_class = groups.get(group)
                if push_class is None or not _is_rule(tag, rule):
                    continue
                rows.setdefault((push_class, tag), RuleRow(tag, push_class)).add(*values, 1)
            offset += self._page_rows
        ordered = sorted(rows.values(), key=lambda r: (r.push_class != "transactional", r.rule))
        return Report(
            self._app_id,
            str(query.get("date1", date1)),
            str(query.get("date2", date2)),
            ordered,
            self.requests,
        )

    async def _page(self, date1: str, date2: str, offset: int) -> dict[str, Any]:
        params = {
            "ids": str(self._app_id),
            "metrics": ",".join(METRICS),
            "dimensions": ",".join(DIMENSIONS),
            "date1": date1,
            "date2": date2,
            "limit": str(self._page_rows),
            "offset": str(offset),
        }
        async with self._quota.call():
            self.requests += 1
            try:
                response = await self._http.get(
                    self._url,
                    params=params,
                    headers=self._headers,
                    timeout=self._settings.timeout_s,
                )
            except httpx.HTTPError as exc:
                raise FatalError(
                    f"AppMetrica's Reporting API at {self._settings.report_url} did not answer: "
                    f"{exc!r} (APPMETRICA_REPORT_URL)"
                ) from exc
        if not response.is_success:
            raise self._refusal(response)
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise FatalError(
                "AppMetrica's Reporting API answered with something not JSON"
            ) from None
        return body

    def _refusal(self, response: httpx.Response) -> FatalError:
        status, detail = response.status_code, _one_line(describe_error_body(response.text))
        kind = _error_type(response.text)
        if status == 401 or kind == "invalid_token":
            return SettingsError(
                f"AppMetrica refused the OAuth token ({status} {detail}): APPMETRICA_TOKEN is "
                "missing, expired or revoked, or lacks the appmetrica:read scope"
            )
        if status in (403, 404):
            return SettingsError(
                f"AppMetrica has no application {self._app_id} this token may read "
                f"({status} {detail}): check APPMETRICA_APP_ID and the token's access to it"
            )
        if status in (420, 429):
            return FatalError(
                f"AppMetrica's Reporting API quota is used up ({status} {detail}); it allows "
                f"{QUOTA_TEXT}; requests made by this run: {self.requests}"
            )
        return FatalError(f"AppMetrica's Reporting API answered {status}: {detail}")


def _rows(data: Iterable[Any]) -> Iterable[tuple[str, str, tuple[int, int, int]]]:
    """(group name, tag, (sent, received, opened)) of each transfer row."""
    for row in data:
        dimensions, metrics = row["dimensions"], row["metrics"]
        sent, received, opened = (int(value or 0) for value in metrics[: len(METRICS)])
        yield str(dimensions[0]["name"]), str(dimensions[1]["name"]), (sent, received, opened)


def _is_rule(tag: str, wanted: str | None) -> bool:
    return wanted is None or tag == wanted or tag.endswith(f":{wanted}")


def _error_type(text: str) -> str | None:
    try:
        errors = json.loads(text).get("errors") or [{}]
        return str(errors[0].get("error_type"))
    except (ValueError, AttributeError, IndexError):
        return None


def _one_line(text: str) -> str:
    return " ".join(text.split())
