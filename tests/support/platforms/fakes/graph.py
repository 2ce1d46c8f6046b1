"""Meta Graph: the error envelope Facebook, Instagram and Threads share, and the container
API Instagram and Threads share."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .base import AFTER_COMMIT, Fake, Published, form, reply


def graph_error(
    kind: str, content: tuple[int, int | None, str], headers: dict[str, str] | None = None
) -> httpx.Response:
    if kind in ("auth", "expired"):
        return reply(400, {"error": {"message": "Error validating access token: Session has expired",
                                     "type": "OAuthException", "code": 190, "error_subcode": 463,
                                     "fbtrace_id": "A1"}})
    if kind == "rate":
        usage = {"1234": [{"type": "pages", "call_count": 100, "total_cputime": 10, "total_time": 10,
                           "estimated_time_to_regain_access": 7}]}
        return reply(400, {"error": {"message": "(#32) Page request limit reached", "type": "OAuthException",
                                     "code": 32, "fbtrace_id": "A2"}},
                     {"x-business-use-case-usage": json.dumps(usage)})
    if kind == "transient":
        return reply(500, {"error": {"message": "An unexpected error has occurred. Please retry your request later.",
                                     "type": "OAuthException", "code": 2, "is_transient": True}})
    if kind == "config":
        return reply(404, {"error": {"message": "(#803) Some of the aliases you requested do not exist: 1234",
                                     "type": "OAuthException", "code": 803}})
    code, subcode, message = content
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode:
        error["error_subcode"] = subcode
    return reply(400, {"error": error})


class ContainerFake(Fake):
    """Instagram and Threads: containers, status polls, *_publish, permalink, recent posts,
    comments.

    A container is ``IN_PROGRESS`` at its first status read and ``FINISHED`` at the next; a
    video container takes one read more, and ends as ``video_outcome`` says (``ERROR`` with
    the platform's reason, or ``EXPIRED``). ``expire``: container ids that turn ``EXPIRED``
    at their next read (24 hours passed). ``shown``: what each published post was made of
    (its container's fields and its children's, in order). ``comments``: the comments
    posted; ``comment_fail``: failure kinds the comment calls play.
    """

    refreshable = True
    root = ""
    version = ""
    user = ""
    create_edge = publish_edge = status_field = caption_field = refresh_grant = ""
    content_error: tuple[int, int | None, str] = (100, None, "")

    def __init__(self) -> None:
        super().__init__()
        self.containers: dict[str, dict[str, Any]] = {}
        self.published: dict[str, str] = {}  # media id → caption
        self.refresh_token_ok = True
        self.video_outcome = "FINISHED"
        self.expire: set[str] = set()
        self.shown: list[dict[str, Any]] = []
        self.comments: list[dict[str, str]] = []
        self.comment_fail: list[str] = []

    def error(self, kind: str) -> httpx.Response:
        return graph_error(kind, self.content_error)

    async def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/refresh_access_token":
            return await self.refresh(request)
        token = (
            form(request).get("access_token") if request.method == "POST" else request.url.params.get("access_token")
        )
        if bad := self.token_error(token):
            return bad
        prefix = f"/{self.version}/"
        assert path.startswith(prefix), path
        tail = path[len(prefix):]
        if request.method == "POST" and tail == f"{self.user}/{self.create_edge}":
            return self.create({k: v for k, v in form(request).items() if k != "access_token"})
        if request.method == "POST" and tail == f"{self.user}/{self.publish_edge}":
            return self.publish(request, form(request)["creation_id"])
        if request.method == "POST" and tail.endswith("/comments"):
            return self.comment(request, tail.split("/")[0], form(request))
        assert request.method == "GET"
        fields = request.url.params["fields"]
        if tail in (f"{self.user}/{self.create_edge}", f"{self.user}/replies"):
            replies = tail.endswith("/replies")
            data = [{"id": s["id"], self.caption_field: s.get(self.caption_field, ""),
                     "permalink": f"https://posts.test/{s['id']}"}
                    for s in self.shown if ("reply_to_id" in s) == replies]
            return reply(200, {"data": data})
        if tail in self.containers:
            assert self.status_field in fields
            return self.status(tail)
        assert fields == "permalink" and tail in self.published, (tail, fields)
        return reply(200, {"permalink": f"https://posts.test/{tail}", "id": tail})

    def status(self, cid: str) -> httpx.Response:
        container = self.containers[cid]
        container["polls"] += 1
        video = "video_url" in container["fields"]
        if cid in self.expire and container["status"] != "PUBLISHED":
            container["status"] = "EXPIRED"
        elif container["status"] == "IN_PROGRESS" and container["polls"] > (2 if video else 1):
            container["status"] = self.video_outcome if video else "FINISHED"
        answer = {self.status_field: container["status"], "id": cid}
        if container["status"] == "ERROR":
            answer["error_message" if self.status_field == "status" else "status"] = (
                "Error: the video's codec is not supported (2207026)")
        return reply(200, answer)

    def comment(self, request: httpx.Request, media_id: str, fields: dict[str, str]) -> httpx.Response:
        assert media_id in self.published, f"a comment under {media_id}, which is not a post"
        kind = self.comment_fail.pop(0) if self.comment_fail else None
        if kind:
            return self.error(kind)
        comment_id = f"cm{len(self.comments) + 1}"
        self.comments.append({"on": media_id, "message": fields["message"], "id": comment_id})
        return reply(200, {"id": comment_id})

    def create(self, fields: dict[str, str]) -> httpx.Response:
        cid = f"c{len(self.containers) + 1}"
        for key in ("image_url", "video_url"):
            if key in fields:
                assert fields[key].startswith("https://cdn.test/"), fields[key]
                self.media_refs.append(fields[key])
        for child in filter(None, fields.get("children", "").split(",")):
            assert self.containers[child]["status"] == "FINISHED", f"a carousel of a {child} not ready"
            assert self.containers[child]["fields"].get("is_carousel_item") == "true"
        if "reply_to_id" in fields:
            assert fields["reply_to_id"] in self.published, f"a reply to {fields['reply_to_id']}, not a post"
        self.containers[cid] = {"status": "IN_PROGRESS", "polls": 0, "fields": fields}
        return reply(200, {"id": cid})

    def publish(self, request: httpx.Request, cid: str) -> httpx.Response:
        container = self.containers[cid]
        assert container["status"] == "FINISHED", f"publishing a {container['status']} container"
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        container["status"] = "PUBLISHED"
        media_id = f"m{len(self.published) + 1}"
        fields = container["fields"]
        self.published[media_id] = fields.get(self.caption_field, "")
        parts = [self.containers[c]["fields"] for c in fields.get("children", "").split(",") if c] or [fields]
        media = [part.get("image_url") or part.get("video_url") for part in parts if "media_type" not in part
                 or part["media_type"] != "TEXT"]
        self.posts.append(Published(fields.get(self.caption_field, ""), media))
        self.shown.append({"id": media_id, **fields, "parts": parts})
        return self.commit_then(kind, request, reply(200, {"id": media_id}))

    async def refresh(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "GET"
        assert request.url.params["grant_type"] == self.refresh_grant
        if self.revoked or request.url.params["access_token"] != self.valid_token:
            return self.error("auth")
        token = await self.new_tokens()
        return reply(200, {"access_token": token, "token_type": "bearer", "expires_in": 5_184_000})
