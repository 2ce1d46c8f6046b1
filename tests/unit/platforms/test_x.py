"""X's new flows against its fake: the chunked video upload and its processing, alt text
per image, reply chains, the first comment as a self-reply, and platform_options."""

from __future__ import annotations

import dataclasses
import time

import pytest

from scheduler_daemon.errors import ContentRejectedError, InvalidPostError
from scheduler_daemon.models import MediaItem, Post, PostItem
from scheduler_daemon.platforms.delivery import deliver
from scheduler_daemon.platforms.x import SEGMENT_BYTES
from support.media import mp4
from support.platforms.cases import CASES, adapter, connection, post
from support.platforms.context import IMAGE, FakeContext, Store, next_attempt
from support.platforms.fakes.base import body
from support.platforms.fakes.x import FIRST_ID, XFake

CASE = next(c for c in CASES if c.name == "x")
CLIP = "https://cdn.test/clips/launch.mp4"


def setup():  # type: ignore[no-untyped-def]
    fake = XFake()
    store = Store()
    conn = store.add(connection(CASE, fake))
    return fake, adapter(CASE, fake), conn, FakeContext(store)


def video(url: str = CLIP, alt: str | None = None) -> MediaItem:
    return MediaItem(url=url, storage_path=None, alt=alt, mime="video/mp4")


def picture(n: int, alt: str | None) -> MediaItem:
    return MediaItem(url=f"https://cdn.test/pics/{n}.png", storage_path=None, alt=alt, mime="image/png")


def with_items(*items: PostItem, **changes: object) -> Post:
    first, *rest = items
    return dataclasses.replace(post(CASE, first.content), media=first.media, thread=tuple(rest), **changes)


def paths(fake: XFake) -> list[str]:
    return [f"{r.method} {r.url.path}" for r in fake.requests if "/media/" in r.url.path]


async def test_a_video_goes_through_the_chunked_upload_and_waits_for_processing() -> None:
    fake, platform, conn, ctx = setup()
    clip = mp4(seconds=10, mdat_bytes=SEGMENT_BYTES * 2 + 1000)  # three segments
    ctx.payloads[CLIP] = clip
    fake.video_polls = 2
    result = await deliver(platform, with_items(PostItem("Launch day", (video(),))), conn, ctx)
    [media_id] = fake.media_ids
    assert paths(fake) == [
        "POST /2/media/upload/initialize", *[f"POST /2/media/upload/{media_id}/append"] * 3,
        f"POST /2/media/upload/{media_id}/finalize", *["GET /2/media/upload"] * 3,
    ]
    assert fake.media_refs == [clip] and fake.uploads[media_id].state == "succeeded"
    assert fake.tweets[0]["media"] == {"media_ids": [media_id]}
    assert result.platform_post_id == str(FIRST_ID)


async def test_a_video_x_cannot_process_refuses_the_post_with_its_reason() -> None:
    fake, platform, conn, ctx = setup()
    ctx.payloads[CLIP] = mp4(seconds=10)
    fake.video_outcome = "failed"
    with pytest.raises(ContentRejectedError, match=r"^X could not process the video: Unsupported video codec profile$"):
        await deliver(platform, with_items(PostItem("Launch day", (video(),))), conn, ctx)
    assert fake.posts == []


@pytest.mark.parametrize(("clip", "message"), [
    (mp4(seconds=141), "X takes videos up to 140 s; the video of this post lasts 141.0 s"),
    (mp4(seconds=0.2), "X takes videos of at least 0.5 s; the video of this post lasts 0.2 s"),
    (mp4(codec=b"hvc1", profile=1), "X takes H264 video; the video of this post is HEVC"),
    (mp4(fps=120), "X takes videos up to 60 frames per second; the video of this post has 120"),
    (mp4(audio_object_type=0x6B), "X takes AAC sound; the video of this post has MP3"),
])
async def test_a_video_outside_x_rules_is_refused_before_any_upload(clip: bytes, message: str) -> None:
    fake, platform, conn, ctx = setup()
    ctx.payloads[CLIP] = clip
    with pytest.raises(ContentRejectedError) as caught:
        await deliver(platform, with_items(PostItem("Launch day", (video(),))), conn, ctx)
    assert str(caught.value) == message
    assert paths(fake) == []


def test_a_video_or_a_gif_goes_alone() -> None:
    _, platform, _, _ = setup()
    with pytest.raises(ContentRejectedError, match=r"^X does not mix images and videos in one post; item 2 of 2"):
        platform.validate(with_items(PostItem("a"), PostItem("b", (video(), picture(1, None)))))
    with pytest.raises(ContentRejectedError, match=r"^X takes one video per post and nothing beside it; this post"
                                                   r" has 2 videos$"):
        platform.validate(with_items(PostItem("a", (video(), video("https://cdn.test/b.mov")))))
    gif = MediaItem(url="https://cdn.test/a.gif", storage_path=None, alt=None, mime="image/gif")
    with pytest.raises(ContentRejectedError, match="X takes an animated GIF alone in a post; this post has 2 media"):
        platform.validate(with_items(PostItem("a", (gif, picture(1, None)))))


async def test_a_carousel_sends_alt_text_for_the_images_that_have_it() -> None:
    fake, platform, conn, ctx = setup()
    pictures = (picture(1, "a red door"), picture(2, None), picture(3, "🐈 on a mat"), picture(4, ""))
    await deliver(platform, with_items(PostItem("Four", pictures)), conn, ctx)
    ids = fake.media_ids
    assert [fake.uploads[i].alt for i in ids] == ["a red door", None, "🐈 on a mat", None]
    assert fake.tweets[0]["media"] == {"media_ids": ids} and fake.media_refs == [IMAGE] * 4
    with pytest.raises(ContentRejectedError, match="X takes alt text of at most 1000 characters; image 1 of"):
        platform.validate(with_items(PostItem("One", (picture(1, "a" * 1001),))))


async def test_a_thread_is_a_reply_chain_with_each_item_s_media_and_the_options() -> None:
    fake, platform, conn, ctx = setup()
    thread = with_items(
        PostItem("1/3", (picture(1, "one"),)), PostItem("2/3"), PostItem("3/3", (picture(2, "two"),)),
        options={"reply_settings": "following", "quote_tweet_id": "1445"},
    )
    delivery = await deliver(platform, thread, conn, ctx)
    ids = [str(FIRST_ID + n) for n in range(3)]
    assert [t["text"] for t in fake.tweets] == ["1/3", "2/3", "3/3"]
    assert [t.get("reply") for t in fake.tweets] == [
        None, {"in_reply_to_tweet_id": ids[0]}, {"in_reply_to_tweet_id": ids[1]}]
    assert [t.get("media", {}).get("media_ids") for t in fake.tweets] == [[fake.media_ids[0]], None,
                                                                            [fake.media_ids[1]]]
    assert all(t["reply_settings"] == "following" for t in fake.tweets)
    assert [t.get("quote_tweet_id") for t in fake.tweets] == ["1445", None, None]
    assert [i.platform_post_id for i in delivery.items] == ids


async def test_a_failure_at_item_3_resumes_at_item_3() -> None:
    fake, platform, conn, ctx = setup()
    thread = with_items(*(PostItem(f"{n}/4") for n in range(1, 5)))
    fake.fail = ["", "", "refused"]  # item 3 never reaches X
    with pytest.raises(Exception, match="could not connect"):
        await deliver(platform, thread, conn, ctx)
    assert [t["text"] for t in fake.tweets] == ["1/4", "2/4"]
    again = next_attempt(thread, ctx)
    await deliver(platform, again, conn, ctx)
    assert [t["text"] for t in fake.tweets] == ["1/4", "2/4", "3/4", "4/4"]
    assert fake.tweets[2]["reply"] == {"in_reply_to_tweet_id": str(FIRST_ID + 1)}


async def test_media_ids_about_to_lapse_are_uploaded_again_before_the_post() -> None:
    fake, platform, conn, ctx = setup()
    the_post = with_items(PostItem("A cat", (picture(1, "a cat"),)))
    fake.fail = ["refused"]
    with pytest.raises(Exception, match="could not connect"):
        await deliver(platform, the_post, conn, ctx)
    ctx.state["prepared"]["value"]["expires_at"] = time.time() + 30  # a day later: the id lapses in 30 s
    await deliver(platform, next_attempt(the_post, ctx), conn, ctx)
    _, second = fake.media_ids
    assert fake.tweets[0]["media"] == {"media_ids": [second]} and fake.uploads[second].alt == "a cat"


async def test_the_first_comment_is_a_self_reply_to_the_post() -> None:
    fake, platform, conn, ctx = setup()
    delivery = await deliver(platform, with_items(PostItem("Big news"), first_comment="Details: x.com/a"), conn, ctx)
    assert fake.tweets[1] == {"text": "Details: x.com/a", "reply": {"in_reply_to_tweet_id": str(FIRST_ID)},
                              "id": str(FIRST_ID + 1)}
    assert delivery.comment is not None and delivery.comment.platform_post_url == (
        f"https://x.com/alice/status/{FIRST_ID + 1}")
    assert "reply_settings" not in body(fake.requests[-1])


async def test_texts_are_checked_against_the_account_s_limit_before_any_call() -> None:
    fake, platform, conn, ctx = setup()
    with pytest.raises(ContentRejectedError, match=r"^X allows 280 weighted .*; item 2 of 2 has 281$"):
        await deliver(platform, with_items(PostItem("a"), PostItem("b" * 281)), conn, ctx)
    with pytest.raises(ContentRejectedError, match=r"^X allows 280 weighted .*; the first comment has 281$"):
        await deliver(platform, with_items(PostItem("a"), first_comment="c" * 281), conn, ctx)
    assert fake.requests == []


def test_options_are_validated() -> None:
    _, platform, _, _ = setup()
    with pytest.raises(InvalidPostError, match=r"^platform_options.reply_settings must be one of following,"):
        platform.validate(with_items(PostItem("a"), options={"reply_settings": "everyone"}))
    with pytest.raises(InvalidPostError, match=r"^platform_options: X has no option 'pin'; it takes quote_tweet_id,"
                                               r" reply_settings$"):
        platform.validate(with_items(PostItem("a"), options={"pin": True}))
