"""Offset bookkeeping: watermark, finished runs in commit metadata, restart skips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from testkit import examples, under_mutation

from consumer.kafka.offsets import (
    PREFIX,
    MalformedMetadata,
    OffsetBook,
    PartitionOffsets,
    decode_runs,
    encode_runs,
)

TP = ("orders", 0)


@st.composite
def delivered_and_order(draw: st.DrawFn) -> tuple[int, list[int], list[int]]:
    """A start offset, delivered offsets (with holes), and a completion order of a subset."""
    start = draw(st.integers(0, 10**12))
    steps = draw(st.lists(st.integers(1, 4), min_size=1, max_size=60))
    delivered = []
    offset = start + draw(st.integers(0, 3))
    for step in steps:
        delivered.append(offset)
        offset += step
    finished = draw(st.permutations(delivered))
    finished = finished[: draw(st.integers(0, len(finished)))]
    return start, delivered, finished


def _expected_low(delivered: list[int], finished: set[int], next_fetch: int) -> int:
    unfinished = [offset for offset in delivered if offset not in finished]
    return min(unfinished) if unfinished else next_fetch


@given(delivered_and_order())
def test_watermark_is_the_smallest_unfinished_offset_in_any_completion_order(
    case: tuple[int, list[int], list[int]],
) -> None:
    start, delivered, order = case
    offsets = PartitionOffsets.from_commit(start, "")
    for offset in delivered:
        assert offsets.fetched(offset)
    finished: set[int] = set()
    for offset in order:
        offsets.done(offset)
        finished.add(offset)
        low = offsets.low_watermark
        assert low is not None
        assert low == _expected_low(delivered, finished, delivered[-1] + 1)
        assert all(o in finished for o in delivered if o < low), "watermark passed unfinished"


@given(delivered_and_order())
def test_restart_skips_exactly_the_finished_offsets_above_the_watermark(
    case: tuple[int, list[int], list[int]],
) -> None:
    start, delivered, order = case
    before = PartitionOffsets.from_commit(start, "")
    for offset in delivered:
        before.fetched(offset)
    for offset in order:
        before.done(offset)
    low = before.low_watermark
    assert low is not None

    after = PartitionOffsets.from_commit(low, before.metadata())

    skipped = {offset for offset in delivered if offset >= low and after.should_skip(offset)}
    assert skipped == {offset for offset in order if offset >= low}
    handed_out = [offset for offset in delivered if offset >= low and after.fetched(offset)]
    assert handed_out == [offset for offset in delivered if offset not in set(order)]


@st.composite
def runs_above(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    low = draw(st.integers(0, 2**62))
    runs = []
    end = low
    for gap, length in draw(st.lists(st.tuples(st.integers(1, 10**9), st.integers(1, 10**9)))):
        start = end + gap
        end = start + length
        runs.append((start, end))
    return low, runs


@given(runs_above())
def test_encoding_round_trips(case: tuple[int, list[tuple[int, int]]]) -> None:
    low, runs = case
    encoded = encode_runs(low, runs)
    assert encoded.isascii()
    assert decode_runs(low, encoded) == runs


@given(runs_above(), st.integers(0, 200))
def test_truncated_encoding_fits_and_keeps_the_runs_nearest_the_watermark(
    case: tuple[int, list[tuple[int, int]]], limit: int
) -> None:
    low, runs = case
    encoded = encode_runs(low, runs, limit)
    assert len(encoded) <= limit
    kept = decode_runs(low, encoded)
    assert kept == runs[: len(kept)]


@settings(max_examples=examples(300))
@given(st.integers(0, 10**9), st.text(max_size=40))
def test_any_metadata_text_never_crashes_and_never_skips_below_the_watermark(
    committed: int, text: str
) -> None:
    offsets = PartitionOffsets.from_commit(committed, text)
    assert offsets.low_watermark == committed
    assert not offsets.should_skip(committed)


def test_a_long_run_of_finished_offsets_costs_a_few_bytes() -> None:
    # A million offsets; a hundred thousand under mutation testing, whose tracing makes
    # each call slow (the same merges, a tenth of the count).
    end = 100_101 if under_mutation() else 1_000_101
    offsets = PartitionOffsets.from_commit(100, "")
    for offset in range(100, end):
        offsets.fetched(offset)
    for offset in range(101, end):
        offsets.done(offset)
    assert offsets.low_watermark == 100
    assert offsets.runs() == [(101, end)]
    assert offsets.encoded_size() <= len(PREFIX) + 6


@pytest.mark.parametrize(
    "metadata",
    ["consumer-v2:whatever", "o1:A", "o1:AB!", "o1:g", "o1:" + "g" * 20 + "A" + "A"],
)
def test_malformed_metadata_is_ignored_and_starts_from_the_committed_offset(
    metadata: str,
) -> None:
    with pytest.raises(MalformedMetadata):
        decode_runs(5, metadata)
    offsets = PartitionOffsets.from_commit(5, metadata)
    assert offsets.low_watermark == 5
    assert offsets.runs() == []


def test_holes_between_consecutive_deliveries_count_as_finished() -> None:
    offsets = PartitionOffsets.from_commit(10, "")
    for offset in (10, 11, 13, 14):  # 12 is a transaction marker: never delivered
        offsets.fetched(offset)
    offsets.done(11)
    offsets.done(13)
    assert offsets.runs() == [(11, 14)]
    offsets.done(10)
    assert offsets.low_watermark == 14


def test_a_partition_never_committed_starts_at_its_first_delivered_record() -> None:
    offsets = PartitionOffsets.from_commit(None, "")
    assert offsets.low_watermark is None
    assert offsets.metadata() == ""
    assert offsets.fetched(42)
    assert offsets.low_watermark == 42
    offsets.done(42)
    assert offsets.low_watermark == 43


def test_done_is_idempotent_and_ignores_offsets_below_the_watermark() -> None:
    offsets = PartitionOffsets.from_commit(0, "")
    for offset in range(3):
        offsets.fetched(offset)
    offsets.done(0)
    offsets.done(0)
    offsets.done(2)
    offsets.done(2)
    assert offsets.low_watermark == 1
    assert offsets.runs() == [(2, 3)]


def test_book_commits_only_what_changed_and_forgets_revoked_partitions() -> None:
    book: OffsetBook[tuple[str, int]] = OffsetBook(metadata_max_bytes=4096)
    other = ("orders", 1)
    book.assign(TP, 0, "")
    book.assign(other, 7, "")
    assert book.commit_map() == {}
    for offset in range(4):
        book.fetched(TP, offset)
    book.done(TP, 0)
    book.done(TP, 2)
    commits = book.commit_map()
    assert commits == {TP: (1, encode_runs(1, [(2, 3)]))}
    book.committed(TP, *commits[TP])
    assert book.commit_map() == {}
    book.revoke(TP)
    assert not book.done(TP, 1)
    assert TP not in book
    assert book.commit_map() == {}


def test_book_reads_back_what_it_committed() -> None:
    book: OffsetBook[tuple[str, int]] = OffsetBook()
    book.assign(TP, 0, "")
    for offset in range(6):
        book.fetched(TP, offset)
    for offset in (1, 2, 4):
        book.done(TP, offset)
    (offset, metadata), *_ = book.commit_map().values()

    restarted: OffsetBook[tuple[str, int]] = OffsetBook()
    restarted.assign(TP, offset, metadata)
    assert [o for o in range(6) if restarted.fetched(TP, o)] == [0, 3, 5]
    assert restarted.commit_map() == {}, "nothing new to commit right after assignment"


def test_metadata_over_the_limit_flags_the_partition_and_commits_a_fitting_prefix() -> None:
    limit = 16
    book: OffsetBook[tuple[str, int]] = OffsetBook(metadata_max_bytes=limit)
    book.assign(TP, 0, "")
    for offset in range(40):
        book.fetched(TP, offset)
    for offset in range(1, 40, 2):  # every other offset: one run each
        book.done(TP, offset)
    assert book.over_limit() == {TP}
    offsets = book.get(TP)
    assert offsets is not None
    assert not offsets.metadata_fits(limit)

    offset, metadata = book.commit_map()[TP]
    assert offset == 0
    assert len(metadata) <= limit
    kept = decode_runs(0, metadata)
    assert kept == offsets.runs()[: len(kept)]
    assert kept

    for offset in range(0, 40, 2):
        book.done(TP, offset)
    assert book.over_limit() == set()
    assert book.commit_map()[TP] == (40, "")


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ("o1:A!", "unexpected character '!' at 1"),
        ("o1:" + "g" * 15, "number too long"),
        ("o1:Ag", "truncated number at the end"),
        ("o1:A", "odd count of numbers (gap without length)"),
        ("v2:AA", "unknown format (expected prefix 'o1:')"),
        ("o1:" + "_" * 12 + "P" + "A", "offset beyond the 64-bit range"),
    ],
)
def test_malformed_metadata_says_what_is_wrong_and_for_which_partition(
    metadata: str, problem: str
) -> None:
    with pytest.raises(MalformedMetadata) as raised:
        decode_runs(5, metadata)
    assert str(raised.value) == problem

    book: OffsetBook[tuple[str, int]] = OffsetBook()
    with capture_logs() as logs:
        book.assign(TP, 5, metadata)

    (warning,) = logs
    assert warning["event"] == "commit_metadata_ignored"
    assert (warning["partition"], warning["committed"]) == ("('orders', 0)", 5)
    assert warning["problem"] == problem


def test_a_partition_without_a_committed_offset_commits_where_it_starts() -> None:
    book: OffsetBook[tuple[str, int]] = OffsetBook()
    other = ("orders", 1)
    book.assign(other, None)  # nothing delivered yet: no position to commit
    book.assign(TP, -1)  # what Kafka answers for a group that never committed
    assert book.commit_map() == {}
    book.fetched(TP, 7)

    assert book.commit_map() == {TP: (7, "")}
    assert book.commit_map(only={other}) == {}
    assert book.done(TP, 7) is True
    assert book.commit_map(only={TP}) == {TP: (8, "")}
    book.revoke(other)  # never committed: nothing to forget
    book.revoke(("orders", 9))  # never assigned


def test_a_partition_assigned_again_without_a_commit_forgets_the_old_one() -> None:
    book: OffsetBook[tuple[str, int]] = OffsetBook()
    book.assign(TP, 5, "")
    book.assign(TP, None)  # the group's offset was deleted meanwhile
    book.fetched(TP, 5)

    assert book.commit_map() == {TP: (5, "")}, "5 must be committed again"


def test_metadata_that_fits_exactly_is_within_the_limit() -> None:
    offsets = PartitionOffsets.from_commit(0, "")
    for offset in range(4):
        offsets.fetched(offset)
    offsets.done(2)
    size = offsets.encoded_size()

    assert offsets.metadata_fits(size)
    assert not offsets.metadata_fits(size - 1)


def test_before_any_position_is_known_nothing_is_finished() -> None:
    offsets = PartitionOffsets()

    assert not offsets.should_skip(0)
    assert not offsets.should_skip(5)


def test_a_record_below_the_committed_position_delivered_again_is_skipped() -> None:
    offsets = PartitionOffsets(low=10)

    assert offsets.fetched(3) is False, "finished before the restart: not sent again"
    assert offsets.fetched(10) is True


def test_metadata_exactly_at_the_limit_is_kept_whole() -> None:
    runs = [(12, 14), (20, 21), (40, 45)]
    whole = encode_runs(10, runs)

    assert encode_runs(10, runs, limit=len(whole)) == whole
    assert decode_runs(10, encode_runs(10, runs, limit=len(whole) - 1)) == runs[:2]


def test_pending_holds_what_was_handed_out_until_it_is_done() -> None:
    offsets = PartitionOffsets(low=5)
    offsets.fetched(5)
    offsets.fetched(6)

    offsets.done(5)

    assert offsets.pending == frozenset({6})


def test_the_book_skips_what_its_partition_finished_and_nothing_of_others() -> None:
    book: OffsetBook[tuple[str, int]] = OffsetBook()
    book.assign(TP, 10)

    assert book.should_skip(TP, 3)
    assert not book.should_skip(TP, 12)
    assert not book.should_skip(("orders", 1), 3), "a partition not assigned here"


def test_a_restart_starts_the_partition_afresh_and_commits_it_again() -> None:
    book: OffsetBook[tuple[str, int]] = OffsetBook()
    book.assign(TP, 10)
    book.fetched(TP, 10)
    book.done(TP, 10)
    book.committed(TP, 11, "")

    book.restart(TP, 11)  # Kafka reset the position: the same offset, to be committed

    assert book.commit_map() == {TP: (11, "")}
    fresh: OffsetBook[tuple[str, int]] = OffsetBook()
    fresh.assign(TP, None)
    assert fresh.restart(TP, 4).low_watermark == 4
    assert fresh.commit_map() == {TP: (4, "")}
