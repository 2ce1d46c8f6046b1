"""End-to-end runs per platform: a row scheduled with plain SQL is published by the daemon
through the adapter against the platform's fake, and the row records the result; a
create the platform committed and answered 5xx; LinkedIn's DUPLICATE_POST cases."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid

import asyncpg
import httpx
import pytest

from scheduler_daemon.due import due_instant
from scheduler_daemon.models import ScheduleKey
from scheduler_daemon.platforms.bluesky import record_key
from scheduler_daemon.platforms.linkedin import SENT, commentary
from support.helpers import insert_post, local, row, soon
from support.platforms.cases import CASES, Case, expected, post, settings
from support.platforms.context import IMAGE, IMAGE_URL
from support.platforms.fakes.base import Fake
from support.platforms.fakes.linkedin import LinkedInFake

HOSTS = {
    "facebook": ("fb.test",),
    "instagram": ("ig.test", "iglogin.test"),
    "threads": ("threads.test",),
    "linkedin": ("li.test", "li-upload.test"),
    "x": ("x.test",),
    "bluesky": ("pds.test", "morel.us-east.host.bsky.network", "video.bsky.app"),  # entryway, own PDS, video
    "mastodon": ("mastodon.test",),
    "telegram": ("tg.test",),
    "discord": ("discord.test",),
    "slack": ("slack.test", "files.slack.test"),
}


def router(fake: Fake, case: Case) -> httpx.MockTransport:
    """The daemon's transport: the platform's fake, plus the CDN serving the image."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.test":
            return httpx.Response(200, content=IMAGE, headers={"content-type": "image/png"})
        assert request.url.host in HOSTS[case.name], f"unexpected host {request.url.host}"
        return await fake.handle(request)

    return httpx.MockTransport(handle)


async def connect(db: asyncpg.Connection, case: Case, fake: Fake) -> uuid.UUID:
    """A user with the case's connection; returns the user's campaign."""
    user = uuid.uuid4()
    campaign: uuid.UUID = await db.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", user)
    fields = {"account_id": None, "refresh_token": None, "metadata": {}, **case.connection}
    await db.execute(
        "INSERT INTO platform_connections (user_id, platform, account_id, access_token, refresh_token, metadata)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
        user,
        case.name,
        fields["account_id"],
        fake.valid_token,
        fields["refresh_token"],
        json.dumps(fields["metadata"]),
    )
    return campaign


async def schedule(db: asyncpg.Connection, case: Case, campaign: uuid.UUID, content: str) -> uuid.UUID:
    media = json.dumps([{"url": IMAGE_URL, "alt": "a cat", "mime": "image/png"}]) if case.text_needs_image else "[]"
    return await insert_post(db, campaign, soon(0.3), platform=case.name, content=content, media=media)


def scheduled_at(r: asyncpg.Record) -> dt.datetime:
    return due_instant(ScheduleKey(r["scheduled_date"], r["scheduled_time"], r["timezone"]))


def expected_ids(case: Case, r: asyncpg.Record) -> tuple[str, str | None]:
    the_post = dataclasses.replace(post(case), id=r["id"], scheduled_at=scheduled_at(r))
    return expected(case, case.image if case.text_needs_image else case.text, the_post)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_scheduled_row_is_published_through_the_daemon(case: Case, db, watcher, start_daemon, settings_) -> None:
    fake = case.fake()
    campaign = await connect(db, case, fake)
    await start_daemon(transport=router(fake, case), platforms=settings())
    post_id = await schedule(db, case, campaign, "Hello from the scheduler")
    await watcher.wait(post_id, "published", "draft")

    r = await row(db, post_id)
    assert r["status"] == "published", r["error_message"]
    assert (r["platform_post_id"], r["platform_post_url"]) == expected_ids(case, r)
    assert [p.text for p in fake.posts] == ["Hello from the scheduler"]
    if case.name == "bluesky":
        assert record_key(post_id, scheduled_at(r)) in r["platform_post_id"]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_create_committed_then_answered_5xx_is_never_sent_twice(
    case: Case, db, watcher, start_daemon, settings_
) -> None:
    """The platform creates the post and its gateway answers 5xx. Where the platform does
    not deduplicate the row ends as a draft "outcome unknown ... check <platform>" and no
    second create is sent; where it does, the repeat is harmless and the row is published."""
    fake = case.fake()
    fake.fail = ["committed-5xx"]
    campaign = await connect(db, case, fake)
    await start_daemon(transport=router(fake, case), platforms=settings())
    post_id = await schedule(db, case, campaign, "Hello from the scheduler")
    await watcher.wait(post_id, "published", "draft")

    r = await row(db, post_id)
    assert len(fake.posts) == 1, fake.posts
    if case.adapter.facts.idempotent:
        assert r["status"] == "published", r["error_message"]
        assert (r["platform_post_id"], r["platform_post_url"]) == expected_ids(case, r)
    else:
        assert r["status"] == "draft" and r["platform_post_id"] is None
        message = r["error_message"]
        assert message.startswith("outcome unknown") and f"check {case.name} before rescheduling" in message
        assert fake.publish_calls == 1  # no second create request


LINKEDIN = next(c for c in CASES if c.name == "linkedin")
LAST_WEEK = "urn:li:share:6999"


async def test_linkedin_deliberate_repeat_is_a_draft_with_linkedin_s_message(
    db, watcher, start_daemon, settings_
) -> None:
    """Last week's "Happy Friday" again: not published with a link to last week's post."""
    fake = LinkedInFake()
    fake.commentaries[commentary("Happy Friday")] = LAST_WEEK
    campaign = await connect(db, LINKEDIN, fake)
    await start_daemon(transport=router(fake, LINKEDIN), platforms=settings())
    post_id = await schedule(db, LINKEDIN, campaign, "Happy Friday")
    await watcher.wait(post_id, "published", "draft")

    r = await row(db, post_id)
    assert r["status"] == "draft" and r["platform_post_id"] is None and r["platform_post_url"] is None
    assert f"duplicate of {LAST_WEEK}" in r["error_message"], r["error_message"]
    assert fake.posts == []


async def test_linkedin_repeat_of_an_unknown_attempt_is_published_as_its_post(
    db, watcher, start_daemon, settings_
) -> None:
    """A run committed create_sent_at, sent the post (LinkedIn created it) and died. A
    repeat from that state (the row scheduled again by the daemon, its publish_state kept)
    is answered DUPLICATE_POST naming that post: it is this post's success."""
    fake = LinkedInFake()
    created = "urn:li:share:7444"
    fake.commentaries[commentary("Hello from the scheduler")] = created  # the dead run's send
    campaign = await connect(db, LINKEDIN, fake)
    post_id = await insert_post(db, campaign, soon(0.3), platform="linkedin", content="Hello from the scheduler",
                                status="draft")
    await db.execute(
        "UPDATE content_posts SET publish_state = jsonb_build_object($2::text, $3::text) WHERE id = $1",
        post_id, SENT, "2030-01-02T03:04:05+00:00",
    )
    await start_daemon(transport=router(fake, LINKEDIN), platforms=settings())
    # The daemon's own retry: a retry_at, so the trigger keeps publish_state (a user's
    # reschedule would clear it).
    await db.execute("UPDATE content_posts SET status = 'scheduled', retry_at = now() WHERE id = $1", post_id)
    await watcher.wait_seen(post_id, "publishing", 1)  # it was a draft before
    await watcher.wait(post_id, "published", "draft")

    r = await row(db, post_id)
    assert r["status"] == "published", r["error_message"]
    assert (r["platform_post_id"], r["platform_post_url"]) == (created, f"https://www.linkedin.com/feed/update/{created}")
    assert fake.posts == [] and fake.publish_calls == 1


async def test_linkedin_reschedule_after_an_unknown_outcome_is_a_fresh_series(
    db, watcher, start_daemon, settings_
) -> None:
    """Created, answered 502: draft "outcome unknown", the send recorded. The user's
    reschedule clears publish_state (a fresh series), so LinkedIn's DUPLICATE_POST is then
    a rejection, and its message links the post that exists."""
    fake = LinkedInFake()
    fake.fail = ["committed-5xx"]
    campaign = await connect(db, LINKEDIN, fake)
    await start_daemon(transport=router(fake, LINKEDIN), platforms=settings())
    post_id = await schedule(db, LINKEDIN, campaign, "Hello from the scheduler")
    await watcher.wait(post_id, "published", "draft")
    r = await row(db, post_id)
    assert r["error_message"].startswith("outcome unknown") and "check linkedin" in r["error_message"]
    assert json.loads(r["publish_state"])[SENT]  # the send was recorded before the create call
    [created] = fake.commentaries.values()

    date, time = local(soon(0.3))
    await db.execute(
        "UPDATE content_posts SET status = 'scheduled', scheduled_date = $2, scheduled_time = $3 WHERE id = $1",
        post_id, date, time,
    )
    await watcher.wait_seen(post_id, "draft", 2)
    r = await row(db, post_id)
    assert r["status"] == "draft" and r["platform_post_id"] is None
    assert f"https://www.linkedin.com/feed/update/{created}" in r["error_message"], r["error_message"]
    assert len(fake.posts) == 1 and fake.publish_calls == 2
