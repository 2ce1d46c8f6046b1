"""httpx's transport seam on aiohttp's connection pool, with the outbound rules enforced.

Adapters speak httpx (``AsyncClient`` injected, ``MockTransport`` in tests); only the
bytes on the wire go through aiohttp, which under concurrency costs a fraction of the CPU
of httpx's default transport (bench/RESULTS.md, burst). ``outbound_client`` builds the one
client every adapter shares.

Every request through ``AiohttpTransport``:

* connects only where ``guard.Guard`` allows. An IP literal is checked as it is; a name
  is resolved once per new connection by ``GuardedResolver``, which hands aiohttp only the
  addresses that passed, so the socket goes to exactly an address that was checked (no
  DNS rebinding);
* ends within its deadline, from connect to the last byte of the answer: httpx's timeout
  is a total here (its ``pool`` and ``connect`` values also bound the connect phase), so
  an endpoint that trickles bytes cannot hold a request longer;
* reads at most ``max_answer_bytes`` (1 MiB) of answer, or what the request's
  ``MAX_BYTES`` extension says (media): past it, ``ResponseTooLarge`` and nothing more is
  read. An API answer (no ``MAX_BYTES``) is read whole before the response is returned,
  under the same deadline (one timeout scope, not one per chunk plus httpx's streaming
  layers: a burst reads 5,000 small answers); media stays streamed. The count is of
  decoded bytes: gzip and deflate are undone here by aiohttp's bounded decompressor, never
  by httpx afterwards;
* never follows a redirect (media downloads follow theirs through this transport, hop by
  hop: ``engine/media.py``);
* sends a request body that is a stream (a video upload: ``content=media_file.chunks()``,
  or ``files=`` with a file object) as a stream, with its ``Content-Length`` when it has
  one: an upload is never read into memory.

(httpx's own transport cannot give these guarantees without replacing private parts of
it: httpx 0.28 has no public way to set httpcore's network backend, and it decodes
Content-Encoding after the transport, unbounded. So it is not offered.)

Exceptions are mapped by whether the request can have reached the platform, because the
daemon retries only what certainly did not (``platforms/_http.py``):

* refused by the guard → ``AddressNotAllowedError``: nothing was sent;
* could not connect (refused, DNS, TLS handshake), no pooled connection in time, or the
  deadline passed before a connection was made → ``httpx.ConnectError`` /
  ``httpx.ConnectTimeout`` / ``httpx.PoolTimeout``: not sent;
* anything once a connection was made (the deadline, a reset, a disconnect, a malformed
  or oversized answer) → ``httpx.ReadTimeout`` / ``httpx.ReadError`` /
  ``httpx.RemoteProtocolError`` / ``ResponseTooLarge``: the outcome is unknown.

(httpx-aiohttp maps ``ServerDisconnectedError`` and ``ClientOSError`` to ``ConnectTimeout``,
i.e. "not sent", which would turn a lost answer into a duplicate post; hence this module.)
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextvars import ContextVar

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from ..config import Settings
from ..errors import AddressNotAllowedError
from .guard import Guard

__all__ = [
    "API_ANSWER_BYTES", "MAX_BYTES", "AiohttpTransport", "GuardedResolver", "ResponseTooLarge", "outbound_client",
]

MAX_BYTES = "scheduler_daemon.max_bytes"  # request extension: the most answer to read
API_ANSWER_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
# aiohttp frames the body itself; Accept-Encoding is ours to choose (what aiohttp decodes).
_DROP = frozenset({"content-length", "transfer-encoding", "accept-encoding"})
_PASSED_MAX = 4096
_DECODED = frozenset({"gzip", "deflate", "br", "zstd"})  # aiohttp undoes these itself


class ResponseTooLarge(httpx.TransportError):
    """The answer went past the request's size cap; the rest was never read."""

    def __init__(self, limit: int, request: httpx.Request) -> None:
        super().__init__(f"the answer is larger than {limit} bytes", request=request)
        self.limit = limit


class _Phase:
    """Whether the request got its connection: from then on it may have been sent."""

    __slots__ = ("connected",)

    def __init__(self) -> None:
        self.connected = False


_PHASE: ContextVar[_Phase | None] = ContextVar("scheduler_daemon_request_phase", default=None)


class _Connector(aiohttp.TCPConnector):
    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[aiohttp.tracing.Trace], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.connector.Connection:
        connection = await super().connect(req, traces, timeout)
        phase = _PHASE.get()
        if phase is not None:
            phase.connected = True
        return connection


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, filtered by the guard: what it returns is what gets connected to."""

    def __init__(self, guard: Guard, inner: AbstractResolver | None = None) -> None:
        self.guard = guard
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = aiohttp.DefaultResolver()  # made here: it wants the running loop
        results = await self._inner.resolve(host, port, family)
        if self.guard.trusts(host, port):
            return results
        allowed = set(self.guard.resolved(host, port, [r["host"] for r in results]))
        return [r for r in results if r["host"] in allowed]

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_seconds: float = 15.0,
        guard: Guard | None = None,
        resolver: AbstractResolver | None = None,
        max_answer_bytes: int = API_ANSWER_BYTES,
    ) -> None:
        self.max_connections = max_connections
        self.keepalive_seconds = keepalive_seconds
        self.guard = guard if guard is not None else Guard()  # default: public addresses only
        self.max_answer_bytes = max_answer_bytes
        self._resolver = resolver
        # Now, not at the first request: loading the CA store takes ~15 ms.
        self._ssl = ssl.create_default_context()
        self._session: aiohttp.ClientSession | None = None
        # Hosts and ports the guard let through as they are (a trusted origin, an allowed IP
        # literal, or a name: checked as it resolves). The guard never changes, so a verdict
        # that passed stands; bounded, as tenants choose the hosts.
        self._passed: set[tuple[str, int]] = set()
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        # Opened at the first request: a session belongs to the running event loop.
        connector = _Connector(
            limit=self.max_connections, keepalive_timeout=self.keepalive_seconds, ssl=self._ssl,
            resolver=GuardedResolver(self.guard, self._resolver),
        )
        # Cookies are per platform account, never shared between posts.
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        url = request.url
        host, port = url.raw_host.decode("ascii"), url.port or (443 if url.scheme == "https" else 80)
        if (host, port) not in self._passed:
            if not self.guard.trusts(host, port):
                self.guard.check_literal(host, port)  # a name is checked as it is resolved
            if len(self._passed) >= _PASSED_MAX:
                self._passed.clear()
            self._passed.add((host, port))
        timeout = request.extensions.get("timeout", {})
        limit: int = request.extensions.get(MAX_BYTES, self.max_answer_bytes)
        total = max((t for t in timeout.values() if t is not None), default=None)
        deadline = None if total is None else asyncio.get_running_loop().time() + total
        body: bytes | AsyncIterator[bytes]
        try:
            body, drop = request.content, _DROP  # in memory: aiohttp frames it
        except httpx.RequestNotRead:
            body, drop = _streamed(request), _DROP - {"content-length"}  # its length, where it has one
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in drop]
        headers.append(("Accept-Encoding", "gzip, deflate"))
        phase = _Phase()
        token = _PHASE.set(phase)
        scope = asyncio.timeout_at(deadline)
        try:
            async with scope:
                response = await session.request(
                    request.method,
                    str(url),
                    headers=headers,
                    data=body or None,
                    allow_redirects=False,
                    skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
                    timeout=self._timeout(timeout.get("pool"), timeout.get("connect")),
                )
        except AddressNotAllowedError:
            raise
        except Exception as exc:
            raise _late(phase.connected, request) if scope.expired() else _mapped(exc, request) from exc
        finally:
            _PHASE.reset(token)
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit and request.method != "HEAD":
            response.close()
            raise ResponseTooLarge(limit, request)
        raw_headers = list(response.raw_headers)
        if response.headers.get("Content-Encoding", "").strip().lower() in _DECODED:
            raw_headers = [(k, v) for k, v in raw_headers if k.lower() not in (b"content-encoding", b"content-length")]
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()}
        if MAX_BYTES not in request.extensions:  # an API answer: read whole, now
            content = await _read_all(response, request, limit, deadline)
            return httpx.Response(
                response.status, headers=raw_headers, content=content, request=request, extensions=extensions
            )
        return httpx.Response(
            response.status,
            headers=raw_headers,
            stream=_Body(response, request, limit, deadline),
            request=request,
            extensions=extensions,
        )

    def _timeout(self, pool: float | None, connect: float | None) -> aiohttp.ClientTimeout:
        key = (pool, connect)
        made = self._timeouts.get(key)
        if made is None:
            made = self._timeouts[key] = aiohttp.ClientTimeout(connect=pool, sock_connect=connect)
        return made

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_all(
    response: aiohttp.ClientResponse, request: httpx.Request, limit: int, deadline: float | None
) -> bytes:
    """The whole answer, within its size cap and its request's deadline (as ``_Body``)."""
    parts: list[bytes] = []
    total = 0
    scope = asyncio.timeout_at(deadline)
    try:
        async with scope:
            while chunk := await response.content.read(_CHUNK):
                total += len(chunk)
                if total > limit:
                    raise ResponseTooLarge(limit, request)
                parts.append(chunk)
    except ResponseTooLarge:
        response.close()
        raise
    except Exception as exc:
        response.close()
        raise _late(True, request) if scope.expired() else _mapped(exc, request) from exc
    response.release()
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def _streamed(request: httpx.Request) -> AsyncIterator[bytes]:
    stream = request.stream
    assert isinstance(stream, httpx.AsyncByteStream), "the daemon's client is async"
    async for chunk in stream:
        yield chunk


class _Body(httpx.AsyncByteStream):
    """The answer's body, streamed until its size cap and its request's deadline."""

    def __init__(
        self, response: aiohttp.ClientResponse, request: httpx.Request, limit: int, deadline: float | None
    ) -> None:
        self.response = response
        self.request = request
        self.limit = limit
        self.deadline = deadline

    async def __aiter__(self) -> AsyncIterator[bytes]:
        total = 0
        while True:
            scope = asyncio.timeout_at(self.deadline)
            try:
                async with scope:
                    chunk = await self.response.content.read(_CHUNK)
            except Exception as exc:
                raise _late(True, self.request) if scope.expired() else _mapped(exc, self.request) from exc
            if not chunk:
                return
            total += len(chunk)
            if total > self.limit:
                raise ResponseTooLarge(self.limit, self.request)
            yield chunk

    async def aclose(self) -> None:
        self.response.release()  # closes the connection if the body was not read to its end


def _late(connected: bool, request: httpx.Request) -> Exception:
    if connected:
        return httpx.ReadTimeout("the answer did not arrive before the deadline", request=request)
    return httpx.ConnectTimeout("no connection before the deadline", request=request)


def _mapped(exc: Exception, request: httpx.Request) -> Exception:
    """The httpx exception for an aiohttp one (anything else: an unknown outcome)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.PoolTimeout(f"no connection in time: {exc}", request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(f"could not connect: {exc}", request=request)
    if isinstance(exc, (aiohttp.NonHttpUrlClientError, aiohttp.InvalidUrlClientError)):
        return httpx.UnsupportedProtocol(str(exc), request=request)
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return httpx.ReadTimeout(f"no answer in time: {exc}", request=request)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(f"malformed answer: {exc}", request=request)
    return httpx.ReadError(f"connection lost: {type(exc).__name__}: {exc}", request=request)


def outbound_client(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The client the adapters share: ``AiohttpTransport`` under the settings' guard, unless
    a transport is given (tests, benchmarks)."""
    if transport is None:
        urls = [*settings.platforms.api_bases.values(), settings.platforms.supabase_url]
        transport = AiohttpTransport(
            max_connections=settings.concurrency, guard=Guard.build(settings.allow_networks, urls)
        )
    return httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(settings.http_timeout_seconds), follow_redirects=False
    )
