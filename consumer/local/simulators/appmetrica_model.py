"""The AppMetrica Push API simulator's state and validation, free of HTTP.

Follows the documented behaviour (research/push-apis.md part 1): groups with
names unique per app, `send-batch` shapes and limits (250,000 devices per
request, 1 to 5 device groups per element, non-empty `id_values`, known
`id_type`s, platform keys `android` and `iOS`, 3968 bytes per message),
`client_transfer_id` unique per group, and a transfer status that moves
`pending` -> `in_progress` -> `sent`, or `pending` -> `failed` with errors.
As in the docs' own example, a device id type whose platform has no message is
not refused on send: the transfer fails ("Identifier type google_aid requires
defined message for platform android").
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

ID_TYPE_PLATFORM: dict[str, str | None] = {
    "appmetrica_device_id": None,
    "ios_ifa": "iOS",
    "ios_push_token": "iOS",
    "google_aid": "android",
    "android_push_token": "android",
    "huawei_push_token": "android",
    "huawei_oaid": "android",
}
PLATFORMS = ("android", "iOS")
INT64_MAX = (1 << 63) - 1


class ApiError(Exception):
    """An answer in the documented error shape."""

    def __init__(self, status: int, errors: list[dict[str, str]]) -> None:
        super().__init__(errors[0]["message"])
        self.status = status
        self.errors = errors

    @classmethod
    def one(cls, status: int, error_type: str, message: str, location: str = "") -> ApiError:
        return cls(status, [{"error_type": error_type, "message": message, "location": location}])

    def body(self) -> dict[str, Any]:
        return {"errors": self.errors, "code": self.status, "message": self.errors[0]["message"]}


@dataclass(frozen=True)
class SimulatorConfig:
    token: str = "sim-token"
    status_step_s: float = 1.0
    max_devices_per_request: int = 250_000
    max_message_bytes: int = 3968
    invalid_device_ids: frozenset[str] = frozenset()
    hang_s: float = 300.0
    seed: int | None = None
    # The documented per-IP quota: 30 requests in any second; 0 turns it off.
    # Counted apart for the Push API and the Reporting API (its own method group).
    requests_per_s: int = 30
    # The Reporting API's daily quota per login (the token here), reset at 00:00 GMT; 0: off.
    report_requests_per_day: int = 5000
    # Of the devices a sent transfer reached, the share that received it, and of
    # those, the share that opened it (the report's made-up delivery figures).
    received_share: float = 0.9
    opened_share: float = 0.25
    # Applications the Reporting API knows besides those with a push group.
    app_ids: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        for name in ("received_share", "opened_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")


@dataclass
class Group:
    id: int
    app_id: int
    name: str
    send_rate: int = 5000

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "app_id": self.app_id,
            "name": self.name,
            "send_rate": self.send_rate,
        }


@dataclass
class Transfer:
    id: int
    group_id: int
    tag: str
    batch: list[dict[str, Any]]
    client_transfer_id: int | None
    errors: list[str]
    created: float
    creation_date: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    def status(self, step_s: float, now: float) -> str:
        elapsed = now - self.created
        if elapsed < step_s:
            return "pending"
        if self.errors:
            return "failed"
        return "in_progress" if elapsed < 2 * step_s else "sent"

    def view(self, step_s: float, now: float, *, with_client_id: bool = False) -> dict[str, Any]:
        status = self.status(step_s, now)
        shown: dict[str, Any] = {
            "id": self.id,
            "group_id": self.group_id,
            "status": status,
            "tag": self.tag,
            "creation_date": self.creation_date,
        }
        if status == "failed":
            shown["errors"] = list(self.errors)
        if with_client_id and self.client_transfer_id is not None:
            shown["client_transfer_id"] = self.client_transfer_id
        return shown

    def devices(self) -> int:
        return sum(len(g["id_values"]) for element in self.batch for g in element["devices"])


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, error_type: str, location: str, message: str) -> None:
        self.items.append({"error_type": error_type, "message": message, "location": location})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_batch_request(payload: Any, config: SimulatorConfig) -> tuple[dict[str, Any], list[str]]:
    """Validate a send-batch body: raise ``ApiError`` (400), else return it and the
    errors that will fail the transfer later (validation that is asynchronous)."""
    request = payload.get("push_batch_request") if isinstance(payload, dict) else None
    if not isinstance(request, dict):
        raise ApiError.one(
            400, "missing_parameter", "push_batch_request object is required", "push_batch_request"
        )
    problems, later = _Problems(), list[str]()
    where = "push_batch_request"
    if not _is_int(request.get("group_id")):
        problems.add("missing_parameter", f"{where}.group_id", "group_id must be an integer")
    if not isinstance(request.get("tag"), str):
        problems.add("missing_parameter", f"{where}.tag", "tag must be a string")
    ctid = request.get("client_transfer_id")
    if ctid is not None and not (_is_int(ctid) and -INT64_MAX - 1 <= ctid <= INT64_MAX):
        problems.add("invalid_parameter", f"{where}.client_transfer_id", "must be an int64")
    batch = request.get("batch")
    if not isinstance(batch, list) or not batch:
        problems.add("missing_parameter", f"{where}.batch", "batch must be a non-empty array")
        batch = []
    devices = 0
    for index, element in enumerate(batch):
        devices += _check_element(element, f"{where}.batch[{index}]", config, problems, later)
    if devices > config.max_devices_per_request:
        problems.add(
            "invalid_parameter",
            f"{where}.batch",
            f"{devices} devices in one request, more than {config.max_devices_per_request}",
        )
    if problems.items:
        raise ApiError(400, problems.items)
    return request, later


def _check_element(
    element: Any, where: str, config: SimulatorConfig, problems: _Problems, later: list[str]
) -> int:
    if not isinstance(element, dict):
        problems.add("invalid_parameter", where, "a batch element must be an object")
        return 0
    platforms = _check_messages(element.get("messages"), f"{where}.messages", config, problems)
    devices = element.get("devices")
    if not isinstance(devices, list) or not 1 <= len(devices) <= 5:
        problems.add("invalid_parameter", f"{where}.devices", "devices must hold 1 to 5 groups")
        return 0
    count = 0
    for index, group in enumerate(devices):
        count += _check_device_group(group, f"{where}.devices[{index}]", problems)
        if not isinstance(group, dict):
            continue
        id_type = group.get("id_type")
        needed = ID_TYPE_PLATFORM.get(id_type) if isinstance(id_type, str) else None
        if needed is not None and platforms is not None and needed not in platforms:
            later.append(
                f"Identifier type {id_type} requires defined message for platform {needed}"
            )
    return count


def _check_device_group(group: Any, where: str, problems: _Problems) -> int:
    if not isinstance(group, dict):
        problems.add("invalid_parameter", where, "a device group must be an object")
        return 0
    if group.get("id_type") not in ID_TYPE_PLATFORM:
        problems.add(
            "invalid_parameter",
            f"{where}.id_type",
            f"unknown id_type {group.get('id_type')!r}; expected one of {sorted(ID_TYPE_PLATFORM)}",
        )
    values = group.get("id_values")
    if not isinstance(values, list) or not values:
        problems.add("invalid_parameter", f"{where}.id_values", "id_values must be non-empty")
        return 0
    if not all(isinstance(v, str) and v for v in values):
        problems.add("invalid_parameter", f"{where}.id_values", "id_values must be strings")
    return len(values)


def _check_messages(
    messages: Any, where: str, config: SimulatorConfig, problems: _Problems
) -> set[str] | None:
    if not isinstance(messages, dict) or not messages:
        problems.add("missing_parameter", where, "messages must name android and/or iOS")
        return None
    for key, message in messages.items():
        if key not in PLATFORMS:
            problems.add(
                "invalid_parameter",
                f"{where}.{key}",
                f"unknown platform {key!r} (use android, iOS)",
            )
            continue
        _check_message(message, f"{where}.{key}", config, problems)
    return set(messages) & set(PLATFORMS)


def _check_message(message: Any, where: str, config: SimulatorConfig, problems: _Problems) -> None:
    if not isinstance(message, dict):
        problems.add("invalid_parameter", where, "a platform message must be an object")
        return
    size = len(json.dumps(message, ensure_ascii=False).encode("utf-8"))
    if size > config.max_message_bytes:
        problems.add(
            "invalid_parameter", where, f"message is {size} bytes, over {config.max_message_bytes}"
        )
    content = message.get("content")
    if message.get("silent") is True and content is None:
        return
    if not isinstance(content, dict):
        problems.add("missing_parameter", f"{where}.content", "content is required")
        return
    for name in ("title", "text"):
        if not isinstance(content.get(name), str) or not content[name]:
            problems.add("missing_parameter", f"{where}.content.{name}", f"{name} is required")
    priority = content.get("priority")
    if priority is not None and not (_is_int(priority) and -2 <= priority <= 2):
        problems.add("invalid_parameter", f"{where}.content.priority", "priority must be -2..2")
