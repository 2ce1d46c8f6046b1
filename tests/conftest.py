"""Shared fixtures, for every folder: a real PostgreSQL per session, a fresh migrated
database per test (``dsn``, ``db``), a watcher that waits on row changes through LISTEN
(``watcher``), test settings (``settings``) and running daemons (``daemon_on``,
``start_daemon``).

Each test is marked by its folder (``FOLDER_MARKS``): ``unit`` (pure: no database, no
network, no subprocess), ``integration`` (everything else), and ``slow`` for the fault and
chaos suites. A folder not listed is ``integration``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from scheduler_daemon.config import Settings
from scheduler_daemon.daemon import Daemon
from scheduler_daemon.testing.postgres import Databases, server
from support.helpers import Watcher

FOLDER_MARKS: dict[str, tuple[str, ...]] = {
    "unit": ("unit",),
    "faults": ("integration", "slow"),
    "chaos": ("integration", "slow"),
}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    # Not under pytest's basetemp: pytest prunes old basetemps, which would pull the data
    # directory from under a server another pytest process is still running.
    tmp = Path(tempfile.mkdtemp(prefix="scheduler-daemon-tests-"))
    try:
        with server(tmp) as url:
            yield url
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def databases(pg_server: str) -> Iterator[Databases]:
    dbs = Databases(pg_server)
    asyncio.run(dbs.prepare())
    yield dbs
    asyncio.run(dbs.drop_all())


@pytest.fixture
async def dsn(databases: Databases) -> AsyncIterator[str]:
    url = await databases.create()
    yield url
    await databases.drop(url)


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    yield conn
    await conn.close()


@pytest.fixture
async def watcher(dsn: str) -> AsyncIterator[Watcher]:
    conn = await asyncpg.connect(dsn)
    yield await Watcher(conn).start()
    await conn.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # The fakes listen on 127.0.0.1: that host is allowed (127.0.0.2, ::1 and the rest of
    # the loopback and private space stay refused, as tests/hostile/ checks).
    return replace(
        Settings.from_env({"SCHEDULER_ALLOW_NETWORKS": "127.0.0.1/32"}),
        instance_id=f"test-{uuid.uuid4().hex[:6]}", state_dir=tmp_path,
        heartbeat_seconds=1.0, heartbeat_timeout_seconds=2.0, shutdown_timeout_seconds=5.0,
        retry_base_seconds=0.05, retry_max_seconds=0.2, http_timeout_seconds=5.0,
    )


class RunningDaemon:
    def __init__(self, daemon: Daemon, task: asyncio.Task[None]) -> None:
        self.daemon = daemon
        self.task = task

    async def stop(self) -> None:
        self.daemon.stop()
        async with asyncio.timeout(20):
            await self.task


@pytest.fixture
async def daemon_on(settings: Settings) -> AsyncIterator[Any]:
    """Start in-process daemons on any database: ``await daemon_on(dsn, **setting_overrides)``
    (``transport=`` and ``clock=`` go to the Daemon); all are stopped after the test."""
    running: list[RunningDaemon] = []

    async def start(dsn: str, **overrides: Any) -> RunningDaemon:
        transport = overrides.pop("transport", None)
        clock = overrides.pop("clock", None)
        daemon = Daemon(replace(settings, **overrides), dsn, transport=transport, clock=clock)
        task = asyncio.create_task(daemon.run())
        started = asyncio.ensure_future(daemon.started.wait())
        async with asyncio.timeout(20):
            await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            started.cancel()
            task.result()  # raise the daemon's failure
        handle = RunningDaemon(daemon, task)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        if not handle.task.done():
            await handle.stop()


@pytest.fixture
def start_daemon(dsn: str, daemon_on: Any) -> Any:
    """``daemon_on`` bound to this test's database."""
    return functools.partial(daemon_on, dsn)


@pytest.fixture
def settings_(settings: Settings) -> Settings:
    """The daemon settings under a name that does not clash with a module's own ``settings``."""
    return settings


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        folder = item.path.relative_to(tests).parts[0] if item.path.is_relative_to(tests) else ""
        for mark in FOLDER_MARKS.get(folder, ("integration",)):
            item.add_marker(mark)


def pytest_unconfigure(config: pytest.Config) -> None:
    """pgserver logs from an atexit hook; by then the streams the root handlers wrote to
    (pytest's captures) are closed. Leave nothing there to write to."""
    logging.getLogger().handlers.clear()
