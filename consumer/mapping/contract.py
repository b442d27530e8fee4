"""What each event type holds, so templates can be checked before use.

For every path (``order.total.amount``) the contract knows its kind (text, a
number, a sum of money, a date, a time...) and whether every event of the type
has it. Paths come from the pydantic models of contract v1, plus fields a
mapping file declares under ``event_types`` (for new event types, or extra
fields the shop sends with a known type), and the values a field may take
(``values: {order.status: [created, ...]}``). A list is written ``devices[]``
for any index.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from consumer.events import EVENT_MODELS, BaseEvent, Money

# What a field holds, as far as filters care. "any": declared by a mapping
# without a kind, so nothing is assumed.
Kind = Literal["text", "number", "money", "date", "time", "date_or_time", "object", "list", "any"]

# Liquid's own properties, valid after any path: {{ order.items.size }}
_PROPERTIES = frozenset({"size", "first", "last"})


@dataclass(frozen=True, slots=True)
class FieldInfo:
    kind: Kind
    always: bool  # every event of the type has it (required, or filled by a default)


@dataclass(frozen=True)
class EventFields:
    """One event type's fields (path -> info) and the values declared for some of them."""

    name: str
    fields: Mapping[str, FieldInfo]
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    values_at: Mapping[str, str] = field(default_factory=dict)  # path -> "file:line"

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.info(path) is not None

    def info(self, path: str) -> FieldInfo | None:
        found = self.fields.get(path)
        if found is not None:
            return found
        head, _, last = path.rpartition(".")
        parent = self.fields.get(head) if last in _PROPERTIES else None
        if parent is None:
            return None
        return FieldInfo("number" if last == "size" else "any", parent.always)

    def paths(self) -> list[str]:
        return list(self.fields)


Contract = Mapping[str, EventFields]


def _optional(annotation: object) -> tuple[object, bool]:
    """The annotation without ``| None``, and whether None was allowed."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _optional(typing.get_args(annotation)[0])
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = args[0] if len(args) == 1 else typing.Union[tuple(args)]  # noqa: UP007
        return inner, len(args) < len(typing.get_args(annotation))
    return annotation, False


def _kind(annotation: object) -> Kind:
    annotation, _ = _optional(annotation)
    origin = typing.get_origin(annotation)
    if origin is list:
        return "list"
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        kinds = {_kind(a) for a in typing.get_args(annotation)}
        return "date_or_time" if kinds == {"date", "time"} else "any"
    if origin is Literal or annotation is str:
        return "text"
    if isinstance(annotation, type):
        if issubclass(annotation, Money):
            return "money"
        if issubclass(annotation, BaseModel):
            return "object"
        if issubclass(annotation, bool):
            return "any"
        if issubclass(annotation, int | float | Decimal):
            return "number"
        if issubclass(annotation, dt.datetime):
            return "time"
        if issubclass(annotation, dt.date):
            return "date"
    return "time" if "Datetime" in getattr(annotation, "__name__", "") else "any"


def _models_in(annotation: object) -> Iterator[tuple[type[BaseModel], bool]]:
    """(model, is_list) for each pydantic model inside a field's annotation."""
    annotation, _ = _optional(annotation)
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, False
    elif origin is list:
        for inner, _ in _models_in(typing.get_args(annotation)[0]):
            yield inner, True
    elif origin is not None:
        for arg in typing.get_args(annotation):
            yield from _models_in(arg)


def model_fields(
    model: type[BaseModel], prefix: str = "", always: bool = True
) -> Iterator[tuple[str, FieldInfo]]:
    for name, spec in model.model_fields.items():
        path = f"{prefix}{name}"
        present = always and (
            spec.is_required() or spec.default is not None or spec.default_factory is not None
        )
        yield path, FieldInfo(_kind(spec.annotation), present)
        for inner, is_list in _models_in(spec.annotation):
            if is_list:
                yield f"{path}[]", FieldInfo("object", False)
                yield from model_fields(inner, f"{path}[].", False)
            else:
                yield from model_fields(inner, f"{path}.", present)


def builtin_contract() -> dict[str, EventFields]:
    return {
        name: EventFields(name, dict(model_fields(model))) for name, model in EVENT_MODELS.items()
    }


def common_fields() -> dict[str, FieldInfo]:
    return dict(model_fields(BaseEvent))


def declared_fields(paths: Iterable[str], *, always: bool) -> dict[str, FieldInfo]:
    """Declared paths (of any kind) and their parents (groups of fields)."""
    found: dict[str, FieldInfo] = {}
    for path in paths:
        parts = path.split(".")
        for depth in range(1, len(parts)):
            found.setdefault(".".join(parts[:depth]), FieldInfo("object", always))
        found[path] = FieldInfo("any", always)
    return found


def normalize(segments: list[object]) -> str:
    """A Liquid variable's segments as a contract path: indexes become ``[]``."""
    parts: list[str] = []
    for segment in segments:
        if isinstance(segment, str) and not parts:
            parts.append(segment)
        elif isinstance(segment, str):
            parts.append(f".{segment}")
        else:
            parts.append("[]")
    return "".join(parts)


# Paths whose value is one of a few codes: text that uses only these is the same
# for many recipients, so their pushes can share a provider request.
SHARED_PATHS = frozenset(
    {
        "event_type",
        "locale",
        "timezone",
        "order.status",
        "order.previous_status",
        "order.delivery.method",
        "bonus.reason",
    }
)

# Paths whose values many recipients have in common (an amount, a date, a pickup
# point): pushes share a request when these values are equal.
GROUPED_PATHS = frozenset(
    {
        "bonus.amount",
        "bonus.expires_at",
        "order.items_count",
        "order.delivery.date",
        "order.delivery.pickup_point",
    }
)


def is_shared(path: str) -> bool:
    return path in SHARED_PATHS


def is_grouped(path: str) -> bool:
    return path in GROUPED_PATHS
