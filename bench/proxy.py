"""A PostgreSQL wire-protocol proxy that counts what the daemon sends.

The daemon connects to ``127.0.0.1:<port>`` (``sslmode=disable``); the proxy forwards
every byte to the real server (TCP or Unix socket) and reads the client's messages on
the way: ``Q`` (simple query) and ``E`` (execute) are statements, attributed to their
SQL text through ``P``arse and ``B``ind; ``S`` (sync) and ``Q`` end a round trip, and
so does a ``H`` (flush) after Parse/Describe: a *prepare* round trip (asyncpg's, on the
first use of a statement on a connection). Nothing is changed in flight.

This works with any server (no ``pg_stat_statements`` needed) and sees only the
daemon's traffic, not the bench's own inserts and checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from scheduler_daemon.db.sql import QUERIES

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104
_SPACE = re.compile(r"\s+")


def _normal(sql: str) -> str:
    return _SPACE.sub(" ", sql).strip().rstrip(";").strip()


_NAMES = {_normal(text): name for name, text in QUERIES.items()}
# Statements asyncpg sends by itself, by how they start.
_ASYNCPG = {
    "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL": "asyncpg pool reset on release",
    "WITH RECURSIVE typeinfo_tree": "asyncpg type introspection",
    "SELECT current_setting('jit')": "asyncpg introspection: jit off",
    "SELECT set_config('jit'": "asyncpg introspection: jit restore",
}


def query_name(sql: str) -> str:
    """The db/sql/*.sql name of ``sql``, asyncpg's own by name, else its first 60 characters."""
    text = _normal(sql)
    if text in _NAMES:
        return _NAMES[text]
    for prefix, name in _ASYNCPG.items():
        if text.startswith(prefix):
            return name
    return text[:60]


@dataclass
class Counts:
    statements: Counter[str] = field(default_factory=Counter)
    round_trips: Counter[str] = field(default_factory=Counter)  # by the statement that ended it
    prepare_round_trips: int = 0
    connections: int = 0

    @property
    def total_statements(self) -> int:
        return sum(self.statements.values())

    @property
    def total_round_trips(self) -> int:
        return sum(self.round_trips.values()) + self.prepare_round_trips

    def as_dict(self) -> dict[str, object]:
        return {
            "statements": self.total_statements,
            "round_trips": self.total_round_trips,
            "prepare_round_trips": self.prepare_round_trips,
            "statements_by_query": dict(self.statements.most_common()),
            "round_trips_by_query": dict(self.round_trips.most_common()),
            "connections_opened": self.connections,
        }


class _ClientStream:
    """Parses one connection's client → server messages into the proxy's current counts."""

    def __init__(self, proxy: CountingProxy) -> None:
        self.proxy = proxy
        self.buffer = bytearray()
        self.statements: dict[bytes, str] = {}  # prepared statement name -> SQL
        self.portals: dict[bytes, str] = {}  # portal name -> SQL
        self.executed: list[str] = []  # statements in the current round trip

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 5:
            kind = bytes(self.buffer[0:1])
            (length,) = struct.unpack_from("!i", self.buffer, 1)
            if len(self.buffer) < 1 + length:
                return
            body = bytes(self.buffer[5 : 1 + length])
            del self.buffer[: 1 + length]
            self._message(kind, body)

    def _message(self, kind: bytes, body: bytes) -> None:
        counts = self.proxy.counts
        if kind == b"P":
            statement_name, rest = body.split(b"\0", 1)
            self.statements[statement_name] = rest.split(b"\0", 1)[0].decode(errors="replace")
        elif kind == b"B":
            portal, statement, _ = body.split(b"\0", 2)
            self.portals[portal] = self.statements.get(statement, "?")
        elif kind == b"E":
            portal = body.split(b"\0", 1)[0]
            name = query_name(self.portals.get(portal, "?"))
            counts.statements[name] += 1
            self.executed.append(name)
        elif kind == b"S":
            if self.executed:
                counts.round_trips[self.executed[-1]] += 1
            else:
                counts.prepare_round_trips += 1
            self.executed = []
        elif kind == b"H" and not self.executed:
            counts.prepare_round_trips += 1  # Parse/Describe/Flush: waits for the description
        elif kind == b"Q":
            name = query_name(body.rstrip(b"\0").decode(errors="replace"))
            counts.statements[name] += 1
            counts.round_trips[name] += 1


@dataclass(frozen=True)
class Upstream:
    host: str | None  # None with a Unix socket
    port: int
    socket_path: str | None

    @classmethod
    def from_dsn(cls, dsn: str) -> Upstream:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        port = int(query.get("port", [str(parts.port or 5432)])[0])
        host = query.get("host", [parts.hostname or ""])[0]
        if host.startswith("/"):
            return cls(None, port, f"{host}/.s.PGSQL.{port}")
        return cls(host or "127.0.0.1", port, None)


class CountingProxy:
    """``async with CountingProxy(dsn) as proxy``: ``proxy.dsn`` goes through it."""

    def __init__(self, dsn: str) -> None:
        self.upstream_dsn = dsn
        self.upstream = Upstream.from_dsn(dsn)
        self.counts = Counts()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def dsn(self) -> str:
        parts = urlsplit(self.upstream_dsn)
        auth = parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@127.0.0.1:{self.port}" if auth else f"127.0.0.1:{self.port}"
        return f"postgresql://{netloc}{parts.path}?sslmode=disable"

    def reset(self) -> Counts:
        """Start counting afresh; returns the counts so far."""
        counts, self.counts = self.counts, Counts()
        return counts

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        startup = await self._startup(reader, writer)
        if startup is None:
            return
        up = self.upstream
        if up.socket_path is not None:
            up_reader, up_writer = await asyncio.open_unix_connection(up.socket_path)
        else:
            assert up.host is not None
            up_reader, up_writer = await asyncio.open_connection(up.host, up.port)
        self.counts.connections += 1
        up_writer.write(startup)
        stream = _ClientStream(self)
        try:
            async with asyncio.TaskGroup() as pumps:
                pumps.create_task(self._pump(reader, up_writer, stream))
                pumps.create_task(self._pump(up_reader, writer, None))
        except* (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            up_writer.close()

    async def _startup(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        """The client's StartupMessage, answering 'N' to SSL/GSS encryption requests."""
        while True:
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            rest = await reader.readexactly(length - 8)
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                writer.write(b"N")
                await writer.drain()
                continue
            if code == 80877102:  # CancelRequest: not forwarded
                return None
            return head + rest

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, stream: _ClientStream | None) -> None:
        while data := await source.read(1 << 16):
            if stream is not None:
                stream.feed(data)
            sink.write(data)
            await sink.drain()
        sink.close()
