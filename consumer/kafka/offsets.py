"""Per-partition offset bookkeeping for at-least-once with out-of-order completion.

Events of one partition finish in any order (a personal push may wait while later
shared pushes go out). Kafka stores one offset per partition, so we commit the
*low watermark* (the smallest offset not finished; everything below it is
finished) and record the finished offsets above it in the commit's metadata
string. After a restart or a rebalance the new owner reads both back and skips
the finished offsets, so nothing already sent is sent again.

Metadata encoding (version 1)::

    "o1:" + varint(gap - 1) + varint(length - 1) + ...    ("" when nothing above)

One pair per run of consecutive finished offsets: ``gap`` is the distance from the
end of the previous run (the watermark for the first), ``length`` the run's size.
A varint is little-endian groups of 5 bits, one URL-safe base64 character per
group, with 32 added while more groups follow. A run costs 2 bytes when it is
short and near, and a few more however long it is.

Offsets between two records delivered one after the other do not exist for us
(transaction markers, compaction), so they count as finished: runs stay merged.

Metadata limit: when the encoding no longer fits the broker's
``offset.metadata.max.bytes`` the partition is reported by ``over_limit()`` and the
source stops fetching it until the watermark advances. Events already pending can
still finish meanwhile, so a commit may find the encoding too long: it then writes
the watermark with the runs nearest to it that fit, and drops the rest. Dropped
offsets may be sent again after a crash (at-least-once still holds); nothing
unfinished is ever recorded as finished.

Malformed metadata (foreign or corrupt) is ignored with a warning and the
partition starts from the committed offset.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from consumer.logs import get_logger

log = get_logger(__name__)

PREFIX = "o1:"
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_DIGIT = {char: index for index, char in enumerate(_ALPHABET)}
_MAX_OFFSET = 2**63 - 1

K = TypeVar("K", bound=Hashable)


class MalformedMetadata(ValueError):
    """Commit metadata that is not ours, or is corrupt."""


def _varint(value: int) -> str:
    chars = []
    while True:
        group, value = value & 31, value >> 5
        if value:
            chars.append(_ALPHABET[group | 32])
        else:
            chars.append(_ALPHABET[group])
            return "".join(chars)


def _read_varints(text: str) -> Iterator[int]:
    value = shift = 0
    for position, char in enumerate(text):
        digit = _DIGIT.get(char)
        if digit is None:
            raise MalformedMetadata(f"unexpected character {char!r} at {position}")
        value |= (digit & 31) << shift
        shift += 5
        if shift > 70:
            raise MalformedMetadata("number too long")
        if not digit & 32:
            yield value
            value = shift = 0
    if shift:
        raise MalformedMetadata("truncated number at the end")


def encode_runs(low: int, runs: list[tuple[int, int]], limit: int | None = None) -> str:
    """Encode finished runs ``[start, end)`` above ``low``; keep the nearest that fit ``limit``."""
    if not runs:
        return ""
    parts = [PREFIX]
    size = len(PREFIX)
    previous_end = low
    for start, end in runs:
        pair = _varint(start - previous_end - 1) + _varint(end - start - 1)
        if limit is not None and size + len(pair) > limit:
            break
        parts.append(pair)
        size += len(pair)
        previous_end = end
    return "".join(parts) if len(parts) > 1 else ""


def decode_runs(low: int, metadata: str) -> list[tuple[int, int]]:
    """The finished runs a commit's metadata records; raises ``MalformedMetadata``."""
    if not metadata:
        return []
    if not metadata.startswith(PREFIX):
        raise MalformedMetadata(f"unknown format (expected prefix {PREFIX!r})")
    numbers = list(_read_varints(metadata[len(PREFIX) :]))
    if len(numbers) % 2:
        raise MalformedMetadata("odd count of numbers (gap without length)")
    runs = []
    end = low
    for gap, length in zip(numbers[::2], numbers[1::2], strict=True):
        start = end + gap + 1
        end = start + length + 1
        if end > _MAX_OFFSET:
            raise MalformedMetadata("offset beyond the 64-bit range")
        runs.append((start, end))
    return runs


class PartitionOffsets:
    """Offsets of one assigned partition: watermark, finished runs above it, pending."""

    def __init__(self, low: int | None = None, runs: list[tuple[int, int]] | None = None) -> None:
        self._low = low
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._next_fetch = low
        self._pending: set[int] = set()
        self._encoded: str | None = None
        for start, end in runs or []:
            self._add_finished(start, end)

    @classmethod
    def from_commit(
        cls, offset: int | None, metadata: str = "", *, where: str = ""
    ) -> PartitionOffsets:
        """Rebuild from a committed offset (``None``: never committed) and its metadata."""
        if offset is None or offset < 0:
            return cls()
        try:
            runs = decode_runs(offset, metadata)
        except MalformedMetadata as exc:
            log.warning(
                "commit_metadata_ignored",
                partition=where,
                committed=offset,
                problem=str(exc),
                metadata=metadata[:80],
            )
            runs = []
        return cls(offset, runs)

    @property
    def low_watermark(self) -> int | None:
        """Smallest offset not finished (``None`` until the start is known)."""
        return self._low

    @property
    def next_fetch(self) -> int | None:
        """One past the last offset delivered by Kafka."""
        return self._next_fetch

    @property
    def pending(self) -> frozenset[int]:
        return frozenset(self._pending)

    def runs(self) -> list[tuple[int, int]]:
        """Finished offsets above the watermark, as ``[start, end)`` runs."""
        return list(zip(self._starts, self._ends, strict=True))

    def is_finished(self, offset: int) -> bool:
        if self._low is None:
            return False
        if offset < self._low:
            return True
        index = bisect.bisect_right(self._starts, offset) - 1
        return index >= 0 and offset < self._ends[index]

    def should_skip(self, offset: int) -> bool:
        """Already finished: drop it without sending again."""
        return self.is_finished(offset)

    def fetched(self, offset: int) -> bool:
        """Kafka delivered ``offset``: True if it is to be handed out, False to skip it."""
        if self._low is None:
            self._low = self._next_fetch = offset
            self._encoded = None
        assert self._next_fetch is not None
        if offset > self._next_fetch:
            # Nothing was delivered in between, so those offsets do not exist for us.
            self._add_finished(self._next_fetch, offset)
        self._next_fetch = max(self._next_fetch, offset + 1)
        if self.is_finished(offset):
            return False
        self._pending.add(offset)
        return True

    def done(self, offset: int) -> None:
        """``offset`` has its outcome. Idempotent; offsets below the watermark are ignored."""
        self._pending.discard(offset)
        if self._low is not None and offset >= self._low:
            self._add_finished(offset, offset + 1)

    def _add_finished(self, start: int, end: int) -> None:
        if self._low is not None:
            start = max(start, self._low)
        if start >= end:
            return
        first = bisect.bisect_left(self._ends, start)
        last = bisect.bisect_right(self._starts, end)
        if first < last:
            start = min(start, self._starts[first])
            end = max(end, self._ends[last - 1])
        self._starts[first:last] = [start]
        self._ends[first:last] = [end]
        if self._low is not None and self._starts[0] <= self._low:
            self._low = self._ends[0]
            del self._starts[0], self._ends[0]
        self._encoded = None

    def metadata(self, limit: int | None = None) -> str:
        """The commit metadata; with ``limit``, only the nearest runs that fit."""
        if self._low is None:
            return ""
        if self._encoded is None:
            self._encoded = encode_runs(self._low, self.runs())
        if limit is None or len(self._encoded) <= limit:
            return self._encoded
        return encode_runs(self._low, self.runs(), limit)

    def encoded_size(self) -> int:
        return len(self.metadata())

    def metadata_fits(self, limit: int) -> bool:
        return self.encoded_size() <= limit


class OffsetBook(Generic[K]):
    """Offsets of every assigned partition, and what is new to commit."""

    def __init__(self, metadata_max_bytes: int = 4096) -> None:
        self.metadata_max_bytes = metadata_max_bytes
        self._parts: dict[K, PartitionOffsets] = {}
        self._last_commit: dict[K, tuple[int, str]] = {}

    def __contains__(self, tp: object) -> bool:
        return tp in self._parts

    @property
    def partitions(self) -> frozenset[K]:
        return frozenset(self._parts)

    def get(self, tp: K) -> PartitionOffsets | None:
        return self._parts.get(tp)

    def assign(self, tp: K, committed: int | None, metadata: str = "") -> PartitionOffsets:
        offsets = PartitionOffsets.from_commit(committed, metadata, where=str(tp))
        self._parts[tp] = offsets
        if committed is not None and committed >= 0:
            self._last_commit[tp] = (committed, metadata)
        else:
            self._last_commit.pop(tp, None)
        return offsets

    def restart(self, tp: K, offset: int) -> PartitionOffsets:
        """Start the partition afresh at ``offset`` (after an offset reset), to be committed."""
        offsets = PartitionOffsets(offset)
        self._parts[tp] = offsets
        self._last_commit.pop(tp, None)
        return offsets

    def revoke(self, tp: K) -> None:
        self._parts.pop(tp, None)
        self._last_commit.pop(tp, None)

    def should_skip(self, tp: K, offset: int) -> bool:
        offsets = self._parts.get(tp)
        return offsets is not None and offsets.should_skip(offset)

    def fetched(self, tp: K, offset: int) -> bool:
        """Register a delivered record; False means it was already finished (skip it)."""
        return self._parts[tp].fetched(offset)

    def done(self, tp: K, offset: int) -> bool:
        """Mark finished; False if the partition is no longer assigned here."""
        offsets = self._parts.get(tp)
        if offsets is None:
            return False
        offsets.done(offset)
        return True

    def commit_map(
        self, only: set[K] | frozenset[K] | None = None, *, unchanged_too: bool = False
    ) -> dict[K, tuple[int, str]]:
        """``{tp: (offset, metadata)}`` for partitions whose state changed since the last
        commit (every partition with a known position if ``unchanged_too``)."""
        result: dict[K, tuple[int, str]] = {}
        for tp, offsets in self._parts.items():
            if (only is not None and tp not in only) or offsets.low_watermark is None:
                continue
            entry = (offsets.low_watermark, offsets.metadata(self.metadata_max_bytes))
            if unchanged_too or self._last_commit.get(tp) != entry:
                result[tp] = entry
        return result

    def committed(self, tp: K, offset: int, metadata: str) -> None:
        """Record a successful commit, so it is not repeated while nothing changes."""
        if tp in self._parts:
            self._last_commit[tp] = (offset, metadata)

    def over_limit(self) -> set[K]:
        """Partitions whose metadata no longer fits: stop fetching them."""
        return {
            tp
            for tp, offsets in self._parts.items()
            if not offsets.metadata_fits(self.metadata_max_bytes)
        }
