"""Plain frozen values that flow between the modules.

A post's states (only the daemon's transitions are drawn; users move rows freely
between 'draft' and 'scheduled')::

    draft ──user──▶ scheduled ──claim──▶ publishing ──success──▶ published
                      ▲   │                  │
                      │   │ missed / bad     ├──permanent failure / unknown outcome──▶ draft + error_message
                      │   ▼ input            │
                      │  draft               └──rate limit / transient (retry_at set)──┐
                      └────────────────────────────────────────────────────────────────┘

Only the claim moves 'scheduled' → 'publishing', and it checks the status and the
schedule fields the timer was armed with, so a stale timer or a second daemon loses the
race harmlessly.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class PostStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    PUBLISHED = "published"


@dataclass(frozen=True, slots=True)
class ScheduleKey:
    """The row fields a timer is armed with. The claim succeeds only if they are unchanged."""

    date: dt.date | None
    time: dt.time | None
    timezone: str
    retry_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ScheduledRow:
    """A 'scheduled' row as seen by a notification or the boot load."""

    id: uuid.UUID
    key: ScheduleKey


@dataclass(frozen=True, slots=True)
class MediaItem:
    url: str | None
    storage_path: str | None
    alt: str | None
    mime: str | None


@dataclass(frozen=True, slots=True)
class Connection:
    id: uuid.UUID
    user_id: uuid.UUID
    platform: str
    account_id: str | None
    access_token: str | None = field(repr=False)
    refresh_token: str | None = field(repr=False)
    token_expires_at: dt.datetime | None
    metadata: Mapping[str, Any]
    needs_reconnect: bool = False


@dataclass(frozen=True, slots=True)
class Post:
    """A claimed post, ready for an adapter."""

    id: uuid.UUID
    platform: str
    content: str
    media: tuple[MediaItem, ...]
    campaign_id: uuid.UUID | None
    user_id: uuid.UUID | None
    scheduled_at: dt.datetime
    attempt: int
    publish_state: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PublishResult:
    platform_post_id: str | None
    platform_post_url: str | None = None


class OutcomeKind(enum.StrEnum):
    PUBLISHED = "published"
    FAILED = "failed"  # back to draft with error_message
    RETRY = "retry"  # back to scheduled with retry_at
    UNKNOWN = "unknown"  # back to draft: may have been published


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt ended with; written in one round trip with its audit row."""

    post_id: uuid.UUID
    platform: str
    attempt: int
    kind: OutcomeKind
    started_at: dt.datetime
    finished_at: dt.datetime
    result: PublishResult | None = None
    error_message: str | None = None
    retry_at: dt.datetime | None = None
    reason: str | None = None  # a short class for metrics: auth, rate_limited, ...

    @property
    def status(self) -> PostStatus:
        if self.kind is OutcomeKind.PUBLISHED:
            return PostStatus.PUBLISHED
        if self.kind is OutcomeKind.RETRY:
            return PostStatus.SCHEDULED
        return PostStatus.DRAFT
