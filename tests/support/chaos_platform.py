"""The chaos suite's fake platforms, on one local server, each keeping its own record of
what it created for which post.

* ``POST /publish``: a webhook receiver (does not deduplicate): every request that gets
  as far as the commit creates a message. The post id is its ``Idempotency-Key`` header.
* ``POST /api/v1/statuses``: a Mastodon instance (deduplicates): a request whose
  ``Idempotency-Key`` (``scheduler-<post id>``) it has seen within the hour gets the
  status created first, and creates nothing.

About ``failure_rate`` of the requests misbehave (``FAILURES``, in these shares): a 429
with ``Retry-After: 1`` and a plain 500, both before anything is created; and the failure
that hurts most, half of them: the create is **committed, then** answered 502 (a gateway)
or never answered (the client's request deadline ends it). The choice is a pure function
of (seed, platform, post id, how many requests for that post came before), so a run is
reproducible from its seed.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from aiohttp import web

OK = "200"
COMMITTED_502 = "502 after commit"
COMMITTED_HANG = "no answer after commit"
FAILURES = (("429", 0.3), ("500", 0.2), (COMMITTED_502, 0.25), (COMMITTED_HANG, 0.25))
COMMITTED = frozenset({OK, COMMITTED_502, COMMITTED_HANG})
KEY_SECONDS = 3600.0  # Mastodon keeps an Idempotency-Key this long
KEY_PREFIX = "scheduler-"


@dataclass
class Record:
    """What one post's requests met (in order, with their monotonic arrival time) and the
    ids of what they created: more than one is a duplicate."""

    outcomes: list[tuple[float, str]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    def after(self, moment: float) -> list[str]:
        return [choice for at, choice in self.outcomes if at >= moment]


class ChaosPlatforms:
    def __init__(self, *, seed: int, failure_rate: float = 0.10, hang_seconds: float = 120.0) -> None:
        self.seed = seed
        self.failure_rate = failure_rate
        self.hang_seconds = hang_seconds
        self.records: dict[str, dict[str, Record]] = {"webhook": defaultdict(Record), "mastodon": defaultdict(Record)}
        self.counts: Counter[str] = Counter()
        self._keys: dict[str, tuple[float, str]] = {}  # Mastodon: key -> (stored at, status id)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _choose(self, platform: str, key: str, nth: int) -> str:
        digest = hashlib.sha256(f"{self.seed}:{platform}:{key}:{nth}".encode()).digest()
        roll = int.from_bytes(digest[:8], "big") / 2**64
        if roll >= self.failure_rate:
            return OK
        share = roll / self.failure_rate
        for choice, part in FAILURES:
            if share < part:
                return choice
            share -= part
        return FAILURES[-1][0]

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        key = request.headers.get("Idempotency-Key", "?")
        record = self.records["webhook"][key]
        choice = self._note("webhook", record, key)
        if choice in COMMITTED:
            record.created.append(f"pp-{key}" if not record.created else f"pp-{key}-{len(record.created) + 1}")
        return await self._answer(choice, {"id": record.created[-1] if record.created else None,
                                           "url": f"https://fake.test/p/{key}"})

    async def _mastodon(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        key = request.headers.get("Idempotency-Key", "?")
        post = key.removeprefix(KEY_PREFIX)
        record = self.records["mastodon"][post]
        choice = self._note("mastodon", record, post)
        now = time.monotonic()
        if choice in COMMITTED:
            stored = self._keys.get(key)
            if stored is None or now - stored[0] > KEY_SECONDS:
                status_id = f"st-{post}" if not record.created else f"st-{post}-{len(record.created) + 1}"
                record.created.append(status_id)
                self._keys[key] = (now, status_id)
        status = self._keys.get(key)
        return await self._answer(choice, {"id": status[1] if status else None,
                                           "url": f"https://mastodon.test/@u/{post}"})

    async def _instance(self, _request: web.Request) -> web.StreamResponse:
        """The instance's public description: its limits (never failed: it is no create)."""
        return web.json_response({"configuration": {"statuses": {"max_characters": 500,
                                                                 "max_media_attachments": 4}}})

    def _note(self, platform: str, record: Record, key: str) -> str:
        choice = self._choose(platform, key, len(record.outcomes))
        record.outcomes.append((time.monotonic(), choice))
        self.counts[f"{platform} {choice}"] += 1
        return choice

    async def _answer(self, choice: str, body: dict[str, object]) -> web.StreamResponse:
        if choice == "429":
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1"})
        if choice == "500":
            return web.json_response({"error": "internal"}, status=500)
        if choice == COMMITTED_502:
            return web.json_response({"error": "bad gateway"}, status=502)
        if choice == COMMITTED_HANG:
            await asyncio.sleep(self.hang_seconds)  # the client's request deadline ends it long before
        return web.json_response(body)

    async def __aenter__(self) -> ChaosPlatforms:
        app = web.Application()
        app.router.add_post("/publish", self._webhook)
        app.router.add_post("/api/v1/statuses", self._mastodon)
        app.router.add_get("/api/v2/instance", self._instance)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
