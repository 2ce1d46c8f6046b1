"""Meta Graph: the error envelope Facebook, Instagram and Threads share, and the container
API Instagram and Threads share."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .base import AFTER_COMMIT, IMAGE_URL, Fake, Published, form, reply


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
    """Instagram and Threads: containers, status polls, *_publish, permalink, recent posts."""

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
            return self.create(form(request))
        if request.method == "POST" and tail == f"{self.user}/{self.publish_edge}":
            return self.publish(request, form(request)["creation_id"])
        assert request.method == "GET"
        fields = request.url.params["fields"]
        if tail == f"{self.user}/{self.create_edge}":
            data = [{"id": mid, self.caption_field: caption, "permalink": f"https://posts.test/{mid}"}
                    for mid, caption in self.published.items()]
            return reply(200, {"data": data})
        if tail in self.containers:
            assert self.status_field in fields
            container = self.containers[tail]
            container["polls"] += 1
            if container["status"] == "IN_PROGRESS" and container["polls"] > 1:
                container["status"] = "FINISHED"
            return reply(200, {self.status_field: container["status"], "id": tail})
        assert fields == "permalink" and tail in self.published, (tail, fields)
        return reply(200, {"permalink": f"https://posts.test/{tail}", "id": tail})

    def create(self, fields: dict[str, str]) -> httpx.Response:
        cid = f"c{len(self.containers) + 1}"
        if "image_url" in fields:
            assert fields["image_url"] == IMAGE_URL
            self.media_refs.append(fields["image_url"])
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
        media = [fields["image_url"]] if "image_url" in fields else [
            self.containers[c]["fields"]["image_url"] for c in fields.get("children", "").split(",") if c
        ]
        self.posts.append(Published(fields.get(self.caption_field, ""), media))
        return self.commit_then(kind, request, reply(200, {"id": media_id}))

    async def refresh(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "GET"
        assert request.url.params["grant_type"] == self.refresh_grant
        if self.revoked or request.url.params["access_token"] != self.valid_token:
            return self.error("auth")
        token = await self.new_tokens()
        return reply(200, {"access_token": token, "token_type": "bearer", "expires_in": 5_184_000})
