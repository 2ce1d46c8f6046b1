"""Bluesky's new flows against the PDS fake: reply chains with strong refs (resumed after a
failure or a lost answer), a video refused before any upload, alt text per image, and
platform_options (the same is checked on the reference PDS in tests/pds; the video service:
test_bluesky_video)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from scheduler_daemon.errors import ContentRejectedError, InvalidPostError
from scheduler_daemon.models import MediaItem, Post, PostItem
from scheduler_daemon.platforms.bluesky import record_key
from scheduler_daemon.platforms.delivery import deliver
from support.media import mp4
from support.platforms.cases import CASES, adapter, connection, post
from support.platforms.context import IMAGE, FakeContext, Store, next_attempt
from support.platforms.fakes.base import body
from support.platforms.fakes.bluesky import BlueskyFake

CASE = next(c for c in CASES if c.name == "bluesky")
CLIP = "https://cdn.test/clips/launch.mp4"


def setup():  # type: ignore[no-untyped-def]
    fake = BlueskyFake()
    store = Store()
    conn = store.add(connection(CASE, fake))
    return fake, adapter(CASE, fake), conn, FakeContext(store)


def video(alt: str | None = None, url: str = CLIP) -> MediaItem:
    return MediaItem(url=url, storage_path=None, alt=alt, mime="video/mp4")


def picture(n: int, alt: str | None) -> MediaItem:
    return MediaItem(url=f"https://cdn.test/pics/{n}.png", storage_path=None, alt=alt, mime="image/png")


def with_items(*items: PostItem, **changes: object) -> Post:
    first, *rest = items
    return dataclasses.replace(post(CASE, first.content), media=first.media, thread=tuple(rest), **changes)


def records(fake: BlueskyFake, the_post: Post) -> list[dict[str, Any]]:
    """The thread's records as the repository holds them, in item order."""
    keys = [record_key(the_post.id, the_post.scheduled_at, n) for n in range(len(the_post.items))]
    return [fake.records[k] for k in keys if k in fake.records]


def ref(fake: BlueskyFake, the_post: Post, n: int) -> dict[str, str]:
    rkey = record_key(the_post.id, the_post.scheduled_at, n)
    return {"uri": f"at://{fake.did}/app.bsky.feed.post/{rkey}", "cid": fake.cid(fake.records[rkey])}


def uploads(fake: BlueskyFake) -> list[Any]:
    return [r for r in fake.requests if r.url.path.endswith("uploadBlob")]


async def test_a_thread_replies_with_root_and_parent_and_carries_the_options() -> None:
    fake, platform, conn, ctx = setup()
    thread = with_items(PostItem("1/3 @bob.test"), PostItem("2/3", (picture(1, "chart"),)), PostItem("3/3"),
                        options={"langs": ["en", "de"], "labels": ["graphic-media"]})
    delivery = await deliver(platform, thread, conn, ctx)
    first, second, third = records(fake, thread)
    assert [r["text"] for r in (first, second, third)] == ["1/3 @bob.test", "2/3", "3/3"]
    assert "reply" not in first
    assert second["reply"] == {"root": ref(fake, thread, 0), "parent": ref(fake, thread, 0)}
    assert third["reply"] == {"root": ref(fake, thread, 0), "parent": ref(fake, thread, 1)}
    assert second["embed"]["images"][0]["alt"] == "chart"
    assert first["facets"][0]["features"][0]["did"] == "did:plc:bob"
    assert all(r["langs"] == ["en", "de"] for r in (first, second, third))
    assert all(r["labels"] == {"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "graphic-media"}]}
               for r in (first, second, third))
    assert [i.ref for i in delivery.items] == [ref(fake, thread, n) for n in range(3)]


async def test_a_failure_at_item_3_resumes_at_item_3_with_the_refs_checkpointed() -> None:
    fake, platform, conn, ctx = setup()
    thread = with_items(*(PostItem(f"{n}/4") for n in range(1, 5)))
    fake.fail = ["", "", "refused"]
    with pytest.raises(Exception, match="could not connect"):
        await deliver(platform, thread, conn, ctx)
    assert len(records(fake, thread)) == 2
    await deliver(platform, next_attempt(thread, ctx), conn, ctx)
    done = records(fake, thread)
    assert [r["text"] for r in done] == ["1/4", "2/4", "3/4", "4/4"]
    assert done[2]["reply"] == {"root": ref(fake, thread, 0), "parent": ref(fake, thread, 1)}


async def test_items_checkpointed_without_their_cid_are_read_back_from_the_pds() -> None:
    fake, platform, conn, ctx = setup()
    thread = with_items(*(PostItem(f"{n}/3") for n in range(1, 4)))
    fake.fail = ["", "", "refused"]
    with pytest.raises(Exception, match="could not connect"):
        await deliver(platform, thread, conn, ctx)
    ctx.state["items"] = [{"id": entry["id"], "url": entry["url"]} for entry in ctx.state["items"]]
    await deliver(platform, next_attempt(thread, ctx), conn, ctx)
    assert records(fake, thread)[2]["reply"] == {"root": ref(fake, thread, 0), "parent": ref(fake, thread, 1)}


async def test_an_item_whose_answer_was_lost_is_found_under_its_key_and_the_next_replies_to_it() -> None:
    fake, platform, conn, ctx = setup()
    thread = with_items(*(PostItem(f"{n}/4") for n in range(1, 5)))
    fake.fail = ["", "", "unknown"]  # item 3 is written, its answer lost
    with pytest.raises(Exception, match="no answer"):
        await deliver(platform, thread, conn, ctx)
    await deliver(platform, next_attempt(thread, ctx), conn, ctx)
    done = records(fake, thread)
    assert [r["text"] for r in done] == ["1/4", "2/4", "3/4", "4/4"] and len(fake.posts) == 4
    assert done[3]["reply"]["parent"] == ref(fake, thread, 2)


async def test_blobs_the_pds_dropped_before_a_retry_are_uploaded_again() -> None:
    fake, platform, conn, ctx = setup()
    thread = with_items(PostItem("1/2"), PostItem("2/2", (picture(1, "chart"),)))
    fake.fail = ["", "refused"]
    with pytest.raises(Exception, match="could not connect"):
        await deliver(platform, thread, conn, ctx)
    fake.blobs.clear()  # the retry comes later: the PDS has dropped the blob no record took up
    await deliver(platform, next_attempt(thread, ctx), conn, ctx)
    done = records(fake, thread)
    assert [r["text"] for r in done] == ["1/2", "2/2"] and len(uploads(fake)) == 2
    assert done[1]["embed"]["images"][0]["image"]["ref"]["$link"] in fake.blobs


@pytest.mark.parametrize(("clip", "message"), [
    (mp4(brand=b"qt  "), "Bluesky takes MP4 videos; the video of this post is MOV"),
    (mp4(seconds=601), "Bluesky takes videos up to 600 s; the video of this post lasts 601.0 s"),
    (mp4(codec=b"mp4v"), "Bluesky takes H264, HEVC, AV1 or VP9 video; the video of this post is MPEG4"),
])
async def test_a_video_outside_the_lexicon_is_refused_before_any_upload(clip: bytes, message: str) -> None:
    fake, platform, conn, ctx = setup()
    ctx.payloads[CLIP] = clip
    with pytest.raises(ContentRejectedError) as caught:
        await deliver(platform, with_items(PostItem("Launch", (video(),))), conn, ctx)
    assert str(caught.value) == message
    assert uploads(fake) == [] and fake.posts == []


async def test_a_carousel_keeps_each_image_s_alt_text() -> None:
    fake, platform, conn, ctx = setup()
    the_post = with_items(PostItem("Four", (picture(1, "a red door"), picture(2, None), picture(3, "🐈"),
                                            picture(4, "four"))))
    await deliver(platform, the_post, conn, ctx)
    [record] = records(fake, the_post)
    assert [i["alt"] for i in record["embed"]["images"]] == ["a red door", "", "🐈", "four"]
    assert [u.content for u in uploads(fake)] == [IMAGE] * 4
    assert all(body(r)["record"]["embed"]["$type"] == "app.bsky.embed.images"
               for r in fake.requests if r.url.path.endswith("putRecord"))


def test_options_and_a_lone_video_are_validated() -> None:
    _, platform, _, _ = setup()
    with pytest.raises(InvalidPostError, match=r"^platform_options.langs takes at most 3 languages; it has 4$"):
        platform.validate(with_items(PostItem("a"), options={"langs": ["en", "de", "fr", "es"]}))
    with pytest.raises(InvalidPostError, match=r"^platform_options.labels must be one of sexual, nudity, porn,"):
        platform.validate(with_items(PostItem("a"), options={"labels": ["spoiler"]}))
    with pytest.raises(ContentRejectedError, match=r"^Bluesky takes one video per post and nothing beside it"):
        platform.validate(with_items(PostItem("a", (video(), video(url="https://cdn.test/b.mp4")))))
