"""The chaos suite's fake platform: a webhook endpoint that misbehaves on purpose and keeps
its own record of every request, by ``Idempotency-Key`` (the post id).

About ``failure_rate`` of the requests get, in equal parts, a 500, a 429 with
``Retry-After: 1``, or no answer at all (a hang: the client's timeout ends it). The
choice is a pure function of (seed, post id, how many times that post came before), so a
run is reproducible from its seed.

What counts as a publication on this platform: a request answered 200 — and, to be safe,
a request that hung (the platform may have published before going silent).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from aiohttp import web

ANSWERED = "200"
HANG = "hang"


@dataclass
class Record:
    outcomes: list[str] = field(default_factory=list)  # "200", "500", "429", "hang", in order

    @property
    def accepted(self) -> int:
        return self.outcomes.count(ANSWERED)

    @property
    def possible(self) -> int:
        """Requests that may have published: answered 200 or never answered."""
        return self.outcomes.count(ANSWERED) + self.outcomes.count(HANG)


class FakePlatform:
    def __init__(self, *, seed: int, failure_rate: float = 0.10, hang_seconds: float = 30.0) -> None:
        self.seed = seed
        self.failure_rate = failure_rate
        self.hang_seconds = hang_seconds
        self.records: dict[str, Record] = defaultdict(Record)
        self.counts: Counter[str] = Counter()
        self.first_arrival: float | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/publish"

    def _choose(self, key: str, nth: int) -> str:
        digest = hashlib.sha256(f"{self.seed}:{key}:{nth}".encode()).digest()
        roll = int.from_bytes(digest[:8], "big") / 2**64
        if roll >= self.failure_rate:
            return ANSWERED
        return ("500", "429", HANG)[int(roll / self.failure_rate * 3) % 3]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        key = request.headers.get("Idempotency-Key", "?")
        record = self.records[key]
        choice = self._choose(key, len(record.outcomes))
        record.outcomes.append(choice)
        self.counts[choice] += 1
        if self.first_arrival is None:
            self.first_arrival = time.monotonic()
        if choice == "500":
            return web.json_response({"error": "internal"}, status=500)
        if choice == "429":
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1"})
        if choice == HANG:
            await asyncio.sleep(self.hang_seconds)  # the daemon gave up long ago
            return web.json_response({"id": f"late-{key}"})
        return web.json_response({"id": f"pp-{key}", "url": f"https://fake.test/p/{key}"})

    async def __aenter__(self) -> FakePlatform:
        app = web.Application()
        app.router.add_post("/publish", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
