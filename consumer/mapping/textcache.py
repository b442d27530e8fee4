"""Rendered texts remembered by the values a rule's templates read.

A rule's output depends only on the event values its templates name, the
recipient's time zone and today's date there (date filters), so the texts of
a campaign (thousands of events, one text) are rendered once. Values are keyed
by type and ``repr``, not equality: ``Decimal("1.50")`` equals ``Decimal("1.5")``
yet prints differently. Only successful renders are kept; a failing event fails
the same way every time. The memory is bounded (least recently used goes).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from liquid.template import BoundTemplate

from consumer.mapping.filters import RENDER_INFO, RenderInfo

Path = tuple[str, ...]
_ABSENT = ("absent",)


def read_paths(templates: Iterable[BoundTemplate]) -> tuple[Path, ...] | None:
    """The context paths the templates read (a computed index reads the whole subtree)."""
    paths: set[Path] = set()
    try:
        for template in templates:
            for variables in template.analyze(include_partials=False).globals.values():
                for variable in variables:
                    path: list[str] = []
                    for segment in variable.segments:
                        if not isinstance(segment, str):
                            break
                        path.append(segment)
                    if not path or path[0] == RENDER_INFO:
                        return None  # reads the render time itself: nothing to share
                    paths.add(tuple(path))
    except Exception:  # an analysis the library cannot do: render every time
        return None
    return tuple(sorted(paths))


def _frozen(value: Any) -> Hashable:
    kind = type(value)
    if kind is dict:
        return ("dict", *((k, _frozen(v)) for k, v in value.items()))
    if kind is list:
        return ("list", *(_frozen(v) for v in value))
    if kind is str:
        return str(value)
    return (kind, repr(value))


def _value_at(context: Mapping[str, Any], path: Path) -> Hashable:
    value: Any = context
    for part in path:
        if type(value) is not dict or part not in value:
            return _ABSENT
        value = value[part]
    return _frozen(value)


class TextCache:
    def __init__(self, paths: tuple[Path, ...], max_entries: int) -> None:
        self._paths = paths
        self._max = max_entries
        self._texts: OrderedDict[Hashable, dict[str, str]] = OrderedDict()

    def key(self, context: Mapping[str, Any]) -> Hashable | None:
        info = context.get(RENDER_INFO)
        if not isinstance(info, RenderInfo):
            return None
        values = tuple(_value_at(context, path) for path in self._paths)
        return (info.tz.key, info.today, values)

    def get(self, key: Hashable) -> dict[str, str] | None:
        texts = self._texts.get(key)
        if texts is None:
            return None
        self._texts.move_to_end(key)
        return dict(texts)

    def put(self, key: Hashable, texts: Mapping[str, str]) -> None:
        self._texts[key] = dict(texts)
        if len(self._texts) > self._max:
            self._texts.popitem(last=False)
