"""Time on the daemon: the injected clock, epoch seconds as datetimes, human durations.

The daemon's timers run on ``Clock.now()`` (epoch seconds). ``SystemClock`` follows the
database's clock on the host's monotonic clock; ``ManualClock`` is the one tests move.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol

UTC = dt.timezone.utc


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
