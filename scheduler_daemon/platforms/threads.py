"""Threads publishing (Graph-style containers, even for text).

Connection row: ``account_id`` = the Threads user id; ``access_token`` = a long-lived
(60-day) token with ``threads_content_publish``; ``token_expires_at`` drives the
refresh (``th_refresh_token`` when it expires within the long-lived margin, or after a
first code-190 failure); ``refresh_token`` unused; no metadata keys.

Flow: ``prepare``: every video of every item spooled and checked against Threads' video
rules first (no call for a video Threads would refuse), then the first item's container
(``media_type`` ``TEXT``; ``IMAGE`` with ``image_url`` or ``VIDEO`` with ``video_url``,
each with its ``alt_text``; or ``CAROUSEL`` of 2–20 images and videos, mixed, each child
waited to ``FINISHED``), waited to ``FINISHED`` (bounded poll). ``publish``:
``threads_publish``, then read the ``permalink``. A thread's later items are replies: each
one's container carries ``reply_to_id`` (the item before it), so it is made in ``publish``
under the item's own checkpoints. Option ``reply_control`` (who may reply) goes with every
item. Text: 500 characters, an emoji counting its UTF-8 bytes; at most 5 links
(``_rules.find_urls``): since 2025-12-22 Threads refuses more at container creation
(``THREADS_API__LINK_LIMIT_EXCEEDED``), so such a post is refused before any call.

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
from ..models import Connection, MediaItem, Post, PostItem, PublishResult
from ._rules import find_urls, threads_length
from ._tokens import TokenHolder
from ._video import check_videos, is_video
from .base import (
    UNLIMITED,
    Adapter,
    Item,
    MediaLimit,
    Option,
    PlatformFacts,
    Prepared,
    PublishContext,
    TextLimit,
    VideoLimit,
)
from .graph import ContainerApi, ContainerFlow, long_lived_refresher

MAX_LINKS = 5
# Threads' media specifications: MOV or MP4, HEVC or H264, AAC, 1 GB, up to 5 minutes,
# 23-60 frames per second, at most 1920 columns, 25 Mbit/s.
VIDEO = VideoLimit(
    ("mp4", "mov"), ("h264", "hevc"), ("aac",), max_bytes=1_000_000_000, max_seconds=300, max_width=1920,
    min_frame_rate=23, max_frame_rate=60, max_bitrate=25_000_000, per_post=20,
)
REPLY_CONTROL = ("everyone", "accounts_you_follow", "mentioned_only", "parent_post_author_only", "followers_only")
THREAD = 25  # the daemon's bound on one post's chain; Threads allows 1,000 replies a day


class ThreadsAdapter(Adapter):
    # Pacing: 250 API-published posts per profile per rolling 24 h (threads_publishing_limit),
    # a per-profile quota: 1 container flow in flight per profile, no app-wide bound.
    facts = PlatformFacts(
        "threads", "Threads", idempotent=True, api_base="https://graph.threads.net", concurrency=(UNLIMITED, 1),
        text=(TextLimit(500, threads_length),), media=MediaLimit(20, video=VIDEO, mixed=True, alt_text=True),
        thread=THREAD,
        options=(Option("reply_control", "string", REPLY_CONTROL, "who may reply to each post of the thread"),),
        dedupe_window_seconds=23 * 3600,  # the checkpointed container expires after 24 h
    )

    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client)
        self.root = self.base

    def validate_item(self, item: PostItem, what: str) -> None:
        super().validate_item(item, what)
        links = len(find_urls(item.content))
        if links > MAX_LINKS:
            raise ContentRejectedError(f"Threads allows at most {MAX_LINKS} links per post; {what} has {links}")

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        flow = await self._flow(connection, ctx)

        async def build() -> Mapping[str, str]:
            await check_videos(ctx, self.facts.display, VIDEO, post.items)
            return await self._fields(flow, post, post.items[0], ctx)

        await flow.prepare(ctx.state, ctx, build)
        return {}  # the container is the item's own checkpoint

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        flow = await self._flow(connection, ctx)
        if item.reply_to is None:
            return await flow.publish(item, ctx)
        parent = item.reply_to.parent.platform_post_id
        if not parent:
            raise ContentRejectedError(f"Threads: the id of item {item.index} is unknown; item {item.number} "
                                       "cannot reply to it")

        async def build() -> Mapping[str, str]:
            fields = await self._fields(flow, post, PostItem(item.content, item.media), ctx)
            return {**fields, "reply_to_id": parent}

        return await flow.publish(item, ctx, build)

    async def _fields(self, flow: ContainerFlow, post: Post, item: PostItem, ctx: PublishContext) -> dict[str, str]:
        options = {k: str(v) for k, v in post.options.items()}
        if not item.media:
            return {"media_type": "TEXT", "text": item.content, **options}
        fields = await flow.media_fields(item.media, ctx, _part)
        return {**fields, "text": item.content, **options}
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
            "threads", "threads_publish", "status", "text", reply_edge="replies",
        )
        return ContainerFlow(api, self.client, holder, self.settings)


def _part(media: MediaItem, url: str, child: bool) -> dict[str, str]:
    """One image's or video's container fields (a carousel child's too), with its alt text."""
    fields = {"media_type": "VIDEO", "video_url": url} if is_video(media) else {"media_type": "IMAGE", "image_url": url}
    return {**fields, "alt_text": media.alt} if media.alt else fields
