"""The dedicated LISTEN connection: the daemon's registration path.

States::

    connecting ──ok──▶ syncing ──loaded──▶ listening ──heartbeat fails / terminated──▶ backoff
        ▲                                      │ resync requested (SIGHUP, TRUNCATE)      │
        │                                      └──────────▶ syncing                        │
        └──────────────────────────────────────────────────────────────────────────────┘

On every (re)connect it LISTENs *first*, then runs ``on_sync`` (load every scheduled row),
buffering notifications that arrive meanwhile and replaying them afterwards in order:
nothing committed in between is missed, and the newest state of each row wins.
PostgreSQL drops notifications sent while we are away, so the sync after a reconnect is
what makes changes made meanwhile count. The heartbeat (sql/daemon.sql ``heartbeat``)
is the only statement an idle daemon sends; it catches a half-open TCP connection that
asyncpg's termination callback would not see, re-anchors the clock, and carries the
liveness news to ``on_heartbeat``: whether this run's lock is held, and which runs died.

Any failure but cancellation (a database error, a timeout, a bug a row or a payload
triggers in ``on_sync``) is a reconnect after a backoff, never the end of the process.

A ``Service``: ``started`` is set after the first complete sync; ``stop()`` ends it at
once (nothing it holds needs a graceful end: the connection is terminated).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import structlog

from ..callbacks import OnHeartbeat, OnPayload, OnSync
from ..clock import SystemClock
from ..observability.metrics import Metrics
from ..retry import Backoff
from ..service import Service
from .errors import DB_ERRORS
from .payloads import CHANNEL
from .repository import Repository, application_name

logger = structlog.get_logger("scheduler_daemon.listener")

RECONNECT_BASE, RECONNECT_CAP = 0.5, 30.0


class Listener(Service):
    name = "listener"

    def __init__(
        self,
        dsn: str,
        repository: Repository,
        *,
        on_payload: OnPayload,
        on_sync: OnSync,
        on_heartbeat: OnHeartbeat | None = None,
        clock: SystemClock | None = None,
        heartbeat_seconds: float = 10.0,
        heartbeat_timeout_seconds: float = 5.0,
        connect_kwargs: dict[str, Any] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__()
        self.dsn = dsn
        self.repository = repository
        self.on_payload = on_payload
        self.on_sync = on_sync
        self.on_heartbeat = on_heartbeat
        self.clock = clock
        self.heartbeat_seconds = heartbeat_seconds
        self.heartbeat_timeout = heartbeat_timeout_seconds
        self.connect_kwargs = connect_kwargs or {}
        self.metrics = metrics or Metrics()
        self.connected = False
        self.reconnects = 0
        self.last_heartbeat: float | None = None  # loop time of the last good heartbeat
        self._buffer: list[str] | None = None
        self._resync_requested = False
        self._backoff = Backoff(RECONNECT_BASE, RECONNECT_CAP)

    def request_resync(self) -> None:
        self._resync_requested = True
        self._wakeup.set()

    def _wake(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _woken(self) -> bool:
        return self.stopping or self._resync_requested

    async def run(self) -> None:
        while not self.stopping:
            try:
                conn = await asyncpg.connect(
                    self.dsn, timeout=self.heartbeat_timeout * 2,
                    server_settings={"application_name": application_name(self.repository.instance_id)},
                    **self.connect_kwargs,
                )
            except Exception as exc:
                delay = self._backoff.next()
                logger.warning("listener cannot connect", error=str(exc) or type(exc).__name__,
                               retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)  # only stop ends it early (a reconnect resyncs anyway)
                continue
            if self.started.is_set():
                self.reconnects += 1
                self.metrics.listener_reconnected()
            self._backoff.reset()
            try:
                await self._serve(conn)
            except DB_ERRORS as exc:
                logger.warning("listener connection lost", error=str(exc) or type(exc).__name__)
                self._backoff.next()
            except Exception as exc:
                # Not the connection's fault (a row or a payload the sync could not take):
                # still a reconnect, which resyncs, never the end of the daemon.
                logger.error("listener failed; reconnecting", error=str(exc) or type(exc).__name__, exc_info=exc)
                self._backoff.next()
            finally:
                self.connected = False
                conn.terminate()
            # The pool's connections are likely as dead as this one (restart, network):
            # have them replaced rather than each time out on its own.
            await self.repository.pool.expire_connections()
            await asyncio.sleep(self._backoff.next())

    async def _serve(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()

        def terminated(_conn: Any) -> None:
            lost.set()
            self._wakeup.set()

        conn.add_termination_listener(terminated)
        await conn.add_listener(CHANNEL, self._on_notify)
        await self._heartbeat(conn)
        self._resync_requested = False  # this sync covers any request made while away
        await self._sync()
        self.connected = True
        self.started.set()
        logger.info("listening", channel=CHANNEL, reconnects=self.reconnects)
        while not lost.is_set():
            await self._pause(self.heartbeat_seconds)
            if lost.is_set():
                break
            if self._resync_requested:
                self._resync_requested = False
                await self._sync()
            else:
                await asyncio.wait_for(self._heartbeat(conn), self.heartbeat_timeout)
        raise ConnectionError("LISTEN connection terminated")

    async def _sync(self) -> None:
        self._buffer = []
        try:
            await self.on_sync()
            buffered, self._buffer = self._buffer, None
            for payload in buffered:
                self.on_payload(payload)
        finally:
            self._buffer = None

    async def _heartbeat(self, conn: asyncpg.Connection) -> None:
        beat = await self.repository.heartbeat(conn)
        self.last_heartbeat = asyncio.get_running_loop().time()
        self.metrics.db_round_trip(beat.received - beat.sent)
        if self.clock is not None:
            skew = self.clock.anchor(beat.epoch, beat.sent, beat.received)
            if abs(skew) > 0.5:
                logger.warning("database clock differs from the host", skew_ms=round(skew * 1000, 1))
        if self.on_heartbeat is not None:
            self.on_heartbeat(beat)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        assert isinstance(payload, str)
        if self._buffer is not None:
            self._buffer.append(payload)
        else:
            self.on_payload(payload)
