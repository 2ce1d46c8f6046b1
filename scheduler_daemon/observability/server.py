"""``/metrics`` and ``/healthz`` over aiohttp.web.

Off by default: the daemon serves them only when ``SCHEDULER_METRICS_ADDRESS``
(host:port) is set.

* ``GET /metrics``: prometheus-client's aiohttp handler on the daemon's own registry
  (the text format);
* ``GET /healthz``: the JSON document ``health()`` returns, 200 when its ``healthy`` is
  true, else 503 (a health callable that raises is unhealthy);
* ``HEAD`` answers both without a body; another method is 405, another path 404.

The server runs on the daemon's own event loop: a loop stuck for good cannot answer at
all (a scrape or probe then times out, which is itself the signal), and a loop that was
stuck recently answers 503 with the lag it saw.

``MetricsServer`` keeps the service contract (``start``/``stop``/``started``, a stop
before start or a second stop is harmless) without a task of its own: aiohttp serves on
the loop. ``serve`` and ``serve_daemon`` are its ``async with`` forms.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from .health import DaemonLike, Health, LoopWatch, daemon_health
from .metrics import PrometheusMetrics

JSON_TYPE = "application/json"


def parse_address(address: str) -> tuple[str, int]:
    """'host:port', '[v6]:port' or ':port' (all interfaces) → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{address!r} is not host:port")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


@web.middleware
async def _no_store(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    response.headers["Cache-Control"] = "no-store"
    return response


def _app(metrics: PrometheusMetrics, health: Health) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        try:
            document = health()
        except Exception as exc:  # a broken health callable is itself unhealthy
            document = {"healthy": False, "error": f"{type(exc).__name__}: {exc}"}
        body = (json.dumps(document, default=str) + "\n").encode()
        return web.Response(status=200 if document.get("healthy") else 503, body=body, content_type=JSON_TYPE)

    app = web.Application(middlewares=[_no_store])
    app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry, disable_compression=True))
    app.router.add_get("/healthz", healthz)
    return app


class MetricsServer:
    def __init__(self, metrics: PrometheusMetrics, health: Health, address: str) -> None:
        self.host, self.port = parse_address(address)
        self.started = asyncio.Event()
        self._runner = web.AppRunner(_app(metrics, health), access_log=None, handle_signals=False)
        self._stopped = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self, stack: AsyncExitStack) -> None:
        """Bind (port 0 picks a free one) and serve until ``stop``, which ``stack`` calls."""
        stack.push_async_callback(self.stop)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.started.set()

    async def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            await self._runner.cleanup()


@asynccontextmanager
async def serve(metrics: PrometheusMetrics, health: Health, address: str) -> AsyncIterator[MetricsServer]:
    """Serve /metrics and /healthz on ``address`` (host:port; port 0 picks a free one)
    until the block exits."""
    async with AsyncExitStack() as stack:
        server = MetricsServer(metrics, health, address)
        await server.start(stack)
        yield server


@asynccontextmanager
async def serve_daemon(daemon: DaemonLike, address: str) -> AsyncIterator[MetricsServer]:
    """``serve`` for a ``Daemon`` built with ``metrics=PrometheusMetrics()``."""
    if not isinstance(daemon.metrics, PrometheusMetrics):
        raise TypeError("the daemon's metrics must be a PrometheusMetrics to be served")
    with LoopWatch() as watch:
        async with serve(daemon.metrics, daemon_health(daemon, watch), address) as server:
            yield server
