"""What a rule's text costs in provider capacity.

IMSHOP sends one message per request to up to M users, N requests per window.
Pushes with byte-identical title, summary and deeplink share a request, so a
rule whose text uses only few-valued fields (``contract.SHARED_PATHS``) or no
event fields at all costs little; one that shows an order number, an amount or
a date needs a request of its own for each push.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from consumer.mapping.contract import is_shared, normalize
from consumer.settings import ImshopSettings

if TYPE_CHECKING:
    from consumer.mapping.rules import Rule


def personal_paths(rule: Rule) -> list[str]:
    """Event fields that make the request-wide text differ between recipients."""
    found: dict[str, None] = {}
    for template in (rule.title, rule.summary, rule.deeplink):
        if template is None:
            continue
        analysis = template.compiled.analyze(include_partials=False)
        for variables in analysis.globals.values():
            for variable in variables:
                path = normalize(list(variable.segments))
                if not is_shared(path):
                    found[path] = None
    return list(found)


def cost_lines(rules: Iterable[Rule], imshop: ImshopSettings) -> list[str]:
    n, w, m = imshop.rate_limit_requests, imshop.rate_limit_window_s, imshop.max_ids_per_request
    lines = []
    for rule in rules:
        personal = personal_paths(rule)
        if personal:
            cost = (
                f"personal text ({', '.join(personal)}): 1 push per request, "
                f"at most {n} pushes per {w:g} s"
            )
        else:
            cost = (
                f"shared text: up to {m} recipients per request, up to {n * m} pushes per {w:g} s"
            )
        lines.append(f"{rule.where}: {rule.id} — {cost}")
    return lines
