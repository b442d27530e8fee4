"""Quiet hours on the recipient's own clock: windows that wrap midnight, far zones, DST."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.quiet import QuietHours, first_instant

NIGHT = QuietHours(dt.time(22), dt.time(9))
MOSCOW = ZoneInfo("Europe/Moscow")
KAMCHATKA = ZoneInfo("Asia/Kamchatka")  # UTC+12, no DST
LOS_ANGELES = ZoneInfo("America/Los_Angeles")  # DST: 8 March and 1 November 2026


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("at", "zone", "ends"),
    [
        # 23:30 in Moscow: quiet until 09:00 next morning
        (utc(2026, 11, 24, 20, 30), MOSCOW, utc(2026, 11, 25, 6, 0)),
        # 03:00 in Moscow: quiet until 09:00 the same morning
        (utc(2026, 11, 25, 0, 0), MOSCOW, utc(2026, 11, 25, 6, 0)),
        # noon in Moscow is 21:00 in Kamchatka: not quiet yet
        (utc(2026, 11, 25, 9, 0), KAMCHATKA, None),
        # 13:00 Moscow is 22:00 Kamchatka: quiet until 09:00 there (21:00 UTC)
        (utc(2026, 11, 25, 10, 0), KAMCHATKA, utc(2026, 11, 25, 21, 0)),
        # 09:00 sharp is the end: not quiet
        (utc(2026, 11, 25, 6, 0), MOSCOW, None),
        # 22:00 sharp is the start: quiet
        (utc(2026, 11, 25, 19, 0), MOSCOW, utc(2026, 11, 26, 6, 0)),
        # Moscow's daytime is Los Angeles' night (PST, UTC-8): 01:00 there
        (utc(2026, 11, 25, 9, 0), LOS_ANGELES, utc(2026, 11, 25, 17, 0)),
    ],
)
def test_the_window_is_read_on_the_recipient_s_clock(
    at: dt.datetime, zone: ZoneInfo, ends: dt.datetime | None
) -> None:
    assert NIGHT.contains(at, zone) is (ends is not None)
    assert NIGHT.ends_after(at, zone) == ends


def test_a_window_within_one_day() -> None:
    lunch = QuietHours(dt.time(13), dt.time(14))
    assert lunch.ends_after(utc(2026, 11, 25, 10, 30), MOSCOW) == utc(2026, 11, 25, 11, 0)
    assert lunch.ends_after(utc(2026, 11, 25, 11, 0), MOSCOW) is None
    assert lunch.text == "13:00–14:00"


def test_the_night_after_spring_forward_is_an_hour_shorter_in_utc() -> None:
    # 7 March 2026 22:00 PST (06:00 UTC on the 8th) to 8 March 09:00 PDT (16:00 UTC)
    start = utc(2026, 3, 8, 6, 0)
    assert NIGHT.ends_after(start, LOS_ANGELES) == utc(2026, 3, 8, 16, 0)
    assert NIGHT.ends_after(start - dt.timedelta(seconds=1), LOS_ANGELES) is None


def test_the_night_before_fall_back_is_an_hour_longer_in_utc() -> None:
    # 31 October 22:00 PDT (05:00 UTC) to 1 November 09:00 PST (17:00 UTC)
    assert NIGHT.ends_after(utc(2026, 11, 1, 5, 0), LOS_ANGELES) == utc(2026, 11, 1, 17, 0)


def test_an_end_the_clock_jumps_over_ends_at_the_jump() -> None:
    # 02:30 does not happen on 8 March in Los Angeles: 02:00 PST is followed by 03:00 PDT
    early = QuietHours(dt.time(1), dt.time(2, 30))
    ends = early.ends_after(utc(2026, 3, 8, 9, 30), LOS_ANGELES)  # 01:30 PST
    jump = utc(2026, 3, 8, 10, 0)
    assert ends is not None
    assert jump <= ends <= jump + dt.timedelta(seconds=1)


def test_an_end_the_clock_shows_twice_ends_the_first_time() -> None:
    # 01:30 happens twice on 1 November in Los Angeles: first PDT (08:30 UTC), then PST
    assert first_instant(dt.date(2026, 11, 1), dt.time(1, 30), LOS_ANGELES) == utc(
        2026, 11, 1, 8, 30
    )


def test_equal_start_and_end_is_refused() -> None:
    with pytest.raises(ValueError, match="differ"):
        QuietHours(dt.time(9), dt.time(9))


ZONES = [MOSCOW, KAMCHATKA, LOS_ANGELES, ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Kolkata")]
clock_times = st.builds(dt.time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@given(
    start=clock_times,
    end=clock_times,
    zone=st.sampled_from(ZONES),
    at=st.datetimes(
        min_value=dt.datetime(2026, 1, 1),
        max_value=dt.datetime(2027, 12, 31),
        timezones=st.just(dt.UTC),
    ),
)
def test_a_window_ends_later_and_nothing_before_its_end_is_outside_it(
    start: dt.time, end: dt.time, zone: ZoneInfo, at: dt.datetime
) -> None:
    if start == end:
        return
    hours = QuietHours(start, end)
    ends = hours.ends_after(at, zone)
    if ends is None:
        assert not hours.contains(at, zone)
        return
    assert at < ends <= at + dt.timedelta(hours=25)
    assert not hours.contains(ends, zone)
    # every quarter hour between is still inside the window (no early release)
    probe = at
    while probe + dt.timedelta(minutes=15) < ends:
        probe += dt.timedelta(minutes=15)
        assert hours.contains(probe, zone), f"{probe} is outside {hours.text} before {ends}"
