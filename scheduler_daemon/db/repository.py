"""The daemon's only user of the asyncpg pool: rows in, models out.

Every statement comes from ``sql/daemon.sql``. Batches travel as parallel arrays, so
claiming or recording any number of posts is one round trip.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from ..clock import utc_from_ts
from ..config import Settings
from ..models import ClaimResult, Connection, Heartbeat, LoadedRow, OrphanSweep, Outcome, ResolvedOrphan, TokenSet
from ..redact import SECRETS
from . import rows
from .sql import q


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb and json as Python values on every connection we open."""
    for kind in ("jsonb", "json"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def application_name(instance_id: str) -> str:
    """How this run's sessions show in pg_stat_activity (for operators: liveness is the
    run's advisory lock, see db/liveness.py)."""
    return f"scheduler-daemon:{instance_id}"[:63]


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset on release (a round trip per query: UNLISTEN, RESET ALL, …).

    Pooled connections never hold session state: no LISTEN (the listener has its own
    connection), no SET, no advisory lock (the liveness lock has its own connection too),
    and every transaction ends in its block.
    """


async def create_pool(
    dsn: str, *, instance_id: str, max_size: int = 10, command_timeout: float = 60.0, **kwargs: Any
) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn, min_size=1, max_size=max_size, init=init_connection, reset=_keep_session,
        command_timeout=command_timeout,
        server_settings={"application_name": application_name(instance_id)}, **kwargs,
    )


# How far past the claim lead a claim may run ahead of a row's instant: room for the daemon's
# clock (anchored to the database's) to be a little ahead. Nothing is sent before the instant
# the claim returns, so this only bounds how early a row can be taken out of the tenant's hands.
CLAIM_SLACK_SECONDS = 1.0


class Repository:
    def __init__(
        self, pool: asyncpg.Pool, instance_id: str, *, max_content_chars: int = 100_000,
        claim_lead_seconds: float = Settings.claim_lead_seconds, grace_seconds: float = Settings.grace_seconds,
    ) -> None:
        self.pool = pool
        self.instance_id = instance_id
        self.max_content_chars = max_content_chars
        self.claim_ahead_seconds = claim_lead_seconds + CLAIM_SLACK_SECONDS
        self.grace_seconds = grace_seconds

    async def scheduled_batches(self, until: float, size: int = 5000) -> AsyncIterator[list[LoadedRow]]:
        """Every scheduled row due before ``until`` (epoch seconds: the horizon's end) or
        without a stored instant, with its version and due instant, streamed in batches
        through a cursor, so a million rows never sit in memory as records at once."""
        async with self.pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
            cursor = await conn.cursor(q("load_scheduled"), utc_from_ts(until))
            while batch := await cursor.fetch(size):
                yield [rows.loaded_row(r) for r in batch]

    async def horizon_step(self, start: float, end: float) -> list[LoadedRow]:
        """The scheduled rows due in [``start``, ``end``) (epoch seconds): one statement."""
        found = await self.pool.fetch(q("load_horizon_step"), utc_from_ts(start), utc_from_ts(end))
        return [rows.loaded_row(r) for r in found]

    async def claim(self, items: Sequence[tuple[uuid.UUID, int]], *, ahead: float = 0.0) -> ClaimResult:
        """Claim (id, version) pairs that the rows say are due (within the claim lead, or
        ``ahead`` seconds when more: a burst claimed ahead of its instant); returns the posts
        won, with their candidate connections, and the verdict on each of the others."""
        if not items:
            return ClaimResult()
        ids, versions = zip(*items, strict=True)
        within = max(self.claim_ahead_seconds, ahead + CLAIM_SLACK_SECONDS)
        found = await self.pool.fetch(
            q("claim"), list(ids), list(versions), self.instance_id, within, self.grace_seconds
        )
        return rows.claim_result(found, self.max_content_chars)

    async def record(self, outcomes: Sequence[Outcome]) -> int:
        """Write outcomes and their audit rows; returns how many rows changed status."""
        if not outcomes:
            return 0
        cols: list[list[Any]] = [[] for _ in range(11)]
        for o in outcomes:
            values = (
                o.post_id,
                str(o.status),
                SECRETS.scrub(o.error_message) if o.error_message else None,
                o.result.platform_post_id if o.result else None,
                o.result.platform_post_url if o.result else None,
                o.retry_at,
                o.attempt,
                o.started_at,
                o.finished_at,
                str(o.kind),
                o.platform,
            )
            for col, value in zip(cols, values, strict=True):
                col.append(value)
        return int(await self.pool.fetchval(q("record_outcomes"), *cols, self.instance_id))

    async def reject(self, items: Sequence[tuple[uuid.UUID, int, str]]) -> None:
        if items:
            ids, versions, messages = zip(*items, strict=True)
            await self.pool.execute(q("reject"), list(ids), list(versions), [SECRETS.scrub(m) for m in messages])

    async def release_own(self, busy: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        records = await self.pool.fetch(q("release_own"), self.instance_id, list(busy))
        return [r["id"] for r in records]

    async def release(self, post_id: uuid.UUID) -> None:
        await self.pool.execute(q("release"), post_id, self.instance_id)

    async def recover_orphans(self, sweep: OrphanSweep) -> tuple[list[ResolvedOrphan], float | None]:
        """Resolve the rows that dead runs left in 'publishing' (sql/daemon.sql, ``recover_orphans``);
        also when the first row left waiting for its request deadline is due (epoch seconds)."""
        platforms, windows = zip(*sorted(sweep.windows.items()), strict=True) if sweep.windows else ((), ())
        found = await self.pool.fetch(
            q("recover_orphans"), self.instance_id, list(sweep.confirmed), sweep.request_seconds,
            list(platforms), [float(w) for w in windows], sweep.attempt_seconds,
        )
        waiting = [r["next_due"] for r in found if r["id"] is None]
        return [rows.orphan(r) for r in found if r["id"] is not None], (waiting[0] if waiting else None)

    async def checkpoint(self, post_id: uuid.UUID, values: dict[str, Any]) -> None:
        await self.pool.execute(q("checkpoint"), post_id, values, self.instance_id)

    async def connection(self, connection_id: uuid.UUID) -> Connection | None:
        record = await self.pool.fetchrow(q("connection"), connection_id)
        return None if record is None else rows.connection(record)

    async def swap_tokens(self, old: Connection, tokens: TokenSet) -> Connection | None:
        """Store refreshed tokens if the row still holds ``old``'s access token (compare-and-swap);
        None if another refresh or a reconnect changed it first. No lock outlives the statement."""
        record = await self.pool.fetchrow(
            q("swap_tokens"),
            old.id,
            old.access_token,
            tokens.access_token,
            tokens.refresh_token,
            tokens.expires_at,
            dict(tokens.metadata) if tokens.metadata else None,
        )
        return None if record is None else rows.connection(record)

    async def mark_needs_reconnect(self, connection: Connection) -> None:
        await self.pool.execute(q("mark_needs_reconnect"), connection.id, connection.access_token)

    async def take_run_lock(self, conn: asyncpg.Connection) -> bool:
        """Take this run's liveness lock on ``conn`` (a session of its own); False if another
        session holds it (only a hash collision with a live run could)."""
        return bool(await conn.fetchval(q("take_run_lock"), self.instance_id))

    async def release_run_lock(self, conn: asyncpg.Connection) -> None:
        await conn.execute(q("release_run_lock"), self.instance_id)

    async def heartbeat(self, conn: asyncpg.Connection) -> Heartbeat:
        sent = time.monotonic()
        record = await conn.fetchrow(q("heartbeat"), self.instance_id)
        received = time.monotonic()
        assert record is not None
        return Heartbeat(float(record["epoch"]), sent, received, bool(record["lock_held"]), tuple(record["dead_runs"]))
