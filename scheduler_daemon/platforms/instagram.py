"""Instagram content publishing (Graph API containers).

Connection row: ``account_id`` = the Instagram professional account id (IG user id);
``access_token`` = a user token with ``instagram_content_publish``; ``metadata.login`` =
``"instagram"`` for an Instagram-Login token (graph.instagram.com; refreshed with
``ig_refresh_token`` when it expires within the long-lived margin, or after a first
code-190 failure) or ``"facebook"`` (default: graph.facebook.com, no refresh; reconnect
when it expires). ``token_expires_at`` drives the refresh.

Flow: ``prepare``: every video spooled and checked against the Reels rules first (no call
for a video Instagram would refuse); one image → a container with ``image_url``,
``caption`` and ``alt_text``; one video → a ``REELS`` container (``video_url``, the
``share_to_feed`` and ``thumb_offset`` options); 2–10 images and videos, mixed → child
containers (``is_carousel_item``; ``VIDEO`` for a video, ``alt_text`` for an image), each
waited to ``FINISHED``, and a ``CAROUSEL`` parent; wait for ``FINISHED`` (bounded poll).
``publish``: ``media_publish``, then read the ``permalink``. ``comment``: the first
comment, ``POST /{media-id}/comments``. No text-only posts. Alt text goes with images only
(Instagram takes none for Reels).

Settings: ``SCHEDULER_INSTAGRAM_API_BASE`` (default ``https://graph.facebook.com``),
``SCHEDULER_INSTAGRAM_LOGIN_API_BASE`` (default ``https://graph.instagram.com``),
``SCHEDULER_GRAPH_API_VERSION``, media poll interval/timeout, long-lived refresh margin.
Exactly-once: the container id is checkpointed before ``media_publish``; a retry checks
its status and never publishes a ``PUBLISHED`` container again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from ..config.platforms import PlatformSettings
from ..errors import ContentRejectedError, InvalidPostError, PlatformConfigError
from ..models import Connection, MediaItem, Post, PostItem, PublishResult
from ._http import Ready
from ._rules import check_alt_text, check_length, check_media
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
from .graph import ContainerApi, ContainerFlow, Part, long_lived_refresher, publish_request

MAX_HASHTAGS = 30
_HASHTAG = re.compile(r"(?<!\w)#\w+")
# Reels, as the IG User Media reference states them: MOV or MP4, HEVC or H264, AAC, 300 MB,
# 3 s to 15 min, 23-60 frames per second, at most 1920 columns.
VIDEO = VideoLimit(
    ("mp4", "mov"), ("h264", "hevc"), ("aac",), max_bytes=300_000_000, min_seconds=3, max_seconds=900,
    max_width=1920, min_frame_rate=23, max_frame_rate=60, per_post=10,
)


class InstagramAdapter(Adapter):
    # Pacing: the documented limit is per account, a publishing quota of posts per rolling
    # 24 h (GET /{ig-user-id}/content_publishing_limit, quota_total; a carousel is one) that
    # no app-wide bound enforces: 1 container flow in flight per account, none app-wide
    # (5 per app serialized every tenant's burst: bench/RESULTS.md, media burst).
    facts = PlatformFacts(
        "instagram", "Instagram", idempotent=True, api_base="https://graph.facebook.com", concurrency=(UNLIMITED, 1),
        text=(TextLimit(2_200),), media=MediaLimit(10, video=VIDEO, mixed=True, alt_text=True),
        first_comment=TextLimit(2_200),
        options=(
            Option("share_to_feed", "boolean", description="a Reel also shows in the feed"),
            Option("thumb_offset", "integer", description="the Reel's cover frame, in milliseconds"),
        ),
        dedupe_window_seconds=23 * 3600,  # the checkpointed container expires after 24 h
    )

    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client)
        self.facebook_root = self.base
        self.instagram_root = settings.api_base("instagram_login", "https://graph.instagram.com")

    def validate(self, post: Post) -> None:
        super().validate(post)
        if post.options and not (len(post.media) == 1 and is_video(post.media[0])):
            keys = ", ".join(sorted(post.options))
            raise InvalidPostError(
                f"platform_options: {keys} apply to a Reel (a post of one video); this post is not one"
            )

    def validate_item(self, item: PostItem, what: str) -> None:
        [caption] = self.facts.text
        check_length(self.facts.display, len(item.content), caption.limit, what=what)
        hashtags = len(_HASHTAG.findall(item.content))
        if hashtags > MAX_HASHTAGS:
            raise ContentRejectedError(f"Instagram allows {MAX_HASHTAGS} hashtags; this caption has {hashtags}")
        assert self.facts.media is not None
        check_media(self.facts.display, item.media, max_items=self.facts.media.max_items, video=True)
        check_alt_text(self.facts.display, item.media, self.facts.media.alt_text_max, what)
        if not item.media:
            raise ContentRejectedError("Instagram needs at least one image or video: it has no text-only posts")

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        flow = await self._flow(connection, ctx)

        async def build() -> Mapping[str, str]:
            await check_videos(ctx, self.facts.display, VIDEO, post.items)
            fields = await flow.media_fields(post.media, ctx, self._part(post))
            return {**fields, "caption": post.content}

        await flow.prepare(ctx.state, ctx, build)
        return {}  # the container is the item's own checkpoint

    def _part(self, post: Post) -> Part:
        options = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in post.options.items()}

        def part(media: MediaItem, url: str, child: bool) -> dict[str, str]:
            if is_video(media):
                return {"media_type": "VIDEO", "video_url": url} if child else {
                    "media_type": "REELS", "video_url": url, **options}
            return {"image_url": url, **({"alt_text": media.alt} if media.alt else {})}

        return part

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        flow = await self._flow(connection, ctx)
        return await flow.publish(item, ctx)

    async def comment(
        self, post: Post, on: PublishResult, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        if not on.platform_post_id:
            raise ContentRejectedError("Instagram: the post's media id is unknown; the comment has nothing to go under")
        flow = await self._flow(connection, ctx)
        comment_id = await flow.comment(on.platform_post_id, post.first_comment or "")
        return PublishResult(comment_id, on.platform_post_url)

    def build(self, post: Post, connection: Connection, state: Mapping[str, Any]) -> Ready | None:
        """``media_publish`` for the container prepared ahead (``delivery.build_ahead``): sent
        at the instant unless the token was refreshed or the container made anew meanwhile."""
        if not connection.account_id:
            return None
        return publish_request(self.client, self._api(connection), connection.access_token or "", state)

    def _api(self, connection: Connection) -> ContainerApi:
        assert connection.account_id
        root = self.instagram_root if connection.metadata.get("login") == "instagram" else self.facebook_root
        return ContainerApi(
            self.name, f"{root}/{self.settings.graph_api_version}", connection.account_id,
            "media", "media_publish", "status_code", "caption",
        )

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
        return ContainerFlow(self._api(connection), self.client, holder, self.settings)
