"""Connections through the real database: reconnect marking, and token refresh once per
connection, stored by compare-and-swap (the loser of a race takes the winner's tokens)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from scheduler_daemon.db import rows
from scheduler_daemon.db.repository import Repository, create_pool
from scheduler_daemon.engine.token_refresh import TokenRefresh
from scheduler_daemon.models import Connection, TokenSet
from scheduler_daemon.testing.receiver import Receiver, Reply
from support.helpers import insert_post, make_user, row, soon


async def test_an_auth_failure_marks_the_connection_and_later_posts_fail_fast(db, watcher, start_daemon) -> None:
    async with Receiver(lambda a: Reply(401, {"error": "bad signature"})) as rx:
        campaign, connection = await make_user(db, metadata={"url": rx.url})
        await start_daemon()
        first = await insert_post(db, campaign, soon(0.2))
        await watcher.wait(first, "draft")
        second = await insert_post(db, campaign, soon(0.2))
        await watcher.wait(second, "draft")
        assert len(rx.arrivals) == 1, "the second post must fail without calling the platform"
        for post in (first, second):
            assert (await row(db, post))["error_message"].startswith("reconnect webhook")
        assert await db.fetchval("SELECT needs_reconnect FROM platform_connections WHERE id = $1", connection)

        # The user reconnects (stores a new token): the connection works again.
        rx.responder = lambda a: Reply(200, {"id": "ok"})
        await db.execute("UPDATE platform_connections SET access_token = 'new-token-456' WHERE id = $1", connection)
        assert not await db.fetchval("SELECT needs_reconnect FROM platform_connections WHERE id = $1", connection)
        third = await insert_post(db, campaign, soon(0.2))
        await watcher.wait(third, "published")


async def test_two_concurrent_refreshes_call_the_platform_once_and_store_atomically(db, dsn) -> None:
    _, connection_id = await make_user(db, "x")
    await db.execute(
        "UPDATE platform_connections SET access_token = 'old-access', refresh_token = 'old-refresh' WHERE id = $1",
        connection_id,
    )
    record = await db.fetchrow("SELECT * FROM platform_connections WHERE id = $1", connection_id)
    stale: Connection = rows.connection(record)
    calls: list[str | None] = []
    entered = asyncio.Event()

    async def refresher(current: Connection) -> TokenSet:
        calls.append(current.refresh_token)
        entered.set()
        await asyncio.sleep(0.05)  # the platform answering; the other caller waits its turn
        expires = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
        return TokenSet("new-access", "new-refresh", expires, {"scope": "tweet.write"})

    pool = await create_pool(dsn, instance_id="t")
    try:
        tokens = TokenRefresh(Repository(pool, "t"), deadline=5.0)
        one, two = await asyncio.gather(tokens.refresh(stale, refresher), tokens.refresh(stale, refresher))
    finally:
        await pool.close()
    assert calls == ["old-refresh"], "a rotated refresh token is single-use: refresh once"
    assert one.access_token == two.access_token == "new-access"
    stored = await db.fetchrow("SELECT * FROM platform_connections WHERE id = $1", connection_id)
    assert (stored["access_token"], stored["refresh_token"]) == ("new-access", "new-refresh")
    assert stored["token_expires_at"] == dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    assert json.loads(stored["metadata"]) == {"scope": "tweet.write"}


async def test_a_refresh_that_loses_the_race_takes_the_winners_tokens(db, dsn) -> None:
    """Another daemon stores its refresh while ours is at the platform: ours is not stored
    over it, and the caller gets the winner's tokens."""
    _, connection_id = await make_user(db, "x")
    await db.execute("UPDATE platform_connections SET access_token = 'old-access', refresh_token = 'old-refresh'"
                     " WHERE id = $1", connection_id)
    stale = rows.connection(await db.fetchrow("SELECT * FROM platform_connections WHERE id = $1", connection_id))

    async def refresher(current: Connection) -> TokenSet:
        await db.execute("UPDATE platform_connections SET access_token = 'winner-access', refresh_token ="
                         " 'winner-refresh' WHERE id = $1", connection_id)  # the other daemon, meanwhile
        return TokenSet("loser-access", "loser-refresh", None)

    pool = await create_pool(dsn, instance_id="t")
    try:
        got = await TokenRefresh(Repository(pool, "t"), deadline=5.0).refresh(stale, refresher)
    finally:
        await pool.close()
    assert (got.access_token, got.refresh_token) == ("winner-access", "winner-refresh")
    stored = await db.fetchrow("SELECT access_token, refresh_token FROM platform_connections WHERE id = $1",
                               connection_id)
    assert tuple(stored) == ("winner-access", "winner-refresh")
