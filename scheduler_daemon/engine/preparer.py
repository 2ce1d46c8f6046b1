"""Prepare ahead, fire on the instant (``SCHEDULER_PREPARE_SECONDS``).

Inside the window before a scheduled post's instant, the preparer runs what does not make
the post visible (``platforms.delivery.prepare``: media checked and uploaded, containers
created and waited for, tokens refreshed) and checkpoints it in the row's
``publish_state``. At the instant the publisher's own ``prepare`` finds it (same post, same
connection: the fingerprint matches) and only the final call goes out.

Each post, in this service::

    armed: the dispatcher's on_armed (due within the frontier), or its timers as the
    │      frontier passes; re-armed: the entry replaced; disarmed: dropped
    └──due − window──▶ due ──lease won──▶ preparing ─┬─ succeeded: prepared_version = version,
            │                                        │  prepare_error cleared
            │                                        └─ failed: prepare_error = why; armed again
            │                                           after a backoff, if before the instant
            └── lease lost (another replica has it, the row changed, already prepared): dropped

* The frontier is a window and two steps (a step: a tenth of the window) ahead: this heap
  holds the posts due before it (and two steps past it), never the whole schedule; once a
  step the posts the frontier passes are taken from the dispatcher's timers
  (``Timers.due_by``: it costs the posts due by then, not the table).
* A post armed closer to its instant than the window is due at once; one due in less than
  ``MIN_LEAD_SECONDS`` is the dispatcher's alone.
* The lease (migrations/010) is a compare-and-swap UPDATE for a batch; it lasts one attempt
  deadline and is given back by the write that ends the preparation (or on stop), so two
  replicas do not both prepare a post, and no lock is held across the platform's calls. A
  replica that loses the lease leaves the post to the winner; if the winner stops mid-way,
  the post is prepared at its instant, as with the window at 0.
* Each preparation runs in its own task of the service's TaskGroup, inside its own error
  boundary and the attempt deadline, cut at the instant (from then on the publisher
  prepares); at most ``PREPARE_SLOTS`` at once.
* What a preparation made is written once, when it succeeded, with the end of the lease,
  and only for the version leased: an edit that moves the instant (a new
  schedule_version) makes the write miss, clears the lease and the error (010's trigger)
  and re-arms the post, which is prepared again. An edit of the content alone is caught by
  the fingerprint at the instant, which then prepares anew.

A ``Service``: ``started`` is set once the sleeper runs; ``stop()`` cancels preparations in
flight (they publish nothing) and gives their leases back.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from ..clock import Clock
from ..config import Settings
from ..db.errors import DB_ERRORS
from ..db.prepare import PrepareStore
from ..errors import PublishError
from ..models import ClaimedPost, Post
from ..net.deadline import within_deadline
from ..platforms.delivery import prepare
from ..redact import SECRETS, own_secrets
from ..retry import Backoff, delay
from ..service import Service
from .clean import MAX_MESSAGE, clean
from .publisher import AttemptContext, Publisher
from .timers import Armed, Timers

logger = structlog.get_logger("scheduler_daemon.preparer")

# Preparations mostly wait (Meta processes a container for seconds): the bound is memory and
# connections, not the platform's pacing, which still applies (``Pacer``) to every one.
PREPARE_SLOTS = 1000
LEASE_BATCH = 1000
# A tenth of the window is the step: posts whose window opens within a step are leased
# together (one statement for a schedule's neighbours, prepared up to a step earlier), and
# the posts due within the window and two steps are taken from the dispatcher's timers once
# a step, so this heap holds those only, never the whole schedule.
STEP = 0.1
MIN_STEP = 0.5  # seconds: a tiny window must not make the sleeper spin
# A post due sooner than this is left to its instant: a preparation would hardly be done by
# then, and the instant's own would only repeat its uploads.
MIN_LEAD_SECONDS = 1.0
RETRY_BASE, RETRY_CAP = 5.0, 60.0  # a failed preparation, again, until the instant
LEASE_RETRY_BASE, LEASE_RETRY_CAP = 0.5, 5.0  # the lease statement itself failed


class _Leased(AttemptContext):
    """The publisher's attempt context whose checkpoints are kept aside (``made``) and
    written by the one statement that ends a successful preparation: a preparation that
    fails or is cut short at the instant leaves nothing half-made on the row (a container
    created but never ``FINISHED`` that the instant would publish unchecked)."""

    def __init__(self, post: Post, publisher: Publisher) -> None:
        super().__init__(post, publisher.repository, publisher.media, publisher.tokens)
        self.made: dict[str, Any] = {}

    async def checkpoint(self, **values: Any) -> None:
        self._state.update(values)
        self.made.update(values)


class Preparer(Service):
    name = "preparer"

    def __init__(
        self, settings: Settings, store: PrepareStore, publisher: Publisher, clock: Clock, *,
        armed: Callable[[], Timers], slots: int = PREPARE_SLOTS,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.window = settings.prepare_seconds
        self.ahead = max(self.window * STEP, MIN_STEP)  # the heap is popped this far ahead of the clock
        self.slots = slots
        self.armed = armed  # the dispatcher's timers (a sync replaces them)
        # Keyed by when the preparation is due (due − window, or a retry), for the posts due
        # by ``frontier``; the later ones are taken from ``armed`` as the frontier moves.
        self.timers = Timers()
        self.frontier = clock.now() + self.window + 2 * self.ahead
        # Counts for tests, the bench and logs; ``progress`` is set whenever one moves.
        self.prepared = self.failed = self.lost = 0
        self.progress = asyncio.Event()
        # Posts armed at another time than due − window (a retry): (failures, their instant).
        self._failures: dict[uuid.UUID, tuple[int, float]] = {}
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._lease_backoff = Backoff(LEASE_RETRY_BASE, LEASE_RETRY_CAP)

    # -- registration (synchronous: the dispatcher's on_armed) -------------------------

    def on_armed(self, post_id: uuid.UUID, due: float | None, version: int) -> None:
        if self.window <= 0 or self.stopping:
            return
        # A far post is taken from the dispatcher's timers when the frontier passes it. Two steps
        # past the frontier are armed here all the same: a sync's posts reach the dispatcher's
        # timers only at its end, and the next advance, which may come first, must not miss
        # them (it finds them armed, not yet due: an advance comes before their pop).
        if due is None or due > self.frontier + 2 * self.ahead:
            self.timers.cancel(post_id)
            if self._failures:
                self._failures.pop(post_id, None)
            return
        retrying = self._failures.get(post_id) if self._failures else None
        if retrying is not None and retrying[1] != due:  # rescheduled: a fresh start
            del self._failures[post_id]
        if self.timers.arm(post_id, due - self.window, version):
            self._wakeup.set()

    # -- the sleeper ---------------------------------------------------------------------

    async def run(self) -> None:
        if self.window <= 0:  # SCHEDULER_PREPARE_SECONDS=0: everything is prepared at the instant
            self.started.set()
            while not self.stopping:
                await self._pause(3600)
            return
        async with asyncio.TaskGroup() as tasks:
            self.started.set()
            try:
                await self._sleeper(tasks)
            finally:
                await self._cut_short()

    async def _sleeper(self, tasks: asyncio.TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            self._wakeup.clear()
            now = self.clock.now()
            if now >= self.frontier - self.window - self.ahead:
                self._advance(now)
            free = self.slots - len(self._tasks)
            due = self.timers.pop_due(now + self.ahead, min(free, LEASE_BATCH)) if free > 0 else []
            if due:
                await self._start(due, now, tasks)
                continue
            advance = self.frontier - self.window - self.ahead
            nxt = self.timers.next_due() if free > 0 else None  # full: a task's end wakes us
            wake = advance if nxt is None else min(advance, nxt - self.ahead)
            timer = loop.call_later(max(0.0, wake - now), self._wakeup.set)
            await self._wakeup.wait()
            timer.cancel()

    def _advance(self, now: float) -> None:
        """Move the frontier a window and two steps ahead, arming what it passes."""
        frontier = now + self.window + 2 * self.ahead
        for armed in self.armed().due_by(frontier, self.frontier):
            self.timers.arm(armed.id, armed.due - self.window, armed.version)
        self.frontier = frontier

    async def _cut_short(self) -> None:
        """Stop: cancel the preparations in flight and give their leases back."""
        cut = list(self._tasks)
        for task in self._tasks.values():
            task.cancel()
        if cut:
            await asyncio.wait(set(self._tasks.values()))
            with contextlib.suppress(*DB_ERRORS):
                await self.store.release(cut)

    def _instant(self, armed: Armed) -> float:
        retrying = self._failures.get(armed.id)
        return retrying[1] if retrying is not None else armed.due + self.window

    async def _start(self, due: list[Armed], now: float, tasks: asyncio.TaskGroup) -> None:
        pending = [a for a in due if self._instant(a) > now + MIN_LEAD_SECONDS]
        try:
            won = await self.store.lease([(a.id, a.version) for a in pending], self.settings.attempt_timeout_seconds)
        except DB_ERRORS as exc:
            wait = self._lease_backoff.next()
            logger.warning("prepare lease failed; trying again", error=str(exc), posts=len(pending),
                           retry_in_s=round(wait, 2))
            for armed in pending:  # re-armed at another time: their instant is kept aside
                self._failures.setdefault(armed.id, (0, self._instant(armed)))
                self.timers.arm(armed.id, now + wait + self.ahead, armed.version)
            return
        self._lease_backoff.reset()
        versions = {a.id: a.version for a in pending}
        self.lost += len(pending) - len(won)
        self.progress.set()
        for claimed, instant, failed_before in won:
            self._tasks[claimed.id] = tasks.create_task(
                self._prepare(claimed, instant, versions[claimed.id], failed_before))

    # -- one preparation ------------------------------------------------------------------

    async def _prepare(self, claimed: ClaimedPost, instant: float, version: int, failed_before: bool) -> None:
        # As in a publish: the post's own tokens are scrubbed from what this logs or stores.
        with own_secrets(*(t for c in claimed.connections for t in (c.access_token, c.refresh_token))):
            await self._prepare_scoped(claimed, instant, version, failed_before)

    async def _prepare_scoped(self, claimed: ClaimedPost, instant: float, version: int, failed_before: bool) -> None:
        log = logger.bind(post_id=str(claimed.id), platform=claimed.platform)
        try:
            error, made = await self._attempt(claimed, instant, log)
            # A post with nothing to prepare (a text post, a webhook) costs no write: its
            # lease simply lapses, and the instant finds nothing to reuse either way.
            if error is not None or made or failed_before:
                await self._finish(claimed.id, version, error, made, log)
        finally:
            del self._tasks[claimed.id]
            self._wakeup.set()  # a slot is free
        self.progress.set()
        if error is None:
            self.prepared += 1
            self._failures.pop(claimed.id, None)
            log.debug("prepared", due_in_s=round(instant - self.clock.now(), 3))
        else:
            self.failed += 1
            self._again(claimed.id, version, instant, error, log)

    async def _attempt(self, claimed: ClaimedPost, instant: float, log: Any) -> tuple[str | None, dict[str, Any]]:
        """Prepare within the attempt deadline, cut at the instant: (what went wrong or None,
        the checkpoints it made)."""
        try:
            post = claimed.publishable()
            context = _Leased(post, self.publisher)
            seconds = min(self.settings.attempt_timeout_seconds, instant - self.clock.now())
            await within_deadline(self._run(claimed, post, context), seconds)
        except Exception as exc:  # this post's problem, recorded on its row: every other goes on
            if not isinstance(exc, PublishError):
                log.error("preparation raised an unexpected error", exc_info=exc)
            return _describe(exc), {}
        return None, context.made

    async def _finish(
        self, post_id: uuid.UUID, version: int, error: str | None, made: dict[str, Any], log: Any
    ) -> None:
        try:
            await self.store.finish(post_id, version, error, made)
        except DB_ERRORS as exc:
            log.warning("could not record the preparation", error=str(exc))

    async def _run(self, claimed: ClaimedPost, post: Post, context: _Leased) -> None:
        connection = claimed.connection()
        adapter = self.publisher.registry.get(claimed.platform)
        async with self.publisher.pacer.slot(claimed.platform, str(connection.id)):
            await prepare(adapter, post, connection, context)

    def _again(self, post_id: uuid.UUID, version: int, instant: float, error: str, log: Any) -> None:
        """Arm a failed preparation again after a backoff, unless the instant comes first."""
        failures = self._failures.get(post_id, (0, instant))[0] + 1
        at = self.clock.now() + delay(failures, RETRY_BASE, RETRY_CAP)
        if at + MIN_LEAD_SECONDS >= instant or self.stopping:
            self._failures.pop(post_id, None)
            log.warning("preparation failed; the post is prepared again at its instant", error=error)
            return
        self._failures[post_id] = (failures, instant)
        self.timers.arm(post_id, at + self.ahead, version)  # popped at ``at``, not earlier
        self._wakeup.set()
        log.warning("preparation failed; trying again", error=error, retry_in_s=round(at - self.clock.now(), 1))


def _describe(exc: BaseException) -> str:
    """What the user reads in prepare_error (``status`` shows it)."""
    if isinstance(exc, PublishError):  # may quote a tenant's endpoint: storable, scrubbed, capped
        return clean(SECRETS.scrub(str(exc)), MAX_MESSAGE) or type(exc).__name__
    return f"internal error while preparing ({type(exc).__name__})"
