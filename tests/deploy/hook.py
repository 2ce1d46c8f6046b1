"""A webhook receiver on the host's loopback, as the daemon's webhook platform expects one:
``POST`` signed JSON, any 2xx is success and ``id`` becomes the platform post id.

Paths choose the answer: ``/ok`` 200, ``/reject`` 422 (the post goes back to draft),
``/hold`` answers 200 only once ``release()`` is called (a publish in flight for as long
as the test wants). Handlers run in threads, so the test can block on ``wait`` without
stalling the server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Arrival:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-scheduler-signature", ""), expected)


class Hook:
    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self._changed = threading.Condition()
        self._release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                arrival = Arrival(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with hook._changed:
                    hook.arrivals.append(arrival)
                    number = len(hook.arrivals)
                    hook._changed.notify_all()
                if self.path == "/hold":
                    hook._release.wait(120)
                status, answer = (422, {"error": "rejected by the test"}) if self.path == "/reject" else (
                    200, {"id": f"hook-{number}"})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def release(self) -> None:
        self._release.set()

    def wait(self, done: Callable[[list[Arrival]], bool], timeout: float) -> list[Arrival]:
        with self._changed:
            if not self._changed.wait_for(lambda: done(self.arrivals), timeout):
                raise TimeoutError(f"webhook: still {[a.path for a in self.arrivals]} after {timeout:.0f} s")
            return list(self.arrivals)


@contextmanager
def running_hook() -> Iterator[Hook]:
    hook = Hook()
    thread = threading.Thread(target=hook.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.release()
        hook.server.shutdown()
        hook.server.server_close()
        thread.join(10)
