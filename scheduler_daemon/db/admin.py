"""The operator commands' database side: every statement comes from ``sql/admin.sql``.

``open_admin(dsn)`` opens one connection (prepared-statement cache off, so that
``doctor`` can still report through a transaction-mode pooler) and yields an ``Admin``,
whose methods return the typed rows below. None of them holds a token: only whether one
is set. Field names are the SQL column names, so ``dataclasses.asdict`` gives the JSON
the commands print.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from ..models import ScheduleKey
from .migrate import pending
from .repository import init_connection
from .sql import q

# Operators see the CLI apart from the daemons in pg_stat_activity (liveness is an advisory
# lock, db/liveness.py, never a session name).
APPLICATION_NAME = "scheduler-daemon-cli"

TABLES = ("content_campaigns", "content_posts", "platform_connections", "publish_attempts", "scheduler_migrations")

T = TypeVar("T")


@dataclass(frozen=True)
class ClockSample:
    skew: float  # database minus host, seconds
    uncertainty: float  # half the round trip, seconds


@dataclass(frozen=True)
class ServerInfo:
    version: str
    version_num: int
    database: str
    backend_pid: int


@dataclass(frozen=True)
class TriggerInfo:
    name: str
    enabled: bool
    function: str


@dataclass(frozen=True)
class ConnectionState:
    """A connection's token state without its tokens (``doctor`` lists those that need attention)."""

    id: uuid.UUID
    user_id: uuid.UUID
    platform: str
    account_id: str | None
    token_expires_at: dt.datetime | None
    needs_reconnect: bool
    has_refresh_token: bool


@dataclass(frozen=True)
class ScheduledSummary:
    """A scheduled row, with what computing its due instant needs."""

    id: uuid.UUID
    platform: str
    campaign_id: uuid.UUID | None
    scheduled_date: dt.date | None
    scheduled_time: dt.time | None
    timezone: str
    retry_at: dt.datetime | None
    attempt_count: int
    content: str

    @property
    def key(self) -> ScheduleKey:
        return ScheduleKey(self.scheduled_date, self.scheduled_time, self.timezone, self.retry_at)


@dataclass(frozen=True)
class PrepareFailure:
    """A scheduled post whose preparation ahead of its instant failed (``prepare_error``)."""

    id: uuid.UUID
    platform: str
    prepare_error: str


@dataclass(frozen=True)
class StuckPost:
    id: uuid.UUID
    platform: str
    claimed_by: str | None
    claimed_at: dt.datetime | None
    attempt_count: int
    held_seconds: float | None


@dataclass(frozen=True)
class FailedAttempt:
    post_id: uuid.UUID
    attempt: int
    platform: str
    instance: str | None
    outcome: str
    error_message: str | None
    started_at: dt.datetime
    finished_at: dt.datetime


@dataclass(frozen=True)
class FailureCount:
    platform: str
    outcome: str
    attempts: int


@dataclass(frozen=True)
class Draft:
    """A post the daemon sent back to draft, with its reason."""

    id: uuid.UUID
    platform: str
    attempt_count: int
    error_message: str
    updated_at: dt.datetime


@dataclass(frozen=True)
class ChangedPost:
    """A row as ``schedule``/``retry``/``cancel`` left it."""

    id: uuid.UUID
    platform: str
    status: str
    scheduled_date: dt.date | None
    scheduled_time: dt.time | None
    timezone: str | None
    error_message: str | None


@dataclass(frozen=True)
class PostRow(ChangedPost):
    """One post as ``schedule``/``retry``/``cancel`` find it."""

    retry_at: dt.datetime | None
    attempt_count: int
    claimed_by: str | None
    claimed_at: dt.datetime | None
    published_at: dt.datetime | None


@dataclass(frozen=True)
class ConnectionSummary(ConnectionState):
    """A connection for ``connections``: its state, whether a token is set, its metadata keys."""

    has_access_token: bool
    metadata_keys: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class RuleBreach:
    """The posts that break one of migrations/004's write-time rules (rows written before it)."""

    rule: str
    posts: int
    ids: list[uuid.UUID]  # the first few, smallest first


def _typed(kind: type[T], records: Sequence[asyncpg.Record]) -> list[T]:
    return [kind(**dict(r)) for r in records]


@asynccontextmanager
async def open_admin(dsn: str, *, timeout: float = 10.0) -> AsyncIterator[Admin]:
    conn = await asyncpg.connect(
        dsn, timeout=timeout, statement_cache_size=0, command_timeout=timeout * 3,
        server_settings={"application_name": APPLICATION_NAME},
    )
    try:
        await init_connection(conn)
        yield Admin(conn, dsn, timeout)
    finally:
        await conn.close(timeout=timeout)


class Admin:
    def __init__(self, conn: asyncpg.Connection, dsn: str, timeout: float = 10.0) -> None:
        self.conn = conn
        self.dsn = dsn
        self.timeout = timeout

    # -- doctor -------------------------------------------------------------------------

    async def server(self) -> ServerInfo:
        record = await self.conn.fetchrow(q("admin_server"))
        assert record is not None
        return ServerInfo(**dict(record))

    async def backend_pids(self, samples: int = 5) -> list[int]:
        """pg_backend_pid() of consecutive statements: several different ones mean a
        transaction-mode pooler hands each statement to whichever server connection is free."""
        return [int(await self.conn.fetchval(q("admin_backend_pid"))) for _ in range(samples)]

    async def tables(self, names: Sequence[str] = TABLES) -> dict[str, bool]:
        return {r["name"]: r["present"] for r in await self.conn.fetch(q("admin_tables"), list(names))}

    async def triggers(self) -> list[TriggerInfo]:
        return _typed(TriggerInfo, await self.conn.fetch(q("admin_triggers")))

    async def pending_migrations(self) -> list[str]:
        return [m.name for m in await pending(self.conn)]

    async def notify_round_trip(self, timeout: float) -> float | None:
        """LISTEN on a private channel on a second connection, NOTIFY from this one;
        seconds until it arrived, or None if it did not within ``timeout``."""
        channel = f"scheduler_doctor_{uuid.uuid4().hex}"
        payload = uuid.uuid4().hex
        arrived = asyncio.Event()

        def on_notify(_conn: Any, _pid: int, _channel: str, data: object) -> None:
            if data == payload:
                arrived.set()

        listener = await asyncpg.connect(
            self.dsn, timeout=self.timeout, statement_cache_size=0,
            server_settings={"application_name": APPLICATION_NAME},
        )
        try:
            await listener.add_listener(channel, on_notify)
            sent = time.monotonic()
            await self.conn.execute(q("admin_notify"), channel, payload)
            try:
                await asyncio.wait_for(arrived.wait(), timeout)
            except TimeoutError:
                return None
            return time.monotonic() - sent
        finally:
            listener.terminate()

    async def clock_skew(self, samples: int = 5) -> ClockSample:
        """Database clock minus host clock, from the sample with the shortest round trip."""
        best: ClockSample | None = None
        for _ in range(samples):
            before = time.time()
            db_epoch = float(await self.conn.fetchval(q("admin_clock")))
            after = time.time()
            sample = ClockSample(db_epoch - (before + after) / 2, (after - before) / 2)
            if best is None or sample.uncertainty < best.uncertainty:
                best = sample
        assert best is not None
        return best

    async def input_problems(self, first: int = 5) -> list[RuleBreach] | None:
        """One ``RuleBreach`` per broken rule, with its ``first`` ids; None if the scan (about
        20 µs a post) outlasted the statement timeout."""
        try:
            return _typed(RuleBreach, await self.conn.fetch(q("admin_input_problems"), first))
        except (TimeoutError, asyncpg.QueryCanceledError):
            return None

    async def unlisted_zones(self) -> list[str]:
        """Zone names PostgreSQL knows that migrations/004's check does not list yet."""
        return list(await self.conn.fetchval(q("admin_unlisted_zones")))

    async def notification_queue_usage(self) -> float:
        return float(await self.conn.fetchval(q("admin_notification_queue")))

    async def expiring_connections(self, within_seconds: float) -> list[ConnectionState]:
        return _typed(ConnectionState, await self.conn.fetch(q("admin_expiring_connections"), within_seconds))

    # -- status -------------------------------------------------------------------------

    async def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(float(await self.conn.fetchval(q("admin_clock"))), dt.timezone.utc)

    async def status_counts(self) -> dict[str, int]:
        return {r["status"]: int(r["posts"]) for r in await self.conn.fetch(q("admin_status_counts"))}

    async def scheduled(self) -> list[ScheduledSummary]:
        return _typed(ScheduledSummary, await self.conn.fetch(q("admin_scheduled")))

    async def stuck(self, older_than_seconds: float) -> list[StuckPost]:
        return _typed(StuckPost, await self.conn.fetch(q("admin_stuck"), older_than_seconds))

    async def recent_failures(self, within_seconds: float, limit: int) -> list[FailedAttempt]:
        return _typed(FailedAttempt, await self.conn.fetch(q("admin_recent_failures"), within_seconds, limit))

    async def failure_counts(self, within_seconds: float) -> list[FailureCount]:
        return _typed(FailureCount, await self.conn.fetch(q("admin_failure_counts"), within_seconds))

    async def recent_drafts(self, within_seconds: float, limit: int) -> tuple[int, list[Draft]]:
        """(how many, the newest ``limit``) of the drafts the daemon produced in the window."""
        rows = [dict(r) for r in await self.conn.fetch(q("admin_recent_drafts"), within_seconds, limit)]
        total = int(rows[0]["total"]) if rows else 0
        return total, [Draft(**{k: v for k, v in r.items() if k != "total"}) for r in rows]

    async def prepare_failures(self, limit: int) -> tuple[int, list[PrepareFailure]]:
        """(how many, the newest ``limit``) of the scheduled posts whose preparation failed;
        none on a database without migrations/010 (``doctor`` names it as pending)."""
        try:
            rows = [dict(r) for r in await self.conn.fetch(q("admin_prepare_errors"), limit)]
        except asyncpg.UndefinedColumnError:
            return 0, []
        total = int(rows[0]["total"]) if rows else 0
        return total, [PrepareFailure(**{k: v for k, v in r.items() if k != "total"}) for r in rows]

    # -- one post -----------------------------------------------------------------------

    async def post(self, post_id: uuid.UUID) -> PostRow | None:
        record = await self.conn.fetchrow(q("admin_post"), post_id)
        return None if record is None else PostRow(**dict(record))

    async def schedule(
        self,
        post_id: uuid.UUID,
        date: dt.date,
        time_of_day: dt.time,
        timezone: str,
        *,
        statuses: Sequence[str],
        require_error: bool = False,
    ) -> ChangedPost | None:
        """Set the schedule and status='scheduled' if the row is in one of ``statuses``;
        None when no row matched (missing, or in another state)."""
        record = await self.conn.fetchrow(
            q("admin_schedule"), post_id, date, time_of_day, timezone, list(statuses), require_error
        )
        return None if record is None else ChangedPost(**dict(record))

    async def cancel(self, post_id: uuid.UUID) -> ChangedPost | None:
        record = await self.conn.fetchrow(q("admin_cancel"), post_id)
        return None if record is None else ChangedPost(**dict(record))

    # -- connections --------------------------------------------------------------------

    async def connections(
        self, platform: str | None = None, user_id: uuid.UUID | None = None
    ) -> list[ConnectionSummary]:
        return _typed(ConnectionSummary, await self.conn.fetch(q("admin_connections"), platform, user_id))
