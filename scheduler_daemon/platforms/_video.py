"""Video and other large files as an adapter takes them: spooled to a private temporary
file (never held whole in memory), refused with the platform's own size rule when the
download passes it, and a video checked against the platform's declared ``VideoLimit``
before anything is sent.

* ``is_video(item)``: whether a media item is a video, by its ``mime`` (``video/…``) or,
  without one, by its file name (``.mp4``, ``.mov``, ``.m4v``): the choice of an upload
  flow has to be made before the bytes arrive.
* ``spooled(ctx, item, cap, rule, what)``: the item spooled and probed (freed on exit), at
  most ``cap`` bytes; past it the refusal states ``rule`` ("Discord takes files up to
  10 MiB"), so a file over the platform's limit costs at most that much to refuse.
* ``checked_video(ctx, item, display, limit, what, cap)``: ``spooled`` at the limit's
  ``max_bytes`` (else ``cap``), then ``base.check_video``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ..errors import ContentRejectedError
from ..mediafile import MediaFile
from ..models import MediaItem
from .base import PublishContext, VideoLimit, check_video

__all__ = ["VIDEO_EXTENSIONS", "checked_video", "is_video", "spooled"]

VIDEO_EXTENSIONS = frozenset({"mp4", "mov", "m4v"})


def is_video(item: MediaItem) -> bool:
    if item.mime:
        return item.mime.lower().startswith("video/")
    name = (item.storage_path or item.url or "").split("?", 1)[0].rsplit("/", 1)[-1]
    return "." in name and name.rsplit(".", 1)[-1].lower() in VIDEO_EXTENSIONS


@contextlib.asynccontextmanager
async def spooled(
    ctx: PublishContext, item: MediaItem, cap: int, rule: str | None, what: str, kind: str = "file"
) -> AsyncIterator[MediaFile]:
    """The item spooled, at most ``cap`` bytes; past it refused by ``rule`` (None: the
    daemon's own cap, whose message stands)."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            file = await stack.enter_async_context(ctx.media_file(item, cap))
        except ContentRejectedError as exc:
            if rule is None or "larger than" not in str(exc):
                raise
            # The download stopped at the platform's limit: say the platform's rule.
            raise ContentRejectedError(f"{rule}; the {kind} of {what} is larger") from exc
        yield file


@contextlib.asynccontextmanager
async def checked_video(
    ctx: PublishContext, item: MediaItem, display: str, limit: VideoLimit, what: str, cap: int
) -> AsyncIterator[MediaFile]:
    """The item spooled (at most ``limit.max_bytes``, else ``cap``) and checked by ``limit``."""
    rule = f"{display} takes videos up to {limit.max_bytes / 1e6:g} MB" if limit.max_bytes else None
    async with spooled(ctx, item, limit.max_bytes or cap, rule, what, "video") as file:
        check_video(display, limit, file, what)
        yield file
