"""Database rows → models. Pure: tested without a database.

Conversion errors are ``InvalidPostError`` with a message for the row's error_message.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Protocol

from ..errors import InvalidPostError, NoConnectionError
from ..logs import SECRETS
from ..models import Connection, MediaItem, Post, ScheduledRow, ScheduleKey
from ..timing import due_instant


class Row(Protocol):
    """What we read from a row: an asyncpg Record or a dict."""

    def __getitem__(self, key: str, /) -> Any: ...


def scheduled_row(record: Row) -> ScheduledRow:
    return ScheduledRow(record["id"], schedule_key(record))


def schedule_key(record: Row) -> ScheduleKey:
    return ScheduleKey(
        record["scheduled_date"], record["scheduled_time"], record["timezone"], record["retry_at"]
    )


def media_items(raw: Any) -> tuple[MediaItem, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidPostError("media must be a JSON array of {url | storage_path, alt, mime}")
    items = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidPostError(f"media[{index}] must be an object with url or storage_path")
        url, path = item.get("url"), item.get("storage_path")
        if not (isinstance(url, str) and url) and not (isinstance(path, str) and path):
            raise InvalidPostError(f"media[{index}] needs a url or a storage_path")
        if isinstance(url, str) and url and not url.startswith(("http://", "https://")):
            raise InvalidPostError(f"media[{index}].url must be an http:// or https:// URL")
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


def post(record: Row, max_content_chars: int) -> Post:
    content = record["content"] or ""
    if len(content) > max_content_chars:
        raise InvalidPostError(
            f"content is {len(content)} characters; the most this daemon accepts is {max_content_chars}"
        )
    state = record["publish_state"]
    return Post(
        id=record["id"],
        platform=record["platform"],
        content=content,
        media=media_items(record["media"]),
        campaign_id=record["campaign_id"],
        user_id=record["user_id"],
        scheduled_at=due_instant(schedule_key(record)),
        attempt=record["attempt_count"],
        publish_state=state if isinstance(state, dict) else {},
    )


def connection(data: Row) -> Connection:
    expires = data["token_expires_at"]
    if isinstance(expires, str):
        expires = dt.datetime.fromisoformat(expires)
    access, refresh = data["access_token"], data["refresh_token"]
    SECRETS.add(access, refresh)  # from here on, these strings never reach a log line
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


def pick_connection(record: Row) -> Connection:
    """The one connection to publish with, or NoConnectionError saying why."""
    platform = record["platform"]
    found = [connection(c) for c in record["connections"] or []]
    if record["connection_id"] is not None:
        if not found:
            raise NoConnectionError(f"connection {record['connection_id']} named by the post does not exist")
        chosen = found[0]
        if record["user_id"] is None or chosen.user_id != record["user_id"]:
            raise NoConnectionError(
                f"connection {chosen.id} belongs to another user than the post's campaign"
                + (" (the post has no campaign)" if record["user_id"] is None else "")
            )
        if chosen.platform != platform:
            raise NoConnectionError(
                f"connection {chosen.id} is for {chosen.platform!r}, but the post is for {platform!r}"
            )
    elif record["user_id"] is None:
        raise NoConnectionError(
            f"no {platform} connection: the post has no campaign (and so no user) and no connection_id"
        )
    elif not found:
        raise NoConnectionError(f"no {platform} connection for user {record['user_id']}")
    elif len(found) > 1:
        raise NoConnectionError(
            f"user {record['user_id']} has several {platform} connections: set connection_id on the post"
        )
    else:
        chosen = found[0]
    if chosen.needs_reconnect:
        raise NoConnectionError(f"reconnect {platform}: the platform rejected this connection's token")
    return chosen
