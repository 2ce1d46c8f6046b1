"""The operator commands' database side: every statement comes from ops.sql.

``open_operations(dsn)`` opens one connection (prepared-statement cache off, so that
``doctor`` can still report through a transaction-mode pooler) and yields an
``Operations``. Rows come back as plain dicts; tokens are only ever read by
``connections_full`` and go straight into ``Connection`` values.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..models import Connection
from . import rows
from .migrate import pending
from .queries import q
from .repository import init_connection

# Errors that mean "the database could not be reached or answered with an error".
DatabaseErrors = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError)

# Not "scheduler-daemon:<instance>": that prefix marks a daemon's sessions (crash recovery).
APPLICATION_NAME = "scheduler-daemon-cli"

TABLES = ("content_campaigns", "content_posts", "platform_connections", "publish_attempts", "scheduler_migrations")


@dataclass(frozen=True)
class ClockSample:
    skew: float  # database minus host, seconds
    uncertainty: float  # half the round trip, seconds


@asynccontextmanager
async def open_operations(dsn: str, *, timeout: float = 10.0) -> AsyncIterator[Operations]:
    conn = await asyncpg.connect(
        dsn, timeout=timeout, statement_cache_size=0, command_timeout=timeout * 3,
        server_settings={"application_name": APPLICATION_NAME},
    )
    try:
        await init_connection(conn)
        yield Operations(conn, dsn, timeout)
    finally:
        await conn.close(timeout=timeout)


def _dicts(records: Sequence[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]


class Operations:
    def __init__(self, conn: asyncpg.Connection, dsn: str, timeout: float = 10.0) -> None:
        self.conn = conn
        self.dsn = dsn
        self.timeout = timeout

    # -- doctor -------------------------------------------------------------------------

    async def server(self) -> dict[str, Any]:
        record = await self.conn.fetchrow(q("ops_server"))
        assert record is not None
        return dict(record)

    async def backend_pids(self, samples: int = 5) -> list[int]:
        """pg_backend_pid() of consecutive statements: several different ones mean a
        transaction-mode pooler hands each statement to whichever server connection is free."""
        return [int(await self.conn.fetchval(q("ops_backend_pid"))) for _ in range(samples)]

    async def tables(self, names: Sequence[str] = TABLES) -> dict[str, bool]:
        return {r["name"]: r["present"] for r in await self.conn.fetch(q("ops_tables"), list(names))}

    async def triggers(self) -> list[dict[str, Any]]:
        return _dicts(await self.conn.fetch(q("ops_triggers")))

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
            await self.conn.execute(q("ops_notify"), channel, payload)
            try:
                await asyncio.wait_for(arrived.wait(), timeout)
            except asyncio.TimeoutError:
                return None
            return time.monotonic() - sent
        finally:
            listener.terminate()

    async def clock_skew(self, samples: int = 5) -> ClockSample:
        """Database clock minus host clock, from the sample with the shortest round trip."""
        best: ClockSample | None = None
        for _ in range(samples):
            before = time.time()
            db_epoch = float(await self.conn.fetchval(q("ops_clock")))
            after = time.time()
            sample = ClockSample(db_epoch - (before + after) / 2, (after - before) / 2)
            if best is None or sample.uncertainty < best.uncertainty:
                best = sample
        assert best is not None
        return best

    async def notification_queue_usage(self) -> float:
        return float(await self.conn.fetchval(q("ops_notification_queue")))

    async def expiring_connections(self, within_seconds: float) -> list[dict[str, Any]]:
        return _dicts(await self.conn.fetch(q("ops_expiring_connections"), within_seconds))

    # -- status -------------------------------------------------------------------------

    async def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(float(await self.conn.fetchval(q("ops_clock"))), dt.timezone.utc)

    async def status_counts(self) -> dict[str, int]:
        return {r["status"]: int(r["posts"]) for r in await self.conn.fetch(q("ops_status_counts"))}

    async def scheduled(self) -> list[dict[str, Any]]:
        return _dicts(await self.conn.fetch(q("ops_scheduled")))

    async def stuck(self, older_than_seconds: float) -> list[dict[str, Any]]:
        return _dicts(await self.conn.fetch(q("ops_stuck"), older_than_seconds))

    async def recent_failures(self, within_seconds: float, limit: int) -> list[dict[str, Any]]:
        return _dicts(await self.conn.fetch(q("ops_recent_failures"), within_seconds, limit))

    async def failure_counts(self, within_seconds: float) -> list[dict[str, Any]]:
        return _dicts(await self.conn.fetch(q("ops_failure_counts"), within_seconds))

    async def recent_drafts(self, within_seconds: float, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """(how many, the newest ``limit``) of the drafts the daemon produced in the window."""
        rows = _dicts(await self.conn.fetch(q("ops_recent_drafts"), within_seconds, limit))
        total = int(rows[0].pop("total")) if rows else 0
        for r in rows[1:]:
            r.pop("total")
        return total, rows

    # -- one post -----------------------------------------------------------------------

    async def post(self, post_id: uuid.UUID) -> dict[str, Any] | None:
        record = await self.conn.fetchrow(q("ops_post"), post_id)
        return None if record is None else dict(record)

    async def schedule(
        self,
        post_id: uuid.UUID,
        date: dt.date,
        time_of_day: dt.time,
        timezone: str,
        *,
        statuses: Sequence[str],
        require_error: bool = False,
    ) -> dict[str, Any] | None:
        """Set the schedule and status='scheduled' if the row is in one of ``statuses``;
        None when no row matched (missing, or in another state)."""
        record = await self.conn.fetchrow(
            q("ops_schedule"), post_id, date, time_of_day, timezone, list(statuses), require_error
        )
        return None if record is None else dict(record)

    async def cancel(self, post_id: uuid.UUID) -> dict[str, Any] | None:
        record = await self.conn.fetchrow(q("ops_cancel"), post_id)
        return None if record is None else dict(record)

    # -- connections --------------------------------------------------------------------

    async def connections(self, platform: str | None = None, user_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        return _dicts(await self.conn.fetch(q("ops_connections"), platform, user_id))

    async def connections_full(
        self, platform: str | None = None, user_id: uuid.UUID | None = None
    ) -> list[Connection]:
        return [rows.connection(r) for r in await self.conn.fetch(q("ops_connections_full"), platform, user_id)]
