"""Telegram Bot API (a bot posting to a channel, group or chat).

Connection row: ``access_token`` = the bot token (it does not expire; revoked only
through BotFather); ``account_id`` = the chat id (a number, or ``@channelusername``);
optional ``metadata.parse_mode`` (``HTML``, ``MarkdownV2`` or ``Markdown``; none by
default). The post's content is text as written: for the chosen parse mode it is
escaped (MarkdownV2: ``_*[]()~`>#+-=|{}.!`` and the backslash; HTML: ``& < >``; Markdown:
``_*`[``) so that Telegram shows it as written instead of failing with "can't parse
entities". The token is part of every request path, so request URLs never appear in a
message.

Flow: text → ``sendMessage``; one photo → ``sendPhoto``; one video → ``sendVideo``;
2–10 photos and videos, mixed → ``sendMediaGroup`` (an album; its caption is its first
item's). A photo is passed by URL (Telegram fetches it) when it is at most 5 MB, which is
Telegram's limit for URLs, and uploaded as bytes up to 10 MB otherwise. A video is
downloaded and checked in ``prepare`` (MP4, H.264 or HEVC, at most 50 MB: what bots may
upload), for every item of a thread before the first is sent; ``publish`` passes it by URL
up to 20 MB (Telegram's limit for URLs other than photos) and streams it from a spooled
file above that. Limits: text 4,096 and caption 1,024 UTF-16 code units, counted after
entity parsing, i.e. on the text as written. Telegram takes no alt text. A group that
became a supergroup (``migrate_to_chat_id``) is retried once with the new chat id; update
``account_id``.

Threads: each item after the first replies to the one before it (``reply_parameters``
``{message_id}``; an album's first message stands for it), up to 25 items.
``platform_options``: ``disable_notification``, ``protect_content``,
``message_thread_id`` (a forum topic), ``disable_link_preview`` (text messages).

Settings: ``SCHEDULER_TELEGRAM_API_BASE`` (default ``https://api.telegram.org``).
Exactly-once: none offered. Only a 429 with ``retry_after`` (flood control: "the number of
seconds left to wait before the request can be repeated"), a migrated group and the
permanent errors prove that nothing was sent; a 5xx (Telegram's front answers 502 Bad
Gateway after delivering), a timeout or a reset is an unknown outcome, reported and never
retried (``_http.on_create``).
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import regex

from ..errors import ContentRejectedError, PlatformConfigError, PublishError, TransientError
from ..models import Connection, MediaItem, Post, PostItem, PublishResult
from ._calls import filename, json_object, rate_limited, text_field
from ._http import body_excerpt, call, retry_after
from ._rules import check_length, check_media, utf16_length
from ._tokens import reconnect
from ._video import checked_video, is_video
from .base import (
    UNLIMITED,
    Adapter,
    Item,
    MediaLimit,
    Option,
    PlatformFacts,
    Prepared,
    PublishContext,
    TextLimit,
    VideoLimit,
    describe,
)

MAX_CAPTION = 1_024
URL_PHOTO_BYTES = 5 * 1024 * 1024  # the most Telegram fetches from a URL
UPLOAD_PHOTO_BYTES = 10 * 1024 * 1024  # the most it takes as an upload
VIDEO_BYTES = 50_000_000  # "Bots can currently send video files of up to 50 MB in size"
URL_VIDEO_BYTES = 20_000_000  # "20 MB max for other types of content" fetched from a URL
# "Telegram clients support MPEG4 videos (other formats may be sent as Document)".
VIDEO = VideoLimit(("mp4",), ("h264", "hevc"), ("aac", "mp3"), max_bytes=VIDEO_BYTES, per_post=10)
THREAD_MAX = 25  # ours: Telegram has no limit on a reply chain
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


OPTIONS = (
    Option("disable_notification", "boolean", description="sent silently: members get no sound"),
    Option("protect_content", "boolean", description="no forwarding or saving"),
    Option("message_thread_id", "integer", description="the forum topic to post in"),
    Option("disable_link_preview", "boolean", description="no link preview under a text message"),
)


class TelegramAdapter(Adapter):
    # Pacing (Bot FAQ): about one message per second per chat, 20 per minute per group,
    # about 30 per second per bot. A connection is one tenant's bot and chat: 1 in flight
    # per connection; no daemon-wide bound, since every bot has its own budget.
    facts = PlatformFacts(
        "telegram", "Telegram", api_base="https://api.telegram.org", concurrency=(UNLIMITED, 1),
        text=(TextLimit(4_096, utf16_length),), media=MediaLimit(10, video=VIDEO, mixed=True),
        thread=THREAD_MAX, options=OPTIONS,
    )

    def validate_item(self, item: PostItem, what: str) -> None:
        assert self.facts.media is not None
        check_media(
            self.facts.display, item.media, max_items=self.facts.media.max_items, video=True, mixed=True,
            what="this one" if what == "this post" else what,
        )
        if item.media:
            check_length(
                self.facts.display, utf16_length(item.content), MAX_CAPTION, "characters in a media caption", what
            )
        else:
            [text] = self.facts.text
            check_length(self.facts.display, utf16_length(item.content), text.limit, what=what)
            if not item.content.strip():
                raise ContentRejectedError(
                    "Telegram cannot send an empty message" + ("" if what == "this post" else f" ({what})")
                )

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        """Every video of the thread downloaded and checked before anything is sent; what is
        kept is each one's size (by URL up to 20 MB, else uploaded)."""
        _target(connection)
        sizes: dict[str, int] = {}
        for index, item in enumerate(post.items):
            what = describe(index, len(post.items))
            for position, media in enumerate(item.media):
                if is_video(media):
                    async with checked_video(ctx, self.facts.display, VIDEO, media, what, VIDEO_BYTES) as file:
                        sizes[_key(index, position)] = file.size
        return {"videos": sizes} if sizes else {}

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        chat = _target(connection)
        sizes: dict[str, int] = prepared.get("videos", {})
        async with contextlib.AsyncExitStack() as stack:
            attachments = []
            for position, media in enumerate(item.media):
                if is_video(media):
                    size = sizes.get(_key(item.index, position), VIDEO_BYTES)
                    attachments.append(await _video(ctx, stack, media, position, size, _what(item)))
                else:
                    attachments.append(await _photo(ctx, media, position))
            try:
                return await self._send(post, item, connection, chat, attachments)
            except ChatMigrated as moved:
                return await self._send(post, item, connection, moved.new_chat_id, attachments)

    async def _send(
        self, post: Post, item: Item, connection: Connection, chat: str, attachments: list[_Attachment]
    ) -> PublishResult:
        raw_mode = connection.metadata.get("parse_mode")
        parse_mode = raw_mode if isinstance(raw_mode, str) and raw_mode else None
        text = escape(item.content, parse_mode)
        method, fields, files = _message(text, parse_mode, attachments)
        fields = {"chat_id": chat, **fields, **_options(post.options, method)}
        if item.reply_to is not None:
            fields["reply_parameters"] = {"message_id": _message_id(item.reply_to.parent, item)}
        url = f"{self.base}/bot{connection.access_token}/{method}"

        def build() -> httpx.Request:
            if not files:
                return self.client.build_request("POST", url, json=fields)
            form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
            return self.client.build_request("POST", url, data=form, files={k: f() for k, f in files.items()})

        response = await call(self.client, None, build, classify, what=f"Telegram {method}", creates=True)
        return _result(json_object(response).get("result"), chat)


Upload = Callable[[], tuple[str, Any, str]]  # a multipart file, made anew for each request


@dataclass(frozen=True)
class _Attachment:
    """A photo or video as Telegram gets it: by URL (``upload`` None; Telegram fetches it) or
    as an attached upload named ``name``."""

    kind: str  # "photo" or "video"
    name: str
    url: str | None
    upload: Upload | None = None

    @property
    def reference(self) -> str:
        return self.url if self.upload is None and self.url else f"attach://{self.name}"


def _message(text: str, parse_mode: str | None, attachments: list[_Attachment]) -> tuple[str, dict[str, Any],
                                                                                         dict[str, Upload]]:
    """The method, its fields and its uploads for one item."""
    mode = {"parse_mode": parse_mode} if parse_mode else {}
    if not attachments:
        return "sendMessage", {**mode, "text": text}, {}
    if len(attachments) == 1:
        [one] = attachments
        fields: dict[str, Any] = {**mode, "caption": text}
        if one.kind == "video":
            fields["supports_streaming"] = True
        if one.upload is None:  # by URL
            return f"send{one.kind.title()}", {**fields, one.kind: one.reference}, {}
        return f"send{one.kind.title()}", fields, {one.kind: one.upload}  # the upload is the field itself
    media: list[dict[str, Any]] = [{"type": a.kind, "media": a.reference} for a in attachments]
    media[0].update({"caption": text, **mode})  # an album's caption is its first item's
    for entry, attachment in zip(media, attachments, strict=True):
        if attachment.kind == "video":
            entry["supports_streaming"] = True
    uploads = {a.name: a.upload for a in attachments if a.upload is not None}
    return "sendMediaGroup", {"media": media}, uploads


def _options(options: Mapping[str, Any], method: str) -> dict[str, Any]:
    """``platform_options`` as Bot API fields (validated against ``OPTIONS`` already)."""
    fields = {key: options[key] for key in ("disable_notification", "protect_content", "message_thread_id")
              if key in options}
    if options.get("disable_link_preview") and method == "sendMessage":
        fields["link_preview_options"] = {"is_disabled": True}
    return fields


def _message_id(parent: PublishResult, item: Item) -> int:
    parent_id = parent.platform_post_id
    if parent_id is None or not parent_id.lstrip("-").isdigit():
        raise ContentRejectedError(f"Telegram: {_what(item)} cannot reply: the item before it has no message id")
    return int(parent_id)


def _target(connection: Connection) -> str:
    """The chat id, once the connection has a bot token."""
    if not connection.access_token:
        raise reconnect("telegram", "the connection has no bot token")
    if not connection.account_id:
        raise PlatformConfigError("the telegram connection has no account_id (the chat id or @channel)")
    return connection.account_id


def _key(index: int, position: int) -> str:
    return f"{index}.{position}"


def _what(item: Item) -> str:
    return describe(item.index, item.total)


async def _photo(ctx: PublishContext, item: MediaItem, index: int) -> _Attachment:
    """By URL up to 5 MB (Telegram fetches it), else the bytes, up to 10 MB."""
    content, mime = await ctx.media_bytes(item, UPLOAD_PHOTO_BYTES)
    name = f"photo{index}"
    if len(content) <= URL_PHOTO_BYTES:
        return _Attachment("photo", name, await ctx.media_url(item))
    upload = (filename(item, mime, index), content, mime)
    return _Attachment("photo", name, None, lambda: upload)


async def _video(
    ctx: PublishContext, stack: contextlib.AsyncExitStack, item: MediaItem, index: int, size: int, what: str
) -> _Attachment:
    """By URL up to 20 MB (Telegram fetches it), else streamed from a spooled file, up to 50 MB."""
    name = f"video{index}"
    if size <= URL_VIDEO_BYTES:
        return _Attachment("video", name, await ctx.media_url(item))
    file = await stack.enter_async_context(checked_video(ctx, "Telegram", VIDEO, item, what, VIDEO_BYTES))
    return _Attachment("video", name, None, lambda: (file.name, file.open(), file.mime))


def _result(message: Any, chat: str) -> PublishResult:
    if isinstance(message, list):
        message = message[0] if message else None
    if not isinstance(message, dict):
        return PublishResult(None, None)
    message_id = text_field(message, "message_id")
    username = text_field(message, "chat", "username") or (chat[1:] if chat.startswith("@") else None)
    url = f"https://t.me/{username}/{message_id}" if username and message_id else None
    return PublishResult(message_id, url)
