"""Local servers for the hostile suite: an internal target that counts what reaches it, a
redirector, endpoints that trickle or never stop answering, a Mastodon instance and a
Bluesky PDS that behave like the documented APIs, and the bystander tenant whose post
must go out once and on time whatever the hostile tenant does."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from scheduler_daemon.testing.receiver import Receiver
from support.helpers import Watcher, insert_post, make_user

SECRET = {"AccessKeyId": "ASIA-TEST", "SecretAccessKey": "internal-secret-do-not-leak"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An aiohttp.web server on ``host``; ``hits`` lists every request's path that reached it."""

    def __init__(self, host: str = "127.0.0.1", routes: dict[str, Handler] | None = None, port: int = 0) -> None:
        self.host = host
        self.port = port
        self.routes = routes or {}
        self.hits: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Server:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{'[' + self.host + ']' if ':' in self.host else self.host}:{self.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path_qs)
        for prefix, handler in self.routes.items():
            if request.path.startswith(prefix):
                return await handler(request)
        return web.json_response(SECRET)  # what an internal service would hand out


def redirector(host: str = "127.0.0.1") -> Server:
    """``/hop/<n>?to=<url>``: n redirects (alternating 301/302/307) ending at ``to``."""

    async def hop(request: web.Request) -> web.StreamResponse:
        n = int(request.path.rsplit("/", 1)[1])
        to = request.query["to"]
        if n <= 1:
            raise web.HTTPFound(to)
        step = (web.HTTPMovedPermanently, web.HTTPFound, web.HTTPTemporaryRedirect)[n % 3]
        raise step(f"/hop/{n - 1}?to={to}")

    return Server(host, {"/hop/": hop})


async def trickle(request: web.Request) -> web.StreamResponse:
    """A valid answer that trickles one byte every 0.5 s, far longer than any deadline."""
    await request.read()
    response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "100000"})
    await response.prepare(request)
    try:
        for _ in range(100_000):
            await response.write(b" ")
            await asyncio.sleep(0.5)
    except (ConnectionError, RuntimeError):
        pass
    return response


def endless(content_type: str, total: int = 300 * 1024 * 1024) -> Handler:
    """An answer of ``total`` bytes (300 MiB) sent as fast as read, with no declared length."""

    async def serve(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        block = b"9" * (256 * 1024)
        try:
            for _ in range(total // len(block)):
                await response.write(block)
        except (ConnectionError, RuntimeError):
            pass
        return response

    return serve


class Mastodon(Server):
    """A Mastodon instance: ``POST /api/v2/media`` (200, processed at once) and
    ``POST /api/v1/statuses``; ``uploads`` (file sizes) and ``statuses`` keep what it got."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host, {"/api/v2/media": self.media, "/api/v1/statuses": self.status})
        self.uploads: list[int] = []
        self.statuses: list[dict[str, Any]] = []

    async def media(self, request: web.Request) -> web.StreamResponse:
        upload = (await request.post())["file"]
        assert isinstance(upload, web.FileField)
        self.uploads.append(len(upload.file.read()))
        return web.json_response({"id": f"m{len(self.uploads)}", "type": "image"})

    async def status(self, request: web.Request) -> web.StreamResponse:
        self.statuses.append(await request.json())
        return web.json_response({"id": f"s{len(self.statuses)}", "url": f"{self.url}/@a/s{len(self.statuses)}"})


class Bystander:
    """Another tenant, with a webhook on 127.0.0.1: its post is due with the hostile one."""

    def __init__(self, db: asyncpg.Connection, receiver: Receiver) -> None:
        self.db = db
        self.receiver = receiver
        self.post: uuid.UUID | None = None
        self.due: dt.datetime | None = None

    async def schedule(self, due: dt.datetime) -> uuid.UUID:
        campaign, _ = await make_user(self.db, "webhook", metadata={"url": self.receiver.url + "/hook"})
        self.due = due
        self.post = await insert_post(self.db, campaign, due, content="bystander")
        return self.post

    async def published_once_on_time(self, watcher: Watcher) -> float:
        """Wait for the post; assert one delivery within a second of its instant; the lateness."""
        assert self.post is not None and self.due is not None
        await watcher.wait(self.post, "published", timeout=15)
        mine = [a for a in self.receiver.arrivals if json.loads(a.body).get("post_id") == str(self.post)]
        assert len(mine) == 1, f"the bystander's post arrived {len(mine)} times"
        lateness = mine[0].wall - self.due.timestamp()
        assert -0.05 <= lateness < 1.0, f"the bystander's post was {lateness:+.3f} s off its instant"
        return lateness
