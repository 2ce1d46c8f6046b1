"""Wiring and lifecycle: one TaskGroup owns the listener, the sleeper and the writer.

``Daemon.run()`` serves until ``stop()``; ``started`` is set once LISTEN is active and the
boot load is armed. Shutdown order: stop arming (listener), stop claiming and let
in-flight publishes end (dispatcher, bounded by the shutdown timeout), write every
outcome (writer), close HTTP and the pool (the exit stack).
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack

import httpx
import structlog

from .config import Settings
from .db.listener import Listener
from .db.repository import Repository, create_pool
from .dispatcher import Dispatcher
from .logs import SECRETS
from .outcomes import OutcomeWriter
from .platforms.registry import Registry
from .timing import SystemClock

logger = structlog.get_logger("scheduler_daemon.daemon")


class Daemon:
    def __init__(
        self,
        settings: Settings,
        dsn: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: SystemClock | None = None,
    ) -> None:
        self.settings = settings
        self.dsn = dsn
        self.transport = transport
        self.clock = clock or SystemClock()
        self.started = asyncio.Event()
        self.dispatcher: Dispatcher | None = None
        self.listener: Listener | None = None
        self._stop = asyncio.Event()
        SECRETS.add_url(dsn)

    def stop(self) -> None:
        self._stop.set()

    def resync(self) -> None:
        """Reload every scheduled row (SIGHUP)."""
        if self.listener is not None:
            self.listener.request_resync()

    async def run(self) -> None:
        s = self.settings
        async with AsyncExitStack() as stack:
            pool = await create_pool(self.dsn, max_size=max(4, min(20, s.concurrency // 5)))
            stack.push_async_callback(pool.close)
            repository = Repository(pool, s.instance_id)
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=self.transport,
                    timeout=httpx.Timeout(s.http_timeout_seconds),
                    limits=httpx.Limits(max_connections=s.concurrency, max_keepalive_connections=s.concurrency),
                    follow_redirects=False,
                )
            )
            writer = OutcomeWriter(repository)
            dispatcher = Dispatcher(s, repository, Registry.build(s.platforms, client), writer, self.clock, client)

            async def sync() -> None:
                dispatcher.sync(await repository.load_scheduled())

            listener = Listener(
                self.dsn, repository, on_payload=dispatcher.on_payload, on_sync=sync, clock=self.clock,
                heartbeat_seconds=s.heartbeat_seconds, heartbeat_timeout_seconds=s.heartbeat_timeout_seconds,
            )
            dispatcher.on_resync_requested = listener.request_resync
            self.dispatcher, self.listener = dispatcher, listener
            logger.info("starting", instance=s.instance_id, grace_s=s.grace_seconds, concurrency=s.concurrency)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(listener.run(), name="listener")
                tasks.create_task(writer.run(), name="writer")
                sleeper = tasks.create_task(dispatcher.run(), name="dispatcher")
                await self._until_ready_or_stop(listener)
                await self._stop.wait()
                logger.info("stopping")
                listener.stop()
                dispatcher.stop()
                await sleeper
                writer.stop()
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
            self.started.set()
            logger.info("ready", armed=len(self.dispatcher.schedule), next_due=self.dispatcher.next_due_iso())
