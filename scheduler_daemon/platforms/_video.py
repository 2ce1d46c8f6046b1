"""Video and per-item media for the adapters that publish threads of posts with media
(X, Mastodon, Bluesky): which media item is a video, one post's media rules that the
generic ``check_media`` does not cover (one video, alone), and a spooled video checked
against the platform's limits before anything is uploaded.

``prepare`` of these adapters uploads the media of every item of the thread and keeps
them per item: ``Prepared["media"]`` is a list (one entry per item) of the adapter's own
media entries; ``item_media`` reads it back, and reads rows prepared before threads
existed (``media_ids`` for the first item) the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..errors import ContentRejectedError
from ..mediafile import MediaFile
from ..models import MediaItem
from .base import Prepared, PublishContext, VideoLimit, check_video

_VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm")
_TOO_LARGE = " is larger than "


def is_video(item: MediaItem) -> bool:
    """The item is a video: its MIME type says so, or (none given) its file name does."""
    if item.mime:
        return item.mime.startswith("video/")
    source = (item.storage_path or item.url or "").split("?", 1)[0].lower()
    return source.endswith(_VIDEO_SUFFIXES)


def check_one_video(display: str, media: Sequence[MediaItem], what: str) -> None:
    """A video goes alone: X, Mastodon and Bluesky take one video per post and nothing beside it."""
    videos = sum(1 for item in media if is_video(item))
    if videos and len(media) > 1:
        found = f"{what} has {videos} videos" if videos > 1 else f"{what} has a video and {len(media) - 1} more"
        raise ContentRejectedError(f"{display} takes one video per post and nothing beside it; {found}")


@contextlib.asynccontextmanager
async def checked_video(
    ctx: PublishContext, display: str, limit: VideoLimit | None, item: MediaItem, what: str
) -> AsyncIterator[MediaFile]:
    """The video spooled (capped just past the platform's size: a larger one is refused with
    the platform's rule, not only the daemon's cap) and checked against ``limit`` before the
    caller uploads anything of it."""
    largest = limit.max_bytes if limit is not None else None
    async with contextlib.AsyncExitStack() as stack:
        try:
            file = await stack.enter_async_context(ctx.media_file(item, largest + 1 if largest else 1 << 62))
        except ContentRejectedError as exc:
            # The media path says "… is larger than N bytes" past the cap; any other refusal
            # (a 404, a bad redirect) is its own and stands as it is.
            if not largest or _TOO_LARGE not in str(exc):
                raise
            raise ContentRejectedError(
                f"{display} takes videos up to {largest / 1e6:g} MB; the video of {what}: {exc}"
            ) from exc
        check_video(display, limit, file, what)
        yield file


def item_media(prepared: Prepared, index: int) -> list[Any]:
    """The media ``prepare`` kept for item ``index`` (0: the post)."""
    per_item = prepared.get("media")
    if isinstance(per_item, list):
        entry = per_item[index] if index < len(per_item) else []
        return list(entry) if isinstance(entry, list) else []
    legacy = prepared.get("media_ids") if index == 0 else None  # prepared before threads
    return list(legacy) if isinstance(legacy, list) else []
