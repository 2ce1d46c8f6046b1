"""The driver of one publish: prepare, then each item of the thread exactly once, then the
first comment. Generic: adapters implement ``prepare``, ``publish`` (one item) and
``comment``; this module decides what is checkpointed, what is resumed and what a partial
failure says.

::

    deliver = prepare + publish

    prepare   publish_state.prepared made for this very post and connection?  → reuse it
              else adapter.prepare (publishes nothing: a lost answer is retryable)
                   → checkpoint {"prepared": {"for": <fingerprint>, "value": …}} unless empty
    publish   for each item after the last one known to be out (publish_state.items):
                  adapter.publish(item, reply_to = (first item, previous item))
                      PreparedStaleError (a container expired, …) → prepare anew, once, and repeat
                  → checkpoint {"items": [{id, url, ref}, …]}      before the next step
              first comment (if any, and not out yet):
                  adapter.comment(on = the first item)
                      → checkpoint {"first_comment": {id, url}}
                      failure → checkpoint {"first_comment": {"error": …}}, and the post
                                is published all the same, with a notice

``publish_state`` keys (the daemon's; a tenant reads them, never writes them):

* ``prepared``: what prepare made (an adapter's JSON: media ids, a container id) and the
  fingerprint of the post it was made for (text, media, thread, first comment, options,
  platform, connection): an edit or another connection makes it stale, and it is made anew;
* ``items``: each item known to be out, in order: ``{"id", "url"}`` (+ ``"ref"``, what a
  reply needs). A retry, a recovery or a reschedule of a partly published thread resumes
  after the last one (migrations/006 keeps ``items`` through a reschedule);
* ``first_comment``: ``{"id", "url"}`` once out, ``{"error": …}`` when it failed;
* the adapter's own checkpoints for the first item at the top level (where they have
  always been: ``container_id``, ``rkey``, …), and for item n ≥ 2 under ``item_<n>``.

Built ahead: an adapter with a ``build(post, connection, state) -> Ready | None`` method
(webhook: the signed body; Instagram: ``media_publish`` for the prepared container) makes
the request of a single-item post's first attempt before the instant (``build_ahead``, run
by the engine at the claim: no I/O); ``publish`` gets it as ``item.ready`` and sends it
unless what it was built from changed (a refreshed token, a new container).

Round trips: a single-item post with nothing to prepare checkpoints nothing; each further
step costs one checkpoint, written before the next step is sent.

A failure at item n ≥ 2 leaves items 1 … n-1 out: the attempt's outcome is classified as
usual from the item's error, and ``incomplete`` (called by the engine on that outcome) says
which items are out and which failed and why, and names the first item as the row's
``platform_post_id``/``url``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from ..errors import PreparedStaleError
from ..mediafile import MediaFile
from ..models import Connection, Delivery, MediaItem, Outcome, OutcomeKind, Post, PublishResult, Refresher
from ._calls import preparing
from ._http import Ready
from .base import Item, PlatformAdapter, Prepared, PublishContext, ReplyTo

__all__ = ["build_ahead", "deliver", "incomplete", "prepare", "publish", "published_items"]

PREPARED, ITEMS, COMMENT = "prepared", "items", "first_comment"
_LISTED = 10  # items named in a message; publish_state.items has them all


async def deliver(
    adapter: PlatformAdapter, post: Post, connection: Connection, ctx: PublishContext, ready: Ready | None = None,
    *, validated: bool = False,
) -> Delivery:
    """Prepare (or reuse) and publish ``post``: what the engine runs at the due instant
    (``ready``: what ``build_ahead`` built for it; ``validated``: the caller validated it)."""
    tracked = _Tracked(ctx, post)
    prepared = await prepare(adapter, post, connection, tracked, validated=validated)
    return await publish(adapter, post, connection, tracked, prepared, ready)


def build_ahead(adapter: PlatformAdapter, post: Post, connection: Connection) -> Ready | None:
    """The request that makes a single-item post visible on its first attempt, built now,
    before the instant, by the adapter's ``build`` (where it has one) from the post, its
    connection and its checkpoints; None: it is built at the instant. No I/O."""
    build = getattr(adapter, "build", None)
    if build is None or len(post.items) != 1 or post.attempt > 1 or published_items(post.publish_state):
        return None
    ready: Ready | None = build(post, connection, post.publish_state)
    return ready


def fingerprint(post: Post, connection: Connection) -> str:
    """What prepared artifacts were made for: the post's publishable content and its target."""
    made_for = {
        "platform": post.platform,
        "connection": str(connection.id),
        "account": connection.account_id,
        "items": [[item.content, [dataclasses.asdict(m) for m in item.media]] for item in post.items],
        "first_comment": post.first_comment,
        "options": post.options,
    }
    return hashlib.sha256(json.dumps(made_for, sort_keys=True, default=str).encode()).hexdigest()[:32]


async def prepare(
    adapter: PlatformAdapter, post: Post, connection: Connection, ctx: PublishContext, *, validated: bool = False
) -> Prepared:
    """What an earlier attempt prepared for this very post and connection, else prepared now
    (and checkpointed, unless there is nothing to keep)."""
    if not validated:
        adapter.validate(post)  # no call for a post the platform would refuse
    ctx = _tracked(ctx, post)
    kept = ctx.state.get(PREPARED)
    # The fingerprint only when there is something to compare or keep: most posts have neither.
    if isinstance(kept, dict) and isinstance(kept.get("value"), dict) and kept.get("for") == fingerprint(
        post, connection
    ):
        value: Prepared = kept["value"]
        return value
    return await _prepare_now(adapter, post, connection, ctx)


async def _prepare_now(adapter: PlatformAdapter, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
    prepared = await preparing(adapter.prepare(post, connection, ctx))
    if prepared:
        await ctx.checkpoint(**{PREPARED: {"for": fingerprint(post, connection), "value": prepared}})
    return prepared


def published_items(state: Mapping[str, Any]) -> list[PublishResult]:
    """The items ``publish_state`` records as out, in order."""
    entries = state.get(ITEMS)
    out = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            break
        out.append(_result(entry))
    return out


def _result(entry: Mapping[str, Any]) -> PublishResult:
    ref = entry.get("ref")
    return PublishResult(
        _text(entry.get("id")), _text(entry.get("url")), ref if isinstance(ref, dict) else None
    )


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _entry(result: PublishResult) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": result.platform_post_id, "url": result.platform_post_url}
    if result.ref:
        entry["ref"] = dict(result.ref)
    return entry


async def publish(
    adapter: PlatformAdapter, post: Post, connection: Connection, ctx: PublishContext, prepared: Prepared,
    ready: Ready | None = None,
) -> Delivery:
    """Publish each item not known to be out, in order, then the first comment."""
    ctx = _tracked(ctx, post)
    items = post.items
    out = published_items(ctx.state)[: len(items)]
    resume_at = len(out)
    renewed = False
    index = resume_at
    while index < len(items):
        item = Item(
            index=index, total=len(items), content=items[index].content, media=items[index].media,
            reply_to=ReplyTo(out[0], out[-1]) if out else None, state=_item_state(ctx.state, index),
            resumed=post.attempt > 1 and index == resume_at,
            ready=ready if index == 0 and not renewed else None,  # a renewed prepare makes it stale
        )
        try:
            result = await adapter.publish(post, item, connection, _ItemContext(ctx, index), prepared)
        except PreparedStaleError:
            if renewed:
                raise
            renewed = True
            prepared = await _prepare_now(adapter, post, connection, ctx)
            continue
        out.append(result)
        if index + 1 < len(items) or post.first_comment:
            await ctx.checkpoint(**{ITEMS: [_entry(r) for r in out]})
        index += 1
    comment, notice = await _first_comment(adapter, post, out[0], connection, ctx, prepared)
    return Delivery(tuple(out), comment, notice)


async def _first_comment(
    adapter: PlatformAdapter, post: Post, on: PublishResult, connection: Connection, ctx: _Tracked,
    prepared: Prepared,
) -> tuple[PublishResult | None, str | None]:
    """The first comment, once; its failure never undoes the post (a notice instead)."""
    if not post.first_comment:
        return None, None
    done = ctx.state.get(COMMENT)
    if isinstance(done, dict) and done.get("id") is not None:
        return _result(done), None
    scoped = _ItemContext(ctx, "comment")
    try:
        result = await adapter.comment(post, on, connection, scoped, prepared)
    except Exception as exc:  # any failure, a bug of ours included: the post is out, and stays published
        reason = str(exc) or type(exc).__name__
        await _keep(ctx, {"error": reason[:500]})
        return None, f"published, but the first comment failed: {reason}"
    await _keep(ctx, _entry(result))
    return result, None


async def _keep(ctx: PublishContext, entry: dict[str, Any]) -> None:
    """Record the first comment's end; the post's outcome is written whatever happens here."""
    with contextlib.suppress(Exception):  # the outcome write records the post; this record is a detail
        await ctx.checkpoint(**{COMMENT: entry})


def _state(state: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = state.get(key)
    return value if isinstance(value, dict) else {}


def _item_state(state: Mapping[str, Any], index: int) -> Mapping[str, Any]:
    """The first item's checkpoints are the top level (rows written before threads have them
    there); the others' under ``item_<n>``."""
    return state if index == 0 else _state(state, f"item_{index + 1}")


class _Wrapped:
    """The attempt's context, passed on but for its state and checkpoints."""

    def __init__(self, ctx: PublishContext) -> None:
        self._ctx = ctx

    async def refresh_tokens(self, connection: Connection, refresher: Refresher) -> Connection:
        return await self._ctx.refresh_tokens(connection, refresher)

    async def media_url(self, item: MediaItem) -> str:
        return await self._ctx.media_url(item)

    async def media_bytes(self, item: MediaItem, max_bytes: int) -> tuple[bytes, str]:
        return await self._ctx.media_bytes(item, max_bytes)

    def media_file(self, item: MediaItem, max_bytes: int) -> AbstractAsyncContextManager[MediaFile]:
        return self._ctx.media_file(item, max_bytes)


class _Tracked(_Wrapped):
    """``state`` is the post's ``publish_state`` as its claim read it plus what this
    delivery checkpointed (never what another post's did)."""

    def __init__(self, ctx: PublishContext, post: Post) -> None:
        super().__init__(ctx)
        self.post_id = post.id
        self._state = dict(post.publish_state)

    @property
    def state(self) -> Mapping[str, Any]:
        return self._state

    async def checkpoint(self, **values: Any) -> None:
        await self._ctx.checkpoint(**values)
        self._state.update(values)


def _tracked(ctx: PublishContext, post: Post) -> _Tracked:
    return ctx if isinstance(ctx, _Tracked) and ctx.post_id == post.id else _Tracked(ctx, post)


class _ItemContext(_Wrapped):
    """The attempt's context with ``state`` and ``checkpoint`` scoped to one item (the first:
    the top level) or to the comment (``comment_state``)."""

    def __init__(self, ctx: _Tracked, scope: int | str) -> None:
        super().__init__(ctx)
        self._tracked = ctx
        self._key = None if scope == 0 else f"item_{scope + 1}" if isinstance(scope, int) else f"{scope}_state"

    @property
    def state(self) -> Mapping[str, Any]:
        return self._tracked.state if self._key is None else _state(self._tracked.state, self._key)

    async def checkpoint(self, **values: Any) -> None:
        if self._key is None:
            await self._tracked.checkpoint(**values)
        else:
            await self._tracked.checkpoint(**{self._key: {**self.state, **values}})


def incomplete(outcome: Outcome, post: Post, state: Mapping[str, Any]) -> Outcome:
    """A failed attempt's outcome, saying which items of the thread are out (``state``: the
    row's publish_state as the attempt left it) and naming the first as the row's post;
    published, with a notice, when only the first comment was left (a deadline in it).
    Unchanged when no item is out."""
    out = published_items(state)[: len(post.items)]
    if not out or outcome.kind is OutcomeKind.PUBLISHED:
        return outcome
    total, failed = len(post.items), len(out) + 1
    if len(out) == total:  # only the first comment was left: the post is out, and published
        notice = f"published, but the first comment failed: {outcome.error_message}"
        return dataclasses.replace(
            outcome, kind=OutcomeKind.PUBLISHED, result=out[0], error_message=notice, retry_at=None, reason=None
        )
    shown = [f"{n}: {r.platform_post_url or r.platform_post_id}" for n, r in enumerate(out[:_LISTED], 1)]
    if len(out) > _LISTED:
        shown.append("…")
    span = "item 1 is" if len(out) == 1 else f"items 1–{len(out)} are"
    message = f"thread incomplete: {span} out of {total} ({', '.join(shown)}); item {failed}: {outcome.error_message}"
    if outcome.kind is not OutcomeKind.RETRY:
        message += f". Scheduling the post again resumes at item {failed}"
    return dataclasses.replace(outcome, error_message=message, result=out[0])

