"""A Facebook Page video that is not a Reel, against the fake that follows the Video API and
the Resumable Upload API: the app id setting, the Page video limits checked before any call,
the session checkpointed and the upload streamed from the server's offset (interrupted and
resumed, within an attempt and after it), ``/videos`` as the create call, processing; and
the Reels API's 30 Reels per Page in 24 hours."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from scheduler_daemon.errors import (
    ContentRejectedError,
    OutcomeUnknownError,
    PlatformConfigError,
    PublishError,
    RateLimitedError,
    TransientError,
)
from scheduler_daemon.models import Connection, MediaItem, Post
from scheduler_daemon.platforms.base import PlatformAdapter
from scheduler_daemon.platforms.delivery import deliver
from scheduler_daemon.platforms.facebook_reels import ReelsQuota
from scheduler_daemon.platforms.facebook_video import video_host
from support.media import mp4
from support.platforms.cases import CASES, adapter, connection
from support.platforms.context import FakeContext, Store, next_attempt
from support.platforms.fakes.facebook import FacebookFake

VIDEO_URL = "https://cdn.test/clips/talk.mp4"
LANDSCAPE = mp4(seconds=10, mdat_bytes=40_000)  # 1280×720: no Reel
REEL = mp4(seconds=10, width=1080, height=1920)
APP = {"SCHEDULER_FACEBOOK_CLIENT_ID": "4321"}
NOW = dt.datetime(2030, 1, 2, tzinfo=dt.timezone.utc)


def fb_post(content: str = "A talk") -> Post:
    return Post(
        id=uuid.UUID(int=7), platform="facebook", content=content,
        media=(MediaItem(VIDEO_URL, None, None, "video/mp4"),), campaign_id=None, user_id=uuid.UUID(int=1),
        scheduled_at=NOW, attempt=1, publish_state={},
    )


def setup(
    payload: bytes = LANDSCAPE, env: dict[str, str | None] | None = None
) -> tuple[FacebookFake, PlatformAdapter, Connection, FakeContext]:
    case = next(c for c in CASES if c.name == "facebook")
    fake = case.fake()
    assert isinstance(fake, FacebookFake)
    ctx = FakeContext(Store())
    conn = ctx.store.add(connection(case, fake))
    ctx.payloads[VIDEO_URL] = payload
    return fake, adapter(case, fake, APP if env is None else env), conn, ctx


def uploads(fake: FacebookFake) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.url.path.startswith("/v26.0/upload:")]


async def test_a_landscape_video_goes_through_the_video_api_streamed_to_the_upload_session() -> None:
    fake, platform, conn, ctx = setup()
    delivery = await deliver(platform, fb_post(), conn, ctx)
    assert (delivery.platform_post_id, delivery.platform_post_url) == (
        "pv1", "https://www.facebook.com/1234/videos/pv1")
    assert fake.sessions["upload:s1"]["data"] == LANDSCAPE and fake.page_videos["pv1"]["polls"] == 2
    assert [(p.text, p.media) for p in fake.posts] == [("A talk", ["pv1"])] and fake.publish_calls == 1
    [upload] = uploads(fake)
    assert upload.headers["file_offset"] == "0" and upload.headers["content-length"] == str(len(LANDSCAPE))
    assert upload.headers["authorization"] == "OAuth good-token" and "access_token" not in str(upload.url)
    assert ctx.checkpoints[0] == {"fb_upload": {"session": "upload:s1", "source": VIDEO_URL, "length": len(LANDSCAPE)}}
    assert fake.reels == {}


async def test_an_interrupted_upload_goes_on_from_the_offset_the_server_holds() -> None:
    fake, platform, conn, ctx = setup()
    fake.upload_cuts = [10_000, 5_000]
    delivery = await deliver(platform, fb_post(), conn, ctx)
    assert delivery.platform_post_id == "pv1" and fake.sessions["upload:s1"]["data"] == LANDSCAPE
    sent = [(r.headers["file_offset"], int(r.headers["content-length"])) for r in uploads(fake)]
    assert sent == [("0", len(LANDSCAPE)), ("10000", len(LANDSCAPE) - 10_000), ("15000", len(LANDSCAPE) - 15_000)]
    assert len(fake.sessions) == 1


async def test_an_attempt_after_a_cut_off_one_resumes_its_checkpointed_session_at_the_server_offset() -> None:
    fake, platform, conn, ctx = setup()
    fake.upload_cuts = [7_000, 0, 0]  # three cuts: this attempt gives up, retryable
    with pytest.raises(TransientError, match="Facebook video upload interrupted 3 times"):
        await deliver(platform, fb_post(), conn, ctx)
    assert fake.posts == [] and len(fake.sessions["upload:s1"]["data"]) == 7_000
    delivery = await deliver(platform, next_attempt(fb_post(), ctx), conn, ctx)
    assert delivery.platform_post_id == "pv1" and len(fake.sessions) == 1  # the same session, resumed
    assert uploads(fake)[-1].headers["file_offset"] == "7000"
    assert fake.sessions["upload:s1"]["data"] == LANDSCAPE


async def test_a_session_the_server_no_longer_knows_is_started_anew() -> None:
    fake, platform, conn, ctx = setup()
    ctx.state["fb_upload"] = {"session": "upload:gone", "source": VIDEO_URL, "length": len(LANDSCAPE)}
    delivery = await deliver(platform, next_attempt(fb_post(), ctx), conn, ctx)
    assert delivery.platform_post_id == "pv1" and list(fake.sessions) == ["upload:s1"]


async def test_a_session_made_for_another_file_is_not_resumed() -> None:
    fake, platform, conn, ctx = setup()
    fake.sessions["upload:s0"] = {"length": len(LANDSCAPE), "data": b"x" * 100}  # an earlier video's, same size
    ctx.state["fb_upload"] = {"session": "upload:s0", "source": "https://cdn.test/clips/old.mp4",
                              "length": len(LANDSCAPE)}
    delivery = await deliver(platform, next_attempt(fb_post(), ctx), conn, ctx)
    assert delivery.platform_post_id == "pv1" and fake.sessions["upload:s0"]["data"] == b"x" * 100
    assert fake.page_videos["pv1"]["bytes"] == LANDSCAPE


async def test_without_the_app_id_a_video_the_reels_rules_refuse_is_refused_naming_the_setting() -> None:
    fake, platform, conn, ctx = setup(env={})
    with pytest.raises(ContentRejectedError) as caught:
        await deliver(platform, fb_post(), conn, ctx)
    assert str(caught.value) == (
        "Facebook takes Reels: vertical (9:16) videos of at least 540×960; the video of this post is 1280×720;"
        " other Page videos go through the Video API once SCHEDULER_FACEBOOK_CLIENT_ID (the Meta app id) is set")
    assert fake.requests == []


async def test_a_reel_shaped_video_is_still_a_reel_with_the_app_id() -> None:
    fake, platform, conn, ctx = setup(REEL)
    delivery = await deliver(platform, fb_post(), conn, ctx)
    assert delivery.platform_post_url == "https://www.facebook.com/reel/v1" and fake.sessions == {}


@pytest.mark.parametrize(("payload", "rule"), [
    (mp4(seconds=14_401), "Facebook takes videos up to 14400 s; the video of this post lasts 14401.0 s"),
    (mp4(seconds=120, brand=b"qt  "), "Facebook takes MP4 videos; the video of this post is MOV"),
    (mp4(seconds=120, codec=b"vp09"), "Facebook takes H264 or HEVC video; the video of this post is VP9"),
    (mp4(seconds=120, audio_object_type=0x6B), "Facebook takes AAC sound; the video of this post has MP3"),
])
async def test_the_page_video_limits_are_checked_before_any_call(payload: bytes, rule: str) -> None:
    fake, platform, conn, ctx = setup(payload)
    with pytest.raises(ContentRejectedError) as caught:
        await deliver(platform, fb_post(), conn, ctx)
    assert str(caught.value) == rule and fake.requests == []


async def test_a_video_that_fails_processing_says_why_and_a_retry_makes_it_anew() -> None:
    fake, platform, conn, ctx = setup()
    fake.page_video_outcome = "error"
    with pytest.raises(ContentRejectedError, match="Facebook could not process the video: The video file you tried"):
        await deliver(platform, fb_post(), conn, ctx)
    assert ctx.state["fb_video_id"] is None


async def test_a_video_still_processing_at_the_poll_timeout_is_out_all_the_same() -> None:
    fake, platform, conn, ctx = setup(env={**APP, "SCHEDULER_MEDIA_POLL_TIMEOUT_SECONDS": "0"})
    delivery = await deliver(platform, fb_post(), conn, ctx)
    assert delivery.platform_post_id == "pv1" and fake.page_videos["pv1"]["polls"] == 1


async def test_an_attempt_after_a_crash_past_the_videos_call_waits_for_that_video_and_never_makes_another() -> None:
    fake, platform, conn, ctx = setup()
    await deliver(platform, fb_post(), conn, ctx)
    crashed = {k: v for k, v in ctx.state.items() if k != "items"}  # the video id checkpointed, the item not
    assert crashed["fb_video_id"] == "pv1"
    again = FakeContext(ctx.store, crashed)
    again.payloads[VIDEO_URL] = LANDSCAPE
    post = fb_post()
    delivery = await deliver(platform, next_attempt(post, again), conn, again)
    assert delivery.platform_post_id == "pv1" and fake.publish_calls == 1 and len(fake.posts) == 1
    assert fake.page_videos["pv1"]["polls"] == 3 and len(uploads(fake)) == 1  # prepared once: reused


async def test_a_lost_answer_to_the_videos_call_is_an_unknown_outcome() -> None:
    fake, platform, conn, ctx = setup()
    fake.fail = ["unknown"]
    with pytest.raises(OutcomeUnknownError):
        await deliver(platform, fb_post(), conn, ctx)
    assert len(fake.posts) == 1  # it was created: never sent again blindly


async def test_an_app_id_that_is_not_a_number_is_a_configuration_error_before_any_call() -> None:
    fake, platform, conn, ctx = setup(env={"SCHEDULER_FACEBOOK_CLIENT_ID": "my-app"})
    with pytest.raises(PlatformConfigError, match="SCHEDULER_FACEBOOK_CLIENT_ID must be the Meta app's id"):
        await deliver(platform, fb_post(), conn, ctx)
    assert fake.requests == []


def test_the_videos_call_goes_to_the_graph_video_host() -> None:
    assert video_host("https://graph.facebook.com/v26.0") == "https://graph-video.facebook.com/v26.0"
    assert video_host("https://fb.test/v26.0") == "https://fb.test/v26.0"


# -- the Reels API's 30 per Page in 24 h -------------------------------------------------------


async def test_the_31st_reel_of_a_page_in_24_hours_waits_before_any_call_and_a_refused_one_does_not_count() -> None:
    fake, platform, conn, ctx = setup(REEL)

    def another() -> FakeContext:  # each post's own publish_state
        fresh = FakeContext(ctx.store)
        fresh.payloads[VIDEO_URL] = REEL
        return fresh

    fake.fail = ["content"]  # the first finish is refused: that Reel is not out, its slot is given back
    with pytest.raises(ContentRejectedError, match="Duplicate status message"):
        await deliver(platform, fb_post("refused"), conn, another())
    for n in range(30):
        await deliver(platform, fb_post(f"reel {n}"), conn, another())
    assert len(fake.posts) == 30
    sent = len(fake.requests)
    with pytest.raises(RateLimitedError, match=r"^Facebook takes 30 Reels per Page in 24 hours") as caught:
        await deliver(platform, fb_post("one too many"), conn, another())
    assert len(fake.requests) == sent  # no upload for a Reel that has to wait
    assert caught.value.retry_after is not None and 86_000 < caught.value.retry_after <= 86_400


def test_the_reels_quota_is_a_moving_24_hours_per_page() -> None:
    now = [0.0]
    quota = ReelsQuota(2, clock=lambda: now[0])
    quota.take("p")
    now[0] = 3600.0
    quota.take("p")
    quota.take("other page")
    with pytest.raises(RateLimitedError) as caught:
        quota.check("p")
    assert caught.value.retry_after == 86_400 - 3600
    now[0] = 86_400.0  # the first is 24 hours old
    stamp = quota.take("p")
    quota.give_back("p", stamp)
    quota.take("p")
    with pytest.raises(PublishError):
        quota.check("p")
