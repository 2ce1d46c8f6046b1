"""LinkedIn's video, multi-image posts, first comment and options, against its fake: the
Videos API flow (initialize, byte ranges streamed with their ETags, finalize, wait for
AVAILABLE), videos refused by LinkedIn's rules before any call, ``multiImage`` with mixed
alt text, a comment under the post that never undoes it, options as Posts API fields."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest

from scheduler_daemon.errors import ContentRejectedError, InvalidPostError, TransientError
from scheduler_daemon.models import MediaItem, Post
from scheduler_daemon.platforms.delivery import deliver
from scheduler_daemon.platforms.linkedin import LinkedInAdapter
from support.media import mp4 as any_mp4
from support.platforms.cases import CASES, adapter, connection, post, settings
from support.platforms.context import IMAGE, FakeContext, Store, next_attempt
from support.platforms.fakes.linkedin import LinkedInFake
from support.platforms.items import VIDEO_URL, image, video
from support.platforms.streams import StreamNoting

CASE = next(c for c in CASES if c.name == "linkedin")
SHARE = "urn:li:share:7001"


def setup() -> tuple[LinkedInFake, Any, Any, FakeContext]:
    fake = LinkedInFake()
    store = Store()
    conn = store.add(connection(CASE, fake))
    return fake, adapter(CASE, fake), conn, FakeContext(store)


def mp4(**shape: Any) -> bytes:
    """An MP4 of the shape, above LinkedIn's 75 kB minimum unless the shape says otherwise."""
    return any_mp4(**{"mdat_bytes": 80_000, **shape})


def with_media(*media: MediaItem, text: str = "Launch day", **changes: Any) -> Post:
    return dataclasses.replace(post(CASE, text), media=media, **changes)


async def test_a_video_is_uploaded_in_byte_ranges_then_posted_once_available() -> None:
    fake, platform, conn, ctx = setup()
    data = mp4(seconds=5)
    ctx.payloads[VIDEO_URL] = data
    fake.part_bytes = 20_000  # several ranges from a small file
    result = await deliver(platform, with_media(video()), conn, ctx)
    assert (result.platform_post_id, result.platform_post_url) == (SHARE, f"https://www.linkedin.com/feed/update/{SHARE}")
    assert fake.media_refs == [data]  # every byte, in order, once
    assert len(fake.videos["urn:li:video:V1"]["parts"]) == -(-len(data) // 20_000)
    assert fake.bodies[0]["content"] == {"media": {"id": "urn:li:video:V1", "altText": "the launch"}}
    assert ctx.state["prepared"]["value"] == {"video": {"id": "urn:li:video:V1", "altText": "the launch"}}


async def test_the_video_s_byte_ranges_are_streamed_from_the_spooled_file() -> None:
    fake, _, conn, ctx = setup()
    transport = StreamNoting(fake)
    platform = LinkedInAdapter(settings(), httpx.AsyncClient(transport=transport))
    data = ctx.payloads[VIDEO_URL] = mp4(seconds=5)
    fake.part_bytes = 20_000
    await deliver(platform, with_media(video()), conn, ctx)
    parts = {url: streamed for url, streamed in transport.streamed.items() if "/video/" in url}
    assert len(parts) == -(-len(data) // 20_000) and all(parts.values())


@pytest.mark.parametrize(("data", "message"), [
    (mp4(seconds=5, mdat_bytes=4_096), "LinkedIn takes videos of at least 75 kB; the video of this post is 5.18 kB"),
    (mp4(seconds=2), "LinkedIn takes videos of at least 3 s; the video of this post lasts 2.0 s"),
    (mp4(seconds=1_801), "LinkedIn takes videos up to 1800 s; the video of this post lasts 1801.0 s"),
    (mp4(seconds=5, codec=b"hvc1", profile=1), "LinkedIn takes H264 video; the video of this post is HEVC"),
    (mp4(seconds=5, brand=b"qt  "), "LinkedIn takes MP4 videos; the video of this post is MOV"),
])
async def test_a_video_linkedin_would_refuse_is_refused_before_any_call(data: bytes, message: str) -> None:
    fake, platform, conn, ctx = setup()
    ctx.payloads[VIDEO_URL] = data
    with pytest.raises(ContentRejectedError) as caught:
        await deliver(platform, with_media(video()), conn, ctx)
    assert str(caught.value) == message
    assert fake.requests == []


async def test_a_video_linkedin_cannot_process_is_refused_with_its_reason() -> None:
    fake, platform, conn, ctx = setup()
    ctx.payloads[VIDEO_URL] = mp4(seconds=5)
    fake.video_outcome = "PROCESSING_FAILED"
    with pytest.raises(ContentRejectedError, match=r"LinkedIn could not process the video \(Video is corrupted\)"):
        await deliver(platform, with_media(video()), conn, ctx)
    assert fake.posts == []


async def test_a_failed_video_part_is_retried_freely() -> None:
    fake, platform, conn, ctx = setup()
    ctx.payloads[VIDEO_URL] = mp4(seconds=5)
    fake.fail_at = {"/video/": ["transient"]}
    first = with_media(video())
    with pytest.raises(TransientError):
        await deliver(platform, first, conn, ctx)
    assert fake.posts == [] and fake.publish_calls == 0
    result = await deliver(platform, next_attempt(first, ctx), conn, ctx)
    assert result.platform_post_id == SHARE and len(fake.posts) == 1


async def test_a_retry_after_linkedin_processed_too_long_waits_again_without_uploading_again() -> None:
    fake, _, conn, ctx = setup()
    platform = adapter(CASE, fake, {"SCHEDULER_MEDIA_POLL_TIMEOUT_SECONDS": "0"})
    ctx.payloads[VIDEO_URL] = mp4(seconds=5)  # LinkedIn answers PROCESSING once, then AVAILABLE
    first = with_media(video())
    with pytest.raises(TransientError, match="still processing"):
        await deliver(platform, first, conn, ctx)
    assert ctx.state["video_uploaded"]["urn"] == "urn:li:video:V1"
    result = await deliver(platform, next_attempt(first, ctx), conn, ctx)
    assert result.platform_post_id == SHARE and list(fake.videos) == ["urn:li:video:V1"]
    assert ctx.fetched == [VIDEO_URL]  # downloaded once


@pytest.mark.parametrize(("media", "message"), [
    ((video(), image(1, None)), "LinkedIn does not mix images and videos in one post; this one has both"),
    ((video(), video()), "LinkedIn takes one video per post, alone; this post has 2 media"),
])
def test_a_video_goes_alone(media: tuple[MediaItem, ...], message: str) -> None:
    _, platform, _, _ = setup()
    with pytest.raises(ContentRejectedError, match=f"^{message}$"):
        platform.validate(with_media(*media))


async def test_images_go_out_as_multi_image_with_each_one_s_alt_text() -> None:
    fake, platform, conn, ctx = setup()
    media = (image(1, "a chart"), image(2, None), image(3, "the team"))
    await deliver(platform, with_media(*media, text="Our quarter"), conn, ctx)
    assert fake.bodies[0]["content"] == {"multiImage": {"images": [
        {"id": "urn:li:image:I1", "altText": "a chart"}, {"id": "urn:li:image:I2"},
        {"id": "urn:li:image:I3", "altText": "the team"}]}}
    assert fake.media_refs == [IMAGE] * 3 and len(fake.posts[0].media) == 3


async def test_the_first_comment_goes_under_the_post() -> None:
    fake, platform, conn, ctx = setup()
    delivery = await deliver(platform, with_media(first_comment="Details: https://example.com #launch"), conn, ctx)
    [comment] = fake.comments
    assert comment["on"] == SHARE and comment["text"] == "Details: https://example.com #launch"
    assert delivery.comment is not None and delivery.comment.platform_post_id == comment["id"]
    assert delivery.comment.platform_post_url == (
        f"https://www.linkedin.com/feed/update/{SHARE}?commentUrn=urn%3Ali%3Acomment%3A%28urn%3Ali%3Aactivity"
        "%3A7001%2C1%29")
    assert ctx.state["first_comment"]["id"] == comment["id"]


async def test_a_failed_first_comment_leaves_the_post_published_with_a_notice() -> None:
    fake, platform, conn, ctx = setup()
    fake.fail = ["", "content"]  # the post goes out; the comment is refused
    delivery = await deliver(platform, with_media(first_comment="first!"), conn, ctx)
    assert delivery.platform_post_id == SHARE and fake.comments == []
    assert delivery.notice == (
        "published, but the first comment failed: LinkedIn rejected the post: "
        "ERROR :: /commentary :: Text is not allowed by moderation")


def test_a_first_comment_over_1250_characters_is_refused() -> None:
    _, platform, _, _ = setup()
    with pytest.raises(ContentRejectedError, match=r"^LinkedIn allows 1250 characters; the first comment has 1251$"):
        platform.validate(with_media(first_comment="a" * 1_251))


async def test_options_are_posts_api_fields() -> None:
    fake, platform, conn, ctx = setup()
    await deliver(platform, with_media(text="plain"), conn, ctx)
    await deliver(platform, with_media(text="for my network", options={"visibility": "CONNECTIONS",
                                                                        "disable_reshare": True}), conn, ctx)
    assert [(b["visibility"], b["isReshareDisabledByAuthor"]) for b in fake.bodies] == [
        ("PUBLIC", False), ("CONNECTIONS", True)]


def test_an_invalid_option_is_refused() -> None:
    _, platform, _, _ = setup()
    with pytest.raises(InvalidPostError, match=r"platform_options\.visibility must be one of PUBLIC, CONNECTIONS"):
        platform.validate(with_media(options={"visibility": "FRIENDS"}))
    with pytest.raises(InvalidPostError, match="LinkedIn has no option 'share_to_feed'"):
        platform.validate(with_media(options={"share_to_feed": True}))
