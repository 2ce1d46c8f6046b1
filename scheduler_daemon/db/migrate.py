"""Applies migrations/NNN_name.sql in order, each once, each in its own transaction.

Applied names are recorded in ``scheduler_migrations``; re-running is a no-op. A
session advisory lock serialises replicas that start together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files

import asyncpg

from .sql import q

_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 7_241_901_337  # any constant shared by every scheduler-daemon


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str


def available() -> list[Migration]:
    folder = files("scheduler_daemon.migrations")
    found = sorted(p.name for p in folder.iterdir() if _NAME.match(p.name))
    return [Migration(name, folder.joinpath(name).read_text(encoding="utf-8")) for name in found]


async def applied(conn: asyncpg.Connection) -> list[str]:
    if not await conn.fetchval(q("migrations_table_exists")):
        return []
    return [r["name"] for r in await conn.fetch(q("applied_migrations"))]


async def pending(conn: asyncpg.Connection) -> list[Migration]:
    done = set(await applied(conn))
    return [m for m in available() if m.name not in done]


async def apply(dsn: str) -> list[str]:
    """Connect to ``dsn`` and apply what is pending; returns the names applied now."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def missing(dsn: str) -> list[str]:
    """The names of the migrations ``dsn`` lacks."""
    conn = await asyncpg.connect(dsn)
    try:
        return [m.name for m in await pending(conn)]
    finally:
        await conn.close()


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply what is pending; returns the names applied now."""
    await conn.execute(q("lock_migrations"), _LOCK_KEY)
    try:
        await conn.execute(q("create_migrations_table"))
        done = []
        for migration in await pending(conn):
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(q("record_migration"), migration.name)
            done.append(migration.name)
        return done
    finally:
        await conn.execute(q("unlock_migrations"), _LOCK_KEY)
