"""The contract every long-lived component keeps: start, stop, started (River's services).

States::

    new ──start()──▶ running ──stop()──▶ stopping ──run() returned──▶ stopped
     └─────────────────────────stop() before start──────────────────▶ stopped

* ``start(tasks, stack)`` runs the service's ``run()`` as a task of the daemon's one
  TaskGroup and registers ``stop`` on the daemon's exit stack, so leaving the block stops
  every service, the last started first (the writer, started first, stops last: after
  the dispatcher's last outcome).
* ``stop()`` asks ``run()`` to end (``stopping`` turns true and ``_wake()`` sets the
  service's wake-up event, which ends a ``_pause``) and returns once it has. Before
  ``start`` it only marks the service stopped; a second call waits for the same end.
* ``started`` is an event set once the service does its job (each says when): tests and
  the daemon wait on it, never on a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack


class Service:
    name = "service"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.stopping = False
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()  # stop, or the service's own reason to look again

    def start(self, tasks: asyncio.TaskGroup, stack: AsyncExitStack) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self.name} is already started")
        stack.push_async_callback(self.stop)
        self._task = tasks.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self._wake()
        if self._task is not None:
            await asyncio.wait({self._task})  # whether it ended, failed or was cancelled

    async def run(self) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        """Interrupt whatever ``run()`` waits on, so that it sees ``stopping``."""
        self._wakeup.set()

    def _woken(self) -> bool:
        """Whether a ``_pause`` should end now (stopping, or a reason of the service's own)."""
        return self.stopping

    async def _pause(self, seconds: float) -> None:
        """Wait up to ``seconds``, ending early on a wake-up."""
        self._wakeup.clear()
        if self._woken():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)
