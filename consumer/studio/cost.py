"""What a rule's text costs in provider capacity, and whether a send of a given size fits.

IMSHOP sends one message per request to up to M users, N requests per window.
Pushes with byte-identical title, summary and deeplink share a request. A rule
whose text shows only few-valued fields (``contract.SHARED_PATHS``) or no event
fields is *shared*: one request reaches up to M customers. One that shows values
many customers have in common (an amount, a date: ``contract.GROUPED_PATHS``) is
*grouped*: pushes with equal values share a request. One that shows an order
number, a balance or anything else about one customer is *personal*: each push
needs a request of its own. A field that is only tested (``{% if
bonus.order_id %}``) picks one of a few texts and makes nothing personal.

For a volume ("5000 recipients, 37 distinct amounts") the report counts the
requests, the time they take with the whole budget (and, for marketing, with
only its reserved share, when order news keeps the budget busy), and whether
the last one still goes out within the rule's ttl.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from liquid.template import BoundTemplate

from consumer.mapping import usage
from consumer.mapping.contract import is_grouped
from consumer.mapping.parse import ttl_text
from consumer.mapping.rules import Rule
from consumer.push import PushClass
from consumer.settings import ImshopSettings


@dataclass(frozen=True, slots=True)
class Volume:
    """A send to think about: how many recipients, and how many distinct values among them."""

    recipients: int
    distinct: int | None = None  # grouped texts: how many different amounts, dates...


def _texts(rule: Rule) -> list[BoundTemplate]:
    """The request-wide text: title, summary, deeplink."""
    return [t.compiled for t in (rule.title, rule.summary, rule.deeplink) if t is not None]


def personal_paths(rule: Rule) -> list[str]:
    """Event fields that make the text differ from one customer to the next."""
    return usage.personal_paths(_texts(rule))


def grouped_paths(rule: Rule) -> list[str]:
    """Event fields whose equal values let pushes share a request."""
    return [p for p in usage.shown_paths(_texts(rule)) if is_grouped(p)]


def tier_of(rule: Rule, imshop: ImshopSettings) -> tuple[str, str]:
    """The rule's cost tier (personal, grouped, shared) and what it costs, in words."""
    n, w, m = imshop.rate_limit_requests, imshop.rate_limit_window_s, imshop.max_ids_per_request
    personal, grouped = personal_paths(rule), grouped_paths(rule)
    if personal:
        return "personal", (
            f"personal text ({', '.join(personal)}): 1 push per request, "
            f"at most {n} pushes per {w:g} s"
        )
    if grouped:
        return "grouped", (
            f"grouped text ({', '.join(grouped)}): pushes with equal values share a "
            f"request (up to {m} recipients); each distinct value costs a request"
        )
    return "shared", (
        f"shared text: up to {m} recipients per request, up to {n * m} pushes per {w:g} s"
    )


def cost_line(rule: Rule, imshop: ImshopSettings) -> str:
    return f"{rule.where}: {rule.id} — {tier_of(rule, imshop)[1]}"


def cost_lines(
    rules: Iterable[Rule],
    imshop: ImshopSettings,
    *,
    volume: Volume | None = None,
    marketing_share: float = 0.2,
) -> list[str]:
    """Per rule: what its text costs; with a shared variant, when it is sent and what it
    costs; its quiet hours. With ``volume``, what a send of that size takes."""
    lines = []
    for rule in rules:
        tier, cost = tier_of(rule, imshop)
        lines.append(f"{rule.where}: {rule.id} — {cost}")
        if volume is not None:
            lines.append(f"    {volume_line(rule, tier, volume, imshop, marketing_share)}")
        shared = rule.as_shared()
        if shared is not None and rule.shared is not None:
            shared_tier, shared_cost = tier_of(shared, imshop)
            lines.append(
                f"    shared text ({rule.file}:{rule.shared.line}), sent instead when the "
                f"personal push would go out more than {ttl_text(rule.personal_within_s)} "
                f"after the event: {shared_cost.removeprefix('shared text: ')}"
            )
            if volume is not None:
                figures = volume_line(shared, shared_tier, volume, imshop, marketing_share)
                lines.append(f"      all as the shared text: {figures}")
        if rule.quiet_hours is not None:
            lines.append(
                f"    quiet hours {rule.quiet_hours.text} in the recipient's time zone: "
                "pushes wait until they end"
            )
    return lines


def requests_needed(tier: str, volume: Volume, per_request: int) -> tuple[int, int]:
    """The fewest and the most requests a send of this volume can take."""
    recipients = volume.recipients
    if tier == "personal":
        return recipients, recipients
    if tier == "shared":
        distinct = 1
    elif volume.distinct is None:  # unknown: from all equal to all different
        return math.ceil(recipients / per_request), recipients
    else:
        distinct = min(volume.distinct, recipients)
    fewest = max(distinct, math.ceil(recipients / per_request))
    # the most: every value but one held by a single recipient, the rest by the last
    most = (distinct - 1) + math.ceil((recipients - distinct + 1) / per_request)
    return fewest, most


def volume_line(
    rule: Rule, tier: str, volume: Volume, imshop: ImshopSettings, marketing_share: float
) -> str:
    n, w, m = imshop.rate_limit_requests, imshop.rate_limit_window_s, imshop.max_ids_per_request
    fewest, most = requests_needed(tier, volume, m)
    counted = f"{fewest}" if fewest == most else f"{fewest}–{most}"
    what = f"{volume.recipients} recipients"
    if tier == "grouped":
        what += (
            f", {volume.distinct} distinct values"
            if volume.distinct is not None
            else " (give --distinct: how many different values, e.g. amounts)"
        )
    parts = [f"{what}: {counted} requests"]
    parts.append(_timing(most, n, w, rule.ttl_s, "with the whole budget"))
    if rule.push_class is PushClass.MARKETING and marketing_share < 1:
        share = n * marketing_share
        label = f"at the marketing share ({marketing_share:.0%}) while order news is busy"
        parts.append(
            _timing(most, share, w, rule.ttl_s, label)
            if share > 0
            else f"{label}: no requests are reserved for marketing"
        )
    return "; ".join(parts)


def _timing(requests: int, per_window: float, window_s: float, ttl_s: float, label: str) -> str:
    """How long the last request waits at this rate, and whether that is within the ttl."""
    last_starts = math.floor((requests - 1) / per_window) * window_s
    took = f"{label}: the last request goes out {_after(last_starts)}"
    if last_starts <= ttl_s:
        return f"{took}, within its ttl {ttl_text(ttl_s)}"
    in_time = (math.floor(ttl_s / window_s) + 1) * per_window
    return (
        f"{took}, past its ttl {ttl_text(ttl_s)}: only about {math.floor(in_time)} requests "
        "go out in time and the rest expire; a shared or grouped text needs fewer"
    )


def _after(seconds: float) -> str:
    if seconds <= 0:
        return "at once"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"after about {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"after about {hours} h {minutes} min" if minutes else f"after about {hours} h"
    days, hours = divmod(hours, 24)
    return f"after about {days} d {hours} h" if hours else f"after about {days} d"
