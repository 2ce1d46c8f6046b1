"""Telegram Bot API (a bot posting to a channel, group or chat).

Connection row: ``access_token`` = the bot token (it does not expire; revoked only
through BotFather); ``account_id`` = the chat id (a number, or ``@channelusername``);
optional ``metadata.parse_mode`` (``HTML``/``MarkdownV2``; plain text by default).
The token is part of every request path, so request URLs never appear in a message.

Flow: text → ``sendMessage``; one image → ``sendPhoto`` with the image URL (Telegram
fetches it) and a caption; 2–10 images → ``sendMediaGroup``. Limits: text 4,096 and
caption 1,024 UTF-16 code units. A group that became a supergroup
(``migrate_to_chat_id``) is retried once with the new chat id; update ``account_id``.

Settings: ``SCHEDULER_TELEGRAM_API_BASE`` (default ``https://api.telegram.org``).
Exactly-once: none offered; an unknown outcome is reported, never retried.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import ContentRejectedError, PlatformConfigError, PublishError, TransientError
from ..models import Connection, Post, PublishResult
from ._calls import call, json_object, rate_limited, text_field
from ._tokens import reconnect
from .base import Adapter, MediaLimit, PlatformFacts, PublishContext, TextLimit, check_length, check_media
from .http import body_excerpt, retry_after
from .text import utf16_length

MAX_CAPTION = 1_024
_CONFIG_HINTS = ("chat not found", "administrator rights", "not enough rights", "chat_admin_required",
                 "have no rights", "bot is not a member", "chat_write_forbidden")


class ChatMigrated(PlatformConfigError):
    def __init__(self, new_chat_id: str) -> None:
        super().__init__(f"the Telegram group became a supergroup: set account_id to {new_chat_id}")
        self.new_chat_id = new_chat_id


def classify(response: httpx.Response) -> PublishError | None:
    data = json_object(response)
    if response.is_success and data.get("ok") is True:
        return None
    raw_code = data.get("error_code")
    code: int = raw_code if isinstance(raw_code, int) else response.status_code
    description = str(data.get("description") or body_excerpt(response))[:300]
    raw_parameters = data.get("parameters")
    parameters: dict[str, Any] = raw_parameters if isinstance(raw_parameters, dict) else {}
    if code == 429 or response.status_code == 429:
        wait = parameters.get("retry_after")
        seconds = float(wait) if isinstance(wait, (int, float)) and not isinstance(wait, bool) else None
        return rate_limited("telegram", response, seconds, description)
    if code in (401, 404):
        return reconnect("telegram", f"the bot token was refused: {description}")
    if parameters.get("migrate_to_chat_id") is not None:
        return ChatMigrated(str(parameters["migrate_to_chat_id"]))
    if code == 403 or any(hint in description.lower() for hint in _CONFIG_HINTS):
        return PlatformConfigError(
            f"Telegram cannot post to the chat ({description}): check account_id (the chat id) "
            "and that the bot is a member allowed to post"
        )
    if code >= 500:
        return TransientError(f"Telegram server error ({code})", retry_after(response))
    return ContentRejectedError(f"Telegram rejected the post: {description}")


class TelegramAdapter(Adapter):
    # Chats and channels take about one message per second.
    facts = PlatformFacts(
        "telegram", "Telegram", api_base="https://api.telegram.org", concurrency=(20, 1),
        text=(TextLimit(4_096, utf16_length),), media=MediaLimit(10),
    )

    def validate(self, post: Post) -> None:
        assert self.facts.media is not None
        check_media(self.name, post, max_items=self.facts.media.max_items)
        if post.media:
            check_length(self.name, utf16_length(post.content), MAX_CAPTION, "characters in an image caption")
        else:
            [text] = self.facts.text
            check_length(self.name, utf16_length(post.content), text.limit)
            if not post.content.strip():
                raise ContentRejectedError("Telegram cannot send an empty message")

    async def publish(self, post: Post, connection: Connection, ctx: PublishContext) -> PublishResult:
        self.validate(post)
        if not connection.access_token:
            raise reconnect(self.name, "the connection has no bot token")
        if not connection.account_id:
            raise PlatformConfigError("the telegram connection has no account_id (the chat id or @channel)")
        urls = [await ctx.media_url(item) for item in post.media]
        try:
            return await self._send(post, connection, connection.account_id, urls)
        except ChatMigrated as moved:
            return await self._send(post, connection, moved.new_chat_id, urls)

    async def _send(self, post: Post, connection: Connection, chat: str, urls: list[str]) -> PublishResult:
        body: dict[str, Any] = {"chat_id": chat}
        parse_mode = connection.metadata.get("parse_mode")
        if isinstance(parse_mode, str) and parse_mode:
            body["parse_mode"] = parse_mode
        if not urls:
            method, body = "sendMessage", {**body, "text": post.content}
        elif len(urls) == 1:
            method, body = "sendPhoto", {**body, "photo": urls[0], "caption": post.content}
        else:
            media = [{"type": "photo", "media": url} for url in urls]
            media[0]["caption"] = post.content
            if "parse_mode" in body:
                media[0]["parse_mode"] = body.pop("parse_mode")
            method, body = "sendMediaGroup", {**body, "media": media}
        url = f"{self.base}/bot{connection.access_token}/{method}"
        response = await call(
            self.client, None, lambda: self.client.build_request("POST", url, json=body), classify,
            what=f"Telegram {method}",
        )
        return _result(json_object(response).get("result"), chat)


def _result(message: Any, chat: str) -> PublishResult:
    if isinstance(message, list):
        message = message[0] if message else None
    if not isinstance(message, dict):
        return PublishResult(None, None)
    message_id = text_field(message, "message_id")
    username = text_field(message, "chat", "username") or (chat[1:] if chat.startswith("@") else None)
    url = f"https://t.me/{username}/{message_id}" if username and message_id else None
    return PublishResult(message_id, url)
