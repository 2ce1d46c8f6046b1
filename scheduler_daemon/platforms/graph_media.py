"""The media of a Meta Graph post (Facebook, Instagram, Threads): which items are videos,
and each video checked against the platform's documented limits before any call.

Instagram and Threads fetch a video from its URL themselves, and Facebook takes its bytes,
but all three refuse a bad video only after an upload or a container and a processing wait
of minutes. So every video of every item is downloaded to the spool (``ctx.media_file``:
never held in memory) and probed first, and one the platform would refuse ends the post with
the platform's rule in the message before anything is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from ..errors import ContentRejectedError
from ..mediafile import MediaFile
from ..models import MediaItem, PostItem
from .base import PublishContext, VideoLimit, check_video, describe

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v")
UNSTATED_CAP = 10**12  # no stated size limit: SCHEDULER_MAX_MEDIA_FILE_BYTES caps the download


def is_video(item: MediaItem) -> bool:
    """A video by its declared MIME type, else by its file name (a frontend may omit ``mime``)."""
    mime = (item.mime or "").lower()
    if mime:
        return mime.startswith("video/")
    source = (item.storage_path or item.url or "").split("?", 1)[0].lower()
    return source.endswith(VIDEO_EXTENSIONS)


@contextlib.asynccontextmanager
async def checked_video(
    ctx: PublishContext, display: str, limit: VideoLimit | None, item: MediaItem, what: str
) -> AsyncIterator[MediaFile]:
    """The video spooled and checked against ``limit``; a file over the size limit is
    refused by the platform's rule (the spool stops one byte past it)."""
    if limit is None:
        raise ContentRejectedError(f"{display} takes no video here; {what} has one")
    cap = limit.max_bytes + 1 if limit.max_bytes else UNSTATED_CAP
    async with contextlib.AsyncExitStack() as stack:
        try:
            file = await stack.enter_async_context(ctx.media_file(item, cap))
        except ContentRejectedError as exc:
            if limit.max_bytes and "larger than" in str(exc):
                rule = f"videos up to {limit.max_bytes / 1e6:g} MB"
                raise ContentRejectedError(f"{display} takes {rule}; the video of {what} is larger") from exc
            raise
        check_video(display, limit, file, what)
        yield file


async def check_videos(ctx: PublishContext, display: str, limit: VideoLimit | None, items: Sequence[PostItem]) -> None:
    """Every video of every item, before the first call of the post."""
    for index, item in enumerate(items):
        for media in item.media:
            if is_video(media):
                async with checked_video(ctx, display, limit, media, describe(index, len(items))):
                    pass
