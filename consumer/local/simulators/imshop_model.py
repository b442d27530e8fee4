"""What the IMSHOP simulator enforces, without HTTP: the payload rules, the
sliding-window limit, the injected faults, and the record of accepted pushes.

Validation messages follow hapi/Joi, as IMSHOP's documented 400 does:
``child "userIds" fails because ["userIds" must be an array]``.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

FAULT_KINDS = (
    "unavailable",  # 200 {"success": false, "error": "Integration is unavailable"}
    "http_500",
    "http_502",
    "http_503",
    "timeout",  # hang (longer than the client waits), not processed
    "lost_answer",  # processed and recorded, then hang: the client cannot know
    "reset",  # connection closed without an answer
    "rate_limited",  # 429 with Retry-After
    "refused",  # 400 with a Joi-style message: a permanent refusal of a valid request
)


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    api_key: str | None = None  # None: any or no Authorization header is accepted
    rate_limit: int = 10
    window_s: float = 60.0
    max_ids: int = 1000
    path: str = "/push"
    seed: int | None = None


@dataclass(slots=True)
class Faults:
    """Injected misbehaviour: ``script`` first (one kind per request), then ``error_rate``."""

    script: list[str] = field(default_factory=list)
    error_rate: float = 0.0
    error_kind: str = "unavailable"
    latency_s: float = 0.0
    hang_s: float = 30.0
    retry_after_s: int = 1

    @classmethod
    def from_json(cls, data: Any) -> Faults:
        if not isinstance(data, dict):
            raise ValueError("faults must be a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        for name, value in data.items():
            if problem := _fault_setting_problem(name, value):
                raise ValueError(f"fault setting {name!r}: {problem}")
        faults = cls(**data)
        for kind in [*faults.script, faults.error_kind]:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        return faults

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _fault_setting_problem(name: str, value: Any) -> str | None:
    """What is wrong with one fault setting's JSON value, or None (kinds are checked later)."""
    if name == "script":
        if isinstance(value, list) and all(isinstance(kind, str) for kind in value):
            return None
        return f"must be a list of fault kinds, not {value!r}"
    if name == "error_kind":
        return None if isinstance(value, str) else f"must be a fault kind, not {value!r}"
    if name == "retry_after_s":
        whole = isinstance(value, int) and not isinstance(value, bool)
        return None if whole and value >= 0 else f"must be a whole number >= 0, not {value!r}"
    # a number: bool is an int to Python, not to JSON
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return f"must be a number, not {value!r}"
    if name == "error_rate" and not 0 <= value <= 1:
        return f"must be between 0 and 1, not {value!r}"
    return None if value >= 0 else f"must be >= 0, not {value!r}"


def _child(name: str, inner: str) -> str:
    return f'child "{name}" fails because [{inner}]'


def _string_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f'"{name}" must be a string'
    if not value:
        return f'"{name}" is not allowed to be empty'
    return None


def validate(payload: Any, max_ids: int) -> str | None:
    """The Joi-style message for the first problem of a push request, or None."""
    if not isinstance(payload, dict):
        return '"value" must be an object'
    for key in payload:
        if key not in ("userIds", "message", "deeplink"):
            return f'"{key}" is not allowed'
    problem = _user_ids_problem(payload.get("userIds"), "userIds" in payload, max_ids)
    if problem:
        return _child("userIds", problem)
    problem = _message_problem(payload.get("message"), "message" in payload)
    if problem:
        return _child("message", problem)
    if "deeplink" in payload and (problem := _string_problem("deeplink", payload["deeplink"])):
        return _child("deeplink", problem)
    return None


def _user_ids_problem(ids: Any, present: bool, max_ids: int) -> str | None:
    if not present:
        return '"userIds" is required'
    if not isinstance(ids, list):
        return '"userIds" must be an array'
    if not ids:
        return '"userIds" must contain at least 1 items'
    if len(ids) > max_ids:
        return f'"userIds" must contain less than or equal to {max_ids} items'
    seen: set[str] = set()
    for position, user_id in enumerate(ids):
        if problem := _string_problem(str(position), user_id):
            return f'"userIds" at position {position} fails because [{problem}]'
        if user_id in seen:
            return f'"userIds" position {position} contains a duplicate value'
        seen.add(user_id)
    return None


def _message_problem(message: Any, present: bool) -> str | None:
    if not present:
        return '"message" is required'
    if not isinstance(message, dict):
        return '"message" must be an object'
    for key in message:
        if key not in ("title", "summary"):
            return f'"{key}" is not allowed'
    for key in ("title", "summary"):
        if key not in message:
            return _child(key, f'"{key}" is required')
        if problem := _string_problem(key, message[key]):
            return _child(key, problem)
    return None


class SimulatorState:
    """Counters, the sliding window of admitted requests, faults and accepted pushes."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self._clock = clock
        self._started = clock()
        self._random = random.Random(config.seed)
        self._admitted: deque[float] = deque()
        self.faults = Faults()
        self.pushes: list[dict[str, Any]] = []
        self.counters: Counter[str] = Counter()
        self.max_in_window = 0

    def reset(self) -> None:
        self._admitted.clear()
        self.faults = Faults()
        self.pushes.clear()
        self.counters.clear()
        self.max_in_window = 0

    def admit(self) -> float | None:
        """Count this request in the window, or return the seconds to wait (a violation)."""
        now = self._clock()
        while self._admitted and self._admitted[0] <= now - self.config.window_s:
            self._admitted.popleft()
        if len(self._admitted) >= self.config.rate_limit:
            self.counters["violations"] += 1
            return self._admitted[0] + self.config.window_s - now
        self._admitted.append(now)
        self.max_in_window = max(self.max_in_window, len(self._admitted))
        return None

    def take_fault(self) -> str | None:
        faults = self.faults
        kind = faults.script.pop(0) if faults.script else None
        if kind is None and faults.error_rate and self._random.random() < faults.error_rate:
            kind = faults.error_kind
        if kind is not None:
            self.counters[f"fault_{kind}"] += 1
        return kind

    def record(self, payload: dict[str, Any]) -> None:
        self.counters["accepted"] += 1
        self.counters["recipients"] += len(payload["userIds"])
        self.pushes.append(
            {
                "at": round(self._clock() - self._started, 6),
                "received_at": dt.datetime.now(dt.UTC).isoformat(),
                **payload,
            }
        )

    def stats(self) -> dict[str, Any]:
        return {
            **{key: 0 for key in ("requests", "accepted", "recipients", "violations")},
            **self.counters,
            "max_in_window": self.max_in_window,
            "rate_limit": self.config.rate_limit,
            "window_s": self.config.window_s,
        }


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds; round up so a client that obeys is admitted."""
    return str(max(1, math.ceil(seconds)))
