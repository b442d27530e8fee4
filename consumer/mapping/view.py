"""The event as templates and conditions see it, read from the model on demand.

A rule reads a handful of fields; dumping the whole event to dicts and dropping
its nulls (``without_nulls(event.model_dump())``) for every event cost more than
the reading. ``EventView`` answers the same questions from the validated model:
a path is followed through the model's fields, its extra fields and the plain
dicts inside them; a null or an empty text is missing, as in the dumped form;
a value that is a group or a list is handed over in its dumped form. So every
value a condition tests, a filter takes or a template shows is the value the
dumped context holds at that path, and the functions compiled from templates
(``compiled``) run on either. Liquid itself (the fallback) gets the dumped
context (``as_context``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from consumer.mapping.filters import RENDER_INFO, RenderInfo

ABSENT: Any = ("absent",)  # what a path gives when the event has no value there
NOT_A_GROUP: Any = ("not a group",)  # a step into a value that has no fields


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


class EventView(Mapping[str, Any]):
    """The top level of ``without_nulls(event.model_dump())`` (and ``RENDER_INFO``
    when rendering), without building it."""

    __slots__ = ("_context", "event", "info")

    def __init__(self, event: BaseModel, info: RenderInfo | None = None) -> None:
        self.event = event
        self.info = info
        self._context: dict[str, Any] | None = None

    def raw(self, key: str) -> Any:
        """The value at ``key`` as the model holds it (a group is still a model)."""
        if key == RENDER_INFO:
            return self.info if self.info is not None else ABSENT
        return _member(self.event, key)

    def __getitem__(self, key: str) -> Any:
        value = self.raw(key)
        if value is ABSENT:
            raise KeyError(key)
        return plain(value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.raw(key) is not ABSENT

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_context())

    def __len__(self) -> int:
        return len(self.as_context())

    def as_context(self) -> dict[str, Any]:
        """The dumped context itself (with ``RENDER_INFO`` when rendering), made once."""
        if self._context is None:
            context = without_nulls(self.event.model_dump(mode="python"))
            if self.info is not None:
                context[RENDER_INFO] = self.info
            self._context = context
        return self._context


# The field names of each model class (pydantic's ``model_fields`` is a descriptor
# that costs more than the lookup it serves).
_FIELDS: dict[type, frozenset[str]] = {}


def _fields(kind: type) -> frozenset[str] | None:
    """The model class's field names; None for anything that is not a model."""
    fields = _FIELDS.get(kind)
    if fields is None and issubclass(kind, BaseModel):
        fields = _FIELDS[kind] = frozenset(kind.__pydantic_fields__)
    return fields


def _member(model: BaseModel, key: str) -> Any:
    fields = _fields(type(model))
    return _member_of(model, key, fields or frozenset())


def _member_of(model: Any, key: str, fields: frozenset[str]) -> Any:
    if key in fields:
        value = getattr(model, key)
    else:  # an extra field: plain JSON, its nulls dropped as the dumped form drops them
        extra = model.__pydantic_extra__
        value = without_nulls(extra.get(key, ABSENT)) if extra else ABSENT
    if value is None or (type(value) is str and not value):
        return ABSENT
    return value


def step(value: Any, key: str) -> Any:
    """One step along a path: the member ``key`` of a group (``ABSENT`` if it has
    none), or ``NOT_A_GROUP`` when ``value`` has no members. A dict is one of the
    dumped form (nulls already dropped)."""
    kind = type(value)
    if kind is dict:
        return value.get(key, ABSENT)
    if kind is EventView:
        return value.raw(key)
    fields = _fields(kind)
    if fields is None:
        return NOT_A_GROUP
    return _member_of(value, key, fields)


def follow(value: Any, path: tuple[str, ...]) -> Any:
    """``step`` along the whole path, then ``plain``: one call per path, not per step
    (conditions and templates read a few paths per event)."""
    for key in path:
        kind = type(value)
        if kind is dict:
            value = value.get(key, ABSENT)
            if value is ABSENT:
                return ABSENT
            continue
        if kind is EventView:
            value = value.raw(key)
            if value is ABSENT:
                return ABSENT
            continue
        fields = _FIELDS.get(kind)
        if fields is None and (fields := _fields(kind)) is None:
            return NOT_A_GROUP
        value = _member_of(value, key, fields)
        if value is ABSENT:
            return ABSENT
    return plain(value)


_SCALARS = frozenset({str, int, Decimal, dt.datetime, dt.date, bool, float})


def plain(value: Any) -> Any:
    """The value as the dumped context holds it: a group or a list of groups of the
    model dumped, nulls dropped (dicts and lists of the dumped form stay as they are)."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, BaseModel):
        return without_nulls(value.model_dump(mode="python"))
    if type(value) is list and any(isinstance(item, BaseModel) for item in value):
        return without_nulls([plain(item) for item in value])
    return value


def plain_context(context: Mapping[str, Any]) -> Mapping[str, Any]:
    """What Liquid renders with: the dumped context for a view, else the context itself."""
    return context.as_context() if type(context) is EventView else context
