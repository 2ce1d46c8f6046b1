"""Stop, reload and restart: in-flight work finishes or is accounted for, nothing is lost."""

from __future__ import annotations

import datetime as dt

import asyncpg
import structlog

from scheduler_daemon.testing.receiver import Receiver, Reply
from support.helpers import insert_post, make_user, row, soon


async def test_stop_lets_an_in_flight_publish_finish_and_records_it(db, watcher, start_daemon) -> None:
    async with Receiver(lambda a: Reply(200, {"id": "slow-ok"}, delay=0.5)) as rx:
        campaign, _ = await make_user(db, metadata={"url": rx.url})
        running = await start_daemon()
        post = await insert_post(db, campaign, soon(0.2))
        await rx.wait_for(1)  # the request is at the platform, the answer not yet back
        await running.stop()
    r = await row(db, post)
    assert (r["status"], r["platform_post_id"]) == ("published", "slow-ok")


async def test_shutdown_timeout_records_an_unknown_outcome(db, watcher, start_daemon) -> None:
    async with Receiver(lambda a: Reply(hang=True)) as rx:
        campaign, _ = await make_user(db, metadata={"url": rx.url})
        running = await start_daemon(shutdown_timeout_seconds=0.2, http_timeout_seconds=30)
        post = await insert_post(db, campaign, soon(0.2))
        await rx.wait_for(1)
        await running.stop()
    r = await row(db, post)
    assert r["status"] == "draft"
    assert "stopped while publishing" in r["error_message"] and "check webhook" in r["error_message"]


async def test_rows_left_publishing_by_a_dead_daemon_become_drafts_with_the_reason(db, watcher, start_daemon) -> None:
    campaign, _ = await make_user(db)
    post = await insert_post(db, campaign, soon(-5))
    await db.execute(
        "UPDATE content_posts SET status = 'publishing', claimed_by = 'ghost:1', attempt_count = 1,"
        " claimed_at = now() - interval '10 minutes' WHERE id = $1", post,
    )
    await start_daemon()  # claimed longer ago than a whole attempt's deadline: nothing can be under way
    await watcher.wait(post, "draft")
    r = await row(db, post)
    assert r["error_message"].startswith("outcome unknown: the daemon publishing this post (ghost:1) stopped")
    [attempt] = await db.fetch("SELECT outcome, instance FROM publish_attempts WHERE post_id = $1", post)
    assert (attempt["outcome"], attempt["instance"]) == ("unknown", "ghost:1")


async def test_a_live_daemons_rows_are_left_alone(db, dsn, start_daemon) -> None:
    campaign, _ = await make_user(db)
    post = await insert_post(db, campaign, soon(-5))
    # The liveness session of a running daemon whose run is 'alive:7' (db/liveness.py).
    other = await asyncpg.connect(dsn)
    try:
        await other.execute("SELECT pg_advisory_lock(hashtextextended('alive:7', 0))")
        await db.execute(
            "UPDATE content_posts SET status = 'publishing', claimed_by = 'alive:7',"
            " claimed_at = now() - interval '10 minutes' WHERE id = $1", post,
        )
        running = await start_daemon(recovery_after_seconds=0)
        assert running.daemon.recovery is not None
        running.daemon.recovery.observe(["alive:7"])  # even if a heartbeat had named it
        await running.daemon.recovery.recover()
        assert (await row(db, post))["status"] == "publishing"
    finally:
        await other.close()


async def test_own_rows_whose_claim_answer_was_lost_are_published(db, watcher, start_daemon, settings) -> None:
    async with Receiver() as rx:
        campaign, _ = await make_user(db, metadata={"url": rx.url})
        running = await start_daemon()
        post = await insert_post(db, campaign, soon(3600))
        # As if this run's claim had committed but its answer was lost on the way back.
        await db.execute(
            "UPDATE content_posts SET status = 'publishing', claimed_by = $2, claimed_at = now() WHERE id = $1",
            post, running.daemon.run_id,
        )
        running.daemon.resync()
        await watcher.wait(post, "published")
    assert len(rx.arrivals) == 1


async def test_a_restarted_instance_does_not_take_its_predecessors_claims_for_its_own(
    db, watcher, start_daemon, settings
) -> None:
    """Same SCHEDULER_INSTANCE_ID, new run: the old run's request may have gone out."""
    async with Receiver() as rx:
        campaign, _ = await make_user(db, metadata={"url": rx.url})
        post = await insert_post(db, campaign, soon(-1))
        await db.execute(
            "UPDATE content_posts SET status = 'publishing', claimed_by = $2,"
            " claimed_at = now() - interval '10 minutes' WHERE id = $1",
            post, f"0badc0de@{settings.instance_id}",
        )
        await start_daemon()
        await watcher.wait(post, "draft")
    assert rx.arrivals == [] and "outcome unknown" in (await row(db, post))["error_message"]


async def test_a_pending_retry_survives_a_restart(db, watcher, start_daemon) -> None:
    async with Receiver() as rx:
        campaign, _ = await make_user(db, metadata={"url": rx.url})
        post = await insert_post(db, campaign, soon(-30))
        retry_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=0.5)
        await db.execute(
            "UPDATE content_posts SET retry_at = $2, attempt_count = 1, error_message = 'retrying' WHERE id = $1",
            post, retry_at,
        )
        await start_daemon()
        await watcher.wait(post, "published")
    assert rx.arrivals[0].wall >= retry_at.timestamp() - 0.005


async def test_resync_picks_up_rows_written_without_notifications(db, watcher, start_daemon) -> None:
    async with Receiver() as rx:
        campaign, _ = await make_user(db, metadata={"url": rx.url})
        running = await start_daemon()
        async with db.transaction():
            await db.execute("SET LOCAL session_replication_role = replica")  # triggers off: no NOTIFY
            post = await insert_post(db, campaign, soon(0.5))
        assert post not in running.daemon.dispatcher.timers
        running.daemon.resync()  # what SIGHUP does
        await watcher.wait(post, "published", timeout=10)
    assert len(rx.arrivals) == 1


async def test_stop_does_not_hang_when_the_database_refuses_outcomes(db, watcher, start_daemon) -> None:
    """A schema the daemon cannot write to (here: publish_attempts renamed away) must not
    keep it from stopping; the unrecorded outcome is logged for the operator instead."""
    async with Receiver() as rx:
        campaign, _ = await make_user(db, metadata={"url": rx.url})
        running = await start_daemon()
        await db.execute("ALTER TABLE publish_attempts RENAME TO publish_attempts_gone")
        post = await insert_post(db, campaign, soon(0.2))
        with structlog.testing.capture_logs() as logs:
            await rx.wait_for(1)
            await running.stop()  # bounded by the fixture's timeout
    lost = [e for e in logs if e["event"] == "outcome not recorded: the database refused it until shutdown"]
    assert [(e["post_id"], e["status"], e["platform_post_id"]) for e in lost] == [(str(post), "published", "r-1")]
