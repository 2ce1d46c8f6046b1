"""``chain``: a test platform with threads, a first comment and options, to prove the
delivery driver (``platforms.delivery``) and the engine around it before any real adapter
has them. The adapter is written as a real one is (prepare uploads, publish one item as a
reply, comment under the post; errors mapped from the answers); the platform is faked at
the transport (``ChainFake``), never by patching the daemon.

The API: ``POST /media`` (bytes) → ``{"id"}``; ``POST /posts`` ``{text, reply_to,
media_ids, notify}`` → ``{"id", "url"}``; ``POST /posts/{id}/comments`` ``{text}`` →
``{"id", "url"}``. ``fail`` maps a post's (or comment's) text to the failure it gets once:
``transient`` (503), ``content`` (400), ``rate`` (429), ``unknown`` (published, then the
answer is lost), ``stale`` (410: an uploaded media id that lapsed).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.errors import (
    ContentRejectedError,
    PreparedStaleError,
    PublishError,
    RateLimitedError,
    TransientError,
)
from scheduler_daemon.models import Connection, Post, PublishResult
from scheduler_daemon.platforms._calls import json_object, require_id
from scheduler_daemon.platforms._http import call, excerpt
from scheduler_daemon.platforms.base import (
    Adapter,
    Item,
    MediaLimit,
    Option,
    PlatformFacts,
    Prepared,
    PublishContext,
    TextLimit,
)

BASE = "https://chain.test"


def classify(response: httpx.Response) -> PublishError | None:
    if response.is_success:
        return None
    reason = excerpt(json_object(response).get("error") or f"HTTP {response.status_code}")
    if response.status_code == 410:
        return PreparedStaleError(f"Chain: {reason}")
    if response.status_code == 429:
        return RateLimitedError(f"Chain rate limit: {reason}", 1.0)
    if response.status_code >= 500:
        return TransientError(f"Chain server error: {reason}")
    return ContentRejectedError(f"Chain rejected the post: {reason}")


class ChainAdapter(Adapter):
    facts = PlatformFacts(
        "chain", "Chain", tokenless=True, api_base=BASE, text=(TextLimit(280),),
        media=MediaLimit(4, alt_text=True, alt_text_max=100), thread=10, first_comment=TextLimit(200),
        options=(Option("notify", "boolean"), Option("audience", "string", ("everyone", "followers"))),
    )

    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client)

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        uploads = []
        for item in post.items:
            ids = []
            for media in item.media:
                content, mime = await ctx.media_bytes(media, 1_000_000)
                response = await call(
                    self.client, None,
                    lambda c=content, m=mime: self.client.build_request(  # type: ignore[misc]
                        "POST", f"{self.base}/media", content=c, headers={"content-type": m}
                    ),
                    classify, what="Chain upload",
                )
                ids.append(require_id(json_object(response), "id", what="Chain upload"))
            uploads.append(ids)
        return {"media": uploads} if any(uploads) else {}

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        body: dict[str, Any] = {"text": item.content}
        if item.reply_to is not None:
            body["reply_to"] = item.reply_to.parent.platform_post_id
            body["root"] = (item.reply_to.root.ref or {}).get("root_key")
        if media := prepared.get("media"):
            body["media_ids"] = media[item.index]
        if "notify" in post.options:
            body["notify"] = post.options["notify"]
        response = await call(
            self.client, None, lambda: self.client.build_request("POST", f"{self.base}/posts", json=body), classify,
            what="Chain post",
        )
        data = json_object(response)
        post_id = require_id(data, "id", what="Chain post")
        return PublishResult(post_id, data.get("url"), {"root_key": f"key-{post_id}"})

    async def comment(
        self, post: Post, on: PublishResult, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        url = f"{self.base}/posts/{on.platform_post_id}/comments"
        response = await call(
            self.client, None, lambda: self.client.build_request("POST", url, json={"text": post.first_comment}),
            classify, what="Chain comment",
        )
        data = json_object(response)
        return PublishResult(require_id(data, "id", what="Chain comment"), data.get("url"))


class ChainFake:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []  # what the platform published, in order
        self.comments: list[dict[str, Any]] = []
        self.uploads: list[bytes] = []
        self.fail: dict[str, str] = {}  # text → failure, played once
        self.requests: list[httpx.Request] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        assert request.url.host == "chain.test" and request.method == "POST", request.url
        if request.url.path == "/media":
            self.uploads.append(request.content)
            return httpx.Response(200, json={"id": f"media-{len(self.uploads)}"})
        data = json.loads(request.content)
        failure = self.fail.pop(data["text"], None)
        if failure == "transient":
            return httpx.Response(503, json={"error": "try later"})
        if failure == "rate":
            return httpx.Response(429, json={"error": "slow down"})
        if failure == "content":
            return httpx.Response(400, json={"error": "this text is not allowed"})
        if failure == "stale":
            return httpx.Response(410, json={"error": "media expired"})
        if request.url.path == "/posts":
            if data.get("reply_to") is not None:
                assert any(p["id"] == data["reply_to"] for p in self.posts), "a reply to a post that is not out"
            entry = {**data, "id": f"p{len(self.posts) + 1}"}
            self.posts.append(entry)
            answer = {"id": entry["id"], "url": f"https://chain.test/@me/{entry['id']}"}
        else:
            on = request.url.path.split("/")[2]
            assert any(p["id"] == on for p in self.posts)
            entry = {**data, "on": on, "id": f"c{len(self.comments) + 1}"}
            self.comments.append(entry)
            answer = {"id": entry["id"], "url": f"https://chain.test/@me/{on}#{entry['id']}"}
        if failure == "unknown":
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, json=answer)
