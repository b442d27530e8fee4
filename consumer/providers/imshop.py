"""The IMSHOP push API provider: one message to at most M userIds per request.

    POST IMSHOP_URL  Authorization: Bearer <key>
    {"userIds": [...], "message": {"title": ..., "summary": ...}, "deeplink": ...}

How answers map onto the error tree (the dispatcher decides what to do):

| answer                                     | raises                 | processed? |
|--------------------------------------------|------------------------|------------|
| 2xx `{"success": true}`                    | (sent)                 | yes        |
| 2xx `{"success": false, "error": ...}`     | ProviderUnavailable    | no         |
| connection never opened                    | ProviderUnavailable    | no         |
| read/write timeout, reset, 5xx, 408        | OutcomeUnknown         | maybe      |
| 429                                        | RateLimited            | no         |
| 400, 422, other 4xx (Joi `message` kept)   | ProviderRejected       | no         |
| 401, 403 (key), 404, 405 (URL)             | FatalError             | no         |
| 2xx with any other body                    | OutcomeUnknown         | maybe      |

IMSHOP has no idempotency key, so a retry after "maybe" can push twice; the
dispatcher still retries (an order status matters more than a rare duplicate),
and the two cases are told apart in metrics and logs by the error's ``reason``.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from typing import Any

import httpx

from consumer.errors import (
    FatalError,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from consumer.providers.base import Envelope, ProviderLimits, retry_after_s
from consumer.push import PushJob
from consumer.settings import ImshopSettings

_BODY_SHOWN = 300
_KEY_REFUSED = "key refused: check IMSHOP_API_KEY"
_WRONG_URL = "wrong URL: check IMSHOP_URL"
_CONFIG_STATUSES = {401: _KEY_REFUSED, 403: _KEY_REFUSED, 404: _WRONG_URL, 405: _WRONG_URL}


class ImshopProvider:
    name = "imshop"

    def __init__(self, settings: ImshopSettings, client: httpx.AsyncClient | None = None) -> None:
        """``client`` is shared and closed by its owner; without one, a pooled one is made."""
        self.limits = ProviderLimits(
            max_messages_per_request=1, max_recipients_per_request=settings.max_ids_per_request
        )
        self._url = settings.url
        self._client = client or http_client(settings)
        self._owns_client = client is None
        self._timeout = httpx.Timeout(settings.timeout_s)
        key = settings.api_key.get_secret_value()
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}

    def coalesce_key(self, job: PushJob) -> Hashable:
        return job.message

    def recipients(self, job: PushJob) -> Sequence[str]:
        push_id = job.recipient.push_id.strip()
        return (push_id,) if push_id else ()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def send(self, request: Sequence[Envelope]) -> None:
        if len(request) != 1:
            raise ValueError(f"IMSHOP takes one message per request, got {len(request)}")
        response = await self._post(body(request[0]))
        _check(response)

    async def _post(self, payload: dict[str, Any]) -> httpx.Response:
        try:
            return await self._client.post(
                self._url, json=payload, headers=self._headers, timeout=self._timeout
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ProviderUnavailable(f"IMSHOP not reachable at {self._url}: {_name(exc)}") from exc
        except httpx.TimeoutException as exc:
            raise OutcomeUnknown(f"IMSHOP did not answer in time: {_name(exc)}") from exc
        except httpx.TransportError as exc:
            raise OutcomeUnknown(f"IMSHOP connection failed mid-request: {_name(exc)}") from exc


def http_client(settings: ImshopSettings) -> httpx.AsyncClient:
    """One pooled client whose idle connections outlive the gap between requests.

    At N requests per W seconds requests come W/N apart (6 s by default), longer
    than httpx's 5 s keep-alive: without this each request would open a new
    connection and TLS session.
    """
    gap = settings.rate_limit_window_s / settings.rate_limit_requests
    return httpx.AsyncClient(
        timeout=settings.timeout_s,
        limits=httpx.Limits(max_connections=10, keepalive_expiry=max(30.0, 2 * gap)),
    )


def body(envelope: Envelope) -> dict[str, Any]:
    message = envelope.message
    payload: dict[str, Any] = {
        "userIds": list(envelope.recipients),
        "message": {"title": message.title, "summary": message.summary},
    }
    if message.deeplink is not None:
        payload["deeplink"] = message.deeplink
    return payload


def _check(response: httpx.Response) -> None:
    status, text = response.status_code, response.text[:_BODY_SHOWN]
    if 200 <= status < 300:
        _check_success(status, response)
        return
    if status == 429:
        raise RateLimited(
            f"IMSHOP throttled the request (HTTP 429): {text}",
            retry_after=retry_after_s(response.headers.get("Retry-After")),
        )
    if status in _CONFIG_STATUSES:
        raise FatalError(f"IMSHOP answered HTTP {status} ({_CONFIG_STATUSES[status]}): {text}")
    if status == 408 or status >= 500:
        raise OutcomeUnknown(
            f"IMSHOP answered HTTP {status}: {text}",
            retry_after=retry_after_s(response.headers.get("Retry-After")),
        )
    detail = _json(response)
    message = detail.get("message") if isinstance(detail, dict) else None
    raise ProviderRejected(
        f"IMSHOP refused the request (HTTP {status}): {message or text}",
        status=status,
        body=response.text,
    )


def _check_success(status: int, response: httpx.Response) -> None:
    answer = _json(response)
    if isinstance(answer, dict) and answer.get("success") is True:
        return
    if isinstance(answer, dict) and answer.get("success") is False:
        raise ProviderUnavailable(f"IMSHOP did not accept the push: {answer.get('error')!r}")
    raise OutcomeUnknown(
        f"IMSHOP answered HTTP {status} with an unexpected body: {response.text[:_BODY_SHOWN]!r}"
    )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _name(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
