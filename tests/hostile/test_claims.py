"""Publishing rows belong to the daemon (issue 9 item 2; migrations/007).

* A tenant cannot take a row out of 'publishing' (status, content, date: 23514
  scheduler_posts_publishing_check), nor move one into 'publishing' or 'published' by an
  UPDATE (42501); a column of the frontend's own still changes; the daemon's own writes
  out of 'publishing' land.
* publish_state (Bluesky record keys, Instagram/Threads containers) is kept when a trusted
  writer reschedules a publishing row.
* A reschedule while the post's request is out, the fake platform's answer held by an event:
  the tenant's is refused; a trusted writer's (service_role, the owner) is not claimed again
  while the post is in flight. One send either way, and a bystander goes out on time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import asyncpg
from aiohttp import web
from hostile.test_write_time import (  # noqa: F401 - fixtures
    MakeDatabase,
    as_tenant,
    connected,
    daemon_login,
    refused,
    supabase,
    watcher_on,
)

from scheduler_daemon.db.sql import q
from scheduler_daemon.testing.receiver import Receiver
from support.helpers import insert_post, make_user, soon
from support.servers import Bystander, Server

PUBLISHING = "UPDATE content_posts SET status = 'publishing', claimed_by = 'vm1', claimed_at = now(),"\
             " attempt_count = 1, publish_state = '{\"rkey\": \"3k2a\"}' WHERE id = $1"


async def tenant_post(app: asyncpg.Connection, user: uuid.UUID, status: str = "scheduled") -> uuid.UUID:
    campaign = await app.fetchval("INSERT INTO content_campaigns (user_id, name) VALUES ($1, 'c') RETURNING id", user)
    post: uuid.UUID = await app.fetchval(
        "INSERT INTO content_posts (campaign_id, platform, status, scheduled_date, scheduled_time)"
        " VALUES ($1, 'webhook', $2, '2030-01-01', '10:00') RETURNING id", campaign, status)
    return post


async def test_a_tenant_cannot_take_a_publishing_row_from_the_daemon(supabase: MakeDatabase) -> None:  # noqa: F811
    url = await supabase()
    alice = uuid.uuid4()
    async with connected(url) as admin, connected(url) as app:
        await admin.execute("ALTER TABLE content_posts ADD COLUMN title text")  # the frontend's own column
        await admin.execute("GRANT UPDATE (title) ON content_posts TO authenticated")
        await as_tenant(app, alice)
        post = await tenant_post(app, alice)
        await admin.execute(PUBLISHING, post)
        before = await admin.fetchrow("SELECT * FROM content_posts WHERE id = $1", post)
        for change in ("status = 'scheduled'", "status = 'draft'", "status = 'published'", "content = 'edited'",
                       "scheduled_date = '2031-01-01'", "scheduled_time = '11:00'", "timezone = 'Europe/Paris'",
                       "media = '[]'::jsonb || '[{\"url\": \"https://example.com/a.png\"}]'::jsonb",
                       "platform = 'mastodon'", "thread = '[{\"content\": \"2/2\"}]'"):
            error = await refused(app, f"UPDATE content_posts SET {change} WHERE id = $1", post)
            assert isinstance(error, asyncpg.CheckViolationError), (change, error)
            assert error.constraint_name == "scheduler_posts_publishing_check", change
            assert "is being published" in error.message and "Wait until its status" in (error.hint or "")
        assert await app.execute("UPDATE content_posts SET title = 'renamed' WHERE id = $1", post) == "UPDATE 1"
        after = await admin.fetchrow("SELECT * FROM content_posts WHERE id = $1", post)
        assert {k: v for k, v in after.items() if k not in ("title", "updated_at")} == \
            {k: v for k, v in before.items() if k not in ("title", "updated_at")}

        # Into publishing or published by an UPDATE: the daemon's alone (004 refuses it on INSERT).
        draft = await tenant_post(app, alice, status="draft")
        scheduled = await tenant_post(app, alice)
        for target, status in ((draft, "publishing"), (scheduled, "publishing"), (scheduled, "published")):
            error = await refused(app, "UPDATE content_posts SET status = $2 WHERE id = $1", target, status)
            assert isinstance(error, asyncpg.InsufficientPrivilegeError), (status, error)
            assert error.message == f"only the scheduler daemon sets status '{status}'"

        # The daemon's own way out of publishing lands: the outcome write.
        async with daemon_login(url) as daemon_url, connected(daemon_url) as daemon:
            now = dt.datetime.now(dt.timezone.utc)
            changed = await daemon.fetchval(
                q("record_outcomes"), [post], ["published"], [None], ["id-1"], [None], [None], [1], [now], [now],
                ["published"], ["webhook"], "vm1")
            assert changed == 1
        assert await admin.fetchval("SELECT status FROM content_posts WHERE id = $1", post) == "published"


async def test_a_trusted_reschedule_of_a_publishing_row_keeps_its_checkpoints(db: asyncpg.Connection) -> None:
    campaign, _ = await make_user(db)
    post = await insert_post(db, campaign, soon(3600))
    await db.execute(PUBLISHING, post)
    await db.execute("UPDATE content_posts SET status = 'scheduled', scheduled_date = '2031-01-01' WHERE id = $1", post)
    kept = await db.fetchrow("SELECT status, publish_state, attempt_count FROM content_posts WHERE id = $1", post)
    assert (kept["status"], kept["publish_state"], kept["attempt_count"]) == ("scheduled", '{"rkey": "3k2a"}', 1)
    # Not publishing: a reschedule starts a fresh series, as before.
    await db.execute("UPDATE content_posts SET scheduled_date = '2032-01-01' WHERE id = $1", post)
    fresh = await db.fetchrow("SELECT publish_state, attempt_count FROM content_posts WHERE id = $1", post)
    assert (fresh["publish_state"], fresh["attempt_count"]) == ("{}", 0)


class HeldHook:
    """A webhook endpoint that holds every answer until ``release`` is set."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.server = Server(routes={"/held": self.held, "/free": self.free})

    async def held(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        self.arrived.set()
        await self.release.wait()
        return web.json_response({"id": f"held-{len(self.bodies)}"})

    async def free(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        self.arrived.set()
        return web.json_response({"id": f"free-{len(self.bodies)}"})

    def count(self, post: uuid.UUID) -> int:
        return sum(1 for b in self.bodies if b.get("post_id") == str(post))

    async def wait_for(self, post: uuid.UUID, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not self.count(post):
                self.arrived.clear()
                await self.arrived.wait()


async def test_a_reschedule_during_a_publish_sends_once(supabase: MakeDatabase, watcher_on: Any,  # noqa: F811
                                                        daemon_on: Any) -> None:
    """The post's request is out and its answer held. The tenant's "retry now" is refused;
    the owner's (trusted) goes through and arms the post again at once; a sentinel due just
    after proves the dispatcher handled that timer (in due order) before the answer is
    released: it was not claimed a second time. After the outcome, a second sentinel flushes
    the re-armed timer: still one send."""
    url = await supabase()
    alice = uuid.uuid4()
    hook = HeldHook()
    async with hook.server, connected(url) as admin, connected(url) as app, Receiver() as rx, \
            daemon_login(url) as daemon_url:
        watcher = await watcher_on(url)
        await as_tenant(app, alice)  # signs up and connects a webhook, through the API
        held_campaign = await app.fetchval(
            "INSERT INTO content_campaigns (user_id, name) VALUES ($1, 'c') RETURNING id", alice)
        await app.execute("INSERT INTO platform_connections (user_id, platform, access_token, metadata)"
                          " VALUES ($1, 'webhook', 'whsec-alice', $2::jsonb)", alice,
                          json.dumps({"url": hook.server.url + "/held"}))
        free_campaign, _ = await make_user(admin, "webhook", metadata={"url": hook.server.url + "/free"})
        handle = await daemon_on(daemon_url)
        bystander = Bystander(admin, rx)
        due = soon(0.8)
        post = await insert_post(app, held_campaign, due, content="held")
        await bystander.schedule(due)
        await hook.wait_for(post)
        assert await admin.fetchval("SELECT status FROM content_posts WHERE id = $1", post) == "publishing"

        error = await refused(app, "UPDATE content_posts SET status = 'scheduled' WHERE id = $1", post)
        assert isinstance(error, asyncpg.CheckViolationError), error
        now = dt.datetime.now(dt.timezone.utc)
        await admin.execute("UPDATE content_posts SET status = 'scheduled', scheduled_date = $2, scheduled_time = $3"
                            " WHERE id = $1", post, now.date(), now.time().replace(tzinfo=None))
        sentinel = await insert_post(admin, free_campaign, soon(0.3), content="sentinel")
        await hook.wait_for(sentinel)
        assert hook.count(post) == 1, "claimed again while its request was out"
        hook.release.set()
        await watcher.wait(post, "published")
        await bystander.published_once_on_time(watcher)
        flush = await insert_post(admin, free_campaign, soon(0.3), content="flush")
        await hook.wait_for(flush)
        await watcher.wait(flush, "published")
        assert not handle.task.done(), "the daemon stopped"
    assert hook.count(post) == 1 and hook.bodies[0]["content"] == "held"
