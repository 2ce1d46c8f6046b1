"""Mastodon's new flows against its fake: video through /api/v2/media with asynchronous
processing, the instance's own limits from /api/v2/instance, descriptions per image, reply
chains with one Idempotency-Key per item, and platform_options."""

from __future__ import annotations

import dataclasses

import pytest

from scheduler_daemon.errors import ContentRejectedError, InvalidPostError
from scheduler_daemon.models import MediaItem, Post, PostItem
from scheduler_daemon.platforms.delivery import deliver
from support.media import mp4
from support.platforms.cases import CASES, adapter, connection, post
from support.platforms.context import IMAGE, FakeContext, Store, next_attempt
from support.platforms.fakes.mastodon import MastodonFake

CASE = next(c for c in CASES if c.name == "mastodon")
CLIP = "https://cdn.test/clips/launch.mp4"
ONE_BYTE_OVER = mp4(mdat_bytes=95_000 + 100_001 - len(mp4(mdat_bytes=95_000)))  # 100,001 bytes


def setup(**conn: object):  # type: ignore[no-untyped-def]
    fake = MastodonFake()
    store = Store()
    the_connection = store.add(connection(CASE, fake, conn or None))
    return fake, adapter(CASE, fake), the_connection, FakeContext(store)


def video(alt: str | None = None) -> MediaItem:
    return MediaItem(url=CLIP, storage_path=None, alt=alt, mime="video/mp4")


def picture(n: int, alt: str | None) -> MediaItem:
    return MediaItem(url=f"https://cdn.test/pics/{n}.png", storage_path=None, alt=alt, mime="image/png")


def with_items(*items: PostItem, **changes: object) -> Post:
    first, *rest = items
    return dataclasses.replace(post(CASE, first.content), media=first.media, thread=tuple(rest), **changes)


def uploads(fake: MastodonFake) -> int:
    return sum(1 for r in fake.requests if r.url.path == "/api/v2/media")


async def test_a_video_is_uploaded_streamed_and_awaited_until_processed() -> None:
    fake, platform, conn, ctx = setup()
    ctx.payloads[CLIP] = clip = mp4(seconds=30, mdat_bytes=300_000)
    fake.processing_polls = 3
    await deliver(platform, with_items(PostItem("Launch", (video("a rocket lifts off"),))), conn, ctx)
    [media_id] = fake.media
    assert fake.media_refs == [clip] and fake.kinds[media_id] == "video" and fake.media[media_id] == 4
    assert fake.descriptions[media_id] == "a rocket lifts off"
    assert fake.statuses[0]["media_ids"] == [media_id]


async def test_a_video_the_instance_cannot_process_refuses_the_post() -> None:
    fake, platform, conn, ctx = setup()
    ctx.payloads[CLIP] = mp4(seconds=5)
    fake.video_fails = True
    with pytest.raises(ContentRejectedError, match=r"^Mastodon rejected the post: Error processing thumbnail"):
        await deliver(platform, with_items(PostItem("Launch", (video(),))), conn, ctx)
    assert fake.posts == []


@pytest.mark.parametrize(("limits", "clip", "message"), [
    ({"video_size_limit": 100_000}, mp4(mdat_bytes=200_000),
     "Mastodon takes videos up to 0.1 MB; the video of this post is larger"),
    ({"video_size_limit": 100_000}, ONE_BYTE_OVER,
     "Mastodon takes videos up to 0.1 MB; the video of this post is larger"),
    ({"video_frame_rate_limit": 30}, mp4(fps=60), "Mastodon takes videos up to 30 frames per second; the video of"
                                                  " this post has 60"),
    ({"video_matrix_limit": 2_073_600}, mp4(width=3840, height=2160),
     "Mastodon takes videos of at most 2,073,600 pixels here; the video of this post is 3840×2160"),
    ({"supported_mime_types": ["image/png", "video/webm"]}, mp4(), "Mastodon: this instance takes no video/mp4 files;"
                                                                   " this post has one"),
])
async def test_a_video_over_the_instance_s_limits_is_refused_before_the_upload(
    limits: dict[str, object], clip: bytes, message: str
) -> None:
    fake, platform, conn, ctx = setup()
    assert fake.instance is not None
    fake.instance["configuration"]["media_attachments"].update(limits)
    ctx.payloads[CLIP] = clip
    with pytest.raises(ContentRejectedError) as caught:
        await deliver(platform, with_items(PostItem("Launch", (video(),))), conn, ctx)
    assert str(caught.value).startswith(message), str(caught.value)
    assert uploads(fake) == 0


async def test_the_instance_s_text_and_media_limits_apply_and_old_servers_fall_back() -> None:
    fake, platform, conn, ctx = setup()
    assert fake.instance is not None
    fake.instance["configuration"]["statuses"].update(max_characters=10, max_media_attachments=2)
    with pytest.raises(ContentRejectedError, match=r"^Mastodon allows 10 characters; item 2 of 2 has 11$"):
        await deliver(platform, with_items(PostItem("short"), PostItem("a" * 11)), conn, ctx)
    with pytest.raises(ContentRejectedError, match=r"^Mastodon takes at most 2 images per post; this one has 3$"):
        await deliver(platform, with_items(PostItem("three", tuple(picture(n, None) for n in range(3)))), conn, ctx)
    assert uploads(fake) == 0 and fake.posts == []
    fake.instance = None  # an older server: the connection's metadata, then the defaults
    fake, platform, conn, ctx = setup(metadata={"instance_url": "https://mastodon.test", "max_characters": 20})
    fake.instance = None
    await deliver(platform, with_items(PostItem("a" * 20)), conn, ctx)
    with pytest.raises(ContentRejectedError, match=r"^Mastodon allows 20 characters; this post has 21$"):
        await deliver(platform, with_items(PostItem("a" * 21)), conn, ctx)


async def test_a_carousel_sends_each_image_s_own_description() -> None:
    fake, platform, conn, ctx = setup()
    pictures = (picture(1, "a red door"), picture(2, None), picture(3, "🐈 on a mat"), picture(4, "four"))
    await deliver(platform, with_items(PostItem("Four", pictures)), conn, ctx)
    assert [fake.descriptions[m] for m in fake.statuses[0]["media_ids"]] == ["a red door", None, "🐈 on a mat",
                                                                             "four"]
    assert fake.media_refs == [IMAGE] * 4
    with pytest.raises(ContentRejectedError, match="alt text of at most 1500 characters; image 1 of this post"):
        platform.validate(with_items(PostItem("One", (picture(1, "a" * 1501),))))


def test_a_video_goes_alone() -> None:
    _, platform, _, _ = setup()
    with pytest.raises(ContentRejectedError, match=r"^Mastodon does not mix images and videos in one post"):
        platform.validate(with_items(PostItem("a", (video(), picture(1, None)))))
    with pytest.raises(ContentRejectedError, match=r"^Mastodon takes one video per post and nothing beside it"):
        platform.validate(with_items(PostItem("a", (video(), video()))))


async def test_a_thread_is_a_reply_chain_with_a_key_per_item_and_the_options() -> None:
    fake, platform, conn, ctx = setup()
    options = {"visibility": "unlisted", "sensitive": True, "spoiler_text": "spoilers", "language": "de"}
    thread = with_items(PostItem("1/3"), PostItem("2/3", (picture(1, "chart"),)), PostItem("3/3"), options=options)
    delivery = await deliver(platform, thread, conn, ctx)
    ids = [s["id"] for s in fake.statuses]
    assert [s["status"] for s in fake.statuses] == ["1/3", "2/3", "3/3"]
    assert [s.get("in_reply_to_id") for s in fake.statuses] == [None, ids[0], ids[1]]
    assert all({k: s[k] for k in options} == options for s in fake.statuses)
    assert list(fake.keys) == [f"scheduler-{thread.id}", f"scheduler-{thread.id}-2", f"scheduler-{thread.id}-3"]
    assert fake.statuses[1]["media_ids"] and "media_ids" not in fake.statuses[0]
    assert [i.platform_post_id for i in delivery.items] == ids


async def test_a_failure_at_item_3_resumes_at_item_3_and_a_lost_answer_is_the_same_status() -> None:
    fake, platform, conn, ctx = setup()
    thread = with_items(*(PostItem(f"{n}/4") for n in range(1, 5)))
    fake.fail = ["", "", "refused"]
    with pytest.raises(Exception, match="could not connect"):
        await deliver(platform, thread, conn, ctx)
    assert [s["status"] for s in fake.statuses] == ["1/4", "2/4"]
    fake.fail = ["unknown"]  # item 3 is created, its answer lost: the same key gets the same status
    await deliver(platform, next_attempt(thread, ctx), conn, ctx)
    assert [s["status"] for s in fake.statuses] == ["1/4", "2/4", "3/4", "4/4"]
    assert fake.statuses[2]["in_reply_to_id"] == fake.statuses[1]["id"]


def test_options_are_validated() -> None:
    _, platform, _, _ = setup()
    with pytest.raises(InvalidPostError, match=r"^platform_options.visibility must be one of public, unlisted,"):
        platform.validate(with_items(PostItem("a"), options={"visibility": "everyone"}))
    with pytest.raises(InvalidPostError, match=r"^platform_options.sensitive must be true or false"):
        platform.validate(with_items(PostItem("a"), options={"sensitive": "yes"}))
    with pytest.raises(InvalidPostError, match=r"^platform_options: Mastodon has no option 'poll'; it takes language,"):
        platform.validate(with_items(PostItem("a"), options={"poll": {}}))


async def test_an_image_of_a_type_the_instance_does_not_take_is_refused_before_the_upload() -> None:
    fake, platform, conn, ctx = setup()
    assert fake.instance is not None
    fake.instance["configuration"]["media_attachments"]["supported_mime_types"] = ["image/jpeg"]
    with pytest.raises(ContentRejectedError, match=r"^Mastodon: this instance takes no image/png files; item 2 of 2"):
        await deliver(platform, with_items(PostItem("a"), PostItem("b", (picture(1, None),))), conn, ctx)
    assert uploads(fake) == 0
