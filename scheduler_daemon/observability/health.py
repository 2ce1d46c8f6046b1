"""``/healthz``: is the daemon doing its job right now?

``LoopWatch`` measures event-loop lag; ``daemon_health`` builds the health document of a
running ``Daemon`` from it and the listener's state. The document is healthy when the
daemon has started (LISTEN active, boot load armed), the listener is connected with a
recent heartbeat, and the loop is not lagging.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, Protocol

from .metrics import Metrics

Health = Callable[[], dict[str, Any]]


class LoopWatch:
    """Event-loop lag: a callback re-armed every ``interval`` notes how late it ran.

    ``lag()`` is how far behind the loop is right now (0 on a healthy loop), or the
    worst recent lateness, whichever is larger; ``alive()`` compares it to ``max_lag``.
    """

    def __init__(self, interval: float = 0.25, max_lag: float = 2.0) -> None:
        self.interval = interval
        self.max_lag = max_lag
        self.recent_lag = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._expected = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> LoopWatch:
        self._loop = asyncio.get_running_loop()
        self._schedule()
        return self

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def __enter__(self) -> LoopWatch:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _schedule(self) -> None:
        assert self._loop is not None
        self._expected = self._loop.time() + self.interval
        self._handle = self._loop.call_at(self._expected, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        late = max(0.0, self._loop.time() - self._expected)
        # decay: one bad tick is remembered for a few intervals, then forgotten
        self.recent_lag = max(late, self.recent_lag * 0.5)
        self._schedule()

    def lag(self) -> float:
        if self._loop is None or self._handle is None:
            return math.inf
        behind = max(0.0, self._loop.time() - self._expected)
        return max(behind, self.recent_lag)

    def alive(self) -> bool:
        return self.lag() <= self.max_lag


class _ListenerLike(Protocol):
    @property
    def connected(self) -> bool: ...

    @property
    def last_heartbeat(self) -> float | None: ...

    @property
    def reconnects(self) -> int: ...


class _SettingsLike(Protocol):
    @property
    def heartbeat_seconds(self) -> float: ...

    @property
    def heartbeat_timeout_seconds(self) -> float: ...


class DaemonLike(Protocol):
    """What ``daemon_health`` reads from a ``Daemon``."""

    @property
    def settings(self) -> _SettingsLike: ...

    @property
    def listener(self) -> _ListenerLike | None: ...

    @property
    def started(self) -> asyncio.Event: ...

    @property
    def metrics(self) -> Metrics: ...


def daemon_health(daemon: DaemonLike, watch: LoopWatch) -> Health:
    """The /healthz document of a daemon. Healthy: started (LISTEN active, boot load
    armed), the listener connected with a heartbeat no older than two intervals plus
    the heartbeat timeout, and the event loop not lagging."""
    s = daemon.settings
    stale_after = 2 * s.heartbeat_seconds + s.heartbeat_timeout_seconds

    def health() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        listener = daemon.listener
        connected = bool(listener is not None and listener.connected)
        beat = None if listener is None else listener.last_heartbeat
        age = None if beat is None else max(0.0, loop.time() - beat)
        lag = watch.lag()
        fresh = age is not None and age <= stale_after
        started = daemon.started.is_set()
        return {
            "healthy": started and connected and fresh and watch.alive(),
            "started": started,
            "listener_connected": connected,
            "last_heartbeat_age_seconds": None if age is None else round(age, 3),
            "heartbeat_stale_after_seconds": stale_after,
            "listener_reconnects": 0 if listener is None else listener.reconnects,
            "loop_alive": watch.alive(),
            "loop_lag_seconds": None if math.isinf(lag) else round(lag, 4),
        }

    return health
