"""Facebook Pages (Graph API)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .base import AFTER_COMMIT, IMAGE_URL, Fake, Published, form, reply
from .graph import graph_error


class FacebookFake(Fake):
    name = "facebook"
    base = "https://fb.test/v26.0"

    def error(self, kind: str) -> httpx.Response:
        return graph_error(kind, (506, None, "Duplicate status message"))

    async def route(self, request: httpx.Request) -> httpx.Response:
        fields = form(request)
        assert request.method == "POST"
        if bad := self.token_error(fields.get("access_token")):
            return bad
        if request.url.path == "/v26.0/1234/photos":
            assert fields["url"] == IMAGE_URL
            self.media_refs.append(fields["url"])
            if fields["published"] == "false":
                return reply(200, {"id": f"ph{len(self.media_refs)}"})
            assert fields["published"] == "true"
            return self.publish(
                request, Published(fields["caption"], [fields["url"]]), {"id": "ph1", "post_id": "1234_777"}
            )
        assert request.url.path == "/v26.0/1234/feed", request.url.path
        assert request.url.params["fields"] == "id,permalink_url"
        media = [m["media_fbid"] for m in json.loads(fields.get("attached_media", "[]"))]
        return self.publish(request, Published(fields["message"], media),
                            {"id": "1234_999", "permalink_url": "https://www.facebook.com/1234/posts/999"})

    def publish(self, request: httpx.Request, post: Published, answer: dict[str, Any]) -> httpx.Response:
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        self.posts.append(post)
        return self.commit_then(kind, request, reply(200, answer))
