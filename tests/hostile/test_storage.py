"""Storage paths through the real daemon and the real ``supabase`` client: the service key
signs only objects under the post owner's own folder of SUPABASE_STORAGE_BUCKET; escapes
to another user's folder, another bucket, or through dot segments and encodings end as
drafts with the reason, and nothing is signed or fetched for them. The Storage fake is on
127.0.0.2, which only its being the configured SUPABASE_URL allows."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.testing.receiver import Receiver
from support.helpers import Watcher, insert_post, row
from support.servers import Bystander, Mastodon, Server

pytest.importorskip("supabase", reason="the 'supabase' extra is not installed")

PNG = b"\x89PNG\r\n\x1a\n" + b"s" * 3000


def service_key() -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'role': 'service_role'})}.c2lnbmF0dXJl"


class Storage(Server):
    """Storage's sign endpoint and the signed download, for any object in any bucket."""

    def __init__(self) -> None:
        super().__init__("127.0.0.2", {"/storage/v1/object/sign/": self.sign})
        self.signed: list[str] = []

    async def sign(self, request: web.Request) -> web.StreamResponse:
        name = request.path[len("/storage/v1/object/sign/"):]
        if request.method == "POST":
            self.signed.append(name)
            return web.json_response({"signedURL": f"/object/sign/{name}?token=signed-{len(self.signed)}"})
        return web.Response(body=PNG, content_type="image/png")


async def test_storage_paths_outside_the_owners_folder_are_refused(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    async with Storage() as storage, Mastodon() as instance, Receiver() as rx:
        campaign = await db.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", owner)
        await db.execute("INSERT INTO platform_connections (user_id, platform, access_token, metadata)"
                         " VALUES ($1, 'mastodon', 'tok', $2::jsonb)", owner,
                         json.dumps({"instance_url": instance.url}))
        platforms = PlatformSettings.from_env({
            "SUPABASE_URL": storage.url, "SUPABASE_SERVICE_KEY": service_key(), "SUPABASE_STORAGE_BUCKET": "media",
        })
        paths = {
            "own": f"{owner}/cats/tom.png",
            "own, bucket first": f"media/{owner}/cats/tom.png",
            "another user's": f"{other}/cats/tom.png",
            "dot segments": f"{owner}/../{other}/cats/tom.png",
            "encoded dots": f"{owner}/%2e%2e/{other}/cats/tom.png",
            "another bucket": f"private/{owner}/cats/tom.png",
            "empty segment": f"{owner}//cats/tom.png",
            "absolute": f"/{owner}/cats/tom.png",
            "backslashes": f"{owner}\\..\\{other}\\tom.png",
        }
        bystander = Bystander(db, rx)
        await start_daemon(platforms=platforms)
        due = dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=500)
        posts = {
            what: await insert_post(db, campaign, due, platform="mastodon", content=what,
                                    media=json.dumps([{"storage_path": path, "mime": "image/png"}]))
            for what, path in paths.items()
        }
        await bystander.schedule(due)
        await watcher.wait_all(list(posts.values()), "draft", "published")
        await bystander.published_once_on_time(watcher)
    results = {what: await row(db, post) for what, post in posts.items()}
    published = {what for what, r in results.items() if r["status"] == "published"}
    assert published == {"own", "own, bucket first"}, {w: r["error_message"] for w, r in results.items()}
    for what, r in results.items():
        if what not in published:
            message = r["error_message"]
            assert r["status"] == "draft" and "storage_path" in message and "is refused" in message, what
    assert storage.signed == [f"media/{owner}/cats/tom.png"] * 2
    assert instance.uploads == [len(PNG)] * 2
    assert not [hit for hit in storage.hits if str(other) in hit or "private" in hit]
