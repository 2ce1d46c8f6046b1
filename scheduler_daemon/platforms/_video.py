"""A video as an adapter takes it: spooled to a private temporary file (never held whole in
memory), refused with the platform's own size rule when the download passes it, then
checked against the platform's declared ``VideoLimit`` before anything is sent.

* ``is_video(item)``: whether a media item is a video, by its ``mime`` (``video/…``) or,
  without one, by its file name (``.mp4``, ``.mov``, ``.m4v``): the choice of an upload
  flow has to be made before the bytes arrive.
* ``checked_video(ctx, item, display, limit, what)``: the spooled, probed ``MediaFile``
  (freed on exit) once ``base.check_video`` passed it. The download is capped at the
  platform's ``max_bytes``, so a video over it costs at most that much to refuse.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ..errors import ContentRejectedError
from ..mediafile import MediaFile
from ..models import MediaItem
from .base import PublishContext, VideoLimit, check_video

__all__ = ["VIDEO_EXTENSIONS", "checked_video", "is_video"]

VIDEO_EXTENSIONS = frozenset({"mp4", "mov", "m4v"})


def is_video(item: MediaItem) -> bool:
    if item.mime:
        return item.mime.lower().startswith("video/")
    name = (item.storage_path or item.url or "").split("?", 1)[0].rsplit("/", 1)[-1]
    return "." in name and name.rsplit(".", 1)[-1].lower() in VIDEO_EXTENSIONS


@contextlib.asynccontextmanager
async def checked_video(
    ctx: PublishContext, item: MediaItem, display: str, limit: VideoLimit, what: str, cap: int
) -> AsyncIterator[MediaFile]:
    """The item spooled (at most ``limit.max_bytes``, else ``cap``) and checked by ``limit``."""
    most = limit.max_bytes or cap
    async with contextlib.AsyncExitStack() as stack:
        try:
            file = await stack.enter_async_context(ctx.media_file(item, most))
        except ContentRejectedError as exc:
            if limit.max_bytes is None or "larger than" not in str(exc):
                raise
            # The download stopped at the platform's limit: say the platform's rule.
            raise ContentRejectedError(
                f"{display} takes videos up to {limit.max_bytes / 1e6:g} MB; the video of {what} is larger"
            ) from exc
        check_video(display, limit, file, what)
        yield file
