"""A rush hour in compressed time, for the demo and the reach benchmark.

Real time is compressed ``scale`` times: the provider's window (60 s) becomes
``60 / scale`` seconds, and so must every time a rule states, or a push would
keep its real-world two hours while everything else runs at sixty times the
speed. ``compressed_mappings`` writes a copy of a mappings directory with each
rule's ``ttl`` and ``personal_within`` divided by ``scale`` (the rule's
default ``personal_within`` written out, so it is divided too; rounded up to
whole seconds, as rules write them). Quiet hours are
on the recipient's real clock and stay as they are: a rush that should not meet
them picks recipients where it is day (``daytime_zone``).

``order_trace`` is the shop's side of a rush: orders created at a steady rate,
each going created, confirmed, assembling, handed to the courier over about 45
minutes, with the statuses' real-world times.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from consumer.mapping import load_mappings
from consumer.mapping.loader import mapping_files
from consumer.mapping.parse import TTL_MIN_S, ttl_seconds
from consumer.settings import MappingSettings

STATUSES = ("created", "confirmed", "assembling", "handed_to_courier")
# Minutes after the order is created that each status comes, from and to.
_STATUS_MINUTES = ((0, 0), (2, 6), (8, 18), (28, 45))
_RULE = re.compile(r"^  - id: (\w+)")
_TTL = re.compile(r"^    ttl: (.+?)\s*$")
_WITHIN = re.compile(r"^    personal_within: ")


def compressed_mappings(source: Path, target: Path, scale: float) -> Path:
    """Copy the mappings in ``source`` to ``target`` with every rule's times divided by
    ``scale`` (a ttl no shorter than the check allows)."""
    rules = {(r.file_name, r.id): r for r in load_mappings(source, MappingSettings()).rules}
    target.mkdir(parents=True, exist_ok=True)
    for path in mapping_files(source):
        lines, rule_id = [], None
        for line in path.read_text(encoding="utf-8").splitlines():
            if match := _RULE.match(line):
                rule_id = match.group(1)
            if _WITHIN.match(line):
                continue  # written again below, divided
            ttl = _TTL.match(line)
            rule = rules.get((path.name, rule_id or ""))
            if ttl is None or rule is None:
                lines.append(line)
                continue
            seconds = ttl_seconds(ttl.group(1).strip("'\""))
            assert seconds is not None  # the source passed the check
            lines.append(f"    ttl: {max(TTL_MIN_S, math.ceil(seconds / scale))}s")
            if rule.shared is not None:
                within = max(1, math.ceil(rule.personal_within_s / scale))
                lines.append(f"    personal_within: {within}s")
        (target / path.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    load_mappings(target, MappingSettings())  # still passes the check
    return target


def daytime_zone(now: dt.datetime) -> str:
    """A time zone where it is early afternoon now."""
    return zone_where(now, 14)


def zone_where(now: dt.datetime, hour: int) -> str:
    """A time zone whose clock shows ``hour`` now (``Etc/GMT-3`` is UTC+3)."""
    offset = (hour - now.astimezone(dt.UTC).hour) % 24
    if offset > 14:
        offset -= 24
    name = "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"
    ZoneInfo(name)  # exists
    return name


@dataclass(frozen=True, slots=True)
class Status:
    """One status of one order, at its real-world second of the trace."""

    at_s: float
    order: int
    status: str
    version: int

    @property
    def rank(self) -> int:
        return STATUSES.index(self.status)


def order_trace(orders_per_hour: int, minutes: float, *, seed: int = 14) -> list[Status]:
    """Orders created evenly (with jitter) over ``minutes``, each with its statuses."""
    rng = random.Random(seed)
    count = round(orders_per_hour * minutes / 60)
    trace = []
    for order in range(count):
        created = (order + rng.random()) * minutes * 60 / max(1, count)
        for version, (status, (low, high)) in enumerate(
            zip(STATUSES, _STATUS_MINUTES, strict=True)
        ):
            at = created + rng.uniform(low, high) * 60
            trace.append(Status(at, order, status, version + 1))
    trace.sort(key=lambda s: s.at_s)
    return trace


def customer(order: int) -> str:
    return f"7995{order:07d}"


def status_event(step: Status, occurred_at: dt.datetime, run: str) -> dict[str, Any]:
    """The shop's event for one status (a courier delivery: no promised time)."""
    return {
        "event_id": f"{run}-o{step.order}-{step.status}",
        "event_type": "order.status_changed",
        "occurred_at": occurred_at.isoformat(),
        "recipient": {"user_id": customer(step.order)},
        "order": {
            "id": f"R-{step.order}",
            "number": str(40_000 + step.order),
            "status": step.status,
            "version": step.version,
            "total": {"amount": "2490.00", "currency": "RUB"},
            "items_count": 3,
            "delivery": {"method": "courier"},
        },
    }


def campaign_event(index: int, occurred_at: dt.datetime, zone: str, run: str) -> dict[str, Any]:
    """One customer's bonus accrual of a campaign: the same amount, each their own balance."""
    return {
        "event_id": f"{run}-bonus-{index}",
        "event_type": "bonus.accrued",
        "occurred_at": occurred_at.isoformat(),
        "timezone": zone,
        "recipient": {"user_id": f"7996{index:07d}"},
        "bonus": {"amount": 300, "balance": 300 + (index * 37) % 2000, "reason": "campaign"},
    }
