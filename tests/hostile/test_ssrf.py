"""SSRF through the real daemon: a tenant points its webhook, Mastodon instance, Bluesky
PDS or media (directly, or through a redirect chain) at an internal address. Each is
refused before anything is sent (the target counts 0 requests), the post goes back to
draft saying the address is not allowed and naming SCHEDULER_ALLOW_NETWORKS, and a
bystander tenant's post goes out once, on time. Only 127.0.0.1 is allowed (conftest), so
127.0.0.2, ::1 and 169.254.169.254 stand for the internal network."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import uuid
from typing import Any

import asyncpg
import pytest

from scheduler_daemon.net.guard import Guard
from scheduler_daemon.net.transport import AiohttpTransport
from scheduler_daemon.testing.receiver import Receiver
from support.helpers import Watcher, insert_post, make_user, row
from support.servers import Bystander, Mastodon, Server, redirector

INTERNAL = ["127.0.0.2", "::1", "169.254.169.254"]


def soon(ms: int = 400) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=ms)


def internal_host(host: str, request: pytest.FixtureRequest) -> str:
    if host == "169.254.169.254":
        return str(request.getfixturevalue("metadata_address"))
    return host


async def assert_refused(db: asyncpg.Connection, post: uuid.UUID, *, mentions: str = "") -> str:
    r = await row(db, post)
    message = r["error_message"] or ""
    assert r["status"] == "draft", dict(r)
    assert "is not an allowed address" in message and "SCHEDULER_ALLOW_NETWORKS" in message, message
    assert mentions in message, message
    assert "internal-secret" not in message
    return message


@pytest.mark.parametrize("host", INTERNAL)
async def test_a_webhook_to_an_internal_address_is_refused(
    host: str, request: pytest.FixtureRequest, db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    host = internal_host(host, request)
    async with Server(host) as target, Receiver() as rx:
        campaign, _ = await make_user(db, "webhook", metadata={"url": target.url + "/latest/meta-data/iam"})
        bystander = Bystander(db, rx)
        await start_daemon()
        due = soon()
        hostile = await insert_post(db, campaign, due)
        await bystander.schedule(due)
        await watcher.wait(hostile, "draft", "published")
        await bystander.published_once_on_time(watcher)
    await assert_refused(db, hostile, mentions="webhook: ")
    assert target.hits == []


async def test_an_instance_or_pds_on_an_internal_address_is_refused(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    async with Server("127.0.0.2") as instance, Server("::1") as pds, Receiver() as rx:
        mastodon, _ = await make_user(db, "mastodon", metadata={"instance_url": instance.url})
        bluesky, _ = await make_user(db, "bluesky", account_id="did:plc:tenant", metadata={"pds_url": pds.url})
        bystander = Bystander(db, rx)
        await start_daemon()
        due = soon()
        posts = [await insert_post(db, mastodon, due, platform="mastodon"),
                 await insert_post(db, bluesky, due, platform="bluesky")]
        await bystander.schedule(due)
        await watcher.wait_all(posts, "draft", "published")
        await bystander.published_once_on_time(watcher)
    await assert_refused(db, posts[0], mentions="127.0.0.2")
    await assert_refused(db, posts[1], mentions="::1")
    assert instance.hits == [] and pds.hits == []


def media(url: str) -> str:
    return json.dumps([{"url": url, "alt": "a cat", "mime": "image/png"}])


@pytest.mark.parametrize("hops", [0, 3], ids=["direct", "3 redirects"])
@pytest.mark.parametrize("host", INTERNAL)
async def test_media_on_an_internal_address_is_never_fetched(
    host: str, hops: int, request: pytest.FixtureRequest, db: asyncpg.Connection, watcher: Watcher,
    start_daemon: Any,
) -> None:
    """The reported case: media on the metadata service, uploaded to the tenant's own
    instance and reported published. Now nothing is fetched from it, directly or at the end
    of a redirect chain (every hop before it is followed), and nothing is uploaded."""
    host = internal_host(host, request)
    async with Server(host) as target, redirector() as cdn, Mastodon() as instance, Receiver() as rx:
        campaign, _ = await make_user(db, "mastodon", metadata={"instance_url": instance.url})
        bystander = Bystander(db, rx)
        await start_daemon()
        secret = f"{target.url}/latest/meta-data/iam/security-credentials/role"
        due = soon()
        hostile = await insert_post(db, campaign, due, platform="mastodon",
                                    media=media(f"{cdn.url}/hop/{hops}?to={secret}" if hops else secret))
        await bystander.schedule(due)
        await watcher.wait(hostile, "draft", "published")
        await bystander.published_once_on_time(watcher)
    await assert_refused(db, hostile, mentions="media ")
    assert len(cdn.hits) == hops and target.hits == [] and instance.uploads == [] and instance.statuses == []


async def test_media_behind_redirects_is_published(db: asyncpg.Connection, watcher: Watcher, start_daemon: Any) -> None:
    """CDN links and http→https redirects work again: up to five hops, each one guarded."""
    image = Server(routes={"/cat.png": serve_png})
    async with image, redirector() as cdn, Mastodon() as instance:
        campaign, _ = await make_user(db, "mastodon", metadata={"instance_url": instance.url})
        await start_daemon()
        hops = media(f"{cdn.url}/hop/5?to={image.url}/cat.png")
        post = await insert_post(db, campaign, soon(), platform="mastodon", media=hops)
        too_many = await insert_post(db, campaign, soon(), platform="mastodon",
                                     media=media(f"{cdn.url}/hop/6?to={image.url}/cat.png"))
        await watcher.wait_all([post, too_many], "draft", "published")
    assert (await row(db, post))["status"] == "published", (await row(db, post))["error_message"]
    assert instance.uploads == [len(PNG)] and len(instance.statuses) == 1
    r = await row(db, too_many)
    assert r["status"] == "draft" and "redirects more than 5 times" in r["error_message"]


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 2048


async def serve_png(request: Any) -> Any:
    from aiohttp import web

    return web.Response(body=PNG, content_type="image/png")


class Rebinding:
    """A DNS whose first answer is the allowed 127.0.0.1 and every later one 127.0.0.2."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict[str, Any]]:
        address = "127.0.0.1" if not self.asked else "127.0.0.2"
        self.asked.append(address)
        return [{"hostname": host, "host": address, "port": port, "family": 2, "proto": 6, "flags": 0}]

    async def close(self) -> None:
        pass


async def test_dns_rebinding_cannot_move_a_checked_connection(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    """The host is resolved once per connection and the socket goes to that checked answer.
    The same port listens on 127.0.0.1 (allowed) and 127.0.0.2 (internal): an implementation
    that checked one DNS answer and let the client resolve again would reach 127.0.0.2."""
    async with Receiver() as public, Server("127.0.0.2", port=public.port) as internal:
        dns = Rebinding()
        transport = AiohttpTransport(guard=Guard((ipaddress.ip_network("127.0.0.1/32"),)), resolver=dns)
        campaign, _ = await make_user(db, "webhook", metadata={"url": f"http://hooks.rebind.test:{public.port}/hook"})
        await start_daemon(transport=transport)
        posts = [await insert_post(db, campaign, soon(300 + 50 * i), content=f"p{i}") for i in range(3)]
        await watcher.wait_all(posts, "published", "draft")
    assert [(await row(db, p))["status"] for p in posts] == ["published"] * 3
    assert len(public.arrivals) == 3 and internal.hits == [] and dns.asked == ["127.0.0.1"]
