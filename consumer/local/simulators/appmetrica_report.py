"""The simulator's Reporting API: `GET /stat/v1/data` over the transfers it accepted.

The push-campaign report's dimensions (`ym:pc:group`, `ym:pc:tag`,
`ym:pc:transfer`) and device metrics (`ym:pc:sentDevices`,
`ym:pc:receivedDevices`, `ym:pc:openedDevices`), in the documented table shape:
`query`, `data` rows of `{dimensions: [{id?, name}], metrics: [...]}`,
`total_rows`, sampling fields, `totals`, `min`, `max`; `limit` (at most
100,000) and `offset` (from 1) page through the rows, sorted by the first
metric, largest first.

What the simulator makes up, since no phone is involved: a transfer counts
once its status is `sent` (on its creation date, in UTC); it was sent to each
of its devices, and of those ``received_share`` received it and
``opened_share`` of the receivers opened it (rounded, per transfer). Rows that
leave `ym:pc:transfer` out add up their transfers (the real report counts
distinct devices there). Filters are not evaluated: a request with
`filters` is refused, so nobody mistakes an unfiltered answer for a filtered one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from consumer.local.simulators.appmetrica_model import ApiError, Group, SimulatorConfig, Transfer

DIMENSIONS = ("ym:pc:group", "ym:pc:tag", "ym:pc:transfer")
METRICS = ("ym:pc:sentDevices", "ym:pc:receivedDevices", "ym:pc:openedDevices")
MAX_LIMIT = 100_000
MAX_METRICS = 20
_DAYS_AGO = re.compile(r"^(\d+)daysAgo$")


def stat_data(
    query: Mapping[str, str],
    groups: Mapping[int, Group],
    transfers: list[tuple[Transfer, str]],
    config: SimulatorConfig,
    today: dt.date,
) -> dict[str, Any]:
    """The answer to one `/stat/v1/data` query; ``transfers`` with their current status."""
    if "filters" in query:
        raise ApiError.one(400, "invalid_parameter", "the simulator does not evaluate filters")
    apps = _app_ids(query, groups, config)
    metrics = _names(query.get("metrics"), METRICS, "metrics", required=True)[:MAX_METRICS]
    dimensions = _names(query.get("dimensions"), DIMENSIONS, "dimensions", required=False)
    date1 = _date(query.get("date1", "6daysAgo"), today, "date1")
    date2 = _date(query.get("date2", "today"), today, "date2")
    if date1 > date2:
        raise ApiError.one(400, "invalid_parameter", "date1 is after date2", "date1")
    limit = _int(query.get("limit", "100"), "limit", 1, MAX_LIMIT)
    offset = _int(query.get("offset", "1"), "offset", 1, None)

    rows: dict[tuple[tuple[tuple[str, str], ...], ...], list[int]] = {}
    counted = 0
    for transfer, status in transfers:
        group = groups[transfer.group_id]
        created = dt.datetime.fromisoformat(transfer.creation_date).astimezone(dt.UTC).date()
        if status != "sent" or group.app_id not in apps or not date1 <= created <= date2:
            continue
        counted += 1
        key = tuple(_dimension(name, group, transfer) for name in dimensions)
        values = _transfer_metrics(transfer, config)
        summed = rows.setdefault(key, [0] * len(metrics))
        for i, name in enumerate(metrics):
            summed[i] += values[name]

    ordered = sorted(rows.items(), key=lambda row: (-row[1][0], row[0]))
    page = ordered[offset - 1 : offset - 1 + limit]
    columns = list(zip(*(values for _, values in ordered), strict=True)) or [()] * len(metrics)
    return {
        "query": {
            "ids": sorted(apps),
            "dimensions": list(dimensions),
            "metrics": list(metrics),
            "sort": [f"-{metrics[0]}"],
            "date1": date1.isoformat(),
            "date2": date2.isoformat(),
            "limit": limit,
            "offset": offset,
        },
        "data": [
            {"dimensions": [dict(parts) for parts in key], "metrics": [float(v) for v in values]}
            for key, values in page
        ],
        "total_rows": len(ordered),
        "total_rows_rounded": False,
        "sampled": False,
        "sample_share": 1.0,
        "sample_size": counted,
        "sample_space": counted,
        "data_lag": 0,
        "totals": [float(sum(column)) for column in columns],
        "min": [float(min(column, default=0)) for column in columns],
        "max": [float(max(column, default=0)) for column in columns],
    }


def _app_ids(
    query: Mapping[str, str], groups: Mapping[int, Group], config: SimulatorConfig
) -> set[int]:
    raw = query.get("ids") or query.get("id")
    if not raw:
        raise ApiError.one(400, "missing_parameter", "ids is required", "ids")
    try:
        asked = {int(part) for part in raw.split(",")}
    except ValueError:
        raise ApiError.one(400, "invalid_parameter", "ids must be integers", "ids") from None
    known = config.app_ids | {group.app_id for group in groups.values()}
    if unknown := sorted(asked - known):
        raise ApiError.one(403, "access_denied", f"no access to application {unknown[0]}", "ids")
    return asked


def _names(raw: str | None, allowed: tuple[str, ...], where: str, *, required: bool) -> list[str]:
    names = [name.strip() for name in (raw or "").split(",") if name.strip()]
    if required and not names:
        raise ApiError.one(400, "missing_parameter", f"{where} is required", where)
    for name in names:
        if name not in allowed:
            raise ApiError.one(
                400,
                "invalid_parameter",
                f"unknown {where[:-1]} {name!r}; the simulator knows {', '.join(allowed)}",
                where,
            )
    return names


def _date(raw: str, today: dt.date, where: str) -> dt.date:
    if raw == "today":
        return today
    if raw == "yesterday":
        return today - dt.timedelta(days=1)
    if match := _DAYS_AGO.match(raw):
        return today - dt.timedelta(days=int(match.group(1)))
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ApiError.one(
            400, "invalid_parameter", f"{where} must be YYYY-MM-DD, today, yesterday or NdaysAgo"
        ) from None


def _int(raw: str, where: str, low: int, high: int | None) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f"at least {low}"
        raise ApiError.one(400, "invalid_parameter", f"{where} must be {bounds}", where)
    return value


def _dimension(name: str, group: Group, transfer: Transfer) -> tuple[tuple[str, str], ...]:
    if name == "ym:pc:group":
        return (("id", str(group.id)), ("name", group.name))
    if name == "ym:pc:tag":
        return (("name", transfer.tag),)
    return (("name", str(transfer.id)),)


def _transfer_metrics(transfer: Transfer, config: SimulatorConfig) -> dict[str, int]:
    devices = {
        (g["id_type"], v) for e in transfer.batch for g in e["devices"] for v in g["id_values"]
    }
    sent = len(devices)
    received = int(sent * config.received_share + 0.5)
    opened = int(received * config.opened_share + 0.5)
    return {
        "ym:pc:sentDevices": sent,
        "ym:pc:receivedDevices": received,
        "ym:pc:openedDevices": opened,
    }
