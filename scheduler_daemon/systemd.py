"""sd_notify(3) without libsystemd: readiness, status, reload and watchdog messages.

systemd passes ``$NOTIFY_SOCKET`` to a ``Type=notify`` service: the path of an
``AF_UNIX``/``SOCK_DGRAM`` socket, or an abstract socket name written with a leading
``@``. Each message is one datagram of newline-separated ``KEY=VALUE`` assignments.
Outside systemd (``$NOTIFY_SOCKET`` unset) every method is a no-op.

Only ``Notifier.from_env`` looks at an environment; everything else works on the
values handed to it, so tests build a ``Notifier`` on a socket of their own.

Sending never raises: the daemon must not die because systemd's socket went away
(e.g. during ``systemctl daemon-reexec``). A failure is logged once per outage (a
successful send re-arms the log) and the method returns ``False``.

Wiring (done in the daemon): ``ready(status)`` once LISTEN is active and the boot
load is armed; ``StatusUpdates.send(status_text(...))`` once per status period, which
sends only what changed; ``watchdog()`` every ``watchdog_interval()`` seconds from a
task on the event loop itself, so a stuck loop misses its pings and systemd restarts
it; ``reloading()`` when SIGHUP starts a resync and ``ready()`` when it is done;
``stopping()`` when shutdown begins.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping

import structlog

from .clock import format_delay, utc_from_ts

__all__ = ["Notifier", "StatusUpdates", "monotonic_usec", "status_text"]

log = structlog.get_logger(__name__)

# A send blocks at most this long (systemd's receive queue full): bounded, because the
# watchdog ping runs on the event loop.
DEFAULT_SEND_TIMEOUT = 1.0


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd expects in ``MONOTONIC_USEC=``."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _one_line(text: str) -> str:
    """A value must stay on its line: a newline would start another assignment."""
    return " ".join(text.splitlines()).strip()


class Notifier:
    """Sends sd_notify messages to one socket; a no-op when ``socket_path`` is empty."""

    def __init__(
        self,
        socket_path: str | None,
        *,
        watchdog_usec: str | None = None,
        watchdog_pid: str | None = None,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
    ) -> None:
        self.socket_path = socket_path or None
        self.watchdog_usec = watchdog_usec or None
        self.watchdog_pid = watchdog_pid or None
        self._send_timeout = send_timeout
        self._address: str | None = None
        self._unsupported = False
        if self.socket_path is not None:
            if self.socket_path.startswith("@"):
                self._address = "\0" + self.socket_path[1:]  # Linux abstract namespace
            elif self.socket_path.startswith("/"):
                self._address = self.socket_path
            else:  # e.g. systemd 254+'s vsock: addresses, which this does not speak
                self._unsupported = True
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failing = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """Build from ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` in ``env``
        (``os.environ`` when ``None``)."""
        source: Mapping[str, str] = os.environ if env is None else env
        return cls(
            source.get("NOTIFY_SOCKET"),
            watchdog_usec=source.get("WATCHDOG_USEC"),
            watchdog_pid=source.get("WATCHDOG_PID"),
        )

    @property
    def enabled(self) -> bool:
        """Whether messages go anywhere (``$NOTIFY_SOCKET`` was set)."""
        return self.socket_path is not None

    # -- messages --------------------------------------------------------------

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: startup (or a reload) is complete."""
        return self._send_fields("READY=1", status)

    def status(self, text: str) -> bool:
        """``STATUS=``: the one-line status ``systemctl status`` shows."""
        return self._send_fields(None, text)

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self._send_fields("STOPPING=1", status)

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC=`` (systemd 253+ requires the timestamp,
        252 ignores it); follow with ``ready()`` once the reload is done."""
        return self._send_fields(f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec()}", status)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the keep-alive ping."""
        return self.send("WATCHDOG=1")

    def watchdog_interval(self, pid: int | None = None) -> float | None:
        """Seconds between pings (half of ``WATCHDOG_USEC``), or ``None`` when the
        watchdog is off or meant for another process (``WATCHDOG_PID`` not ours)."""
        if self.watchdog_usec is None:
            return None
        if self.watchdog_pid is not None:
            try:
                if int(self.watchdog_pid) != (os.getpid() if pid is None else pid):
                    return None
            except ValueError:
                return None
        try:
            usec = int(self.watchdog_usec)
        except ValueError:
            return None
        if usec <= 0:
            return None
        return usec / 2 / 1_000_000

    # -- transport -------------------------------------------------------------

    def _send_fields(self, head: str | None, status: str | None) -> bool:
        lines = [head] if head else []
        if status is not None:
            lines.append(f"STATUS={_one_line(status)}")
        return self.send("\n".join(lines))

    def send(self, message: str) -> bool:
        """Send ``message`` as one datagram. ``True`` if it was sent; ``False`` when
        disabled or on failure (logged once per outage, never raised)."""
        if self.socket_path is None or not message:
            return False
        with self._lock:
            if self._unsupported or self._address is None:
                self._failed(f"unsupported NOTIFY_SOCKET address {self.socket_path!r}")
                return False
            try:
                if self._sock is None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                    sock.settimeout(self._send_timeout)
                    self._sock = sock
                self._sock.sendto(message.encode("utf-8"), self._address)
            except OSError as exc:
                self._close_locked()
                self._failed(f"{type(exc).__name__}: {exc}")
                return False
            if self._failing:
                self._failing = False
                log.info("sd_notify_recovered", socket=self.socket_path)
            return True

    def _failed(self, reason: str) -> None:
        if not self._failing:
            self._failing = True
            log.warning("sd_notify_failed", socket=self.socket_path, error=reason)

    def _close_locked(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def close(self) -> None:
        """Close the sending socket (it is reopened on the next send)."""
        with self._lock:
            self._close_locked()


def status_text(armed: int, publishing: int, next_due: float | None, now: float) -> str:
    """The ``STATUS=`` line: the counts, the next due instant and how far off it is at
    ``now`` (epoch seconds, the daemon's clock)."""
    if next_due is None:
        when = "nothing due"
    else:
        delay = next_due - now
        relative = f"in {format_delay(delay)}" if delay > 0 else "due now"
        when = f"next due {utc_from_ts(next_due).isoformat()} ({relative})"
    return f"{armed} armed, {publishing} publishing; {when}"


class StatusUpdates:
    """Keeps ``STATUS=`` fresh at no extra cost: called once per status period with the
    current text, it sends it when it differs from what systemd last received. The
    relative part ("in 36 s") changes at the granularity of ``format_delay``, so a far
    deadline costs one datagram a minute and an idle daemon none; the caller's period
    bounds how stale the line can be. A failed send is retried on the next call."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.last: str | None = None

    def send(self, text: str) -> bool:
        """Send ``text`` if it is new; ``True`` when a datagram went out."""
        if text == self.last:
            return False
        sent = self.notifier.status(text)
        if sent:
            self.last = text
        return sent
