"""Migrations: ordered, once each, idempotent, safe on an existing Supabase schema, shipped,
and (004) checking only what is written after them, on the embedded server and on a second
server version when one is at hand."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from scheduler_daemon.db.embedded import with_database
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
    numbers = [int(n[:3]) for n in names]
    # Unique and increasing; a number may be reserved for a migration another branch brings.
    assert numbers == sorted(set(numbers)) and numbers[0] == 1


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


# Columns of EXISTING's content_posts, which every migration must leave as they are.
EXISTING_POSTS = ("SELECT id, campaign_id, platform, content, status, scheduled_date, scheduled_time"
                  " FROM content_posts ORDER BY id")


async def test_004_keeps_an_existing_databases_bad_rows_and_checks_what_is_written_after(databases: Databases) -> None:
    url = await databases.create_empty()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(EXISTING)
        await conn.execute(  # a frontend's typo, and a post longer than 004 allows
            "INSERT INTO content_posts (campaign_id, platform, content, status) VALUES"
            " ('11111111-1111-1111-1111-111111111111', 'x', 'typo', 'Scheduled'),"
            " ('11111111-1111-1111-1111-111111111111', 'x', repeat('x', 100001), 'draft')")
        before = await conn.fetch(EXISTING_POSTS)
        assert len(await migrate(conn)) == len(available())
        assert await conn.fetch(EXISTING_POSTS) == before
        validated = await conn.fetchval(
            "SELECT convalidated FROM pg_constraint WHERE conname = 'scheduler_posts_status_check'")
        assert validated is False, "NOT VALID: the old rows are not rechecked"
        assert sorted(r["rule"] for r in await conn.fetch(
            "SELECT x.rule FROM content_posts p, scheduler_post_problems(p) x")) == [
            "scheduler_posts_content_check", "scheduler_posts_status_check"]
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO content_posts (platform, status) VALUES ('x', 'Scheduled')")
        # An edit that leaves the long content alone is not refused for it.
        assert await conn.execute(
            "UPDATE content_posts SET status = 'scheduled', scheduled_date = '2030-01-01', scheduled_time = '10:00'"
            " WHERE content <> 'typo' AND status = 'draft'") == "UPDATE 1"
    finally:
        await conn.close()
        await databases.drop(url)


# A second server for the migrations (the machine's PostgreSQL 15, say): skipped when none answers.
SECOND_SERVER = os.environ.get("TEST_SECOND_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
async def second_server() -> AsyncIterator[str]:
    try:
        admin = await asyncpg.connect(SECOND_SERVER, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no second PostgreSQL at {SECOND_SERVER}: {type(exc).__name__}")
    name = f"sdtest_second_{uuid.uuid4().hex[:8]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(SECOND_SERVER, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_the_migrations_apply_and_refuse_bad_input_on_a_second_server_version(second_server: str) -> None:
    conn = await asyncpg.connect(second_server)
    try:
        version = await conn.fetchval("SELECT current_setting('server_version_num')::int")
        assert version >= 130000
        assert len(await migrate(conn)) == len(available()) and await migrate(conn) == []
        await conn.execute(next(m.sql for m in available() if m.name == "004_tenant_input.sql"))  # by hand, again
        refused = {}
        for column, type_, value in (("status", "text", "Scheduled"), ("timezone", "text", "europe/paris"),
                                     ("scheduled_date", "date", "10000-01-01"), ("scheduled_time", "time", "24:00"),
                                     ("media", "jsonb", '[{"alt": "a"}]'), ("content", "text", "x" * 100_001)):
            with pytest.raises(asyncpg.CheckViolationError) as raised:
                await conn.execute(f"INSERT INTO content_posts (platform, {column}) VALUES ('x', $1::text::{type_})",
                                   value)
            refused[column] = raised.value.constraint_name
        assert refused == {c: f"scheduler_posts_{c}_check" for c in refused}, (version, refused)
        assert await conn.fetchval("SELECT scheduler_timezone_known('Europe/Paris')"), version
    finally:
        await conn.close()
