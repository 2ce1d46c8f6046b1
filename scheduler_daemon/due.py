"""Due instants and clocks: pure functions, tested with explicit datetimes.

The due instant of a row is ``scheduled_date + scheduled_time`` read in the row's IANA
``timezone`` — or ``retry_at`` when the daemon has postponed the post.

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
import random
import time
from collections.abc import Callable
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidScheduleError
from .models import ScheduleKey

UTC = dt.timezone.utc


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
        return key.retry_at.astimezone(UTC)
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


def backoff(
    attempt: int, base: float, cap: float, jitter: Callable[[float, float], float] = random.uniform
) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(attempt-1))].

    The exponent is bounded, so any attempt count gives a finite delay.
    """
    return jitter(0, min(cap, base * 2.0 ** min(max(attempt - 1, 0), 64)))


def format_delay(seconds: float) -> str:
    """A human duration for messages: '3 h 12 min', '42 s', '850 ms'."""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days {hours % 24} h"


class Clock(Protocol):
    """Wall-clock seconds since the epoch. Injected so that time is testable."""

    def now(self) -> float: ...


class SystemClock:
    """Database time, kept on the monotonic clock.

    ``now()`` is ``time.monotonic() + offset``. The offset starts from the host's wall
    clock and is re-anchored to the database's ``clock_timestamp()`` at every connect and
    heartbeat (``anchor``), so timers follow the database's clock, and a wall-clock step
    on the host (NTP, VM resume) moves nothing: the monotonic clock never steps.
    """

    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()

    def now(self) -> float:
        return time.monotonic() + self._offset

    def anchor(self, db_epoch: float, sent_at: float, received_at: float) -> float:
        """Re-anchor on a database timestamp read between two monotonic readings.

        The database read its clock at about the midpoint of the round trip. Returns the
        database-minus-host skew in seconds, for logs and ``doctor``.
        """
        self._offset = db_epoch - (sent_at + received_at) / 2
        return self.skew

    @property
    def skew(self) -> float:
        return self._offset - (time.time() - time.monotonic())


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start: float) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, when: float) -> None:
        self._now = when


def utc_from_ts(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, UTC)
