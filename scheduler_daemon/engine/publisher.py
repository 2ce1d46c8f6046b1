"""One publish attempt, end to end.

For a post the dispatcher claimed: build what can be built before the instant (the post,
its connection, and the adapter's request where it builds one ahead:
``delivery.build_ahead``), wait for its instant (it was claimed a little ahead, a burst up
to 2 s; a trusted edit meanwhile abandons the claim), take its account's and its platform's pacing
slots, then a global slot, validate and publish through the adapter, classify the result
into an ``Outcome``, hand it to the writer and log one summary line. Every exception an
attempt raises ends as that post's outcome: nothing one post does stops another.

Fair slots: pacing comes first, so a post waiting for its busy account (one tenant's
backlog) holds no global slot, and another tenant's post takes one at once. A post's
states, for the dispatcher's backpressure (``room``)::

    claimed ─▶ waiting for its instant ─▶ waiting for pacing ─▶ wanting / holding a slot ─▶ done
               └──────── counted ───────┘   (not counted)      └──────── counted ────────┘

``room`` is the global slots minus the posts counted: how many more the dispatcher may
claim now. Posts waiting for pacing are not counted, so a paced backlog never stops the
claims of other tenants' posts; the pacing semaphores bound what each account can hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple

import httpx
import structlog

from ..clock import Clock, utc_from_ts
from ..config import Settings
from ..db.errors import DB_ERRORS
from ..db.repository import Repository
from ..errors import AuthError, NoConnectionError, OutcomeUnknownError, TransientError
from ..mediafile import MediaFile
from ..models import ClaimedPost, Connection, MediaItem, Outcome, OutcomeKind, Post, Refresher
from ..net.deadline import within_deadline
from ..observability.metrics import Metrics
from ..platforms._http import Ready
from ..platforms.delivery import build_ahead, deliver, incomplete
from ..platforms.pacing import Pacer
from ..platforms.registry import Registry
from ..redact import SECRETS, add_own, own_secrets
from .classify import classify, published
from .clean import clean_outcome
from .media import MediaResolver
from .timers import Armed
from .token_refresh import TokenRefresh
from .writer import OutcomeWriter

logger = structlog.get_logger("scheduler_daemon.dispatcher")

SPIN_SECONDS = 0.0015
FIRST_SENT = "first_sent_at"  # publish_state: when a send whose outcome is unknown first went out


class AttemptContext:
    """PublishContext for one attempt: the daemon's services, bound to one post and its owner.
    ``state`` follows the row's publish_state through the attempt's checkpoints."""

    def __init__(self, post: Post, repository: Repository, media: MediaResolver, tokens: TokenRefresh) -> None:
        self.post_id = post.id
        self.owner = post.user_id  # storage paths must be this user's
        self.repository = repository
        self.media = media
        self.tokens = tokens
        self._state = dict(post.publish_state)

    @property
    def state(self) -> Mapping[str, Any]:
        return self._state

    async def checkpoint(self, **values: Any) -> None:
        await self.repository.checkpoint(self.post_id, values)
        self._state.update(values)

    async def refresh_tokens(self, connection: Connection, refresher: Refresher) -> Connection:
        fresh = await self.tokens.refresh(connection, refresher)
        add_own(fresh.access_token, fresh.refresh_token)  # this post's secrets too, from now on
        return fresh

    async def media_url(self, item: MediaItem) -> str:
        return await self.media.media_url(item, self.owner)

    async def media_bytes(self, item: MediaItem, max_bytes: int) -> tuple[bytes, str]:
        return await self.media.media_bytes(item, max_bytes, self.owner)

    def media_file(self, item: MediaItem, max_bytes: int) -> AbstractAsyncContextManager[MediaFile]:
        return self.media.media_file(item, max_bytes, self.owner)


class Publisher:
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
        self.media = MediaResolver(
            settings.platforms, client, spool_dir=settings.state_dir / "spool",
            download_seconds=settings.attempt_timeout_seconds,
        )
        self.tokens = TokenRefresh(repository, deadline=settings.http_timeout_seconds)
        self.pacer = Pacer(settings.platforms)
        self.metrics = metrics or Metrics()
        self._slots = asyncio.Semaphore(settings.concurrency)
        # Claimed ahead, not yet sent: each post's waiter (True: its instant came, False: edited),
        # and the waiters of each instant, woken by one timer (a burst's posts share theirs).
        self._waiting: dict[uuid.UUID, asyncio.Future[bool]] = {}
        self._instants: dict[float, list[asyncio.Future[bool]]] = {}
        self._counted = 0  # posts holding, or about to want, a global slot (see the module doc)
        self.on_room: Callable[[], None] = lambda: None  # called when ``room`` rises to one of:
        self.wake_at_room: tuple[int, ...] = (1,)  # (the dispatcher's thresholds: none left, a burst's backlog)

    @property
    def room(self) -> int:
        """How many more posts a claim may bring now (the dispatcher's backpressure)."""
        return self.settings.concurrency - self._counted

    @contextlib.contextmanager
    def _count(self) -> Iterator[None]:
        self._counted += 1
        try:
            yield
        finally:
            self._counted -= 1
            if self.room in self.wake_at_room:  # e.g. from none to some
                self.on_room()

    def edited(self, post_id: uuid.UUID) -> None:
        """The user edited (or deleted) a post that was claimed ahead of its instant."""
        waiter = self._waiting.get(post_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(False)

    async def publish(self, claimed: ClaimedPost, armed: Armed) -> None:
        # The post's own tokens are scrubbed from everything this attempt logs or stores,
        # and from nobody else's lines (redact.own_secrets).
        with own_secrets(*(t for c in claimed.connections for t in (c.access_token, c.refresh_token))):
            await self._publish(claimed, armed)

    async def _publish(self, claimed: ClaimedPost, armed: Armed) -> None:
        log = logger.bind(post_id=str(claimed.id), platform=claimed.platform, attempt=claimed.attempt)
        started = self.clock.now()
        outcome: Outcome | None = None
        begun = False
        try:
            ahead = self._ahead(claimed)
            with self._count():
                due = await self._until_due(claimed.id, armed.due)
            if not due:
                await self._abandon(claimed.id, log)
                return
            # Pacing before the global slot: waiting for a busy account holds no slot.
            async with self.pacer.slot(claimed.platform, _account_key(claimed)):
                with self._count():
                    async with self._slots:
                        started, begun = self.clock.now(), True
                        # The one place a platform's answer becomes what is stored: made storable here.
                        outcome = clean_outcome(await self._attempt(claimed, log, ahead), scrub=SECRETS.scrub)
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
                outcome = self._failed(exc, claimed, utc_from_ts(started))
                self.writer.submit(outcome)
                self._log_summary(log, outcome, armed, started)
            raise

    async def _until_due(self, post_id: uuid.UUID, due: float) -> bool:
        """Wait for the instant of a post claimed ahead of it; False if the user edited it meanwhile.

        The event loop's timers wake up to a millisecond late (epoll rounds its timeout up),
        so the timer aims SPIN_SECONDS early and the last stretch yields to the loop until
        the clock reaches the instant.
        """
        delay = due - self.clock.now() - SPIN_SECONDS
        if delay > 0:
            waiter = self._waiting[post_id] = asyncio.get_running_loop().create_future()
            self._waiters(due, delay).append(waiter)
            try:
                if not await waiter:
                    return False
            finally:
                del self._waiting[post_id]
        while self.clock.now() < due:  # noqa: ASYNC110 - the last SPIN_SECONDS: yield, do not sleep
            await asyncio.sleep(0)
        return True

    def _waiters(self, due: float, delay: float) -> list[asyncio.Future[bool]]:
        """The waiters of the instant ``due``, with the one timer that wakes them ``delay`` from now
        (one timer and no timeout scope per post: 5,000 of them cost a tenth of a second at the instant)."""
        waiters = self._instants.get(due)
        if waiters is None:
            waiters = self._instants[due] = []
            asyncio.get_running_loop().call_later(delay, self._wake, due)
        return waiters

    def _wake(self, due: float) -> None:
        for waiter in self._instants.pop(due, ()):
            if not waiter.done():  # else edited, or its task was cancelled
                waiter.set_result(True)

    async def _abandon(self, post_id: uuid.UUID, log: Any) -> None:
        log.info("claim abandoned: the post was edited just before its instant; re-arming it")
        try:
            await self.repository.release(post_id)
        except DB_ERRORS as exc:
            # Still ours and unsent: the next sync's release_own puts it back.
            log.warning("could not release the claim", error=str(exc))

    def _ahead(self, claimed: ClaimedPost) -> _Ahead | None:
        """Before the instant: the post, its connection and the adapter's ready request. A
        post that cannot have them gets None, and meets the same error in its attempt."""
        try:
            adapter = self.registry.get(claimed.platform)
            post = claimed.publishable()
            adapter.validate(post)
            connection = claimed.connection()
            return _Ahead(post, connection, build_ahead(adapter, post, connection))
        except Exception:  # raised again, and classified, by the attempt at the instant
            return None

    async def _attempt(self, claimed: ClaimedPost, log: Any, ahead: _Ahead | None = None) -> Outcome:
        started_at = utc_from_ts(self.clock.now())
        connection: Connection | None = None
        context: AttemptContext | None = None
        try:
            adapter = self.registry.get(claimed.platform)
            ready = None
            if ahead is None:
                post = claimed.publishable()
                adapter.validate(post)
                connection = claimed.connection()
            else:
                post, connection, ready = ahead
            context = AttemptContext(post, self.repository, self.media, self.tokens)
            delivery = await within_deadline(
                deliver(adapter, post, connection, context, ready, validated=True),
                self.settings.attempt_timeout_seconds,
            )
        except Exception as exc:  # classified, never fatal: every other post goes on
            if isinstance(exc, AuthError) and connection is not None:
                await self._mark_needs_reconnect(connection, log)
            outcome = self._failed(exc, claimed, started_at)
            if outcome.kind is OutcomeKind.RETRY and isinstance(exc, OutcomeUnknownError) and context is not None:
                await self._keep_first_send(context, started_at, log)
            if outcome.reason == "internal":
                log.error("adapter raised an unexpected error", exc_info=exc)
            if context is not None and claimed.post is not None:  # a thread whose first items are out
                outcome = incomplete(outcome, claimed.post, context.state)
            return outcome
        return published(
            delivery.post, post_id=claimed.id, platform=claimed.platform, attempt=claimed.attempt,
            started_at=started_at, finished_at=utc_from_ts(self.clock.now()), notice=delivery.notice,
        )

    def _failed(self, exc: BaseException, claimed: ClaimedPost, started_at: dt.datetime) -> Outcome:
        s = self.settings
        repeatable = self._repeatable(claimed, started_at)
        if claimed.platform in self.registry.idempotent and not repeatable and isinstance(exc, OutcomeUnknownError):
            exc = OutcomeUnknownError(f"{exc}; the first send is past {claimed.platform}'s deduplication window")
        return classify(
            exc, post_id=claimed.id, platform=claimed.platform, attempt=claimed.attempt, started_at=started_at,
            finished_at=utc_from_ts(self.clock.now()), max_attempts=s.max_attempts,
            retry_base=s.retry_base_seconds, retry_max=s.retry_max_seconds,
            idempotent=repeatable,
        )

    def _repeatable(self, claimed: ClaimedPost, started_at: dt.datetime) -> bool:
        """A repeat is deduplicated: the platform does, and the post's first send (this
        attempt's start, or the one an earlier unknown outcome kept) is inside its window."""
        window = self.registry.dedupe_windows.get(claimed.platform)
        if window is None:
            return False
        first = claimed.post.publish_state.get(FIRST_SENT) if claimed.post is not None else None
        try:
            first_at = dt.datetime.fromisoformat(first).timestamp() if isinstance(first, str) else None
        except ValueError:
            first_at = None
        return self.clock.now() - (started_at.timestamp() if first_at is None else first_at) < window

    async def _keep_first_send(self, context: AttemptContext, started_at: dt.datetime, log: Any) -> None:
        """Before an unknown outcome is repeated: keep when the post was first sent, so that
        later repeats stay inside the platform's deduplication window (counted from it)."""
        if FIRST_SENT in context.state:
            return
        try:
            await context.checkpoint(**{FIRST_SENT: started_at.isoformat()})
        except DB_ERRORS as exc:
            log.warning("could not keep the first send's time", error=str(exc))

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
            assert outcome.result is not None
            self.metrics.published(outcome.platform, started - armed.due)
            log.info("published", platform_post_id=outcome.result.platform_post_id, **fields)
        elif outcome.kind is OutcomeKind.RETRY:
            self.metrics.failed(outcome.platform, outcome.reason or "failed")
            log.warning("publish postponed", reason=outcome.reason, error=outcome.error_message, **fields)
        else:
            self.metrics.failed(outcome.platform, outcome.reason or "failed")
            log.error("publish failed", reason=outcome.reason, error=outcome.error_message, **fields)


class _Ahead(NamedTuple):
    post: Post
    connection: Connection
    ready: Ready | None


def _account_key(claimed: ClaimedPost) -> str:
    """The pacing key: the connection publishing the post. A post without a usable one
    fails at once in its attempt, paced on its own id (it calls no platform)."""
    try:
        return str(claimed.connection().id)
    except NoConnectionError:
        return str(claimed.id)
