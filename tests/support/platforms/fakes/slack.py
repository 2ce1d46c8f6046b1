"""Slack Web API."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from .base import AFTER_COMMIT, IMAGE, Fake, Published, bearer, body, form, reply


class SlackFake(Fake):
    name = "slack"
    refreshable = True

    def __init__(self) -> None:
        super().__init__()
        self.refresh_token = "xoxe-1-refresh-1"
        self.markup: list[str] = []  # <…> Slack read as markup (a link, a mention, <!channel>)
        self.alt_texts: list[str | None] = []
        self.titles: list[str | None] = []

    def error(self, kind: str) -> httpx.Response:
        if kind == "rate":
            return reply(429, {"ok": False, "error": "ratelimited"}, {"retry-after": "30"})
        if kind == "transient":
            return reply(503, None)
        error = {"auth": "invalid_auth", "expired": "token_expired", "content": "msg_too_long",
                 "config": "channel_not_found"}[kind]
        return reply(200, {"ok": False, "error": error})

    async def route(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "files.slack.test":
            assert request.method == "POST" and request.content == IMAGE
            self.media_refs.append(request.content)
            return httpx.Response(200, text="OK - 42")
        method = request.url.path.removeprefix("/api/")
        if method == "oauth.v2.access":
            return await self.refresh(request)
        assert request.method == "POST"
        if bad := self.token_error(bearer(request)):
            return bad
        if method == "chat.postMessage":
            assert request.headers["content-type"] == "application/json; charset=utf-8"
            data = body(request)
            assert data["channel"] == "C123"
            return self.publish(
                request,
                Published(self.shown(data["text"])),
                {"ok": True, "channel": "C123", "ts": "1503435956.000247", "message": {"text": data["text"]}},
            )
        fields = form(request)
        if method == "chat.getPermalink":
            return reply(
                200,
                {
                    "ok": True,
                    "channel": fields["channel"],
                    "permalink": f"https://acme.slack.com/archives/{fields['channel']}"
                    f"/p{fields['message_ts'].replace('.', '')}",
                },
            )
        if method == "files.getUploadURLExternal":
            assert int(fields["length"]) == len(IMAGE) and fields["filename"] == "cat.png"
            self.alt_texts.append(fields.get("alt_txt"))
            return reply(200, {"ok": True, "upload_url": "https://files.slack.test/upload/v1/abc", "file_id": "F123"})
        assert method == "files.completeUploadExternal", method
        files = json.loads(fields["files"])
        assert files[0]["id"] == "F123" and fields["channel_id"] == "C123"
        self.titles.append(files[0].get("title"))
        answer = {"ok": True, "files": [{"id": "F123", "shares": {"public": {"C123": [{"ts": "1503435957.000100"}]}}}]}
        return self.publish(request, Published(self.shown(fields.get("initial_comment", "")), ["F123"]), answer)

    def shown(self, text: str) -> str:
        """What Slack shows: ``<…>`` is its markup (links, ``<!channel>`` pings), the three
        entities are the characters."""
        self.markup.extend(re.findall(r"<[^>]*>", text))
        return re.sub(r"<[^>]*>", "", text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def publish(self, request: httpx.Request, post: Published, answer: dict[str, Any]) -> httpx.Response:
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        self.posts.append(post)
        return self.commit_then(kind, request, reply(200, answer))

    async def refresh(self, request: httpx.Request) -> httpx.Response:
        fields = form(request)
        assert fields["grant_type"] == "refresh_token"
        assert (fields["client_id"], fields["client_secret"]) == ("slack-client", "slack-secret")
        if self.revoked or fields["refresh_token"] != self.refresh_token:
            return reply(200, {"ok": False, "error": "invalid_refresh_token"})
        token = await self.new_tokens()
        self.refresh_token = f"xoxe-1-refresh-{self.refresh_calls + 1}"
        return reply(200, {"ok": True, "access_token": token, "refresh_token": self.refresh_token,
                           "expires_in": 43_200, "token_type": "bot"})
