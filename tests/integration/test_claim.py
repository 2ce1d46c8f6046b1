"""The claim against the real database with more than one replica: rows locked by another
transaction are skipped (never waited on) and come back 'busy', a busy row whose holder
rolls back is still published once, and each replica sends a batch in its own order."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from scheduler_daemon.db.repository import CLAIM_SLACK_SECONDS, Repository, create_pool
from scheduler_daemon.db.sql import q
from scheduler_daemon.engine.burst import BURST_POSTS
from scheduler_daemon.engine.claim_order import BUSY_RETRY_SECONDS
from scheduler_daemon.models import ClaimResult
from scheduler_daemon.testing.receiver import Receiver
from support.helpers import Watcher, insert_post, make_user, row, soon

LEAD = 0.025 + CLAIM_SLACK_SECONDS  # the repository's defaults
GRACE = 300.0


@pytest.fixture
async def repository(dsn: str) -> AsyncIterator[Repository]:
    pool = await create_pool(dsn, instance_id="run-a@replica-a")
    try:
        yield Repository(pool, "run-a@replica-a")
    finally:
        await pool.close()


@pytest.fixture
async def holder(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A second session: another replica, or a user holding a row in an open transaction."""
    conn = await asyncpg.connect(dsn)
    yield conn
    await conn.close()


async def due_posts(db: asyncpg.Connection, n: int) -> list[tuple[uuid.UUID, int]]:
    """``n`` posts due a second ago (now, not at import: a test may run minutes after it), with their versions."""
    campaign, _ = await make_user(db, "webhook", metadata={"url": "http://127.0.0.1:9/hook"})
    ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    ids = [await insert_post(db, campaign, ago) for _ in range(n)]
    return [(i, await db.fetchval("SELECT schedule_version FROM content_posts WHERE id = $1", i)) for i in ids]


async def other_replica_claims(holder: asyncpg.Connection, items: list[tuple[uuid.UUID, int]]) -> list[Any]:
    """Another replica's claim, inside a transaction the caller leaves open (its rows stay locked)."""
    ids, versions = zip(*items, strict=True)
    return await holder.fetch(q("claim"), list(ids), list(versions), "run-b@replica-b", LEAD, GRACE)


async def test_rows_another_claim_holds_are_skipped_busy_and_the_rest_claimed(
    db: asyncpg.Connection, repository: Repository, holder: asyncpg.Connection
) -> None:
    items = await due_posts(db, 6)
    held = items[:3]
    tx = holder.transaction()
    await tx.start()
    try:
        assert {r["verdict"] for r in await other_replica_claims(holder, held)} == {"due"}
        # The claim does not wait on the held rows: it returns at once (well inside the timeout).
        async with asyncio.timeout(5):
            result = await repository.claim(items)
        assert sorted(p.id for p in result.won) == sorted(i for i, _ in items[3:])
        assert sorted((v.id, v.version, v.due) for v in result.busy) == sorted((i, v, None) for i, v in held)
        assert not (result.rearm or result.missed or result.unschedulable)
    finally:
        await tx.commit()
    # Committed: the other replica has them, and asking again finds nothing to do.
    again = await repository.claim(held)
    assert (len(again), again.busy, again.rearm, again.missed, again.unschedulable) == (0, [], [], [], [])
    owners = {r["id"]: r["claimed_by"] for r in await db.fetch("SELECT id, claimed_by FROM content_posts")}
    assert {owners[i] for i, _ in held} == {"run-b@replica-b"}
    assert {owners[i] for i, _ in items[3:]} == {"run-a@replica-a"}


async def test_a_busy_row_whose_holder_rolls_back_is_claimed_by_the_next_claim(
    db: asyncpg.Connection, repository: Repository, holder: asyncpg.Connection
) -> None:
    [item] = await due_posts(db, 1)
    tx = holder.transaction()
    await tx.start()
    await other_replica_claims(holder, [item])
    busy = await repository.claim([item])
    await tx.rollback()  # the other replica died mid-claim
    assert [v.id for v in busy.busy] == [item[0]] and not busy.won
    won = await repository.claim([item])
    assert [p.id for p in won.won] == [item[0]]
    assert (await row(db, item[0]))["claimed_by"] == "run-a@replica-a"


async def test_a_row_held_by_a_user_transaction_is_busy_and_the_verdicts_read_the_locked_row(
    db: asyncpg.Connection, repository: Repository, holder: asyncpg.Connection
) -> None:
    """A user's open UPDATE holds the row: busy. Once it commits a new instant, the claim
    judges the newest row (moved, with its version), not the timer's stale one."""
    [item] = await due_posts(db, 1)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    tx = holder.transaction()
    await tx.start()
    await holder.execute("UPDATE content_posts SET scheduled_date = $2, scheduled_time = $3 WHERE id = $1",
                         item[0], later.date(), later.time().replace(tzinfo=None))
    assert [v.id for v in (await repository.claim([item])).busy] == [item[0]]
    await tx.commit()
    result = await repository.claim([item])
    version = await db.fetchval("SELECT schedule_version FROM content_posts WHERE id = $1", item[0])
    assert [(v.id, v.version) for v in result.rearm] == [(item[0], version)] and version > item[1]
    assert result.rearm[0].due == pytest.approx(later.timestamp(), abs=1)


async def test_the_claim_plan_stays_linear_in_the_batch(db: asyncpg.Connection) -> None:
    """Each id is locked by its own primary-key lookup, and no nested loop repeats a scan
    (of a CTE, the ids or a table) per row: 1,000 ids cost 1,000 lookups, not a million."""
    campaign, _ = await make_user(db, "webhook", metadata={"url": "http://127.0.0.1:9/hook"})
    now = dt.datetime.now(dt.timezone.utc)
    await db.execute(
        "INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time, timezone)"
        " SELECT $1, 'webhook', 'x', 'scheduled', $2::date, $3::time, 'UTC' FROM generate_series(1, 5000)",
        campaign, now.date(), now.time().replace(tzinfo=None))
    await db.execute("ANALYZE content_posts")
    items = await db.fetch("SELECT id, schedule_version FROM content_posts LIMIT 1000")
    ids, versions = [r["id"] for r in items], [r["schedule_version"] for r in items]
    [[plan]] = await db.fetch("EXPLAIN (FORMAT JSON) " + q("claim"), ids, versions, "explain", LEAD, GRACE)
    nodes: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        nodes.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
    locks = [n for n in nodes if n["Node Type"] == "LockRows"]
    assert len(locks) == 1, "one lock, per id"
    [lookup] = locks[0]["Plans"]
    assert (lookup["Node Type"], lookup["Index Name"]) == ("Index Scan", "content_posts_pkey"), lookup
    for loop in (n for n in nodes if n["Node Type"] == "Nested Loop"):
        inner = loop["Plans"][1]
        assert inner["Node Type"] not in ("CTE Scan", "Function Scan", "Seq Scan", "Materialize"), \
            [(n["Node Type"], n.get("Relation Name"), n.get("CTE Name")) for n in nodes]


async def busy_claims(dispatcher: Any, post: uuid.UUID, count: int) -> list[float]:
    """Watch the daemon's claims (a wrapper on its repository's, left in place) until ``count``
    of them have found ``post`` busy; the loop times at which they did."""
    times: list[float] = []
    enough = asyncio.Event()
    real_claim = dispatcher.repository.claim

    async def claim(items: Any, **options: Any) -> ClaimResult:
        result: ClaimResult = await real_claim(items, **options)
        if any(v.id == post for v in result.busy):
            times.append(asyncio.get_running_loop().time())
            if len(times) >= count:
                enough.set()
        return result

    dispatcher.repository.claim = claim
    async with asyncio.timeout(10):  # claimed again every BUSY_RETRY_SECONDS (doubling) while held
        await enough.wait()
    return times


async def test_a_post_held_by_a_dying_replicas_claim_is_published_once_by_the_survivor(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any, holder: asyncpg.Connection
) -> None:
    """Another replica's claim holds the row when the daemon's timer fires; the daemon skips
    it (busy), and once that claim rolls back (its replica crashed mid-claim) the daemon's
    next claim takes it: published once, by the daemon."""
    async with Receiver() as rx:
        campaign, _ = await make_user(db, "webhook", metadata={"url": rx.url + "/hook"})
        post = await insert_post(db, campaign, soon(0.8))
        version = await db.fetchval("SELECT schedule_version FROM content_posts WHERE id = $1", post)
        tx = holder.transaction()
        await tx.start()
        try:
            # The other replica takes it first and has not committed when the daemon's timer fires.
            assert [r["verdict"] for r in await other_replica_claims(holder, [(post, version)])] == ["due"]
            running = await start_daemon(instance_id="survivor")
            await busy_claims(running.daemon.dispatcher, post, 1)
        finally:
            await tx.rollback()  # the other replica died mid-claim
        await watcher.wait(post, "published", timeout=10)
        [arrival] = await rx.wait_for(1)
    assert arrival.json()["post_id"] == str(post)
    attempts = await db.fetch("SELECT instance, outcome FROM publish_attempts WHERE post_id = $1", post)
    assert [(a["instance"].split("@")[1], a["outcome"]) for a in attempts] == [("survivor", "published")]


async def test_a_busy_post_inside_a_burst_window_is_claimed_again_after_its_delay_not_at_once(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any, holder: asyncpg.Connection
) -> None:
    """A burst claims every timer due within its window (2 s ahead): a busy post put back among
    the timers would be claimed again at once, round trip after round trip, for as long as its
    row is held. It is parked instead, and claimed again after BUSY_RETRY_SECONDS, doubling."""
    async with Receiver() as rx:
        campaign, _ = await make_user(db, "webhook", metadata={"url": rx.url + "/hook"})
        due = soon(1.8)
        posts = [await insert_post(db, campaign, due) for _ in range(BURST_POSTS + 20)]
        held = posts[0]
        tx = holder.transaction()
        await tx.start()
        try:
            await holder.execute("SELECT 1 FROM content_posts WHERE id = $1 FOR UPDATE", held)
            running = await start_daemon(instance_id="burst")
            skips = await busy_claims(running.daemon.dispatcher, held, 3)
        finally:
            await tx.rollback()
        for post in posts:
            await watcher.wait(post, "published", timeout=10)
        await rx.wait_for(len(posts))
    gaps = [later - earlier for earlier, later in itertools.pairwise(skips)]
    assert gaps[0] >= BUSY_RETRY_SECONDS * 0.9 and gaps[1] >= 2 * BUSY_RETRY_SECONDS * 0.9, gaps
