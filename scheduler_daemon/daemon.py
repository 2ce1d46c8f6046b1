"""Wiring and lifecycle: one TaskGroup owns the listener, the sleeper and the writer.

``Daemon.run()`` serves until ``stop()``; ``started`` is set once LISTEN is active and the
boot load is armed. Shutdown order: stop arming (listener), stop claiming and let
in-flight publishes end (dispatcher, bounded by the shutdown timeout), write every
outcome (writer), close HTTP and the pool (the exit stack).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
from contextlib import AsyncExitStack

import httpx
import structlog

from .config import Settings
from .db import DB_ERRORS
from .db.listener import Listener
from .db.repository import Repository, create_pool
from .dispatcher import Dispatcher
from .logs import SECRETS
from .metrics import Metrics
from .outcomes import OutcomeWriter
from .platforms.registry import Registry
from .systemd import Notifier, StatusUpdates, status_text
from .timing import SystemClock
from .transport import AiohttpTransport

logger = structlog.get_logger("scheduler_daemon.daemon")


def _warm_httpcore() -> None:
    """httpcore loads anyio's asyncio backend on its first request (about 15 ms here);
    load it now, inside the loop, so the first post of the day is not the late one."""
    import anyio

    anyio.Event()


class Daemon:
    def __init__(
        self,
        settings: Settings,
        dsn: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: SystemClock | None = None,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.dsn = dsn
        self.transport = transport
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier(None)
        self.metrics = metrics or Metrics()
        self.started = asyncio.Event()
        self.dispatcher: Dispatcher | None = None
        self.listener: Listener | None = None
        self._stop = asyncio.Event()
        # claimed_by and application_name name this run, not just the instance: a restarted
        # daemon with the same SCHEDULER_INSTANCE_ID must treat its predecessor's claims as
        # a stopped daemon's (their requests may have gone out), never as its own.
        self.run_id = f"{secrets.token_hex(4)}@{settings.instance_id}"
        SECRETS.add_url(dsn)
        SECRETS.add(*settings.secret_values())

    def stop(self) -> None:
        self._stop.set()

    def resync(self) -> None:
        """Reload every scheduled row (SIGHUP); systemd sees RELOADING=1 until it is done."""
        if self.listener is not None:
            self.notifier.reloading("resynchronising from the database")
            self.listener.request_resync()

    def status_line(self) -> str:
        d = self.dispatcher
        if d is None:
            return "starting"
        return status_text(len(d.schedule), len(d.inflight), d.schedule.next_due(), self.clock.now())

    async def run(self) -> None:
        s = self.settings
        async with AsyncExitStack() as stack:
            pool = await create_pool(
                self.dsn, instance_id=self.run_id, max_size=max(4, min(20, s.concurrency // 5)),
                # A statement stuck on a half-open connection must not stall claims for long.
                command_timeout=max(5.0, 2 * s.heartbeat_timeout_seconds),
            )
            stack.push_async_callback(pool.close)
            repository = Repository(pool, self.run_id)
            transport = self.transport
            if transport is None and s.http_transport == "aiohttp":
                transport = AiohttpTransport(max_connections=s.concurrency)
            elif transport is None:
                _warm_httpcore()
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=transport,
                    timeout=httpx.Timeout(s.http_timeout_seconds),
                    limits=httpx.Limits(max_connections=s.concurrency, max_keepalive_connections=s.concurrency),
                    follow_redirects=False,
                )
            )
            writer = OutcomeWriter(repository)
            dispatcher = Dispatcher(
                s, repository, Registry.build(s.platforms, client), writer, self.clock, client, self.metrics
            )

            async def sync() -> None:
                await dispatcher.sync(repository.scheduled_batches())
                await dispatcher.recover()
                if self.started.is_set():
                    self.notifier.ready(self.status_line())  # ends a SIGHUP's RELOADING=1

            listener = Listener(
                self.dsn, repository, on_payload=dispatcher.on_payload, on_sync=sync, clock=self.clock,
                heartbeat_seconds=s.heartbeat_seconds, heartbeat_timeout_seconds=s.heartbeat_timeout_seconds,
                metrics=self.metrics,
            )
            dispatcher.on_resync_requested = listener.request_resync
            self.dispatcher, self.listener = dispatcher, listener
            logger.info("starting", run=self.run_id, grace_s=s.grace_seconds, concurrency=s.concurrency)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(listener.run(), name="listener")
                tasks.create_task(writer.run(), name="writer")
                sleeper = tasks.create_task(dispatcher.run(), name="dispatcher")
                await self._until_ready_or_stop(listener)
                tasks.create_task(self._report(), name="systemd")
                await self._stop.wait()
                logger.info("stopping")
                self.notifier.stopping("finishing in-flight publishes")
                listener.stop()
                dispatcher.stop()
                await sleeper
                # In-flight publishes had the shutdown timeout; their outcomes get a little
                # more to land (the unit's TimeoutStopSec covers both).
                writer.stop(timeout=5.0)
            logger.info("stopped", outcomes_written=writer.written)

    async def _until_ready_or_stop(self, listener: Listener) -> None:
        ready = asyncio.ensure_future(listener.ready.wait())
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({ready, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (ready, stop):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
        if listener.ready.is_set():
            assert self.dispatcher is not None
            # The boot objects (modules, the schedule) live as long as the process: keep them
            # out of the collector's scans, and collect the young generation less often, as
            # a burst keeps thousands of short-lived tasks alive at once (bench/analysis.md).
            gc.collect()
            gc.freeze()
            gc.set_threshold(10_000, 20, 20)
            self.started.set()
            self.notifier.ready(self.status_line())
            logger.info("ready", armed=len(self.dispatcher.schedule), next_due=self.dispatcher.next_due_iso())

    async def _recover(self, dispatcher: Dispatcher) -> None:
        try:
            await dispatcher.recover()
        except DB_ERRORS as exc:
            logger.warning("recovery check failed; will retry", error=str(exc))

    async def _report(self) -> None:
        """WATCHDOG=1 from the event loop itself (a stuck loop stops it), STATUS= on change."""
        watchdog = self.notifier.watchdog_interval()
        period = min(watchdog or 5.0, 5.0)
        status = StatusUpdates(self.notifier)
        while not self._stop.is_set():
            if watchdog is not None:
                self.notifier.watchdog()
            assert self.dispatcher is not None
            if self.dispatcher.orphans_pending:
                await self._recover(self.dispatcher)
            status.send(self.status_line())
            nxt = self.dispatcher.schedule.next_due()
            self.metrics.armed(len(self.dispatcher.schedule), None if nxt is None else nxt - self.clock.now())
            try:
                await asyncio.wait_for(self._stop.wait(), period)
            except TimeoutError:
                pass
