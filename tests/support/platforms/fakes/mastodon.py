"""A Mastodon instance."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from .base import AFTER_COMMIT, Fake, Published, bearer, body, reply
from .x import multipart

VISIBILITIES = ("public", "unlisted", "private", "direct")


class MastodonFake(Fake):
    """Mastodon: ``Idempotency-Key`` remembered for one hour (``PostStatusService``
    stores it with a 3,600 s expiry), async media (202, then 206 until processed; a video
    whose processing fails answers 422 there), 422 for a status with unprocessed media,
    images beside a video, or a reply to a status that does not exist. ``clock`` is the
    instance's time; ``instance`` what ``GET /api/v2/instance`` answers (None: 404, an
    older server); ``statuses`` each status's body."""

    name = "mastodon"
    IDEMPOTENCY_SECONDS = 3600

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, tuple[float, dict[str, Any]]] = {}  # key → (stored at, status)
        self.media: dict[str, int] = {}  # media id → status polls so far
        self.kinds: dict[str, str] = {}  # media id → image / video
        self.descriptions: dict[str, str | None] = {}
        self.clock = 0.0
        self.processing_polls = 1  # GET /api/v1/media/{id} answers 206 this many times
        self.video_fails = False
        self.statuses: list[dict[str, Any]] = []
        self.instance: dict[str, Any] | None = {
            "domain": "mastodon.test",
            "configuration": {
                "statuses": {"max_characters": 500, "max_media_attachments": 4, "characters_reserved_per_url": 23},
                "media_attachments": {
                    "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4",
                                             "video/quicktime", "video/webm"],
                    "image_size_limit": 16777216, "image_matrix_limit": 33177600, "video_size_limit": 103809024,
                    "video_frame_rate_limit": 120, "video_matrix_limit": 8294400,
                },
            },
        }

    def error(self, kind: str) -> httpx.Response:
        reset = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=300)).isoformat(timespec="microseconds")
        bodies = {
            "auth": (401, {"error": "The access token is invalid"}, None),
            "rate": (
                429,
                {"error": "Too many requests"},
                {
                    "x-ratelimit-limit": "300",
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": reset.replace("+00:00", "Z"),
                },
            ),
            "transient": (503, {"error": "Remote data could not be fetched"}, None),
            "content": (422, {"error": "Validation failed: Text character limit of 500 exceeded"}, None),
            "config": (404, {"error": "Record not found"}, None),
        }
        status, data, headers = bodies[kind]
        return reply(status, data, headers)

    async def route(self, request: httpx.Request) -> httpx.Response:
        assert request.url.host == "mastodon.test"
        path = request.url.path
        if path == "/api/v2/instance":  # public: no token needed
            assert request.method == "GET"
            return reply(200, self.instance) if self.instance is not None else reply(404, {"error": "Not Found"})
        if bad := self.token_error(bearer(request)):
            return bad
        if path == "/api/v2/media":
            return self.upload(request)
        if path.startswith("/api/v1/media/"):
            return self.processed(path.rsplit("/", 1)[-1])
        assert request.method == "POST" and path == "/api/v1/statuses"
        return self.status(request, request.headers["idempotency-key"], body(request))

    def upload(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        parts = multipart(request)
        content = parts["file"]
        video = content[4:8] == b"ftyp"
        self.media_refs.append(content)
        media_id = f"2234864{len(self.media) + 1}"
        self.media[media_id] = 0
        self.kinds[media_id] = "video" if video else "image"
        description = parts["description"].decode() if "description" in parts else None
        if description is not None and len(description) > 1500:
            return reply(422, {"error": "Validation failed: Description is too long (maximum is 1500 characters)"})
        self.descriptions[media_id] = description
        return reply(202, {"id": media_id, "type": self.kinds[media_id], "url": None, "description": description})

    def processed(self, media_id: str) -> httpx.Response:
        self.media[media_id] += 1
        if self.media[media_id] <= self.processing_polls:
            return reply(206, {"id": media_id, "url": None})
        if self.kinds[media_id] == "video" and self.video_fails:
            return reply(422, {"error": "Error processing thumbnail for uploaded media"})
        return reply(200, {"id": media_id, "url": "https://files.test/x.png"})

    def status(self, request: httpx.Request, key: str, data: dict[str, Any]) -> httpx.Response:
        assert data["visibility"] in VISIBILITIES
        media = data.get("media_ids", [])
        if any(self.media[m] <= self.processing_polls for m in media):
            refusal = "Cannot attach files that have not finished processing. Try again in a moment!"
            return reply(422, {"error": refusal})
        if len(media) > 1 and any(self.kinds[m] == "video" for m in media):
            return reply(422, {"error": "Validation failed: Cannot attach a video to a post that already contains"
                                        " images"})
        parent = data.get("in_reply_to_id")
        if parent is not None and all(s["id"] != parent for s in self.statuses):
            return reply(422, {"error": "Validation failed: In reply to status does not exist"})
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        stored = self.keys.get(key)
        if stored is None or self.clock - stored[0] >= self.IDEMPOTENCY_SECONDS:
            # A new key, or one the instance has forgotten after an hour: a new status.
            status_id = f"10370487408636037{len(self.posts) + 1}"
            stored = (self.clock, {"id": status_id, "url": f"https://mastodon.test/@alice/{status_id}"})
            self.keys[key] = stored
            self.statuses.append({**data, "id": status_id})
            self.posts.append(Published(data["status"], media))
        return self.commit_then(kind, request, reply(200, stored[1]))
