"""Requests built before the instant (``delivery.build_ahead``): what is sent at the instant
is the request built at the claim, and it is the very request the instant would have built
(the webhook's body and signature); Instagram's ``media_publish`` is built for the prepared
container and built anew when the token changed meanwhile."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import uuid

import httpx

from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.models import Connection, MediaItem, Post, PostItem
from scheduler_daemon.platforms.delivery import build_ahead, deliver, prepare
from scheduler_daemon.platforms.webhook import WebhookAdapter
from support.platforms.cases import CASES, adapter, connection
from support.platforms.context import IMAGE_URL, FakeContext, Store

TOKEN = "whsec-built-ahead"
NOW = dt.datetime(2030, 1, 2, tzinfo=dt.timezone.utc)


def post(platform: str = "webhook", content: str = "at the top of the hour", **kw: object) -> Post:
    values: dict[str, object] = dict(
        id=uuid.UUID(int=7), platform=platform, content=content, media=(), campaign_id=uuid.UUID(int=3),
        user_id=uuid.UUID(int=1), scheduled_at=NOW, attempt=1, publish_state={},
    )
    values.update(kw)
    return Post(**values)  # type: ignore[arg-type]


def hook(url: str = "https://hooks.test/in") -> Connection:
    return Connection(uuid.UUID(int=5), uuid.UUID(int=1), "webhook", None, TOKEN, None, None, {"url": url})


async def test_the_webhook_sends_the_request_built_at_the_claim_with_the_instant_s_signature() -> None:
    sent: list[httpx.Request] = []

    async def receive(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"id": "x1"})

    webhook = WebhookAdapter(PlatformSettings(), httpx.AsyncClient(transport=httpx.MockTransport(receive)))
    the_post, conn = post(), hook()
    ready = build_ahead(webhook, the_post, conn)
    assert ready is not None
    ahead = await deliver(webhook, the_post, conn, FakeContext(Store()), ready)
    at_instant = await deliver(webhook, the_post, conn, FakeContext(Store()))  # built at the instant, as before

    assert ahead.platform_post_id == at_instant.platform_post_id == "x1"
    first, second = sent
    assert first is ready.request, "the request built ahead is the one sent"
    assert first.content == second.content and dict(first.headers) == dict(second.headers)
    expected = "sha256=" + hmac.new(TOKEN.encode(), second.content, hashlib.sha256).hexdigest()
    assert first.headers["x-scheduler-signature"] == expected


async def test_nothing_is_built_ahead_for_a_retry_a_thread_or_a_webhook_without_a_url() -> None:
    webhook = WebhookAdapter(PlatformSettings(), httpx.AsyncClient())
    assert build_ahead(webhook, post(attempt=2), hook()) is None
    assert build_ahead(webhook, post(thread=(PostItem("reply", ()),)), hook()) is None
    try:
        build_ahead(webhook, post(), hook("ftp://nowhere"))
    except Exception as exc:  # the engine drops it: the attempt at the instant meets it and classifies it
        assert "metadata.url" in str(exc)
    else:
        raise AssertionError("a webhook without a usable URL built a request")


async def test_instagram_sends_media_publish_built_for_the_prepared_container() -> None:
    case = next(c for c in CASES if c.name == "instagram")
    fake = case.fake()
    platform = adapter(case, fake)
    ctx = FakeContext(Store())
    conn = ctx.store.add(connection(case, fake))
    the_post = post("instagram", "a cat", media=(MediaItem(IMAGE_URL, None, None, "image/png"),))
    assert build_ahead(platform, the_post, conn) is None  # no container yet: built at the instant
    await prepare(platform, the_post, conn, ctx)  # the preparer, minutes before
    claimed = dataclasses.replace(the_post, publish_state=dict(ctx.state))
    ready = build_ahead(platform, claimed, conn)
    assert ready is not None and ready.request.url.path.endswith("/media_publish")

    delivery = await deliver(platform, claimed, conn, FakeContext(ctx.store, ctx.state), ready)
    assert delivery.platform_post_id == "m1"
    assert [r for r in fake.requests if r.url.path.endswith("/media_publish")] == [ready.request]

    # The token changed between the claim and the instant: media_publish is built anew.
    other = case.fake()
    platform = adapter(case, other)
    ctx = FakeContext(Store())
    conn = ctx.store.add(connection(case, other))
    await prepare(platform, the_post, conn, ctx)
    claimed = dataclasses.replace(the_post, publish_state=dict(ctx.state))
    stale = build_ahead(platform, claimed, dataclasses.replace(conn, access_token="older"))
    assert stale is not None
    await deliver(platform, claimed, conn, FakeContext(ctx.store, ctx.state), stale)
    [publish] = [r for r in other.requests if r.url.path.endswith("/media_publish")]
    assert publish is not stale.request and b"older" not in publish.content
