"""Video and other large files as an adapter takes them: spooled to a private temporary
file (never held whole in memory), refused with the platform's own size rule when the
download passes it, and a video checked against the platform's declared ``VideoLimit``
before anything is uploaded.

* ``is_video(item)``: whether a media item is a video, by its ``mime`` (``video/…``) or,
  without one, by its file name: the upload flow is chosen before the bytes arrive.
* ``check_one_video``: the rule of the platforms that take one video per post and
  nothing beside it (X, Mastodon, Bluesky, LinkedIn), which ``check_media`` does not cover.
* ``spooled(ctx, item, cap, rule, what)``: the item spooled, at most ``cap`` bytes; past
  it the refusal states ``rule`` ("Discord takes files up to 10 MiB"), so a file over the
  platform's limit costs at most that much to refuse.
* ``spooled_video`` / ``checked_video(ctx, display, limit, item, what)``: ``spooled`` at
  the limit's ``max_bytes`` (else ``cap``), then (checked) ``base.check_video``;
  ``check_videos``: every video of every item of a thread, before its first call.
* ``item_media(prepared, index)``: the media ``prepare`` kept per item of a thread
  (``Prepared["media"]`` is a list, one entry per item; rows prepared before threads
  existed kept ``media_ids`` for the first item).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..errors import ContentRejectedError, MediaTooLargeError
from ..mediafile import MediaFile
from ..models import MediaItem, PostItem
from .base import Prepared, PublishContext, VideoLimit, check_video, describe

__all__ = [
    "VIDEO_EXTENSIONS", "check_one_video", "check_videos", "checked_video", "is_video", "item_media", "spooled",
    "spooled_video",
]

VIDEO_EXTENSIONS = frozenset({"mp4", "mov", "m4v", "webm"})
UNSTATED_CAP = 1 << 62  # no stated size limit: SCHEDULER_MAX_MEDIA_FILE_BYTES caps the download


def is_video(item: MediaItem) -> bool:
    if item.mime:
        return item.mime.lower().startswith("video/")
    name = (item.storage_path or item.url or "").split("?", 1)[0].rsplit("/", 1)[-1]
    return "." in name and name.rsplit(".", 1)[-1].lower() in VIDEO_EXTENSIONS


def check_one_video(display: str, media: Sequence[MediaItem], what: str) -> None:
    """A video goes alone: one video per post and nothing beside it."""
    videos = sum(1 for item in media if is_video(item))
    if videos and len(media) > 1:
        found = f"{what} has {videos} videos" if videos > 1 else f"{what} has a video and {len(media) - 1} more"
        raise ContentRejectedError(f"{display} takes one video per post and nothing beside it; {found}")


@contextlib.asynccontextmanager
async def spooled(
    ctx: PublishContext, item: MediaItem, cap: int, rule: str | None, what: str, kind: str = "file"
) -> AsyncIterator[MediaFile]:
    """The item spooled, at most ``cap`` bytes; past it refused by ``rule`` (None: the
    daemon's own cap, whose message stands)."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            file = await stack.enter_async_context(ctx.media_file(item, cap))
        except MediaTooLargeError as exc:
            if rule is None or exc.limit < cap:  # the daemon's own, lower cap: its message stands
                raise
            # The download stopped at the platform's limit: say the platform's rule.
            raise ContentRejectedError(f"{rule}; the {kind} of {what} is larger") from exc
        yield file


@contextlib.asynccontextmanager
async def spooled_video(
    ctx: PublishContext, display: str, max_bytes: int | None, item: MediaItem, what: str,
    cap: int = UNSTATED_CAP,
) -> AsyncIterator[MediaFile]:
    """The video spooled, unchecked: past ``max_bytes`` (the platform's size limit; None:
    ``cap``) it is refused by the platform's rule."""
    rule = f"{display} takes videos up to {max_bytes / 1e6:g} MB" if max_bytes else None
    async with spooled(ctx, item, max_bytes or cap, rule, what, "video") as file:
        yield file


@contextlib.asynccontextmanager
async def checked_video(
    ctx: PublishContext, display: str, limit: VideoLimit | None, item: MediaItem, what: str,
    cap: int = UNSTATED_CAP,
) -> AsyncIterator[MediaFile]:
    """The video spooled (at most ``limit.max_bytes``, else ``cap``) and checked against
    ``limit`` (None: the platform states no video rule) before the caller uploads it."""
    async with spooled_video(ctx, display, limit.max_bytes if limit else None, item, what, cap) as file:
        if limit is not None:
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


async def check_videos(ctx: PublishContext, display: str, limit: VideoLimit | None, items: Sequence[PostItem]) -> None:
    """Every video of every item, before the first call of the post (None: it takes none)."""
    for index, item in enumerate(items):
        for media in item.media:
            if not is_video(media):
                continue
            what = describe(index, len(items))
            if limit is None:
                raise ContentRejectedError(f"{display} takes no video here; {what} has one")
            async with checked_video(ctx, display, limit, media, what):
                pass
