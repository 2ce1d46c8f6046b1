"""What a Bluesky post embeds, built before the record is written: up to four images
(``app.bsky.embed.images``, each with its alt text), or one video
(``app.bsky.embed.video``), or, for a post without media, a link card for its first link
(``app.bsky.embed.external``).

The blobs go to the account's PDS with ``com.atproto.repo.uploadBlob`` (the adapter's
``Upload``): images as bytes, a video streamed from its spool after it was checked against
``VIDEO``. That is the simple method of Bluesky's video guide: the PDS stores the blob and
Bluesky's video service processes it once the post is out.

A card's page and its image come through the daemon's media path (``ctx.media_bytes``:
outbound rules, size caps), within ``CARD_SECONDS``; a card that cannot be made is left
out, it never fails the post.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..errors import PublishError
from ..mediafile import MediaFile
from ..models import MediaItem
from ._video import checked_video, is_video
from .base import PublishContext, VideoLimit
from .bluesky_card import page_card

IMAGE_BYTES = 2_000_000  # app.bsky.embed.images lexicon
THUMB_BYTES = 1_000_000  # app.bsky.embed.external lexicon
PAGE_BYTES = 1_000_000  # a link card's page: the head is what counts
CARD_SECONDS = 5.0  # a card is a nicety: it never holds a post longer than this
# app.bsky.embed.video lexicon: "The mp4 video file. May be up to 300mb" (accept video/mp4);
# Bluesky's announcement of 2026-08-25: videos up to 10 minutes. The codecs are those its
# video service transcodes from; the lexicon names none.
VIDEO = VideoLimit(("mp4",), ("h264", "hevc", "av1", "vp9"), ("aac", "mp3", "opus"), max_bytes=300_000_000,
                   max_seconds=600)

# (bytes or a spooled file, MIME type, what) → the blob the PDS answered
Upload = Callable[[bytes | MediaFile, str, str], Awaitable[dict[str, Any]]]


async def media_embed(ctx: PublishContext, media: Sequence[MediaItem], upload: Upload, what: str) -> dict[str, Any]:
    """The embed of an item's media: its video (alone, as validate made sure) or its images."""
    if len(media) == 1 and is_video(media[0]):
        return await _video(ctx, media[0], upload, what)
    images = []
    for item in media:
        content, mime = await ctx.media_bytes(item, IMAGE_BYTES)
        images.append({"alt": item.alt or "", "image": await upload(content, mime, "Bluesky image upload")})
    return {"$type": "app.bsky.embed.images", "images": images}


async def _video(ctx: PublishContext, item: MediaItem, upload: Upload, what: str) -> dict[str, Any]:
    async with checked_video(ctx, "Bluesky", VIDEO, item, what) as file:
        embed: dict[str, Any] = {
            "$type": "app.bsky.embed.video", "video": await upload(file, "video/mp4", "Bluesky video upload"),
        }
        facts = file.video
    if item.alt:
        embed["alt"] = item.alt
    if facts is not None and facts.width and facts.height:  # lets clients size the player before it loads
        embed["aspectRatio"] = {"width": facts.width, "height": facts.height}
    return embed


async def link_card(ctx: PublishContext, uri: str, upload: Upload) -> dict[str, Any] | None:
    """``app.bsky.embed.external`` for ``uri``, or None (never an error)."""
    try:
        async with asyncio.timeout(CARD_SECONDS):
            html, mime = await ctx.media_bytes(_linked(uri), PAGE_BYTES)
            card = page_card(html, uri) if mime in ("text/html", "application/xhtml+xml") else None
            if card is None:
                return None
            external: dict[str, Any] = {"uri": uri, "title": card.title, "description": card.description}
            if card.image:
                try:
                    image, image_mime = await ctx.media_bytes(_linked(card.image), THUMB_BYTES)
                    if image_mime.startswith("image/"):
                        external["thumb"] = await upload(image, image_mime, "Bluesky card image")
                except PublishError:
                    pass  # a card without its picture
            return {"$type": "app.bsky.embed.external", "external": external}
    except (PublishError, TimeoutError):
        return None


def _linked(url: str) -> MediaItem:
    """A page or picture a post links to, fetched through the media path like any media."""
    return MediaItem(url=url, storage_path=None, alt=None, mime=None)
