"""What a database outage or a dropped connection raises.

Callers outside ``db/`` catch ``DB_ERRORS`` and retry (the daemon) or report (the CLI);
anything else is a bug and is allowed to surface.
"""

from __future__ import annotations

import asyncio

import asyncpg

DB_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. a protocol state error while the server restarts
)

# Class 22 (data exception), raised by the server (a NUL in text: 22021) or by asyncpg when
# it cannot encode an argument (a lone surrogate: 22000, its message quoting the whole
# array). Retrying the same rows cannot help: the writer isolates the row instead.
DATA_ERRORS: tuple[type[Exception], ...] = (asyncpg.DataError,)
