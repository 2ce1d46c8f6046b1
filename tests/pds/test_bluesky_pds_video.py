"""Bluesky video through a video service, against the reference PDS: the service token the
daemon asks for is one the PDS really issues and accepts for ``uploadBlob``.

The video service here does what Bluesky's does with the token (its guide: "saves an
optimised version of the video to your PDS on your behalf using the service token"): it
uploads the video to the reference PDS with the bearer token the daemon sent. That upload
succeeds only if the token's ``aud`` is the PDS's own service DID, its ``lxm``
``com.atproto.repo.uploadBlob`` and its signature the account's; the post's video is then
the blob the service stored, and the daemon never called ``uploadBlob`` itself. The token
for ``getUploadLimits`` (the service's own audience) is refused by the PDS for an upload.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import asyncpg
import httpx

from support.helpers import Watcher, insert_post, row, soon
from support.media import mp4

from .network import ReferencePds
from .test_bluesky_pds import Web, connect, daemon, pds  # noqa: F401 - daemon and pds are fixtures

SERVICE = "video.bsky.app"


def claims(request: httpx.Request) -> dict[str, Any]:
    token = request.headers["authorization"].removeprefix("Bearer ")
    payload = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data | {"token": token}


async def upload_blob(server: ReferencePds, token: str, content: bytes) -> httpx.Response:
    """``uploadBlob`` on the reference PDS with ``token``, as the video service sends it."""
    async with httpx.AsyncClient(timeout=30.0) as client:
        return await client.post(f"{server.url}/xrpc/com.atproto.repo.uploadBlob", content=content,
                                 headers={"authorization": f"Bearer {token}", "content-type": "video/mp4"})


class VideoService:
    """uploadVideo stores the video on the PDS with the caller's token; the job is then done."""

    def __init__(self, server: ReferencePds) -> None:
        self.pds = server
        self.seen: dict[str, dict[str, Any]] = {}  # method → the claims of the token it got
        self.stored: list[httpx.Response] = []
        self.blob: dict[str, Any] | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        method = request.url.path.removeprefix("/xrpc/")
        if method == "app.bsky.video.getUploadLimits":
            self.seen[method] = claims(request)
            return httpx.Response(200, json={"canUpload": True, "remainingDailyVideos": 25})
        if method == "app.bsky.video.getJobStatus":
            state = {"jobId": "job1", "did": self.seen["upload"]["iss"], "state": "JOB_STATE_COMPLETED",
                     "blob": self.blob}
            return httpx.Response(200, json={"jobStatus": state})
        assert method == "app.bsky.video.uploadVideo", method
        self.seen["upload"] = found = claims(request)
        stored = await upload_blob(self.pds, found["token"], request.content)
        self.stored.append(stored)
        if stored.status_code != 200:
            return httpx.Response(401, json={"error": "AuthRequired", "message": stored.text[:200]})
        self.blob = stored.json()["blob"]
        return httpx.Response(200, json={"did": request.url.params["did"], "jobId": "job1",
                                         "state": "JOB_STATE_CREATED"})


async def test_the_service_token_is_one_the_pds_issues_and_takes_for_the_processed_video(
    db: asyncpg.Connection, watcher: Watcher, daemon: Web, pds: ReferencePds,  # noqa: F811 - fixtures
) -> None:
    alice = await pds.create_account("alice")
    campaign = await connect(db, alice)
    clip = mp4(width=720, height=1280, seconds=3, mdat_bytes=40_000)
    daemon.pages["https://cdn.example.com/clip.mp4"] = (clip, "video/mp4")
    service = VideoService(pds)
    daemon.services[SERVICE] = service
    media = json.dumps([{"url": "https://cdn.example.com/clip.mp4", "alt": "lift-off", "mime": "video/mp4"}])
    post_id = await insert_post(db, campaign, soon(0.3), platform="bluesky", content="a video", media=media)
    await watcher.wait(post_id, "published", "draft")
    r = await row(db, post_id)
    assert r["status"] == "published", r["error_message"]

    upload = service.seen["upload"]
    assert (upload["aud"], upload["lxm"], upload["iss"]) == (pds.service_did, "com.atproto.repo.uploadBlob", alice.did)
    assert [s.status_code for s in service.stored] == [200]  # the PDS took its own token for the upload
    assert "com.atproto.repo.uploadBlob" not in daemon.xrpc  # the daemon did not upload it itself
    held = await pds.get_record(alice.did, r["platform_post_id"].rsplit("/", 1)[1])
    assert held is not None and service.blob is not None
    embed = held["value"]["embed"]
    assert embed["video"]["ref"] == service.blob["ref"] and embed["alt"] == "lift-off"
    assert await pds.get_blob(alice.did, embed["video"]["ref"]["$link"]) == clip

    limits = service.seen["app.bsky.video.getUploadLimits"]
    assert (limits["aud"], limits["lxm"]) == ("did:web:video.bsky.app", "app.bsky.video.getUploadLimits")
    refused = await upload_blob(pds, limits["token"], clip)
    assert refused.status_code in (400, 401, 403), refused.text  # a token for another audience uploads nothing
