"""A Facebook Page's video that is not a Reel, through the Video API ("Publish with the
Video API") and the Resumable Upload API ("Upload a file"). It needs the Meta app's id
(``SCHEDULER_FACEBOOK_CLIENT_ID``): the upload session belongs to the app.

::

    prepare   POST /{app_id}/uploads  file_name file_length file_type=video/mp4
                                                      → {"id": "upload:<session>"}
                   checkpoint fb_upload = {session, length}        (before any byte is sent)
              POST /upload:<session>  headers Authorization: OAuth <token>, file_offset: <n>,
                   body: the spooled file from byte n, streamed in chunks  → {"h": <handle>}
              interrupted (a reset, a lost answer, a 5xx), or resumed after a crash:
              GET /upload:<session>  → {"file_offset": <n>}: the bytes the server holds;
                   the upload goes on from there (a session the server no longer knows is
                   started anew)
    publish   POST {graph-video host}/{page}/videos  description
                   fbuploader_video_file_chunk=<handle>            → {"id": <video id>}
                   checkpoint fb_video_id                          (the create call)
              GET /{video_id}?fields=status  until video_status is ready (bounded poll):
                   error → the platform's reason, and the checkpoint is dropped (that video
                   never shows); still processing at the timeout, or a failed read → the
                   video is out all the same (Meta publishes it once processed)

Tokens: the guides show ``access_token=<USER_ACCESS_TOKEN>`` for the upload session and
``Authorization: OAuth <USER_ACCESS_TOKEN>`` for the upload, and the Page access token for
``/{page}/videos``; a connection holds the Page token (issued to the user for the Page),
which is sent for all three; a refusal is Graph's auth error, "reconnect facebook".

Only ``/videos`` makes anything visible, so it is the create call (``creates=True``); the
session, the upload and the reads are retried freely. An attempt after one that created the
video (``fb_video_id`` in the item's state: it crashed before the item was recorded) never
creates it again: it waits for it.

Page videos, as Meta states them: the Resumable Upload API takes ``video/mp4`` only; Page
videos up to 10 GB and 240 minutes; H.264 or H.265 with AAC sound (``facebook.PAGE_VIDEO``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ..config.platforms import PlatformSettings
from ..errors import ContentRejectedError, OutcomeUnknownError, PlatformConfigError, PublishError, TransientError
from ..mediafile import MediaFile
from ..models import MediaItem, PublishResult
from ._calls import json_object, poll, require_id
from ._http import call
from ._tokens import TokenHolder
from .base import Item, PublishContext
from .facebook_reels import phase_status, status_reason
from .graph import classify

SESSION, VIDEO_ID = "fb_upload", "fb_video_id"
UPLOAD_ROUNDS = 3  # interrupted uploads resumed within one attempt before it gives up
APP_ID_SETTING = "SCHEDULER_FACEBOOK_CLIENT_ID"


def video_host(base: str) -> str:
    """The Video API's host for ``/{page}/videos``: graph-video.facebook.com beside Graph's
    own (another base, a staging or test server, is kept as it is)."""
    return base.replace("://graph.facebook.com", "://graph-video.facebook.com", 1)


class VideoFlow:
    def __init__(self, base: str, client: httpx.AsyncClient, holder: TokenHolder, settings: PlatformSettings) -> None:
        self.base = base  # https://graph.facebook.com/v26.0
        self.client = client
        self.holder = holder
        self.settings = settings

    def _classify(self, response: httpx.Response) -> PublishError | None:
        return classify("facebook", response)

    async def _send(self, build: Callable[[], httpx.Request], what: str, *, creates: bool = False) -> dict[str, Any]:
        return json_object(await call(self.client, self.holder, build, self._classify, what=what, creates=creates))

    def _oauth(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"authorization": f"OAuth {self.holder.token}", **(extra or {})}

    # -- prepare: the resumable upload ---------------------------------------------------------

    async def upload(self, app_id: str, file: MediaFile, media: MediaItem, ctx: PublishContext) -> str:
        """The file uploaded to the app's session (resumed where the server has it): its handle."""
        session, offset = await self._session(app_id, file, media, ctx)
        for round_ in range(1, UPLOAD_ROUNDS + 1):
            try:
                return await self._transfer(session, file, offset)
            except (TransientError, OutcomeUnknownError) as exc:  # cut off: the server may hold part of it
                if round_ == UPLOAD_ROUNDS:
                    raise TransientError(f"Facebook video upload interrupted {round_} times: {exc}") from exc
                offset = await self._offset(session)
        raise AssertionError("unreachable")

    async def _session(
        self, app_id: str, file: MediaFile, media: MediaItem, ctx: PublishContext
    ) -> tuple[str, int]:
        """The checkpointed session of this file (same source, same length) and the bytes the
        server holds, or a new one."""
        made_for = {"source": media.storage_path or media.url, "length": file.size}
        saved = ctx.state.get(SESSION)
        if (isinstance(saved, dict) and isinstance(saved.get("session"), str)
                and {k: saved.get(k) for k in made_for} == made_for):
            try:
                offset = await self._offset(saved["session"])
            except (ContentRejectedError, PlatformConfigError):  # expired or unknown: start anew
                offset = None
            if offset is not None and offset < file.size:  # complete without a handle: start anew
                return saved["session"], offset
        url = f"{self.base}/{app_id}/uploads"
        params = {"file_name": file_name(media), "file_length": str(file.size), "file_type": "video/mp4"}
        data = await self._send(
            lambda: self.client.build_request("POST", url, params={**params, "access_token": self.holder.token}),
            "Facebook video upload session",
        )
        session = require_id(data, "id", what="Facebook video upload session")
        if not session.startswith("upload:"):
            raise OutcomeUnknownError("Facebook video upload session: the answer's id is not an upload session")
        await ctx.checkpoint(**{SESSION: {"session": session, **made_for}})
        return session, 0

    async def _offset(self, session: str) -> int:
        url = f"{self.base}/{session}"
        data = await self._send(
            lambda: self.client.build_request("GET", url, headers=self._oauth()), "Facebook video upload status"
        )
        offset = data.get("file_offset")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise TransientError("Facebook video upload status: the answer had no file_offset")
        return offset

    async def _transfer(self, session: str, file: MediaFile, offset: int) -> str:
        url = f"{self.base}/{session}"

        def build() -> httpx.Request:
            headers = self._oauth({"file_offset": str(offset), "content-length": str(file.size - offset)})
            return self.client.build_request("POST", url, headers=headers, content=file.chunks(start=offset))

        data = await self._send(build, "Facebook video upload")
        return require_id(data, "h", what="Facebook video upload")

    # -- publish: the create call, then processing ---------------------------------------------

    async def publish(self, page: str, handle: str, item: Item, ctx: PublishContext) -> PublishResult:
        video_id = item.state.get(VIDEO_ID)
        if not isinstance(video_id, str) or not video_id:
            video_id = await self._create(page, handle, item.content)
            await ctx.checkpoint(**{VIDEO_ID: video_id})
        try:
            await self._wait_ready(video_id)
        except ContentRejectedError:
            await ctx.checkpoint(**{VIDEO_ID: None})  # it never shows: a retry makes it anew
            raise
        except PublishError:
            pass  # still processing, or a read failed: the video exists and is published once processed
        return PublishResult(video_id, f"https://www.facebook.com/{page}/videos/{video_id}")

    async def _create(self, page: str, handle: str, description: str) -> str:
        url = f"{video_host(self.base)}/{page}/videos"
        fields = {"description": description, "fbuploader_video_file_chunk": handle}
        data = await self._send(
            lambda: self.client.build_request("POST", url, data={**fields, "access_token": self.holder.token}),
            "Facebook video", creates=True,
        )
        return require_id(data, "id", what="Facebook video")

    async def _wait_ready(self, video_id: str) -> None:
        url = f"{self.base}/{video_id}"

        async def ready() -> bool:
            data = await self._send(
                lambda: self.client.build_request(
                    "GET", url, params={"fields": "status", "access_token": self.holder.token}
                ),
                "Facebook video status",
            )
            raw = data.get("status")
            status: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
            if status.get("video_status") == "error" or phase_status(status, "processing_phase") == "error":
                raise ContentRejectedError(f"Facebook could not process the video: {status_reason(status)}")
            return status.get("video_status") == "ready"

        await poll(ready, interval=self.settings.media_poll_interval_seconds,
                   timeout=self.settings.media_poll_timeout_seconds, what="Facebook video processing")


def file_name(media: MediaItem) -> str:
    """The name the upload session is told: the source's own, else a neutral one."""
    name = (media.storage_path or media.url or "").split("?", 1)[0].rsplit("/", 1)[-1]
    return name if name.lower().endswith(".mp4") and len(name) <= 100 else "video.mp4"
