"""Due instants from explicit dates, times and zones, DST rules included."""

from __future__ import annotations

import datetime as dt

import pytest

from scheduler_daemon.due import due_instant
from scheduler_daemon.errors import InvalidScheduleError
from scheduler_daemon.models import ScheduleKey

UTC = dt.timezone.utc


def due(date: str, time: str, tz: str) -> dt.datetime:
    return due_instant(ScheduleKey(dt.date.fromisoformat(date), dt.time.fromisoformat(time), tz))


def test_plain_local_times() -> None:
    assert due("2026-07-01", "09:30:00", "Europe/Paris") == dt.datetime(2026, 7, 1, 7, 30, tzinfo=UTC)
    assert due("2026-01-01", "09:30:00", "Europe/Paris") == dt.datetime(2026, 1, 1, 8, 30, tzinfo=UTC)
    assert due("2026-01-01", "00:00:00.250000", "UTC") == dt.datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)
    assert due("2026-03-01", "12:00:00", "Asia/Kolkata") == dt.datetime(2026, 3, 1, 6, 30, tzinfo=UTC)


def test_spring_forward_gap_moves_forward_by_the_gap() -> None:
    # Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist → 03:30 CEST.
    assert due("2026-03-29", "02:30:00", "Europe/Paris") == dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:15 → 03:15 EDT = 07:15 UTC.
    assert due("2026-03-08", "02:15:00", "America/New_York") == dt.datetime(2026, 3, 8, 7, 15, tzinfo=UTC)


def test_fall_back_overlap_takes_the_first_occurrence() -> None:
    # Paris, 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice → CEST one.
    assert due("2026-10-25", "02:30:00", "Europe/Paris") == dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    # New York, 2026-11-01: 01:30 happens twice → the EDT one (05:30 UTC), not EST (06:30).
    assert due("2026-11-01", "01:30:00", "America/New_York") == dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_retry_at_overrides_the_schedule() -> None:
    retry = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    key = ScheduleKey(dt.date(2020, 1, 1), dt.time(0), "Bad/Zone", retry)
    assert due_instant(key) == dt.datetime(2026, 1, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("date", "time", "tz", "message"),
    [
        (None, dt.time(9), "UTC", "scheduled_date is empty"),
        (dt.date(2026, 1, 1), None, "UTC", "scheduled_time is empty"),
        (None, None, "UTC", "scheduled_date and scheduled_time are empty"),
        (dt.date(2026, 1, 1), dt.time(9), "Mars/Olympus", "unknown timezone 'Mars/Olympus'"),
        (dt.date(2026, 1, 1), dt.time(9), "", "unknown timezone ''"),
        (dt.date(2026, 1, 1), dt.time(9), "../../etc/passwd", "unknown timezone"),
        (dt.date(2026, 1, 1), dt.time(9), " UTC", "unknown timezone"),
    ],
)
def test_bad_schedules_say_what_is_wrong(date, time, tz, message) -> None:
    with pytest.raises(InvalidScheduleError, match=message.replace("(", r"\(")):
        due_instant(ScheduleKey(date, time, tz))


def test_a_retry_at_past_year_9999_in_utc_is_invalid_not_an_overflow() -> None:
    late = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-12)))
    with pytest.raises(InvalidScheduleError, match="retry_at 9999-12-31T23:00:00-12:00 is out of range"):
        due_instant(ScheduleKey(None, None, "UTC", late))
