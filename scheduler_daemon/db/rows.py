"""Database rows → models. Pure: tested without a database.

Conversion errors are ``InvalidPostError`` with a message for the row's error_message;
``claimed`` keeps a claimed row's error on its ``ClaimedPost``, so that one bad row ends
as its own draft and never fails the claim of a batch.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any, Protocol

from ..clock import UTC
from ..errors import InvalidPostError
from ..models import (
    ClaimedPost,
    ClaimResult,
    Connection,
    LoadedRow,
    MediaItem,
    Post,
    PostItem,
    ResolvedOrphan,
    Verdict,
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


class Row(Protocol):
    """What we read from a row: an asyncpg Record or a dict."""

    def __getitem__(self, key: str, /) -> Any: ...


def epoch(due_us: int | None) -> float | None:
    """Seconds since the epoch from the database's microseconds (None stays None)."""
    return None if due_us is None else due_us / 1_000_000


def instant(due_us: int) -> dt.datetime:
    """The exact instant (microseconds, no float rounding: a Bluesky record key derives from it)."""
    return _EPOCH + dt.timedelta(microseconds=due_us)


def loaded_row(record: Row) -> LoadedRow:
    """A load_scheduled row. A due instant without a problem is armed; anything else is a draft."""
    problem, due = record["problem"], epoch(record["due_us"])
    if problem is None and due is None:
        problem = "the due instant cannot be computed"
    return LoadedRow(record["id"], record["schedule_version"], None if problem else due, problem)


def claim_result(records: Iterable[Row], max_content_chars: int) -> ClaimResult:
    """Sort a claim's rows by verdict (sql/daemon.sql, claim)."""
    result = ClaimResult()
    for record in records:
        verdict = record["verdict"]
        if verdict == "due":
            if record["id"] is not None:  # else another daemon took it first
                result.won.append(claimed(record, max_content_chars))
                result.due[record["id"]] = record["due_us"] / 1_000_000
            continue
        seen = Verdict(record["asked_id"], record["asked_version"], epoch(record["due_us"]), record["problem"])
        {"early": result.rearm, "moved": result.rearm, "missed": result.missed, "busy": result.busy}.get(
            verdict, result.unschedulable).append(seen)
    return result


def media_items(raw: Any, where: str = "media") -> tuple[MediaItem, ...]:
    """``where``: how messages name the value (``media``, ``thread[2].media``)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidPostError(f"{where} must be a JSON array of {{url | storage_path, alt, mime}}")
    items = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidPostError(f"{where}[{index}] must be an object with url or storage_path")
        url, path = item.get("url"), item.get("storage_path")
        if not (isinstance(url, str) and url) and not (isinstance(path, str) and path):
            raise InvalidPostError(f"{where}[{index}] needs a url or a storage_path")
        if isinstance(url, str) and url and not url.startswith(("http://", "https://")):
            raise InvalidPostError(f"{where}[{index}].url must be an http:// or https:// URL")
        alt, mime = item.get("alt"), item.get("mime")
        items.append(
            MediaItem(
                url if isinstance(url, str) and url else None,
                path if isinstance(path, str) and path else None,
                alt if isinstance(alt, str) else None,
                mime if isinstance(mime, str) else None,
            )
        )
    return tuple(items)


def _content(raw: Any, where: str, max_content_chars: int) -> str:
    if raw is not None and not isinstance(raw, str):
        raise InvalidPostError(f"{where} must be a string")
    content = raw or ""
    if len(content) > max_content_chars:
        raise InvalidPostError(
            f"{where} is {len(content)} characters; the most this daemon accepts is {max_content_chars}"
        )
    return content


def thread_items(raw: Any, max_content_chars: int) -> tuple[PostItem, ...]:
    """The replies that follow a post (``content_posts.thread``), as migrations/006 has them."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidPostError("thread must be a JSON array of {content, media} items")
    items = []
    for index, item in enumerate(raw):
        where = f"thread[{index}]"
        if not isinstance(item, dict):
            raise InvalidPostError(f"{where} must be an object with content and/or media")
        content = _content(item.get("content"), f"{where}.content", max_content_chars)
        media = media_items(item.get("media"), f"{where}.media")
        if not content and not media:
            raise InvalidPostError(f"{where} is empty: an item needs content or media")
        items.append(PostItem(content, media))
    return tuple(items)


def first_comment(raw: Any) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise InvalidPostError("first_comment must be text")
    return raw if raw and raw.strip() else None


def platform_options(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidPostError("platform_options must be a JSON object, such as {\"disable_notification\": true}")
    return raw


def post(record: Row, max_content_chars: int) -> Post:
    state = record["publish_state"]
    return Post(
        id=record["id"],
        platform=record["platform"],
        content=_content(record["content"], "content", max_content_chars),
        media=media_items(record["media"]),
        campaign_id=record["campaign_id"],
        user_id=record["user_id"],
        scheduled_at=instant(record["due_us"]),
        attempt=record["attempt_count"],
        publish_state=state if isinstance(state, dict) else {},
        thread=thread_items(record["thread"], max_content_chars),
        first_comment=first_comment(record["first_comment"]),
        options=platform_options(record["platform_options"]),
    )


def connection(data: Row) -> Connection:
    expires = data["token_expires_at"]
    if isinstance(expires, str):
        expires = dt.datetime.fromisoformat(expires)
    access, refresh = data["access_token"], data["refresh_token"]
    metadata = data["metadata"]
    return Connection(
        id=uuid.UUID(str(data["id"])),
        user_id=uuid.UUID(str(data["user_id"])),
        platform=data["platform"],
        account_id=data["account_id"],
        access_token=access,
        refresh_token=refresh,
        token_expires_at=expires,
        metadata=metadata if isinstance(metadata, dict) else {},
        needs_reconnect=bool(data["needs_reconnect"]),
    )


def claimed(record: Row, max_content_chars: int) -> ClaimedPost:
    """A row the claim won, with its candidate connections (the claim's ``connections``)."""
    connections: tuple[Connection, ...] = ()
    converted: Post | None = None
    invalid: Exception | None = None
    try:
        connections = tuple(connection(c) for c in record["connections"] or [])
        converted = post(record, max_content_chars)
    except Exception as exc:  # this row's own outcome (InvalidPostError: a draft saying why), never the batch's
        invalid = exc
    return ClaimedPost(
        id=record["id"],
        platform=record["platform"],
        attempt=record["attempt_count"],
        user_id=record["user_id"],
        connection_id=record["connection_id"],
        connections=connections,
        post=converted,
        invalid=invalid,
    )


def orphan(record: Row) -> ResolvedOrphan:
    return ResolvedOrphan(record["id"], record["platform"], record["status"], record["instance"])
