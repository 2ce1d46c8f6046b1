"""Instagram content publishing (Graph API containers).

Connection row: ``account_id`` = the Instagram professional account id (IG user id);
``access_token`` = a user token with ``instagram_content_publish``; ``metadata.login`` =
``"instagram"`` for an Instagram-Login token (graph.instagram.com; refreshed with
``ig_refresh_token`` when it expires within the long-lived margin, or after a first
code-190 failure) or ``"facebook"`` (default: graph.facebook.com, no refresh; reconnect
when it expires). ``token_expires_at`` drives the refresh.

Flow: ``prepare``: one image → a container with ``image_url`` + ``caption``; 2–10 images →
child containers (``is_carousel_item``) and a ``CAROUSEL`` parent; wait for ``FINISHED``
(bounded poll). ``publish``: ``media_publish``, then read the ``permalink``. No text-only
posts.

Settings: ``SCHEDULER_INSTAGRAM_API_BASE`` (default ``https://graph.facebook.com``),
``SCHEDULER_INSTAGRAM_LOGIN_API_BASE`` (default ``https://graph.instagram.com``),
``SCHEDULER_GRAPH_API_VERSION``, media poll interval/timeout, long-lived refresh margin.
Exactly-once: the container id is checkpointed before ``media_publish``; a retry checks
its status and never publishes a ``PUBLISHED`` container again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx

from ..config.platforms import PlatformSettings
from ..errors import ContentRejectedError, PlatformConfigError
from ..models import Connection, Post, PostItem, PublishResult
from ._rules import check_length, check_media
from ._tokens import TokenHolder
from .base import UNLIMITED, Adapter, Item, MediaLimit, PlatformFacts, Prepared, PublishContext, TextLimit
from .graph import ContainerApi, ContainerFlow, long_lived_refresher

MAX_HASHTAGS = 30
_HASHTAG = re.compile(r"(?<!\w)#\w+")


class InstagramAdapter(Adapter):
    # Pacing: the documented limit is per account, a publishing quota of posts per rolling
    # 24 h (GET /{ig-user-id}/content_publishing_limit, quota_total; a carousel is one) that
    # no app-wide bound enforces: 1 container flow in flight per account, none app-wide
    # (5 per app serialized every tenant's burst: bench/RESULTS.md, media burst).
    facts = PlatformFacts(
        "instagram", "Instagram", idempotent=True, api_base="https://graph.facebook.com",
        concurrency=(UNLIMITED, 1),
        text=(TextLimit(2_200),), media=MediaLimit(10),
    )

    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client)
        self.facebook_root = self.base
        self.instagram_root = settings.api_base("instagram_login", "https://graph.instagram.com")

    def validate_item(self, item: PostItem, what: str) -> None:
        [caption] = self.facts.text
        check_length(self.facts.display, len(item.content), caption.limit, what=what)
        hashtags = len(_HASHTAG.findall(item.content))
        if hashtags > MAX_HASHTAGS:
            raise ContentRejectedError(f"Instagram allows {MAX_HASHTAGS} hashtags; this caption has {hashtags}")
        assert self.facts.media is not None
        check_media(self.facts.display, item.media, max_items=self.facts.media.max_items)
        if not item.media:
            raise ContentRejectedError("Instagram needs at least one image: it has no text-only posts")

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        flow = await self._flow(connection, ctx)

        async def build() -> Mapping[str, str]:
            urls = [await ctx.media_url(item) for item in post.media]
            if len(urls) == 1:
                return {"image_url": urls[0], "caption": post.content}
            children = []
            for url in urls:
                child = await flow.create({"image_url": url, "is_carousel_item": "true"})
                await flow.wait_finished(child)
                children.append(child)
            return {"media_type": "CAROUSEL", "children": ",".join(children), "caption": post.content}

        await flow.prepare(ctx.state, ctx, build)
        return {}  # the container is the item's own checkpoint

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        flow = await self._flow(connection, ctx)
        return await flow.publish(item, ctx)

    async def _flow(self, connection: Connection, ctx: PublishContext) -> ContainerFlow:
        if not connection.account_id:
            raise PlatformConfigError("the instagram connection has no account_id (the Instagram user id)")
        instagram_login = connection.metadata.get("login") == "instagram"
        root = self.instagram_root if instagram_login else self.facebook_root
        refresher = (
            long_lived_refresher(self.client, self.name, f"{root}/refresh_access_token", "ig_refresh_token")
            if instagram_login
            else None
        )
        holder = TokenHolder(self.name, connection, ctx, refresher)
        await holder.ensure_fresh(self.settings.long_lived_refresh_margin_seconds)
        api = ContainerApi(
            self.name, f"{root}/{self.settings.graph_api_version}", connection.account_id,
            "media", "media_publish", "status_code", "caption",
        )
        return ContainerFlow(api, self.client, holder, self.settings)
