"""The Liquid environment push templates compile in, and strict rendering.

Strict means a missing value is an error, never an empty string: the undefined
type raises on output and in filters, but can still be tested with ``{% if %}``
and replaced with ``default`` (so "№{{ order.number | default: order.id }}" works).
Fields that are present but null count as missing. Output is plain text (no HTML
escaping) and resource limits stop a runaway template.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from liquid import Environment
from liquid.exceptions import LiquidError, UndefinedError
from liquid.template import BoundTemplate
from liquid.undefined import FalsyStrictUndefined

from consumer.mapping.filters import (
    BUILTIN_FILTERS,
    OUR_FILTERS,
    RENDER_INFO,
    RenderInfo,
)


class MissingValue(FalsyStrictUndefined):
    """Undefined that fails when shown, but is falsy in ``if`` and yields to ``default``."""

    force_liquid_default = True


class PushEnvironment(Environment):
    context_depth_limit = 10
    loop_iteration_limit = 1_000
    local_namespace_limit = 10_000
    output_stream_limit = 20_000


def build_environment() -> PushEnvironment:
    env = PushEnvironment(undefined=MissingValue, strict_filters=True, autoescape=False)
    builtin = {name: env.filters[name] for name in BUILTIN_FILTERS}
    env.filters.clear()
    env.filters.update(builtin)
    for name, (func, _spec) in OUR_FILTERS.items():
        env.filters[name] = func
    return env


def without_nulls(value: Any) -> Any:
    """Drop null fields at any depth, so a template sees them as missing."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value if v is not None]
    return value


def render_context(
    data: Mapping[str, Any], tz: ZoneInfo, now: dt.datetime | None
) -> dict[str, Any]:
    moment = now if now is not None else dt.datetime.now(dt.UTC)
    return {**data, RENDER_INFO: RenderInfo(tz=tz, now=moment)}


def render_text(template: BoundTemplate, context: Mapping[str, Any]) -> str:
    """Render one template; ``LiquidError`` (``UndefinedError``: a value is missing)."""
    return template.render(context).strip()


def explain(exc: LiquidError) -> str:
    """A one-line, plain-words reason for a failed render."""
    if isinstance(exc, UndefinedError):
        missing = str(exc.message).removesuffix(" is undefined").strip("'")
        return f"the event has no value for `{missing}`"
    message = str(exc.message or type(exc).__name__)
    return message.splitlines()[0]
