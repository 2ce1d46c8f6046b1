"""Discord through a channel webhook (``?wait=true`` so a failed save is reported).

Connection row: ``account_id`` = the webhook id and ``access_token`` = the webhook token
(or ``metadata.webhook_url`` = ``https://discord.com/api/webhooks/{id}/{token}``); the
pair is the secret (it does not expire; deleting the webhook ends it); optional
``metadata.thread_id`` / ``metadata.thread_name`` (forum channels),
``metadata.username``, ``metadata.avatar_url``, ``metadata.guild_id`` (else read once
from the webhook for the public URL), ``metadata.allow_mentions``: ``true`` (or a list of
``users``/``roles``/``everyone``) lets the post ping; by default ``allowed_mentions`` is
``{"parse": []}``, so ``@everyone``, ``@here`` and ``<@id>`` in a post ping nobody.

Flow: text → JSON ``{content}``; files → multipart ``files[n]`` + ``payload_json`` with
``attachments`` (each one's ``description`` is its alt text, up to 1,024 characters).
Content up to 2,000 characters, up to 10 files of 10 MiB (a webhook's default upload
limit): images are read whole, anything else (a video) is streamed from a spooled file,
refused past 10 MiB before anything is sent. Discord states no codec or duration rule, so a
video is a file like any other. ``platform_options``: ``thread_name`` and
``applied_tags`` (a forum channel's new post), ``username``, ``avatar_url`` (over the
connection's), ``suppress_embeds``, ``silent`` (message flags ``SUPPRESS_EMBEDS``,
``SUPPRESS_NOTIFICATIONS``). A webhook cannot reply, so Discord has no threads here.

Settings: ``SCHEDULER_DISCORD_API_BASE`` (default ``https://discord.com/api/v10``).
Exactly-once: none for webhooks (no nonce). Only a 429 (the rate limiter refused the
request), a refused connection and the permanent errors prove that nothing was posted; a
5xx (a 502 from the gateway included: repeats after it have duplicated messages), a
timeout or a reset is an unknown outcome, reported and never retried
(``_http.on_create``).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ..errors import ContentRejectedError, PlatformConfigError, PublishError, TransientError
from ..models import Connection, MediaItem, Post, PublishResult
from ._calls import best_effort, filename, json_object, rate_limited, require_id, text_field
from ._http import body_excerpt, call, retry_after
from ._tokens import reconnect
from ._video import spooled
from .base import Adapter, Item, MediaLimit, Option, PlatformFacts, Prepared, PublishContext, TextLimit

FILE_BYTES = 10 * 1024 * 1024
MAX_DESCRIPTION = 1_024  # an attachment's description (its alt text)
_WEBHOOK_URL = re.compile(r"/webhooks/(\d+)/([^/?#]+)")


def classify(response: httpx.Response) -> PublishError | None:
    if response.is_success:
        return None
    data = json_object(response)
    code, message = data.get("code"), str(data.get("message") or body_excerpt(response))[:300]
    status = response.status_code
    if status == 401 or code == 50027:
        return reconnect("discord", f"invalid webhook token: {message}")
    if status == 404 or code == 10015:
        return reconnect("discord", f"the webhook no longer exists: {message}")
    if status == 429:
        wait = data.get("retry_after")
        seconds = float(wait) if isinstance(wait, (int, float)) and not isinstance(wait, bool) else None
        return rate_limited("discord", response, seconds if seconds is not None else retry_after(response), message)
    if status == 403:
        return PlatformConfigError(
            f"Discord refused the webhook post ({message}): check the webhook's channel permissions"
        )
    if status >= 500:
        return TransientError(f"Discord server error (HTTP {status})", retry_after(response))
    errors = data.get("errors")
    detail = f" {json.dumps(errors)[:200]}" if errors else ""
    return ContentRejectedError(f"Discord rejected the post: {message}{detail}")


OPTIONS = (
    Option("thread_name", "string", description="a forum channel's new post is titled so"),
    Option("applied_tags", "strings", description="the forum tags (ids) of the new post"),
    Option("username", "string", description="the name the webhook posts as"),
    Option("avatar_url", "string", description="the avatar the webhook posts with"),
    Option("suppress_embeds", "boolean", description="no link embeds under the message"),
    Option("silent", "boolean", description="no push or desktop notification"),
)
FLAGS = {"suppress_embeds": 1 << 2, "silent": 1 << 12}  # SUPPRESS_EMBEDS, SUPPRESS_NOTIFICATIONS


class DiscordAdapter(Adapter):
    # Pacing: per-route buckets (a webhook is its own top-level resource) and 50 requests
    # per second globally from one address; 10,000 refused requests in 10 min ban the IP.
    # 1 in flight per webhook; 50 in all.
    facts = PlatformFacts(
        "discord", "Discord", token_in_metadata="webhook_url", api_base="https://discord.com/api/v10",
        concurrency=(50, 1), text=(TextLimit(2_000),),
        media=MediaLimit(10, images_only=False, mixed=True, alt_text=True, alt_text_max=MAX_DESCRIPTION),
        options=OPTIONS,
    )

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        webhook_id, token = _webhook(connection)
        meta = connection.metadata
        url = f"{self.base}/webhooks/{webhook_id}/{token}"
        params = {"wait": "true"}
        if meta.get("thread_id"):
            params["thread_id"] = str(meta["thread_id"])
        payload = _payload(item.content, meta, post.options)
        async with contextlib.AsyncExitStack() as stack:
            files: dict[str, Upload] = {}
            attachments = []
            for index, media in enumerate(item.media):
                name, files[f"files[{index}]"] = await _file(ctx, stack, media, index)
                attachments.append({"id": index, "filename": name, **({"description": media.alt} if media.alt else {})})

            def build() -> httpx.Request:
                if not files:
                    return self.client.build_request("POST", url, params=params, json=payload)
                body = json.dumps({**payload, "attachments": attachments})
                uploads = {field: make() for field, make in files.items()}
                return self.client.build_request("POST", url, params=params, files=uploads,
                                                 data={"payload_json": body})

            response = await call(self.client, None, build, classify, what="Discord post", creates=True)
        message = json_object(response)
        message_id = require_id(message, "id", what="Discord post")
        guild = text_field(meta, "guild_id") or await best_effort(self._guild(url))
        channel = text_field(message, "channel_id")
        link = f"https://discord.com/channels/{guild}/{channel}/{message_id}" if guild and channel else None
        return PublishResult(message_id, link)

    async def _guild(self, url: str) -> str | None:
        response = await call(
            self.client, None, lambda: self.client.build_request("GET", url), classify, what="Discord webhook"
        )
        return text_field(json_object(response), "guild_id")


Upload = Callable[[], tuple[str, Any, str]]  # a multipart file, made anew for each request


def _payload(content: str, meta: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON fields: the connection's defaults, the post's options over them."""
    payload: dict[str, Any] = {"content": content, "allowed_mentions": _allowed_mentions(meta)}
    for key in ("username", "avatar_url", "thread_name"):
        value = options.get(key, meta.get(key))
        if isinstance(value, str) and value:
            payload[key] = value
    if options.get("applied_tags"):
        payload["applied_tags"] = list(options["applied_tags"])
    if flags := sum(bit for key, bit in FLAGS.items() if options.get(key)):
        payload["flags"] = flags
    return payload


async def _file(ctx: PublishContext, stack: contextlib.AsyncExitStack, media: MediaItem, index: int) -> tuple[
        str, Upload]:
    """An attachment: an image read whole (small), anything else (a video) streamed from a
    spooled file; each at most Discord's 10 MiB."""
    if media.mime and media.mime.startswith("image/"):
        content, mime = await ctx.media_bytes(media, FILE_BYTES)
        name = filename(media, mime, index)
        return name, lambda: (name, content, mime)
    file = await stack.enter_async_context(
        spooled(ctx, media, FILE_BYTES, "Discord takes files up to 10 MiB", f"attachment {index + 1}")
    )
    name = filename(media, file.mime, index)
    return name, lambda: (name, file.open(), file.mime)


_MENTION_KINDS = ("users", "roles", "everyone")


def _allowed_mentions(meta: Mapping[str, Any]) -> dict[str, list[str]]:
    """Nobody is pinged unless the connection opts in (``metadata.allow_mentions``)."""
    allowed = meta.get("allow_mentions")
    if allowed is True:
        return {"parse": list(_MENTION_KINDS)}
    if isinstance(allowed, list):
        return {"parse": [kind for kind in _MENTION_KINDS if kind in allowed]}
    return {"parse": []}


def _webhook(connection: Connection) -> tuple[str, str]:
    if connection.account_id and connection.access_token:
        return connection.account_id, connection.access_token
    match = _WEBHOOK_URL.search(str(connection.metadata.get("webhook_url") or ""))
    if match:
        return match.group(1), match.group(2)
    raise PlatformConfigError(
        "the discord connection needs account_id (webhook id) and access_token (webhook token), "
        "or metadata.webhook_url"
    )
