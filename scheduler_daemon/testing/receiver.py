"""A local HTTP server that records every request and its arrival time.

Used as the webhook target in tests and as the platform stand-in in benchmarks. It can
check webhook signatures, and can be told how to answer (status and body), including
not answering at all (``hang``) to simulate a lost response.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Arrival:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    wall: float  # time.time() when the request was fully read

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    delay: float = 0.0  # seconds before answering (a slow platform)


Responder = Callable[[Arrival], Reply]


class Receiver:
    def __init__(self, responder: Responder | None = None) -> None:
        self.arrivals: list[Arrival] = []
        self.responder: Responder = responder or (lambda a: Reply(200, {"id": f"r-{len(self.arrivals)}"}))
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        arrival = Arrival(request.method, request.path_qs, headers, body, time.time())
        self.arrivals.append(arrival)
        async with self._changed:
            self._changed.notify_all()
        reply = self.responder(arrival)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.hang:
            await asyncio.Event().wait()  # never answers; the client's timeout ends it
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Arrival]:
        """Wait until at least ``count`` requests arrived; TimeoutError otherwise."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.arrivals) >= count)
        return self.arrivals
