"""Slack Web API."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from .base import AFTER_COMMIT, Fake, Published, bearer, body, form, reply


class SlackFake(Fake):
    name = "slack"
    refreshable = True

    def __init__(self) -> None:
        super().__init__()
        self.refresh_token = "xoxe-1-refresh-1"
        self.markup: list[str] = []  # <…> Slack read as markup (a link, a mention, <!channel>)
        self.alt_texts: list[str | None] = []
        self.titles: list[str | None] = []
        self.uploads: dict[str, dict[str, Any]] = {}  # file id → filename, length, bytes (None until sent)
        self.messages: list[dict[str, Any]] = []  # each message: ts, thread_ts, options
        self._texts = self._shares = 0

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
            assert request.method == "POST"
            upload = self.uploads[request.url.path.rsplit("/", 1)[-1]]
            assert len(request.content) == upload["length"] == int(request.headers["content-length"])
            upload["bytes"] = request.content
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
            if bad := self.thread_error(data.get("thread_ts")):
                return bad
            ts = f"1503435956.{247 + self._texts:06d}"
            return self.publish(
                request,
                Published(self.shown(data["text"])),
                {"ok": True, "channel": "C123", "ts": ts, "message": {"text": data["text"]}},
                {"ts": ts, **{k: data[k] for k in ("thread_ts", "reply_broadcast", "unfurl_links", "unfurl_media")
                              if k in data}},
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
            assert int(fields["length"]) > 0 and fields["filename"]
            file_id = f"F{123 + len(self.uploads)}"
            self.uploads[file_id] = {"filename": fields["filename"], "length": int(fields["length"]), "bytes": None}
            self.alt_texts.append(fields.get("alt_txt"))
            return reply(200, {"ok": True, "upload_url": f"https://files.slack.test/upload/v1/{file_id}",
                               "file_id": file_id})
        assert method == "files.completeUploadExternal", method
        files = json.loads(fields["files"])
        assert fields["channel_id"] == "C123" and all(self.uploads[f["id"]]["bytes"] is not None for f in files)
        if bad := self.thread_error(fields.get("thread_ts")):
            return bad
        self.titles.extend(f.get("title") for f in files)
        ts = f"1503435957.{100 + self._shares:06d}"
        answer = {"ok": True, "files": [{"id": files[0]["id"], "shares": {"public": {"C123": [{"ts": ts}]}}}]}
        shared = Published(self.shown(fields.get("initial_comment", "")), [f["id"] for f in files])
        return self.publish(request, shared, answer, {"ts": ts, **({"thread_ts": fields["thread_ts"]}
                                                                     if "thread_ts" in fields else {})})

    def thread_error(self, thread_ts: str | None) -> httpx.Response | None:
        """A reply goes under a message that exists and is no reply itself."""
        if thread_ts is None:
            return None
        parent = next((m for m in self.messages if m["ts"] == thread_ts), None)
        if parent is None or "thread_ts" in parent:
            return reply(200, {"ok": False, "error": "thread_not_found"})
        return None

    def shown(self, text: str) -> str:
        """What Slack shows: ``<…>`` is its markup (links, ``<!channel>`` pings), the three
        entities are the characters."""
        self.markup.extend(re.findall(r"<[^>]*>", text))
        return re.sub(r"<[^>]*>", "", text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def publish(
        self, request: httpx.Request, post: Published, answer: dict[str, Any], message: dict[str, Any]
    ) -> httpx.Response:
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        self.posts.append(post)
        self.messages.append(message)
        if "files" in answer:
            self._shares += 1
        else:
            self._texts += 1
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
