"""The webhook receiver, in its own process, recording when each request arrived.

Run as ``python -m bench.receiver [--kind fast|aiohttp]``. It prints ``{"port": N}`` on
stdout, then answers commands, one JSON object per line on stdin, with one JSON line
each on stdout:

* ``{"cmd": "wait", "count": N, "timeout": T}``: when at least N requests arrived (or T
  seconds passed): ``{"ok": bool, "arrivals": [[key, wall], ...]}``;
* ``{"cmd": "reset"}``: forget the arrivals.

``key`` is the request's ``Idempotency-Key`` header (the post id for the webhook
adapter), ``wall`` is ``time.time()`` once the whole request was read. It binds
127.0.0.1 only. ``fast`` is a small HTTP/1.1 keep-alive server on ``asyncio.Protocol``
(uvloop when installed); ``aiohttp`` is the test suite's ``Receiver``, to show whether
the receiver limits the numbers.

``ReceiverProcess`` is the bench's handle on such a process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from typing import Any, cast

from .tally import Tally

REPLY_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "


@dataclass(frozen=True)
class Arrival:
    key: str
    wall: float


class Recorder:
    """The arrivals, and waiters woken when enough have come."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, float]] = []
        self._count = Tally()

    def add(self, key: str, wall: float) -> int:
        self.arrivals.append((key, wall))
        self._count.add()
        return len(self.arrivals)

    async def wait(self, count: int, timeout: float) -> bool:
        return await self._count.reach(count, timeout)

    def reset(self) -> None:
        self.arrivals = []
        self._count = Tally()


class FastHttp(asyncio.Protocol):
    """HTTP/1.1 with Content-Length bodies and keep-alive: what the clients here send."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.buffer = bytearray()
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            length, key = 0, ""
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name == b"content-length":
                    length = int(value)
                elif name == b"idempotency-key":
                    key = value.strip().decode()
                elif name == b"transfer-encoding":
                    self._answer(b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\n\r\n")
                    self.buffer.clear()
                    return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            count = self.recorder.add(key, time.time())
            body = b'{"id":"r-%d"}' % count
            self._answer(REPLY_HEAD + str(len(body)).encode() + b"\r\n\r\n" + body)

    def _answer(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)


async def _serve_fast(recorder: Recorder) -> tuple[int, Any]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FastHttp(recorder), "127.0.0.1", 0, backlog=4096)
    port: int = server.sockets[0].getsockname()[1]
    return port, server


async def _serve_aiohttp(recorder: Recorder) -> tuple[int, Any]:
    from scheduler_daemon.testing.receiver import Arrival as TestArrival
    from scheduler_daemon.testing.receiver import Receiver, Reply

    def reply(arrival: TestArrival) -> Reply:
        count = recorder.add(arrival.headers.get("idempotency-key", ""), arrival.wall)
        return Reply(200, {"id": f"r-{count}"})

    receiver = Receiver(reply)
    await receiver.__aenter__()
    return receiver.port, receiver


async def _main(kind: str) -> None:
    recorder = Recorder()
    port, _server = await (_serve_fast(recorder) if kind == "fast" else _serve_aiohttp(recorder))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    say({"port": port})
    while line := await reader.readline():
        command = json.loads(line)
        if command["cmd"] == "wait":
            ok = await recorder.wait(int(command["count"]), float(command["timeout"]))
            say({"ok": ok, "arrivals": recorder.arrivals})
        elif command["cmd"] == "reset":
            recorder.reset()
            say({"ok": True})
        else:
            say({"ok": False, "error": f"unknown command {command['cmd']!r}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=("fast", "aiohttp"), default="fast")
    parser.add_argument("--loop", choices=("auto", "asyncio"), default="auto")
    args = parser.parse_args()
    if args.loop == "auto":
        try:
            import uvloop

            uvloop.run(_main(args.kind))
            return
        except ImportError:
            pass
    asyncio.run(_main(args.kind))


class ReceiverProcess:
    """``async with ReceiverProcess() as rx``: a receiver process and its port."""

    def __init__(self, kind: str = "fast") -> None:
        self.kind = kind
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ReceiverProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.receiver", "--kind", self.kind,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26,
        )
        hello = await self._read(timeout=30)
        self.port = int(hello["port"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the receiver process ended")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def _ask(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self._proc.stdin.drain()
        return await self._read(timeout)

    async def wait(self, count: int, timeout: float) -> tuple[bool, list[Arrival]]:
        """Wait for ``count`` arrivals; (all came, the arrivals so far)."""
        reply = await self._ask({"cmd": "wait", "count": count, "timeout": timeout}, timeout + 30)
        return bool(reply["ok"]), [Arrival(str(k), float(w)) for k, w in reply["arrivals"]]

    async def reset(self) -> None:
        await self._ask({"cmd": "reset"}, 30)


if __name__ == "__main__":
    main()
