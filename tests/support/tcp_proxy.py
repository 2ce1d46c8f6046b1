"""A small TCP proxy in front of PostgreSQL for fault tests.

``Proxy(dsn)`` listens on 127.0.0.1 and forwards each connection to the server of
``dsn`` (TCP, or the Unix socket of an embedded server); ``proxy.dsn`` is the same
database reached through the proxy. Faults:

* ``freeze(pred)``: the matching links stop forwarding in both directions *without
  closing*: a half-open connection, as after a NAT timeout or a dead peer;
* ``cut()``: the matching links are closed abruptly (RST), as when a server or a
  middlebox drops every connection;
* ``refuse = True``: new connections are closed at once (the database is unreachable).

Each link remembers the start of what the client sent, so a test can pick the daemon's
LISTEN connection (``link.listens``). ``wait_for`` waits on a condition over the links
without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

SNIFF_BYTES = 1 << 16


def upstream_of(dsn: str) -> tuple[str, str | int]:
    """("unix", path) or ("tcp", "host:port") for the server a DSN points at."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    host = (query.get("host") or [parts.hostname or "localhost"])[0]
    port = int((query.get("port") or [parts.port or 5432])[0])
    if host.startswith("/"):
        return "unix", f"{host}/.s.PGSQL.{port}"
    return "tcp", f"{host}:{port}"


def through(dsn: str, port: int) -> str:
    """``dsn`` rewritten to reach the same database via 127.0.0.1:``port`` (no TLS)."""
    parts = urlsplit(dsn)
    query = {k: v[0] for k, v in parse_qs(parts.query).items() if k not in ("host", "port", "sslmode")}
    query["sslmode"] = "disable"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), ""))


class Link:
    """One proxied connection."""

    def __init__(self, number: int, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.number = number
        self.client = client
        self.server = server
        self.sent = bytearray()  # the start of what the client sent
        self.thawed = asyncio.Event()
        self.thawed.set()
        self.closed = False

    @property
    def frozen(self) -> bool:
        return not self.thawed.is_set()

    @property
    def listens(self) -> bool:
        """True for the daemon's LISTEN connection."""
        return b'LISTEN "scheduler_daemon"' in self.sent or b"LISTEN scheduler_daemon" in self.sent

    def note(self, data: bytes) -> None:
        if len(self.sent) < SNIFF_BYTES:
            self.sent += data[: SNIFF_BYTES - len(self.sent)]

    def abort(self) -> None:
        self.closed = True
        for writer in (self.client, self.server):
            with contextlib.suppress(Exception):
                sock = writer.get_extra_info("socket")
                if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                    # linger 0: close with a RST, like a crashed peer or a middlebox
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            writer.transport.abort()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "frozen" if self.frozen else "open"
        return f"<Link {self.number} {state}{' LISTEN' if self.listens else ''}>"


class Proxy:
    def __init__(self, dsn: str) -> None:
        self.target_dsn = dsn
        self.kind, self.address = upstream_of(dsn)
        self.links: list[Link] = []
        self.refuse = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def dsn(self) -> str:
        return through(self.target_dsn, self.port)

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for link in self.links:
            link.abort()
            link.thawed.set()  # let a frozen pump see the link is closed and end
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    # -- faults ---------------------------------------------------------------------

    def freeze(self, pred: Callable[[Link], bool] = lambda link: True) -> list[Link]:
        chosen = [link for link in self.links if not link.closed and pred(link)]
        for link in chosen:
            link.thawed.clear()
        return chosen

    def thaw(self) -> None:
        for link in self.links:
            link.thawed.set()

    def cut(self, pred: Callable[[Link], bool] = lambda link: True) -> list[Link]:
        chosen = [link for link in self.links if not link.closed and pred(link)]
        for link in chosen:
            link.abort()
        return chosen

    def live(self, pred: Callable[[Link], bool] = lambda link: True) -> list[Link]:
        return [link for link in self.links if not link.closed and not link.frozen and pred(link)]

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``condition()`` is truthy (re-checked on every link event); returns it."""
        async with asyncio.timeout(timeout), self._changed:
            result = condition()
            while not result:
                await self._changed.wait()
                result = condition()
            return result

    # -- forwarding -----------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        try:
            if self.kind == "unix":
                up_reader, up_writer = await asyncio.open_unix_connection(str(self.address))
            else:
                host, _, port = str(self.address).rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.transport.abort()
            return
        link = Link(len(self.links), writer, up_writer)
        self.links.append(link)
        await self._notify()
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, link, upstream=True),
                self._pump(up_reader, writer, link, upstream=False),
            )
        finally:
            self._tasks.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link, *, upstream: bool
    ) -> None:
        try:
            while not link.closed:
                data = await reader.read(65536)
                if not data:
                    break
                if upstream:
                    link.note(data)
                    if link.listens:
                        await self._notify()
                await link.thawed.wait()  # frozen: hold the bytes, read no more, close nothing
                if link.closed:
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if not link.frozen and not link.closed:
                link.abort()
                await self._notify()
