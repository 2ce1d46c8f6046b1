"""Bluesky's video service (video.bsky.app), as its docs and observed answers describe it.

* ``getUploadLimits`` wants a service token for the service itself (``aud`` =
  ``did:web:<its host>``, ``lxm`` = ``app.bsky.video.getUploadLimits``) and answers
  ``limits``;
* ``uploadVideo?did=&name=`` wants a token the account's PDS issued for the PDS that stores
  the result (``aud`` = ``did:web:<its own PDS host>``, ``lxm`` =
  ``com.atproto.repo.uploadBlob``, ``iss`` = the DID, not expired), else 401; it answers a
  bare ``jobStatus`` (atproto issue 3026), or 409 ``already_exists`` with the earlier
  ``jobId`` for a video it processed before;
* ``getJobStatus?jobId=`` (no auth) walks the job through ``states`` (with ``progress``),
  then ``JOB_STATE_COMPLETED`` with the blob it stored on the PDS (``pds.blobs``), or
  ``JOB_STATE_FAILED`` with ``fail_with`` (error, message);
* ``down``: every request fails to connect; ``refuse_pds``: uploads answer 401, as for a
  self-hosted PDS the service does not serve.

The PDS side (``getServiceAuth`` issuing the tokens it checks) is ``BlueskyFake``'s.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from .base import bearer, reply

if TYPE_CHECKING:
    from .bluesky import BlueskyFake

HOST = "video.bsky.app"
UPLOAD_LXM = "com.atproto.repo.uploadBlob"


@dataclass
class Job:
    did: str
    content: bytes
    polls: int = 0


@dataclass
class VideoServiceFake:
    pds: BlueskyFake
    states: list[str] = field(default_factory=lambda: ["JOB_STATE_ENCODING", "JOB_STATE_SCANNING"])
    fail_with: tuple[str, str] | None = None
    down: bool = False
    refuse_pds: bool = False
    limits: dict[str, Any] = field(default_factory=lambda: {
        "canUpload": True, "remainingDailyVideos": 25, "remainingDailyBytes": 10_000_000_000})
    jobs: dict[str, Job] = field(default_factory=dict)
    uploads: list[bytes] = field(default_factory=list)
    by_content: dict[str, str] = field(default_factory=dict)  # sha256 → job id

    async def route(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        method = request.url.path.removeprefix("/xrpc/")
        params = dict(request.url.params)
        if method == "app.bsky.video.getUploadLimits":
            own = f"did:web:{request.url.host}"  # the service's own DID
            if self.pds.service_claims(bearer(request), own, "app.bsky.video.getUploadLimits") is None:
                return reply(401, {"error": "AuthRequired", "message": "Authentication Required"})
            return reply(200, self.limits)
        if method == "app.bsky.video.getJobStatus":
            return self.status(params["jobId"])
        assert method == "app.bsky.video.uploadVideo" and request.method == "POST", method
        claims = self.pds.service_claims(bearer(request), self.pds.own_pds_did, UPLOAD_LXM)
        if self.refuse_pds or claims is None or claims["iss"] != params.get("did"):
            return reply(401, {"error": "AuthRequired", "message": "Could not verify the upload token"})
        assert request.headers["content-type"] == "video/mp4" and params["name"].endswith(".mp4")
        assert int(request.headers["content-length"]) == len(request.content) > 0
        self.uploads.append(request.content)
        digest = hashlib.sha256(request.content).hexdigest()
        if (earlier := self.by_content.get(digest)) is not None:
            return reply(409, {"did": params["did"], "error": "already_exists", "jobId": earlier,
                               "message": "Video already processed", "state": "JOB_STATE_COMPLETED"})
        job_id = f"job{len(self.jobs) + 1:04d}"
        self.jobs[job_id] = Job(params["did"], request.content)
        self.by_content[digest] = job_id
        return reply(200, {"did": params["did"], "jobId": job_id, "state": "JOB_STATE_CREATED"})

    def status(self, job_id: str) -> httpx.Response:
        job = self.jobs.get(job_id)
        if job is None:
            return reply(404, {"error": "NotFound", "message": "job not found"})
        status: dict[str, Any] = {"jobId": job_id, "did": job.did}
        if job.polls < len(self.states):
            status |= {"state": self.states[job.polls], "progress": 50}
        elif self.fail_with is not None:
            status |= {"state": "JOB_STATE_FAILED", "error": self.fail_with[0], "message": self.fail_with[1]}
        else:
            status |= {"state": "JOB_STATE_COMPLETED", "progress": 100, "blob": self.pds.store_blob(job.content)}
        job.polls += 1
        return reply(200, {"jobStatus": status})
