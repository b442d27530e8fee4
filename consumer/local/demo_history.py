"""The demo's last word: one customer's notification history, fetched as IMSHOP does.

The customer is the one with the most order events in the run; the history
comes over HTTP from the service's history API, with the run's token, and is
printed newest first: one item per order, showing its latest status.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable
from typing import Any, TextIO

import httpx

from consumer.local.simulators.imshop import mask


def busiest_customer(values: Iterable[bytes]) -> str | None:
    """The user id with the most order-status events among these record values."""
    counts: Counter[str] = Counter()
    for value in values:
        try:
            event = json.loads(value)
        except ValueError:
            continue  # the demo's malformed records
        user = (event.get("recipient") or {}).get("user_id")
        if event.get("event_type") == "order.status_changed" and isinstance(user, str):
            counts[user] += 1
    return counts.most_common(1)[0][0] if counts else None


async def fetch_history(port: int, token: str, user_id: str) -> list[dict[str, Any]]:
    """``POST /imshop/history`` as IMSHOP's server sends it; the items, newest first."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"http://127.0.0.1:{port}/imshop/history",
            json={"userId": user_id},
            headers={"Authorization": f"Bearer {token}"},
        )
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["history"]
    return items


def print_history(user_id: str, items: list[dict[str, Any]], out: TextIO) -> None:
    print(
        f"\nNotification history of customer {mask(user_id)}, as IMSHOP's app gets it\n"
        f"  (POST /imshop/history, {len(items)} items, newest first; one per order, "
        "showing its latest status):",
        file=out,
    )
    for item in items:
        updated, created = (_clock(item[key]) for key in ("updatedOn", "createdOn"))
        since = f"   (first news {created})" if created != updated else ""
        print(f"  {updated}  {item['title']}{since}", file=out)
        if text := item.get("text"):
            print(f"            {text}", file=out)
        if link := item.get("deepLink"):
            print(f"            -> {link}", file=out)
    out.flush()


def _clock(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")
