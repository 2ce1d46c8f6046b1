"""Orphan recovery: rows left in 'publishing' that no daemon is publishing any more.

* Ours that we are not publishing (the answer to a claim was lost: nothing was sent for
  them) are released at every sync (boot, reconnect, resync): due again at once. The
  snapshot of what we publish and ``release_own`` run inside the dispatcher's claim gate,
  so a claim cannot commit between them and be taken for a lost one.
* Those of a dead run: a run is alive while it holds its advisory lock (db/liveness.py).
  Each heartbeat names the runs holding rows without their lock (``observe``); one seen
  so for ``SCHEDULER_RECOVERY_AFTER_SECONDS`` (a lock session's reconnect rides it out)
  is *confirmed* dead. Then, in ``recover_orphans`` (sql/daemon.sql):

  - a post on a platform that deduplicates a repeat, while its first send is within the
    platform's window (``PlatformFacts.dedupe_window_seconds``), is published again;
  - any other post becomes a draft "outcome unknown", once the dead run's request cannot
    still be under way: ``SCHEDULER_HTTP_TIMEOUT_SECONDS`` after the first sweep that found
    it orphaned (stamped on the row: a survivor that restarts does not wait again), or at
    once if the claim is older than a whole attempt's deadline.

State per dead run (``_dead``): seen ──after_seconds──▶ confirmed (swept; the sweep says
when the first row it left waiting is due) ──that instant──▶ swept again; a run drops out
once a heartbeat no longer names it (its rows are resolved, or its lock is back). A
``Service``: ``run()`` sleeps until the next of those instants or the next heartbeat's
news; it sends nothing on its own while no run is dead.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping

import structlog

from ..callbacks import InFlight
from ..clock import Clock
from ..db.errors import DB_ERRORS
from ..db.repository import Repository
from ..models import OrphanSweep
from ..service import Service

logger = structlog.get_logger("scheduler_daemon.recovery")

RETRY_SECONDS = 2.0  # after a failed sweep (the database is away): the next try
MIN_PAUSE = 0.05  # between sweeps: a row due "now" by our clock may be a hair early by the database's


class Recovery(Service):
    name = "recovery"

    def __init__(
        self,
        repository: Repository,
        *,
        after_seconds: float,
        request_seconds: float,
        attempt_seconds: float,
        windows: Mapping[str, float],
        in_flight: InFlight,
        claim_gate: asyncio.Lock,
        clock: Clock,
        after_snapshot: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self.repository = repository
        self.after_seconds = after_seconds  # a run without its lock this long is dead
        self.request_seconds = request_seconds  # a dead run's last request has run out by then
        self.attempt_seconds = attempt_seconds
        self.windows = dict(windows)  # platform -> seconds a repeat is deduplicated after the first send
        self.in_flight = in_flight
        self.claim_gate = claim_gate
        self.clock = clock
        self.after_snapshot = after_snapshot  # tests force a claim between snapshot and release
        self._dead: dict[str, float] = {}  # run id -> when a heartbeat first named it
        # When the first row the last sweep left waiting for its request deadline is due (the
        # row's stamp says: it may be a predecessor's sweep that started the wait).
        self._waiting_until: float | None = None

    def observe(self, dead_runs: Collection[str]) -> None:
        """A heartbeat's news: the runs that hold rows in 'publishing' without their lock."""
        now = self.clock.now()
        fresh = [run for run in dead_runs if run not in self._dead]
        self._dead = {run: self._dead.get(run, now) for run in dead_runs}
        if fresh:
            logger.warning("runs hold posts in 'publishing' without their liveness lock", runs=fresh[:10])
        # A new dead run starts its wait; a confirmed one still named has rows left (skipped
        # while locked, or waiting for its request deadline): look again.
        if fresh or self._confirmed(now):
            self._wakeup.set()

    async def recover(self) -> list[uuid.UUID]:
        """Release our own lost claims (returned), then resolve dead runs' rows that are due
        to be (raises DB_ERRORS: the caller retries)."""
        async with self.claim_gate:
            busy = list(self.in_flight())
            if self.after_snapshot is not None:
                await self.after_snapshot()
            released = await self.repository.release_own(busy)
        if released:
            logger.warning("released rows whose claim answer was lost", posts=len(released))
        await self.sweep()
        return released

    async def sweep(self) -> None:
        confirmed = self._confirmed(self.clock.now())
        if not confirmed:
            return
        sweep = OrphanSweep(tuple(confirmed), self.windows, self.request_seconds, self.attempt_seconds)
        resolved, self._waiting_until = await self.repository.recover_orphans(sweep)
        for orphan in resolved:
            log = logger.bind(post_id=str(orphan.id), platform=orphan.platform, instance=orphan.instance)
            if orphan.status == "scheduled":
                log.warning("republishing a post a dead daemon left unfinished (the platform deduplicates)")
            else:
                log.error("a dead daemon left this post unfinished: outcome unknown, set to draft")

    def _confirmed(self, now: float) -> list[str]:
        return [run for run, seen in self._dead.items() if now - seen >= self.after_seconds]

    def _next_instant(self, now: float) -> float | None:
        """When the next sweep is due: a dead run's confirmation, or a waiting row's deadline."""
        upcoming = [seen + self.after_seconds for seen in self._dead.values() if seen + self.after_seconds > now]
        if self._waiting_until is not None and self._dead:
            upcoming.append(self._waiting_until)
        return min(upcoming, default=None)

    async def run(self) -> None:
        self.started.set()
        while not self.stopping:
            try:
                await self.sweep()
                wait = max(MIN_PAUSE, _until(self._next_instant(self.clock.now()), self.clock.now()))
            except DB_ERRORS as exc:
                logger.warning("recovery sweep failed; will retry", error=str(exc))
                wait = RETRY_SECONDS
            await self._pause(wait)


def _until(instant: float | None, now: float) -> float:
    return 3600.0 if instant is None else max(0.0, instant - now)
