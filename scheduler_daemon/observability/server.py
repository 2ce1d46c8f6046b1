"""Prometheus metrics and ``/healthz`` over a small asyncio HTTP server.

Off by default: the daemon serves them only when ``SCHEDULER_METRICS_ADDRESS``
(host:port) is set, and this module needs the ``metrics`` extra
(``pip install 'scheduler-daemon[metrics]'``, i.e. prometheus-client).

* ``PrometheusMetrics`` implements the ``Metrics`` hooks on its own
  ``CollectorRegistry`` (nothing global, so several daemons can live in one process).
* ``serve(metrics, health, address)`` is an async context manager that serves
  ``GET /metrics`` (the Prometheus text format) and ``GET /healthz`` (the JSON that
  ``health()`` returns: 200 when its ``healthy`` is true, else 503) until it exits.
* ``LoopWatch`` measures event-loop lag, and ``daemon_health`` builds the health
  callable from a running ``Daemon``; ``serve_daemon`` wires the three together.

The server runs on the daemon's own event loop: a loop stuck for good cannot answer
at all (a scrape or probe then times out, which is itself the signal), and a loop that
was stuck recently answers 503 with the lag it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from .metrics import Metrics

# Lateness is the point of the daemon: fine buckets from 1 ms to 10 s.
LATENESS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROUND_TRIP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

MAX_REQUEST_BYTES = 8192
REQUEST_TIMEOUT = 5.0
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"


class PrometheusMetrics(Metrics):
    """The daemon's hooks as Prometheus metrics on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.armed_posts = Gauge("scheduler_armed_posts", "Scheduled posts armed with a timer.", registry=r)
        self.next_due_seconds = Gauge(
            "scheduler_next_due_seconds",
            "Seconds until the earliest armed post is due (negative when late; NaN when nothing is armed).",
            registry=r,
        )
        self.next_due_seconds.set(math.nan)
        self.published_total = Counter(
            "scheduler_published", "Posts published, by platform.", ["platform"], registry=r
        )
        self.failed_total = Counter(
            "scheduler_failed",
            "Publish attempts that did not publish, by platform and reason (retries included).",
            ["platform", "reason"],
            registry=r,
        )
        self.lateness_seconds = Histogram(
            "scheduler_publish_lateness_seconds",
            "How late a published post's attempt started after its due instant.",
            ["platform"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.listener_reconnects_total = Counter(
            "scheduler_listener_reconnects", "Times the LISTEN connection was re-established.", registry=r
        )
        self.db_round_trip_seconds = Histogram(
            "scheduler_db_round_trip_seconds",
            "Round trip of the listener's heartbeat query (SELECT clock_timestamp()).",
            buckets=ROUND_TRIP_BUCKETS,
            registry=r,
        )

    def armed(self, count: int, next_due_in: float | None) -> None:
        self.armed_posts.set(count)
        self.next_due_seconds.set(math.nan if next_due_in is None else next_due_in)

    def published(self, platform: str, lateness: float) -> None:
        self.published_total.labels(platform).inc()
        self.lateness_seconds.labels(platform).observe(max(0.0, lateness))

    def failed(self, platform: str, reason: str) -> None:
        self.failed_total.labels(platform, reason).inc()

    def listener_reconnected(self) -> None:
        self.listener_reconnects_total.inc()

    def db_round_trip(self, seconds: float) -> None:
        self.db_round_trip_seconds.observe(max(0.0, seconds))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


# -- health -------------------------------------------------------------------------------


class LoopWatch:
    """Event-loop lag: a callback re-armed every ``interval`` notes how late it ran.

    ``lag()`` is how far behind the loop is right now (0 on a healthy loop), or the
    worst recent lateness, whichever is larger; ``alive()`` compares it to ``max_lag``.
    """

    def __init__(self, interval: float = 0.25, max_lag: float = 2.0) -> None:
        self.interval = interval
        self.max_lag = max_lag
        self.recent_lag = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._expected = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> LoopWatch:
        self._loop = asyncio.get_running_loop()
        self._schedule()
        return self

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def __enter__(self) -> LoopWatch:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _schedule(self) -> None:
        assert self._loop is not None
        self._expected = self._loop.time() + self.interval
        self._handle = self._loop.call_at(self._expected, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        late = max(0.0, self._loop.time() - self._expected)
        # decay: one bad tick is remembered for a few intervals, then forgotten
        self.recent_lag = max(late, self.recent_lag * 0.5)
        self._schedule()

    def lag(self) -> float:
        if self._loop is None or self._handle is None:
            return math.inf
        behind = max(0.0, self._loop.time() - self._expected)
        return max(behind, self.recent_lag)

    def alive(self) -> bool:
        return self.lag() <= self.max_lag


class _ListenerLike(Protocol):
    @property
    def connected(self) -> bool: ...

    @property
    def last_heartbeat(self) -> float | None: ...

    @property
    def reconnects(self) -> int: ...


class _SettingsLike(Protocol):
    @property
    def heartbeat_seconds(self) -> float: ...

    @property
    def heartbeat_timeout_seconds(self) -> float: ...


class DaemonLike(Protocol):
    """What ``daemon_health`` reads from a ``Daemon``."""

    @property
    def settings(self) -> _SettingsLike: ...

    @property
    def listener(self) -> _ListenerLike | None: ...

    @property
    def started(self) -> asyncio.Event: ...

    @property
    def metrics(self) -> Metrics: ...


def daemon_health(daemon: DaemonLike, watch: LoopWatch) -> Callable[[], dict[str, Any]]:
    """The /healthz document of a daemon. Healthy: started (LISTEN active, boot load
    armed), the listener connected with a heartbeat no older than two intervals plus
    the heartbeat timeout, and the event loop not lagging."""
    s = daemon.settings
    stale_after = 2 * s.heartbeat_seconds + s.heartbeat_timeout_seconds

    def health() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        listener = daemon.listener
        connected = bool(listener is not None and listener.connected)
        beat = None if listener is None else listener.last_heartbeat
        age = None if beat is None else max(0.0, loop.time() - beat)
        lag = watch.lag()
        fresh = age is not None and age <= stale_after
        started = daemon.started.is_set()
        return {
            "healthy": started and connected and fresh and watch.alive(),
            "started": started,
            "listener_connected": connected,
            "last_heartbeat_age_seconds": None if age is None else round(age, 3),
            "heartbeat_stale_after_seconds": stale_after,
            "listener_reconnects": 0 if listener is None else listener.reconnects,
            "loop_alive": watch.alive(),
            "loop_lag_seconds": None if math.isinf(lag) else round(lag, 4),
        }

    return health


# -- the HTTP server ----------------------------------------------------------------------


def parse_address(address: str) -> tuple[str, int]:
    """'host:port', '[v6]:port' or ':port' (all interfaces) → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{address!r} is not host:port")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


@dataclass
class MetricsServer:
    server: asyncio.Server
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _response(status: int, reason: str, body: bytes, content_type: str, head: bool = False) -> bytes:
    headers = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return headers.encode("ascii") + (b"" if head else body)


class _Handler:
    def __init__(self, metrics: PrometheusMetrics, health: Callable[[], dict[str, Any]]) -> None:
        self.metrics = metrics
        self.health = health

    def route(self, method: str, target: str) -> bytes:
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            return _response(405, "Method Not Allowed", b"GET or HEAD\n", TEXT_TYPE)
        path = target.split("?", 1)[0]
        if path == "/metrics":
            return _response(200, "OK", self.metrics.exposition(), CONTENT_TYPE_LATEST, head)
        if path == "/healthz":
            try:
                document = self.health()
            except Exception as exc:  # a broken health callable is itself unhealthy
                document = {"healthy": False, "error": f"{type(exc).__name__}: {exc}"}
            body = (json.dumps(document, default=str) + "\n").encode()
            if document.get("healthy"):
                return _response(200, "OK", body, JSON_TYPE, head)
            return _response(503, "Service Unavailable", body, JSON_TYPE, head)
        return _response(404, "Not Found", b"try /metrics or /healthz\n", TEXT_TYPE, head)

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                writer.write(_response(431, "Request Header Fields Too Large", b"", TEXT_TYPE))
                return
            except (asyncio.IncompleteReadError, TimeoutError):
                return
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                writer.write(_response(400, "Bad Request", b"bad request line\n", TEXT_TYPE))
                return
            writer.write(self.route(parts[0], parts[1]))
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


@asynccontextmanager
async def serve(
    metrics: PrometheusMetrics, health: Callable[[], dict[str, Any]], address: str
) -> AsyncIterator[MetricsServer]:
    """Serve /metrics and /healthz on ``address`` (host:port; port 0 picks a free one)
    until the block exits."""
    host, port = parse_address(address)
    server = await asyncio.start_server(_Handler(metrics, health), host, port, limit=MAX_REQUEST_BYTES)
    bound = server.sockets[0].getsockname()
    try:
        yield MetricsServer(server, bound[0], int(bound[1]))
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def serve_daemon(daemon: DaemonLike, address: str) -> AsyncIterator[MetricsServer]:
    """``serve`` for a ``Daemon`` built with ``metrics=PrometheusMetrics()``."""
    if not isinstance(daemon.metrics, PrometheusMetrics):
        raise TypeError("the daemon's metrics must be a PrometheusMetrics to be served")
    with LoopWatch() as watch:
        async with serve(daemon.metrics, daemon_health(daemon, watch), address) as server:
            yield server
