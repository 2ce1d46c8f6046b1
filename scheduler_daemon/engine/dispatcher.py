"""The timer engine: arm posts, sleep to the next deadline, claim what falls due.

One sleeper waits for the earliest deadline in the ``Timers`` or an earlier wake-up (a
sooner post armed, stop). When posts fall due it claims them in one batch (a round trip
for up to ``CLAIM_BATCH`` posts), then hands each one it won to the ``Publisher`` in its
own task, bounded by the publisher's slots, to be sent at the instant the row itself has.
A burst (many posts due together) is claimed ahead of its instant, up to 2 s, batch after
batch, so that its claims are over when it falls due (engine/burst.py).
A notification only ever adds a timer or moves one earlier, never later nor away: a post
that left 'scheduled' loses its claim at its old instant (until a resync drops its timer),
and one rescheduled later is told its new instant by the claim at the old one.

The timers are hints; the claim decides, in SQL, on the row (sql/daemon.sql, claim): a post
that is not due yet is armed again at its real instant, one missed beyond the grace window
or without a usable instant goes back to draft with the database's reason. So a forged
notification (any role can NOTIFY on the channel) can neither publish a post early nor
turn it into a draft. A post still in flight here is never claimed again: its timer waits
until the outcome is written.

Only the posts due before ``horizon_end`` (now + SCHEDULER_HORIZON_SECONDS at each load,
moved on by ``advance_horizon``, which engine/horizon.py calls every step) are armed: a
notification for a post beyond it arms nothing (its step loads it), one that moves a post
inside arms it. ``load`` and ``advance_horizon`` take turns (one lock), and each moves the
end before it reads, so a row committed meanwhile is either read or notified inside.

Registration is synchronous and cheap (``on_payload``, ``arm``, and ``sync`` for a whole
table): the listener calls it from its notification callback, so arming a post costs no
query and no task. Each payload is handled inside its own error boundary: nothing one holds
stops the callback, and a flood of TRUNCATE payloads costs one resync.

A ``Service``: ``started`` is set once the sleeper runs; ``stop()`` stops claiming and
returns once in-flight publishes have ended (past the shutdown timeout they are
cancelled and recorded as unknown).
"""

from __future__ import annotations

import asyncio
import functools
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
from ..models import ClaimedPost, ClaimResult, LoadedRow, ScheduledRow, Verdict
from ..retry import Backoff
from ..service import Service
from .burst import BURST_BACKLOG, Bursts
from .claim_order import BusyRetry, ClaimOrder
from .publisher import Publisher
from .timers import Armed, Timers

logger = structlog.get_logger("scheduler_daemon.dispatcher")

CLAIM_BATCH = 1000
CLAIM_RETRY_BASE, CLAIM_RETRY_CAP = 0.5, 2.0
TRUNCATE_RESYNC_SECONDS = 30.0


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
        self.on_armed = on_armed  # the preparer's: every arm (a sync's too), for its window before the instant
        self.timers = Timers()
        self.horizon_seconds = settings.horizon_seconds
        # Every scheduled post due before this instant is armed; None until the first load.
        self.horizon_end: float | None = None
        self._loading = asyncio.Lock()  # a load and a horizon step never interleave
        # Claim this far ahead of the instant and send exactly on it, so the claim's round
        # trip does not make posts late. A user edit or delete in that window abandons the
        # claim before anything is sent (see migrations/002).
        self.lead = settings.claim_lead_seconds
        self.inflight: set[uuid.UUID] = set()
        # Timers that fell due while their post was still in flight (a stale timer, or a
        # trusted writer's reschedule mid-publish): armed again once its outcome is written.
        self._deferred: dict[uuid.UUID, Armed] = {}
        self._truncate_resync_at: float | None = None  # when a TRUNCATE last asked for a resync
        self._idle = asyncio.Event()  # set whenever nothing is in flight
        self._idle.set()
        self._claim_backoff = Backoff(CLAIM_RETRY_BASE, CLAIM_RETRY_CAP)
        self.busy = BusyRetry()  # when to claim again a post another transaction held
        # Held around each claim's round trip; recovery holds it while it snapshots what is
        # in flight and releases our other claims, so no claim commits in between.
        self.claim_gate = asyncio.Lock()
        self.bursts = Bursts(clock, self.lead)  # claimed ahead of their instant (engine/burst.py)
        publisher.on_room = self._wakeup.set  # backpressure: see _sleeper
        publisher.wake_at_room = (1, 1 - BURST_BACKLOG)

    @functools.cached_property
    def claim_order(self) -> ClaimOrder:
        """This run's order for a claim's ids (keyed by its ``claimed_by``), so replicas start a
        burst on different posts; made at the first claim."""
        return ClaimOrder(self.repository.instance_id)

    def in_flight(self) -> Set[uuid.UUID]:
        """Posts claimed and not yet settled (an ``InFlight`` for recovery)."""
        return self.inflight

    # -- registration (synchronous: called from the listener) --------------------------

    def on_payload(self, payload: str) -> None:
        try:
            self._on_payload(payload)
        except Exception as exc:  # the error boundary: a payload never stops the listener's callback
            logger.error("ignored a notification that could not be handled", error=repr(exc)[:300],
                         payload=payload[:200])

    def _on_payload(self, payload: str) -> None:
        try:
            note = parse(payload)
        except MalformedNotification as exc:
            logger.warning("ignored malformed notification", error=str(exc), payload=payload[:200])
            return
        if note.op is Op.TRUNCATE:
            self._on_truncate()
            return
        assert note.id is not None and note.key is not None
        if note.was_publishing:
            self.publisher.edited(note.id)  # the user edited a post claimed ahead of its instant
        if note.arms:
            self.arm(ScheduledRow(note.id, note.key), note.version)
        # A post that left 'scheduled' (or was deleted) keeps its timer: its claim finds
        # nothing to do. A notification (which anyone can forge) cannot cancel a post (nor
        # its preparation: its lease finds nothing to do).

    def _on_truncate(self) -> None:
        """A TRUNCATE (or a forged one): the timers of the rows it removed can only lose their
        claims, so the resync only frees their memory. At most one per TRUNCATE_RESYNC_SECONDS:
        a flood costs one resync."""
        now = self.clock.now()
        last = self._truncate_resync_at
        if last is not None and 0 <= now - last < TRUNCATE_RESYNC_SECONDS:
            logger.debug("TRUNCATE within the last resync's interval: coalesced")
            return
        self._truncate_resync_at = now
        self.request_resync()

    def arm(self, row: ScheduledRow, version: int) -> None:
        """Arm a post a notification announced, at the instant its payload says."""
        try:
            due = due_instant(row.key).timestamp()
        except InvalidScheduleError as exc:
            # Only the row can say it is unschedulable: claim now, and the claim's verdict
            # (the database's reason, or its real instant) decides.
            logger.info("notification without a usable instant; asking the row", post_id=str(row.id),
                        error=str(exc))
            due = self.clock.now()
        current = self.timers.get(row.id)
        if current is not None and current.version < version and current.due < due:
            # A payload moves a timer earlier only. Later goes through the row: at the earlier
            # instant the claim answers with the row's own (one round trip), so a forged
            # higher version cannot postpone a post.
            due = current.due
        if current is None and self.horizon_end is not None and due >= self.horizon_end:
            logger.debug("beyond the horizon: armed by its step", post_id=str(row.id))
            return
        if self.on_armed is not None:
            self.on_armed(row.id, due, version)
        if self.timers.arm(row.id, due, version):
            self._wakeup.set()

    async def load(self) -> None:
        """Boot and every resync: arm the rows due within the horizon (and those without an
        instant, which go to draft)."""
        async with self._loading:
            before, self.horizon_end = self.horizon_end, self.clock.now() + self.horizon_seconds
            try:
                await self.sync(self.repository.scheduled_batches(self.horizon_end))
            except BaseException:
                self.horizon_end = before  # the timers are still the previous load's
                raise

    async def advance_horizon(self) -> int:
        """One horizon step: arm the rows due in [the previous end, now + horizon), read by one
        statement; returns how many rows it read. A database error leaves the end where it
        was (the step is retried) and propagates."""
        async with self._loading:
            start, end = self.horizon_end, self.clock.now() + self.horizon_seconds
            if start is None or end <= start:
                return 0
            self.horizon_end = end  # first: a row committed while we read is notified inside
            try:
                found = await self.repository.horizon_step(start, end)
            except BaseException:
                self.horizon_end = start
                raise
            self._arm_loaded(self.timers, found)
            self._wakeup.set()
            return len(found)

    def _arm_loaded(self, timers: Timers, batch: Iterable[LoadedRow]) -> None:
        for row in batch:
            # Rows in flight are armed too: a claim still being decided (or retried
            # after a failure) must not leave its post unarmed, and a stale timer only
            # loses its claim.
            if row.due is None:
                logger.warning("cannot schedule post", post_id=str(row.id), error=row.problem)
                self.reject(row.id, row.version, row.problem or "the due instant cannot be computed")
            else:
                timers.arm(row.id, row.due, row.version)
                if self.on_armed is not None:
                    self.on_armed(row.id, row.due, row.version)

    async def sync(self, batches: AsyncIterable[list[LoadedRow]]) -> None:
        """Replace the timers with the table's scheduled rows (boot and every resync).

        The new timers are built aside and swapped in at the end, so the posts armed now
        keep firing on time while a large table loads. A row without a usable instant (the
        load's problem) goes to draft with the reason.
        """
        fresh = Timers()
        async for batch in batches:
            self._arm_loaded(fresh, batch)
        self.timers = fresh
        self._wakeup.set()
        logger.info("schedule loaded", armed=len(self.timers), next_due=self.next_due_iso(),
                    horizon_end=None if self.horizon_end is None else utc_from_ts(self.horizon_end).isoformat())

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
        finally:
            self.bursts.resume_gc()

    async def _sleeper(self, tasks: asyncio.TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            self._wakeup.clear()
            now = self.clock.now()
            for armed in self.busy.release(now):
                self.timers.arm(armed.id, armed.due, armed.version)
            until = self.bursts.claim_until(self.timers, now)
            burst = until > now + self.lead
            # Backpressure: claim only what can start (on_room wakes us), a burst's backlog aside.
            room = self.publisher.room + (BURST_BACKLOG if burst else 0)
            wake: float | None
            if room > 0:
                due = self.timers.pop_due(until, min(CLAIM_BATCH, room))
                if due:
                    if burst:
                        self.bursts.pause_gc()
                    await self._dispatch(due, now, tasks, until - now)
                    continue
                wake = self.bursts.next_wake(self.timers)
            else:
                wake = None if burst else self.bursts.start(self.timers)  # a burst brings its backlog's room
            parked = self.busy.next_at()
            if parked is not None:
                wake = parked if wake is None else min(wake, parked)
            timer = None if wake is None else loop.call_later(max(0.0, wake - now), self._wakeup.set)
            await self._wakeup.wait()
            if timer is not None:
                timer.cancel()

    async def _finish_inflight(self) -> None:
        """Let in-flight publishes end; past the shutdown timeout, TimeoutError cancels them."""
        if self.inflight:
            logger.info("waiting for in-flight publishes", count=len(self.inflight))
            async with asyncio.timeout(self.settings.shutdown_timeout_seconds):
                await self._idle.wait()

    async def _dispatch(self, due: list[Armed], now: float, tasks: asyncio.TaskGroup, ahead: float) -> None:
        ready: dict[uuid.UUID, Armed] = {}
        for armed in due:
            if armed.id in self.inflight:  # never claim a post twice: wait for its outcome
                self._deferred[armed.id] = armed
            else:
                ready[armed.id] = armed
        if not ready:
            return
        # In flight from before the claim is sent until the outcome is written, so a
        # concurrent resync never mistakes these rows for orphans of ours.
        self.inflight.update(ready)
        self._idle.clear()
        result = await self._claim(ready, ahead)
        self._settle(post_id for post_id in ready if post_id not in result.due)
        self._handle_verdicts(result, now)
        if result.busy:
            logger.debug("posts locked by another claim; claiming them again shortly", posts=len(result.busy))
            skipped_at = self.clock.now()
            for busy in result.busy:
                self.busy.park(ready[busy.id], skipped_at)
        for post in result.won:
            # Sent at the row's own instant, not at the one the timer was armed with.
            armed = ready[post.id]._replace(due=result.due[post.id])
            tasks.create_task(self._publish(post, armed))

    def _handle_verdicts(self, result: ClaimResult, now: float) -> None:
        for again in result.rearm:
            assert again.due is not None
            logger.info("armed at the row's own instant", post_id=str(again.id), version=again.version,
                        due=utc_from_ts(again.due).isoformat())
            self.timers.arm(again.id, again.due, again.version)
        for missed in result.missed:
            self._missed(missed, now)
        for bad in result.unschedulable:
            logger.warning("cannot schedule post", post_id=str(bad.id), error=bad.problem)
            self.reject(bad.id, bad.version, bad.problem or "the due instant cannot be computed")

    def _missed(self, missed: Verdict, now: float) -> None:
        assert missed.due is not None
        grace, late = self.settings.grace_seconds, now - missed.due
        message = (
            f"missed: was due at {utc_from_ts(missed.due).isoformat()} and the daemon saw it "
            f"{format_delay(late)} late (grace window {format_delay(grace)}); reschedule it"
        )
        logger.warning("post missed", post_id=str(missed.id), late_s=round(late, 1))
        self.reject(missed.id, missed.version, message)

    async def _claim(self, ready: dict[uuid.UUID, Armed], ahead: float) -> ClaimResult:
        try:
            async with self.claim_gate:
                wanted = [(a.id, a.version) for a in self.claim_order.sort(ready.values())]
                won = await self.repository.claim(wanted, ahead=ahead)
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
            return ClaimResult()
        self._claim_backoff.reset()
        self.busy.answered(ready, won.busy)
        return won

    async def _publish(self, post: ClaimedPost, armed: Armed) -> None:
        try:
            await self.publisher.publish(post, armed)
        finally:
            self._settle((post.id,))

    def _settle(self, post_ids: Iterable[uuid.UUID]) -> None:
        for post_id in post_ids:
            self.inflight.discard(post_id)
            deferred = self._deferred.pop(post_id, None)
            if deferred is not None and self.timers.arm(deferred.id, deferred.due, deferred.version):
                self._wakeup.set()  # its claim now finds the row as the outcome left it
        if not self.inflight:
            self._idle.set()
        self.bursts.settled(idle=not self.inflight)
