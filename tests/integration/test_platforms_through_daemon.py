"""One end-to-end run per platform: a row scheduled with plain SQL is published by the
daemon through the adapter against the platform's fake, and the row records the result."""

from __future__ import annotations

import dataclasses
import json
import uuid

import httpx
import pytest

from scheduler_daemon.due import due_instant
from scheduler_daemon.models import ScheduleKey
from scheduler_daemon.platforms.bluesky import record_key
from support.helpers import insert_post, row, soon
from support.platforms.cases import CASES, Case, expected, post, settings
from support.platforms.context import IMAGE, IMAGE_URL
from support.platforms.fakes.base import Fake

HOSTS = {
    "facebook": ("fb.test",),
    "instagram": ("ig.test", "iglogin.test"),
    "threads": ("threads.test",),
    "linkedin": ("li.test", "li-upload.test"),
    "x": ("x.test",),
    "bluesky": ("pds.test",),
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


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_scheduled_row_is_published_through_the_daemon(case: Case, db, watcher, start_daemon, settings_) -> None:
    fake = case.fake()
    user = uuid.uuid4()
    campaign = await db.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", user)
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
    await start_daemon(transport=router(fake, case), platforms=settings())
    media = json.dumps([{"url": IMAGE_URL, "alt": "a cat", "mime": "image/png"}]) if case.text_needs_image else "[]"
    due = soon(0.3)
    post_id = await insert_post(db, campaign, due, platform=case.name, content="Hello from the scheduler", media=media)
    await watcher.wait(post_id, "published", "draft")

    r = await row(db, post_id)
    assert r["status"] == "published", r["error_message"]
    scheduled_at = due_instant(ScheduleKey(r["scheduled_date"], r["scheduled_time"], r["timezone"]))
    the_post = dataclasses.replace(post(case), id=post_id, scheduled_at=scheduled_at)
    which = case.image if case.text_needs_image else case.text
    assert (r["platform_post_id"], r["platform_post_url"]) == expected(case, which, the_post)
    assert [p.text for p in fake.posts] == ["Hello from the scheduler"]
    if case.name == "bluesky":
        assert record_key(post_id, scheduled_at) in r["platform_post_id"]
