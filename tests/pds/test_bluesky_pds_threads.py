"""Bluesky threads and video against the reference PDS: a row with a thread, written with
plain SQL, published by the real daemon, and checked on the PDS itself (getRecord,
getBlob): each reply's ``root`` and ``parent`` are the strong refs (uri and cid) of the
records the PDS holds, and the image and video embeds hold the very bytes and alt texts."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from support.helpers import Watcher, insert_post, row, soon
from support.media import mp4

from .network import Account, ReferencePds
from .test_bluesky_pds import Web, connect, daemon, pds, png  # noqa: F401 - daemon and pds are fixtures


async def record(server: ReferencePds, account: Account, uri: str) -> dict[str, Any]:
    found = await server.get_record(account.did, uri.rsplit("/", 1)[1])
    assert found is not None and found["uri"] == uri
    return found


async def test_a_thread_s_replies_and_embeds_are_what_the_pds_holds(
    db: asyncpg.Connection, watcher: Watcher, daemon: Web, pds: ReferencePds,  # noqa: F811 - fixtures
) -> None:
    alice = await pds.create_account("alice")
    campaign = await connect(db, alice)
    first, second, clip = png(4), png(5), mp4(width=720, height=1280, seconds=3, mdat_bytes=40_000)
    daemon.pages["https://cdn.example.com/a.png"] = (first, "image/png")
    daemon.pages["https://cdn.example.com/b.png"] = (second, "image/png")
    daemon.pages["https://cdn.example.com/clip.mp4"] = (clip, "video/mp4")
    thread = [
        {"content": "2/4 two pictures", "media": [
            {"url": "https://cdn.example.com/a.png", "alt": "the first one", "mime": "image/png"},
            {"url": "https://cdn.example.com/b.png", "mime": "image/png"}]},
        {"content": "3/4 a video", "media": [
            {"url": "https://cdn.example.com/clip.mp4", "alt": "a rocket lifts off", "mime": "video/mp4"}]},
        {"content": "4/4 the end"},
    ]
    post_id = await insert_post(db, campaign, soon(0.3), platform="bluesky", content="1/4 a thread")
    await db.execute("UPDATE content_posts SET thread = $2::jsonb, platform_options = $3::jsonb WHERE id = $1",
                     post_id, json.dumps(thread), json.dumps({"langs": ["en"]}))
    await watcher.wait(post_id, "published", "draft", timeout=30)
    r = await row(db, post_id)
    assert r["status"] == "published", r["error_message"]

    uris = [r["platform_post_id"], *(item["id"] for item in json.loads(r["publish_state"])["items"][1:])]
    held = [await record(pds, alice, uri) for uri in uris]
    assert len(held) == 3  # items 1-3 are checkpointed; item 4 answers item 3
    replies = [h["value"].get("reply") for h in held]
    refs = [{"uri": h["uri"], "cid": h["cid"]} for h in held]
    assert replies == [None, {"root": refs[0], "parent": refs[0]}, {"root": refs[0], "parent": refs[1]}]
    listed = {x["uri"]: x for x in await pds.list_records(alice.did)}
    [last] = [x for x in listed.values() if x["value"]["text"] == "4/4 the end"]
    assert last["value"]["reply"] == {"root": refs[0], "parent": refs[2]}
    assert all(x["value"]["langs"] == ["en"] for x in listed.values())

    images = held[1]["value"]["embed"]
    assert images["$type"] == "app.bsky.embed.images"
    assert [i["alt"] for i in images["images"]] == ["the first one", ""]
    assert [await pds.get_blob(alice.did, i["image"]["ref"]["$link"]) for i in images["images"]] == [first, second]
    video = held[2]["value"]["embed"]
    assert video["$type"] == "app.bsky.embed.video" and video["alt"] == "a rocket lifts off"
    assert video["aspectRatio"] == {"width": 720, "height": 1280} and video["video"]["mimeType"] == "video/mp4"
    assert await pds.get_blob(alice.did, video["video"]["ref"]["$link"]) == clip
