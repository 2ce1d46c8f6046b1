"""LinkedIn, Telegram, Discord and Slack media, threads and first comments through the
daemon: rows written with plain SQL, media downloaded by the daemon's media path from a
local CDN, each platform faked at the transport. A video post, a refused video, a
multi-image post and an album with mixed alt text, a first comment, and a 4-item thread
whose item 3 fails once and whose retry resumes at item 3."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx

from support.helpers import insert_post, make_user, row, soon
from support.media import mp4, png
from support.platforms.cases import settings
from support.platforms.fakes.base import Fake
from support.platforms.fakes.discord import DiscordFake
from support.platforms.fakes.linkedin import LinkedInFake
from support.platforms.fakes.slack import SlackFake
from support.platforms.fakes.telegram import TelegramFake

VIDEO = "https://cdn.test/clips/launch.mp4"
PICTURES = [f"https://cdn.test/pics/{n}.png" for n in range(3)]


def router(fake: Fake, cdn: dict[str, tuple[bytes, str]]) -> httpx.MockTransport:
    """The daemon's transport: the platform's fake, and the CDN serving ``cdn``."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.test":
            content, mime = cdn[str(request.url)]
            return httpx.Response(200, content=content, headers={"content-type": mime})
        return await fake.handle(request)

    return httpx.MockTransport(handle)


async def schedule(  # type: ignore[no-untyped-def]
    db: asyncpg.Connection, platform: str, content: str, media: list[dict[str, Any]] | None = None, *,
    thread: list[dict[str, Any]] | None = None, first_comment: str | None = None, token: str = "good-token",
    **conn: Any,
) -> uuid.UUID:
    campaign, _ = await make_user(db, platform, access_token=token, **conn)
    post_id = await insert_post(db, campaign, soon(0.3), platform=platform, content=content,
                                media=json.dumps(media or []))
    await db.execute("UPDATE content_posts SET thread = $2::jsonb, first_comment = $3 WHERE id = $1",
                     post_id, json.dumps(thread) if thread else None, first_comment)
    return post_id


def state(record: asyncpg.Record) -> dict[str, Any]:
    value = record["publish_state"]
    return dict(json.loads(value) if isinstance(value, str) else value)


async def test_a_linkedin_video_post_is_uploaded_in_parts_and_published(db, watcher, start_daemon) -> None:  # type: ignore[no-untyped-def]
    fake = LinkedInFake()
    fake.part_bytes = 100_000
    data = mp4(seconds=12, mdat_bytes=250_000)
    await start_daemon(transport=router(fake, {VIDEO: (data, "video/mp4")}), platforms=settings())
    post_id = await schedule(db, "linkedin", "Launch day", [{"url": VIDEO, "alt": "the launch", "mime": "video/mp4"}],
                             account_id="abc")
    await watcher.wait(post_id, "published", "draft")
    r = await row(db, post_id)
    assert r["status"] == "published", r["error_message"]
    assert r["platform_post_id"] == "urn:li:share:7001"
    assert fake.media_refs == [data] and len(fake.videos["urn:li:video:V1"]["parts"]) == 3
    assert fake.bodies[0]["content"] == {"media": {"id": "urn:li:video:V1", "altText": "the launch"}}


async def test_a_video_linkedin_would_refuse_ends_as_a_draft_with_its_rule(db, watcher, start_daemon) -> None:  # type: ignore[no-untyped-def]
    fake = LinkedInFake()
    too_short = mp4(seconds=2, mdat_bytes=80_000)
    await start_daemon(transport=router(fake, {VIDEO: (too_short, "video/mp4")}), platforms=settings())
    post_id = await schedule(db, "linkedin", "Too short", [{"url": VIDEO, "mime": "video/mp4"}], account_id="abc")
    await watcher.wait(post_id, "draft")
    r = await row(db, post_id)
    assert r["error_message"] == "LinkedIn takes videos of at least 3 s; the video of this post lasts 2.0 s"
    assert fake.requests == []


async def test_a_linkedin_multi_image_post_with_its_first_comment(db, watcher, start_daemon) -> None:  # type: ignore[no-untyped-def]
    fake = LinkedInFake()
    cdn = {url: (png(), "image/png") for url in PICTURES}
    await start_daemon(transport=router(fake, cdn), platforms=settings())
    media = [{"url": PICTURES[0], "alt": "a chart"}, {"url": PICTURES[1]}, {"url": PICTURES[2], "alt": "the team"}]
    post_id = await schedule(db, "linkedin", "Our quarter", media, first_comment="Report: https://example.com",
                             account_id="abc")
    await watcher.wait(post_id, "published", "draft")
    r = await row(db, post_id)
    assert (r["status"], r["error_message"]) == ("published", None)
    assert [i.get("altText") for i in fake.bodies[0]["content"]["multiImage"]["images"]] == [
        "a chart", None, "the team"]
    [comment] = fake.comments
    assert (comment["on"], comment["text"]) == ("urn:li:share:7001", "Report: https://example.com")
    assert state(r)["first_comment"]["id"] == comment["id"]


async def test_a_telegram_thread_fails_at_item_3_and_the_retry_resumes_at_item_3(db, watcher, start_daemon) -> None:  # type: ignore[no-untyped-def]
    fake = TelegramFake()
    fake.fail = ["", "", "refused"]  # item 3's request never reaches Telegram: retried
    cdn = {VIDEO: (mp4(seconds=4), "video/mp4"), PICTURES[0]: (png(), "image/png")}
    await start_daemon(transport=router(fake, cdn), platforms=settings())
    album = [{"url": PICTURES[0], "alt": "a chart"}, {"url": VIDEO, "mime": "video/mp4"}]
    thread = [{"content": "2/4 the album", "media": album}, {"content": "3/4 fails once"}, {"content": "4/4 the end"}]
    post_id = await schedule(db, "telegram", "1/4 a thread", thread=thread, account_id="@mychannel")
    await watcher.wait(post_id, "published", "draft")

    r = await row(db, post_id)
    assert (r["status"], r["error_message"]) == ("published", None)
    assert (r["platform_post_id"], r["platform_post_url"]) == ("42", "https://t.me/mychannel/42")
    assert [p.text for p in fake.posts] == ["1/4 a thread", "2/4 the album", "3/4 fails once", "4/4 the end"]
    assert [s["reply_to"] for s in fake.sent] == [None, 42, 43, 45]  # the album is 43 and 44
    assert fake.posts[1].media == [PICTURES[0], VIDEO]
    assert [i["id"] for i in state(r)["items"]] == ["42", "43", "45"]
    attempts = await db.fetch("SELECT outcome, error_message FROM publish_attempts WHERE post_id = $1 ORDER BY attempt",
                              post_id)
    assert [a["outcome"] for a in attempts] == ["retry", "published"]
    assert attempts[0]["error_message"].startswith(
        "thread incomplete: items 1–2 are out of 4 (1: https://t.me/mychannel/42, 2: https://t.me/mychannel/43);"
        " item 3: ")


async def test_a_slack_video_and_a_discord_video_go_out_as_files(db, watcher, start_daemon) -> None:  # type: ignore[no-untyped-def]
    data = mp4(seconds=8, mdat_bytes=200_000)
    slack, discord = SlackFake(), DiscordFake()

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.test":
            return httpx.Response(200, content=data, headers={"content-type": "video/mp4"})
        fake = slack if "slack" in request.url.host else discord
        return await fake.handle(request)

    await start_daemon(transport=httpx.MockTransport(handle), platforms=settings())
    media = [{"url": VIDEO, "alt": "the launch", "mime": "video/mp4"}]
    to_slack = await schedule(db, "slack", "Launch day", media, metadata={"channel": "C123"})
    to_discord = await schedule(db, "discord", "Launch day", media, account_id="111", token=discord.valid_token,
                                metadata={"guild_id": "999"})
    for post_id in (to_slack, to_discord):
        await watcher.wait(post_id, "published", "draft")
        r = await row(db, post_id)
        assert r["status"] == "published", r["error_message"]
    assert slack.media_refs == [data] and slack.alt_texts == ["the launch"]
    assert discord.media_refs == [data] and discord.descriptions == [["the launch"]]
