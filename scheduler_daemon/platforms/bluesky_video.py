"""A Bluesky video through Bluesky's video service, the recommended method of its video
guide (docs.bsky.app/docs/tutorials/video): the video is processed before the post goes
out, so the post is playable the moment it is visible (the simple method, ``uploadBlob``
alone, leaves "video not found" in the post for a while: the service only sees the video
once the post is in the firehose). Run inside ``prepare``::

    GET  <PDS>/xrpc/com.atproto.server.getSession            the account's own PDS (its DID
    GET  <own PDS>/xrpc/com.atproto.server.describeServer     document) and that PDS's DID,
                                                             once per account
    GET  <PDS>/xrpc/com.atproto.server.getServiceAuth        aud did:web:<video service host>,
    GET  <service>/xrpc/app.bsky.video.getUploadLimits       lxm getUploadLimits: an account at
                                                             its daily limit is told before the upload
    GET  <PDS>/xrpc/com.atproto.server.getServiceAuth        aud the account's PDS's DID,
                                                             lxm com.atproto.repo.uploadBlob, exp +30 min
    POST <service>/xrpc/app.bsky.video.uploadVideo?did=&name=   the video, streamed from the spool
    GET  <service>/xrpc/app.bsky.video.getJobStatus?jobId=   polled until JOB_STATE_COMPLETED: its
                                                             blob (on the PDS, uploaded by the service
                                                             with the token) is the embed's

Answers as the service gives them: ``uploadVideo`` answers a bare ``jobStatus`` or one under
``jobStatus`` (atproto issue 3026); a video it processed before answers 409
``already_exists`` with its ``jobId`` (and maybe its blob); ``JOB_STATE_FAILED`` ends the
video with the service's own reason (a content refusal: publishing it by the simple method
would give the same service the same video, and a post whose video never plays).

``Unavailable`` is raised where the service cannot take the video for this account, and the
adapter then uploads it by the simple method and logs why: the service refused the PDS's
token (401/403: a self-hosted PDS it does not serve), it cannot be reached (refused
connection, timeout, 5xx, the outbound guard), or the PDS issues no service tokens. A post
out on time with a video that plays a few seconds late is what a user asked for when they
scheduled it; a post held back because a helper service is down is not. A daily limit or
a refused video is not a reason to fall back: those stand, with the service's message.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from ..errors import ContentRejectedError, PublishError, RateLimitedError
from ..mediafile import MediaFile
from ..models import MediaItem
from ._calls import json_object, poll, text_field
from ._http import Classifier, call, excerpt, retry_after, send
from ._tokens import TokenHolder

logger = structlog.get_logger("scheduler_daemon.platforms.bluesky")

SERVICE_AUTH = "com.atproto.server.getServiceAuth"
UPLOAD_BLOB = "com.atproto.repo.uploadBlob"
UPLOAD_LIMITS = "app.bsky.video.getUploadLimits"
TOKEN_SECONDS = 30 * 60  # the guide's expiry for the upload token: processing takes a while
COMPLETED, FAILED = "JOB_STATE_COMPLETED", "JOB_STATE_FAILED"


class Unavailable(Exception):
    """The video service cannot take this video for this account: the simple method instead."""


async def processed(
    service: VideoService, file: MediaFile, item: MediaItem, what: str,
    simple: Callable[[MediaFile], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """The video's blob through the service, else (``Unavailable``) by ``simple``, logged."""
    try:
        return await service.upload(file, video_name(item), what)
    except Unavailable as exc:
        logger.warning(
            "bluesky video service unavailable: the video goes to the PDS by the simple method,"
            " and plays once processed after the post is out", service=service.service, reason=str(exc),
        )
        return await simple(file)


def video_name(item: MediaItem) -> str:
    """The ``name`` the service is given: the file's own name, where it is an .mp4."""
    name = (item.storage_path or item.url or "").rsplit("/", 1)[-1].split("?", 1)[0]
    return name if name.lower().endswith(".mp4") and 4 < len(name) <= 100 else "video.mp4"


def did_web(url: str) -> str:
    """``did:web:`` of a service's host name, as a PDS names itself by default (the reference
    PDS: ``did:web:${PDS_HOSTNAME}``, no port) and as the official app writes the audience."""
    return f"did:web:{(urllib.parse.urlsplit(url).hostname or '').lower()}"


def pds_endpoint(did_doc: Any) -> str | None:
    """The ``#atproto_pds`` service endpoint of a DID document, or None."""
    services = did_doc.get("service") if isinstance(did_doc, Mapping) else None
    for service in services if isinstance(services, list) else []:
        if isinstance(service, Mapping) and str(service.get("id", "")).endswith("#atproto_pds"):
            endpoint = service.get("serviceEndpoint")
            if isinstance(endpoint, str) and endpoint.startswith(("https://", "http://")):
                return endpoint.rstrip("/")
    return None


def _job(data: Mapping[str, Any]) -> dict[str, Any]:
    nested = data.get("jobStatus")
    return dict(nested) if isinstance(nested, Mapping) else dict(data)


def _blob(job: Mapping[str, Any]) -> dict[str, Any] | None:
    blob = job.get("blob")
    ok = isinstance(blob, dict) and isinstance(blob.get("ref"), dict) and blob.get("mimeType")
    return blob if ok and isinstance(blob, dict) else None


@dataclass
class VideoService:
    """One video's way through the service, for one account (``holder``: its session)."""

    client: httpx.AsyncClient
    service: str  # SCHEDULER_BLUESKY_VIDEO_SERVICE
    pds: str  # where the daemon calls the account (maybe the entryway)
    did: str
    holder: TokenHolder
    classify: Classifier  # the adapter's reading of a PDS answer
    audiences: dict[tuple[str, str], str]  # (PDS called, DID) → the service DID of its own PDS (the adapter's)
    poll_interval: float
    poll_timeout: float

    async def upload(self, file: MediaFile, name: str, what: str) -> dict[str, Any]:
        """The processed video's blob; ``Unavailable`` where the simple method must do."""
        await self._limits(file.size, what)
        token = await self._service_auth(await self._audience(), UPLOAD_BLOB)
        params = {"did": self.did, "name": name}
        request = self.client.build_request(
            "POST", f"{self.service}/xrpc/app.bsky.video.uploadVideo", params=params, content=file.chunks(),
            headers={"authorization": f"Bearer {token}", "content-type": "video/mp4",
                     "content-length": str(file.size)},
        )
        response = await self._send(request, "the upload")
        data = json_object(response)
        if response.status_code == 409 and data.get("error") == "already_exists" and data.get("jobId"):
            pass  # processed before: its job holds the blob
        elif not response.is_success:
            raise self._refusal(response, what)
        job = _job(data)
        return await self._wait(job, what)

    async def _audience(self) -> str:
        """The service DID of the PDS that stores the account's blobs, the upload token's
        audience: ``metadata.pds_url`` may be the entryway (bsky.social), so the PDS is the
        one the session's DID document names; its ``describeServer`` says its DID (else it
        is ``did:web:<its host>``, a PDS's default). Once per account."""
        key = (self.pds, self.did)
        if (known := self.audiences.get(key)) is not None:
            return known
        try:
            response = await call(
                self.client, self.holder,
                lambda: self.client.build_request("GET", f"{self.pds}/xrpc/com.atproto.server.getSession",
                                                  headers={"authorization": f"Bearer {self.holder.token}"}),
                self.classify, what="Bluesky session",
            )
            session = json_object(response)
            # Only the account's own session names its PDS: a connection whose token is another
            # account's must not decide (nor cache) where this DID's blobs live.
            mine = session.get("did") == self.did
            own = (pds_endpoint(session.get("didDoc")) if mine else None) or self.pds
        except ContentRejectedError:  # a session it does not describe: the PDS the daemon calls
            own = self.pds
        request = self.client.build_request("GET", f"{own}/xrpc/com.atproto.server.describeServer")
        try:
            described = await send(self.client, request, what="Bluesky PDS description")
            said = text_field(json_object(described), "did") if described.is_success else None
        except PublishError:
            said = None
        audience = said if said and said.startswith("did:") else did_web(own)
        self.audiences[key] = audience
        return audience

    async def _service_auth(self, aud: str, lxm: str) -> str:
        params = {"aud": aud, "lxm": lxm, "exp": str(int(time.time()) + TOKEN_SECONDS)}
        try:
            response = await call(
                self.client, self.holder,
                lambda: self.client.build_request(
                    "GET", f"{self.pds}/xrpc/{SERVICE_AUTH}", params=params,
                    headers={"authorization": f"Bearer {self.holder.token}"}),
                self._classify_auth, what="Bluesky service token",
            )
        except ContentRejectedError as exc:  # the PDS issues none (an old or other implementation)
            raise Unavailable(f"the PDS gave no service token ({exc})") from exc
        token = text_field(json_object(response), "token")
        if not token:
            raise Unavailable("the PDS answered without a service token")
        return token

    def _classify_auth(self, response: httpx.Response) -> PublishError | None:
        if response.status_code in (404, 501):  # XRPC's answer for a method it does not have
            return ContentRejectedError(f"getServiceAuth is not implemented there (HTTP {response.status_code})")
        return self.classify(response)

    async def _limits(self, size: int, what: str) -> None:
        """``getUploadLimits``: an account that may upload no more today is told now, with
        the service's message (a failure of the check itself is left to the upload)."""
        token = await self._service_auth(did_web(self.service), UPLOAD_LIMITS)
        request = self.client.build_request(
            "GET", f"{self.service}/xrpc/{UPLOAD_LIMITS}", headers={"authorization": f"Bearer {token}"})
        response = await self._send(request, "the upload limits")
        if response.status_code in (401, 403) or response.status_code >= 500:
            raise self._refusal(response, what)
        data = json_object(response)
        if not response.is_success or (data.get("canUpload") is not False and not _over(data, size)):
            return
        reason = excerpt(data.get("message") or data.get("error") or "no more videos today")
        raise RateLimitedError(f"Bluesky takes no more videos from this account now: {reason}", retry_after(response))

    async def _wait(self, job: dict[str, Any], what: str) -> dict[str, Any]:
        """The job's blob once it has one (an ``already_exists`` answer may carry it already);
        ``getJobStatus`` read every poll interval until then, within the poll timeout."""
        job_id = text_field(job, "jobId")
        found: list[dict[str, Any]] = []

        def settled(status: Mapping[str, Any]) -> bool:
            if (blob := _blob(status)) is not None:
                found.append(blob)
                return True
            if status.get("state") == FAILED or status.get("error") not in (None, "", "already_exists"):
                reason = excerpt(status.get("message") or status.get("error") or "no reason given")
                raise ContentRejectedError(f"Bluesky's video service could not process the video of {what}: {reason}")
            return False

        async def done() -> bool:
            if not job_id:
                raise Unavailable("the service answered without a job id")
            request = self.client.build_request(
                "GET", f"{self.service}/xrpc/app.bsky.video.getJobStatus", params={"jobId": job_id})
            try:
                response = await send(self.client, request, what="Bluesky video status")
            except PublishError:
                return False  # a status read that failed: the next one may answer
            return response.is_success and settled(_job(json_object(response)))

        if not settled(job):
            await poll(done, interval=self.poll_interval, timeout=self.poll_timeout, what="Bluesky video processing")
        return found[0]

    async def _send(self, request: httpx.Request, step: str) -> httpx.Response:
        try:
            return await send(self.client, request, what=f"Bluesky video service ({step})")
        except PublishError as exc:  # unreachable, refused by the outbound guard, lost
            raise Unavailable(str(exc)) from exc

    def _refusal(self, response: httpx.Response, what: str) -> Exception:
        data = json_object(response)
        reason = excerpt(data.get("message") or data.get("error") or "") or f"HTTP {response.status_code}"
        status = response.status_code
        if status in (401, 403):
            return Unavailable(f"it refused this account's token (HTTP {status}: {reason})")
        if status in (404, 501) or status >= 500:  # 404/501: no video service at that URL
            return Unavailable(f"it did not take the video (HTTP {status}: {reason})")
        if status == 429:
            return RateLimitedError(f"Bluesky's video service rate limit reached: {reason}", retry_after(response))
        return ContentRejectedError(f"Bluesky's video service refused the video of {what}: {reason}")


def _over(limits: Mapping[str, Any], size: int) -> bool:
    videos, size_left = limits.get("remainingDailyVideos"), limits.get("remainingDailyBytes")
    return (isinstance(videos, int) and videos <= 0) or (isinstance(size_left, int) and size_left < size)
