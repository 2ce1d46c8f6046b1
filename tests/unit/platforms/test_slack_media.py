"""Slack's files, threads and options, against its fake: a video streamed to the upload URL
from a spooled file; images with mixed alt text; a thread as replies under the first
message that resumes at the item that failed, its files all uploaded before the first
message; options as ``chat.postMessage`` fields."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest

from scheduler_daemon.errors import InvalidPostError, RateLimitedError
from scheduler_daemon.models import Post, PostItem
from scheduler_daemon.platforms.delivery import deliver
from scheduler_daemon.platforms.slack import SlackAdapter
from support.media import mp4
from support.platforms.cases import CASES, adapter, connection, post, settings
from support.platforms.context import IMAGE, FakeContext, Store, next_attempt
from support.platforms.fakes.slack import SlackFake
from support.platforms.items import VIDEO_URL, image, video
from support.platforms.streams import StreamNoting

CASE = next(c for c in CASES if c.name == "slack")
ROOT = "1503435956.000247"


def setup() -> tuple[SlackFake, Any, Any, FakeContext]:
    fake = SlackFake()
    store = Store()
    conn = store.add(connection(CASE, fake))
    return fake, adapter(CASE, fake), conn, FakeContext(store)


def thread(*items: PostItem, options: dict[str, Any] | None = None) -> Post:
    base = post(CASE, items[0].content)
    return dataclasses.replace(base, media=items[0].media, thread=items[1:], options=options or {})


async def test_a_video_is_streamed_to_the_upload_url_then_shared() -> None:
    fake, platform, conn, ctx = setup()
    data = mp4(seconds=30, mdat_bytes=3_000_000)
    ctx.payloads[VIDEO_URL] = data
    result = await deliver(platform, thread(PostItem("Launch day", (video(), image(1, None)))), conn, ctx)
    assert result.platform_post_id == "1503435957.000100"
    assert fake.media_refs == [data, IMAGE] and fake.uploads["F123"]["filename"] == "launch.mp4"
    assert fake.posts[0].media == ["F123", "F124"] and fake.posts[0].text == "Launch day"
    assert fake.alt_texts == ["the launch", None] and fake.titles == ["launch.mp4", "1.png"]


async def test_the_video_is_streamed_and_the_image_sent_from_memory() -> None:
    fake, _, conn, ctx = setup()
    transport = StreamNoting(fake)
    platform = SlackAdapter(settings(), httpx.AsyncClient(transport=transport))
    ctx.payloads[VIDEO_URL] = mp4(seconds=5)
    await deliver(platform, thread(PostItem("Launch day", (video(), image(1, None)))), conn, ctx)
    uploads = {url.rsplit("/", 1)[-1]: streamed for url, streamed in transport.streamed.items()
               if "files.slack.test" in url}
    assert uploads == {"F123": True, "F124": False}


async def test_a_thread_is_replies_under_the_first_message_and_resumes_at_the_item_that_failed() -> None:
    fake, platform, conn, ctx = setup()
    fake.fail = ["", "", "rate"]
    first = thread(PostItem("1/4"), PostItem("2/4 a picture", (image(1, "a chart"),)), PostItem("3/4"),
                   PostItem("4/4"))
    with pytest.raises(RateLimitedError):
        await deliver(platform, first, conn, ctx)
    assert [p.text for p in fake.posts] == ["1/4", "2/4 a picture"]
    assert fake.alt_texts == ["a chart"]  # every item's files uploaded before the first message

    delivery = await deliver(platform, next_attempt(first, ctx), conn, ctx)
    assert [p.text for p in fake.posts] == ["1/4", "2/4 a picture", "3/4", "4/4"]  # each once
    assert [m.get("thread_ts") for m in fake.messages] == [None, ROOT, ROOT, ROOT]
    assert [r.platform_post_id for r in delivery.items] == [ROOT, "1503435957.000100", "1503435956.000248",
                                                           "1503435956.000249"]
    assert len(fake.uploads) == 1  # prepared once, reused by the retry


async def test_options_are_chat_post_message_fields() -> None:
    fake, platform, conn, ctx = setup()
    options = {"unfurl_links": False, "unfurl_media": False, "reply_broadcast": True}
    await deliver(platform, thread(PostItem("see https://example.com"), PostItem("and more"), options=options),
                  conn, ctx)
    assert fake.messages[0] == {"ts": ROOT, "unfurl_links": False, "unfurl_media": False}
    assert fake.messages[1]["reply_broadcast"] is True and fake.messages[1]["thread_ts"] == ROOT


def test_an_unknown_option_is_refused() -> None:
    _, platform, _, _ = setup()
    with pytest.raises(InvalidPostError, match="Slack has no option 'unfurl'; it takes reply_broadcast, unfurl_links"):
        platform.validate(thread(PostItem("x"), options={"unfurl": False}))
