"""A bare HTTP client in its own process, for the concurrency model (scenario 11).

``python -m bench.clients CLIENT URL --requests N --concurrency C [--cafile PEM]``:
prints ``{"ready": true}`` once its client is built, waits for a ``go`` line on stdin,
sends N webhook-shaped POSTs (bodies made beforehand), C at a time (all at once when
C ≥ N), on uvloop (as the daemon runs when it is installed) unless ``--loop asyncio``;
prints ``{"wall_s", "cpu_s", "errors", "versions", "first_error"}``, and exits
when stdin closes (so that its parent can read its peak memory first).

Clients: ``aiohttp`` (HTTP/1.1, one connection per request in flight), ``daemon-transport``
(httpx on the daemon's aiohttp transport, what the daemon sends with), ``httpx-h1``
(httpx's own transport) and ``httpx-h2`` (httpx's own transport with HTTP/2: one
connection per host, multiplexed).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import ssl
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

CLIENTS = ("aiohttp", "daemon-transport", "httpx-h1", "httpx-h2")

Send = Callable[[bytes, dict[str, str]], Awaitable[str]]


def _requests(count: int) -> list[tuple[bytes, dict[str, str]]]:
    from .scenarios.burst import requests

    return requests(count)


async def _run(args: argparse.Namespace) -> None:
    import aiohttp
    import httpx

    context = ssl.create_default_context(cafile=args.cafile) if args.cafile else ssl.create_default_context()
    limit = args.concurrency
    closers: list[Callable[[], Awaitable[None]]] = []
    send: Send
    if args.client == "aiohttp":
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, ssl=context))
        closers.append(session.close)

        async def send(body: bytes, headers: dict[str, str]) -> str:
            async with session.post(args.url, data=body, headers=headers) as response:
                await response.read()
                version = response.version
                return f"HTTP/{version.major}.{version.minor}" if version else "unknown"
    else:
        limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
        transport: httpx.AsyncBaseTransport | None = None
        if args.client == "daemon-transport":
            from .transports import DAEMON_TRANSPORT, make

            transport = make(DAEMON_TRANSPORT, limit)  # trusts SSL_CERT_FILE, as the daemon does
        client = httpx.AsyncClient(transport=transport, verify=context, limits=limits, timeout=120.0,
                                   http2=args.client == "httpx-h2")
        closers.append(client.aclose)

        async def send(body: bytes, headers: dict[str, str]) -> str:
            response = await client.post(args.url, content=body, headers=headers)
            return response.http_version

    batch = _requests(args.requests)
    versions: Counter[str] = Counter()
    errors: list[str] = []

    async def one(body: bytes, headers: dict[str, str]) -> None:
        try:
            versions[await send(body, headers)] += 1
        except Exception as exc:  # reported, counted
            errors.append(f"{type(exc).__name__}: {exc}"[:300])

    async def worker(pending: Any) -> None:
        for body, headers in pending:
            await one(body, headers)

    say({"ready": True})
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    cpu, began = time.process_time(), time.perf_counter()
    if limit >= len(batch):
        await asyncio.gather(*(one(b, h) for b, h in batch))
    else:
        pending = iter(batch)
        await asyncio.gather(*(worker(pending) for _ in range(limit)))
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    say({"wall_s": round(wall, 4), "cpu_s": round(cpu, 4), "errors": len(errors), "versions": dict(versions),
         "first_error": errors[0] if errors else None, "loop": type(asyncio.get_running_loop()).__module__})
    for close in closers:
        await close()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("client", choices=CLIENTS)
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--cafile")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="uvloop (as the daemon runs when it is installed) or asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is not None:
        import uvloop

        uvloop.run(_run(args))
    else:
        asyncio.run(_run(args))


class ClientProcess:
    """``async with ClientProcess(...) as c``: spawned and ready; ``await c.go()`` starts the
    requests, ``await c.result()`` waits for its figures."""

    def __init__(self, client: str, url: str, requests: int, concurrency: int, cafile: str | None) -> None:
        self.argv = [sys.executable, "-m", "bench.clients", client, url, "--requests", str(requests),
                     "--concurrency", str(concurrency), *(["--cafile", cafile] if cafile else [])]
        self.env = {"SSL_CERT_FILE": cafile} if cafile else {}
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def __aenter__(self) -> ClientProcess:
        import os

        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **self.env}, limit=1 << 20)
        await self._line(60)
        return self

    async def _line(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.argv[3]} client ended early (status {await self.proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def go(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()

    async def result(self, timeout: float = 300) -> dict[str, Any]:
        return await self._line(timeout)

    async def __aexit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                async with asyncio.timeout(30):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


if __name__ == "__main__":
    main()
