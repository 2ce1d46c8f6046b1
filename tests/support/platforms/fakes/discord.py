"""Discord webhooks, with who a message pings."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from .base import AFTER_COMMIT, Fake, Published, body, reply


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


def multipart(request: httpx.Request) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """A multipart body's fields, and its files as field → (file name, bytes)."""
    boundary = request.headers["content-type"].split("boundary=", 1)[1].encode()
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, value = part[2:-2].partition(b"\r\n\r\n")  # the part's own CRLFs, not its content's
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        if b'filename="' in head:
            files[name] = (head.split(b'filename="', 1)[1].split(b'"', 1)[0].decode(), value)
        else:
            fields[name] = value.decode()
    return fields, files


class DiscordFake(Fake):
    name = "discord"

    def __init__(self) -> None:
        super().__init__()
        self.pinged: list[str] = []
        self.descriptions: list[list[str | None]] = []  # per post with files, each one's alt text
        self.payloads: list[dict[str, Any]] = []  # each message's JSON fields

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
            fields, files = multipart(request)
            payload = json.loads(fields["payload_json"])
            attachments = payload["attachments"]
            assert [a["id"] for a in attachments] == list(range(len(files))) == [
                int(k[len("files["):-1]) for k in files]
            for attachment, (field, (name, content)) in zip(attachments, files.items(), strict=True):
                assert attachment["filename"] == name, (field, name)
                if len(content) > 10 * 1024 * 1024:
                    return reply(413, {"message": "Request entity too large", "code": 40005})
                self.media_refs.append(content)
            media = [a["filename"] for a in attachments]
            self.descriptions.append([a.get("description") for a in attachments])
        else:
            payload, media = body(request), []
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        self.posts.append(Published(payload["content"], media))
        self.payloads.append(payload)
        self.pinged.extend(discord_pings(payload["content"], payload.get("allowed_mentions")))
        message = {"id": "1200", "channel_id": "555", "content": payload["content"], "webhook_id": "111"}
        return self.commit_then(kind, request, reply(200, message))
