"""Everything that talks to PostgreSQL: the only package that imports asyncpg."""

from __future__ import annotations

import asyncio

import asyncpg

# What a database outage or a dropped connection raises. Callers outside this package
# catch these and retry; anything else is a bug and is allowed to surface.
DB_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. a protocol state error while the server restarts
)
