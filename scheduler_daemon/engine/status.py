"""What the daemon tells systemd and the metrics while it runs.

``StatusReporter`` sends ``WATCHDOG=1`` from the event loop itself (a stuck loop stops
it, and systemd restarts the unit), ``STATUS=`` whenever its text changes (the counts,
and the time to the next post: ``systemd.StatusUpdates``), and the armed gauges to the
metrics. A ``Service``: ``started`` is set after its first report.
"""

from __future__ import annotations

from ..clock import Clock
from ..observability.metrics import Metrics
from ..service import Service
from ..systemd import Notifier, StatusUpdates, status_text
from .dispatcher import Dispatcher


def status_line(dispatcher: Dispatcher | None, clock: Clock) -> str:
    """One line for ``systemctl status``: "12 armed, 0 publishing; next due ... (in 3 min)"."""
    if dispatcher is None:
        return "starting"
    return status_text(len(dispatcher.timers), len(dispatcher.inflight), dispatcher.timers.next_due(), clock.now())


class StatusReporter(Service):
    name = "systemd"

    def __init__(self, notifier: Notifier, metrics: Metrics, dispatcher: Dispatcher, clock: Clock) -> None:
        super().__init__()
        self.notifier = notifier
        self.metrics = metrics
        self.dispatcher = dispatcher
        self.clock = clock

    async def run(self) -> None:
        watchdog = self.notifier.watchdog_interval()
        period = min(watchdog or 5.0, 5.0)
        status = StatusUpdates(self.notifier)
        while not self.stopping:
            if watchdog is not None:
                self.notifier.watchdog()
            status.send(status_line(self.dispatcher, self.clock))
            nxt = self.dispatcher.timers.next_due()
            self.metrics.armed(len(self.dispatcher.timers), None if nxt is None else nxt - self.clock.now())
            self.started.set()
            await self._pause(period)
