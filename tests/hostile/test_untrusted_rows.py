"""The table and the channel are untrusted (issue 10 items 3 and 4), through the real daemon.

* Rows no write path lets in any more (written before 004, by the owner, or with the
  triggers off): year 10000, a BC date, a retry_at past 9999, 24:00, an unknown zone,
  attempt_count and schedule_version at their maximum. At boot and at a resync the load
  never fails on them, each ends 'draft' with a reason, and the counters at their maximum
  do not fail the claim batch of a bystander due at the same instant.
* Forged notifications (any role that can connect may NOTIFY): a delete then an update
  with the real version and date = now, a higher version, a version past bigint, garbage,
  a retry_at past 9999 while a resync runs, a flood of TRUNCATEs. The post due in an hour
  stays scheduled and armed at its real instant, nothing is published early, the daemon
  stays up, a flood costs two resyncs (the test's own and one), and the bystander goes out
  once on time. Forged later instants with higher versions postpone nothing.
* Hypothesis over raw rows: the load and the claim answer for any of them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from typing import Any

import asyncpg
import structlog
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scheduler_daemon.db import rows
from scheduler_daemon.db.repository import init_connection
from scheduler_daemon.db.sql import q
from scheduler_daemon.due import due_instant
from scheduler_daemon.errors import InvalidScheduleError
from scheduler_daemon.models import ScheduleKey
from scheduler_daemon.testing.receiver import Receiver
from support.helpers import Watcher, insert_post, make_user, soon
from support.servers import Bystander

UTC = dt.timezone.utc
CHANNEL = "scheduler_daemon"

# (what, column values as SQL, the reason the draft must give)
POISON = [
    ("year 10000", "scheduled_date = '10000-01-01'", "scheduled_date 10000-01-01 is out of range"),
    ("BC date", "scheduled_date = '0044-03-15 BC'", "scheduled_date 0044-03-15 BC is out of range"),
    ("retry_at past 9999", "retry_at = '9999-12-31T23:00:00-12:00'",
     "retry_at 10000-01-01 11:00:00+00 is out of range"),
    ("24:00", "scheduled_time = '24:00'", "scheduled_time 24:00:00 is not a time of day"),
    ("unknown zone", "timezone = 'Mars/Olympus'", "unknown timezone 'Mars/Olympus'"),
    ("attempt_count max", "attempt_count = 2147483647", "attempt_count is at its maximum"),
    ("schedule_version max", "schedule_version = 9223372036854775807", "schedule_version is at its maximum"),
]


Made = dict[str, tuple[uuid.UUID, str]]


async def poison_rows(db: asyncpg.Connection, campaign: uuid.UUID, due: dt.datetime) -> Made:
    """One scheduled row per POISON entry, due at ``due`` but for its poison, written with
    the triggers off (as before 004, or by an owner): no notification, no write-time rule."""
    made = {}
    async with db.transaction():
        await db.execute("SET LOCAL session_replication_role = replica")
        for what, assignment, reason in POISON:
            post = await insert_post(db, campaign, due, content=what)
            await db.execute(f"UPDATE content_posts SET {assignment} WHERE id = $1", post)
            made[what] = (post, reason)
    return made


async def drafts_with_reasons(db: asyncpg.Connection, watcher: Watcher, made: Made) -> None:
    await watcher.wait_all([post for post, _ in made.values()], "draft", timeout=15)
    for what, (post, reason) in made.items():
        message = await db.fetchval("SELECT error_message FROM content_posts WHERE id = $1", post)
        assert reason in (message or ""), (what, message)


async def test_rows_python_cannot_hold_end_as_drafts_at_boot_and_at_a_resync(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    async with Receiver() as rx:
        campaign, _ = await make_user(db, "webhook", metadata={"url": rx.url + "/poison"})
        due = soon(1.5)
        at_boot = await poison_rows(db, campaign, due)
        bystander = Bystander(db, rx)
        await bystander.schedule(due)
        running = await start_daemon()  # default settings but the suite's (tests/conftest.py)
        await bystander.published_once_on_time(watcher)
        await drafts_with_reasons(db, watcher, at_boot)

        later = soon(1.5)
        at_resync = await poison_rows(db, campaign, later)
        second = Bystander(db, rx)
        await second.schedule(later)
        running.daemon.resync()  # what SIGHUP does: the load meets them now
        await second.published_once_on_time(watcher)
        await drafts_with_reasons(db, watcher, at_resync)
        assert not running.task.done(), "the daemon stopped"
    assert not [a for a in rx.arrivals if a.path == "/poison"], "a poison row was published"


async def notify(db: asyncpg.Connection, payload: Any) -> None:
    await db.execute("SELECT pg_notify($1, $2)", CHANNEL, payload if isinstance(payload, str) else json.dumps(payload))


def forged(post: uuid.UUID, op: str, version: int, when: dt.datetime, **extra: Any) -> dict[str, Any]:
    local = when.astimezone(UTC)
    return {"op": op, "id": str(post), "status": "scheduled", "date": local.date().isoformat(),
            "time": local.time().isoformat(), "tz": "UTC", "retry_at": None, "version": version,
            "was_publishing": False, **extra}


WAITING_FOR_THE_LOCK = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'content_posts'::regclass"


async def load_waits_on_the_lock(db: asyncpg.Connection) -> None:
    """Until a session waits for a lock on content_posts: the catalog is the only witness
    (no event to wait on), so it is read again on every turn, bounded."""
    async with asyncio.timeout(10):
        while not await db.fetchval(WAITING_FOR_THE_LOCK):  # noqa: ASYNC110 - see the docstring
            await asyncio.sleep(0.01)


async def test_forged_notifications_publish_nothing_early_and_stop_nothing(
    dsn: str, db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    async with Receiver() as rx:
        campaign, _ = await make_user(db, "webhook", metadata={"url": rx.url + "/target"})
        running = await start_daemon()
        dispatcher = running.daemon.dispatcher
        in_an_hour = soon(3600)
        target = await insert_post(db, campaign, in_an_hour, content="due in an hour")
        version = await db.fetchval("SELECT schedule_version FROM content_posts WHERE id = $1", target)
        async with db.transaction():  # a row no timer knows yet (written with the triggers off)
            await db.execute("SET LOCAL session_replication_role = replica")
            hidden = await insert_post(db, campaign, in_an_hour, content="hidden, due in an hour")
        bystander = Bystander(db, rx)
        due = soon(2.0)
        await bystander.schedule(due)

        now = dt.datetime.now(UTC)
        with structlog.testing.capture_logs() as logs:
            # The pair: a delete, then an update with the real version and date = now.
            await notify(db, forged(target, "D", version, now))
            await notify(db, forged(target, "U", version, now))
            await notify(db, forged(hidden, "U", 0, now))  # the only timer it has: armed for now
            # A higher version, so the timer moves; versions at and past bigint; garbage.
            await notify(db, forged(target, "U", version + 1, now))
            await notify(db, forged(target, "U", 2**63 - 1, now))
            await notify(db, forged(target, "U", 10**30, now))
            await notify(db, forged(target, "U", -(10**30), now))
            await notify(db, forged(target, "I", version + 2, now, tz="x" * 5000))
            await notify(db, forged(target, "U", version + 3, now, date="10000-01-01"))
            await notify(db, '{"op": "U", "id": "not-a-uuid"}')
            await notify(db, "[" * 7000)
            # A retry_at past 9999 in UTC, while a resync loads the table (held by a lock, so
            # the listener buffers the payloads and replays them after the load).
            other = await asyncpg.connect(dsn)
            try:
                async with other.transaction():
                    await other.execute("LOCK TABLE content_posts IN ACCESS EXCLUSIVE MODE")
                    running.daemon.resync()
                    await load_waits_on_the_lock(db)
                    await notify(db, forged(target, "U", version + 4, now, retry_at="9999-12-31T23:00:00-12:00"))
                    await notify(db, forged(bystander.post, "U", 10**30, now))  # type: ignore[arg-type]
            finally:
                await other.close()
            # A flood of TRUNCATEs, each in its own transaction (PostgreSQL folds repeats in one).
            for _ in range(200):
                await notify(db, {"op": "T"})
            await bystander.published_once_on_time(watcher)
            sentinel = await insert_post(db, campaign, soon(0.3), content="sentinel")
            await watcher.wait(sentinel, "published")
        assert not running.task.done(), "the daemon stopped"
        loads = [e for e in logs if e["event"] == "schedule loaded"]
        assert len(loads) == 2, f"{len(loads)} loads: one resync for the lock, one for the TRUNCATE flood"
        status, due_at = await db.fetchrow("SELECT status, due_at FROM content_posts WHERE id = $1", target)
        assert status == "scheduled"
        armed = dispatcher.timers.get(target)
        assert armed is not None and abs(armed.due - due_at.timestamp()) < 0.001, (armed, due_at)
        assert abs(armed.due - in_an_hour.timestamp()) < 0.001
        hidden_armed = dispatcher.timers.get(hidden)  # the claim said: early, and armed it at its instant
        assert hidden_armed is not None and abs(hidden_armed.due - in_an_hour.timestamp()) < 0.001
        assert await db.fetchval("SELECT status FROM content_posts WHERE id = $1", hidden) == "scheduled"
    assert [a.json()["content"] for a in rx.arrivals if a.path == "/target"] == ["sentinel"]


async def test_the_claim_refuses_a_row_that_is_not_due(db: asyncpg.Connection) -> None:
    """The statement itself: asked for a row due in an hour at its real version, it claims
    nothing and answers with the real instant; a row at another version answers with its own."""
    campaign, _ = await make_user(db)
    in_an_hour = soon(3600)
    post = await insert_post(db, campaign, in_an_hour)
    version = await db.fetchval("SELECT schedule_version FROM content_posts WHERE id = $1", post)
    [early] = await db.fetch(q("claim"), [post], [version], "vm1", 1.025, 3600.0)
    [moved] = await db.fetch(q("claim"), [post], [version + 7], "vm1", 1.025, 3600.0)
    assert (early["verdict"], early["id"], early["asked_version"]) == ("early", None, version)
    assert (moved["verdict"], moved["asked_version"]) == ("moved", version)
    assert early["due_us"] == moved["due_us"] == round(in_an_hour.timestamp() * 1_000_000)
    assert await db.fetchval("SELECT status FROM content_posts WHERE id = $1", post) == "scheduled"


# -- hypothesis: whatever a row holds, the load and the claim answer for it -------------------

SQL_DATES = st.one_of(st.dates().map(dt.date.isoformat),
                      st.sampled_from(["10000-01-01", "0044-03-15 BC", "4713-01-01 BC", "294276-12-31", "infinity",
                                       "-infinity", "0001-01-01", "9999-12-31", "2024-03-10", "2024-11-03"]))
SQL_TIMES = st.one_of(st.times().map(dt.time.isoformat), st.sampled_from(["24:00:00", "02:30:00", "01:30:00"]))
SQL_ZONES = st.sampled_from(["UTC", "America/New_York", "Europe/Paris", "Pacific/Kiritimati", "Etc/GMT+12",
                             "Mars/Olympus", "europe/paris", "", "EST5EDT", "posixrules"])
SQL_RETRIES = st.one_of(st.none(), st.datetimes(timezones=st.just(UTC)).map(dt.datetime.isoformat),
                        st.sampled_from(["9999-12-31T23:00:00-12:00", "infinity", "0001-01-01T00:00:00+14:00",
                                         "294276-12-31T00:00:00+00:00", "4713-01-01 00:00:00+00 BC"]))
ROW_VALUES = st.fixed_dictionaries({
    "scheduled_date": st.one_of(st.none(), SQL_DATES), "scheduled_time": st.one_of(st.none(), SQL_TIMES),
    "timezone": SQL_ZONES, "retry_at": SQL_RETRIES,
    "attempt_count": st.one_of(st.integers(0, 3), st.just(2**31 - 1), st.integers(0, 2**31 - 1)),
    "schedule_version": st.one_of(st.integers(0, 3), st.just(2**63 - 1), st.integers(0, 2**63 - 1)),
})
RAW_INSERT = (
    "INSERT INTO content_posts (campaign_id, platform, status, scheduled_date, scheduled_time, timezone, retry_at,"
    " attempt_count, schedule_version) VALUES ($1, 'webhook', 'scheduled', $2::text::date, $3::text::time, $4,"
    " $5::text::timestamptz, $6, $7) RETURNING id"
)
RAW_COLUMNS = ("scheduled_date", "scheduled_time", "timezone", "retry_at", "attempt_count", "schedule_version")
CLAIM_ANY = (1e11, 1e11)  # seconds ahead, seconds of grace: any instant PostgreSQL can hold near now


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=ROW_VALUES)
async def test_whatever_a_row_holds_the_load_and_the_claim_answer_without_failing(
    db: asyncpg.Connection, values: dict[str, Any]
) -> None:
    """Written with the triggers off (no rule, no due_at), rolled back after. The load gives
    an instant or a reason; an instant is the one due.py computes from the same fields; the
    claim of that row next to a good one never fails, and the good one is claimed."""
    await init_connection(db)
    campaign = await db.fetchval("SELECT id FROM content_campaigns LIMIT 1") or (await make_user(db))[0]
    transaction = db.transaction()
    await transaction.start()
    try:
        await db.execute("SET LOCAL session_replication_role = replica")
        try:
            post = await db.fetchval(RAW_INSERT, campaign, *(values[c] for c in RAW_COLUMNS))
        except (asyncpg.DataError, asyncpg.DatetimeFieldOverflowError):
            event("refused by PostgreSQL itself")
            return  # a value PostgreSQL itself refuses: nothing to load
        good = await insert_post(db, campaign, soon(0.0), content="good")
        await db.execute("SET LOCAL session_replication_role = origin")
        loaded = {r["id"]: rows.loaded_row(r) for r in await db.fetch(q("load_scheduled"))}
        row = loaded[post]
        assert (row.due is None) == bool(row.problem), row
        event("armed" if row.due is not None else "draft with a reason")
        if row.due is not None:
            python = await python_due(db, post)
            assert python is not None, (values, row.due)
            # Before 1970 the two tz databases may differ (PostgreSQL's own copy against the
            # system's: tzdata 2024b made EST5EDT a link to America/New_York, with its LMT).
            assert row.due < 0 or abs(python - row.due) < 1e-6, (values, python, row.due)
        result = rows.claim_result(await db.fetch(
            q("claim"), [post, good], [values["schedule_version"], loaded[good].version], "hypothesis", *CLAIM_ANY),
            100_000)
        assert good in result.due
        verdicts = {v.id for v in result.rearm + result.missed + result.unschedulable} | set(result.due)
        assert post in verdicts and (post in result.due) == (row.due is not None and abs(row.due - time.time()) < 1e11)
    finally:
        await transaction.rollback()


async def python_due(db: asyncpg.Connection, post: uuid.UUID) -> float | None:
    """due.py on the row's own fields, where Python can read them at all."""
    try:  # retry_at alone first: when set, nothing else decides (and the rest may not decode)
        retry = await db.fetchval("SELECT retry_at FROM content_posts WHERE id = $1", post)
        if retry is not None:
            return due_instant(ScheduleKey(None, None, "UTC", retry)).timestamp()
        record = await db.fetchrow(
            "SELECT scheduled_date, scheduled_time, timezone FROM content_posts WHERE id = $1", post)
        key = ScheduleKey(record["scheduled_date"], record["scheduled_time"], record["timezone"])
        return due_instant(key).timestamp()
    except (ValueError, OverflowError, InvalidScheduleError):
        return None


async def test_a_forged_later_instant_postpones_nothing(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    """Forged payloads with ever higher versions move a post due in 1.5 s to next year: it
    still goes out once, on time (a payload moves a timer earlier only; the claim at the
    earlier instant answers with the row's own)."""
    async with Receiver() as rx:
        running = await start_daemon()
        victim = Bystander(db, rx)
        due = soon(1.5)
        post = await victim.schedule(due)
        version = await db.fetchval("SELECT schedule_version FROM content_posts WHERE id = $1", post)
        next_year = due + dt.timedelta(days=365)
        for bump in (1, 2, 1000):
            await notify(db, forged(post, "U", version + bump, next_year))
        await victim.published_once_on_time(watcher)
        assert not running.task.done()
