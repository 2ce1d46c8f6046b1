"""The timer engine: arm posts, sleep to the next deadline, claim what falls due.

One sleeper waits for the earliest deadline in the ``Timers`` or an earlier wake-up (a
sooner post armed, stop). When posts fall due it claims them in one batch (a round trip
for up to ``CLAIM_BATCH`` posts), then hands each one it won to the ``Publisher`` in its
own task, bounded by the publisher's slots. A post missed beyond the grace window goes
back to draft instead.

Registration is synchronous and cheap (``on_payload``, ``arm``, and ``sync`` for a whole
table): the listener calls it from its notification callback, so arming a post costs no
query and no task.

A ``Service``: ``started`` is set once the sleeper runs; ``stop()`` stops claiming and
returns once in-flight publishes have ended (past the shutdown timeout they are
cancelled and recorded as unknown).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterable, Iterable, Set

import structlog

from ..callbacks import OnArmed, Reject, RequestResync
from ..clock import Clock, format_delay, utc_from_ts
from ..config import Settings
from ..db.errors import DB_ERRORS
from ..db.payloads import MalformedNotification, Op, parse
from ..db.repository import Repository
from ..due import due_instant
from ..errors import InvalidScheduleError
from ..models import ClaimedPost, ScheduledRow
from ..retry import Backoff
from ..service import Service
from .publisher import Publisher
from .timers import Armed, Timers

logger = structlog.get_logger("scheduler_daemon.dispatcher")

CLAIM_BATCH = 1000
CLAIM_RETRY_BASE, CLAIM_RETRY_CAP = 0.5, 2.0


class Dispatcher(Service):
    name = "dispatcher"

    def __init__(
        self,
        settings: Settings,
        repository: Repository,
        publisher: Publisher,
        clock: Clock,
        *,
        reject: Reject,
        request_resync: RequestResync,
        on_armed: OnArmed | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.repository = repository
        self.publisher = publisher
        self.clock = clock
        self.reject = reject
        self.request_resync = request_resync
        self.on_armed = on_armed  # the preparer's: every arm and disarm, for its window before the instant
        self.timers = Timers()
        # Claim this far ahead of the instant and send exactly on it, so the claim's round
        # trip does not make posts late. A user edit or delete in that window abandons the
        # claim before anything is sent (see migrations/002).
        self.lead = settings.claim_lead_seconds
        self.inflight: set[uuid.UUID] = set()
        self._idle = asyncio.Event()  # set whenever nothing is in flight
        self._idle.set()
        self._claim_backoff = Backoff(CLAIM_RETRY_BASE, CLAIM_RETRY_CAP)
        # Held around each claim's round trip; recovery holds it while it snapshots what is
        # in flight and releases our other claims, so no claim commits in between.
        self.claim_gate = asyncio.Lock()

    def in_flight(self) -> Set[uuid.UUID]:
        """Posts claimed and not yet settled (an ``InFlight`` for recovery)."""
        return self.inflight

    # -- registration (synchronous: called from the listener) --------------------------

    def on_payload(self, payload: str) -> None:
        try:
            note = parse(payload)
        except MalformedNotification as exc:
            logger.warning("ignored malformed notification", error=str(exc), payload=payload[:200])
            return
        if note.op is Op.TRUNCATE:
            self.request_resync()
            return
        assert note.id is not None and note.key is not None
        if note.was_publishing:
            self.publisher.edited(note.id)  # the user edited a post claimed ahead of its instant
        if note.arms:
            self.arm(ScheduledRow(note.id, note.key), note.version)
            return
        if self.on_armed is not None:
            self.on_armed(note.id, None, note.version)
        if self.timers.cancel(note.id):
            logger.debug("disarmed", post_id=str(note.id), status=note.status, op=note.op.value)

    def arm(self, row: ScheduledRow, version: int, timers: Timers | None = None) -> None:
        try:
            due = due_instant(row.key).timestamp()
        except InvalidScheduleError as exc:
            logger.warning("cannot schedule post", post_id=str(row.id), error=str(exc))
            self.reject(row.id, version, str(exc))
            return
        if self.on_armed is not None:  # on every arm, a sync's included
            self.on_armed(row.id, due, version)
        if timers is None:
            if self.timers.arm(row.id, due, version):
                self._wakeup.set()
        else:
            timers.arm(row.id, due, version)

    async def sync(self, batches: AsyncIterable[list[tuple[ScheduledRow, int]]]) -> None:
        """Replace the timers with the table's scheduled rows (boot and every resync).

        The new timers are built aside and swapped in at the end, so the posts armed now
        keep firing on time while a large table loads.
        """
        fresh = Timers()
        async for batch in batches:
            for row, version in batch:
                # Rows in flight are armed too: a claim still being decided (or retried
                # after a failure) must not leave its post unarmed, and a stale timer only
                # loses its claim.
                self.arm(row, version, fresh)
        self.timers = fresh
        self._wakeup.set()
        logger.info("schedule loaded", armed=len(self.timers), next_due=self.next_due_iso())

    def next_due_iso(self) -> str | None:
        nxt = self.timers.next_due()
        return None if nxt is None else utc_from_ts(nxt).isoformat()

    # -- the sleeper --------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                self.started.set()
                await self._sleeper(tasks)
                await self._finish_inflight()
        except* TimeoutError:
            logger.error("shutdown timeout: in-flight publishes were stopped and recorded as unknown")

    async def _sleeper(self, tasks: asyncio.TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            self._wakeup.clear()
            now = self.clock.now()
            due = self.timers.pop_due(now + self.lead, CLAIM_BATCH)
            if due:
                await self._dispatch(due, now, tasks)
                continue
            nxt = self.timers.next_due()
            timer = None if nxt is None else loop.call_later(max(0.0, nxt - self.lead - now), self._wakeup.set)
            await self._wakeup.wait()
            if timer is not None:
                timer.cancel()

    async def _finish_inflight(self) -> None:
        """Let in-flight publishes end; past the shutdown timeout, TimeoutError cancels them."""
        if self.inflight:
            logger.info("waiting for in-flight publishes", count=len(self.inflight))
            async with asyncio.timeout(self.settings.shutdown_timeout_seconds):
                await self._idle.wait()

    async def _dispatch(self, due: list[Armed], now: float, tasks: asyncio.TaskGroup) -> None:
        ready = self._within_grace(due, now)
        if not ready:
            return
        # In flight from before the claim is sent until the outcome is written, so a
        # concurrent resync never mistakes these rows for orphans of ours.
        self.inflight.update(ready)
        self._idle.clear()
        won = await self._claim(ready)
        claimed = {post.id for post in won}
        self._settle(post_id for post_id in ready if post_id not in claimed)
        for post in won:
            tasks.create_task(self._publish(post, ready[post.id]))

    def _within_grace(self, due: list[Armed], now: float) -> dict[uuid.UUID, Armed]:
        """The due posts still worth publishing; the others go back to draft as missed."""
        grace = self.settings.grace_seconds
        ready: dict[uuid.UUID, Armed] = {}
        for armed in due:
            late = now - armed.due
            if late > grace:
                message = (
                    f"missed: was due at {utc_from_ts(armed.due).isoformat()} and the daemon saw it "
                    f"{format_delay(late)} late (grace window {format_delay(grace)}); reschedule it"
                )
                logger.warning("post missed", post_id=str(armed.id), late_s=round(late, 1))
                self.reject(armed.id, armed.version, message)
            else:
                ready[armed.id] = armed
        return ready

    async def _claim(self, ready: dict[uuid.UUID, Armed]) -> list[ClaimedPost]:
        try:
            async with self.claim_gate:
                won = await self.repository.claim([(a.id, a.version) for a in ready.values()])
        except DB_ERRORS as exc:
            # Not claimed, or claimed with the answer lost: re-arm, and ask for a resync,
            # whose release_own gives back a row claimed without our knowing (nothing was
            # sent for it).
            delay = self._claim_backoff.next()
            logger.warning("claim failed; re-arming", error=str(exc), posts=len(ready), retry_in_s=round(delay, 2))
            for armed in ready.values():
                self.timers.arm(armed.id, armed.due, armed.version)
            self.request_resync()
            await asyncio.sleep(delay)
            return []
        self._claim_backoff.reset()
        return won

    async def _publish(self, post: ClaimedPost, armed: Armed) -> None:
        try:
            await self.publisher.publish(post, armed)
        finally:
            self._settle((post.id,))

    def _settle(self, post_ids: Iterable[uuid.UUID]) -> None:
        self.inflight.difference_update(post_ids)
        if not self.inflight:
            self._idle.set()
