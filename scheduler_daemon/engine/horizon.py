"""The horizon step: every ``step`` seconds, arm the posts that came within the horizon.

Only the posts due before the horizon's end (``Dispatcher.horizon_end``: about now +
SCHEDULER_HORIZON_SECONDS) are armed, so memory follows the posts of the next day, not the
table. This service moves the end on by one range query (sql/daemon.sql,
``load_horizon_step``) every ``step`` seconds (HORIZON_STEP_FRACTION of the horizon): one
statement per step, never a query per post.

States::

    new ──start()──▶ waiting ──clock reaches next step──▶ stepping ──armed──▶ waiting
                        ▲                                    │ database error
                        └──────────── retry after a backoff ─┘
    any ──stop()──▶ stopped

``started`` is set once the loop runs; ``stepped`` is set after each step that ran (tests
clear it and wait on it). The clock is injected; ``poke()`` makes the loop read it again
(after a test moved it), since the wait itself runs on the event loop's timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from ..clock import Clock
from ..db.errors import DB_ERRORS
from ..retry import Backoff
from ..service import Service

logger = structlog.get_logger("scheduler_daemon.horizon")

# A step every half horizon: a post is armed between a half and a whole horizon ahead of its
# instant, so a step that fails keeps being retried for half a horizon before any post waits
# on it (a resync or its own notification arms it earlier).
HORIZON_STEP_FRACTION = 0.5
STEP_RETRY_BASE, STEP_RETRY_CAP = 1.0, 60.0


class HorizonStepper(Service):
    name = "horizon"

    def __init__(self, advance: Callable[[], Awaitable[int]], clock: Clock, horizon_seconds: float) -> None:
        super().__init__()
        self.advance = advance
        self.clock = clock
        self.step_seconds = horizon_seconds * HORIZON_STEP_FRACTION
        self.stepped = asyncio.Event()
        self._backoff = Backoff(STEP_RETRY_BASE, STEP_RETRY_CAP)

    def poke(self) -> None:
        """Read the clock again now (it was moved: a test, or a re-anchor)."""
        self._wakeup.set()

    async def run(self) -> None:
        next_at = self.clock.now() + self.step_seconds
        self.started.set()
        while not self.stopping:
            await self._pause(max(0.0, next_at - self.clock.now()))
            if self.stopping or self.clock.now() < next_at:
                continue
            next_at = self.clock.now() + await self._step()

    async def _step(self) -> float:
        """One step; the seconds until the next one (a backoff after a failure)."""
        try:
            armed = await self.advance()
        except DB_ERRORS as exc:
            delay = self._backoff.next()
            logger.warning("horizon step failed; retrying", error=str(exc), retry_in_s=round(delay, 2))
            return delay
        self._backoff.reset()
        logger.debug("horizon moved on", armed=armed)
        self.stepped.set()
        return self.step_seconds
