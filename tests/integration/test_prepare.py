"""Prepare ahead, fire on the instant (issue 16, item 1; engine/preparer.py, migrations/010).

A Mastodon post with an image, through the daemon against the Mastodon fake, whose media
upload is held by an event until the test lets it answer: the upload happens before the
instant, and at the instant only the create call (``POST /api/v1/statuses``) goes out. An
edit after preparation prepares again; a failed preparation shows in ``prepare_error``
and in ``status`` while the row stays scheduled; two daemons prepare once.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from scheduler_daemon.cli.status import compute
from scheduler_daemon.db.admin import open_admin
from scheduler_daemon.engine.preparer import Preparer
from support.helpers import insert_post, local, row, soon
from support.platforms.cases import settings
from support.platforms.context import IMAGE, IMAGE_URL
from support.platforms.fakes.instagram import InstagramFake
from support.platforms.fakes.mastodon import MastodonFake

UPLOAD, CREATE = "/api/v2/media", "/api/v1/statuses"
MEDIA = json.dumps([{"url": IMAGE_URL, "alt": "a cat", "mime": "image/png"}])
WAIT = 15.0


class HeldUploads:
    """The daemon's transport: the CDN serving the image, and the Mastodon fake whose media
    upload waits for ``release`` (``seen`` is set when one arrives)."""

    def __init__(self, fake: MastodonFake) -> None:
        self.fake = fake
        self.seen = asyncio.Event()
        self.release = asyncio.Event()

    def transport(self) -> httpx.MockTransport:
        async def handle(request: httpx.Request) -> httpx.Response:
            if request.url.host == "cdn.test":
                return httpx.Response(200, content=IMAGE, headers={"content-type": "image/png"})
            if request.url.path == UPLOAD:
                self.seen.set()
                await self.release.wait()
            return await self.fake.handle(request)

        return httpx.MockTransport(handle)

    def paths(self, since: int = 0) -> list[str]:
        return [r.url.path for r in self.fake.requests[since:]]


def prepared(r: asyncpg.Record) -> Any:
    return json.loads(r["publish_state"])["prepared"]["value"]


@dataclass
class Scene:
    """Daemons against one Mastodon fake (processed at once: the upload is what is held), and
    a campaign of a user connected there."""

    fake: MastodonFake
    held: HeldUploads
    preparers: list[Preparer]
    campaign: uuid.UUID

    @property
    def preparer(self) -> Preparer:
        return self.preparers[0]

    async def schedule(self, db: asyncpg.Connection, seconds: float) -> uuid.UUID:
        return await insert_post(db, self.campaign, soon(seconds), platform="mastodon", content="a cat", media=MEDIA)


async def scene(db: asyncpg.Connection, start_daemon: Any, *, released: bool = True, daemons: int = 1,
                **overrides: Any) -> Scene:
    fake = MastodonFake()
    fake.processing_polls = 0
    held = HeldUploads(fake)
    if released:
        held.release.set()
    preparers = []
    for _ in range(daemons):
        daemon = (await start_daemon(transport=held.transport(), platforms=settings(), **overrides)).daemon
        preparers.append(daemon.preparer)
    user = uuid.uuid4()
    campaign: uuid.UUID = await db.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", user)
    await db.execute(
        "INSERT INTO platform_connections (user_id, platform, account_id, access_token, metadata)"
        " VALUES ($1, 'mastodon', 'alice', $2, $3::jsonb)",
        user, fake.valid_token, json.dumps({"instance_url": "https://mastodon.test"}),
    )
    return Scene(fake, held, preparers, campaign)


async def until(preparers: list[Preparer], done: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not done():
            for p in preparers:
                p.progress.clear()
            waiters = {asyncio.ensure_future(p.progress.wait()) for p in preparers}
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()


async def test_an_image_is_uploaded_before_the_instant_and_only_the_create_call_goes_out_at_it(
    db, watcher, start_daemon,  # type: ignore[no-untyped-def]
) -> None:
    s = await scene(db, start_daemon, released=False)
    post_id = await s.schedule(db, 4.0)
    async with asyncio.timeout(WAIT):
        await s.held.seen.wait()
    assert (await row(db, post_id))["status"] == "scheduled"  # the upload runs ahead of the instant
    s.held.release.set()
    await until(s.preparers, lambda: s.preparer.prepared == 1)
    r = await row(db, post_id)
    assert (r["status"], r["prepared_version"], r["prepare_error"]) == ("scheduled", r["schedule_version"], None)
    assert "22348641" in json.dumps(prepared(r))  # the uploaded media's id, for the instant
    before = len(s.fake.requests)
    assert UPLOAD in s.held.paths() and CREATE not in s.held.paths()
    await watcher.wait(post_id, "published", "draft", timeout=WAIT)
    assert s.held.paths(before) == [CREATE]  # the instant's only call
    assert [p.media for p in s.fake.posts] == [["22348641"]]
    assert (await row(db, post_id))["status"] == "published"


async def test_a_post_beyond_the_window_is_prepared_when_its_window_opens(
    db, watcher, start_daemon,  # type: ignore[no-untyped-def]
) -> None:
    # A short window, so that the post is armed beyond the preparer's frontier (window and
    # two steps: 3 s) and reaches it through the dispatcher's timers, as a far post would.
    s = await scene(db, start_daemon, prepare_seconds=2.0)
    post_id = await s.schedule(db, 6.0)
    await until(s.preparers, lambda: s.preparer.prepared == 1)
    r = await row(db, post_id)
    assert (r["status"], r["prepared_version"]) == ("scheduled", r["schedule_version"])
    before = len(s.fake.requests)
    await watcher.wait(post_id, "published", "draft", timeout=WAIT)
    assert s.held.paths(before) == [CREATE]


async def test_an_edit_after_preparation_prepares_again(
    db, watcher, start_daemon,  # type: ignore[no-untyped-def]
) -> None:
    s = await scene(db, start_daemon)
    post_id = await s.schedule(db, 30.0)
    await until(s.preparers, lambda: s.preparer.prepared == 1)
    version = (await row(db, post_id))["schedule_version"]
    date, time = local(soon(4.0))  # the user moves it: a new version, its artifacts dropped
    await db.execute("UPDATE content_posts SET scheduled_date = $2, scheduled_time = $3 WHERE id = $1",
                     post_id, date, time)
    await until(s.preparers, lambda: s.preparer.prepared == 2)
    r = await row(db, post_id)
    assert r["schedule_version"] > version and r["prepared_version"] == r["schedule_version"]
    assert "22348642" in json.dumps(prepared(r))
    before = len(s.fake.requests)
    await watcher.wait(post_id, "published", "draft", timeout=WAIT)
    assert s.held.paths(before) == [CREATE]
    assert s.held.paths().count(UPLOAD) == 2 and [p.media for p in s.fake.posts] == [["22348642"]]


async def test_a_failed_preparation_shows_in_the_row_and_in_status_and_the_post_stays_scheduled(
    db, dsn, start_daemon,  # type: ignore[no-untyped-def]
) -> None:
    s = await scene(db, start_daemon)
    s.fake.fail_at = {UPLOAD: ["transient"]}  # the instance answers 503 to the upload, once
    post_id = await s.schedule(db, 200.0)
    await until(s.preparers, lambda: s.preparer.failed == 1)
    r = await row(db, post_id)
    assert r["status"] == "scheduled" and r["prepared_version"] is None
    assert "503" in r["prepare_error"] or "Remote data" in r["prepare_error"], r["prepare_error"]
    async with open_admin(dsn) as ops:
        report = await compute(ops, argparse.Namespace(stuck_after=900.0, overdue_after=60.0, drafts=10,
                                                        failures=10))
    [shown] = report.prepare_failed
    assert (shown["id"], shown["error"]) == (post_id, r["prepare_error"])
    assert report.problems == 1


async def test_two_daemons_prepare_a_post_once(db, watcher, start_daemon) -> None:  # type: ignore[no-untyped-def]
    s = await scene(db, start_daemon, released=False, daemons=2)
    post_id = await s.schedule(db, 5.0)
    async with asyncio.timeout(WAIT):
        await s.held.seen.wait()
    await until(s.preparers, lambda: sum(p.lost for p in s.preparers) == 1)  # the other replica: lease lost
    s.held.release.set()
    await until(s.preparers, lambda: sum(p.prepared for p in s.preparers) == 1)
    await watcher.wait(post_id, "published", "draft", timeout=WAIT)
    assert (s.held.paths().count(UPLOAD), s.held.paths().count(CREATE), len(s.fake.posts)) == (1, 1, 1)


async def test_a_tenant_cannot_write_the_preparers_columns(db) -> None:  # type: ignore[no-untyped-def]
    tenant = f"tenant_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE ROLE {tenant} NOLOGIN")
    try:
        await db.execute(f"GRANT SELECT, INSERT, UPDATE ON content_posts, content_campaigns TO {tenant}")
        campaign = await db.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", uuid.uuid4())
        date, time = local(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
        async with db.transaction():
            await db.execute(f"SET LOCAL ROLE {tenant}")
            post_id = await db.fetchval(
                "INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time,"
                " timezone, prepare_error, prepared_version, prepare_lease) VALUES"
                " ($1, 'webhook', 'x', 'scheduled', $2, $3, 'UTC', 'mine', 7, 'me') RETURNING id",
                campaign, date, time)
            await db.execute("UPDATE content_posts SET prepared_version = 0, prepare_error = 'x' WHERE id = $1",
                             post_id)
        r = await row(db, post_id)
        assert (r["prepare_error"], r["prepared_version"], r["prepare_lease"]) == (None, None, None)
        await db.execute("UPDATE content_posts SET prepare_error = 'the daemon says' WHERE id = $1", post_id)
        assert (await row(db, post_id))["prepare_error"] == "the daemon says"  # the owner is trusted
    finally:
        await db.execute(f"DROP OWNED BY {tenant}")
        await db.execute(f"DROP ROLE {tenant}")


async def test_a_failed_preparation_leaves_nothing_half_made_and_its_retry_prepares_anew(
    db, watcher, start_daemon,  # type: ignore[no-untyped-def]
) -> None:
    # Instagram: the container is created, then its status polls fail. Had its id been kept,
    # the instant would publish a container nobody saw FINISHED (a first attempt does not
    # check it); the retry before the instant makes a new one and waits for it.
    fake = InstagramFake()
    fake.fail_at = {"/c1": ["transient"] * 3}

    async def handle(request: httpx.Request) -> httpx.Response:
        return await fake.handle(request)

    daemon = (await start_daemon(transport=httpx.MockTransport(handle), platforms=settings(
        {"SCHEDULER_MEDIA_POLL_INTERVAL_SECONDS": "0.05"}))).daemon
    preparer = daemon.preparer
    user = uuid.uuid4()
    campaign = await db.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", user)
    await db.execute("INSERT INTO platform_connections (user_id, platform, account_id, access_token)"
                     " VALUES ($1, 'instagram', '17841', $2)", user, fake.valid_token)
    post_id = await insert_post(db, campaign, soon(12.0), platform="instagram", content="a cat", media=MEDIA)
    await until([preparer], lambda: preparer.failed == 1)
    r = await row(db, post_id)
    assert r["status"] == "scheduled" and r["prepare_error"] and json.loads(r["publish_state"]) == {}
    await until([preparer], lambda: preparer.prepared == 1)
    r = await row(db, post_id)
    assert (json.loads(r["publish_state"])["container_id"], r["prepare_error"]) == ("c2", None)
    before = len(fake.requests)
    await watcher.wait(post_id, "published", "draft", timeout=WAIT)
    assert [q.url.path for q in fake.requests[before:]] == ["/v26.0/17841/media_publish", "/v26.0/m1"]
    assert [p.text for p in fake.posts] == ["a cat"] and fake.containers["c2"]["status"] == "PUBLISHED"
