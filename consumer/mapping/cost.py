"""What a rule's text costs in provider capacity.

IMSHOP sends one message per request to up to M users, N requests per window.
Pushes with byte-identical title, summary and deeplink share a request. A rule
whose text uses only few-valued fields (``contract.SHARED_PATHS``) or no event
fields is *shared*: one request reaches up to M customers. One that shows values
many customers have in common (an amount, a date: ``contract.GROUPED_PATHS``) is
*grouped*: pushes with equal values share a request. One that shows an order
number, a balance or anything else about one customer is *personal*: each push
needs a request of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from consumer.mapping.contract import is_grouped, is_shared, normalize
from consumer.mapping.rules import Rule
from consumer.settings import ImshopSettings


def _paths(rule: Rule) -> list[str]:
    """Every event field the request-wide text (title, summary, deeplink) reads."""
    found: dict[str, None] = {}
    for template in (rule.title, rule.summary, rule.deeplink):
        if template is None:
            continue
        analysis = template.compiled.analyze(include_partials=False)
        for variables in analysis.globals.values():
            for variable in variables:
                found[normalize(list(variable.segments))] = None
    return list(found)


def personal_paths(rule: Rule) -> list[str]:
    """Event fields that make the text differ from one customer to the next."""
    return [p for p in _paths(rule) if not is_shared(p) and not is_grouped(p)]


def grouped_paths(rule: Rule) -> list[str]:
    """Event fields whose equal values let pushes share a request."""
    return [p for p in _paths(rule) if is_grouped(p)]


def cost_lines(rules: Iterable[Rule], imshop: ImshopSettings) -> list[str]:
    n, w, m = imshop.rate_limit_requests, imshop.rate_limit_window_s, imshop.max_ids_per_request
    lines = []
    for rule in rules:
        personal, grouped = personal_paths(rule), grouped_paths(rule)
        if personal:
            cost = (
                f"personal text ({', '.join(personal)}): 1 push per request, "
                f"at most {n} pushes per {w:g} s"
            )
        elif grouped:
            cost = (
                f"grouped text ({', '.join(grouped)}): pushes with equal values share a "
                f"request (up to {m} recipients); each distinct value costs a request"
            )
        else:
            cost = (
                f"shared text: up to {m} recipients per request, up to {n * m} pushes per {w:g} s"
            )
        lines.append(f"{rule.where}: {rule.id} — {cost}")
    return lines
