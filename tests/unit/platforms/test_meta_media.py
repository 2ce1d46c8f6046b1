"""Facebook, Instagram and Threads against their fakes: video (checked before any call, the
documented upload or container flow, processing to FINISHED or ERROR, expiry), carousels
and multi-photo posts with mixed alt text, Threads reply chains resumed after the last item
out, first comments, and each platform's options."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import pytest

from scheduler_daemon.errors import ContentRejectedError, InvalidPostError, OutcomeUnknownError, RetryablePublishError
from scheduler_daemon.models import Connection, MediaItem, Post, PostItem
from scheduler_daemon.platforms._video import checked_video, is_video
from scheduler_daemon.platforms.base import PlatformAdapter, VideoLimit
from scheduler_daemon.platforms.delivery import deliver
from support.media import mp4
from support.platforms.cases import CASES, adapter, connection
from support.platforms.context import IMAGE_URL, FakeContext, Store, next_attempt

VIDEO_URL = "https://cdn.test/clips/dog.mp4"
VIDEO = mp4(seconds=10, width=1080, height=1920)
NOW = dt.datetime(2030, 1, 2, tzinfo=dt.timezone.utc)


def image(alt: str | None = None, n: int = 1) -> MediaItem:
    return MediaItem(IMAGE_URL.replace("cat", f"cat{n}"), None, alt, "image/png")


def video(alt: str | None = None, url: str = VIDEO_URL) -> MediaItem:
    return MediaItem(url, None, alt, "video/mp4")


def meta_post(platform: str, *items: PostItem, first_comment: str | None = None,
              options: dict[str, Any] | None = None) -> Post:
    return Post(
        id=uuid.UUID(int=9), platform=platform, content=items[0].content, media=items[0].media, campaign_id=None,
        user_id=uuid.UUID(int=1), scheduled_at=NOW, attempt=1, publish_state={}, thread=tuple(items[1:]),
        first_comment=first_comment, options=options or {},
    )


def setup(name: str, payload: bytes = VIDEO) -> tuple[Any, PlatformAdapter, Connection, FakeContext]:
    case = next(c for c in CASES if c.name == name)
    fake = case.fake()
    ctx = FakeContext(Store())
    conn = ctx.store.add(connection(case, fake))
    ctx.payloads[VIDEO_URL] = payload
    return fake, adapter(case, fake), conn, ctx


# -- Instagram -------------------------------------------------------------------------------


async def test_instagram_posts_a_video_as_a_reel_polled_to_finished_with_its_options() -> None:
    fake, platform, conn, ctx = setup("instagram")
    the_post = meta_post("instagram", PostItem("A dog", (video("ignored: Reels take none"),)),
                         options={"share_to_feed": True, "thumb_offset": 1500})
    delivery = await deliver(platform, the_post, conn, ctx)
    assert (delivery.platform_post_id, delivery.platform_post_url) == ("m1", "https://posts.test/m1")
    [shown] = fake.shown
    assert {k: shown[k] for k in ("media_type", "video_url", "caption", "share_to_feed", "thumb_offset")} == {
        "media_type": "REELS", "video_url": VIDEO_URL, "caption": "A dog", "share_to_feed": "true",
        "thumb_offset": "1500"}
    assert "alt_text" not in shown and fake.containers["c1"]["polls"] >= 3  # IN_PROGRESS twice, then FINISHED
    assert ctx.fetched == [VIDEO_URL]  # spooled and checked before the container


@pytest.mark.parametrize(("payload", "rule"), [
    (mp4(seconds=901), "Instagram takes videos up to 900 s; the video of this post lasts 901.0 s"),
    (mp4(seconds=2), "Instagram takes videos of at least 3 s; the video of this post lasts 2.0 s"),
    (mp4(seconds=10, fps=120), "Instagram takes videos up to 60 frames per second; the video of this post has 120"),
    (mp4(seconds=10, width=3840, height=2160), "Instagram takes videos up to 1920×∞"),
    (mp4(seconds=10, audio_object_type=0x6B), "Instagram takes AAC sound; the video of this post has MP3"),
])
async def test_instagram_refuses_a_video_against_the_reels_rules_before_any_call(payload: bytes, rule: str) -> None:
    fake, platform, conn, ctx = setup("instagram", payload)
    with pytest.raises(ContentRejectedError) as caught:
        await deliver(platform, meta_post("instagram", PostItem("A dog", (video(),))), conn, ctx)
    assert str(caught.value).startswith(rule), str(caught.value)
    assert fake.requests == []


async def test_instagram_carousel_mixes_images_and_a_video_with_mixed_alt_text() -> None:
    fake, platform, conn, ctx = setup("instagram")
    media = (image("a cat on a mat", 1), image(None, 2), video())
    delivery = await deliver(platform, meta_post("instagram", PostItem("Three", media)), conn, ctx)
    assert delivery.platform_post_id == "m1"
    [shown] = fake.shown
    assert shown["media_type"] == "CAROUSEL" and shown["caption"] == "Three"
    assert [{k: v for k, v in part.items() if k != "is_carousel_item"} for part in shown["parts"]] == [
        {"image_url": media[0].url, "alt_text": "a cat on a mat"}, {"image_url": media[1].url},
        {"media_type": "VIDEO", "video_url": VIDEO_URL}]
    assert fake.posts[0].media == [media[0].url, media[1].url, VIDEO_URL]


async def test_instagram_a_video_that_fails_processing_is_refused_with_the_platform_s_reason() -> None:
    fake, platform, conn, ctx = setup("instagram")
    fake.video_outcome = "ERROR"
    with pytest.raises(ContentRejectedError, match="could not process the media: Error: the video's codec"):
        await deliver(platform, meta_post("instagram", PostItem("A dog", (video(),))), conn, ctx)
    assert fake.posts == [] and fake.publish_calls == 0


async def test_instagram_an_expired_container_is_made_anew_on_the_retry_and_published_once() -> None:
    fake, platform, conn, ctx = setup("instagram")
    fake.fail = ["rate"]  # the first media_publish is refused: the container waits
    first = meta_post("instagram", PostItem("A cat", (image("alt"),)))
    with pytest.raises(RetryablePublishError):
        await deliver(platform, first, conn, ctx)
    fake.expire = {"c1"}  # 24 hours pass before the retry
    delivery = await deliver(platform, next_attempt(first, ctx), conn, ctx)
    assert delivery.platform_post_id == "m1" and len(fake.posts) == 1
    assert fake.containers["c1"]["status"] == "EXPIRED" and fake.containers["c2"]["status"] == "PUBLISHED"


async def test_instagram_first_comment_goes_under_the_published_media() -> None:
    fake, platform, conn, ctx = setup("instagram")
    the_post = meta_post("instagram", PostItem("A cat", (image(),)), first_comment="#cats #more")
    delivery = await deliver(platform, the_post, conn, ctx)
    assert fake.comments == [{"on": "m1", "message": "#cats #more", "id": "cm1"}]
    assert delivery.comment is not None and delivery.comment.platform_post_id == "cm1" and delivery.notice is None
    assert ctx.state["first_comment"] == {"id": "cm1", "url": "https://posts.test/m1"}


async def test_instagram_a_refused_first_comment_leaves_the_post_published_with_a_notice() -> None:
    fake, platform, conn, ctx = setup("instagram")
    fake.comment_fail = ["content"]
    delivery = await deliver(platform, meta_post("instagram", PostItem("A cat", (image(),)), first_comment="hi"),
                             conn, ctx)
    assert delivery.platform_post_id == "m1" and fake.comments == []
    assert delivery.notice and delivery.notice.startswith("published, but the first comment failed: Instagram rejected")


@pytest.mark.parametrize(("options", "media", "message"), [
    ({"share_to_feed": True}, (image(),), "platform_options: share_to_feed apply to a Reel (a post of one video)"),
    ({"share_to_fed": True}, (video(),), "platform_options: Instagram has no option 'share_to_fed'; it takes "
                                          "share_to_feed, thumb_offset"),
    ({"thumb_offset": "1s"}, (video(),), 'platform_options.thumb_offset must be a whole number, not "1s"'),
])
async def test_instagram_options_are_refused_where_they_do_not_apply(
    options: dict[str, Any], media: tuple[MediaItem, ...], message: str,
) -> None:
    fake, platform, conn, ctx = setup("instagram")
    with pytest.raises(InvalidPostError) as caught:
        await deliver(platform, meta_post("instagram", PostItem("x", media), options=options), conn, ctx)
    assert str(caught.value).startswith(message) and fake.requests == []


# -- Threads ---------------------------------------------------------------------------------


async def test_threads_posts_a_video_container_with_its_alt_text() -> None:
    fake, platform, conn, ctx = setup("threads")
    delivery = await deliver(platform, meta_post("threads", PostItem("A dog", (video("a dog runs"),))), conn, ctx)
    assert delivery.platform_post_id == "m1"
    [shown] = fake.shown
    assert {k: shown[k] for k in ("media_type", "video_url", "alt_text", "text")} == {
        "media_type": "VIDEO", "video_url": VIDEO_URL, "alt_text": "a dog runs", "text": "A dog"}


async def test_threads_carousel_mixes_images_and_videos_with_mixed_alt_text() -> None:
    fake, platform, conn, ctx = setup("threads")
    media = (image(None, 1), video("a dog runs"), image("a cat sits", 3))
    await deliver(platform, meta_post("threads", PostItem("Three", media)), conn, ctx)
    [shown] = fake.shown
    assert shown["media_type"] == "CAROUSEL" and shown["text"] == "Three"
    assert [(p["media_type"], p.get("alt_text")) for p in shown["parts"]] == [
        ("IMAGE", None), ("VIDEO", "a dog runs"), ("IMAGE", "a cat sits")]


FOUR = ("1/4 a thread", "2/4 with a video", "3/4 fails the first time", "4/4 the end")


async def test_threads_a_thread_fails_at_item_3_and_the_retry_resumes_at_item_3() -> None:
    fake, platform, conn, ctx = setup("threads")
    fake.fail = ["", "", "transient"]  # item 3's threads_publish answers 5xx (before it commits)
    items = [PostItem(t, (video(),) if n == 1 else ()) for n, t in enumerate(FOUR)]
    the_post = meta_post("threads", *items, options={"reply_control": "accounts_you_follow"})
    with pytest.raises(OutcomeUnknownError):  # Threads declares idempotent: the engine retries it
        await deliver(platform, the_post, conn, ctx)
    assert [i["id"] for i in ctx.state["items"]] == ["m1", "m2"]
    delivery = await deliver(platform, next_attempt(the_post, ctx), conn, ctx)
    assert [r.platform_post_id for r in delivery.items] == ["m1", "m2", "m3", "m4"]
    assert [p.text for p in fake.posts] == list(FOUR)
    assert [s.get("reply_to_id") for s in fake.shown] == [None, "m1", "m2", "m3"]
    assert {s["reply_control"] for s in fake.shown} == {"accounts_you_follow"}
    assert fake.containers["c3"]["polls"] == 4, "the retry read item 3's container before publishing it"
    made = [c["fields"].get("text") for c in fake.containers.values()]
    assert made.count(FOUR[2]) == 1, "item 3's container is made once and reused by the retry"
    assert ctx.fetched == [VIDEO_URL]  # item 2's video was checked before the first call, once


async def test_threads_a_reply_published_with_its_answer_lost_is_found_and_never_sent_twice() -> None:
    fake, platform, conn, ctx = setup("threads")
    fake.fail = ["", "unknown"]  # item 2 is published, and its answer lost
    the_post = meta_post("threads", PostItem("one"), PostItem("two"), PostItem("three"))
    with pytest.raises(OutcomeUnknownError):
        await deliver(platform, the_post, conn, ctx)
    delivery = await deliver(platform, next_attempt(the_post, ctx), conn, ctx)
    assert [r.platform_post_id for r in delivery.items] == ["m1", "m2", "m3"]
    assert [p.text for p in fake.posts] == ["one", "two", "three"] and fake.publish_calls == 3
    assert fake.shown[2]["reply_to_id"] == "m2"  # found among the account's replies
    assert any(r.url.path == "/v1.0/42/replies" for r in fake.requests)


async def test_threads_a_video_of_a_later_item_is_checked_before_the_first_item_goes_out() -> None:
    fake, platform, conn, ctx = setup("threads", mp4(seconds=301))
    items = (PostItem("one"), PostItem("two", (video(),)), PostItem("three"))
    with pytest.raises(ContentRejectedError, match=r"^Threads takes videos up to 300 s; the video of item 2 of 3"):
        await deliver(platform, meta_post("threads", *items), conn, ctx)
    assert fake.requests == []


async def test_threads_reply_control_takes_the_documented_values_only() -> None:
    fake, platform, conn, ctx = setup("threads")
    with pytest.raises(InvalidPostError, match=r"platform_options\.reply_control must be one of everyone, "):
        await deliver(platform, meta_post("threads", PostItem("x"), options={"reply_control": "friends"}), conn, ctx)
    assert fake.requests == []


# -- Facebook --------------------------------------------------------------------------------


async def test_facebook_posts_a_video_as_a_reel_streamed_to_the_upload_session() -> None:
    fake, platform, conn, ctx = setup("facebook")
    delivery = await deliver(platform, meta_post("facebook", PostItem("A dog", (video(),))), conn, ctx)
    assert (delivery.platform_post_id, delivery.platform_post_url) == ("v1", "https://www.facebook.com/reel/v1")
    assert fake.uploads == {"v1": VIDEO} and fake.reels["v1"]["polls"] >= 2
    assert [(p.text, p.media) for p in fake.posts] == [("A dog", ["v1"])]
    upload = next(r for r in fake.requests if r.url.host == "fb-upload.test")
    assert upload.headers["content-length"] == str(len(VIDEO)) and "access_token" not in str(upload.url)


async def test_facebook_a_reel_whose_upload_fails_processing_says_why_and_posts_nothing() -> None:
    fake, platform, conn, ctx = setup("facebook")
    fake.video_outcome = "error"
    with pytest.raises(ContentRejectedError, match="Facebook could not process the video: Video format is not"):
        await deliver(platform, meta_post("facebook", PostItem("A dog", (video(),))), conn, ctx)
    assert fake.posts == [] and fake.publish_calls == 0


@pytest.mark.parametrize(("payload", "media", "rule"), [
    (mp4(seconds=91), (video(),), "Facebook takes videos up to 90 s; the video of this post lasts 91.0 s"),
    (mp4(seconds=10, fps=15), (video(),), "Facebook takes videos of at least 24 frames per second"),
    (mp4(seconds=10), (video(),), "Facebook takes Reels: vertical (9:16) videos of at least 540×960; the video"
                                  " of this post is 1280×720"),
    (mp4(seconds=10, width=480, height=854), (video(),), "Facebook takes Reels: vertical (9:16) videos of at least"),
    (VIDEO, (video(), image()), "Facebook does not mix images and videos in one post"),
    (VIDEO, (video(), video(url=VIDEO_URL + "?2")), "Facebook takes one video per post, on its own"),
])
async def test_facebook_refuses_a_video_against_the_reels_rules_before_any_call(
    payload: bytes, media: tuple[MediaItem, ...], rule: str,
) -> None:
    fake, platform, conn, ctx = setup("facebook", payload)
    with pytest.raises(ContentRejectedError) as caught:
        await deliver(platform, meta_post("facebook", PostItem("A dog", media)), conn, ctx)
    assert str(caught.value).startswith(rule), str(caught.value)
    assert fake.requests == []


async def test_facebook_multi_photo_post_carries_mixed_alt_text() -> None:
    fake, platform, conn, ctx = setup("facebook")
    media = (image("first", 1), image(None, 2), image("third", 3))
    delivery = await deliver(platform, meta_post("facebook", PostItem("Three", media)), conn, ctx)
    assert delivery.platform_post_id == "1234_999"
    assert fake.alts == ["first", None, "third"]
    assert fake.posts[0].media == ["ph1", "ph2", "ph3"]


async def test_facebook_first_comment_goes_under_the_post_once() -> None:
    fake, platform, conn, ctx = setup("facebook")
    the_post = meta_post("facebook", PostItem("Hello"), first_comment="Link in here")
    delivery = await deliver(platform, the_post, conn, ctx)
    assert fake.comments == [{"on": "1234_999", "message": "Link in here", "id": "1234_999_c1"}]
    assert delivery.comment is not None and delivery.comment.platform_post_id == "1234_999_c1"
    again = await deliver(platform, dataclasses.replace(next_attempt(the_post, ctx)), conn, ctx)
    assert again.comment is not None and len(fake.comments) == 1  # checkpointed: never twice


async def test_facebook_a_lost_answer_to_the_first_comment_is_a_notice_never_a_repeat() -> None:
    fake, platform, conn, ctx = setup("facebook")
    fake.comment_fail = ["transient"]
    delivery = await deliver(platform, meta_post("facebook", PostItem("Hello"), first_comment="c"), conn, ctx)
    assert delivery.platform_post_id == "1234_999" and len(fake.posts) == 1
    assert delivery.notice and "in answer to the request that creates the post" in delivery.notice


# -- the shared checks -----------------------------------------------------------------------


@pytest.mark.parametrize(("item", "expected"), [
    (MediaItem("https://cdn.test/a.MOV?sig=1", None, None, None), True),
    (MediaItem(None, "user/clip.mp4", None, None), True),
    (MediaItem("https://cdn.test/a.mp4", None, None, "image/png"), False),  # the declared type wins
    (MediaItem("https://cdn.test/a.png", None, None, None), False),
])
def test_a_video_is_known_by_its_type_else_by_its_name(item: MediaItem, expected: bool) -> None:
    assert is_video(item) is expected


async def test_a_video_over_the_size_limit_is_refused_by_the_platform_s_rule() -> None:
    ctx = FakeContext(Store())
    ctx.payloads[VIDEO_URL] = mp4(seconds=10, mdat_bytes=50_000)
    limit = VideoLimit(max_bytes=20_000)
    with pytest.raises(ContentRejectedError, match=r"^Demo takes videos up to 0\.02 MB; the video of item 2 of 2 is"):
        async with checked_video(ctx, "Demo", limit, video(), "item 2 of 2"):
            pass
