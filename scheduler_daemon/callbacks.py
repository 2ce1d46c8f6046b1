"""The callbacks components hand each other, named in one place.

Each is passed to a constructor, never assigned afterwards. They are synchronous where the
caller must not wait (a notification callback runs inside asyncpg's protocol handler).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Protocol

from .models import Heartbeat


class OnPayload(Protocol):
    """A NOTIFY payload arrived on the daemon's channel (a hint: the row decides)."""

    def __call__(self, payload: str, /) -> None: ...


class OnSync(Protocol):
    """Reload every scheduled row: after each (re)connect and on a resync request."""

    async def __call__(self) -> None: ...


class OnHeartbeat(Protocol):
    """A heartbeat came back: whether this run holds its liveness lock, which runs died."""

    def __call__(self, beat: Heartbeat, /) -> None: ...


class RequestResync(Protocol):
    """Ask the listener for a sync soon (TRUNCATE, a failed claim, SIGHUP)."""

    def __call__(self) -> None: ...


class Reject(Protocol):
    """Queue a scheduled row that cannot be published (missed, no due instant) to go back
    to draft with ``message``, unless the row changed since ``version``."""

    def __call__(self, post_id: uuid.UUID, version: int, message: str, /) -> None: ...


class InFlight(Protocol):
    """The posts this daemon is publishing right now: its own claims that are not orphans."""

    def __call__(self) -> Collection[uuid.UUID]: ...


class OnArmed(Protocol):
    """A post was armed for its instant ``due`` (epoch seconds) at ``version``, or disarmed
    (``due`` None): the dispatcher tells the preparer. Synchronous and cheap: it runs on the
    registration path."""

    def __call__(self, post_id: uuid.UUID, due: float | None, version: int, /) -> None: ...
