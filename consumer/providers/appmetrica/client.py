"""HTTP calls to the AppMetrica Push API, with answers mapped onto the error tree.

- 420/429 -> ``RateLimited``; 5xx, a timeout or a reset after the request went
  out -> ``OutcomeUnknown`` (it may have been processed); a connection that never
  opened -> ``ProviderUnavailable``.
- 404 -> ``NotFound``, 409 -> ``Conflict`` (both ``ProviderRejected``, so if one
  escapes it is still a permanent refusal); 401 names the token; other 4xx ->
  ``ProviderRejected`` keeping the documented error body.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from consumer.errors import (
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from consumer.providers.base import retry_after_s
from consumer.settings import AppMetricaSettings

_THROTTLED = (420, 429)


class NotFound(ProviderRejected):
    """The group or transfer asked for does not exist."""


class Conflict(ProviderRejected):
    """A duplicate: the group name or the `client_transfer_id` is already used."""


class AppMetricaClient:
    def __init__(
        self, settings: AppMetricaSettings, *, http: httpx.AsyncClient | None = None
    ) -> None:
        token = settings.token.get_secret_value()
        self._base_url = settings.url.rstrip("/")
        self._timeout = settings.timeout_s  # also on a shared client, whatever its default
        self._http = http or httpx.AsyncClient(timeout=settings.timeout_s)
        self._owns_http = http is None
        self._headers = {"Authorization": f"OAuth {token}"}

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def list_groups(self, app_id: int) -> list[dict[str, Any]]:
        body = await self._call("GET", "/push/v1/management/groups", params={"app_id": app_id})
        groups: list[dict[str, Any]] = body.get("groups", [])
        return groups

    async def create_group(self, app_id: int, name: str) -> dict[str, Any]:
        payload = {"group": {"app_id": app_id, "name": name}}
        body = await self._call("POST", "/push/v1/management/groups", json_body=payload)
        group: dict[str, Any] = body["group"]
        return group

    async def send_batch(self, request: dict[str, Any]) -> int:
        """Send one `push_batch_request`; returns the `transfer_id`."""
        payload = {"push_batch_request": request}
        body = await self._call("POST", "/push/v1/send-batch", json_body=payload)
        return int(body["push_response"]["transfer_id"])

    async def transfer(self, transfer_id: int) -> dict[str, Any]:
        body = await self._call("GET", f"/push/v1/status/{transfer_id}")
        found: dict[str, Any] = body["transfer"]
        return found

    async def transfer_by_client_id(self, group_id: int, client_transfer_id: int) -> dict[str, Any]:
        body = await self._call("GET", f"/push/v1/status/{group_id}/{client_transfer_id}")
        found: dict[str, Any] = body["transfer"]
        return found

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        where = f"{method} {path}"
        try:
            response = await self._http.request(
                method,
                self._base_url + path,
                params=params,
                json=json_body,
                headers=self._headers,
                timeout=self._timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ProviderUnavailable(f"AppMetrica {where}: cannot connect: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise OutcomeUnknown(f"AppMetrica {where}: no answer: {exc!r}") from exc
        if response.is_success:
            try:
                parsed: dict[str, Any] = response.json()
            except ValueError as exc:
                raise OutcomeUnknown(f"AppMetrica {where}: answer is not JSON") from exc
            return parsed
        raise _http_error(where, response)


def _http_error(where: str, response: httpx.Response) -> Exception:
    status, text = response.status_code, response.text
    detail = describe_error_body(text)
    message = f"AppMetrica answered {status} to {where}: {detail}"
    if status in _THROTTLED:
        return RateLimited(message, retry_after=retry_after_s(response.headers.get("Retry-After")))
    if status >= 500:
        return OutcomeUnknown(message)
    if status == 401:
        return ProviderRejected(
            f"AppMetrica refused the OAuth token (401) on {where}: APPMETRICA_TOKEN is "
            f"missing, expired or revoked, or lacks the appmetrica:write scope ({detail})",
            status=status,
            body=text,
        )
    kind = {404: NotFound, 409: Conflict}.get(status, ProviderRejected)
    return kind(message, status=status, body=text)


def describe_error_body(text: str) -> str:
    """`error_type: message (at location)` for each documented error entry, else the text."""
    try:
        body = json.loads(text)
    except ValueError:
        return text[:500] or "(empty body)"
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors:
        return text[:500]
    parts = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        part = f"{error.get('error_type', 'error')}: {error.get('message', '')}"
        if error.get("location"):
            part += f" (at {error['location']})"
        parts.append(part)
    return "; ".join(parts) or text[:500]
