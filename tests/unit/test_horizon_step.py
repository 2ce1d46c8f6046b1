"""The horizon step's timer (engine/horizon.py) on an injected clock: it steps each time the
clock reaches the next step, and a database error is retried after a backoff, not a step."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import asyncpg

from scheduler_daemon.clock import ManualClock
from scheduler_daemon.config import Settings
from scheduler_daemon.engine.horizon import HORIZON_STEP_FRACTION, STEP_RETRY_CAP, HorizonStepper

STEP = Settings.horizon_seconds * HORIZON_STEP_FRACTION


class Steps:
    """The step the stepper calls: fails ``failures`` times, then counts."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0
        self.called = asyncio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        self.called.set()
        if self.failures:
            self.failures -= 1
            raise asyncpg.PostgresConnectionError("connection lost")
        return 1


async def _poked_until(stepper: HorizonStepper, event: asyncio.Event) -> None:
    event.clear()
    stepper.poke()
    await asyncio.wait_for(event.wait(), 5)


async def test_it_steps_each_time_the_clock_reaches_the_next_step() -> None:
    clock, steps = ManualClock(1_000.0), Steps()
    stepper = HorizonStepper(steps, clock, Settings.horizon_seconds)
    async with asyncio.TaskGroup() as tasks, AsyncExitStack() as stack:
        stepper.start(tasks, stack)
        await asyncio.wait_for(stepper.started.wait(), 5)
        clock.advance(STEP)
        await _poked_until(stepper, stepper.stepped)
        assert steps.calls == 1
        clock.advance(STEP)
        await _poked_until(stepper, stepper.stepped)
        assert steps.calls == 2


async def test_a_failed_step_is_retried_after_a_backoff() -> None:
    clock, steps = ManualClock(1_000.0), Steps(failures=1)
    stepper = HorizonStepper(steps, clock, Settings.horizon_seconds)
    async with asyncio.TaskGroup() as tasks, AsyncExitStack() as stack:
        stepper.start(tasks, stack)
        await asyncio.wait_for(stepper.started.wait(), 5)
        clock.advance(STEP)
        await _poked_until(stepper, steps.called)
        assert steps.calls == 1 and not stepper.stepped.is_set()
        clock.advance(STEP_RETRY_CAP)  # within the backoff's longest wait, not a whole step
        await _poked_until(stepper, stepper.stepped)
        assert steps.calls == 2
