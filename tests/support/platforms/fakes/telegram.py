"""The Telegram Bot API, with its entity parsing."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from .base import AFTER_COMMIT, Fake, Published, body, reply


def telegram_fields(request: httpx.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The fields of a JSON or multipart Bot API call, and the uploaded files' bytes."""
    if not request.headers["content-type"].startswith("multipart/form-data"):
        return body(request), {}
    boundary = request.headers["content-type"].split("boundary=", 1)[1].encode()
    fields: dict[str, Any] = {}
    uploads: dict[str, bytes] = {}
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        if b"filename=" in head:
            uploads[name] = value
        else:
            fields[name] = value.decode()
    return fields, uploads


RESERVED = {"MarkdownV2": set("_*[]()~`>#+-=|{}.!\\"), "Markdown": set("_*`[")}


def parse_entities(text: str, parse_mode: str | None) -> str | None:
    """The text Telegram shows, or None where it answers "can't parse entities". Only
    escapes are modelled: any unescaped reserved character fails, as formatting does
    not occur in the tests."""
    if parse_mode in RESERVED:
        reserved, shown, escaped = RESERVED[parse_mode], [], False
        for char in text:
            if escaped:
                if char not in reserved and parse_mode == "Markdown":
                    shown.append("\\")  # legacy Markdown keeps a backslash before other characters
                shown.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char in reserved:
                return None
            else:
                shown.append(char)
        return None if escaped else "".join(shown)
    if parse_mode == "HTML":
        if "<" in text or ">" in text or re.search(r"&(?!(?:amp|lt|gt|quot);)", text):
            return None
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    return text


class TelegramFake(Fake):
    """The Bot API's send methods: ``sendMessage``, ``sendPhoto``, ``sendVideo`` and
    ``sendMediaGroup`` (photos and videos mixed, ``attach://`` uploads), replies by
    ``reply_parameters`` (to a message that must exist), and the sending options.
    ``sent`` holds each send's method, message ids, reply target and options."""

    name = "telegram"

    def __init__(self) -> None:
        super().__init__()
        self.url_sizes: dict[str, int] = {}  # the size Telegram finds at a media URL
        self.next_id = 42
        self.sent: list[dict[str, Any]] = []

    def error(self, kind: str) -> httpx.Response:
        bodies = {
            "auth": (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}),
            "rate": (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 17",
                           "parameters": {"retry_after": 17}}),
            "transient": (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}),
            "content": (400, {"ok": False, "error_code": 400, "description": "Bad Request: can't parse entities"}),
            "config": (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}),
        }
        status, data = bodies[kind]
        return reply(status, data)

    async def route(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and "authorization" not in request.headers
        _, bot, method = request.url.path.split("/")
        if bad := self.token_error(bot.removeprefix("bot")):
            return bad
        data, uploads = telegram_fields(request)
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        if str(data["chat_id"]) == "-100old":
            return bad_request("group chat was upgraded to a supergroup chat", {"migrate_to_chat_id": -100777})
        target = _json(data.get("reply_parameters"))
        if target is not None and target["message_id"] not in {i for s in self.sent for i in s["ids"]}:
            return bad_request("message to be replied not found")
        if method == "sendMediaGroup":
            items = _json(data["media"])
            assert 2 <= len(items) <= 10 and {i["type"] for i in items} <= {"photo", "video"}
            text, limit = items[0].get("caption", ""), 1024
            mode = items[0].get("parse_mode")
            refs = [self.media(i["type"], i["media"], uploads) for i in items]
        elif method in ("sendPhoto", "sendVideo"):
            field = method.removeprefix("send").lower()
            ref = uploads[field] if field in uploads else data[field]
            refs = [self.media(field, ref, uploads)]
            text, limit, mode = data.get("caption", ""), 1024, data.get("parse_mode")
        else:
            assert method == "sendMessage", method
            text, limit, mode, refs = data["text"], 4096, data.get("parse_mode"), []
        if any(r is None for r in refs):
            return bad_request("failed to get HTTP URL content")
        parsed = parse_entities(text, mode)
        if parsed is None:
            return bad_request("can't parse entities: Character '.' is reserved and must be escaped with the "
                               "preceding '\\'")
        if len(parsed.encode("utf-16-le")) // 2 > limit:  # counted after entity parsing
            return bad_request("message is too long")
        return self.commit_then(kind, request, reply(200, {"ok": True, "result": self.publish(
            method, parsed, refs, data, target)}))

    def media(self, kind: str, ref: Any, uploads: dict[str, bytes]) -> Any:
        """What Telegram gets for a photo or video: the upload's bytes, or what it fetches
        from the URL (None past its limit for URLs: 5 MB for photos, 20 MB otherwise)."""
        if isinstance(ref, str) and ref.startswith("attach://"):
            ref = uploads[ref.removeprefix("attach://")]
        if isinstance(ref, str):
            assert ref.startswith("https://")
            if self.url_sizes.get(ref, 0) > (5 if kind == "photo" else 20) * 1024 * 1024:
                return None
        self.media_refs.append(ref)
        return ref

    def publish(self, method: str, text: str, refs: list[Any], data: dict[str, Any], target: Any) -> Any:
        ids = list(range(self.next_id, self.next_id + max(1, len(refs))))
        self.next_id += len(ids)
        options = {k: _json(data[k]) for k in ("disable_notification", "protect_content", "message_thread_id",
                                                "link_preview_options") if k in data}
        self.sent.append({"method": method, "ids": ids, "reply_to": target and target["message_id"],
                          "options": options})
        self.posts.append(Published(text, refs))
        chat = {"id": -1001234, "type": "channel", "title": "My channel", "username": "mychannel"}
        messages = [{"message_id": i, "date": 1_700_000_000, "chat": chat} for i in ids]
        return messages if method == "sendMediaGroup" else messages[0]


def bad_request(description: str, parameters: dict[str, Any] | None = None) -> httpx.Response:
    data: dict[str, Any] = {"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}
    if parameters:
        data["parameters"] = parameters
    return reply(400, data)


def _json(value: Any) -> Any:
    """A field as sent: multipart fields are JSON-encoded strings, JSON bodies hold values."""
    if (isinstance(value, str) and value[:1] in ("{", "[")) or value in ("true", "false"):
        return json.loads(value)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value
