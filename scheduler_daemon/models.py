"""Plain frozen values that flow between the modules.

A post's states (only the daemon's transitions are drawn; users move rows freely
between 'draft' and 'scheduled')::

    draft ──user──▶ scheduled ──claim──▶ publishing ──success──▶ published
                      ▲   │                  │
                      │   │ missed / bad     ├──permanent failure / unknown outcome──▶ draft + error_message
                      │   ▼ input            │
                      │  draft               └──rate limit / transient (retry_at set)──┐
                      └────────────────────────────────────────────────────────────────┘

Only the claim moves 'scheduled' → 'publishing', and it checks the status, the version
the timer was armed with and, on the row, that the post is due, so a stale or forged timer
or a second daemon loses the race harmlessly. A 'publishing' row is the daemon's: a tenant
cannot change it (migrations/007).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidPostError, NoConnectionError


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
class LoadedRow:
    """A 'scheduled' row as the boot load (and every resync) reads it: the due instant the
    database computed (``content_posts.due_at``, migrations/007), or why there is none.

    The load never reads the date, time or retry_at columns themselves: a value outside
    Python's datetime (year 10000, a BC date) would fail the whole load while decoding.
    """

    id: uuid.UUID
    version: int
    due: float | None  # epoch seconds; None: ``problem`` says why
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A row the claim asked for and did not take, with what the database says about it."""

    id: uuid.UUID
    version: int
    due: float | None  # epoch seconds of content_posts.due_at
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """What one claim round trip decided, every verdict checked in SQL on the row itself.

    ``won``: claimed, each with the database's due instant (``due``, by id). ``rearm``: the
    row is not due yet, or is at another version than the timer's (a forged, stale or lost
    notification armed it): arm it at its own instant and version. ``missed``: overdue
    beyond the grace window. ``unschedulable``: no due instant, or a counter at its maximum
    (``problem`` says which). ``busy``: still scheduled, but another transaction (another
    replica's claim, most likely) held the row's lock, so it was skipped: arm it again
    shortly at the same version (``due`` is None). Ids in none of them are no longer
    scheduled, or another daemon took them: nothing to do.
    """

    won: list[ClaimedPost] = field(default_factory=list)
    due: dict[uuid.UUID, float] = field(default_factory=dict)
    rearm: list[Verdict] = field(default_factory=list)
    missed: list[Verdict] = field(default_factory=list)
    unschedulable: list[Verdict] = field(default_factory=list)
    busy: list[Verdict] = field(default_factory=list)

    def __len__(self) -> int:
        """How many were won (what a caller that counts a claim's posts counts)."""
        return len(self.won)

    def __iter__(self) -> Iterator[ClaimedPost]:
        return iter(self.won)


@dataclass(frozen=True, slots=True)
class MediaItem:
    url: str | None
    storage_path: str | None
    alt: str | None
    mime: str | None


@dataclass(frozen=True, slots=True)
class PostItem:
    """One post of a thread: its text and its media. A post's first item is the row's
    ``content`` and ``media``; the replies that follow are its ``thread``."""

    content: str
    media: tuple[MediaItem, ...] = ()


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


@dataclass(frozen=True)
class TokenSet:
    """New tokens from a refresh; None keeps the stored value."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: dt.datetime | None = None
    metadata: Mapping[str, Any] | None = None


# Gets new tokens for a connection from its platform (an adapter's refresh grant); the
# daemon stores them by compare-and-swap (``PublishContext.refresh_tokens``).
Refresher = Callable[[Connection], Awaitable[TokenSet]]


@dataclass(frozen=True, slots=True)
class Post:
    """A claimed post, ready for an adapter.

    ``content`` and ``media`` are the post itself; ``thread`` the replies that follow it
    (``items`` is all of them, the post first); ``first_comment`` a comment posted under it
    (None: none); ``options`` the row's ``platform_options``. ``publish_state`` holds what
    earlier attempts checkpointed (``platforms.delivery`` documents its keys).
    """

    id: uuid.UUID
    platform: str
    content: str
    media: tuple[MediaItem, ...]
    campaign_id: uuid.UUID | None
    user_id: uuid.UUID | None
    scheduled_at: dt.datetime
    attempt: int
    publish_state: Mapping[str, Any]
    thread: tuple[PostItem, ...] = ()
    first_comment: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def items(self) -> tuple[PostItem, ...]:
        """The post and its replies, in the order they are published."""
        return (PostItem(self.content, self.media), *self.thread)


@dataclass(frozen=True, slots=True)
class ClaimedPost:
    """A row the claim moved to 'publishing': what one attempt needs, as the row has it.

    ``post`` is None when the row cannot be published as written (``invalid`` says why:
    content too long, malformed media); the attempt then ends with that error as its
    outcome. ``connections`` are the candidates the claim read: the one ``connection_id``
    names, or the campaign user's for the platform (at most two: two means ambiguous);
    ``connection()`` picks one or says why not.
    """

    id: uuid.UUID
    platform: str
    attempt: int
    user_id: uuid.UUID | None
    connection_id: uuid.UUID | None
    connections: tuple[Connection, ...]
    post: Post | None
    invalid: Exception | None = None  # an InvalidPostError, unless the row broke a rule we did not foresee

    def publishable(self) -> Post:
        """The post, or the error saying why the row cannot be published as written."""
        if self.post is None:
            raise self.invalid or InvalidPostError("the row cannot be published as written")
        return self.post

    def connection(self) -> Connection:
        """The one connection to publish with, or NoConnectionError saying why."""
        platform, user, found = self.platform, self.user_id, self.connections
        if self.connection_id is not None:
            if not found:
                raise NoConnectionError(f"connection {self.connection_id} named by the post does not exist")
            chosen = found[0]
            if user is None or chosen.user_id != user:
                raise NoConnectionError(
                    f"connection {chosen.id} belongs to another user than the post's campaign"
                    + (" (the post has no campaign)" if user is None else "")
                )
            if chosen.platform != platform:
                raise NoConnectionError(
                    f"connection {chosen.id} is for {chosen.platform!r}, but the post is for {platform!r}"
                )
        elif user is None:
            raise NoConnectionError(
                f"no {platform} connection: the post has no campaign (and so no user) and no connection_id"
            )
        elif not found:
            raise NoConnectionError(f"no {platform} connection for user {user}")
        elif len(found) > 1:
            raise NoConnectionError(f"user {user} has several {platform} connections: set connection_id on the post")
        else:
            chosen = found[0]
        if chosen.needs_reconnect:
            raise NoConnectionError(f"reconnect {platform}: the platform rejected this connection's token")
        return chosen


@dataclass(frozen=True, slots=True)
class ResolvedOrphan:
    """A row a stopped daemon left in 'publishing', as recovery resolved it: 'scheduled'
    again (its platform deduplicates a repeat) or 'draft' (the outcome is unknown)."""

    id: uuid.UUID
    platform: str
    status: str
    instance: str | None


@dataclass(frozen=True, slots=True)
class OrphanSweep:
    """What recovery asks of one ``recover_orphans``: the dead runs it has confirmed, each
    deduplicating platform's window, a request's deadline and a whole attempt's (seconds)."""

    confirmed: tuple[str, ...]
    windows: Mapping[str, float]
    request_seconds: float
    attempt_seconds: float


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What one heartbeat of the listener read: the database's clock (``epoch``, between the
    host's monotonic ``sent`` and ``received``), whether this run still holds its liveness
    lock, and the runs that hold rows in 'publishing' without holding theirs (dead)."""

    epoch: float
    sent: float
    received: float
    lock_held: bool
    dead_runs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PublishResult:
    """One published item (or comment). ``ref``: what a reply to it or a comment on it needs
    besides its id (Bluesky: ``uri`` and ``cid``), JSON-able: it is checkpointed."""

    platform_post_id: str | None
    platform_post_url: str | None = None
    ref: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """What publishing a whole post achieved: every item (the first is the post: its id and
    URL are the row's), the first comment, and a ``notice`` for a published row's
    ``error_message`` (a first comment that failed)."""

    items: tuple[PublishResult, ...]
    comment: PublishResult | None = None
    notice: str | None = None

    @property
    def post(self) -> PublishResult:
        return self.items[0]

    @property
    def platform_post_id(self) -> str | None:
        return self.items[0].platform_post_id

    @property
    def platform_post_url(self) -> str | None:
        return self.items[0].platform_post_url


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
