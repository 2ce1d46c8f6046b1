"""Writing outcomes durably: one round trip per batch, retried until it lands.

``OutcomeWriter`` batches whatever outcomes and rejections are pending into one round
trip each, and retries a failed write with backoff until it lands, so a database outage
never makes the daemon forget that a post was published (or why it was not).

A ``Service``: ``stop()`` finishes what is pending (started first, it is stopped last,
after the dispatcher's last outcome). If the database still refuses the writes
``stop_timeout`` seconds after the stop, the pending outcomes are logged one per line
at error level (post id, status, platform post id, message) so that an operator can
apply them by hand.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog

from ..db.errors import DB_ERRORS
from ..db.repository import Repository
from ..models import Outcome
from ..retry import Backoff
from ..service import Service

logger = structlog.get_logger("scheduler_daemon.writer")


class OutcomeWriter(Service):
    """Writes outcomes and rejections in batches, retrying until each batch lands."""

    name = "writer"

    def __init__(self, repository: Repository, *, retry_cap: float = 5.0, stop_timeout: float = 30.0) -> None:
        super().__init__()
        self.repository = repository
        self.stop_timeout = stop_timeout
        self._backoff = Backoff(0.1, retry_cap)
        self._outcomes: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._rejects: list[tuple[uuid.UUID, int, str]] = []
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
            try:
                if rejects:
                    await self.repository.reject(rejects)
                    rejects = []
                if outcomes:
                    await self.repository.record([o for o, _ in outcomes])
                    self.written += len(outcomes)
                    for _, written in outcomes:
                        if not written.done():
                            written.set_result(None)
                self._backoff.reset()
            except DB_ERRORS as exc:
                # Put them back in front and try again: nothing is dropped.
                self._outcomes[:0] = outcomes
                self._rejects[:0] = rejects
                delay = self._backoff.next()
                if self.stopping and asyncio.get_running_loop().time() + delay > self._deadline:
                    self._give_up(exc)
                    return
                logger.warning(
                    "cannot record outcomes; will retry", error=str(exc), pending=self.pending,
                    retry_in_s=round(delay, 2),
                )
                await asyncio.sleep(delay)

    def _give_up(self, exc: BaseException) -> None:
        for outcome, _ in self._outcomes:
            logger.error(
                "outcome not recorded: the database refused it until shutdown", error=str(exc),
                post_id=str(outcome.post_id), platform=outcome.platform, status=str(outcome.status),
                platform_post_id=outcome.result.platform_post_id if outcome.result else None,
                error_message=outcome.error_message,
            )
        for post_id, _, message in self._rejects:
            logger.error("rejection not recorded", post_id=str(post_id), error_message=message)
        self._outcomes, self._rejects = [], []
