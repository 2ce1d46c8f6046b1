"""Discord's files, alt text and options, against its fake: a video streamed as an
attachment from a spooled file and refused past 10 MiB before any call; images with mixed
alt text (``description``); options as webhook fields and message flags."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from scheduler_daemon.errors import ContentRejectedError, InvalidPostError
from scheduler_daemon.models import MediaItem, Post
from scheduler_daemon.platforms.delivery import deliver
from support.media import mp4
from support.platforms.cases import CASES, adapter, connection, post
from support.platforms.context import IMAGE, FakeContext, Store
from support.platforms.fakes.discord import DiscordFake

CASE = next(c for c in CASES if c.name == "discord")
VIDEO_URL = "https://cdn.test/clips/launch.mp4"


def setup(**overrides: Any) -> tuple[DiscordFake, Any, Any, FakeContext]:
    fake = DiscordFake()
    store = Store()
    conn = store.add(connection(CASE, fake, overrides))
    return fake, adapter(CASE, fake), conn, FakeContext(store)


def with_media(*media: MediaItem, text: str = "Launch day", **changes: Any) -> Post:
    return dataclasses.replace(post(CASE, text), media=media, **changes)


def video(alt: str | None = "the launch") -> MediaItem:
    return MediaItem(url=VIDEO_URL, storage_path=None, alt=alt, mime="video/mp4")


def image(n: int, alt: str | None) -> MediaItem:
    return MediaItem(url=f"https://cdn.test/pics/{n}.png", storage_path=None, alt=alt, mime="image/png")


async def test_a_video_is_streamed_as_an_attachment() -> None:
    fake, platform, conn, ctx = setup()
    data = mp4(seconds=20, mdat_bytes=3_000_000)
    ctx.payloads[VIDEO_URL] = data
    result = await deliver(platform, with_media(video(), image(1, None)), conn, ctx)
    assert result.platform_post_url == "https://discord.com/channels/999/555/1200"
    assert fake.media_refs == [data, IMAGE] and fake.posts[0].media == ["launch.mp4", "1.png"]
    assert fake.descriptions == [["the launch", None]]


async def test_a_file_over_10_mib_is_refused_before_any_call() -> None:
    fake, platform, conn, ctx = setup()
    ctx.payloads[VIDEO_URL] = mp4(mdat_bytes=10 * 1024 * 1024)
    with pytest.raises(ContentRejectedError, match=r"^Discord takes files up to 10 MiB; the file of attachment 1 "
                                                   r"is larger$"):
        await deliver(platform, with_media(video()), conn, ctx)
    assert fake.requests == []


async def test_images_carry_their_alt_text_as_descriptions() -> None:
    fake, platform, conn, ctx = setup()
    await deliver(platform, with_media(image(1, "a chart"), image(2, None), image(3, "the team")), conn, ctx)
    assert fake.descriptions == [["a chart", None, "the team"]]
    assert fake.posts[0].media == ["1.png", "2.png", "3.png"]


async def test_options_are_webhook_fields_and_message_flags() -> None:
    fake, platform, conn, ctx = setup(metadata={"guild_id": "999", "username": "Connection name"})
    options = {"thread_name": "Release 2.0", "applied_tags": ["123"], "username": "Release bot",
               "suppress_embeds": True, "silent": True}
    await deliver(platform, with_media(options=options), conn, ctx)
    sent = fake.payloads[0]
    assert (sent["thread_name"], sent["applied_tags"], sent["username"]) == ("Release 2.0", ["123"], "Release bot")
    assert sent["flags"] == 4 | 4096  # SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS

    fake, platform, conn, ctx = setup(metadata={"guild_id": "999", "username": "Connection name"})
    await deliver(platform, with_media(), conn, ctx)
    assert fake.payloads[0]["username"] == "Connection name" and "flags" not in fake.payloads[0]


def test_an_unknown_option_is_refused() -> None:
    _, platform, _, _ = setup()
    with pytest.raises(InvalidPostError, match="Discord has no option 'thread'; it takes applied_tags, avatar_url"):
        platform.validate(with_media(options={"thread": "x"}))
    with pytest.raises(InvalidPostError, match=r"platform_options\.applied_tags must be a list of strings"):
        platform.validate(with_media(options={"applied_tags": [1]}))
