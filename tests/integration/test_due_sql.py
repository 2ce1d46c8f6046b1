"""migrations/007's scheduler_due_at() against scheduler_daemon/due.py (issue 10 item 4).

The daemon claims a row only when the database says it is due, so the SQL instant must be
the Python one exactly, on the nights daylight saving time starts and ends too (PostgreSQL's
own ``AT TIME ZONE`` takes the second occurrence of a repeated local time; the README and
due.py the first). Explicit nights first, then hypothesis over dates, times and zones with
transitions; and the column the trigger keeps follows every write.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler_daemon.due import due_instant
from scheduler_daemon.models import ScheduleKey
from support.helpers import make_user

UTC = dt.timezone.utc

SQL_DUE = "SELECT scheduler_due_at($1, $2, $3, $4)"
MANY = """SELECT scheduler_due_at(d, t, z, NULL) FROM unnest($1::date[], $2::time[], $3::text[])
          WITH ORDINALITY AS u(d, t, z, n) ORDER BY n"""


def utc(*fields: int) -> dt.datetime:
    return dt.datetime(*fields, tzinfo=UTC)


# (zone, local date, local time, the README's instant)
NIGHTS = [
    pytest.param("America/New_York", dt.date(2024, 3, 10), dt.time(2, 30), utc(2024, 3, 10, 7, 30), id="ny-gap"),
    pytest.param("America/New_York", dt.date(2024, 11, 3), dt.time(1, 30), utc(2024, 11, 3, 5, 30), id="ny-fold"),
    pytest.param("America/New_York", dt.date(2024, 11, 3), dt.time(0, 59, 59, 999999),
                 utc(2024, 11, 3, 4, 59, 59, 999999), id="ny-before-fold"),
    pytest.param("America/New_York", dt.date(2024, 11, 3), dt.time(2, 0), utc(2024, 11, 3, 7, 0), id="ny-after-fold"),
    pytest.param("Europe/Paris", dt.date(2024, 3, 31), dt.time(2, 30), utc(2024, 3, 31, 1, 30), id="paris-gap"),
    pytest.param("Europe/Paris", dt.date(2024, 3, 31), dt.time(3, 0), utc(2024, 3, 31, 1, 0), id="paris-gap-end"),
    pytest.param("Europe/Paris", dt.date(2024, 10, 27), dt.time(2, 30), utc(2024, 10, 27, 0, 30), id="paris-fold"),
    pytest.param("Europe/Paris", dt.date(2024, 10, 27), dt.time(3, 0), utc(2024, 10, 27, 2, 0), id="paris-after-fold"),
    pytest.param("Australia/Lord_Howe", dt.date(2024, 4, 7), dt.time(1, 45), utc(2024, 4, 6, 14, 45),
                 id="lord-howe-half-hour-fold"),
    pytest.param("Australia/Lord_Howe", dt.date(2024, 10, 6), dt.time(2, 15), utc(2024, 10, 5, 15, 45),
                 id="lord-howe-half-hour-gap"),
    pytest.param("Pacific/Apia", dt.date(2011, 12, 30), dt.time(12, 0), utc(2011, 12, 30, 22, 0),
                 id="apia-skipped-day"),
    pytest.param("Europe/Dublin", dt.date(2024, 10, 27), dt.time(1, 30), utc(2024, 10, 27, 0, 30),
                 id="dublin-negative-dst-fold"),
    pytest.param("UTC", dt.date(2030, 1, 1), dt.time(0, 0), utc(2030, 1, 1), id="utc"),
]


@pytest.mark.parametrize(("zone", "date", "time", "expected"), NIGHTS)
async def test_transition_nights_follow_the_documented_rules_in_sql_and_python(
    db: asyncpg.Connection, zone: str, date: dt.date, time: dt.time, expected: dt.datetime
) -> None:
    assert due_instant(ScheduleKey(date, time, zone)) == expected
    assert await db.fetchval(SQL_DUE, date, time, zone, None) == expected


async def test_postgresql_alone_would_take_the_second_occurrence(db: asyncpg.Connection) -> None:
    """Why the function exists: this is what a plain AT TIME ZONE says on the fall-back night."""
    plain = await db.fetchval("SELECT ('2024-11-03 01:30'::timestamp AT TIME ZONE 'America/New_York')")
    assert plain == utc(2024, 11, 3, 6, 30) != await db.fetchval(SQL_DUE, dt.date(2024, 11, 3), dt.time(1, 30),
                                                                  "America/New_York", None)


async def test_retry_at_wins_and_what_python_cannot_hold_has_no_instant(db: asyncpg.Connection) -> None:
    retry = utc(2030, 5, 1, 12)
    assert await db.fetchval(SQL_DUE, dt.date(2030, 1, 1), dt.time(9), "Mars/Olympus", retry) == retry
    for args in [("10000-01-01", "12:00", "UTC", None), ("0044-03-15 BC", "12:00", "UTC", None),
                 ("2030-01-01", "24:00", "UTC", None), ("2030-01-01", "12:00", "Mars/Olympus", None),
                 (None, "12:00", "UTC", None), ("2030-01-01", None, "UTC", None),
                 ("2030-01-01", "12:00", "UTC", "infinity"), ("2030-01-01", "12:00", "UTC", "10000-01-01 00:00+00")]:
        d, t, z, r = args
        sql = "SELECT scheduler_due_at($1::text::date, $2::text::time, $3, $4::text::timestamptz)," \
              " scheduler_due_problem($1::text::date, $2::text::time, $3, $4::text::timestamptz)"
        due, problem = await db.fetchrow(sql, d, t, z, r)
        assert due is None and problem, args


@pytest.fixture(scope="module")
def transition_zones() -> list[str]:
    return ["America/New_York", "Europe/Paris", "Europe/London", "Europe/Dublin", "Australia/Lord_Howe",
            "Australia/Sydney", "America/Santiago", "Asia/Tehran", "America/St_Johns", "Pacific/Chatham",
            "Africa/Casablanca", "America/Havana", "Asia/Gaza", "Antarctica/Troll", "UTC", "Asia/Kolkata"]


local_times = st.times().map(lambda t: t.replace(fold=0))
NIGHT_TIMES = [dt.time(h, m) for h in (0, 1, 2, 3) for m in (0, 30)]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_sql_and_python_agree_on_any_local_time_in_zones_with_transitions(
    db: asyncpg.Connection, transition_zones: list[str], data: st.DataObject
) -> None:
    """Each example compares up to 20 rows in one query; times cluster on the night hours.
    Until 2040, as below: later rules of zones such as Asia/Gaza and Africa/Casablanca are
    predictions that differ between tz database releases (PostgreSQL's and Python's), not
    between the two functions."""
    row = st.tuples(st.dates(dt.date(2000, 1, 1), dt.date(2040, 12, 31)),
                    st.one_of(local_times, st.sampled_from(NIGHT_TIMES)), st.sampled_from(transition_zones))
    rows: list[tuple[dt.date, dt.time, str]] = data.draw(st.lists(row, min_size=1, max_size=20))
    sql = await db.fetch(MANY, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    for (day, time, zone), record in zip(rows, sql, strict=True):
        assert record[0] == due_instant(ScheduleKey(day, time, zone)), (day, time, zone)


async def test_every_transition_of_a_zone_agrees(db: asyncpg.Connection, transition_zones: list[str]) -> None:
    """Every local half hour around every transition from 2000 to 2040 of each zone."""
    import zoneinfo

    rows: list[tuple[dt.date, dt.time, str]] = []
    for zone in transition_zones:
        z = zoneinfo.ZoneInfo(zone)
        instant = utc(2000, 1, 1)
        while instant.year < 2040:
            later = instant + dt.timedelta(hours=6)
            if instant.astimezone(z).utcoffset() != later.astimezone(z).utcoffset():
                local = instant.astimezone(z).replace(tzinfo=None, minute=0, second=0)
                for step in range(-4, 25):
                    wall = local + dt.timedelta(minutes=15 * step)
                    rows.append((wall.date(), wall.time(), zone))
            instant = later
    assert len(rows) > 1000
    sql = await db.fetch(MANY, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    wrong = [(r, s[0]) for r, s in zip(rows, sql, strict=True) if s[0] != due_instant(ScheduleKey(*r))]
    assert not wrong, wrong[:5]


async def test_the_trigger_keeps_due_at_on_every_write(db: asyncpg.Connection) -> None:
    campaign, _ = await make_user(db)

    async def due_at(post: uuid.UUID) -> Any:
        return await db.fetchval("SELECT due_at FROM content_posts WHERE id = $1", post)

    post = await db.fetchval(
        "INSERT INTO content_posts (campaign_id, platform, status, scheduled_date, scheduled_time, timezone)"
        " VALUES ($1, 'webhook', 'scheduled', '2024-11-03', '01:30', 'America/New_York') RETURNING id", campaign)
    assert await due_at(post) == utc(2024, 11, 3, 5, 30)
    await db.execute("UPDATE content_posts SET timezone = 'Europe/Paris' WHERE id = $1", post)
    assert await due_at(post) == utc(2024, 11, 3, 0, 30)
    await db.execute("UPDATE content_posts SET retry_at = '2031-01-01 00:00+00' WHERE id = $1", post)
    assert await due_at(post) == utc(2031, 1, 1)
    await db.execute("UPDATE content_posts SET due_at = '2000-01-01 00:00+00' WHERE id = $1", post)  # nobody's to set
    assert await due_at(post) == utc(2031, 1, 1)
    await db.execute("UPDATE content_posts SET scheduled_time = '02:00' WHERE id = $1", post)  # a reschedule
    assert await due_at(post) == utc(2024, 11, 3, 1, 0)
    async with db.transaction():  # a write with the triggers off leaves it stale; the refresh mends it
        await db.execute("SET LOCAL session_replication_role = replica")
        await db.execute("UPDATE content_posts SET scheduled_time = '03:00' WHERE id = $1", post)
    assert await db.fetchval("SELECT scheduler_due_at_refresh()") == 1
    assert await due_at(post) == utc(2024, 11, 3, 2, 0)


async def test_007_on_an_existing_database_fills_due_at_for_scheduled_rows_only(databases: Any) -> None:
    """Applied to a database that has posts (as a Supabase project would): scheduled rows get
    their instant, others stay NULL until they are scheduled; nothing else about a row changes."""
    from scheduler_daemon.db.migrate import migrate
    from support.helpers import migrate_through

    url = await databases.create_empty()
    conn = await asyncpg.connect(url)
    try:
        await migrate_through(conn, "006_post_items.sql")
        campaign, _ = await make_user(conn)
        insert = ("INSERT INTO content_posts (campaign_id, platform, status, scheduled_date, scheduled_time, timezone)"
                  " VALUES ($1, 'webhook', $2, '2024-10-27', '02:30', 'Europe/Paris') RETURNING id")
        scheduled = await conn.fetchval(insert, campaign, "scheduled")
        draft = await conn.fetchval(insert, campaign, "draft")
        columns = "id, status, schedule_version, attempt_count, publish_state, error_message"
        before = await conn.fetch(f"SELECT {columns} FROM content_posts ORDER BY id")
        await migrate(conn)
        assert await conn.fetch(f"SELECT {columns} FROM content_posts ORDER BY id") == before
        due = {r["id"]: r["due_at"] for r in await conn.fetch("SELECT id, due_at FROM content_posts")}
        assert due == {scheduled: utc(2024, 10, 27, 0, 30), draft: None}
        await conn.execute("UPDATE content_posts SET status = 'scheduled' WHERE id = $1", draft)
        assert await conn.fetchval("SELECT due_at FROM content_posts WHERE id = $1", draft) == utc(2024, 10, 27, 0, 30)
        assert await migrate(conn) == []  # applied once
        from scheduler_daemon.db.migrate import available

        again = next(m.sql for m in available() if m.name.startswith("007_"))
        before = await conn.fetch(f"SELECT {columns}, due_at FROM content_posts ORDER BY id")
        await conn.execute(again)  # as psql -f would: idempotent
        assert await conn.fetch(f"SELECT {columns}, due_at FROM content_posts ORDER BY id") == before
    finally:
        await conn.close()
        await databases.drop(url)
