"""One bad row never blocks the others: the outcome writer against the real database,
given outcomes that were never cleaned (the cleaning at the publisher is the first line;
this is the second). A NUL is refused by the server (22021), a lone surrogate by asyncpg
before anything is sent; each fails the whole batch it is in."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from scheduler_daemon.db.repository import Repository, create_pool
from scheduler_daemon.engine.writer import OutcomeWriter
from scheduler_daemon.models import Outcome, OutcomeKind, PublishResult
from support.helpers import insert_post, make_user, row

INSTANCE = "writer-test"
NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture
async def repository(dsn: str) -> AsyncIterator[Repository]:
    pool = await create_pool(dsn, instance_id=INSTANCE)
    try:
        yield Repository(pool, INSTANCE)
    finally:
        await pool.close()


async def claimed_posts(db: asyncpg.Connection, repository: Repository, n: int) -> list[uuid.UUID]:
    """``n`` posts due a second ago (now, not at import: past the grace window a claim takes
    nothing), claimed by INSTANCE (status 'publishing')."""
    campaign, _ = await make_user(db, "webhook", metadata={"url": "http://127.0.0.1:9/hook"})
    ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    ids = [await insert_post(db, campaign, ago) for _ in range(n)]
    versions = [await db.fetchval("SELECT schedule_version FROM content_posts WHERE id = $1", i) for i in ids]
    won = await repository.claim(list(zip(ids, versions, strict=True)))
    assert len(won) == n
    return ids


def outcome(post_id: uuid.UUID, platform_post_id: str) -> Outcome:
    result = PublishResult(platform_post_id, f"https://example.test/{platform_post_id}")
    return Outcome(post_id, "webhook", 1, OutcomeKind.PUBLISHED, NOW, NOW, result)


async def written(writer: OutcomeWriter, outcomes: list[Outcome]) -> None:
    task = asyncio.create_task(writer.run())
    try:
        await writer.started.wait()
        async with asyncio.timeout(10):
            await asyncio.gather(*(writer.submit(o) for o in outcomes))
    finally:
        await writer.stop()
        async with asyncio.timeout(10):
            await task


async def test_poison_outcomes_become_drafts_and_every_other_outcome_lands(
    db: asyncpg.Connection, repository: Repository
) -> None:
    ids = await claimed_posts(db, repository, 8)
    answers = ["ok-0", "evil\x00id", "ok-2", "ok-3", "\ud800", "ok-5", "ok-6", "ok-7"]
    writer = OutcomeWriter(repository)
    await written(writer, [outcome(i, a) for i, a in zip(ids, answers, strict=True)])
    rows_ = {i: await row(db, i) for i in ids}
    for index, post in enumerate(ids):
        r = rows_[post]
        if index in (1, 4):
            assert r["status"] == "draft" and r["platform_post_id"] is None, dict(r)
            assert r["error_message"].startswith("could not record the platform's answer: "), r["error_message"]
            assert "check webhook before rescheduling" in r["error_message"]
        else:
            assert (r["status"], r["platform_post_id"]) == ("published", f"ok-{index}"), dict(r)
    reasons = {rows_[ids[1]]["error_message"], rows_[ids[4]]["error_message"]}
    assert any("0x00" in m for m in reasons) and any("not valid UTF-8" in m for m in reasons), reasons
    audit = await db.fetch("SELECT post_id, outcome FROM publish_attempts WHERE post_id = ANY($1)", ids)
    assert sorted(a["outcome"] for a in audit) == ["published"] * 6 + ["unknown"] * 2


async def test_a_poison_rejection_does_not_block_outcomes_or_other_rejections(
    db: asyncpg.Connection, repository: Repository
) -> None:
    [claimed] = await claimed_posts(db, repository, 1)
    campaign, _ = await make_user(db, "webhook", metadata={"url": "http://127.0.0.1:9/hook"})
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    good, bad = [await insert_post(db, campaign, later) for _ in range(2)]
    version = {p: await db.fetchval("SELECT schedule_version FROM content_posts WHERE id = $1", p) for p in (good, bad)}
    writer = OutcomeWriter(repository)
    writer.reject(bad, version[bad], "unknown timezone '\x00Mars'")
    writer.reject(good, version[good], "missed: reschedule it")
    await written(writer, [outcome(claimed, "ok")])
    assert (await row(db, claimed))["status"] == "published"
    good_row = await row(db, good)
    assert (good_row["status"], good_row["error_message"]) == ("draft", "missed: reschedule it")
    bad_row = await row(db, bad)
    assert bad_row["status"] == "draft"
    assert bad_row["error_message"].startswith("could not record why this post cannot be published: ")
