"""The daemon in-process, with probes the bench attaches from outside.

Nothing in the package is edited or patched at module level: the probes wrap bound
attributes of one running daemon (the listener's ``on_payload`` callback, the
repository's ``claim``/``record``) and use the ``Metrics`` hook the daemon accepts.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from scheduler_daemon.config import Settings
from scheduler_daemon.daemon import Daemon
from scheduler_daemon.engine.dispatcher import Dispatcher
from scheduler_daemon.logs import configure
from scheduler_daemon.models import ClaimedPost, Outcome
from scheduler_daemon.observability.metrics import Metrics

from . import transports
from .tally import Tally

_devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


def quiet_logs() -> None:
    """The daemon's real JSON log lines (one per publish), written to /dev/null."""
    configure("info", "json", stream=_devnull)


# Every fake platform is on loopback, which the outbound guard refuses unless allowed.
# The loopback fakes are allowed; and the scenarios that send a whole burst through ONE
# webhook connection (lateness, burst, roundtrips, replicas, the in-flight measurement)
# measure the engine, not one tenant's pacing, so that connection is not held to the
# default 5 in flight per account. The realistic, media and profile bursts spread over
# accounts and keep every pacing default (5 posts per account: never paced).
BENCH_ENV = {"SCHEDULER_ALLOW_NETWORKS": "127.0.0.1/32", "SCHEDULER_WEBHOOK_ACCOUNT_CONCURRENCY": "10000"}


def bench_settings(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """The defaults (what users run), plus ``env`` read as the daemon reads its environment."""
    base = replace(
        Settings.from_env({**BENCH_ENV, **(env or {})}),
        instance_id=f"bench-{uuid.uuid4().hex[:6]}",
        state_dir=Path(tempfile.gettempdir()) / "scheduler-bench-state",
    )
    return replace(base, **overrides)


class PublishMetrics(Metrics):
    """Lateness as the daemon sees it: slot acquired (just before the HTTP request) − due."""

    def __init__(self) -> None:
        self.lateness: list[float] = []

    def published(self, platform: str, lateness: float) -> None:
        self.lateness.append(lateness)


@dataclass
class Claim:
    started: float  # time.time()
    finished: float
    asked: int
    won: int


@dataclass
class Probes:
    """What the wrappers saw, in time.time() (the receiver process's clock too)."""

    notifications: list[float] = field(default_factory=list)  # processed (armed / re-armed)
    notified: Tally = field(default_factory=Tally)
    armed_at: dict[uuid.UUID, float] = field(default_factory=dict)  # when ``track_ids``
    claims: list[Claim] = field(default_factory=list)
    outcomes: Tally = field(default_factory=Tally)
    track_ids: bool = False
    _arm_waiters: dict[uuid.UUID, asyncio.Future[float]] = field(default_factory=dict)

    def reset(self) -> None:
        self.notifications.clear()
        self.notified = Tally()
        self.armed_at.clear()
        self.claims.clear()
        self.outcomes = Tally()

    def armed(self, post_id: uuid.UUID) -> asyncio.Future[float]:
        """A future resolved with the time ``post_id``'s notification was processed."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if post_id in self.armed_at:
            future.set_result(self.armed_at[post_id])
        else:
            self._arm_waiters[post_id] = future
        return future

    def on_notification(self, wall: float, payload: str) -> None:
        self.notifications.append(wall)
        self.notified.add()
        if self.track_ids:
            post_id = uuid.UUID(json.loads(payload)["id"])
            self.armed_at[post_id] = wall
            waiter = self._arm_waiters.pop(post_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(wall)


class RunningDaemon:
    """``async with RunningDaemon(dsn, settings) as d``: started (LISTEN active, boot load
    armed) on entry, stopped on exit; ``d.probes`` fills as it works."""

    def __init__(
        self, dsn: str, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.metrics = PublishMetrics()
        self.daemon = Daemon(settings, dsn, transport=transport, metrics=self.metrics)
        self.probes = Probes()
        self.ready_seconds = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def dispatcher(self) -> Dispatcher:
        assert self.daemon.dispatcher is not None
        return self.daemon.dispatcher

    def http_transport(self) -> str:
        """The class of the transport the webhook adapter's client sends with."""
        try:
            adapter: Any = self.dispatcher.publisher.registry.get("webhook")
            transport = adapter.client._transport
        except Exception:  # a private attribute of httpx: report, never fail the bench
            return "unknown"
        return transports.class_name(transport)

    async def __aenter__(self) -> RunningDaemon:
        began = time.perf_counter()
        self._task = asyncio.create_task(self.daemon.run(), name="bench-daemon")
        started = asyncio.ensure_future(self.daemon.started.wait())
        async with asyncio.timeout(120):
            await asyncio.wait({self._task, started}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            started.cancel()
            self._task.result()
            raise RuntimeError("the daemon stopped before it was ready")
        self.ready_seconds = time.perf_counter() - began
        self._attach()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.daemon.stop()
        if self._task is not None:
            async with asyncio.timeout(60):
                await self._task

    def _attach(self) -> None:
        listener = self.daemon.listener
        assert listener is not None
        probes = self.probes
        on_payload = listener.on_payload

        def probed_payload(payload: str) -> None:
            on_payload(payload)
            probes.on_notification(time.time(), payload)

        listener.on_payload = probed_payload

        repository = self.dispatcher.repository  # the publisher and the writer hold the same object
        claim = repository.claim
        record = repository.record

        async def probed_claim(items: Sequence[tuple[uuid.UUID, int]], **options: Any) -> list[ClaimedPost]:
            started = time.time()
            won = await claim(items, **options)
            probes.claims.append(Claim(started, time.time(), len(items), len(won)))
            return won

        async def probed_record(outcomes: Sequence[Outcome]) -> int:
            changed = await record(outcomes)
            probes.outcomes.add(len(outcomes))
            return changed

        repository.claim = probed_claim  # type: ignore[method-assign]
        repository.record = probed_record  # type: ignore[method-assign]

