"""The Liquid environment push templates compile in, and strict rendering.

Strict means a missing value is an error, never an empty string: the undefined
type raises on output and in filters, but can still be tested with ``{% if %}``
and replaced with ``default`` (so "№{{ order.number | default: order.id }}" works).
Fields that are present but null, or empty text, count as missing. Output is
plain text (no HTML escaping) and resource limits stop a runaway template; a
huge value shown in a title or summary is shortened instead (``shortened``).
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

from consumer.mapping.compiled import Fallback, compile_template
from consumer.mapping.filters import (
    BUILTIN_FILTERS,
    OUR_FILTERS,
    RENDER_INFO,
    RenderInfo,
)
from consumer.mapping.textcache import TextCache, read_paths


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
    """Drop null and empty-text fields at any depth, so a template sees them as missing.

    An empty text is no value for a push ("Заказ № оформлен"): ``{% if
    order.number %}`` must be false for it, and Liquid calls "" true.
    """
    kind = type(value)  # exact types: this runs for every event
    if kind is dict:
        return _dict_without_nulls(value)
    if kind is list:
        return _list_without_nulls(value)
    return value


def _dict_without_nulls(data: dict[Any, Any]) -> dict[Any, Any]:
    # Scalars are copied inline: a call per leaf would cost more than the walk.
    out: dict[Any, Any] = {}
    for key, value in data.items():
        kind = type(value)
        if kind is dict:
            out[key] = _dict_without_nulls(value)
        elif kind is list:
            out[key] = _list_without_nulls(value)
        elif value is not None and (kind is not str or value):
            out[key] = value
    return out


def _list_without_nulls(items: list[Any]) -> list[Any]:
    return [without_nulls(item) for item in items if item is not None and item != ""]


# The texts a reader sees; the others (deeplink, collapse key, provider extras)
# must be exact or fail.
DISPLAY_KEYS = ("title", "summary")
# Longer than any push line: a value cut here still fills the title or summary,
# which are then cut to their limits with an ellipsis.
LONG_VALUE_CHARS = 1_000


def shortened(value: Any) -> Any:
    """The context with every text longer than ``LONG_VALUE_CHARS`` cut, at any depth."""
    kind = type(value)
    if kind is str:
        return value if len(value) <= LONG_VALUE_CHARS else value[:LONG_VALUE_CHARS] + "…"
    if kind is dict:
        return {key: shortened(item) for key, item in value.items()}
    if kind is list:
        return [shortened(item) for item in value]
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


# Our date filters read only the zone and time the render context carries.
_CONTEXT_FILTERS = frozenset(
    func for func, _spec in OUR_FILTERS.values() if getattr(func, "with_context", False)
)

SEPARATOR = "\x1f"  # ASCII unit separator: never typed in push text


class PartFailed(Exception):
    def __init__(self, key: str, cause: LiquidError) -> None:
        super().__init__(key)
        self.key = key
        self.cause = cause


class TextPlan:
    """All templates of one rule rendered in a single Liquid pass.

    Liquid's per-render set-up costs more than most push templates, so a rule's
    parts are joined with a separator, compiled once and rendered once; parts
    with no Liquid markup are constants. When something fails, the parts are
    rendered one by one to name the part that failed. Templates that compile
    to plain functions (``compiled``) skip Liquid; for the others, texts already
    rendered for the same values come from a bounded cache (``textcache``).
    """

    def __init__(
        self,
        env: Environment,
        parts: Mapping[str, tuple[str, BoundTemplate]],
        *,
        cache_entries: int = 4096,
    ) -> None:
        self.constants = {k: src.strip() for k, (src, _) in parts.items() if not _dynamic(src)}
        dynamic = {k: part for k, part in parts.items() if _dynamic(part[0])}
        self.keys = tuple(dynamic)
        self.singles = {k: compiled for k, (_, compiled) in dynamic.items()}
        source = SEPARATOR.join(src for src, _ in dynamic.values())
        self.combined = env.from_string(source) if dynamic else None
        functions = {k: compile_template(t, _CONTEXT_FILTERS) for k, t in self.singles.items()}
        self.functions = (
            {k: f for k, f in functions.items() if f is not None}
            if all(f is not None for f in functions.values())
            else None
        )
        # Compiled functions render faster than a cache key is built; Liquid does not.
        uncompiled = self.functions is None and cache_entries
        paths = read_paths(self.singles.values()) if uncompiled else None
        self.cache = TextCache(paths, cache_entries) if paths is not None else None

    def render(self, context: Mapping[str, Any]) -> dict[str, str]:
        if self.combined is None:
            return dict(self.constants)
        key = self.cache.key(context) if self.cache is not None else None
        if key is not None and self.cache is not None:
            if (cached := self.cache.get(key)) is not None:
                return cached
            texts = self._render(context)
            self.cache.put(key, texts)
            return texts
        return self._render(context)

    def _render(self, context: Mapping[str, Any]) -> dict[str, str]:
        texts = dict(self.constants)
        if self.functions is not None:
            try:
                texts.update((k, f(context).strip()) for k, f in self.functions.items())
                return texts
            except Fallback:
                texts = dict(self.constants)  # Liquid renders it, or names the error
        assert self.combined is not None
        try:
            pieces = self.combined.render(context).split(SEPARATOR)
        except LiquidError:
            pieces = []
        if len(pieces) != len(self.keys):
            return texts | self._one_by_one(context)
        texts.update(zip(self.keys, (p.strip() for p in pieces), strict=True))
        return texts

    def _one_by_one(self, context: Mapping[str, Any]) -> dict[str, str]:
        texts = {}
        for key, compiled in self.singles.items():
            try:
                texts[key] = render_text(compiled, context)
            except LiquidError as exc:
                raise PartFailed(key, exc) from None
        return texts

    def render_shortened(
        self, context: Mapping[str, Any], short: Mapping[str, Any]
    ) -> dict[str, str]:
        """Title and summary from ``short`` values, the exact parts from the real ones."""
        texts = dict(self.constants)
        for key, compiled in self.singles.items():
            try:
                texts[key] = render_text(compiled, short if key in DISPLAY_KEYS else context)
            except LiquidError as exc:
                raise PartFailed(key, exc) from None
        return texts


def _dynamic(source: str) -> bool:
    return "{{" in source or "{%" in source
