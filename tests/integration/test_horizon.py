"""The horizon (issue 16, item 5): only the posts due within SCHEDULER_HORIZON_SECONDS are
armed, with the default horizon. The daemon runs on the database's clock moved on by hand
(``AheadClock``), so a step is reached without waiting a day; its rows are all far enough
ahead that the moved clock never makes one due."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import asyncpg

from scheduler_daemon.clock import SystemClock
from scheduler_daemon.config import Settings
from scheduler_daemon.db.sql import q
from support.helpers import Watcher, insert_post, make_user, row, until

HOUR = 3600.0
HORIZON = Settings.horizon_seconds  # the default: a day
STEP_TIMEOUT = 10.0


class AheadClock(SystemClock):
    """The database's clock (re-anchored by every heartbeat), ``ahead`` seconds on."""

    def __init__(self) -> None:
        super().__init__()
        self.ahead = 0.0

    def now(self) -> float:
        return super().now() + self.ahead


def hours_ahead(hours: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours)


def armed(running: Any) -> set[uuid.UUID]:
    return {a.id for a in running.daemon.dispatcher.timers}


async def test_rows_beyond_the_horizon_are_armed_when_its_step_reaches_them(db, start_daemon) -> None:
    campaign, _ = await make_user(db)
    tomorrow = await insert_post(db, campaign, hours_ahead(HORIZON / HOUR + 6))  # a step away
    later = await insert_post(db, campaign, hours_ahead(HORIZON / HOUR + 18))  # two steps away
    clock = AheadClock()
    running = await start_daemon(clock=clock)
    stepper = running.daemon.horizon
    await asyncio.wait_for(stepper.started.wait(), STEP_TIMEOUT)  # its first step: from now on
    assert len(running.daemon.dispatcher.timers) == 0, "nothing is due within the horizon"

    stepper.stepped.clear()
    clock.ahead = HORIZON / 2 + 60  # the first step is due
    stepper.poke()
    await asyncio.wait_for(stepper.stepped.wait(), STEP_TIMEOUT)
    assert armed(running) == {tomorrow}

    stepper.stepped.clear()
    clock.ahead = HORIZON + 120  # the second step
    stepper.poke()
    await asyncio.wait_for(stepper.stepped.wait(), STEP_TIMEOUT)
    assert armed(running) == {tomorrow, later}
    assert (await row(db, later))["status"] == "scheduled"


async def test_a_notification_beyond_the_horizon_arms_nothing_until_the_row_moves_inside(db, start_daemon) -> None:
    campaign, _ = await make_user(db)
    running = await start_daemon()
    far = await insert_post(db, campaign, hours_ahead(HORIZON / HOUR + 6))
    # Notifications arrive in commit order: once the second is armed, the first was handled.
    near = await insert_post(db, campaign, hours_ahead(2))
    await until(lambda: near in running.daemon.dispatcher.timers, 5, "the post within the horizon armed")
    assert armed(running) == {near}, "the notification beyond the horizon armed nothing"

    new_date, new_time = (hours_ahead(3).date(), hours_ahead(3).time().replace(tzinfo=None))
    await db.execute("UPDATE content_posts SET scheduled_date = $2, scheduled_time = $3 WHERE id = $1",
                     far, new_date, new_time)
    await until(lambda: far in running.daemon.dispatcher.timers, 5, "the post moved into the horizon armed")
    assert armed(running) == {near, far}


async def test_rows_without_a_stored_instant_are_loaded_whatever_the_horizon_and_bad_ones_go_to_draft(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    """Rows written with the triggers off have no due_at: the boot load takes them whatever
    their instant, and the daemon turns them into drafts with the database's reason."""
    campaign, _ = await make_user(db)
    async with db.transaction():
        await db.execute("SET LOCAL session_replication_role = replica")  # no due_at, no NOTIFY
        undated = await insert_post(db, campaign, None)
        missed = await insert_post(db, campaign, hours_ahead(-3))
        beyond = await insert_post(db, campaign, hours_ahead(HORIZON / HOUR + 6))
    running = await start_daemon()
    assert await watcher.wait(undated, "draft") == "draft"
    assert await watcher.wait(missed, "draft") == "draft"
    assert "empty" in (await row(db, undated))["error_message"]
    assert (await row(db, missed))["error_message"].startswith("missed:")
    # Without a stored instant it is found too, armed at the instant the load computes.
    assert beyond in running.daemon.dispatcher.timers


async def test_each_horizon_query_is_a_range_scan_of_the_partial_index(db: asyncpg.Connection) -> None:
    """A year of schedule (50,000 rows): the boot load and a step read the index, not the table."""
    campaign, _ = await make_user(db)
    await db.execute(
        "INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time, timezone)"
        " SELECT $1, 'webhook', 'x', 'scheduled', (now() + i * interval '631 seconds')::date,"
        " (now() + i * interval '631 seconds')::time, 'UTC' FROM generate_series(1, 50000) i",
        campaign,
    )
    await db.execute("ANALYZE content_posts")
    now = dt.datetime.now(dt.timezone.utc)
    step = dt.timedelta(seconds=HORIZON / 2)
    boot = await db.fetch("EXPLAIN " + q("load_scheduled"), now + 2 * step)
    window = await db.fetch("EXPLAIN " + q("load_horizon_step"), now + 2 * step, now + 3 * step)
    for plan in (boot, window):
        text = "\n".join(r[0] for r in plan)
        assert "content_posts_due_at_scheduled" in text, text
        assert "Seq Scan" not in text, text
