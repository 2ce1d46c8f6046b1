"""This run's liveness: a session-level advisory lock, on a connection that does nothing else.

States::

    connecting ──lock taken──▶ holding ──terminated / renew() (heartbeat: lock not held)──▶ backoff
        ▲                                                                                   │
        └───────────────────────────────────────────────────────────────────────────────────┘

Other runs take this run for dead when its lock is absent from ``pg_locks`` (the
listener's heartbeat reads it, sql/daemon.sql ``heartbeat``), never by a session's
``application_name``, which PostgreSQL garbles (non-ASCII) and poolers may drop. The lock
lives on a connection of its own, not the listener's: a listener in reconnect backoff
must not make a live run look dead. That connection sends nothing after taking the lock,
so an idle daemon still sends only the heartbeat; the heartbeat tells whether the lock is
still held (a half-open session is found there) and ``renew()`` then replaces the
session. Reconnects back off briefly (at most ``RECONNECT_CAP``): survivors wait
``SCHEDULER_RECOVERY_AFTER_SECONDS`` before they take a run's rows, and 5 s after
a server start (sql/daemon.sql, ``heartbeat``).

A ``Service``: ``started`` is set once the lock is first held; ``stop()`` ends it at
once (closing the session releases the lock).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import structlog

from ..retry import Backoff
from ..service import Service
from .errors import DB_ERRORS
from .repository import Repository, application_name

logger = structlog.get_logger("scheduler_daemon.liveness")

RECONNECT_BASE, RECONNECT_CAP = 0.1, 1.0
RELEASE_SECONDS = 2.0


class Liveness(Service):
    name = "liveness"

    def __init__(self, dsn: str, repository: Repository, *, connect_timeout: float = 10.0,
                 connect_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.dsn = dsn
        self.repository = repository
        self.connect_timeout = connect_timeout
        self.connect_kwargs = connect_kwargs or {}
        self.held = False
        self.renewals = 0
        self._renew = asyncio.Event()
        self._backoff = Backoff(RECONNECT_BASE, RECONNECT_CAP)

    def renew(self) -> None:
        """The heartbeat found the lock gone (a half-open session): take it again on a new one."""
        if self.held:
            self._renew.set()
            self._wakeup.set()

    def _woken(self) -> bool:
        return self.stopping or self._renew.is_set()

    async def run(self) -> None:
        while not self.stopping:
            try:
                conn = await asyncpg.connect(
                    self.dsn, timeout=self.connect_timeout,
                    server_settings={"application_name": application_name(self.repository.instance_id)},
                    **self.connect_kwargs,
                )
            except DB_ERRORS as exc:
                logger.warning("liveness session cannot connect", error=str(exc))
                await self._pause(self._backoff.next())
                continue
            try:
                await self._hold(conn)
                if self.stopping and self.held:
                    # Stopped (the outcomes are written): say so at once, rather than when
                    # the server notices the closed socket.
                    await asyncio.wait_for(self.repository.release_run_lock(conn), RELEASE_SECONDS)
            except DB_ERRORS as exc:
                logger.warning("liveness session lost", error=str(exc))
            finally:
                self.held = False
                conn.terminate()
            if not self.stopping:
                await self._pause(self._backoff.next())

    async def _hold(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()

        def terminated(_conn: Any) -> None:
            lost.set()
            self._wakeup.set()

        conn.add_termination_listener(terminated)
        if not await self.repository.take_run_lock(conn):
            # Only a session of this very run could hold it (a renewal racing the old
            # session's end on the server): try again shortly.
            logger.warning("liveness lock is held by another session; retrying")
            return
        self.held = True
        self._renew.clear()
        self._backoff.reset()
        if self.started.is_set():
            self.renewals += 1
            logger.info("liveness lock taken again", renewals=self.renewals)
        self.started.set()
        while not (lost.is_set() or self._renew.is_set() or self.stopping):
            await self._pause(3600.0)
