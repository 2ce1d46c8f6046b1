"""A Facebook Page's video, as a Reel (the Reels Publishing API, Page token only).

::

    prepare   POST /{page}/video_reels upload_phase=start          → video_id, upload_url
              POST upload_url (rupload), the spooled file streamed,
                   headers Authorization: OAuth <token>, offset: 0, file_size: <bytes>
              GET /{video_id}?fields=status  until uploading_phase is complete
                   (bounded poll; error → the platform's reason)
    publish   POST /{page}/video_reels upload_phase=finish video_id video_state=PUBLISHED
                   description                                     → the Reel is posted

Only ``finish`` makes anything visible, so it is the create call (``creates=True``); the
start, the upload and the status reads are retried freely. The Reel is then processed and
appears on the Page; its id is the video id.

Reels first, ``/{page}/videos`` (``facebook_video``) for the rest: that endpoint takes a
handle from the Resumable Upload API, which needs the Meta app's id; the Reels flow needs
only the Page token the connection has.

The Reels API takes 30 API-published Reels per Page in a moving 24 hours. ``ReelsQuota``
counts the Reels this process sent ``finish`` for (a slot is taken before the call and
given back when the answer proves nothing was posted) and paces the next one: a
``RateLimitedError`` whose wait ends when the oldest of them is 24 hours old. It cannot see
Reels posted by hand, by another process or before a restart: Meta's own refusal then is
Graph's rate-limit answer, retried later as any other.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ..config.platforms import PlatformSettings
from ..errors import ContentRejectedError, OutcomeUnknownError, PublishError, RateLimitedError
from ..mediafile import MediaFile
from ..models import PublishResult
from ._calls import json_object, poll, require_id, text_field
from ._http import call
from ._tokens import TokenHolder
from .graph import classify

DAY = 86_400.0


class ReelsQuota:
    """The Reels this process published per Page in the last 24 hours (``limit`` at most)."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._sent: dict[str, deque[float]] = {}

    def _recent(self, page: str) -> deque[float]:
        sent = self._sent.setdefault(page, deque())
        while sent and sent[0] <= self.clock() - DAY:
            sent.popleft()
        return sent

    def check(self, page: str) -> None:
        """Refuse for now (a rate limit with its wait) when the Page has had ``limit`` Reels."""
        sent = self._recent(page)
        if len(sent) >= self.limit:
            wait = sent[0] + DAY - self.clock()
            raise RateLimitedError(
                f"Facebook takes {self.limit} Reels per Page in 24 hours (the Reels API's limit) and this Page"
                f" has had {len(sent)}: the next one waits {wait / 3600:.1f} h", wait,
            )

    def take(self, page: str) -> float:
        self.check(page)
        stamp = self.clock()
        self._sent[page].append(stamp)
        return stamp

    def give_back(self, page: str, stamp: float) -> None:
        sent = self._sent.get(page)
        if sent and stamp in sent:
            sent.remove(stamp)


class ReelsFlow:
    def __init__(
        self, base: str, client: httpx.AsyncClient, holder: TokenHolder, settings: PlatformSettings,
        quota: ReelsQuota,
    ) -> None:
        self.base = base  # https://graph.facebook.com/v26.0
        self.client = client
        self.holder = holder
        self.settings = settings
        self.quota = quota

    def _classify(self, response: httpx.Response) -> PublishError | None:
        return classify("facebook", response)

    async def _send(self, build: Callable[[], httpx.Request], what: str, *, creates: bool = False) -> dict[str, Any]:
        response = await call(self.client, self.holder, build, self._classify, what=what, creates=creates)
        return json_object(response)

    async def _reels(self, page: str, fields: Mapping[str, str], what: str, *, creates: bool) -> dict[str, Any]:
        url = f"{self.base}/{page}/video_reels"
        return await self._send(
            lambda: self.client.build_request("POST", url, data={**fields, "access_token": self.holder.token}),
            what, creates=creates,
        )

    async def upload(self, page: str, file: MediaFile) -> str:
        """Start a session, stream the file to it, wait for the upload to complete: the video id."""
        self.quota.check(page)  # no upload for a Reel that would have to wait a day anyway
        started = await self._reels(page, {"upload_phase": "start"}, "Facebook Reel upload session", creates=False)
        video_id = require_id(started, "video_id", what="Facebook Reel upload session")
        upload_url = text_field(started, "upload_url") or ""
        if not upload_url.startswith("https://"):
            raise OutcomeUnknownError("Facebook Reel upload session: the answer had no https upload_url")

        def build() -> httpx.Request:
            headers = {"authorization": f"OAuth {self.holder.token}", "offset": "0",
                       "file_size": str(file.size), "content-length": str(file.size)}
            return self.client.build_request("POST", upload_url, headers=headers, content=file.chunks())

        await self._send(build, "Facebook Reel upload")
        await self._wait_uploaded(video_id)
        return video_id

    async def _wait_uploaded(self, video_id: str) -> None:
        url = f"{self.base}/{video_id}"

        async def uploaded() -> bool:
            data = await self._send(
                lambda: self.client.build_request(
                    "GET", url, params={"fields": "status", "access_token": self.holder.token}
                ),
                "Facebook Reel status",
            )
            raw = data.get("status")
            status: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
            if status.get("video_status") == "error" or phase_status(status, "uploading_phase") == "error":
                raise ContentRejectedError(f"Facebook could not process the video: {status_reason(status)}")
            return phase_status(status, "uploading_phase") == "complete"

        await poll(uploaded, interval=self.settings.media_poll_interval_seconds,
                   timeout=self.settings.media_poll_timeout_seconds, what="Facebook Reel upload")

    async def publish(self, page: str, video_id: str, description: str) -> PublishResult:
        fields = {"upload_phase": "finish", "video_id": video_id, "video_state": "PUBLISHED",
                  "description": description}
        stamp = self.quota.take(page)
        try:
            data = await self._reels(page, fields, "Facebook Reel", creates=True)
        except PublishError as exc:
            if not isinstance(exc, OutcomeUnknownError):  # refused: the Reel is not out
                self.quota.give_back(page, stamp)
            raise
        if data.get("success") is not True:
            raise OutcomeUnknownError("Facebook Reel: the answer did not say success; check the Page")
        return PublishResult(video_id, f"https://www.facebook.com/reel/{video_id}")


def phase_status(status: Mapping[str, Any], name: str) -> str | None:
    """The ``status`` of one phase (uploading, processing, publishing) of a video's status."""
    phase = status.get(name)
    return str(phase.get("status")) if isinstance(phase, dict) and phase.get("status") else None


def status_reason(status: Mapping[str, Any]) -> str:
    """The platform's words for a video that failed: its first phase error."""
    for name in ("uploading_phase", "processing_phase", "publishing_phase"):
        phase = status.get(name)
        errors = phase.get("errors") if isinstance(phase, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message") or errors[0].get("code"))[:300]
    return str(status.get("video_status") or "error")
