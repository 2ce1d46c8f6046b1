"""Telegram Bot API (a bot posting to a channel, group or chat).

Connection row: ``access_token`` = the bot token (it does not expire; revoked only
through BotFather); ``account_id`` = the chat id (a number, or ``@channelusername``);
optional ``metadata.parse_mode`` (``HTML``, ``MarkdownV2`` or ``Markdown``; none by
default). The post's content is text as written: for the chosen parse mode it is
escaped (MarkdownV2: ``_*[]()~`>#+-=|{}.!`` and the backslash; HTML: ``& < >``; Markdown:
``_*`[``) so that Telegram shows it as written instead of failing with "can't parse
entities". The token is part of every request path, so request URLs never appear in a
message.

Flow: text → ``sendMessage``; one image → ``sendPhoto``; 2–10 images →
``sendMediaGroup``. A photo is passed by URL (Telegram fetches it) when it is at most
5 MB, which is Telegram's limit for URLs, and uploaded as bytes up to 10 MB otherwise.
Limits: text 4,096 and caption 1,024 UTF-16 code units, counted after entity parsing,
i.e. on the text as written. A group that became a supergroup (``migrate_to_chat_id``)
is retried once with the new chat id; update ``account_id``.

Settings: ``SCHEDULER_TELEGRAM_API_BASE`` (default ``https://api.telegram.org``).
Exactly-once: none offered. Only a 429 with ``retry_after`` (flood control: "the number of
seconds left to wait before the request can be repeated"), a migrated group and the
permanent errors prove that nothing was sent; a 5xx (Telegram's front answers 502 Bad
Gateway after delivering), a timeout or a reset is an unknown outcome, reported and never
retried (``_http.on_create``).
"""

from __future__ import annotations

import html
import json
from typing import Any

import httpx
import regex

from ..errors import ContentRejectedError, PlatformConfigError, PublishError, TransientError
from ..models import Connection, MediaItem, Post, PostItem, PublishResult
from ._calls import filename, json_object, rate_limited, text_field
from ._http import body_excerpt, call, retry_after
from ._rules import check_length, check_media, utf16_length
from ._tokens import reconnect
from .base import UNLIMITED, Adapter, Item, MediaLimit, PlatformFacts, Prepared, PublishContext, TextLimit

MAX_CAPTION = 1_024
URL_PHOTO_BYTES = 5 * 1024 * 1024  # the most Telegram fetches from a URL
UPLOAD_PHOTO_BYTES = 10 * 1024 * 1024  # the most it takes as an upload
_MARKDOWN_V2 = regex.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")
_MARKDOWN = regex.compile(r"([_*`\[])")
_CONFIG_HINTS = ("chat not found", "administrator rights", "not enough rights", "chat_admin_required",
                 "have no rights", "bot is not a member", "chat_write_forbidden")


def escape(text: str, parse_mode: str | None) -> str:
    """``text`` escaped so that ``parse_mode`` shows it as written."""
    if parse_mode == "MarkdownV2":
        return _MARKDOWN_V2.sub(r"\\\1", text)
    if parse_mode == "HTML":
        return html.escape(text, quote=False)
    if parse_mode == "Markdown":
        return _MARKDOWN.sub(r"\\\1", text)
    return text


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
    # Pacing (Bot FAQ): about one message per second per chat, 20 per minute per group,
    # about 30 per second per bot. A connection is one tenant's bot and chat: 1 in flight
    # per connection; no daemon-wide bound, since every bot has its own budget.
    facts = PlatformFacts(
        "telegram", "Telegram", api_base="https://api.telegram.org", concurrency=(UNLIMITED, 1),
        text=(TextLimit(4_096, utf16_length),), media=MediaLimit(10),
    )

    def validate_item(self, item: PostItem, what: str) -> None:
        assert self.facts.media is not None
        check_media(self.facts.display, item.media, max_items=self.facts.media.max_items)
        if item.media:
            check_length(
                self.facts.display, utf16_length(item.content), MAX_CAPTION, "characters in an image caption", what
            )
        else:
            [text] = self.facts.text
            check_length(self.facts.display, utf16_length(item.content), text.limit, what=what)
            if not item.content.strip():
                raise ContentRejectedError("Telegram cannot send an empty message")

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        if not connection.access_token:
            raise reconnect(self.name, "the connection has no bot token")
        if not connection.account_id:
            raise PlatformConfigError("the telegram connection has no account_id (the chat id or @channel)")
        photos = [await _photo(ctx, media, index) for index, media in enumerate(item.media)]
        try:
            return await self._send(item, connection, connection.account_id, photos)
        except ChatMigrated as moved:
            return await self._send(item, connection, moved.new_chat_id, photos)

    async def _send(self, item: Item, connection: Connection, chat: str, photos: list[_Photo]) -> PublishResult:
        fields: dict[str, Any] = {"chat_id": chat}
        raw_mode = connection.metadata.get("parse_mode")
        parse_mode = raw_mode if isinstance(raw_mode, str) and raw_mode else None
        if parse_mode:
            fields["parse_mode"] = parse_mode
        text = escape(item.content, parse_mode)
        files = {photo.name: photo.upload for photo in photos if photo.upload is not None}
        if not photos:
            method, fields = "sendMessage", {**fields, "text": text}
        elif len(photos) == 1:
            method, fields = "sendPhoto", {**fields, "caption": text}
            if photos[0].upload is None:
                fields["photo"] = photos[0].reference
            else:  # the upload itself is the photo field
                files = {"photo": photos[0].upload}
        else:
            media: list[dict[str, str]] = [{"type": "photo", "media": photo.reference} for photo in photos]
            media[0]["caption"] = text
            if parse_mode:
                media[0]["parse_mode"] = fields.pop("parse_mode")
            method, fields = "sendMediaGroup", {**fields, "media": media}
        url = f"{self.base}/bot{connection.access_token}/{method}"

        def build() -> httpx.Request:
            if not files:
                return self.client.build_request("POST", url, json=fields)
            form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
            return self.client.build_request("POST", url, data=form, files=files)

        response = await call(self.client, None, build, classify, what=f"Telegram {method}", creates=True)
        return _result(json_object(response).get("result"), chat)


class _Photo:
    """A photo as Telegram gets it: by URL (``upload`` None) or as an attached upload."""

    def __init__(self, name: str, reference: str, upload: tuple[str, bytes, str] | None) -> None:
        self.name = name
        self.reference = reference  # the URL, or attach://<name> inside a media group
        self.upload = upload


async def _photo(ctx: PublishContext, item: MediaItem, index: int) -> _Photo:
    """By URL up to 5 MB (Telegram fetches it), else the bytes, up to 10 MB."""
    content, mime = await ctx.media_bytes(item, UPLOAD_PHOTO_BYTES)
    if len(content) <= URL_PHOTO_BYTES:
        return _Photo(f"photo{index}", await ctx.media_url(item), None)
    name = f"photo{index}"
    return _Photo(name, f"attach://{name}", (filename(item, mime, index), content, mime))


def _result(message: Any, chat: str) -> PublishResult:
    if isinstance(message, list):
        message = message[0] if message else None
    if not isinstance(message, dict):
        return PublishResult(None, None)
    message_id = text_field(message, "message_id")
    username = text_field(message, "chat", "username") or (chat[1:] if chat.startswith("@") else None)
    url = f"https://t.me/{username}/{message_id}" if username and message_id else None
    return PublishResult(message_id, url)
