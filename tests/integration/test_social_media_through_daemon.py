"""X, Mastodon and Bluesky through the daemon, each row written with plain SQL: a video
post, a carousel with mixed alt text, a 4-item thread whose item 3 fails once and whose
retry resumes at item 3, and (X) the first comment. The platforms are their fakes at the
transport; the media come from a CDN on the same transport."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from support.helpers import insert_post, row, soon
from support.media import mp4
from support.platforms.cases import CASES, Case, settings
from support.platforms.context import IMAGE
from support.platforms.fakes.base import Fake
from support.platforms.fakes.bluesky import BlueskyFake
from support.platforms.fakes.mastodon import MastodonFake
from support.platforms.fakes.x import XFake

from .test_platforms_through_daemon import HOSTS, connect

CLIP = mp4(seconds=6, mdat_bytes=200_000)
CLIP_URL = "https://cdn.test/clips/launch.mp4"
FOUR = ["1/4 a thread", "2/4 goes on", "3/4 fails once", "4/4 the end"]


@dataclass(frozen=True)
class View:
    """How a test reads what a platform's fake published: per post, its text, the id of
    the post it answers, and its media's alt texts; and each post's own id."""

    texts: Callable[[Any], list[str]]
    parents: Callable[[Any], list[str | None]]
    ids: Callable[[Any], list[str]]
    alts: Callable[[Any, int], list[str | None]]
    videos: Callable[[Any], list[bytes]]


def _x_alts(fake: XFake, n: int) -> list[str | None]:
    return [fake.uploads[m].alt for m in fake.tweets[n].get("media", {}).get("media_ids", [])]


def _mastodon_videos(fake: MastodonFake) -> list[bytes]:
    return [ref for ref, kind in zip(fake.media_refs, fake.kinds.values(), strict=True) if kind == "video"]


def _bluesky_posts(fake: BlueskyFake) -> list[dict[str, Any]]:
    return list(fake.records.values())  # in the order they were written


def _bluesky_alts(fake: BlueskyFake, n: int) -> list[str | None]:
    return [image["alt"] or None for image in _bluesky_posts(fake)[n].get("embed", {}).get("images", [])]


def _bluesky_videos(fake: BlueskyFake) -> list[bytes]:
    embeds = [r["embed"] for r in _bluesky_posts(fake) if r.get("embed", {}).get("$type") == "app.bsky.embed.video"]
    return [fake.blobs[e["video"]["ref"]["$link"]] for e in embeds]


VIEWS = {
    "x": View(
        texts=lambda f: [t["text"] for t in f.tweets],
        parents=lambda f: [t.get("reply", {}).get("in_reply_to_tweet_id") for t in f.tweets],
        ids=lambda f: [t["id"] for t in f.tweets],
        alts=_x_alts,
        videos=lambda f: [bytes(u.data) for u in f.uploads.values() if u.category == "tweet_video"],
    ),
    "mastodon": View(
        texts=lambda f: [s["status"] for s in f.statuses],
        parents=lambda f: [s.get("in_reply_to_id") for s in f.statuses],
        ids=lambda f: [s["id"] for s in f.statuses],
        alts=lambda f, n: [f.descriptions[m] for m in f.statuses[n].get("media_ids", [])],
        videos=_mastodon_videos,
    ),
    "bluesky": View(
        texts=lambda f: [r["text"] for r in _bluesky_posts(f)],
        parents=lambda f: [r.get("reply", {}).get("parent", {}).get("uri") for r in _bluesky_posts(f)],
        ids=lambda f: [f"at://{f.did}/app.bsky.feed.post/{rkey}" for rkey in f.records],
        alts=_bluesky_alts,
        videos=_bluesky_videos,
    ),
}
SOCIAL = [case for case in CASES if case.name in VIEWS]
every = pytest.mark.parametrize("case", SOCIAL, ids=str)


def router(fake: Fake, case: Case) -> httpx.MockTransport:
    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.test":
            if request.url.path.endswith(".mp4"):
                return httpx.Response(200, content=CLIP, headers={"content-type": "video/mp4"})
            return httpx.Response(200, content=IMAGE, headers={"content-type": "image/png"})
        assert request.url.host in HOSTS[case.name], f"unexpected host {request.url.host}"
        return await fake.handle(request)

    return httpx.MockTransport(handle)


async def schedule(
    db: asyncpg.Connection, case: Case, campaign: uuid.UUID, content: str, media: list[dict[str, Any]] | None = None,
    *, thread: list[dict[str, Any]] | None = None, first_comment: str | None = None,
) -> uuid.UUID:
    post_id = await insert_post(db, campaign, soon(0.3), platform=case.name, content=content,
                                media=json.dumps(media or []))
    if thread or first_comment:
        await db.execute("UPDATE content_posts SET thread = $2::jsonb, first_comment = $3 WHERE id = $1",
                         post_id, json.dumps(thread or []), first_comment)
    return post_id


async def published(db: asyncpg.Connection, watcher: Any, post_id: uuid.UUID) -> asyncpg.Record:
    await watcher.wait(post_id, "published", "draft")
    r = await row(db, post_id)
    assert r["status"] == "published", r["error_message"]
    return r


@pytest.fixture
def run(db, watcher, start_daemon, settings_):  # type: ignore[no-untyped-def]
    """Connect the platform's fake, start the daemon on it, and hand back the fake."""

    async def started(case: Case) -> tuple[Fake, uuid.UUID]:
        fake = case.fake()
        campaign = await connect(db, case, fake)
        await start_daemon(transport=router(fake, case), platforms=settings())
        return fake, campaign

    return started


@every
async def test_a_video_post_is_published(case: Case, db, watcher, run) -> None:  # type: ignore[no-untyped-def]
    fake, campaign = await run(case)
    post_id = await schedule(db, case, campaign, "Launch day", [{"url": CLIP_URL, "mime": "video/mp4"}])
    r = await published(db, watcher, post_id)
    view = VIEWS[case.name]
    assert view.texts(fake) == ["Launch day"] and view.videos(fake) == [CLIP]
    assert r["platform_post_id"] == view.ids(fake)[0]


@every
async def test_a_carousel_keeps_each_image_s_alt_text(case: Case, db, watcher, run) -> None:  # type: ignore[no-untyped-def]
    fake, campaign = await run(case)
    alts = ["a red door", None, "🐈 on a mat", "the fourth"]
    media = [{"url": f"https://cdn.test/pics/{n}.png", "mime": "image/png", **({"alt": a} if a else {})}
             for n, a in enumerate(alts)]
    post_id = await schedule(db, case, campaign, "Four pictures", media)
    await published(db, watcher, post_id)
    assert VIEWS[case.name].alts(fake, 0) == alts


@every
async def test_a_thread_failing_at_item_3_is_retried_from_item_3(case: Case, db, watcher, run) -> None:  # type: ignore[no-untyped-def]
    fake, campaign = await run(case)
    fake.fail = ["", "", "refused"]  # item 3 cannot reach the platform, once
    thread = [{"content": FOUR[1], "media": [{"url": "https://cdn.test/pics/t.png", "alt": "chart",
                                              "mime": "image/png"}]}, {"content": FOUR[2]}, {"content": FOUR[3]}]
    post_id = await schedule(db, case, campaign, FOUR[0], thread=thread)
    r = await published(db, watcher, post_id)
    view = VIEWS[case.name]
    ids = view.ids(fake)
    assert view.texts(fake) == FOUR and view.parents(fake) == [None, *ids[:3]]
    assert view.alts(fake, 1) == ["chart"]
    state = json.loads(r["publish_state"])
    assert [item["id"] for item in state["items"]] == ids[:3] and r["platform_post_id"] == ids[0]
    attempts = await db.fetch("SELECT outcome, error_message FROM publish_attempts WHERE post_id = $1 ORDER BY attempt",
                              post_id)
    assert [a["outcome"] for a in attempts] == ["retry", "published"]
    assert attempts[0]["error_message"].startswith("thread incomplete: items 1–2 are out of 4")


async def test_x_first_comment_is_the_author_s_reply(db, watcher, run) -> None:  # type: ignore[no-untyped-def]
    case = next(c for c in SOCIAL if c.name == "x")
    fake, campaign = await run(case)
    post_id = await schedule(db, case, campaign, "Big news", first_comment="Details below")
    r = await published(db, watcher, post_id)
    assert [t["text"] for t in fake.tweets] == ["Big news", "Details below"]
    assert fake.tweets[1]["reply"] == {"in_reply_to_tweet_id": r["platform_post_id"]}
    assert json.loads(r["publish_state"])["first_comment"]["id"] == fake.tweets[1]["id"]
