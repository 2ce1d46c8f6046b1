"""The due instant of a row: pure functions, tested with explicit datetimes.

The due instant of a row is ``scheduled_date + scheduled_time`` read in the row's IANA
``timezone``, or ``retry_at`` when the daemon has postponed the post.

Daylight-saving rules (one place, documented in the README):

* A local time that does not exist (spring forward, e.g. 02:30 on the night clocks jump
  from 02:00 to 03:00) is read with the offset in force *before* the jump, which moves it
  forward by the length of the gap: 02:30 → 03:30 local time.
* A local time that happens twice (fall back, e.g. 02:30 on the night clocks go from
  03:00 back to 02:00) is the *first* occurrence, the one in summer time.

Both follow from Python's ``fold=0`` (PEP 495).
"""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .clock import UTC
from .errors import InvalidScheduleError
from .models import ScheduleKey


@functools.lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or InvalidScheduleError naming it."""
    if not name or len(name) > 64 or name != name.strip():
        raise InvalidScheduleError(f"unknown timezone {name[:64]!r}: use an IANA name such as 'Europe/Paris'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidScheduleError(
            f"unknown timezone {name!r}: use an IANA name such as 'Europe/Paris'"
        ) from exc


def due_instant(key: ScheduleKey) -> dt.datetime:
    """The UTC instant a row is due; InvalidScheduleError if it has none."""
    if key.retry_at is not None:
        try:
            return key.retry_at.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00-12:00 is past year 9999 in UTC
            raise InvalidScheduleError(f"retry_at {key.retry_at.isoformat()} is out of range") from None
    if key.date is None and key.time is None:
        raise InvalidScheduleError("scheduled_date and scheduled_time are empty")
    if key.date is None:
        raise InvalidScheduleError("scheduled_date is empty")
    if key.time is None:
        raise InvalidScheduleError("scheduled_time is empty")
    local = dt.datetime.combine(key.date, key.time.replace(tzinfo=None), tzinfo=zone(key.timezone))
    try:
        return local.replace(fold=0).astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01 00:00 east of UTC falls before year 1
        raise InvalidScheduleError(f"{key.date.isoformat()} {key.time.isoformat()} is out of range") from None
