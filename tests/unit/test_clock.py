"""The clocks: the monotonic, database-anchored SystemClock, the ManualClock, durations."""

from __future__ import annotations

import time

import pytest

from scheduler_daemon.clock import ManualClock, SystemClock, format_delay


def test_format_delay() -> None:
    assert [format_delay(s) for s in (0.25, 42, 600, 7200, 7260, 200_000)] == [
        "250 ms", "42 s", "10 min", "2 h", "2 h 1 min", "2 days 7 h"]


def test_manual_clock() -> None:
    clock = ManualClock(100.0)
    clock.advance(1.5)
    assert clock.now() == 101.5
    clock.set(5.0)
    assert clock.now() == 5.0


def test_system_clock_follows_the_database_and_reports_skew() -> None:
    clock = SystemClock()
    sent = time.monotonic()
    received = sent + 0.002
    db_now = time.time() + 3.0  # the database is 3 s ahead of this host
    skew = clock.anchor(db_now, sent, received)
    assert skew == pytest.approx(3.0 - 0.001, abs=0.01)
    assert clock.now() - time.time() == pytest.approx(skew, abs=0.01)


def test_system_clock_ignores_a_wall_clock_step(monkeypatch: pytest.MonkeyPatch) -> None:
    mono = [1000.0]
    wall = [1_800_000_000.0]
    monkeypatch.setattr(time, "monotonic", lambda: mono[0])
    monkeypatch.setattr(time, "time", lambda: wall[0])
    clock = SystemClock()  # offset = wall - mono at construction
    assert clock.now() == pytest.approx(1_800_000_000.0)
    wall[0] += 3600  # NTP step / VM resume: the wall clock jumps an hour
    assert clock.now() == pytest.approx(1_800_000_000.0), "a wall-clock step moved SystemClock.now()"
    assert clock.skew == pytest.approx(-3600.0)  # visible as skew, not as time
    mono[0] += 2.5
    assert clock.now() == pytest.approx(1_800_000_002.5)
    wall[0] -= 7200  # and backwards
    assert clock.now() == pytest.approx(1_800_000_002.5)


def test_system_clock_anchor_math(monkeypatch: pytest.MonkeyPatch) -> None:
    mono = [50.0]
    monkeypatch.setattr(time, "monotonic", lambda: mono[0])
    monkeypatch.setattr(time, "time", lambda: 1000.0 + mono[0])  # host wall = 1000 + monotonic
    clock = SystemClock()
    assert clock.now() == pytest.approx(1050.0) and clock.skew == pytest.approx(0.0)
    # The database read 2000.0 between monotonic 10.0 and 12.0: at monotonic 11.0 it was 2000.0.
    skew = clock.anchor(2000.0, 10.0, 12.0)
    assert clock.now() == pytest.approx(2000.0 + (50.0 - 11.0))  # offset 1989
    assert skew == pytest.approx(1989.0 - 1000.0) == clock.skew  # database ahead of the host by 989 s
    mono[0] = 61.0
    assert clock.now() == pytest.approx(2050.0)
    # A slow round trip: only its midpoint counts.
    assert clock.anchor(3000.0, 100.0, 110.0) == pytest.approx(3000.0 - 105.0 - 1000.0)
    mono[0] = 105.0
    assert clock.now() == pytest.approx(3000.0)
    # Database behind the host.
    clock.anchor(1000.0 + 200.0 - 30.0, 199.0, 201.0)
    assert clock.skew == pytest.approx(-30.0)
