"""The fake platforms, each in its own process, recording when each request arrived.

Run as ``python -m bench.receiver [--kind fast|graph|aiohttp] [options]``. It prints
``{"port": N}`` on stdout, then answers commands, one JSON object per line on stdin,
with one JSON line each on stdout:

* ``{"cmd": "wait", "count": N, "timeout": T}``: when at least N *final* requests
  arrived (or T seconds passed): ``{"ok": bool, "arrivals": [[key, wall], ...]}``;
* ``{"cmd": "reset"}``: forget the arrivals and the counts;
* ``{"cmd": "release"}``: answer every held request now (``--hold``), and hold no more;
* ``{"cmd": "hold"}``: hold the answers of the requests from now on;
* ``{"cmd": "stats"}``: ``{"calls": {route: n}, "connections": open, "max_connections": most open at once,
  "protocols": {"HTTP/1.1" | "HTTP/2": connections}}``.

Kinds:

* ``fast``: a small HTTP/1.1 keep-alive server on ``asyncio.Protocol`` (uvloop when
  installed) standing for a webhook endpoint. Every request is final; its key is the
  ``Idempotency-Key`` header (the post id). With ``--tls CERT KEY`` it serves TLS and
  negotiates HTTP/2 by ALPN (the ``h2`` package; ``--max-streams`` per connection, 100 by
  default like the platforms' front ends).
* ``graph``: Instagram's container flow of the Graph API (``POST /{ver}/{user}/media`` →
  container, ``GET /{ver}/{container}?fields=status_code`` → ``IN_PROGRESS`` until it is
  ready, ``POST /{ver}/{user}/media_publish``, ``GET /{ver}/{media}?fields=permalink``).
  Creating a container takes ``--upload-ms`` (Meta fetching the image), it becomes
  ``FINISHED`` ``--container-ms`` after that; ``media_publish`` is the final request,
  keyed by the container's caption (the post's content). Publishing a container twice is
  recorded as a duplicate arrival.
* ``aiohttp``: the test suite's ``Receiver``, to show whether the receiver limits the
  numbers.

``--latency-ms M --sigma S`` delays every answer (``graph``: every answer but the
container creation's) by a lognormal draw of median M (seeded: ``--seed``). ``--hold``
answers nothing until ``release``. ``wall`` is ``time.time()`` once the whole request
was read. It binds 127.0.0.1 only.

``ReceiverProcess`` is the bench's handle on such a process; ``certificates`` makes the
TLS files (``trustme``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import random
import ssl
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from .tally import Tally

REPLY_HEAD = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 411: b"Length Required"}


@dataclass(frozen=True)
class Arrival:
    key: str
    wall: float


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query
    key: str  # the Idempotency-Key header, or ""
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    delay: float  # seconds before it is written
    final: str | None = None  # the key to record as a final arrival


Send = Callable[[int, bytes], None]


@dataclass
class Recorder:
    """The arrivals, counts, held answers, and waiters woken when enough have come."""

    arrivals: list[tuple[str, float]] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    protocols: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    max_connections: int = 0
    holding: bool = False
    held: list[tuple[Send, int, bytes]] = field(default_factory=list)
    _count: Tally = field(default_factory=Tally)

    def add(self, key: str, wall: float) -> int:
        self.arrivals.append((key, wall))
        self._count.add()
        return len(self.arrivals)

    async def wait(self, count: int, timeout: float) -> bool:
        return await self._count.reach(count, timeout)

    def opened(self, protocol: str) -> None:
        self.connections += 1
        self.protocols[protocol] += 1
        self.max_connections = max(self.max_connections, self.connections)

    def reset(self) -> None:
        self.arrivals = []
        self.calls = Counter()
        self.protocols = Counter()
        self.max_connections = self.connections
        self._count = Tally()

    def release(self) -> int:
        held, self.held, self.holding = self.held, [], False
        for send, status, body in held:
            send(status, body)
        return len(held)

    def stats(self) -> dict[str, Any]:
        return {"calls": dict(self.calls), "connections": self.connections, "max_connections": self.max_connections,
                "protocols": dict(self.protocols), "held": len(self.held)}


class Latency:
    """Answer delays: a lognormal of the given median (seconds), or none."""

    def __init__(self, median_ms: float, sigma: float, seed: int) -> None:
        self.mu = math.log(median_ms / 1000) if median_ms > 0 else None
        self.sigma = sigma
        self.rng = random.Random(seed)

    def draw(self) -> float:
        return 0.0 if self.mu is None else self.rng.lognormvariate(self.mu, self.sigma)


class Webhook:
    """Every request is a post: recorded as final, answered with an id."""

    def __init__(self, latency: Latency) -> None:
        self.latency = latency
        self.count = 0

    def handle(self, request: Request) -> Answer:
        self.count += 1
        return Answer(200, b'{"id":"r-%d"}' % self.count, self.latency.draw(), final=request.key)


class Graph:
    """Instagram's container flow (see the module docstring)."""

    def __init__(self, latency: Latency, upload_s: float, container_s: float) -> None:
        self.latency = latency
        self.upload_s = upload_s
        self.container_s = container_s
        self.containers: dict[str, tuple[float, str]] = {}  # id -> (ready at, caption)
        self.published: dict[str, str] = {}  # container -> media id

    def _json(self, value: Any, delay: float, status: int = 200, final: str | None = None) -> Answer:
        return Answer(status, json.dumps(value, separators=(",", ":")).encode(), delay, final)

    def handle(self, request: Request) -> tuple[str, Answer]:
        parts = urlsplit(request.target)
        path = [p for p in parts.path.split("/") if p][1:]  # without the version
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()} if request.body else {}
        now = time.time()
        if request.method == "POST" and len(path) == 2 and path[1] == "media":
            container = f"c{len(self.containers) + 1}"
            self.containers[container] = (now + self.upload_s + self.container_s, form.get("caption", ""))
            return "create", self._json({"id": container}, self.upload_s)
        if request.method == "POST" and len(path) == 2 and path[1] == "media_publish":
            container = form.get("creation_id", "")
            ready, caption = self.containers.get(container, (math.inf, ""))
            if now < ready:
                error = {"message": "Media ID is not available", "code": 9007, "error_subcode": 2207027}
                return "publish_refused", self._json({"error": error}, self.latency.draw(), 400)
            media = self.published.setdefault(container, f"m{len(self.published) + 1}")
            return "publish", self._json({"id": media}, self.latency.draw(), final=caption)
        if request.method == "GET" and len(path) == 1 and "status_code" in query.get("fields", ""):
            ready, _ = self.containers.get(path[0], (math.inf, ""))
            status = "PUBLISHED" if path[0] in self.published else "FINISHED" if now >= ready else "IN_PROGRESS"
            return "status", self._json({"status_code": status, "status": status, "id": path[0]}, self.latency.draw())
        if request.method == "GET" and len(path) == 1 and "permalink" in query.get("fields", ""):
            return "permalink", self._json(
                {"permalink": f"https://instagram.example/p/{path[0]}", "id": path[0]}, self.latency.draw())
        if request.method == "GET" and len(path) == 2 and path[1] == "media":
            return "recent", self._json({"data": []}, self.latency.draw())
        error = {"message": f"unknown path {parts.path}", "code": 100}
        return "unknown", self._json({"error": error}, 0.0, 404)


class Server:
    """One kind's application and the recorder: what each connection calls."""

    def __init__(self, recorder: Recorder, app: Webhook | Graph, max_streams: int) -> None:
        self.recorder = recorder
        self.app = app
        self.max_streams = max_streams

    def handle(self, request: Request, send: Send) -> None:
        if isinstance(self.app, Graph):
            route, answer = self.app.handle(request)
        else:
            route, answer = "post", self.app.handle(request)
        recorder = self.recorder
        recorder.calls[route] += 1
        if answer.final is not None:
            recorder.add(answer.final, time.time())
        if recorder.holding:
            recorder.held.append((send, answer.status, answer.body))
        elif answer.delay > 0:
            asyncio.get_running_loop().call_later(answer.delay, send, answer.status, answer.body)
        else:
            send(answer.status, answer.body)


class Connection(asyncio.Protocol):
    """HTTP/1.1 with Content-Length bodies and keep-alive, or HTTP/2 when ALPN chose it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.WriteTransport | None = None
        self.h2: Any = None
        self.streams: dict[int, tuple[dict[bytes, bytes], bytearray]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's is not an asyncio.Transport
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self._start_h2()
        self.server.recorder.opened("HTTP/2" if self.h2 is not None else "HTTP/1.1")

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.recorder.connections -= 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.h2 is not None:
            self._h2_received(data)
            return
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).split(b"\r\n")
            method, target = [*lines[0].split(b" "), b"", b""][:2]
            length, key = 0, ""
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"idempotency-key":
                    key = value.strip().decode()
                elif name == b"transfer-encoding":
                    self._h1_send(411, b"")
                    self.buffer.clear()
                    return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            self.server.handle(Request(method.decode(), target.decode(), key, body), self._h1_send)

    def _h1_send(self, status: int, body: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(REPLY_HEAD % (status, REASONS.get(status, b"?"), len(body)) + body)

    # -- HTTP/2 (the h2 package's state machine) ---------------------------------------

    def _start_h2(self) -> None:
        import h2.config
        import h2.connection
        import h2.settings

        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.h2.local_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.server.max_streams})
        self.h2.initiate_connection()
        self._h2_flush()

    def _h2_received(self, data: bytes) -> None:
        import h2.events
        import h2.exceptions

        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._h2_flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self.streams[event.stream_id] = (dict(event.headers), bytearray())
            elif isinstance(event, h2.events.DataReceived):
                if event.stream_id in self.streams:
                    self.streams[event.stream_id][1].extend(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id in self.streams:
                headers, body = self.streams.pop(event.stream_id)
                request = Request(headers.get(b":method", b"").decode(), headers.get(b":path", b"").decode(),
                                  headers.get(b"idempotency-key", b"").decode(), bytes(body))
                self.server.handle(request, functools.partial(self._h2_send, event.stream_id))
            elif isinstance(event, h2.events.StreamReset):
                self.streams.pop(event.stream_id, None)
        self._h2_flush()

    def _h2_send(self, stream_id: int, status: int, body: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        import h2.exceptions

        try:
            self.h2.send_headers(stream_id, [(b":status", str(status).encode()), (b"content-type", b"application/json"),
                                             (b"content-length", str(len(body)).encode())])
            self.h2.send_data(stream_id, body, end_stream=True)
        except h2.exceptions.StreamClosedError:
            return
        self._h2_flush()

    def _h2_flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


def _tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


async def _serve(server: Server, tls: ssl.SSLContext | None) -> tuple[int, Any]:
    loop = asyncio.get_running_loop()
    listening = await loop.create_server(lambda: Connection(server), "127.0.0.1", 0, backlog=16384, ssl=tls)
    port: int = listening.sockets[0].getsockname()[1]
    return port, listening


async def _serve_aiohttp(recorder: Recorder) -> tuple[int, Any]:
    from scheduler_daemon.testing.receiver import Arrival as TestArrival
    from scheduler_daemon.testing.receiver import Receiver, Reply

    def reply(arrival: TestArrival) -> Reply:
        count = recorder.add(arrival.headers.get("idempotency-key", ""), arrival.wall)
        return Reply(200, {"id": f"r-{count}"})

    receiver = Receiver(reply)
    await receiver.__aenter__()
    return receiver.port, receiver


async def _main(args: argparse.Namespace) -> None:
    recorder = Recorder(holding=args.hold)
    latency = Latency(args.latency_ms, args.sigma, args.seed)
    if args.kind == "aiohttp":
        port, _server = await _serve_aiohttp(recorder)
    else:
        app: Webhook | Graph = (
            Graph(latency, args.upload_ms / 1000, args.container_ms / 1000)
            if args.kind == "graph" else Webhook(latency)
        )
        tls = _tls_context(*args.tls) if args.tls else None
        port, _server = await _serve(Server(recorder, app, args.max_streams), tls)
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
        elif command["cmd"] == "release":
            say({"ok": True, "released": recorder.release()})
        elif command["cmd"] == "hold":
            recorder.holding = True
            say({"ok": True})
        elif command["cmd"] == "stats":
            say({"ok": True, **recorder.stats()})
        else:
            say({"ok": False, "error": f"unknown command {command['cmd']!r}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=("fast", "graph", "aiohttp"), default="fast")
    parser.add_argument("--loop", choices=("auto", "asyncio"), default="auto")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="median answer delay (lognormal)")
    parser.add_argument("--sigma", type=float, default=0.5, help="the lognormal's sigma")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--hold", action="store_true", help="answer nothing until the release command")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve TLS (HTTP/2 by ALPN)")
    parser.add_argument("--max-streams", type=int, default=100, help="HTTP/2 streams per connection")
    parser.add_argument("--upload-ms", type=float, default=300.0, help="graph: creating a container")
    parser.add_argument("--container-ms", type=float, default=2000.0, help="graph: a container until FINISHED")
    args = parser.parse_args()
    if args.loop == "auto":
        try:
            import uvloop

            uvloop.run(_main(args))
            return
        except ImportError:
            pass
    asyncio.run(_main(args))


@dataclass(frozen=True)
class Certificates:
    ca: Path  # what clients trust (PEM)
    cert: Path  # the server's chain for 127.0.0.1 (PEM)
    key: Path


def certificates(folder: Path) -> Certificates:
    """A throw-away CA and a certificate for 127.0.0.1 in ``folder`` (made once)."""
    import trustme

    folder.mkdir(parents=True, exist_ok=True)
    made = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    if not made.key.exists():
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        ca.cert_pem.write_to_path(str(made.ca))
        server.private_key_pem.write_to_path(str(made.key))
        made.cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    return made


class ReceiverProcess:
    """``async with ReceiverProcess(kind, *options) as rx``: a receiver process and its port."""

    def __init__(self, kind: str = "fast", *options: str, tls: Certificates | None = None) -> None:
        self.kind = kind
        self.options = list(options)
        self.tls = tls
        self.port = 0
        self.pid = 0
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ReceiverProcess:
        tls = ["--tls", str(self.tls.cert), str(self.tls.key)] if self.tls else []
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.receiver", "--kind", self.kind, *self.options, *tls,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26,
        )
        self.pid = self._proc.pid
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
        """Wait for ``count`` final arrivals; (all came, the arrivals so far)."""
        reply = await self._ask({"cmd": "wait", "count": count, "timeout": timeout}, timeout + 30)
        return bool(reply["ok"]), [Arrival(str(k), float(w)) for k, w in reply["arrivals"]]

    async def reset(self) -> None:
        await self._ask({"cmd": "reset"}, 30)

    async def release(self) -> int:
        return int((await self._ask({"cmd": "release"}, 60))["released"])

    async def hold(self) -> None:
        await self._ask({"cmd": "hold"}, 30)

    async def stats(self) -> dict[str, Any]:
        return await self._ask({"cmd": "stats"}, 30)


if __name__ == "__main__":
    main()
