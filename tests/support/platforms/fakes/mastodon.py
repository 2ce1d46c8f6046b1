"""A Mastodon instance."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from .base import AFTER_COMMIT, IMAGE, Fake, Published, bearer, body, reply


class MastodonFake(Fake):
    """Mastodon: ``Idempotency-Key`` remembered for one hour (``PostStatusService``
    stores it with a 3,600 s expiry), async media (202, then 206 until processed),
    422 for a status with unprocessed media. ``clock`` is the instance's time."""

    name = "mastodon"
    IDEMPOTENCY_SECONDS = 3600

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, tuple[float, dict[str, Any]]] = {}  # key → (stored at, status)
        self.media: dict[str, int] = {}
        self.clock = 0.0
        self.processing_polls = 1  # GET /api/v1/media/{id} answers 206 this many times

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
        if bad := self.token_error(bearer(request)):
            return bad
        path = request.url.path
        if path == "/api/v2/media":
            assert request.method == "POST" and IMAGE in request.content and b'name="file"' in request.content
            assert b'name="description"' in request.content and b"a cat" in request.content
            self.media_refs.append(IMAGE)
            media_id = f"2234864{len(self.media) + 1}"
            self.media[media_id] = 0
            return reply(202, {"id": media_id, "type": "image", "url": None})
        if path.startswith("/api/v1/media/"):
            media_id = path.rsplit("/", 1)[-1]
            self.media[media_id] += 1
            if self.media[media_id] <= self.processing_polls:
                return reply(206, {"id": media_id, "url": None})
            return reply(200, {"id": media_id, "url": "https://files.test/x.png"})
        assert request.method == "POST" and path == "/api/v1/statuses"
        key = request.headers["idempotency-key"]
        data = body(request)
        assert data["visibility"] == "public"
        if any(self.media[m] <= self.processing_polls for m in data.get("media_ids", [])):
            refusal = "Cannot attach files that have not finished processing. Try again in a moment!"
            return reply(422, {"error": refusal})
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        stored = self.keys.get(key)
        if stored is None or self.clock - stored[0] >= self.IDEMPOTENCY_SECONDS:
            # A new key, or one the instance has forgotten after an hour: a new status.
            status_id = f"10370487408636037{len(self.posts) + 1}"
            stored = (self.clock, {"id": status_id, "url": f"https://mastodon.test/@alice/{status_id}"})
            self.keys[key] = stored
            self.posts.append(Published(data["status"], data.get("media_ids", [])))
        return self.commit_then(kind, request, reply(200, stored[1]))
