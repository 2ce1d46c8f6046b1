"""Test helpers: plain SQL the way a frontend writes it, and a LISTEN-driven watcher."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg


class Watcher:
    """Waits for a post to reach a status, driven by the test_posts channel (no polling)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.status: dict[uuid.UUID, str] = {}
        self.history: list[tuple[uuid.UUID, str]] = []
        self._changed = asyncio.Event()

    async def start(self) -> Watcher:
        await self.conn.add_listener("test_posts", self._on)
        return self

    def _on(self, _c: Any, _p: int, _ch: str, payload: str) -> None:
        raw_id, status = payload.split(" ", 1)
        post_id = uuid.UUID(raw_id)
        self.status[post_id] = status
        self.history.append((post_id, status))
        self._changed.set()

    async def _until(self, done: Any, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self._changed.clear()
                await self._changed.wait()

    async def wait(self, post_id: uuid.UUID, *statuses: str, timeout: float = 10.0) -> str:
        """Wait until ``post_id`` was seen in one of ``statuses``; returns it."""
        await self._until(lambda: self.status.get(post_id) in statuses, timeout)
        return self.status[post_id]

    async def wait_seen(self, post_id: uuid.UUID, status: str, times: int, timeout: float = 10.0) -> None:
        """Wait until ``post_id`` has entered ``status`` ``times`` times (a second draft, …)."""
        await self._until(lambda: self.history.count((post_id, status)) >= times, timeout)

    async def wait_all(self, ids: list[uuid.UUID], *statuses: str, timeout: float = 20.0) -> None:
        await self._until(lambda: all(self.status.get(i) in statuses for i in ids), timeout)


async def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """For in-process state without an event of its own (e.g. the schedule): re-check on
    every loop turn, bounded by ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while not (result := condition()):  # noqa: ASYNC110 - no event to wait on (the docstring)
                await asyncio.sleep(0.01)
            return result
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


# -- plain-SQL helpers, written the way a frontend would --------------------------------


async def make_user(db: asyncpg.Connection, platform: str = "webhook", **conn: Any) -> tuple[uuid.UUID, uuid.UUID]:
    """A user with a campaign and one connection; returns (campaign_id, connection_id)."""
    user = uuid.uuid4()
    campaign = await db.fetchval("INSERT INTO content_campaigns (user_id, name) VALUES ($1, 'c') RETURNING id", user)
    connection = await db.fetchval(
        "INSERT INTO platform_connections (user_id, platform, account_id, access_token, metadata)"
        " VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING id",
        user, platform, conn.get("account_id", "acct"), conn.get("access_token", "s3cret-token-value"),
        json.dumps(conn.get("metadata", {})),
    )
    return campaign, connection


def local(due: dt.datetime, tz: str = "UTC") -> tuple[dt.date, dt.time]:
    when = due.astimezone(ZoneInfo(tz))
    return when.date(), when.time().replace(tzinfo=None)


async def insert_post(
    db: asyncpg.Connection, campaign: uuid.UUID | None, due: dt.datetime | None, *,
    platform: str = "webhook", content: str = "hello", status: str = "scheduled", tz: str = "UTC",
    media: str = "[]", connection_id: uuid.UUID | None = None,
) -> uuid.UUID:
    date, time = local(due, tz) if due is not None else (None, None)
    post_id: uuid.UUID = await db.fetchval(
        "INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time,"
        " timezone, media, connection_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9) RETURNING id",
        campaign, platform, content, status, date, time, tz, media, connection_id,
    )
    return post_id


def soon(seconds: float = 0.3) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)


async def row(db: asyncpg.Connection, post_id: uuid.UUID) -> asyncpg.Record:
    record = await db.fetchrow("SELECT * FROM content_posts WHERE id = $1", post_id)
    assert record is not None
    return record


# -- migrations/004: rows written before its write-time checks ---------------------------


async def migrate_through(db: asyncpg.Connection, last: str) -> None:
    """Apply the migrations up to and including ``last`` (a file name) as ``migrate`` does,
    each recorded, and leave the later ones pending: a database as it was before them."""
    from scheduler_daemon.db.migrate import available, migrate
    from scheduler_daemon.db.sql import q

    later = [m.name for m in available() if m.name > last]
    # Recorded as applied beforehand, the later migrations are skipped.
    await db.execute(q("create_migrations_table"))
    await db.executemany(q("record_migration"), [(n,) for n in later])
    await migrate(db)
    await db.execute("DELETE FROM scheduler_migrations WHERE name = ANY($1::text[])", later)


@contextlib.asynccontextmanager
async def input_checks_off(db: asyncpg.Connection) -> AsyncIterator[None]:
    """Rows written inside are as if written before migrations/004: its write-time check
    trigger is off meanwhile, so the daemon's own handling of bad rows can be tested."""
    await db.execute("ALTER TABLE content_posts DISABLE TRIGGER scheduler_posts_input_check")
    try:
        yield
    finally:
        await db.execute("ALTER TABLE content_posts ENABLE TRIGGER scheduler_posts_input_check")
