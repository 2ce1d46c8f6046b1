"""Meta Graph APIs (Facebook, Instagram, Threads): one error mapping, one container flow.

Errors come as ``{"error": {message, type, code, error_subcode, is_transient,
error_user_msg}}`` and are sorted by ``code``/``error_subcode``, not by HTTP status.
Rate-limit errors carry no ``Retry-After``; the wait is estimated from
``X-Business-Use-Case-Usage`` (``estimated_time_to_regain_access``, minutes).

Instagram and Threads publish through a container. ``prepare``: create it (its id is
checkpointed at once, as the item's ``container_id``) and wait (bounded poll) until its
status is ``FINISHED`` (a carousel's children first, each ready before the parent is made).
A Threads reply's container needs its parent's id, so it is made in ``publish``, under the
item's own checkpoints. ``publish``: ``*_publish`` it. An attempt that may follow an earlier
one (``item.resumed``) reads the container's status first and never publishes a
``PUBLISHED`` container again (it recovers the media id from the account's recent posts
when it can); an ``ERROR`` or ``EXPIRED`` one is dropped and prepared anew. So containers
(children too) are retried freely, and ``*_publish`` is the request that creates the post:
a 5xx or a "temporary" Graph error there is an unknown outcome (``_http.on_create``), which
the engine repeats safely because the platform declares ``idempotent`` (the repeat checks
the container first).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from ..config.platforms import PlatformSettings
from ..errors import (
    AuthError,
    ContentRejectedError,
    PlatformConfigError,
    PreparedStaleError,
    PublishError,
    TransientError,
)
from ..models import Connection, MediaItem, PublishResult, TokenSet
from ._calls import best_effort, json_object, poll, preparing, rate_limited, require_id, text_field
from ._http import Ready, call, send
from ._tokens import TokenHolder, oauth_token_set, reconnect
from .base import DISPLAY, Item, PublishContext

AUTH_CODES = frozenset({102, 10, *range(200, 300)})
AUTH_SUBCODES = frozenset({458, 459, 460, 463, 464, 467, 492, 1404078})
RATE_CODES = frozenset({4, 17, 32, 613, 341, *range(80001, 80015)})
RATE_SUBCODES = frozenset({1390008, 2207042})
TRANSIENT_CODES = frozenset({1, 2})
TRANSIENT_SUBCODES = frozenset({1363047, 1609010, 2207001, 2207003, 2207027, 2207032, 2207053})
CONTENT_CODES = frozenset({506, 368})
CONTENT_SUBCODES = frozenset(
    {1609005, 1366046, 1366051, 1346003, 1404102, 2061006, 2207004, 2207005, 2207009, 2207010, 2207020,
     2207026, 2207051}
)
CONFIG_CODES = frozenset({803})
DAY_QUOTA_SUBCODES = frozenset({2207042})  # Instagram's 24-hour publishing quota

Build = Callable[[], Awaitable[Mapping[str, str]]]  # the fields of a container, made when it is needed
Part = Callable[[MediaItem, str, bool], dict[str, str]]  # one media item's fields (item, url, in a carousel)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_wait(response: httpx.Response) -> float | None:
    """Seconds until access returns, from ``X-Business-Use-Case-Usage`` (minutes inside)."""
    raw = response.headers.get("x-business-use-case-usage")
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    minutes = [
        entry.get("estimated_time_to_regain_access")
        for entries in (data.values() if isinstance(data, dict) else ())
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict)
    ]
    waits = [m for m in minutes if isinstance(m, (int, float)) and not isinstance(m, bool) and m > 0]
    return max(waits) * 60.0 if waits else None


def _label(response: httpx.Response, error: Mapping[str, Any]) -> str:
    """Meta's own words for an error, with its code and subcode."""
    code, subcode = _int(error.get("code")), _int(error.get("error_subcode"))
    text = str(error.get("error_user_msg") or error.get("message") or f"HTTP {response.status_code}")[:300]
    return f"{text} (code {code}, subcode {subcode})" if subcode else f"{text} (code {code})"


def classify(platform: str, response: httpx.Response) -> PublishError | None:
    """None for a success; otherwise the error this Graph answer means."""
    data = json_object(response)
    error = data.get("error")
    if response.is_success and not isinstance(error, dict):
        return None
    error = error if isinstance(error, dict) else {}
    code, subcode = _int(error.get("code")), _int(error.get("error_subcode"))
    label = _label(response, error)
    name = DISPLAY[platform]
    if code == 190:
        return reconnect(platform, label, refreshable=True)
    if code in RATE_CODES or subcode in RATE_SUBCODES:
        wait = usage_wait(response)
        if wait is None and subcode in DAY_QUOTA_SUBCODES:
            wait = 3600.0
        return rate_limited(platform, response, wait, label)
    if code in AUTH_CODES or subcode in AUTH_SUBCODES or (
        error.get("type") == "OAuthException" and subcode is None and code is None
    ):
        return reconnect(platform, label)
    if code in TRANSIENT_CODES or subcode in TRANSIENT_SUBCODES or error.get("is_transient") is True:
        return TransientError(f"{name} is temporarily unavailable: {label}")
    if response.status_code >= 500 and code not in CONTENT_CODES and subcode not in CONTENT_SUBCODES:
        return TransientError(f"{name} server error (HTTP {response.status_code}): {label}")
    if code in CONFIG_CODES or response.status_code == 404 or (code == 100 and subcode == 33):
        return PlatformConfigError(
            f"{name} does not know the target account: {label}; check the connection's account_id"
        )
    return ContentRejectedError(f"{name} rejected the post: {label}")


def form_request(client: httpx.AsyncClient, url: str, token: str, fields: Mapping[str, str]) -> httpx.Request:
    return client.build_request("POST", url, data={**fields, "access_token": token})


def get_request(
    client: httpx.AsyncClient, url: str, token: str, fields: str, extra: Mapping[str, str] | None = None
) -> httpx.Request:
    return client.build_request("GET", url, params={"fields": fields, **(extra or {}), "access_token": token})


@dataclass(frozen=True)
class ContainerApi:
    """The container endpoints of one account on Instagram or Threads."""

    platform: str
    base: str  # e.g. https://graph.facebook.com/v26.0
    user_id: str
    create_edge: str  # "media" | "threads"
    publish_edge: str  # "media_publish" | "threads_publish"
    status_field: str  # "status_code" | "status"
    caption_field: str  # "caption" | "text"
    reply_edge: str | None = None  # where the account's replies are listed ("replies" on Threads)


class ContainerFlow:
    def __init__(
        self, api: ContainerApi, client: httpx.AsyncClient, holder: TokenHolder, settings: PlatformSettings
    ) -> None:
        self.api = api
        self.client = client
        self.holder = holder
        self.settings = settings

    def _classify(self, response: httpx.Response) -> PublishError | None:
        return classify(self.api.platform, response)

    async def _post(
        self, path: str, fields: Mapping[str, str], what: str, *, creates: bool, ready: httpx.Request | None = None
    ) -> dict[str, Any]:
        """``ready``: the first send's request, built ahead (a re-send after a refresh is built anew)."""
        url = f"{self.api.base}/{path}"
        first = [ready] if ready is not None else []
        response = await call(
            self.client, self.holder,
            lambda: first.pop() if first else form_request(self.client, url, self.holder.token, fields),
            self._classify, what=what, creates=creates,
        )
        return json_object(response)

    async def _get(self, path: str, fields: str, what: str, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
        url = f"{self.api.base}/{path}"
        response = await call(
            self.client, self.holder, lambda: get_request(self.client, url, self.holder.token, fields, extra),
            self._classify, what=what,
        )
        return json_object(response)

    async def create(self, fields: Mapping[str, str]) -> str:
        name = DISPLAY[self.api.platform]
        data = await self._post(
            f"{self.api.user_id}/{self.api.create_edge}", fields, f"{name} container", creates=False
        )
        container = text_field(data, "id")
        if not container:
            raise TransientError(f"{name} created no container (no id in the answer)")
        return container

    async def status(self, container: str) -> tuple[str, str]:
        fields = f"{self.api.status_field},status" if self.api.status_field != "status" else "status,error_message"
        data = await self._get(container, fields, f"{DISPLAY[self.api.platform]} container status")
        status = str(data.get(self.api.status_field) or "")
        detail = str(data.get("error_message") or data.get("status") or status)
        return status, detail

    async def wait_finished(self, container: str) -> None:
        name = DISPLAY[self.api.platform]

        async def finished() -> bool:
            status, detail = await self.status(container)
            if status in ("ERROR", "EXPIRED"):
                raise ContentRejectedError(f"{name} could not process the media: {detail[:300]}")
            return status in ("FINISHED", "PUBLISHED")

        await poll(
            finished,
            interval=self.settings.media_poll_interval_seconds,
            timeout=self.settings.media_poll_timeout_seconds,
            what=f"{name} media container",
        )

    async def publish_container(self, container: str, ready: Ready | None = None) -> str:
        """``ready``: ``publish_request``'s, sent if it was built for this container and token."""
        name = DISPLAY[self.api.platform]
        made_for = (_publish_url(self.api), container, self.holder.token)
        data = await self._post(
            f"{self.api.user_id}/{self.api.publish_edge}", {"creation_id": container}, f"{name} publish",
            creates=True, ready=ready.request if ready is not None and ready.made_for == made_for else None,
        )
        return require_id(data, "id", what=f"{name} publish")

    async def permalink(self, media_id: str) -> str | None:
        data = await self._get(media_id, "permalink", f"{DISPLAY[self.api.platform]} permalink")
        return text_field(data, "permalink")

    async def recover(self, caption: str, reply: bool = False) -> PublishResult:
        """The already-published post (or reply) among the account's latest, matched by its text."""
        fields = f"id,{self.api.caption_field},permalink"
        edge = self.api.reply_edge if reply and self.api.reply_edge else self.api.create_edge
        data = await self._get(
            f"{self.api.user_id}/{edge}", fields, f"{DISPLAY[self.api.platform]} recent posts", {"limit": "10"},
        )
        entries = data.get("data")
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get(self.api.caption_field) == caption and text_field(entry, "id"):
                return PublishResult(text_field(entry, "id"), text_field(entry, "permalink"))
        return PublishResult(None, None)

    async def media_fields(
        self, media: Sequence[MediaItem], ctx: PublishContext, part: Part
    ) -> dict[str, str]:
        """The fields of an item's container for its media: the one image's or video's own
        (``part(item, url, False)``), or a ``CAROUSEL`` of children made now, each ready
        (``FINISHED``) before the parent is (a video child takes a while)."""
        urls = [await ctx.media_url(item) for item in media]
        if len(media) == 1:
            return part(media[0], urls[0], False)
        children = []
        for item, url in zip(media, urls, strict=True):
            child = await self.create({**part(item, url, True), "is_carousel_item": "true"})
            await self.wait_finished(child)
            children.append(child)
        return {"media_type": "CAROUSEL", "children": ",".join(children)}

    async def comment(self, media_id: str, message: str) -> str:
        """A comment under a published post (Instagram's first comment): it creates."""
        name = DISPLAY[self.api.platform]
        data = await self._post(f"{media_id}/comments", {"message": message}, f"{name} comment", creates=True)
        return require_id(data, "id", what=f"{name} comment")

    async def prepare(
        self, state: Mapping[str, Any], ctx: PublishContext, build: Build
    ) -> None:
        """Create the container (its id checkpointed at once) and wait until it is ready. One
        an earlier attempt made is kept: ``publish`` checks it before using it."""
        if _container(state):
            return
        container = await self.create(await build())
        await ctx.checkpoint(container_id=container)
        await self.wait_finished(container)

    async def publish(self, item: Item, ctx: PublishContext, build: Build | None = None) -> PublishResult:
        """Publish the item's container once. ``build``: the item's container is made here
        (a Threads reply's needs its parent's id), unless an earlier attempt made it."""
        name = DISPLAY[self.api.platform]
        if build is not None and _container(item.state) is None:
            await preparing(self.prepare(item.state, ctx, build))
            item = dataclasses.replace(item, state=ctx.state, resumed=False)
        container = _container(item.state)
        if container is None:
            raise PreparedStaleError(f"{name}: no container was prepared for this post")
        if item.resumed:  # an earlier attempt may have published it
            status, _ = await self.status(container)
            if status == "PUBLISHED":
                try:
                    return await self.recover(item.content, reply=item.reply_to is not None)
                except PublishError:
                    return PublishResult(None, None)
            if status not in ("FINISHED", "IN_PROGRESS"):  # ERROR / EXPIRED: never published
                await ctx.checkpoint(container_id=None)
                raise PreparedStaleError(f"{name} container {status.lower() or 'lost'}: making a new one")
            await self.wait_finished(container)
        media_id = await self.publish_container(container, item.ready)
        return PublishResult(media_id, await best_effort(self.permalink(media_id)))


def publish_request(client: httpx.AsyncClient, api: ContainerApi, token: str, state: Mapping[str, Any]) -> Ready | None:
    """The publish call for the container ``state`` holds, built before the instant
    (``delivery.build_ahead``); None when no container was prepared."""
    container = _container(state)
    if container is None or not token:
        return None
    url = _publish_url(api)
    return Ready(form_request(client, url, token, {"creation_id": container}), (url, container, token))


def _publish_url(api: ContainerApi) -> str:
    return f"{api.base}/{api.user_id}/{api.publish_edge}"


def _container(state: Mapping[str, Any]) -> str | None:
    container = state.get("container_id")
    return container if isinstance(container, str) and container else None


def long_lived_refresher(
    client: httpx.AsyncClient, platform: str, url: str, grant_type: str
) -> Callable[[Connection], Awaitable[TokenSet]]:
    """Refresh of a 60-day Instagram-Login or Threads token (``GET …/refresh_access_token``)."""

    async def refresh(connection: Connection) -> TokenSet:
        token = connection.access_token or ""
        request = client.build_request("GET", url, params={"grant_type": grant_type, "access_token": token})
        response = await send(client, request, what=f"{DISPLAY[platform]} token refresh")
        error = classify(platform, response)
        if isinstance(error, AuthError):
            body = json_object(response).get("error")
            reason = _label(response, body if isinstance(body, dict) else {})
            raise reconnect(platform, f"the token could not be refreshed: {reason}") from None
        if error is not None:
            raise error
        return oauth_token_set(json_object(response), platform=platform)

    return refresh
