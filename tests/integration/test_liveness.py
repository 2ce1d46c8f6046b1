"""Liveness and recovery (issue 9, items 1, 3 and 6): who is dead, and what becomes of its rows.

* A claim that commits while recovery runs is never taken for a lost one (the claim gate).
* A run is alive while it holds its advisory lock: a listener in reconnect, an instance id
  that pg_stat_activity garbles, change nothing; a run whose lock is gone is dead.
* A dead run's rows: a deduplicating platform's post is published again while inside the
  platform's window, and past it is an unknown outcome; any other post waits for the dead
  run's request deadline, then is an unknown outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from scheduler_daemon.clock import ManualClock
from scheduler_daemon.db.repository import Repository, create_pool
from scheduler_daemon.engine.recovery import Recovery
from scheduler_daemon.testing.receiver import Receiver, Reply
from support.helpers import Watcher, insert_post, make_user, row, soon
from support.platforms.cases import settings as platform_settings
from support.platforms.fakes.mastodon import MastodonFake

GHOST = "0badc0de@ghost"  # a run id of a daemon that is gone (nobody holds its lock)


@pytest.fixture(autouse=True)
async def _server_up_for_a_while(db: asyncpg.Connection) -> None:
    """For 5 s after a server start nobody is taken for dead (sql/daemon.sql ``heartbeat``):
    a test early in the session waits that out. A wait for a time, not for an event."""
    left = await db.fetchval("SELECT 5.2 - extract(epoch FROM now() - pg_postmaster_start_time())::float8")
    if left > 0:
        await asyncio.sleep(left)


async def _hold_publishing(db: asyncpg.Connection, post: uuid.UUID, run: str, *, age_s: float = 0.0,
                           first_sent_s: float | None = None) -> None:
    state = {} if first_sent_s is None else {
        "first_sent_at": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=first_sent_s)).isoformat()}
    await db.execute(
        "UPDATE content_posts SET status = 'publishing', claimed_by = $2, attempt_count = 1,"
        " claimed_at = now() - make_interval(secs => $3), publish_state = $4::jsonb WHERE id = $1",
        post, run, age_s, json.dumps(state),
    )


@contextlib.asynccontextmanager
async def _run_lock(dsn: str, run: str) -> AsyncIterator[asyncpg.Connection]:
    """Another run's liveness session (as db/liveness.py holds it), named as PostgreSQL shows it."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": f"scheduler-daemon:{run}"})
    try:
        assert await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", run)
        yield conn
    finally:
        await conn.close()


async def _dead_runs(repository: Repository) -> tuple[str, ...]:
    async with repository.pool.acquire() as conn:
        return (await repository.heartbeat(conn)).dead_runs


# -- item 1: the claim gate ----------------------------------------------------------------


async def test_a_claim_made_while_recovery_runs_is_never_released(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    """Force the interleaving of the duplicate seen on a busy machine: recovery snapshots
    what is in flight, then the dispatcher claims a post that fell due, then recovery's
    release_own runs. The claim waits for the gate, so release_own cannot see it as an
    orphan of ours: one claim, one send."""
    # The answer takes a while, so that without the gate the row would still be 'publishing'
    # when release_own runs (the gate does not depend on it).
    async with Receiver(lambda a: Reply(200, {"id": "once"}, delay=1.5)) as rx:
        campaign, _ = await make_user(db, metadata={"url": rx.url})
        running = await start_daemon()
        daemon = running.daemon
        dispatcher, recovery = daemon.dispatcher, daemon.recovery
        assert dispatcher is not None and recovery is not None
        posts: list[uuid.UUID] = []

        async def claim_between_snapshot_and_release() -> None:
            posts.append(await insert_post(db, campaign, soon(-1), content="due during recovery"))
            async with asyncio.timeout(10):
                while posts[0] not in dispatcher.in_flight():  # noqa: ASYNC110 - the dispatcher has no event for it
                    await asyncio.sleep(0.005)
            # Without the gate the claim commits now, before release_own below.
            with contextlib.suppress(TimeoutError):
                await watcher.wait(posts[0], "publishing", timeout=1.0)

        forced = Recovery(
            recovery.repository, after_seconds=recovery.after_seconds, request_seconds=recovery.request_seconds,
            attempt_seconds=recovery.attempt_seconds, windows=recovery.windows, in_flight=dispatcher.in_flight,
            claim_gate=dispatcher.claim_gate, clock=recovery.clock, after_snapshot=claim_between_snapshot_and_release,
        )
        released = await forced.recover()
        [post] = posts
        assert released == []
        await watcher.wait(post, "published")
        await running.stop()
    assert [a.headers["idempotency-key"] for a in rx.arrivals] == [str(post)]
    attempts = await db.fetch("SELECT outcome FROM publish_attempts WHERE post_id = $1", post)
    assert [a["outcome"] for a in attempts] == ["published"]
    assert (await row(db, post))["attempt_count"] == 1


# -- item 3: liveness that cannot be spoofed or garbled -------------------------------------


async def test_a_run_whose_listener_is_away_is_alive_and_one_whose_lock_is_gone_is_dead(
    db: asyncpg.Connection, dsn: str, daemon_on: Any
) -> None:
    """The lock lives on a session of its own: a listener that is reconnecting (here: gone
    altogether) leaves the run alive. Its liveness session gone, the run is dead."""
    campaign, _ = await make_user(db)
    away = await daemon_on(dsn)
    survivor = await daemon_on(dsn)
    assert away.daemon.listener is not None and away.daemon.liveness is not None
    await away.daemon.listener.stop()
    post = await insert_post(db, campaign, soon(-5))
    await _hold_publishing(db, post, away.daemon.run_id, age_s=600)
    recovery = survivor.daemon.recovery
    assert recovery is not None
    repository = recovery.repository
    assert away.daemon.run_id not in await _dead_runs(repository)
    recovery.observe([away.daemon.run_id])  # even if it had been named: the sweep checks again
    recovery.after_seconds = 0.0
    await recovery.sweep()
    assert (await row(db, post))["status"] == "publishing"

    await away.daemon.liveness.stop()
    assert away.daemon.run_id in await _dead_runs(repository)
    await recovery.sweep()
    r = await row(db, post)
    assert r["status"] == "draft" and f"({away.daemon.run_id}) stopped" in r["error_message"]


@pytest.mark.parametrize("run", ["a1b2c3d4@wörker-é1", "a1b2c3d4@worker-??1"])
async def test_a_live_run_is_alive_whatever_its_id_looks_like_in_pg_stat_activity(
    db: asyncpg.Connection, dsn: str, start_daemon: Any, run: str
) -> None:
    """PostgreSQL shows 'wörker-é1' as 'w?rker-?1' in application_name (and a pooler may drop
    it): the lock key is the run id itself. The second id is what the first one looks like
    there: a dead run named so is not kept alive by the first one's session."""
    campaign, _ = await make_user(db)
    post = await insert_post(db, campaign, soon(-5))
    async with _run_lock(dsn, "a1b2c3d4@wörker-é1"):
        await _hold_publishing(db, post, run, age_s=600)
        running = await start_daemon(recovery_after_seconds=0)
        recovery = running.daemon.recovery
        assert recovery is not None
        dead = await _dead_runs(recovery.repository)
        recovery.observe(dead)
        await recovery.sweep()
        status = (await row(db, post))["status"]
    if run == "a1b2c3d4@wörker-é1":
        assert (dead, status) == ((), "publishing")
    else:  # resolved by the daemon's boot sync already, or by the sweep above
        assert status == "draft"


# -- items 3 and 6: what becomes of a dead run's rows ----------------------------------------


@pytest.fixture
async def survivor(dsn: str) -> AsyncIterator[tuple[Recovery, ManualClock]]:
    """A survivor's recovery on its own clock: when a run is confirmed dead moves when the
    test says; the database's now() decides claim ages, windows and request deadlines."""
    pool = await create_pool(dsn, instance_id="feedface@survivor")
    clock = ManualClock(time.time())
    recovery = Recovery(
        Repository(pool, "feedface@survivor"), after_seconds=2.0, request_seconds=30.0, attempt_seconds=300.0,
        windows={"mastodon": 3300.0, "bluesky": 1e9}, in_flight=set, claim_gate=asyncio.Lock(), clock=clock,
    )
    try:
        yield recovery, clock
    finally:
        await pool.close()


async def test_a_dead_runs_posts_are_repeated_inside_the_window_and_unknown_after_the_request_deadline(
    db: asyncpg.Connection, survivor: tuple[Recovery, ManualClock]
) -> None:
    recovery, clock = survivor
    campaign, _ = await make_user(db)
    fresh = await insert_post(db, campaign, soon(-5), platform="mastodon", content="first sent just now")
    late = await insert_post(db, campaign, soon(-5), platform="mastodon", content="first sent 56 min ago")
    record_key = await insert_post(db, campaign, soon(-5), platform="bluesky", content="first sent a day ago")
    other = await insert_post(db, campaign, soon(-5), platform="webhook", content="no deduplication")
    old = await insert_post(db, campaign, soon(-5), platform="webhook", content="claimed 10 min ago")
    await _hold_publishing(db, fresh, GHOST)
    await _hold_publishing(db, late, GHOST, first_sent_s=56 * 60)
    await _hold_publishing(db, record_key, GHOST, first_sent_s=86400)
    await _hold_publishing(db, other, GHOST)
    await _hold_publishing(db, old, GHOST, age_s=600)

    recovery.observe(await _dead_runs(recovery.repository))
    await recovery.sweep()  # seen dead just now: nothing yet (a lock session may be reconnecting)
    statuses = {p: (await row(db, p))["status"] for p in (fresh, late, record_key, other, old)}
    assert set(statuses.values()) == {"publishing"}

    clock.advance(2.0)  # confirmed dead
    await recovery.sweep()
    assert (await row(db, fresh))["status"] == "scheduled"
    assert (await row(db, record_key))["status"] == "scheduled"
    # the window counts from the first send: a further repeat keeps that time
    assert "first_sent_at" in json.loads((await row(db, fresh))["publish_state"])
    assert (await row(db, old))["status"] == "draft"  # its whole attempt's deadline is long past
    # Their requests may still be under way: past the window, a repeat is no better than none.
    assert (await row(db, other))["status"] == "publishing"
    assert (await row(db, late))["status"] == "publishing"

    # That sweep stamped them: any survivor, even one started since, counts the wait from it.
    assert "orphaned_at" in json.loads((await row(db, other))["publish_state"])
    await db.execute(  # as if that sweep had been a request's deadline (30 s) ago
        "UPDATE content_posts SET publish_state = publish_state || jsonb_build_object('orphaned_at',"
        " now() - interval '30.5 seconds') WHERE id = ANY($1::uuid[])", [other, late])
    await recovery.sweep()
    r = await row(db, other)
    assert r["status"] == "draft" and r["error_message"].startswith(
        f"outcome unknown: the daemon publishing this post ({GHOST}) stopped before recording the result. ")
    r = await row(db, late)
    assert r["status"] == "draft"
    assert "older than mastodon's deduplication window" in r["error_message"]
    assert "check mastodon before rescheduling" in r["error_message"]
    outcomes = dict(await db.fetch("SELECT post_id, outcome FROM publish_attempts"))
    assert outcomes == {fresh: "retry", record_key: "retry", late: "unknown", old: "unknown", other: "unknown"}


async def test_a_run_whose_lock_comes_back_keeps_its_rows(
    db: asyncpg.Connection, dsn: str, survivor: tuple[Recovery, ManualClock]
) -> None:
    """Seen without its lock (its liveness session reconnecting), then holding it again
    before it was confirmed dead: nothing of it is touched."""
    recovery, clock = survivor
    campaign, _ = await make_user(db)
    post = await insert_post(db, campaign, soon(-5), platform="mastodon")
    await _hold_publishing(db, post, "cafe0001@vm-b", age_s=600)
    recovery.observe(await _dead_runs(recovery.repository))
    async with _run_lock(dsn, "cafe0001@vm-b"):
        clock.advance(60.0)
        await recovery.sweep()
        assert (await row(db, post))["status"] == "publishing"
        assert await _dead_runs(recovery.repository) == ()


# -- item 6: an unknown outcome is repeated only inside the window ----------------------------


@pytest.mark.parametrize("first_sent_minutes", [None, 56])
async def test_an_unknown_mastodon_outcome_is_repeated_only_inside_the_deduplication_window(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any, first_sent_minutes: int | None
) -> None:
    """Mastodon forgets an Idempotency-Key after an hour. Both sends of the attempt are
    committed and their answers lost: a post first sent just now is repeated (the instance
    returns its status), one first sent 56 minutes ago is an unknown outcome."""
    fake = MastodonFake()
    fake.fail = ["unknown", "unknown"]  # the attempt's send and the adapter's immediate repeat
    campaign, _ = await make_user(db, "mastodon", access_token=fake.valid_token,
                                  metadata={"instance_url": "https://mastodon.test"})
    post = await insert_post(db, campaign, soon(0.5), platform="mastodon")
    if first_sent_minutes is not None:  # as an earlier attempt kept it
        await db.execute(
            "UPDATE content_posts SET publish_state = jsonb_build_object('first_sent_at',"
            " now() - make_interval(mins => $2)) WHERE id = $1", post, first_sent_minutes)
    await start_daemon(transport=fake.transport(), platforms=platform_settings())
    status = await watcher.wait(post, "published", "draft")
    r = await row(db, post)
    assert len(fake.posts) == 1
    if first_sent_minutes is None:
        assert status == "published", r["error_message"]
        assert "first_sent_at" in json.loads(r["publish_state"])  # the next repeats count from it
        assert fake.publish_calls == 3
    else:
        assert status == "draft" and fake.publish_calls == 2
        assert "past mastodon's deduplication window" in r["error_message"]
        assert r["error_message"].startswith("outcome unknown")
