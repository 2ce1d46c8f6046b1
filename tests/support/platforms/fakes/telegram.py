"""The Telegram Bot API, with its entity parsing."""

from __future__ import annotations

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
    name = "telegram"

    def __init__(self) -> None:
        super().__init__()
        self.url_sizes: dict[str, int] = {}  # the size Telegram finds at a photo URL

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
            return reply(400, {"ok": False, "error_code": 400,
                               "description": "Bad Request: group chat was upgraded to a supergroup chat",
                               "parameters": {"migrate_to_chat_id": -100777}})
        if method == "sendPhoto":
            photo = uploads["photo"] if "photo" in uploads else data["photo"]
            if isinstance(photo, str):
                assert photo.startswith("https://")
                if self.url_sizes.get(photo, 0) > 5 * 1024 * 1024:  # Telegram fetches at most 5 MB
                    return reply(400, {"ok": False, "error_code": 400,
                                       "description": "Bad Request: wrong file identifier/HTTP URL specified"})
            self.media_refs.append(photo)
            text, limit = data.get("caption", ""), 1024
        else:
            assert method == "sendMessage", method
            text, limit = data["text"], 4096
        parsed = parse_entities(text, data.get("parse_mode"))
        if parsed is None:
            return reply(400, {"ok": False, "error_code": 400,
                               "description": "Bad Request: can't parse entities: Character '.' is reserved "
                                              "and must be escaped with the preceding '\\'"})
        if len(parsed.encode("utf-16-le")) // 2 > limit:  # counted after entity parsing
            return reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"})
        self.posts.append(Published(parsed, [self.media_refs[-1]] if method == "sendPhoto" else []))
        message = {"message_id": 41 + len(self.posts), "date": 1_700_000_000,
                   "chat": {"id": -1001234, "type": "channel", "title": "My channel", "username": "mychannel"}}
        return self.commit_then(kind, request, reply(200, {"ok": True, "result": message}))
