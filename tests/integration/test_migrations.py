"""Migrations: ordered, once each, idempotent, safe on an existing Supabase schema, shipped."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import asyncpg

from scheduler_daemon.db.migrate import available, migrate, pending
from scheduler_daemon.testing.postgres import Databases

ROOT = Path(__file__).resolve().parents[2]

COLUMNS = """
SELECT table_name, column_name, data_type, is_nullable, column_default
  FROM information_schema.columns
 WHERE table_schema = 'public'
   AND table_name IN ('content_campaigns', 'content_posts', 'platform_connections', 'publish_attempts')
 ORDER BY table_name, column_name
"""
TRIGGERS = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname"

# What a Supabase project may already have before the daemon arrives: the frontend's tables,
# with fewer columns, and rows in them.
EXISTING = """
CREATE TABLE content_campaigns (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid NOT NULL, name text);
CREATE TABLE platform_connections (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid NOT NULL,
    platform text NOT NULL, access_token text);
CREATE TABLE content_posts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id uuid REFERENCES content_campaigns, platform text NOT NULL, content text,
    status text NOT NULL DEFAULT 'draft', scheduled_date date, scheduled_time time);
INSERT INTO content_campaigns (id, user_id, name)
    VALUES ('11111111-1111-1111-1111-111111111111', gen_random_uuid(), 'kept');
INSERT INTO content_posts (campaign_id, platform, content, status)
    VALUES ('11111111-1111-1111-1111-111111111111', 'x', 'an old post', 'published');
"""


def test_migrations_are_numbered_and_ordered() -> None:
    names = [m.name for m in available()]
    assert names == sorted(names) and names[0].startswith("001_")
    assert [int(n[:3]) for n in names] == list(range(1, len(names) + 1))


async def test_rerunning_is_a_no_op(db: asyncpg.Connection) -> None:
    assert await migrate(db) == []
    assert await pending(db) == []
    applied = await db.fetchval("SELECT count(*) FROM scheduler_migrations")
    assert applied == len(available())


async def test_existing_supabase_tables_are_completed_and_their_rows_kept(databases: Databases, db) -> None:
    url = await databases.create_empty()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(EXISTING)
        assert len(await migrate(conn)) == len(available())
        assert await conn.fetch(COLUMNS) == await db.fetch(COLUMNS), "migrated schema differs from a fresh one"
        assert [r["tgname"] for r in await conn.fetch(TRIGGERS)] == [
            r["tgname"] for r in await db.fetch(TRIGGERS) if r["tgname"] != "test_watch_posts"]
        kept = await conn.fetchrow("SELECT content, status, media, timezone FROM content_posts")
        assert tuple(kept) == ("an old post", "published", "[]", "UTC")
        assert await conn.fetchval("SELECT name FROM content_campaigns") == "kept"
    finally:
        await conn.close()
        await databases.drop(url)


def test_a_built_wheel_ships_the_migrations_and_queries(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    [wheel] = tmp_path.glob("scheduler_daemon-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for migration in available():
        assert f"scheduler_daemon/migrations/{migration.name}" in names
    assert "scheduler_daemon/db/sql/daemon.sql" in names and "scheduler_daemon/py.typed" in names
    assert "scheduler_daemon/units/scheduler-daemon.service" in names  # for install-service
