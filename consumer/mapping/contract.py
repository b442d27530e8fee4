"""Which variable paths each event type has, so templates can be checked before use.

Paths come from the pydantic models of contract v1, plus fields a mapping file
declares under ``event_types`` (for new event types, or extra fields the shop
sends with a known type). A list is written ``devices[]`` for any index.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator

from pydantic import BaseModel

from consumer.events import EVENT_MODELS, BaseEvent

# Liquid's own properties, valid after any path: {{ order.items.size }}
_PROPERTIES = frozenset({"size", "first", "last"})

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


def _models_in(annotation: object) -> Iterator[tuple[type[BaseModel], bool]]:
    """(model, is_list) for each pydantic model inside a field's annotation."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, False
    elif origin is list:
        for inner, _ in _models_in(typing.get_args(annotation)[0]):
            yield inner, True
    elif origin is not None:
        for arg in typing.get_args(annotation):
            yield from _models_in(arg)


def model_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        for inner, is_list in _models_in(field.annotation):
            if is_list:
                yield f"{path}[]"
                yield from model_paths(inner, f"{path}[].")
            else:
                yield from model_paths(inner, f"{path}.")


def with_parents(paths: Iterable[str]) -> frozenset[str]:
    found: set[str] = set()
    for path in paths:
        parts = path.split(".")
        found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return frozenset(found)


def builtin_paths() -> dict[str, frozenset[str]]:
    return {name: with_parents(model_paths(model)) for name, model in EVENT_MODELS.items()}


def common_paths() -> frozenset[str]:
    return with_parents(model_paths(BaseEvent))


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


def path_known(path: str, known: frozenset[str]) -> bool:
    if path in known:
        return True
    head, _, last = path.rpartition(".")
    return last in _PROPERTIES and head in known


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
