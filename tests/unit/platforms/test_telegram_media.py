"""Telegram's video, albums, reply threads and options, against its fake: videos checked
before anything is sent (for every item of a thread), passed by URL up to 20 MB and
streamed above it; photos and videos mixed in one album; a thread as a reply chain that
resumes at the item that failed; options sent as Bot API fields, unknown ones refused."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from scheduler_daemon.errors import ContentRejectedError, InvalidPostError, RateLimitedError
from scheduler_daemon.models import MediaItem, Post, PostItem
from scheduler_daemon.platforms.delivery import deliver
from support.media import mp4
from support.platforms.cases import CASES, adapter, connection, post
from support.platforms.context import IMAGE_URL, FakeContext, Store, next_attempt
from support.platforms.fakes.telegram import TelegramFake

CASE = next(c for c in CASES if c.name == "telegram")
VIDEO_URL = "https://cdn.test/clips/launch.mp4"


def setup() -> tuple[TelegramFake, Any, Any, FakeContext]:
    fake = TelegramFake()
    store = Store()
    conn = store.add(connection(CASE, fake))
    return fake, adapter(CASE, fake), conn, FakeContext(store)


def video(url: str = VIDEO_URL, alt: str | None = "the launch") -> MediaItem:
    return MediaItem(url=url, storage_path=None, alt=alt, mime="video/mp4")


def photo(alt: str | None = "a cat") -> MediaItem:
    return MediaItem(url=IMAGE_URL, storage_path=None, alt=alt, mime="image/png")


def thread(*items: PostItem, options: dict[str, Any] | None = None) -> Post:
    base = post(CASE, items[0].content)
    return dataclasses.replace(base, media=items[0].media, thread=items[1:], options=options or {})


async def test_a_small_video_is_checked_then_passed_by_url() -> None:
    fake, platform, conn, ctx = setup()
    ctx.payloads[VIDEO_URL] = mp4(seconds=5)
    result = await deliver(platform, thread(PostItem("Launch day", (video(),))), conn, ctx)
    assert (result.platform_post_id, result.platform_post_url) == ("42", "https://t.me/mychannel/42")
    assert [s["method"] for s in fake.sent] == ["sendVideo"] and fake.media_refs == [VIDEO_URL]
    assert fake.posts[0].text == "Launch day"
    assert ctx.fetched == [VIDEO_URL]  # downloaded once, to check it; Telegram fetches it itself


async def test_a_video_over_20_mb_is_streamed_as_an_upload() -> None:
    fake, platform, conn, ctx = setup()
    big = mp4(seconds=60, mdat_bytes=21_000_000)
    ctx.payloads[VIDEO_URL] = big
    fake.url_sizes[VIDEO_URL] = len(big)  # Telegram would refuse the URL
    await deliver(platform, thread(PostItem("Long take", (video(),))), conn, ctx)
    assert fake.media_refs == [big] and [s["method"] for s in fake.sent] == ["sendVideo"]
    form = fake.requests[0].content
    assert b'name="supports_streaming"' in form and b"Long take" in form


@pytest.mark.parametrize(("data", "message"), [
    (b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01webm" + b"\x00" * 60,
     "Telegram takes MP4 videos; the video of item 2 of 3 is WEBM"),
    (mp4(codec=b"av01"), "Telegram takes H264 or HEVC video; the video of item 2 of 3 is AV1"),
    (mp4(mdat_bytes=50_000_001), "Telegram takes videos up to 50 MB; the video of item 2 of 3 is larger"),
])
async def test_a_video_telegram_would_refuse_stops_the_whole_thread_before_any_send(data: bytes, message: str) -> None:
    fake, platform, conn, ctx = setup()
    ctx.payloads[VIDEO_URL] = data
    the_post = thread(PostItem("1/3"), PostItem("2/3", (video(),)), PostItem("3/3"))
    with pytest.raises(ContentRejectedError) as caught:
        await deliver(platform, the_post, conn, ctx)
    assert str(caught.value).startswith(message), str(caught.value)
    assert fake.requests == []


async def test_photos_and_videos_go_out_as_one_album_with_the_caption_on_the_first() -> None:
    fake, platform, conn, ctx = setup()
    ctx.payloads[VIDEO_URL] = mp4()
    media = (photo("a cat"), video(alt=None), photo(None))
    result = await deliver(platform, thread(PostItem("Our week", media)), conn, ctx)
    assert result.platform_post_id == "42"
    assert fake.sent[0]["method"] == "sendMediaGroup" and fake.sent[0]["ids"] == [42, 43, 44]
    assert fake.posts[0].media == [IMAGE_URL, VIDEO_URL, IMAGE_URL] and fake.posts[0].text == "Our week"
    assert b"a cat" not in fake.requests[0].content  # Telegram takes no alt text: it is left out


async def test_an_album_attaches_what_telegram_cannot_fetch_and_names_the_rest_by_url() -> None:
    fake, platform, conn, ctx = setup()
    big_photo = b"\x89PNG" + b"0" * (6 * 1024 * 1024)
    big_video = mp4(seconds=60, mdat_bytes=21_000_000)
    ctx.payloads.update({IMAGE_URL: big_photo, VIDEO_URL: big_video})
    fake.url_sizes.update({IMAGE_URL: len(big_photo), VIDEO_URL: len(big_video)})
    await deliver(platform, thread(PostItem("Big ones", (photo(), video(), photo()))), conn, ctx)
    assert fake.posts[0].media == [big_photo, big_video, big_photo]
    assert b'name="photo0"' in fake.requests[0].content and b'name="video1"' in fake.requests[0].content


async def test_a_thread_is_a_reply_chain_that_resumes_at_the_item_that_failed() -> None:
    fake, platform, conn, ctx = setup()
    ctx.payloads[VIDEO_URL] = mp4()
    fake.fail = ["", "", "rate"]  # item 3 meets flood control: nothing of it is sent
    first = thread(PostItem("1/4"), PostItem("2/4", (photo(), video())), PostItem("3/4"), PostItem("4/4"))
    with pytest.raises(RateLimitedError):
        await deliver(platform, first, conn, ctx)
    assert [p.text for p in fake.posts] == ["1/4", "2/4"]
    assert [i["id"] for i in ctx.state["items"]] == ["42", "43"]

    delivery = await deliver(platform, next_attempt(first, ctx), conn, ctx)
    assert [p.text for p in fake.posts] == ["1/4", "2/4", "3/4", "4/4"]  # each once
    assert [s["reply_to"] for s in fake.sent] == [None, 42, 43, 45]  # the album's first message stands for it
    assert [r.platform_post_id for r in delivery.items] == ["42", "43", "45", "46"]


async def test_options_are_sent_as_bot_api_fields() -> None:
    fake, platform, conn, ctx = setup()
    options = {"disable_notification": True, "protect_content": True, "message_thread_id": 7,
               "disable_link_preview": True}
    await deliver(platform, thread(PostItem("Quiet"), PostItem("Also quiet", (photo(),)), options=options), conn, ctx)
    assert fake.sent[0]["options"] == {"disable_notification": True, "protect_content": True,
                                       "message_thread_id": 7, "link_preview_options": {"is_disabled": True}}
    assert fake.sent[1]["options"] == {"disable_notification": True, "protect_content": True,
                                       "message_thread_id": 7}  # link previews are a text message's


async def test_an_unknown_option_is_refused_naming_the_options() -> None:
    fake, platform, conn, ctx = setup()
    with pytest.raises(InvalidPostError, match=r"^platform_options: Telegram has no option 'disable_notificaton'; "
                                               r"it takes disable_link_preview, disable_notification, "
                                               r"message_thread_id, protect_content$"):
        await deliver(platform, thread(PostItem("x"), options={"disable_notificaton": True}), conn, ctx)
    with pytest.raises(InvalidPostError, match="message_thread_id must be a whole number"):
        platform.validate(thread(PostItem("x"), options={"message_thread_id": "7"}))
    assert fake.requests == []


def test_a_thread_longer_than_25_is_refused() -> None:
    _, platform, _, _ = setup()
    with pytest.raises(ContentRejectedError, match="threads of at most 25 posts; this one has 26"):
        platform.validate(thread(*(PostItem(f"{n}") for n in range(26))))

