"""Threads publishing (Graph-style containers, even for text).

Connection row: ``account_id`` = the Threads user id; ``access_token`` = a long-lived
(60-day) token with ``threads_content_publish``; ``token_expires_at`` drives the
refresh (``th_refresh_token`` when it expires within the long-lived margin, or after a
first code-190 failure); ``refresh_token`` unused; no metadata keys.

Flow: ``prepare``: a container (``media_type`` ``TEXT``, ``IMAGE`` with ``image_url``, or
``CAROUSEL`` of 2–20 image children), wait for ``FINISHED`` (bounded poll). ``publish``:
``threads_publish``, then read the ``permalink``. Text: 500 characters, an emoji counting
its UTF-8 bytes; at most 5 links (``_rules.find_urls``): since 2025-12-22 Threads refuses
more at container creation (``THREADS_API__LINK_LIMIT_EXCEEDED``), so such a post is
refused before any call.

Settings: ``SCHEDULER_THREADS_API_BASE`` (default ``https://graph.threads.net``),
``SCHEDULER_THREADS_API_VERSION`` (``v1.0``), media poll interval/timeout, long-lived
refresh margin. Exactly-once: the container id is checkpointed before
``threads_publish``; a retry checks its status and never publishes it twice.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from ..config.platforms import PlatformSettings
from ..errors import ContentRejectedError, PlatformConfigError
from ..models import Connection, Post, PostItem, PublishResult
from ._rules import find_urls, threads_length
from ._tokens import TokenHolder
from .base import UNLIMITED, Adapter, Item, MediaLimit, PlatformFacts, Prepared, PublishContext, TextLimit
from .graph import ContainerApi, ContainerFlow, long_lived_refresher

MAX_LINKS = 5


class ThreadsAdapter(Adapter):
    # Pacing: 250 API-published posts per profile per rolling 24 h (threads_publishing_limit),
    # a per-profile quota: 1 container flow in flight per profile, no app-wide bound.
    facts = PlatformFacts(
        "threads", "Threads", idempotent=True, api_base="https://graph.threads.net", concurrency=(UNLIMITED, 1),
        text=(TextLimit(500, threads_length),), media=MediaLimit(20),
    )

    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client)
        self.root = self.base

    def validate_item(self, item: PostItem, what: str) -> None:
        super().validate_item(item, what)
        links = len(find_urls(item.content))
        if links > MAX_LINKS:
            raise ContentRejectedError(f"Threads allows at most {MAX_LINKS} links per post; this one has {links}")

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        flow = await self._flow(connection, ctx)

        async def build() -> Mapping[str, str]:
            urls = [await ctx.media_url(item) for item in post.media]
            if not urls:
                return {"media_type": "TEXT", "text": post.content}
            if len(urls) == 1:
                return {"media_type": "IMAGE", "image_url": urls[0], "text": post.content}
            children = []
            for url in urls:
                child = await flow.create({"media_type": "IMAGE", "image_url": url, "is_carousel_item": "true"})
                children.append(child)
            return {"media_type": "CAROUSEL", "children": ",".join(children), "text": post.content}

        await flow.prepare(ctx.state, ctx, build)
        return {}  # the container is the item's own checkpoint

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        flow = await self._flow(connection, ctx)
        return await flow.publish(item, ctx)

    async def _flow(self, connection: Connection, ctx: PublishContext) -> ContainerFlow:
        if not connection.account_id:
            raise PlatformConfigError("the threads connection has no account_id (the Threads user id)")
        refresher = long_lived_refresher(
            self.client, self.name, f"{self.root}/refresh_access_token", "th_refresh_token"
        )
        holder = TokenHolder(self.name, connection, ctx, refresher)
        await holder.ensure_fresh(self.settings.long_lived_refresh_margin_seconds)
        api = ContainerApi(
            self.name, f"{self.root}/{self.settings.threads_api_version}", connection.account_id,
            "threads", "threads_publish", "status", "text",
        )
        return ContainerFlow(api, self.client, holder, self.settings)
