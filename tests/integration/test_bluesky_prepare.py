"""Bluesky prepared ahead, through the daemon (issue 16, item 1): a post with a video and a
mention is prepared inside the window (session, mentions resolved into facets, the video
through the video service until processed, its blob ref checkpointed in publish_state) and
at the instant only ``com.atproto.repo.putRecord`` goes out, under the post's fixed record
key, with the prepared blob."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from scheduler_daemon.platforms.bluesky import POST, record_key
from support.helpers import insert_post, row, soon
from support.media import mp4
from support.platforms.cases import CASES, settings
from support.platforms.fakes.base import body
from support.platforms.fakes.bluesky import BlueskyFake

from .test_platforms_through_daemon import connect, scheduled_at

CASE = next(c for c in CASES if c.name == "bluesky")
CLIP = mp4(seconds=6, mdat_bytes=200_000)
CLIP_URL = "https://cdn.test/clips/launch.mp4"
WAIT = 15.0


def transport(fake: BlueskyFake, processed: asyncio.Event) -> httpx.MockTransport:
    """The CDN serving the clip, the PDS fake (the entryway the daemon calls and the account's
    own PDS, which describeServer asks) and its video service; ``processed`` is set when the
    service answers a completed job."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.test":
            return httpx.Response(200, content=CLIP, headers={"content-type": "video/mp4"})
        assert request.url.host in ("pds.test", "morel.us-east.host.bsky.network", "video.bsky.app"), request.url.host
        response = await fake.handle(request)
        if request.url.path.endswith("getJobStatus") and b"JOB_STATE_COMPLETED" in response.content:
            processed.set()
        return response

    return httpx.MockTransport(handle)


async def test_a_prepared_bluesky_video_post_sends_only_the_record_at_the_instant(
    db, watcher, start_daemon,  # type: ignore[no-untyped-def]
) -> None:
    fake = BlueskyFake()
    processed = asyncio.Event()
    daemon = (await start_daemon(transport=transport(fake, processed), platforms=settings())).daemon
    campaign = await connect(db, CASE, fake)
    media = json.dumps([{"url": CLIP_URL, "mime": "video/mp4", "alt": "lift-off"}])
    post_id = await insert_post(db, campaign, soon(4.0), platform="bluesky", content="Go @bob.test", media=media)
    async with asyncio.timeout(WAIT):
        await processed.wait()
        while daemon.preparer.prepared < 1:
            daemon.preparer.progress.clear()
            if daemon.preparer.prepared < 1:
                await daemon.preparer.progress.wait()
    r = await row(db, post_id)
    assert (r["status"], r["prepared_version"], r["prepare_error"]) == ("scheduled", r["schedule_version"], None)
    kept: dict[str, Any] = json.loads(r["publish_state"])["prepared"]["value"]
    [record] = kept["records"]
    link = record["embed"]["video"]["ref"]["$link"]
    assert fake.blobs[link] == CLIP and record["facets"][0]["features"][0]["did"] == "did:plc:bob"
    before = len(fake.requests)
    assert not any(q.url.path.endswith("putRecord") for q in fake.requests)

    await watcher.wait(post_id, "published", "draft", timeout=WAIT)
    instant = fake.requests[before:]
    assert [q.url.path for q in instant] == ["/xrpc/com.atproto.repo.putRecord"]  # the instant's only call
    sent = body(instant[0])
    r = await row(db, post_id)
    assert sent["rkey"] == record_key(post_id, scheduled_at(r)) and sent["collection"] == POST
    assert sent["record"]["embed"]["video"]["ref"]["$link"] == link
    assert r["status"] == "published" and len(fake.posts) == 1
