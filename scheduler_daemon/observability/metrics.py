"""Metrics the daemon reports. Off by default: this no-op base is what runs then.

The Prometheus implementation and the /healthz endpoint live in ``metrics_http``.
"""

from __future__ import annotations


class Metrics:
    """Every hook the daemon calls; the base class records nothing."""

    def armed(self, count: int, next_due_in: float | None) -> None: ...

    def published(self, platform: str, lateness: float) -> None: ...

    def failed(self, platform: str, reason: str) -> None: ...

    def listener_reconnected(self) -> None: ...

    def db_round_trip(self, seconds: float) -> None: ...
