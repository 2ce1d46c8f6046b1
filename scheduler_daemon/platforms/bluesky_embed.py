"""What a Bluesky post embeds, built before the record is written: up to four images
(``app.bsky.embed.images``, each with its alt text), or one video
(``app.bsky.embed.video``), or, for a post without media, a link card for its first link
(``app.bsky.embed.external``).

The blobs go to the account's PDS with ``com.atproto.repo.uploadBlob`` (the adapter's
``Upload``): images as bytes. A video is checked against ``VIDEO``, then streamed from its
spool through Bluesky's video service (the adapter's ``VideoUpload``, ``bluesky_video``),
which processes it and stores the result on the PDS, so the post goes out playable.

Blobs are made in ``prepare``, ahead of the instant, and a PDS keeps a blob no record
references only for a while: the atproto blob spec (atproto.com/specs/blob, "Usage and
Implementation Guidelines") recommends "several hours of grace time before garbage
collecting, with at least one hour a firm lower bound". ``stale(record, prepared)`` says
when a prepared record's blobs are older than ``BLOB_KEEP_SECONDS`` (45 min, inside that
hour): its item is then prepared anew (uploaded again) before the record is written. With
the default ``SCHEDULER_PREPARE_SECONDS`` (300 s) that never happens on time; it does for a
post published long after its preparation (a retry, a daemon that was down).

A card's page and its image come through the daemon's media path (``ctx.media_bytes``:
outbound rules, size caps), within ``CARD_SECONDS``; a card that cannot be made is left
out, it never fails the post.
"""

from __future__ import annotations

import asyncio
import time
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

BLOB_KEEP_SECONDS = 45 * 60  # a prepared blob older than this is uploaded again (see above)
PREPARED_AT = "prepared_at"  # Prepared key: epoch seconds when the blobs' preparation began

# (bytes or a spooled file, MIME type, what) → the blob the PDS answered
Upload = Callable[[bytes | MediaFile, str, str], Awaitable[dict[str, Any]]]
# (the checked video's spool, its media item, what) → the blob of the processed video
VideoUpload = Callable[[MediaFile, MediaItem, str], Awaitable[dict[str, Any]]]


async def media_embed(
    ctx: PublishContext, media: Sequence[MediaItem], upload: Upload, video: VideoUpload, what: str
) -> dict[str, Any]:
    """The embed of an item's media: its video (alone, as validate made sure) or its images."""
    if len(media) == 1 and is_video(media[0]):
        return await _video(ctx, media[0], video, what)
    images = []
    for item in media:
        content, mime = await ctx.media_bytes(item, IMAGE_BYTES)
        images.append({"alt": item.alt or "", "image": await upload(content, mime, "Bluesky image upload")})
    return {"$type": "app.bsky.embed.images", "images": images}


async def _video(ctx: PublishContext, item: MediaItem, video: VideoUpload, what: str) -> dict[str, Any]:
    async with checked_video(ctx, "Bluesky", VIDEO, item, what) as file:
        embed: dict[str, Any] = {"$type": "app.bsky.embed.video", "video": await video(file, item, what)}
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


def stale(record: dict[str, Any], prepared: dict[str, Any]) -> float | None:
    """How old a prepared record's blobs are, when older than ``BLOB_KEEP_SECONDS`` (else
    None; also for a record without blobs, or prepared before the time was kept)."""
    embed = record.get("embed") or {}
    has_blobs = bool(embed.get("images") or embed.get("video") or (embed.get("external") or {}).get("thumb"))
    made = prepared.get(PREPARED_AT)
    if not has_blobs or not isinstance(made, (int, float)) or isinstance(made, bool):
        return None
    age = time.time() - made
    return age if age > BLOB_KEEP_SECONDS else None


def _linked(url: str) -> MediaItem:
    """A page or picture a post links to, fetched through the media path like any media."""
    return MediaItem(url=url, storage_path=None, alt=None, mime=None)
