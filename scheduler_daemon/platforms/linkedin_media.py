"""LinkedIn's media uploads, which publish nothing: the Images API and the Videos API.

* an image: ``POST /rest/images?action=initializeUpload`` ``{owner}`` → ``uploadUrl`` and
  the image URN; one ``PUT`` of the bytes; a bounded poll of ``GET /rest/images/{urn}``
  until ``AVAILABLE``;
* a video (spooled and checked against ``VIDEO`` first: MP4, H.264, 3 s – 30 min, at most
  500 MB): ``POST /rest/videos?action=initializeUpload`` ``{owner, fileSizeBytes}`` →
  the video URN, an ``uploadToken`` and ``uploadInstructions`` (one ``uploadUrl`` per byte
  range ``firstByte``–``lastByte``); each range ``PUT`` streamed from the file, its
  ``ETag`` kept; ``POST /rest/videos?action=finalizeUpload`` ``{video, uploadToken,
  uploadedPartIds}`` (the ETags, in order); a bounded poll of ``GET /rest/videos/{urn}``
  until ``AVAILABLE`` (``PROCESSING_FAILED`` refuses the post).

Each returns the ``content.media`` entry of the post: ``{"id": urn}`` plus ``altText``. A
finalized video's URN is checkpointed before the wait, so a retry after a wait that ran out
of time waits again instead of uploading the video again.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx

from ..config.platforms import PlatformSettings
from ..errors import ContentRejectedError, TransientError
from ..mediafile import MediaFile
from ..models import MediaItem
from ._calls import json_object, poll, text_field
from ._http import Classifier, call
from ._tokens import TokenHolder
from ._video import checked_video
from .base import PublishContext, VideoLimit

__all__ = ["VIDEO", "LinkedInMedia"]

# The Videos API's "Video specifications": MP4, 3 seconds to 30 minutes, 75 KB to 500 MB;
# H.264 with AAC sound is what LinkedIn's video specs name.
VIDEO = VideoLimit(("mp4",), ("h264",), ("aac",), max_bytes=500_000_000, min_bytes=75_000,
                   min_seconds=3, max_seconds=1_800)
UPLOADED = "video_uploaded"  # publish_state: a finalized video's URN, and what it was made from
Requester = Callable[..., httpx.Request]  # (holder, method, url, **kwargs) → a request with LinkedIn's headers


class LinkedInMedia:
    def __init__(
        self, client: httpx.AsyncClient, settings: PlatformSettings, base: str, request: Requester,
        classify: Classifier,
    ) -> None:
        self.client = client
        self.settings = settings
        self.base = base
        self._request = request
        self._classify = classify

    async def image(self, holder: TokenHolder, ctx: PublishContext, author: str, item: MediaItem) -> dict[str, str]:
        data = await self._initialize(holder, "images", {"owner": author}, "LinkedIn image upload")
        upload_url, urn = text_field(data, "value", "uploadUrl"), text_field(data, "value", "image")
        if not upload_url or not urn:
            raise TransientError("LinkedIn image upload: no uploadUrl/image in the answer")
        content, mime = await ctx.media_bytes(item, self.settings.max_media_bytes)
        await call(
            self.client, holder,
            lambda: self.client.build_request(
                "PUT", upload_url, content=content,
                headers={"authorization": f"Bearer {holder.token}", "content-type": mime},
            ),
            self._classify, what="LinkedIn image upload",
        )
        await self._wait_available(holder, "images", urn)
        return _entry(urn, item)

    async def video(
        self, holder: TokenHolder, ctx: PublishContext, author: str, item: MediaItem, source: str
    ) -> dict[str, str]:
        """The video uploaded and AVAILABLE. Its URN is checkpointed (``UPLOADED``, with
        ``source``: the connection and the media) once finalized, so an attempt that ran out
        of time while LinkedIn processed it leaves the next one only the wait."""
        kept = ctx.state.get(UPLOADED)
        if isinstance(kept, dict) and kept.get("source") == source and isinstance(kept.get("urn"), str):
            await self._wait_available(holder, "videos", kept["urn"])
            return _entry(kept["urn"], item)
        urn = await self._upload_video(holder, ctx, author, item)
        await ctx.checkpoint(**{UPLOADED: {"source": source, "urn": urn}})
        await self._wait_available(holder, "videos", urn)
        return _entry(urn, item)

    async def _upload_video(self, holder: TokenHolder, ctx: PublishContext, author: str, item: MediaItem) -> str:
        async with checked_video(ctx, "LinkedIn", VIDEO, item, "this post", self.settings.max_media_file_bytes) as file:
            request = {"owner": author, "fileSizeBytes": file.size, "uploadCaptions": False, "uploadThumbnail": False}
            data = await self._initialize(holder, "videos", request, "LinkedIn video upload")
            value = data.get("value")
            value = value if isinstance(value, dict) else {}
            urn, parts = text_field(value, "video"), value.get("uploadInstructions")
            if not urn or not isinstance(parts, list) or not parts:
                raise TransientError("LinkedIn video upload: no video/uploadInstructions in the answer")
            etags = [await self._part(holder, file, part) for part in parts]
        finalize = {"video": urn, "uploadToken": text_field(value, "uploadToken") or "", "uploadedPartIds": etags}
        await call(
            self.client, holder,
            lambda: self._request(holder, "POST", f"{self.base}/videos", params={"action": "finalizeUpload"},
                                  json={"finalizeUploadRequest": finalize}),
            self._classify, what="LinkedIn video upload",
        )
        return urn

    async def _initialize(self, holder: TokenHolder, kind: str, request: dict[str, Any], what: str) -> dict[str, Any]:
        response = await call(
            self.client, holder,
            lambda: self._request(holder, "POST", f"{self.base}/{kind}", params={"action": "initializeUpload"},
                                  json={"initializeUploadRequest": request}),
            self._classify, what=what,
        )
        return json_object(response)

    async def _part(self, holder: TokenHolder, file: MediaFile, part: Any) -> str:
        """One byte range, streamed from the file; its ETag names it to finalizeUpload."""
        url = text_field(part, "uploadUrl") if isinstance(part, dict) else None
        first, last = (part.get("firstByte"), part.get("lastByte")) if isinstance(part, dict) else (None, None)
        if not url or not isinstance(first, int) or not isinstance(last, int) or not 0 <= first <= last < file.size:
            raise TransientError("LinkedIn video upload: an upload instruction LinkedIn sent is malformed")
        headers = {"authorization": f"Bearer {holder.token}", "content-type": "application/octet-stream",
                   "content-length": str(last - first + 1)}
        response = await call(
            self.client, holder,
            lambda: self.client.build_request("PUT", url, content=file.chunks(start=first, end=last + 1),
                                              headers=headers),
            self._classify, what="LinkedIn video upload",
        )
        etag: str | None = response.headers.get("etag")
        if not etag:
            raise TransientError("LinkedIn video upload: a part's answer had no ETag")
        return etag

    async def _wait_available(self, holder: TokenHolder, kind: str, urn: str) -> None:
        url = f"{self.base}/{kind}/{urllib.parse.quote(urn, safe='')}"
        noun = kind.removesuffix("s")

        async def available() -> bool:
            response = await call(
                self.client, holder, lambda: self._request(holder, "GET", url), self._classify,
                what=f"LinkedIn {noun} status",
            )
            status = text_field(json_object(response), "status")
            if status in ("PROCESSING_FAILED", "FAILED"):
                reason = text_field(json_object(response), "processingFailureReason")
                why = f" ({reason})" if reason else ""
                raise ContentRejectedError(f"LinkedIn could not process the {noun}{why}")
            return status == "AVAILABLE"

        await poll(
            available, interval=self.settings.media_poll_interval_seconds,
            timeout=self.settings.media_poll_timeout_seconds, what=f"LinkedIn {noun}",
        )


def _entry(urn: str, item: MediaItem) -> dict[str, str]:
    entry = {"id": urn}
    if item.alt:
        entry["altText"] = item.alt
    return entry
