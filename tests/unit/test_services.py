"""The service contract (service.Service): every long-lived component tolerates a stop
before start and a double stop, and a started one ends when stopped, its stop registered
on the exit stack. No database: the services are built on what they do not touch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from types import SimpleNamespace

import httpx
import pytest

from scheduler_daemon.clock import ManualClock
from scheduler_daemon.config import Settings
from scheduler_daemon.db.listener import Listener
from scheduler_daemon.db.liveness import Liveness
from scheduler_daemon.engine.dispatcher import Dispatcher
from scheduler_daemon.engine.publisher import Publisher
from scheduler_daemon.engine.recovery import Recovery
from scheduler_daemon.engine.status import StatusReporter
from scheduler_daemon.engine.writer import OutcomeWriter
from scheduler_daemon.observability.metrics import Metrics, PrometheusMetrics
from scheduler_daemon.observability.server import MetricsServer
from scheduler_daemon.service import Service
from scheduler_daemon.systemd import Notifier


async def _no_sync() -> None:
    return None


def _dispatcher(client: httpx.AsyncClient) -> Dispatcher:
    writer, clock = OutcomeWriter(None), ManualClock(0.0)  # type: ignore[arg-type]
    publisher = Publisher(Settings(), None, None, writer, clock, client)  # type: ignore[arg-type]
    return Dispatcher(Settings(), None, publisher, clock, reject=writer.reject, request_resync=lambda: None)  # type: ignore[arg-type]


def _services(client: httpx.AsyncClient) -> dict[str, Callable[[], Service]]:
    return {
        "writer": lambda: OutcomeWriter(None),  # type: ignore[arg-type]
        "dispatcher": lambda: _dispatcher(client),
        "recovery": lambda: Recovery(
            None, after_seconds=1.0, request_seconds=1.0, attempt_seconds=1.0, windows={},  # type: ignore[arg-type]
            in_flight=set, claim_gate=asyncio.Lock(), clock=ManualClock(0.0),
        ),
        "liveness": lambda: Liveness(
            "postgresql://127.0.0.1:1/none", SimpleNamespace(instance_id="t"),  # type: ignore[arg-type]
        ),
        "status": lambda: StatusReporter(Notifier(None), Metrics(), _dispatcher(client), ManualClock(0.0)),
        # never reaches the database: stopped before it could connect, or cancelled while connecting
        "listener": lambda: Listener(
            "postgresql://127.0.0.1:1/none", SimpleNamespace(instance_id="t"),  # type: ignore[arg-type]
            on_payload=print, on_sync=_no_sync,
        ),
    }


NAMES = ["writer", "dispatcher", "recovery", "status", "listener", "liveness"]


@pytest.mark.parametrize("name", NAMES)
async def test_stop_before_start_and_twice(name: str) -> None:
    async with httpx.AsyncClient() as client:
        service = _services(client)[name]()
        async with asyncio.timeout(5):
            await service.stop()
            await service.stop()
        assert service.stopping and not service.started.is_set()


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("listener", "liveness")])
async def test_started_then_stopped_by_the_exit_stack(name: str) -> None:
    async with httpx.AsyncClient() as client:
        service = _services(client)[name]()
        async with asyncio.timeout(5), asyncio.TaskGroup() as tasks, AsyncExitStack() as stack:
            service.start(tasks, stack)
            await service.started.wait()
        # leaving the stack stopped it, and the TaskGroup saw its task end
        assert service.stopping
        await service.stop()  # a second stop after the end is harmless


async def test_the_listener_stops_while_it_cannot_connect() -> None:
    async with httpx.AsyncClient() as client:
        listener = _services(client)["listener"]()
        async with asyncio.timeout(5), asyncio.TaskGroup() as tasks, AsyncExitStack() as stack:
            listener.start(tasks, stack)
            await asyncio.sleep(0)  # let it try; it keeps retrying until stopped
        assert listener.stopping and not listener.started.is_set()


async def test_a_service_starts_once() -> None:
    writer = OutcomeWriter(None)  # type: ignore[arg-type]
    async with asyncio.TaskGroup() as tasks, AsyncExitStack() as stack:
        writer.start(tasks, stack)
        with pytest.raises(RuntimeError, match="already started"):
            writer.start(tasks, stack)


async def test_the_metrics_server_keeps_the_contract() -> None:
    server = MetricsServer(PrometheusMetrics(), lambda: {"healthy": True}, "127.0.0.1:0")
    await server.stop()  # before start
    other = MetricsServer(PrometheusMetrics(), lambda: {"healthy": True}, "127.0.0.1:0")
    async with AsyncExitStack() as stack:
        await other.start(stack)
        assert other.started.is_set() and other.port > 0
    await other.stop()  # after the stack stopped it
