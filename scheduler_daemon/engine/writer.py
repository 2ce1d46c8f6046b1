"""Writing outcomes durably: one round trip per batch, retried until it lands.

``OutcomeWriter`` batches whatever outcomes and rejections are pending into one round
trip each, and retries a failed write with backoff until it lands, so a database outage
never makes the daemon forget that a post was published (or why it was not).

One bad row never blocks the others. A batch refused with a data error (SQLSTATE class
22, or an argument asyncpg cannot encode) is not retried as it is, for it would fail
forever: it is split in halves until the row that fails is alone. That row is written
instead as ``draft`` with "could not record the platform's answer: …" (a rejection, with
"could not record why …"); every other row lands. Outcomes and rejections are written
independently, so a failing one does not hold up the other. Writing a row twice is
harmless (a published row's values are the same; the others need the claim or the
version they already changed), so after an outage mid-bisection the whole batch is
simply retried.

A ``Service``: ``stop()`` finishes what is pending (started first, it is stopped last,
after the dispatcher's last outcome). If the database still refuses the writes
``stop_timeout`` seconds after the stop, the pending outcomes are logged one per line
at error level (post id, status, platform post id, message) so that an operator can
apply them by hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import structlog

from ..db.errors import DATA_ERRORS, DB_ERRORS
from ..db.repository import Repository
from ..models import Outcome, OutcomeKind
from ..retry import Backoff
from ..service import Service
from .clean import clean

logger = structlog.get_logger("scheduler_daemon.writer")

T = TypeVar("T")
Reject = tuple[uuid.UUID, int, str]
Pending = tuple[Outcome, "asyncio.Future[None]"]
LOGGED_ERROR_CHARS = 300  # asyncpg quotes a whole array argument in its message


def data_error_text(exc: BaseException) -> str:
    """What a data error says about one row, without echoing the row's values (asyncpg's
    client-side message quotes the whole argument)."""
    if isinstance(exc.__cause__, UnicodeError):
        return "the text is not valid UTF-8"
    return clean(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 120)


def unrecordable(outcome: Outcome, exc: BaseException) -> Outcome:
    """The outcome written instead of one the database refused: a draft saying so."""
    message = f"could not record the platform's answer: {data_error_text(exc)}"
    if outcome.kind in (OutcomeKind.PUBLISHED, OutcomeKind.UNKNOWN):
        message += f". The post may have been published: check {outcome.platform} before rescheduling"
        kind = OutcomeKind.UNKNOWN
    else:
        kind = OutcomeKind.FAILED
    return dataclasses.replace(
        outcome, kind=kind, result=None, error_message=message, retry_at=None, reason="unrecordable"
    )


class OutcomeWriter(Service):
    """Writes outcomes and rejections in batches, retrying until each batch lands."""

    name = "writer"

    def __init__(self, repository: Repository, *, retry_cap: float = 5.0, stop_timeout: float = 30.0) -> None:
        super().__init__()
        self.repository = repository
        self.stop_timeout = stop_timeout
        self._backoff = Backoff(0.1, retry_cap)
        self._outcomes: list[Pending] = []
        self._rejects: list[Reject] = []
        self._deadline = float("inf")
        self.written = 0

    def submit(self, outcome: Outcome) -> asyncio.Future[None]:
        """Queue ``outcome``; the future resolves once it is in the database."""
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outcomes.append((outcome, written))
        self._wakeup.set()
        return written

    def reject(self, post_id: uuid.UUID, version: int, message: str) -> None:
        self._rejects.append((post_id, version, message))
        self._wakeup.set()

    @property
    def pending(self) -> int:
        return len(self._outcomes) + len(self._rejects)

    def _wake(self) -> None:
        self._deadline = asyncio.get_running_loop().time() + self.stop_timeout
        self._wakeup.set()

    async def run(self) -> None:
        self.started.set()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._flush()
            if not self.pending and self.stopping:
                return

    async def _flush(self) -> None:
        self._backoff.reset()
        while self.pending:
            outcomes, self._outcomes = self._outcomes, []
            rejects, self._rejects = self._rejects, []
            failure: BaseException | None = None
            try:
                await _isolating(rejects, self.repository.reject, self._reject_unrecordable)
            except DB_ERRORS as exc:  # the database is away: put them back in front, nothing is dropped
                self._rejects[:0], failure = rejects, exc
            landed: set[int] = set()
            try:
                await _isolating(outcomes, functools.partial(self._record, landed=landed), self._record_unrecordable)
            except DB_ERRORS as exc:
                self._outcomes[:0], failure = [p for p in outcomes if id(p) not in landed], exc
            if failure is None:
                self._backoff.reset()
                continue
            delay = self._backoff.next()
            if self.stopping and asyncio.get_running_loop().time() + delay > self._deadline:
                self._give_up(failure)
                return
            logger.warning(
                "cannot record outcomes; will retry", error=str(failure)[:LOGGED_ERROR_CHARS],
                pending=self.pending, retry_in_s=round(delay, 2),
            )
            await asyncio.sleep(delay)

    async def _record(self, pending: Sequence[Pending], landed: set[int] | None = None) -> None:
        await self.repository.record([o for o, _ in pending])
        self.written += len(pending)
        for item in pending:
            _resolve(item[1])
            if landed is not None:
                landed.add(id(item))

    async def _record_unrecordable(self, item: Pending, exc: BaseException) -> None:
        outcome, written = item
        instead = unrecordable(outcome, exc)
        logger.error("the database refused an outcome; recording it as a draft", post_id=str(outcome.post_id),
                     platform=outcome.platform, error=data_error_text(exc), error_message=instead.error_message)
        await _isolating([(instead, written)], self._record, _dropped)
        _resolve(written)  # even when dropped: its publish must not wait for ever

    async def _reject_unrecordable(self, item: Reject, exc: BaseException) -> None:
        post_id, version, _ = item
        message = f"could not record why this post cannot be published: {data_error_text(exc)}"
        logger.error("the database refused a rejection", post_id=str(post_id), error=data_error_text(exc))
        await _isolating([(post_id, version, message)], self.repository.reject, _dropped)

    def _give_up(self, exc: BaseException) -> None:
        for outcome, _ in self._outcomes:
            logger.error(
                "outcome not recorded: the database refused it until shutdown", error=str(exc)[:LOGGED_ERROR_CHARS],
                post_id=str(outcome.post_id), platform=outcome.platform, status=str(outcome.status),
                platform_post_id=outcome.result.platform_post_id if outcome.result else None,
                error_message=outcome.error_message,
            )
        for post_id, _, message in self._rejects:
            logger.error("rejection not recorded", post_id=str(post_id), error_message=message)
        self._outcomes, self._rejects = [], []


async def _isolating(
    items: Sequence[T],
    write: Callable[[Sequence[T]], Awaitable[object]],
    poisoned: Callable[[T, BaseException], Awaitable[None]],
) -> None:
    """``write(items)`` in one round trip; on a data error, each half on its own, down to
    the row that fails alone, which goes to ``poisoned``. k poison rows in n cost about
    2·k·log2(n) round trips. Any other database error propagates (retry it all)."""
    if not items:
        return
    try:
        await write(items)
    except DATA_ERRORS as exc:
        if len(items) == 1:
            await poisoned(items[0], exc)
            return
        half = len(items) // 2
        await _isolating(items[:half], write, poisoned)
        await _isolating(items[half:], write, poisoned)


def _resolve(written: asyncio.Future[None]) -> None:
    if not written.done():
        written.set_result(None)


async def _dropped(item: object, exc: BaseException) -> None:
    """A replacement written only from our own values was refused too: nothing more to try."""
    logger.error("could not record even the replacement; the row stays as the database has it",
                 error=data_error_text(exc))
