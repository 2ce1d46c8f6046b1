"""The timer engine and the publish path.

One sleeper waits for the earliest deadline in the ``Schedule`` or an earlier wake-up
(a sooner post armed, a rejection to write, stop). When posts fall due it claims them
in one batch, then publishes each in its own task under a concurrency bound, and hands
every outcome to the ``OutcomeWriter``.

Registration is synchronous and cheap (``on_payload``, ``sync``): the listener calls it
from its notification callback, so arming a post costs no query and no task.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

import httpx
import structlog

from .config import Settings
from .db import DB_ERRORS, rows
from .db.repository import Repository
from .errors import AuthError, InvalidScheduleError, OutcomeUnknownError, TransientError
from .media import MediaResolver
from .metrics import Metrics
from .models import Connection, MediaItem, Outcome, OutcomeKind, Post, ScheduledRow
from .notifications import MalformedNotification, Op, parse
from .outcomes import OutcomeWriter, classify, published
from .platforms.base import Refresher
from .platforms.http import within_deadline
from .platforms.pacing import Pacer
from .platforms.registry import Registry
from .schedule import Armed, Schedule
from .timing import Clock, due_instant, format_delay, utc_from_ts
from .token_refresh import TokenRefresh

logger = structlog.get_logger("scheduler_daemon.dispatcher")

CLAIM_BATCH = 1000
SPIN_SECONDS = 0.0015


class _Context:
    """PublishContext for one attempt: the daemon's services, bound to one post and its owner."""

    def __init__(
        self, post: Post, repository: Repository, media: MediaResolver, tokens: TokenRefresh
    ) -> None:
        self.post_id = post.id
        self.owner = post.user_id  # storage paths must be this user's
        self.repository = repository
        self.media = media
        self.tokens = tokens

    async def checkpoint(self, **values: Any) -> None:
        await self.repository.checkpoint(self.post_id, values)

    async def refresh_tokens(self, connection: Connection, refresher: Refresher) -> Connection:
        return await self.tokens.refresh(connection, refresher)

    async def media_url(self, item: MediaItem) -> str:
        return await self.media.media_url(item, self.owner)

    async def media_bytes(self, item: MediaItem, max_bytes: int) -> tuple[bytes, str]:
        return await self.media.media_bytes(item, max_bytes, self.owner)


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        repository: Repository,
        registry: Registry,
        writer: OutcomeWriter,
        clock: Clock,
        client: httpx.AsyncClient,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.registry = registry
        self.writer = writer
        self.clock = clock
        self.media = MediaResolver(settings.platforms, client)
        self.tokens = TokenRefresh(repository, deadline=settings.http_timeout_seconds)
        self.pacer = Pacer(settings.platforms)
        self.metrics = metrics or Metrics()
        self.schedule = Schedule()
        # Claim this far ahead of the instant and send exactly on it, so the claim's round
        # trip does not make posts late. A user edit or delete in that window abandons the
        # claim before anything is sent (see migrations/002).
        self.lead = settings.claim_lead_seconds
        self.inflight: set[uuid.UUID] = set()
        self.orphans_pending = False  # rows other instances hold in 'publishing': recheck them
        self.on_resync_requested: Callable[[], None] | None = None  # TRUNCATE asks the listener for one
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set whenever nothing is in flight
        self._idle.set()
        self._stopping = False
        self._waiting: dict[uuid.UUID, asyncio.Event] = {}  # claimed ahead, not yet sent

    # -- registration (synchronous: called from the listener) --------------------------

    def on_payload(self, payload: str) -> None:
        try:
            note = parse(payload)
        except MalformedNotification as exc:
            logger.warning("ignored malformed notification", error=str(exc), payload=payload[:200])
            return
        if note.op is Op.TRUNCATE:
            if self.on_resync_requested is not None:
                self.on_resync_requested()
            return
        assert note.id is not None and note.key is not None
        if note.was_publishing and note.id in self._waiting:
            self._waiting[note.id].set()  # the user edited a post claimed ahead of its instant
        if note.arms:
            self.arm(ScheduledRow(note.id, note.key), note.version)
        elif self.schedule.cancel(note.id):
            logger.debug("disarmed", post_id=str(note.id), status=note.status, op=note.op.value)

    def arm(self, row: ScheduledRow, version: int, schedule: Schedule | None = None) -> None:
        try:
            due = due_instant(row.key).timestamp()
        except InvalidScheduleError as exc:
            logger.warning("cannot schedule post", post_id=str(row.id), error=str(exc))
            self.writer.reject(row.id, version, str(exc))
            return
        if schedule is None:
            if self.schedule.arm(row.id, due, version):
                self._wake.set()
        else:
            schedule.arm(row.id, due, version)

    async def sync(self, batches: AsyncIterable[list[tuple[ScheduledRow, int]]]) -> None:
        """Replace the schedule with the table's scheduled rows (boot and every resync).

        The new schedule is built aside and swapped in at the end, so the posts armed now
        keep firing on time while a large table loads.
        """
        fresh = Schedule()
        async for batch in batches:
            for row, version in batch:
                # Rows in flight are armed too: a claim still being decided (or retried
                # after a failure) must not leave its post unarmed, and a stale timer only
                # loses its claim.
                self.arm(row, version, fresh)
        self.schedule = fresh
        self._wake.set()
        logger.info("schedule loaded", armed=len(self.schedule), next_due=self.next_due_iso())

    async def recover(self) -> None:
        """Resolve rows left in 'publishing': ours that we are not publishing (a lost claim
        answer: nothing was sent, so they are due again), and those of instances that are gone."""
        released = await self.repository.release_own(list(self.inflight))
        if released:
            logger.warning("released rows whose claim answer was lost", posts=len(released))
        for r in await self.repository.recover_orphans(
            self.settings.recovery_after_seconds, sorted(self.registry.idempotent)
        ):
            log = logger.bind(post_id=str(r["id"]), platform=r["platform"], instance=r["instance"])
            if r["status"] == "scheduled":
                log.warning("republishing a post a stopped daemon left unfinished (the platform deduplicates)")
            else:
                log.error("a stopped daemon left this post unfinished: outcome unknown, set to draft")
        self.orphans_pending = await self.repository.count_orphans() > 0

    def next_due_iso(self) -> str | None:
        nxt = self.schedule.next_due()
        return None if nxt is None else utc_from_ts(nxt).isoformat()

    # -- the sleeper --------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                await self._sleeper(tasks)
                await self._finish_inflight()
        except* TimeoutError:
            logger.error("shutdown timeout: in-flight publishes were stopped and recorded as unknown")

    async def _sleeper(self, tasks: asyncio.TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake.clear()
            now = self.clock.now()
            due = self.schedule.pop_due(now + self.lead, CLAIM_BATCH)
            if due:
                await self._dispatch(due, now, tasks)
                continue
            nxt = self.schedule.next_due()
            timer = None if nxt is None else loop.call_later(max(0.0, nxt - self.lead - now), self._wake.set)
            await self._wake.wait()
            if timer is not None:
                timer.cancel()

    async def _finish_inflight(self) -> None:
        """Let in-flight publishes end; past the shutdown timeout, TimeoutError cancels them."""
        if self.inflight:
            logger.info("waiting for in-flight publishes", count=len(self.inflight))
            async with asyncio.timeout(self.settings.shutdown_timeout_seconds):
                await self._idle.wait()

    async def _dispatch(self, due: list[Armed], now: float, tasks: asyncio.TaskGroup) -> None:
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
                self.writer.reject(armed.id, armed.version, message)
            else:
                ready[armed.id] = armed
        if not ready:
            return
        # In flight from before the claim is sent until the outcome is written, so a
        # concurrent resync never mistakes these rows for orphans of ours.
        self.inflight.update(ready)
        self._idle.clear()
        try:
            won = await self.repository.claim([(a.id, a.version) for a in ready.values()])
        except DB_ERRORS as exc:
            # Not claimed, or claimed with the answer lost: re-arm, and ask for a resync,
            # whose release_own gives back a row claimed without our knowing (nothing was
            # sent for it).
            logger.warning("claim failed; re-arming", error=str(exc), posts=len(ready))
            won = []
            for armed in ready.values():
                self.schedule.arm(armed.id, armed.due, armed.version)
            if self.on_resync_requested is not None:
                self.on_resync_requested()
            await asyncio.sleep(0.5)
        claimed = {record["id"] for record in won}
        self._settle(post_id for post_id in ready if post_id not in claimed)
        for record in won:
            tasks.create_task(self._publish(record, ready[record["id"]]))

    def _settle(self, post_ids: Iterable[uuid.UUID]) -> None:
        self.inflight.difference_update(post_ids)
        if not self.inflight:
            self._idle.set()

    # -- one publish --------------------------------------------------------------------

    async def _publish(self, record: rows.Row, armed: Armed) -> None:
        post_id, platform, attempt = record["id"], record["platform"], record["attempt_count"]
        log = logger.bind(post_id=str(post_id), platform=platform, attempt=attempt)
        started = self.clock.now()
        outcome: Outcome | None = None
        begun = False
        try:
            if not await self._until_due(post_id, armed.due):
                await self._abandon(post_id, log)
                return
            async with self._slots:
                started, begun = self.clock.now(), True
                outcome = await self._attempt(record, post_id, platform, attempt, log)
            written = self.writer.submit(outcome)
            self._log_summary(log, outcome, armed, started)
            await written
        except asyncio.CancelledError:
            # Stopped past the shutdown timeout. Still waiting for a slot: nothing was sent,
            # the post is simply due again. Mid-attempt: the outcome is unknown.
            if outcome is None:
                exc: Exception = (
                    OutcomeUnknownError("the daemon stopped while publishing")
                    if begun
                    else TransientError("the daemon stopped before publishing")
                )
                outcome = self._failed(exc, post_id, platform, attempt, utc_from_ts(started))
                self.writer.submit(outcome)
                self._log_summary(log, outcome, armed, started)
            raise
        finally:
            self._settle((post_id,))

    async def _until_due(self, post_id: uuid.UUID, due: float) -> bool:
        """Wait for the instant of a post claimed ahead of it; False if the user edited it meanwhile.

        The event loop's timers wake up to a millisecond late (epoll rounds its timeout up),
        so the timer aims SPIN_SECONDS early and the last stretch yields to the loop until
        the clock reaches the instant.
        """
        delay = due - self.clock.now() - SPIN_SECONDS
        if delay > 0:
            edited = self._waiting[post_id] = asyncio.Event()
            try:
                async with asyncio.timeout(delay):
                    await edited.wait()
                return False
            except TimeoutError:
                pass
            finally:
                del self._waiting[post_id]
        while self.clock.now() < due:
            await asyncio.sleep(0)
        return True

    async def _abandon(self, post_id: uuid.UUID, log: Any) -> None:
        log.info("claim abandoned: the post was edited just before its instant; re-arming it")
        try:
            await self.repository.release(post_id)
        except DB_ERRORS as exc:
            # Still ours and unsent: the next sync's release_own puts it back.
            log.warning("could not release the claim", error=str(exc))

    async def _attempt(
        self, record: rows.Row, post_id: uuid.UUID, platform: str, attempt: int, log: Any
    ) -> Outcome:
        started_at = utc_from_ts(self.clock.now())
        connection: Connection | None = None
        try:
            adapter = self.registry.get(platform)
            post = rows.post(record, self.settings.max_content_chars)
            adapter.validate(post)
            connection = rows.pick_connection(record)
            async with self.pacer.slot(platform, str(connection.id)):
                context = _Context(post, self.repository, self.media, self.tokens)
                result = await within_deadline(
                    adapter.publish(post, connection, context), self.settings.attempt_timeout_seconds
                )
        except Exception as exc:  # classified, never fatal: every other post goes on
            if isinstance(exc, AuthError) and connection is not None:
                await self._mark_needs_reconnect(connection, log)
            outcome = self._failed(exc, post_id, platform, attempt, started_at)
            if outcome.reason == "internal":
                log.error("adapter raised an unexpected error", exc_info=exc)
            return outcome
        return published(
            result, post_id=post_id, platform=platform, attempt=attempt,
            started_at=started_at, finished_at=utc_from_ts(self.clock.now()),
        )

    def _failed(
        self, exc: BaseException, post_id: uuid.UUID, platform: str, attempt: int, started_at: dt.datetime
    ) -> Outcome:
        s = self.settings
        return classify(
            exc, post_id=post_id, platform=platform, attempt=attempt, started_at=started_at,
            finished_at=utc_from_ts(self.clock.now()), max_attempts=s.max_attempts,
            retry_base=s.retry_base_seconds, retry_max=s.retry_max_seconds,
            idempotent=platform in self.registry.idempotent,
        )

    async def _mark_needs_reconnect(self, connection: Connection, log: Any) -> None:
        try:
            await self.repository.mark_needs_reconnect(connection)
        except DB_ERRORS as exc:
            log.warning("could not mark the connection as needing reconnection", error=str(exc))

    def _log_summary(self, log: Any, outcome: Outcome, armed: Armed, started: float) -> None:
        fields = dict(
            outcome=str(outcome.kind),
            lateness_ms=round((started - armed.due) * 1000, 2),
            duration_ms=round((outcome.finished_at - outcome.started_at).total_seconds() * 1000, 2),
        )
        if outcome.kind is OutcomeKind.PUBLISHED:
            self.metrics.published(outcome.platform, started - armed.due)
        else:
            self.metrics.failed(outcome.platform, outcome.reason or "failed")
        if outcome.kind is OutcomeKind.PUBLISHED:
            assert outcome.result is not None
            log.info("published", platform_post_id=outcome.result.platform_post_id, **fields)
        elif outcome.kind is OutcomeKind.RETRY:
            log.warning("publish postponed", reason=outcome.reason, error=outcome.error_message, **fields)
        else:
            log.error("publish failed", reason=outcome.reason, error=outcome.error_message, **fields)
