"""httpx's transport seam on aiohttp's connection pool.

Adapters speak httpx (``AsyncClient`` injected, ``MockTransport`` in tests); only the
bytes on the wire go through aiohttp, which under concurrency costs a fraction of the CPU
of httpx's default transport (bench/RESULTS.md, burst). ``SCHEDULER_HTTP_TRANSPORT=httpx``
switches back.

Exceptions are mapped by whether the request can have reached the platform, because the
daemon retries only what certainly did not (``platforms/http.py``):

* could not connect (refused, DNS, TLS handshake), or no pooled connection in time →
  ``httpx.ConnectError`` / ``httpx.ConnectTimeout`` / ``httpx.PoolTimeout``: not sent;
* anything after the request started to go out (timeout waiting for the answer, reset,
  disconnect, malformed answer) → ``httpx.ReadTimeout`` / ``httpx.ReadError`` /
  ``httpx.RemoteProtocolError``: the outcome is unknown.

(httpx-aiohttp maps ``ServerDisconnectedError`` and ``ClientOSError`` to ``ConnectTimeout``,
i.e. "not sent", which would turn a lost answer into a duplicate post; hence this module.)
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import aiohttp
import httpx

_DROP = frozenset({"content-length", "transfer-encoding"})  # aiohttp frames the body itself


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int = 100, keepalive_seconds: float = 15.0) -> None:
        self.max_connections = max_connections
        self.keepalive_seconds = keepalive_seconds
        # Now, not at the first request: loading the CA store takes ~15 ms.
        self._ssl = ssl.create_default_context()
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Opened at the first request: a session belongs to the running event loop.
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, keepalive_timeout=self.keepalive_seconds, ssl=self._ssl
        )
        # Cookies are per platform account, never shared between posts.
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _DROP]
        try:
            response = await session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                auto_decompress=False,  # httpx decodes Content-Encoding itself
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
                timeout=aiohttp.ClientTimeout(
                    connect=timeout.get("pool"), sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
                ),
            )
        except Exception as exc:
            raise _mapped(exc, request) from exc
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Body(httpx.AsyncByteStream):
    """The answer's body, streamed (media downloads stop at their size cap)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self.response = response
        self.request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_chunked(64 * 1024):
                yield chunk
        except Exception as exc:
            raise _mapped(exc, self.request) from exc

    async def aclose(self) -> None:
        self.response.release()


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
