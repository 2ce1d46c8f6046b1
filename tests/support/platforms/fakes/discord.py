"""Discord webhooks, with who a message pings."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from .base import AFTER_COMMIT, IMAGE, Fake, Published, body, reply


def discord_pings(content: str, allowed: dict[str, Any] | None) -> list[str]:
    """Who a message notifies: without ``allowed_mentions`` everything in the content
    (``@everyone``/``@here``, ``<@user>``, ``<@&role>``); with it only the listed kinds."""
    kinds = {"everyone", "users", "roles"} if allowed is None else set(allowed.get("parse", []))
    pings = []
    if "everyone" in kinds:
        pings += re.findall(r"@(?:everyone|here)\b", content)
    if "users" in kinds:
        pings += re.findall(r"<@!?\d+>", content)
    if "roles" in kinds:
        pings += re.findall(r"<@&\d+>", content)
    return pings


class DiscordFake(Fake):
    name = "discord"

    def __init__(self) -> None:
        super().__init__()
        self.pinged: list[str] = []

    def error(self, kind: str) -> httpx.Response:
        bodies = {
            "auth": (404, {"message": "Unknown Webhook", "code": 10015}, None),
            "rate": (
                429,
                {"message": "You are being rate limited.", "retry_after": 1.5, "global": False},
                {"retry-after": "2", "x-ratelimit-scope": "shared"},
            ),
            "transient": (502, {"message": "502: Bad Gateway", "code": 0}, None),
            "content": (
                400,
                {
                    "code": 50035,
                    "message": "Invalid Form Body",
                    "errors": {
                        "content": {
                            "_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]
                        }
                    },
                },
                None,
            ),
        }
        status, data, headers = bodies[kind]
        return reply(status, data, headers)

    async def route(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        _, _, _, hook, webhook_id, token = request.url.path.split("/")
        assert (hook, webhook_id) == ("webhooks", "111")
        if bad := self.token_error(token):
            return bad
        assert request.url.params["wait"] == "true"
        if request.headers["content-type"].startswith("multipart/form-data"):
            assert IMAGE in request.content and b'name="files[0]"' in request.content
            start = request.content.index(b'name="payload_json"')
            payload = json.loads(request.content[start:].split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0])
            assert payload["attachments"][0]["id"] == 0
            self.media_refs.append(IMAGE)
            media = [payload["attachments"][0]["filename"]]
        else:
            payload, media = body(request), []
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        self.posts.append(Published(payload["content"], media))
        self.pinged.extend(discord_pings(payload["content"], payload.get("allowed_mentions")))
        message = {"id": "1200", "channel_id": "555", "content": payload["content"], "webhook_id": "111"}
        return self.commit_then(kind, request, reply(200, message))
