"""X API v2."""

from __future__ import annotations

import base64
import time

import httpx

from scheduler_daemon.platforms.twitter_text import weighted_length

from .base import AFTER_COMMIT, IMAGE, Fake, Published, bearer, body, form, reply


class XFake(Fake):
    name = "x"
    refreshable = True

    def __init__(self) -> None:
        super().__init__()
        self.refresh_token = "x-refresh-1"
        self.media_ids: list[str] = []
        self.max_chars = 280  # the account's limit (25,000 with X Premium)

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

    async def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/2/oauth2/token":
            return await self.refresh(request)
        if bad := self.token_error(bearer(request)):
            return bad
        if path == "/2/media/upload":
            assert request.method == "POST"
            assert request.headers["content-type"].startswith("multipart/form-data")
            assert b'name="media_category"' in request.content and b"tweet_image" in request.content
            assert IMAGE in request.content
            self.media_refs.append(IMAGE)
            media_id = f"7105113633453547{len(self.media_ids) + 10}"
            self.media_ids.append(media_id)
            return reply(200, {"data": {"id": media_id, "media_key": f"3_{media_id}", "size": len(IMAGE)}})
        assert request.method == "POST" and path == "/2/tweets", path
        tweet = body(request)
        if weighted_length(tweet["text"]) > self.max_chars:  # X counts with twitter-text v3
            return reply(400, {"errors": [{"message": "Your Tweet text is too long."}], "title": "Invalid Request",
                               "detail": "One or more parameters to your request was invalid.",
                               "type": "https://api.twitter.com/2/problems/invalid-request"})
        media = tweet.get("media", {}).get("media_ids", [])
        assert all(m in self.media_ids for m in media)
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        self.posts.append(Published(tweet["text"], media))
        answer = {"data": {"id": "1445880548472328192", "text": tweet["text"]}}
        return self.commit_then(kind, request, reply(201, answer))

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
