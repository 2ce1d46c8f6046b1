"""Wiring and lifecycle: one exit stack and one TaskGroup own every service.

``Daemon.run()`` serves until ``stop()``; ``started`` is set once LISTEN is active and the
boot load is armed. The services (``service.Service``) start in the order data flows
backwards: the liveness lock (no claim before other runs can see this one alive), the
writer, the preparer (fed by the dispatcher), the dispatcher, the listener; once ready,
recovery, the horizon step and the status reporter. Each registers its ``stop`` on the exit
stack, so shutdown runs in reverse: stop reporting, stop stepping the horizon, stop arming
(listener), stop claiming and let in-flight publishes end (dispatcher, bounded by the
shutdown timeout), cut preparations short (preparer), write every outcome (writer), drop
the liveness lock, then close HTTP and the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
from collections.abc import Sequence
from contextlib import AsyncExitStack

import httpx
import structlog

from . import fdlimit
from .clock import SystemClock
from .config import Settings
from .db.listener import Listener
from .db.liveness import Liveness
from .db.prepare import PrepareStore
from .db.repository import Repository, create_pool
from .engine.dispatcher import Dispatcher
from .engine.horizon import HorizonStepper
from .engine.preparer import Preparer
from .engine.publisher import Publisher
from .engine.recovery import Recovery
from .engine.status import StatusReporter, status_line
from .engine.writer import OutcomeWriter
from .models import Heartbeat
from .net.transport import outbound_client
from .observability.metrics import Metrics
from .platforms.base import AdapterFactory
from .platforms.registry import FACTORIES, Registry, unknown_platforms
from .redact import SECRETS
from .systemd import Notifier

logger = structlog.get_logger("scheduler_daemon.daemon")

# In-flight publishes had the shutdown timeout; their outcomes get a little more to land
# (the unit's TimeoutStopSec covers both).
OUTCOME_STOP_SECONDS = 5.0


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
        adapters: Sequence[AdapterFactory] = FACTORIES,
    ) -> None:
        self.settings = settings
        self.adapters = adapters  # the platforms it publishes to (tests add one of their own)
        self.dsn = dsn
        self.transport = transport
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier(None)
        self.metrics = metrics or Metrics()
        self.started = asyncio.Event()
        self.dispatcher: Dispatcher | None = None
        self.listener: Listener | None = None
        self.recovery: Recovery | None = None
        self.horizon: HorizonStepper | None = None
        self.liveness: Liveness | None = None
        self.preparer: Preparer | None = None
        self._stop = asyncio.Event()
        # claimed_by and the liveness lock name this run, not just the instance: a restarted
        # daemon with the same SCHEDULER_INSTANCE_ID must treat its predecessor's claims as
        # a dead daemon's (their requests may have gone out), never as its own.
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
        return status_line(self.dispatcher, self.clock)

    async def run(self) -> None:
        s = self.settings
        async with AsyncExitStack() as stack:
            # Outcomes and claims travel in batches (one round trip each), so the pool stays
            # small however many publishes are in flight: 20 from SCHEDULER_CONCURRENCY=100 up.
            pool_size = max(4, min(20, s.concurrency // 5))
            fdlimit.ensure(s.concurrency, pool_size)
            pool = await create_pool(
                self.dsn, instance_id=self.run_id, max_size=pool_size,
                # A statement stuck on a half-open connection must not stall claims for long.
                command_timeout=max(5.0, 2 * s.heartbeat_timeout_seconds),
            )
            stack.push_async_callback(pool.close)
            repository = Repository(
                pool, self.run_id, max_content_chars=s.max_content_chars,
                claim_lead_seconds=s.claim_lead_seconds, grace_seconds=s.grace_seconds,
            )
            client = await stack.enter_async_context(outbound_client(s, self.transport))
            writer, preparer, dispatcher, listener, recovery = self._build(repository, client)
            logger.info("starting", run=self.run_id, grace_s=s.grace_seconds, concurrency=s.concurrency)
            # On the stack after the pool and the client, before the services' stops: leaving
            # it stops the services (last started first), then waits for their tasks, then
            # closes HTTP and the pool.
            tasks = await stack.enter_async_context(asyncio.TaskGroup())
            liveness = self.liveness = Liveness(self.dsn, repository, connect_timeout=2 * s.heartbeat_timeout_seconds)
            liveness.start(tasks, stack)
            if await self._until_or_stop(liveness.started):
                for service in (writer, preparer, dispatcher, listener):
                    service.start(tasks, stack)
            if await self._until_ready_or_stop(listener):
                recovery.start(tasks, stack)
                self.horizon = HorizonStepper(dispatcher.advance_horizon, self.clock, s.horizon_seconds)
                self.horizon.start(tasks, stack)
                StatusReporter(self.notifier, self.metrics, dispatcher, self.clock).start(tasks, stack)
            await self._stop.wait()
            logger.info("stopping")
            self.notifier.stopping("finishing in-flight publishes")
        logger.info("stopped", outcomes_written=writer.written)

    def _build(
        self, repository: Repository, client: httpx.AsyncClient
    ) -> tuple[OutcomeWriter, Preparer, Dispatcher, Listener, Recovery]:
        s = self.settings
        if unknown := unknown_platforms(s.platforms):
            logger.warning("settings name platforms that do not exist (a typo?)", platforms=unknown)
        registry = Registry.build(s.platforms, client, self.adapters)
        writer = OutcomeWriter(repository, stop_timeout=OUTCOME_STOP_SECONDS)
        publisher = Publisher(s, repository, registry, writer, self.clock, client, self.metrics)
        store = PrepareStore(repository.pool, self.run_id, max_content_chars=s.max_content_chars)
        preparer = self.preparer = Preparer(s, store, publisher, self.clock, armed=lambda: dispatcher.timers)
        dispatcher = Dispatcher(
            s, repository, publisher, self.clock, reject=writer.reject, request_resync=self._request_resync,
            on_armed=preparer.on_armed,
        )
        recovery = Recovery(
            repository, after_seconds=s.recovery_after_seconds, request_seconds=s.http_timeout_seconds,
            attempt_seconds=s.attempt_timeout_seconds, windows=registry.dedupe_windows,
            in_flight=dispatcher.in_flight, claim_gate=dispatcher.claim_gate, clock=self.clock,
        )
        listener = Listener(
            self.dsn, repository, on_payload=dispatcher.on_payload, on_sync=self._sync,
            on_heartbeat=self._on_heartbeat, clock=self.clock,
            heartbeat_seconds=s.heartbeat_seconds, heartbeat_timeout_seconds=s.heartbeat_timeout_seconds,
            metrics=self.metrics,
        )
        self.dispatcher, self.listener, self.recovery = dispatcher, listener, recovery
        return writer, preparer, dispatcher, listener, recovery

    def _request_resync(self) -> None:
        """A resync the daemon asks for itself (TRUNCATE, a failed claim): no RELOADING=1."""
        if self.listener is not None:
            self.listener.request_resync()

    def _on_heartbeat(self, beat: Heartbeat) -> None:
        """The listener's heartbeat: renew a lost liveness lock, pass the dead runs on."""
        if not beat.lock_held and self.liveness is not None:
            logger.warning("this run's liveness lock is not held; taking it again")
            self.liveness.renew()
        if self.recovery is not None:
            self.recovery.observe(beat.dead_runs)

    async def _sync(self) -> None:
        """The listener's ``on_sync``: reload the timers, then resolve orphaned claims."""
        assert self.dispatcher is not None and self.recovery is not None
        await self.dispatcher.load()
        await self.recovery.recover()
        if self.started.is_set():
            self.notifier.ready(self.status_line())  # ends a SIGHUP's RELOADING=1

    async def _until_or_stop(self, event: asyncio.Event) -> bool:
        """Wait for ``event`` or a stop; whether ``event`` is set."""
        ready = asyncio.ensure_future(event.wait())
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({ready, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (ready, stop):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
        return event.is_set()

    async def _until_ready_or_stop(self, listener: Listener) -> bool:
        if not await self._until_or_stop(listener.started):
            return False
        assert self.dispatcher is not None
        # The boot objects (modules, the timers) live as long as the process: keep them
        # out of the collector's scans, and collect the young generation less often, as
        # a burst keeps thousands of short-lived tasks alive at once (bench/analysis.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 20, 20)
        self.started.set()
        self.notifier.ready(self.status_line())
        logger.info("ready", armed=len(self.dispatcher.timers), next_due=self.dispatcher.next_due_iso())
        return True
