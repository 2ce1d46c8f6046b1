"""X API v2: posts, replies, the simple image upload, media metadata (alt text) and the
chunked video upload with its asynchronous processing."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from scheduler_daemon.platforms.twitter_text import weighted_length

from .base import AFTER_COMMIT, Fake, Published, bearer, body, form, reply

FIRST_ID = 1445880548472328192
REPLY_SETTINGS = ("following", "mentionedUsers", "subscribers", "verified")


def multipart(request: httpx.Request) -> dict[str, bytes]:
    """The parts of a ``multipart/form-data`` body, by field name."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.content)
    assert message.is_multipart(), "not a multipart body"
    parts = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        parts[str(name)] = part.get_payload(decode=True) or b""
    return parts


@dataclass
class Upload:
    """One media id as X holds it: its bytes, its category and its processing."""

    category: str
    total: int = 0
    data: bytearray = field(default_factory=bytearray)
    segments: int = 0
    state: str | None = None  # processing_info.state: None (ready), pending, in_progress, succeeded, failed
    polls: int = 0
    alt: str | None = None


class XFake(Fake):
    """``video_polls``: STATUS answers ``in_progress`` this many times after FINALIZE,
    then ``video_outcome`` (``succeeded`` or ``failed``). A post may name only media that
    is ready; a reply only a post that exists; ``tweets`` holds each post's body."""

    name = "x"
    refreshable = True

    def __init__(self) -> None:
        super().__init__()
        self.refresh_token = "x-refresh-1"
        self.uploads: dict[str, Upload] = {}
        self.max_chars = 280  # the account's limit (25,000 with X Premium)
        self.video_polls = 1
        self.video_outcome = "succeeded"
        self.media_lifetime = 86400  # expires_after_secs of a media id
        self.tweets: list[dict[str, Any]] = []

    @property
    def media_ids(self) -> list[str]:
        return list(self.uploads)

    def error(self, kind: str) -> httpx.Response:
        if kind in ("auth", "expired"):
            return reply(401, {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"})
        if kind == "rate":
            reset = str(int(time.time()) + 900)
            return reply(429, {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank",
                               "status": 429},
                         {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0", "x-rate-limit-reset": reset})
        if kind == "transient":
            return reply(503, {"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank",
                               "status": 503})
        if kind == "usage-capped":  # the plan's monthly cap or the credits are used up
            return reply(429, {"title": "UsageCapExceeded", "detail": "Usage cap exceeded: Monthly product cap",
                               "type": "https://api.twitter.com/2/problems/usage-capped", "period": "Monthly",
                               "scope": "Product", "status": 429})
        return reply(403, {"detail": "You are not allowed to create a Tweet with duplicate content.",
                           "type": "about:blank", "title": "Forbidden", "status": 403})

    @staticmethod
    def invalid(message: str) -> httpx.Response:
        return reply(400, {"errors": [{"message": message}], "title": "Invalid Request",
                           "detail": "One or more parameters to your request was invalid.",
                           "type": "https://api.twitter.com/2/problems/invalid-request"})

    async def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/2/oauth2/token":
            return await self.refresh(request)
        if bad := self.token_error(bearer(request)):
            return bad
        if path.startswith("/2/media/"):
            return self.media(request, path.removeprefix("/2/media/"))
        assert request.method == "POST" and path == "/2/tweets", path
        return self.tweet(request, body(request))

    def new_media(self, category: str) -> str:
        media_id = f"7105113633453547{len(self.uploads) + 10}"
        self.uploads[media_id] = Upload(category)
        return media_id

    def media(self, request: httpx.Request, path: str) -> httpx.Response:
        if path == "upload" and request.method == "GET":
            assert request.url.params["command"] == "STATUS"
            return self.status(request.url.params["media_id"])
        assert request.method == "POST", path
        if path == "upload":  # the simple upload: images only
            parts = multipart(request)
            assert parts["media_category"] in (b"tweet_image", b"tweet_gif") and parts["media"]
            self.media_refs.append(parts["media"])
            media_id = self.new_media(parts["media_category"].decode())
            return reply(200, {"data": {"id": media_id, "media_key": f"3_{media_id}", "size": len(parts["media"]),
                                        "expires_after_secs": self.media_lifetime}})
        if path == "metadata":
            data = body(request)
            upload = self.uploads[data["id"]]
            assert upload.category in ("tweet_image", "tweet_gif"), "alt text is for images and GIFs"
            text = data["metadata"]["alt_text"]["text"]
            if len(text) > 1000:
                return self.invalid("alt_text.text must be at most 1000 characters")
            upload.alt = text
            return reply(200, {"data": {"id": data["id"], "associated_metadata": data["metadata"]}})
        if path == "upload/initialize":
            data = body(request)
            assert data["media_category"] == "tweet_video" and data["media_type"] in ("video/mp4", "video/quicktime")
            media_id = self.new_media("tweet_video")
            self.uploads[media_id].total = int(data["total_bytes"])
            return reply(200, {"data": {"id": media_id, "media_key": f"7_{media_id}",
                                        "expires_after_secs": self.media_lifetime}})
        media_id, command = path.removeprefix("upload/").split("/")
        upload = self.uploads[media_id]
        if command == "append":
            parts = multipart(request)
            assert int(parts["segment_index"]) == upload.segments, "segments out of order"
            assert len(parts["media"]) <= 5 * 1024 * 1024, "a segment over 5 MB"
            upload.segments += 1
            upload.data += parts["media"]
            return reply(200, {"data": {"expires_at": int(time.time()) + 86400}})
        assert command == "finalize", command
        if len(upload.data) != upload.total:
            return self.invalid("File size does not match the size given at initialize")
        self.media_refs.append(bytes(upload.data))
        upload.state = "pending"
        info = {"state": "pending", "check_after_secs": 1}
        return reply(200, {"data": {"id": media_id, "size": upload.total, "processing_info": info}})

    def status(self, media_id: str) -> httpx.Response:
        upload = self.uploads[media_id]
        upload.polls += 1
        if upload.polls <= self.video_polls:
            upload.state = "in_progress"
            info: dict[str, Any] = {"state": "in_progress", "check_after_secs": 1, "progress_percent": 50}
        else:
            upload.state = self.video_outcome
            info = {"state": upload.state, "progress_percent": 100}
            if upload.state == "failed":
                info["error"] = {"code": 1, "name": "InvalidMedia", "message": "Unsupported video codec profile"}
        return reply(200, {"data": {"id": media_id, "processing_info": info}})

    def tweet(self, request: httpx.Request, tweet: dict[str, Any]) -> httpx.Response:
        if weighted_length(tweet["text"]) > self.max_chars:  # X counts with twitter-text v3
            return self.invalid("Your Tweet text is too long.")
        media = tweet.get("media", {}).get("media_ids", [])
        if any(m not in self.uploads or self.uploads[m].state not in (None, "succeeded") for m in media):
            return self.invalid("Your media IDs are invalid.")
        parent = tweet.get("reply", {}).get("in_reply_to_tweet_id")
        if parent is not None and all(t["id"] != parent for t in self.tweets):
            return self.invalid("The Tweet you are replying to does not exist.")
        if tweet.get("reply_settings", "following") not in REPLY_SETTINGS:
            return self.invalid("reply_settings is not one of the allowed values")
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        tweet_id = str(FIRST_ID + len(self.tweets))
        self.tweets.append({**tweet, "id": tweet_id})
        self.posts.append(Published(tweet["text"], media))
        return self.commit_then(kind, request, reply(201, {"data": {"id": tweet_id, "text": tweet["text"]}}))

    async def refresh(self, request: httpx.Request) -> httpx.Response:
        fields = form(request)
        assert fields["grant_type"] == "refresh_token" and fields["client_id"] == "x-client"
        assert request.headers["authorization"] == "Basic " + base64.b64encode(b"x-client:x-secret").decode()
        if self.revoked or fields["refresh_token"] != self.refresh_token:
            return reply(
                400, {"error": "invalid_request", "error_description": "Value passed for the token was invalid."}
            )
        token = await self.new_tokens()
        self.refresh_token = f"x-refresh-{self.refresh_calls + 1}"  # rotating: the old one is dead now
        return reply(
            200,
            {
                "token_type": "bearer",
                "expires_in": 7200,
                "access_token": token,
                "scope": "tweet.write users.read tweet.read offline.access",
                "refresh_token": self.refresh_token,
            },
        )
