"""Bluesky video through the video service (the fake in support/platforms/fakes/bluesky_video:
job states, progress, failure, already_exists, 401 on a bad service token), the simple
method where the service cannot take it, and prepared blobs: reused at the instant while a
PDS surely keeps them, uploaded again past that."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pytest
import structlog

from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.errors import ConfigError, ContentRejectedError, RateLimitedError, TransientError
from scheduler_daemon.models import MediaItem, Post, PostItem
from scheduler_daemon.platforms.bluesky_embed import BLOB_KEEP_SECONDS
from scheduler_daemon.platforms.bluesky_video import did_web
from scheduler_daemon.platforms.delivery import deliver, prepare
from support.media import mp4
from support.platforms.cases import CASES, adapter, connection, post
from support.platforms.context import IMAGE, FakeContext, Store, next_attempt
from support.platforms.fakes.base import body
from support.platforms.fakes.bluesky import BlueskyFake

CASE = next(c for c in CASES if c.name == "bluesky")
CLIP = "https://cdn.test/clips/launch.mp4"
SIMPLE = "bluesky video service unavailable: the video goes to the PDS by the simple method," \
         " and plays once processed after the post is out"


def setup(env: dict[str, str | None] | None = None):  # type: ignore[no-untyped-def]
    fake = BlueskyFake()
    store = Store()
    conn = store.add(connection(CASE, fake))
    ctx = FakeContext(store)
    ctx.payloads[CLIP] = mp4(width=1080, height=1920, seconds=20, mdat_bytes=300_000)
    return fake, adapter(CASE, fake, env), conn, ctx


def video_post(n: int = 1, alt: str | None = "a rocket lifts off") -> Post:
    media = (MediaItem(url=CLIP, storage_path=None, alt=alt, mime="video/mp4"),)
    return dataclasses.replace(post(CASE, "Launch", n=n), media=media)


def calls(fake: BlueskyFake, since: int = 0) -> list[str]:
    return [r.url.path.rsplit("/", 1)[-1] for r in fake.requests[since:]]


def embed(fake: BlueskyFake, n: int = -1) -> dict[str, Any]:
    puts = [body(r) for r in fake.requests if r.url.path.endswith("putRecord")]
    return puts[n]["record"]["embed"]  # type: ignore[no-any-return]


async def test_a_video_is_processed_by_the_service_before_the_post_and_embedded_with_its_blob() -> None:
    fake, platform, conn, ctx = setup()
    clip = ctx.payloads[CLIP]
    await deliver(platform, video_post(), conn, ctx)
    assert calls(fake) == [
        "com.atproto.server.getServiceAuth", "app.bsky.video.getUploadLimits", "com.atproto.server.getSession",
        "com.atproto.server.describeServer", "com.atproto.server.getServiceAuth", "app.bsky.video.uploadVideo",
        "app.bsky.video.getJobStatus", "app.bsky.video.getJobStatus", "app.bsky.video.getJobStatus",
        "com.atproto.repo.putRecord",
    ]  # ENCODING, SCANNING, COMPLETED: the record goes out once the video is processed
    [upload] = [r for r in fake.requests if r.url.path.endswith("uploadVideo")]
    assert upload.url.host == "video.bsky.app" and upload.content == clip
    assert dict(upload.url.params) == {"did": fake.did, "name": "launch.mp4"}
    [described] = [r for r in fake.requests if r.url.path.endswith("describeServer")]
    assert described.url.host == "morel.us-east.host.bsky.network" and "authorization" not in described.headers
    claims = fake.service_tokens[upload.headers["authorization"].removeprefix("Bearer ")]
    # the audience is the account's own PDS (its DID document), not the entryway the daemon calls
    assert (claims["aud"], claims["lxm"]) == ("did:web:morel.us-east.host.bsky.network", "com.atproto.repo.uploadBlob")
    assert time.time() + 29 * 60 < claims["exp"] <= time.time() + 30 * 60
    shown = embed(fake)
    assert shown["$type"] == "app.bsky.embed.video" and shown["alt"] == "a rocket lifts off"
    assert shown["aspectRatio"] == {"width": 1080, "height": 1920}
    assert fake.blobs[shown["video"]["ref"]["$link"]] == clip and shown["video"]["mimeType"] == "video/mp4"
    assert "token" not in json.dumps(ctx.state)  # no service token is checkpointed


async def test_a_failed_job_ends_with_the_services_reason_and_nothing_is_posted() -> None:
    fake, platform, conn, ctx = setup()
    fake.video.fail_with = ("video processing error for job: job0001", "Failed to process video")
    with pytest.raises(ContentRejectedError) as caught:
        await deliver(platform, video_post(), conn, ctx)
    assert str(caught.value) == "Bluesky's video service could not process the video of this post: " \
                                "Failed to process video"
    assert fake.posts == [] and "com.atproto.repo.uploadBlob" not in calls(fake)


async def test_a_video_processed_before_takes_the_earlier_jobs_blob() -> None:
    fake, platform, conn, ctx = setup()
    await deliver(platform, video_post(1), conn, ctx)
    since = len(fake.requests)
    await deliver(platform, video_post(2), conn, ctx_for(ctx))
    assert len(fake.video.jobs) == 1 and len(fake.video.uploads) == 2  # 409 already_exists, job0001
    assert calls(fake, since)[-2:] == ["app.bsky.video.getJobStatus", "com.atproto.repo.putRecord"]
    assert embed(fake, 0)["video"] == embed(fake, 1)["video"]


def ctx_for(ctx: FakeContext) -> FakeContext:
    """Another post's context on the same store, serving the same media."""
    fresh = FakeContext(ctx.store)
    fresh.payloads = ctx.payloads
    return fresh


@pytest.mark.parametrize("why", ["refused", "entryway-audience", "down", "no-service-auth"])
async def test_where_the_service_cannot_take_it_the_video_goes_by_upload_blob_and_it_is_logged(why: str) -> None:
    fake, platform, conn, ctx = setup()
    if why == "refused":  # a self-hosted PDS the service does not serve
        fake.video.refuse_pds = True
    elif why == "entryway-audience":  # no DID document, no describeServer: the token is for pds.test → 401
        fake.describes = False
        fake.session_query = _without_did_doc(fake)  # type: ignore[method-assign]
    elif why == "down":
        fake.video.down = True
    else:
        fake.service_auth = False
    with structlog.testing.capture_logs() as logs:
        result = await deliver(platform, video_post(), conn, ctx)
    assert result.platform_post_id
    [blob_upload] = [r for r in fake.requests if r.url.path.endswith("uploadBlob")]
    assert blob_upload.url.host == "pds.test" and blob_upload.content == ctx.payloads[CLIP]
    assert fake.blobs[embed(fake)["video"]["ref"]["$link"]] == ctx.payloads[CLIP]
    [logged] = [e for e in logs if e["event"] == SIMPLE]
    assert logged["log_level"] == "warning" and logged["service"] == "https://video.bsky.app"
    assert "service-" not in json.dumps(logs)  # never a token in a log


def _without_did_doc(fake: BlueskyFake):  # type: ignore[no-untyped-def]
    original = fake.session_query

    def answer(request, method):  # type: ignore[no-untyped-def]
        response = original(request, method)
        if method.endswith("getSession"):
            data = json.loads(response.content)
            data.pop("didDoc")
            return type(response)(200, json=data)
        return response

    return answer


async def test_an_account_at_its_daily_limit_is_told_before_the_upload() -> None:
    fake, platform, conn, ctx = setup()
    fake.video.limits = {"canUpload": False, "message": "You have reached your daily upload limit",
                         "error": "daily_limit"}
    with pytest.raises(RateLimitedError) as caught:
        await deliver(platform, video_post(), conn, ctx)
    assert str(caught.value) == "Bluesky takes no more videos from this account now: " \
                                "You have reached your daily upload limit"
    assert fake.video.uploads == [] and fake.posts == []


async def test_a_job_still_processing_after_the_poll_timeout_is_tried_again() -> None:
    fake, platform, conn, ctx = setup({"SCHEDULER_MEDIA_POLL_TIMEOUT_SECONDS": "0"})
    fake.video.states = ["JOB_STATE_ENCODING"] * 3
    with pytest.raises(TransientError, match="Bluesky video processing: still processing after 0 s"):
        await deliver(platform, video_post(), conn, ctx)
    assert fake.posts == []
    fake.video.states = []  # processed meanwhile: the retry's upload is already_exists, its blob is there
    await deliver(platform, next_attempt(video_post(), ctx), conn, ctx)
    assert len(fake.video.jobs) == 1 and len(fake.posts) == 1


async def test_a_prepared_post_sends_only_the_record_at_the_instant() -> None:
    fake, platform, conn, ctx = setup()
    text = f"Launch with @bob.test {CLIP.replace('clips/launch.mp4', 'story')}"
    the_post = dataclasses.replace(video_post(), content=text)
    await prepare(platform, the_post, conn, ctx)  # what the preparer runs in the window
    since = len(fake.requests)
    await deliver(platform, next_attempt(the_post, ctx), conn, ctx)
    assert calls(fake, since) == ["com.atproto.repo.putRecord"]
    record = body(fake.requests[-1])["record"]
    assert record["facets"][0]["features"][0] == {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:bob"}
    assert record["embed"]["video"]["ref"]["$link"] in fake.blobs


async def test_blobs_prepared_longer_ago_than_a_pds_keeps_them_are_uploaded_again() -> None:
    fake, platform, conn, ctx = setup()
    the_post = post(CASE, "a cat", with_image=True)
    await prepare(platform, the_post, conn, ctx)
    ctx.state["prepared"]["value"]["prepared_at"] -= BLOB_KEEP_SECONDS + 60
    since = len(fake.requests)
    await deliver(platform, next_attempt(the_post, ctx), conn, ctx)
    assert calls(fake, since) == ["com.atproto.repo.uploadBlob", "com.atproto.repo.putRecord"]
    assert [p.media for p in fake.posts] == [[embed(fake)["images"][0]["image"]["ref"]["$link"]]]
    assert fake.media_refs == [IMAGE, IMAGE]
    fresh = ctx.state["prepared"]["value"]["prepared_at"]
    assert time.time() - 60 < fresh <= time.time()  # the new preparation's time is kept


def test_did_web_of_a_service() -> None:
    assert did_web("https://video.bsky.app") == "did:web:video.bsky.app"
    assert did_web("http://LocalHost:2583/") == "did:web:localhost"  # the reference PDS's own default


async def test_a_thread_prepares_each_items_media() -> None:
    fake, platform, conn, ctx = setup()
    thread = dataclasses.replace(video_post(), thread=(PostItem("2/2", (MediaItem(
        url="https://cdn.test/pics/2.png", storage_path=None, alt="two", mime="image/png"),)),))
    await prepare(platform, thread, conn, ctx)
    made = calls(fake)
    assert made.count("app.bsky.video.uploadVideo") == 1 and made.count("com.atproto.repo.uploadBlob") == 1
    since = len(fake.requests)
    await deliver(platform, next_attempt(thread, ctx), conn, ctx)
    assert calls(fake, since) == ["com.atproto.repo.putRecord", "com.atproto.repo.putRecord"]


async def test_a_session_of_another_account_does_not_say_where_this_accounts_blobs_live() -> None:
    """A connection holding another account's token (a tenant's own doing) gets that account's
    DID document from getSession: it neither picks this DID's PDS nor is kept for it."""
    fake, platform, conn, ctx = setup()
    fake.session_did = "did:plc:mallory"
    await deliver(platform, video_post(), conn, ctx)
    [described] = [r for r in fake.requests if r.url.path.endswith("describeServer")]
    assert described.url.host == "pds.test"  # the PDS the daemon calls, not mallory's morel.us-east…


def test_the_video_service_is_a_setting() -> None:
    assert PlatformSettings.from_env({}).bluesky_video_service == "https://video.bsky.app"
    found = PlatformSettings.from_env({"SCHEDULER_BLUESKY_VIDEO_SERVICE": "https://video.example.com/"})
    assert found.bluesky_video_service == "https://video.example.com"
    with pytest.raises(ConfigError, match=r"^SCHEDULER_BLUESKY_VIDEO_SERVICE='video\.example\.com' must be an http"):
        PlatformSettings.from_env({"SCHEDULER_BLUESKY_VIDEO_SERVICE": "video.example.com"})


async def test_a_configured_video_service_is_the_one_called() -> None:
    fake, platform, conn, ctx = setup({"SCHEDULER_BLUESKY_VIDEO_SERVICE": "https://video.example.com"})
    fake.video_hosts = {"video.example.com"}
    await deliver(platform, video_post(), conn, ctx)
    hosts = {r.url.host for r in fake.requests if "/app.bsky.video." in r.url.path}
    assert hosts == {"video.example.com"} and "com.atproto.repo.uploadBlob" not in calls(fake)
    audiences = sorted(c["aud"] for c in fake.service_tokens.values())
    assert audiences == ["did:web:morel.us-east.host.bsky.network", "did:web:video.example.com"]
