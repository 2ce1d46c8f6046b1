"""Token refresh off the pool, through the real daemon and a Bluesky PDS the tenants chose
that holds every ``refreshSession`` until the test lets go. Meanwhile the refreshes hold
no pooled connection and no row lock: more refreshes than the pool has connections are
in flight, yet a bystander's post is claimed and published on time and the connection
rows can be locked by someone else. Two publishes on one connection refresh once, and a
refresh that loses the race to another daemon takes that daemon's tokens."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from scheduler_daemon.testing.receiver import Receiver
from support.helpers import Watcher, insert_post, row
from support.servers import Bystander, Server

ACCOUNTS = 6  # refreshes held at once: more than the pool's 4 connections


def access_jwt(n: int) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'ES256K'})}.{part({'exp': int(time.time()) + 7200, 'n': n})}.c2ln"


class HeldPds(Server):
    """A PDS whose refreshSession answers only after ``release``; putRecord takes any
    token it issued, or one the test declares valid."""

    def __init__(self) -> None:
        super().__init__(routes={
            "/xrpc/com.atproto.server.refreshSession": self.refresh,
            "/xrpc/com.atproto.repo.putRecord": self.put,
        })
        self.release = asyncio.Event()
        self.refreshes: list[str] = []  # the refresh tokens presented
        self.arrived = asyncio.Condition()
        self.valid: set[str] = set()
        self.records: list[tuple[str, str]] = []  # (repo, bearer)

    async def refresh(self, request: web.Request) -> web.StreamResponse:
        self.refreshes.append(request.headers["Authorization"].removeprefix("Bearer "))
        async with self.arrived:
            self.arrived.notify_all()
        await self.release.wait()
        token = access_jwt(len(self.refreshes))
        self.valid.add(token)
        return web.json_response({"accessJwt": token, "refreshJwt": f"rotated-{len(self.refreshes)}"})

    async def put(self, request: web.Request) -> web.StreamResponse:
        bearer = request.headers["Authorization"].removeprefix("Bearer ")
        if bearer not in self.valid:
            return web.json_response({"error": "ExpiredToken", "message": "Token has expired"}, status=400)
        body = await request.json()
        self.records.append((body["repo"], bearer))
        return web.json_response({"uri": f"at://{body['repo']}/app.bsky.feed.post/{body['rkey']}", "cid": "bafy"})

    async def wait_refreshes(self, count: int) -> None:
        async with asyncio.timeout(10), self.arrived:
            await self.arrived.wait_for(lambda: len(self.refreshes) >= count)


async def bluesky_account(db: asyncpg.Connection, pds: str, n: int) -> tuple[uuid.UUID, uuid.UUID]:
    user = uuid.uuid4()
    campaign = await db.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", user)
    connection = await db.fetchval(
        "INSERT INTO platform_connections (user_id, platform, account_id, access_token, refresh_token,"
        " token_expires_at, metadata) VALUES ($1, 'bluesky', $2, $3, $4, now() - interval '1 hour', $5::jsonb)"
        " RETURNING id",
        user, f"did:plc:acct{n}", f"expired-access-{n}", f"refresh-{n}",
        json.dumps({"pds_url": pds, "handle": f"acct{n}.test"}),
    )
    return campaign, connection


async def test_refreshes_hold_no_pooled_connection_and_no_lock(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    async with HeldPds() as pds, Receiver() as rx:
        accounts = [await bluesky_account(db, pds.url, n) for n in range(ACCOUNTS)]
        bystander = Bystander(db, rx)
        # SCHEDULER_CONCURRENCY=20 gives a pool of 4: fewer connections than held refreshes.
        running = await start_daemon(concurrency=20)
        pool = running.daemon.dispatcher.repository.pool
        assert pool.get_max_size() < ACCOUNTS
        due = dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=400)
        posts = [await insert_post(db, campaign, due, platform="bluesky", content=f"post {n}")
                 for n, (campaign, _) in enumerate(accounts)]
        posts.append(await insert_post(db, accounts[0][0], due, platform="bluesky", content="same connection"))
        await pds.wait_refreshes(ACCOUNTS)

        # Every refresh is at the PDS. The pool still serves: a post due now is claimed,
        # sent and recorded on time ...
        await bystander.schedule(dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=300))
        await bystander.published_once_on_time(watcher)
        # ... no daemon session sits in a transaction, and nobody holds the rows' locks.
        idle_in_transaction = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'scheduler-daemon:%'"
            " AND state LIKE 'idle in transaction%'")
        assert idle_in_transaction == 0
        async with db.transaction():
            locked = await db.fetch("SELECT id FROM platform_connections WHERE platform = 'bluesky' FOR UPDATE NOWAIT")
        assert len(locked) == ACCOUNTS
        # Another daemon refreshes the last account while our refresh of it is held.
        winner = access_jwt(1000)
        pds.valid.add(winner)
        await db.execute("UPDATE platform_connections SET access_token = $2, refresh_token = 'winner-refresh'"
                         " WHERE id = $1", accounts[-1][1], winner)
        pds.release.set()
        await watcher.wait_all(posts, "published", "draft")

    assert [(await row(db, p))["status"] for p in posts] == ["published"] * len(posts)
    assert sorted(pds.refreshes) == sorted(f"refresh-{n}" for n in range(ACCOUNTS)), "one refresh per connection"
    by_repo: dict[str, set[str]] = {}
    for repo, bearer in pds.records:
        by_repo.setdefault(repo, set()).add(bearer)
    assert len(by_repo["did:plc:acct0"]) == 1, "both posts of one connection used the one refreshed token"
    assert by_repo[f"did:plc:acct{ACCOUNTS - 1}"] == {winner}, "the loser takes the winner's tokens"
    stored = await db.fetchrow("SELECT access_token, refresh_token FROM platform_connections WHERE id = $1",
                               accounts[-1][1])
    assert tuple(stored) == (winner, "winner-refresh"), "the winner's tokens were not overwritten"
    for _, connection in accounts[:-1]:
        token = await db.fetchval("SELECT refresh_token FROM platform_connections WHERE id = $1", connection)
        assert token.startswith("rotated-")
