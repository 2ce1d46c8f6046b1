"""Bursts: many posts due at one instant (the top of the hour), claimed ahead of it.

With the claim lead alone (25 ms) a burst's claims ran after its instant: batches of
``CLAIM_BATCH`` one after another, 0.1-1 s each on a busy machine, so the last thousand of
5,000 posts could not start before +3 s. When ``BURST_POSTS`` or more are due within
``BURST_AHEAD_SECONDS``, the dispatcher claims every post due by the end of that window,
batch after batch, from ``BURST_AHEAD_SECONDS`` before it; the posts then wait for their
own instant (the publisher's spin) and are sent on it. The window is kept until it has
passed, so a burst's last few posts are claimed with it. A burst may claim ``BURST_BACKLOG``
posts beyond the publisher's room (claimed now, they wait for their instant and then for a
slot): a slot that frees up after the instant then costs no claim round trip.

A burst allocates per post (a task, the request, the answer, the outcome, its log line)
with thousands alive at once, so cyclic GC ran dozens of times during one (9-16 % of the
loop's CPU): automatic collection is off from a burst's first claim until nothing is in
flight, and for at most ``GC_PAUSE_MAX_SECONDS`` (a steady flood of bursts is still
collected). No I/O, no asyncio.
"""

from __future__ import annotations

import gc

from ..clock import Clock
from .timers import Timers

BURST_POSTS = 100
BURST_AHEAD_SECONDS = 2.0
BURST_BACKLOG = 5000
GC_PAUSE_MAX_SECONDS = 30.0


class Bursts:
    def __init__(self, clock: Clock, lead: float) -> None:
        self.clock = clock
        self.lead = lead  # the claim lead: how far ahead a post is claimed outside a burst
        self._until = float("-inf")  # a burst's claims take every post due by then
        self._gc_paused_at: float | None = None  # when a burst turned automatic GC off

    def claim_until(self, timers: Timers, now: float) -> float:
        """Claim the posts due by this instant: the claim lead's, or a burst window's end."""
        start = self.start(timers)
        if start is not None and start <= now:
            self._until = max(self._until, now + BURST_AHEAD_SECONDS)
        return max(now + self.lead, self._until)

    @staticmethod
    def start(timers: Timers) -> float | None:
        """When the armed posts next make a burst: BURST_POSTS due within BURST_AHEAD_SECONDS."""
        nth = timers.nth_due(BURST_POSTS)
        return None if nth is None else nth - BURST_AHEAD_SECONDS

    def next_wake(self, timers: Timers) -> float | None:
        """When to claim next: the next post's claim lead, or a burst's window, if sooner."""
        nxt = timers.next_due()
        if nxt is None:
            return None
        start = self.start(timers)
        return nxt - self.lead if start is None else min(nxt - self.lead, start)

    def pause_gc(self) -> None:
        if self._gc_paused_at is None and gc.isenabled():
            gc.disable()
            self._gc_paused_at = self.clock.now()

    def settled(self, idle: bool) -> None:
        """A post's publish ended (``idle``: nothing is in flight any more)."""
        paused = self._gc_paused_at
        if paused is not None and (idle or self.clock.now() - paused > GC_PAUSE_MAX_SECONDS):
            self.resume_gc()

    def resume_gc(self) -> None:
        if self._gc_paused_at is not None:
            self._gc_paused_at = None
            gc.enable()
