"""Facebook, Instagram and Threads through the daemon, rows written with plain SQL: a video
(an Instagram and a Facebook Reel, a longer Facebook Page video through the Video API whose
cut-off upload is resumed by the retry), a carousel with mixed alt text, a Threads thread of
4 whose item 3 fails and whose retry resumes at item 3, and first comments."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx

from support.helpers import insert_post, row, soon
from support.media import mp4
from support.platforms.cases import CASES, Case, settings
from support.platforms.context import IMAGE
from support.platforms.fakes.base import Fake

VIDEO = mp4(seconds=10, width=1080, height=1920)
VIDEO_URL = "https://cdn.test/clips/dog.mp4"
CLIPS = {"/clips/dog.mp4": VIDEO, "/clips/long.mp4": mp4(seconds=120)}  # what the CDN serves
HOSTS = {"facebook": ("fb.test", "fb-upload.test"), "instagram": ("ig.test",), "threads": ("threads.test",)}


def case_of(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


def router(fake: Fake, name: str) -> httpx.MockTransport:
    """The daemon's transport: the platform's fake, and the CDN serving images and the video."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.test":
            if request.url.path.startswith("/clips/"):
                return httpx.Response(200, content=CLIPS[request.url.path], headers={"content-type": "video/mp4"})
            return httpx.Response(200, content=IMAGE, headers={"content-type": "image/png"})
        assert request.url.host in HOSTS[name], f"unexpected host {request.url.host}"
        return await fake.handle(request)

    return httpx.MockTransport(handle)


async def publishing(  # type: ignore[no-untyped-def]
    db: asyncpg.Connection, start_daemon, name: str, env: dict[str, str | None] | None = None
) -> tuple[Any, uuid.UUID]:
    """The platform's fake, the daemon running against it, and a campaign of a user connected there."""
    case = case_of(name)
    fake = case.fake()
    user = uuid.uuid4()
    campaign: uuid.UUID = await db.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", user)
    await db.execute(
        "INSERT INTO platform_connections (user_id, platform, account_id, access_token) VALUES ($1, $2, $3, $4)",
        user, name, case.connection["account_id"], fake.valid_token,
    )
    await start_daemon(transport=router(fake, name), platforms=settings(env))
    return fake, campaign


async def schedule(db: asyncpg.Connection, campaign: uuid.UUID, name: str, content: str, media: list[dict],  # type: ignore[type-arg]
                   *, thread: list[dict] | None = None, first_comment: str | None = None) -> uuid.UUID:  # type: ignore[type-arg]
    post_id = await insert_post(db, campaign, soon(0.3), platform=name, content=content, media=json.dumps(media))
    await db.execute("UPDATE content_posts SET thread = $2::jsonb, first_comment = $3 WHERE id = $1",
                     post_id, json.dumps(thread or []), first_comment)
    return post_id


def state(record: asyncpg.Record) -> dict:  # type: ignore[type-arg]
    value = record["publish_state"]
    return json.loads(value) if isinstance(value, str) else value  # type: ignore[no-any-return]


CLIP = {"url": VIDEO_URL, "mime": "video/mp4"}


async def test_an_instagram_reel_is_published_through_the_daemon(
    db, watcher, start_daemon, settings_,  # type: ignore[no-untyped-def]
) -> None:
    fake, campaign = await publishing(db, start_daemon, "instagram")
    post_id = await schedule(db, campaign, "instagram", "A dog", [CLIP])
    await watcher.wait(post_id, "published", "draft")
    r = await row(db, post_id)
    assert (r["status"], r["platform_post_id"], r["platform_post_url"]) == (
        "published", "m1", "https://posts.test/m1"), r["error_message"]
    assert [(s["media_type"], s["video_url"]) for s in fake.shown] == [("REELS", VIDEO_URL)]


async def test_an_instagram_carousel_with_mixed_alt_text_and_a_first_comment(
    db, watcher, start_daemon, settings_,  # type: ignore[no-untyped-def]
) -> None:
    fake, campaign = await publishing(db, start_daemon, "instagram")
    media = [{"url": "https://cdn.test/pics/a.png", "alt": "a cat", "mime": "image/png"},
             {"url": "https://cdn.test/pics/b.png", "mime": "image/png"}, CLIP]
    post_id = await schedule(db, campaign, "instagram", "Three", media, first_comment="#cats")
    await watcher.wait(post_id, "published", "draft")
    r = await row(db, post_id)
    assert (r["status"], r["platform_post_id"], r["error_message"]) == ("published", "m1", None)
    [shown] = fake.shown
    assert [(p.get("media_type", "IMAGE"), p.get("alt_text")) for p in shown["parts"]] == [
        ("IMAGE", "a cat"), ("IMAGE", None), ("VIDEO", None)]
    assert fake.comments == [{"on": "m1", "message": "#cats", "id": "cm1"}]
    assert state(r)["first_comment"] == {"id": "cm1", "url": "https://posts.test/m1"}


FOUR = ["1/4 a thread", "2/4 with a video", "3/4 fails the first time", "4/4 the end"]


async def test_a_threads_thread_fails_at_item_3_and_the_retry_resumes_at_item_3(
    db, watcher, start_daemon, settings_,  # type: ignore[no-untyped-def]
) -> None:
    fake, campaign = await publishing(db, start_daemon, "threads")
    fake.fail = ["", "", "transient"]  # item 3's threads_publish answers 5xx
    thread = [{"content": FOUR[1], "media": [{**CLIP, "alt": "a dog runs"}]}, {"content": FOUR[2]},
              {"content": FOUR[3]}]
    post_id = await schedule(db, campaign, "threads", FOUR[0], [], thread=thread)
    await watcher.wait(post_id, "published", "draft")
    r = await row(db, post_id)
    assert (r["status"], r["platform_post_id"], r["error_message"]) == ("published", "m1", None)
    assert [p.text for p in fake.posts] == FOUR
    assert [s.get("reply_to_id") for s in fake.shown] == [None, "m1", "m2", "m3"]
    assert fake.shown[1]["alt_text"] == "a dog runs"
    assert [i["id"] for i in state(r)["items"]] == ["m1", "m2", "m3"]
    attempts = await db.fetch(
        "SELECT outcome, error_message FROM publish_attempts WHERE post_id = $1 ORDER BY attempt", post_id)
    assert [a["outcome"] for a in attempts] == ["retry", "published"]
    assert attempts[0]["error_message"].startswith(
        "thread incomplete: items 1–2 are out of 4 (1: https://posts.test/m1, 2: https://posts.test/m2); item 3: ")
    texts = [c["fields"].get("text") for c in fake.containers.values()]
    assert texts.count(FOUR[2]) == 1 and fake.publish_calls == 5


async def test_a_facebook_reel_and_its_first_comment_are_published_through_the_daemon(
    db, watcher, start_daemon, settings_,  # type: ignore[no-untyped-def]
) -> None:
    fake, campaign = await publishing(db, start_daemon, "facebook")
    post_id = await schedule(db, campaign, "facebook", "A dog", [CLIP], first_comment="More at example.com")
    await watcher.wait(post_id, "published", "draft")
    r = await row(db, post_id)
    assert (r["status"], r["platform_post_id"], r["platform_post_url"], r["error_message"]) == (
        "published", "v1", "https://www.facebook.com/reel/v1", None)
    assert fake.uploads == {"v1": VIDEO}
    assert fake.comments == [{"on": "v1", "message": "More at example.com", "id": "v1_c1"}]


async def test_a_facebook_video_too_long_for_a_reel_is_a_draft_with_the_rule(
    db, watcher, start_daemon, settings_,  # type: ignore[no-untyped-def]
) -> None:
    fake, campaign = await publishing(db, start_daemon, "facebook")
    long_clip = {"url": "https://cdn.test/clips/long.mp4", "mime": "video/mp4"}
    post_id = await schedule(db, campaign, "facebook", "A long dog", [long_clip])
    await watcher.wait(post_id, "published", "draft")
    r = await row(db, post_id)
    assert r["status"] == "draft"
    assert r["error_message"] == (
        "Facebook takes videos up to 90 s; the video of this post lasts 120.0 s; other Page videos go through the"
        " Video API once SCHEDULER_FACEBOOK_CLIENT_ID (the Meta app id) is set")
    assert fake.requests == []


async def test_a_long_facebook_video_goes_through_the_video_api_and_its_retry_resumes_the_upload(
    db, watcher, start_daemon, settings_,  # type: ignore[no-untyped-def]
) -> None:
    fake, campaign = await publishing(db, start_daemon, "facebook", {"SCHEDULER_FACEBOOK_CLIENT_ID": "4321"})
    fake.upload_cuts = [3000, 0, 0]  # the first attempt's upload is cut off three times
    long_clip = {"url": "https://cdn.test/clips/long.mp4", "mime": "video/mp4"}
    post_id = await schedule(db, campaign, "facebook", "A long dog", [long_clip], first_comment="Part 2 soon")
    await watcher.wait(post_id, "published", "draft")
    r = await row(db, post_id)
    assert (r["status"], r["platform_post_id"], r["platform_post_url"], r["error_message"]) == (
        "published", "pv1", "https://www.facebook.com/1234/videos/pv1", None)
    assert list(fake.sessions) == ["upload:s1"] and fake.sessions["upload:s1"]["data"] == CLIPS["/clips/long.mp4"]
    offsets = [q.headers["file_offset"] for q in fake.requests if q.method == "POST" and "upload:" in q.url.path]
    assert offsets == ["0", "3000", "3000", "3000"]  # the retry went on from the server's offset
    attempts = await db.fetch("SELECT outcome FROM publish_attempts WHERE post_id = $1 ORDER BY attempt", post_id)
    assert [a["outcome"] for a in attempts] == ["retry", "published"]
    assert fake.comments == [{"on": "pv1", "message": "Part 2 soon", "id": "pv1_c1"}] and len(fake.posts) == 1


async def test_a_video_over_the_daemon_s_spool_cap_says_so_not_the_platform_s_rule(
    db, watcher, start_daemon, settings_,  # type: ignore[no-untyped-def]
) -> None:
    env = {"SCHEDULER_FACEBOOK_CLIENT_ID": "4321", "SCHEDULER_MAX_MEDIA_FILE_BYTES": "2000"}
    fake, campaign = await publishing(db, start_daemon, "facebook", env)
    long_clip = {"url": "https://cdn.test/clips/long.mp4", "mime": "video/mp4"}
    post_id = await schedule(db, campaign, "facebook", "A long dog", [long_clip])
    await watcher.wait(post_id, "published", "draft")
    r = await row(db, post_id)
    assert r["status"] == "draft" and "larger than 2000 bytes" in r["error_message"], r["error_message"]
    assert "Facebook takes videos up to" not in r["error_message"] and fake.requests == []
