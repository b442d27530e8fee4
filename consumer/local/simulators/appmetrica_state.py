"""What the AppMetrica simulator remembers: groups, transfers, faults to inject."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from consumer.local.simulators.appmetrica_model import (
    ApiError,
    Group,
    SimulatorConfig,
    Transfer,
    check_batch_request,
)
from consumer.local.simulators.appmetrica_report import stat_data


class Faults(BaseModel):
    """Faults for the coming requests; counts are used up one request at a time."""

    model_config = ConfigDict(extra="forbid")

    scope: Literal["send", "all"] = Field("send", description="Which API requests they hit.")
    error_status: int = Field(503, ge=400, le=599, description="Status of injected errors.")
    error_count: int = Field(0, ge=0, description="The next N requests get `error_status`.")
    error_rate: float = Field(0.0, ge=0, le=1, description="Share of requests that get it.")
    latency_s: float = Field(0.0, ge=0, description="Delay before every answer.")
    hang_count: int = Field(0, ge=0, description="The next N requests never get an answer.")
    drop_after_accept_count: int = Field(
        0, ge=0, description="The next N sends are accepted, then the answer is lost."
    )
    drop_mode: Literal["error", "hang"] = Field("error", description="How the answer is lost.")
    drop_status: int = Field(500, ge=500, le=599, description="Status of a lost answer.")
    fail_transfers_count: int = Field(0, ge=0, description="The next N transfers end `failed`.")
    fail_errors: list[str] = Field(
        default_factory=lambda: ["Invalid push credentials for platform android"],
        description="The errors of a failed transfer.",
    )
    invalid_device_ids: list[str] = Field(
        default_factory=list, description="Device ids that make a transfer fail."
    )


class SimulatorState:
    def __init__(
        self, config: SimulatorConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.clock = clock
        self.faults = Faults()
        self.groups: dict[int, Group] = {}
        self.transfers: dict[int, Transfer] = {}
        self.requests: dict[str, int] = {}
        self._by_client_id: dict[tuple[int, int], int] = {}
        self._group_ids = itertools.count(1)
        self._transfer_ids = itertools.count(1)
        self._random = random.Random(config.seed)
        self.quota_violations = 0
        self._served_at: defaultdict[str, deque[float]] = defaultdict(deque)
        self.report_day: dt.date | None = None
        self.report_requests_today = 0

    def count(self, route: str) -> None:
        self.requests[route] = self.requests.get(route, 0) + 1

    def over_quota(self, api: str = "push") -> bool:
        """True (and counted) if a request to ``api`` (push, report) exceeds ``requests_per_s``.

        The quota clears once the last second holds fewer requests than the
        limit; a request refused with 429 is not served and does not count.
        """
        limit = self.config.requests_per_s
        if not limit:
            return False
        now, served = self.clock(), self._served_at[api]
        while served and served[0] <= now - 1.0:
            served.popleft()
        if len(served) >= limit:
            self.quota_violations += 1
            return True
        served.append(now)
        return False

    def over_daily_report_quota(self, today: dt.date) -> bool:
        """True (and counted) past ``report_requests_per_day`` Reporting API requests today."""
        if self.report_day != today:
            self.report_day, self.report_requests_today = today, 0
        limit = self.config.report_requests_per_day
        if limit and self.report_requests_today >= limit:
            self.quota_violations += 1
            return True
        self.report_requests_today += 1
        return False

    def stat_data(self, query: Mapping[str, str], today: dt.date) -> dict[str, Any]:
        step, now = self.config.status_step_s, self.clock()
        transfers = [(t, t.status(step, now)) for t in self.transfers.values()]
        return stat_data(query, self.groups, transfers, self.config, today)

    def take_error(self, scope_hit: bool) -> int | None:
        faults = self.faults
        if not scope_hit:
            return None
        if faults.error_count > 0:
            faults.error_count -= 1
            return faults.error_status
        if faults.error_rate and self._random.random() < faults.error_rate:
            return faults.error_status
        return None

    def take_hang(self, scope_hit: bool) -> bool:
        if scope_hit and self.faults.hang_count > 0:
            self.faults.hang_count -= 1
            return True
        return False

    def take_drop(self) -> bool:
        if self.faults.drop_after_accept_count > 0:
            self.faults.drop_after_accept_count -= 1
            return True
        return False

    def create_group(self, payload: Any) -> Group:
        group = payload.get("group") if isinstance(payload, dict) else None
        if not isinstance(group, dict):
            raise ApiError.one(400, "missing_parameter", "group object is required", "group")
        app_id, name = group.get("app_id"), group.get("name")
        send_rate = group.get("send_rate", 5000)
        if not isinstance(app_id, int) or isinstance(app_id, bool):
            raise ApiError.one(400, "missing_parameter", "app_id is required", "group.app_id")
        if not isinstance(name, str) or not name:
            raise ApiError.one(400, "missing_parameter", "name is required", "group.name")
        if not isinstance(send_rate, int) or not 100 <= send_rate <= 5000:
            raise ApiError.one(
                400, "invalid_parameter", "send_rate must be 100..5000", "group.send_rate"
            )
        if any(g.app_id == app_id and g.name == name for g in self.groups.values()):
            raise ApiError.one(409, "conflict", f"group {name!r} already exists", "group.name")
        created = Group(next(self._group_ids), app_id, name, send_rate)
        self.groups[created.id] = created
        return created

    def group(self, group_id: int) -> Group:
        if group_id not in self.groups:
            raise ApiError.one(404, "not_found", f"group {group_id} not found", "groupId")
        return self.groups[group_id]

    def accept_batch(self, payload: Any) -> Transfer:
        request, later_errors = check_batch_request(payload, self.config)
        group = self.group(request["group_id"])
        ctid = request.get("client_transfer_id")
        if ctid is not None and (group.id, ctid) in self._by_client_id:
            raise ApiError.one(
                409,
                "conflict",
                f"client_transfer_id {ctid} is already used in group {group.id}",
                "push_batch_request.client_transfer_id",
            )
        invalid = self.config.invalid_device_ids | set(self.faults.invalid_device_ids)
        later_errors += [
            f"Identifier {value} of type {g['id_type']} is invalid"
            for element in request["batch"]
            for g in element["devices"]
            for value in g["id_values"]
            if value in invalid
        ]
        if self.faults.fail_transfers_count > 0:
            self.faults.fail_transfers_count -= 1
            later_errors += self.faults.fail_errors
        transfer = Transfer(
            next(self._transfer_ids),
            group.id,
            request["tag"],
            request["batch"],
            ctid,
            later_errors,
            created=self.clock(),
        )
        self.transfers[transfer.id] = transfer
        if ctid is not None:
            self._by_client_id[(group.id, ctid)] = transfer.id
        return transfer

    def view(self, transfer: Transfer, *, with_client_id: bool = False) -> dict[str, Any]:
        return transfer.view(self.config.status_step_s, self.clock(), with_client_id=with_client_id)

    def transfer(self, transfer_id: int) -> Transfer:
        if transfer_id not in self.transfers:
            raise ApiError.one(404, "not_found", f"transfer {transfer_id} not found", "transferId")
        return self.transfers[transfer_id]

    def transfer_by_client_id(self, group_id: int, ctid: int) -> Transfer:
        self.group(group_id)
        found = self._by_client_id.get((group_id, ctid))
        if found is None:
            raise ApiError.one(
                404, "not_found", f"no transfer with client_transfer_id {ctid}", "clientTransferId"
            )
        return self.transfers[found]

    def record(self) -> list[dict[str, Any]]:
        """Every accepted transfer, with its messages and devices (for tests and demos)."""
        step, now = self.config.status_step_s, self.clock()
        return [
            {
                "id": t.id,
                "group_id": t.group_id,
                "client_transfer_id": t.client_transfer_id,
                "tag": t.tag,
                "status": t.status(step, now),
                "errors": t.errors,
                "devices": t.devices(),
                "batch": t.batch,
            }
            for t in self.transfers.values()
        ]
