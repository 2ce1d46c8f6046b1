"""The order in which this replica sends a batch of due posts to the claim, and when it
claims again a post the claim skipped because another transaction held its row.

Replicas arm the same posts and fall due at the same instant. The claim locks each row
with SKIP LOCKED in the order its ids are sent (sql/daemon.sql, claim), so if every
replica sent the same order they would all start on the same rows and each claim would
skip most of what the others hold, row after row. Each replica instead sorts a batch by a
keyed hash of the post id, keyed by its own run id (``claimed_by``): a pseudo-random
permutation of its own, so two replicas at the same instant start on different rows and
split the burst. A post is still claimed by at most one replica (the row decides); the
order only decides who usually wins it.

A skipped ('busy') post is parked here and claimed again ``BUSY_RETRY_SECONDS`` later (kept
out of the timers until then: a burst claims every timer due within its window, so a post
re-armed there would be claimed again at once, round trip after round trip): by then the claim
that held it has committed (nothing to do) or rolled back (its replica died mid-claim: the
post is still scheduled and is taken then). The delay doubles for each skip in a row, up to
``BUSY_RETRY_CAP``: a row a tenant's idle transaction holds for an hour costs a claim every
2 s, not ten a second.

No I/O, no asyncio; about 1 µs a post (blake2b), against a claim round trip and a send.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import uuid
from collections.abc import Iterable
from typing import TypeVar

from ..models import Verdict
from .timers import Armed

BUSY_RETRY_SECONDS, BUSY_RETRY_CAP = 0.1, 2.0

A = TypeVar("A", bound=Armed)


class ClaimOrder:
    def __init__(self, instance_id: str) -> None:
        # blake2b's key: at most 64 bytes, so the (printable, bounded) run id is hashed to one.
        self._key = hashlib.blake2b(instance_id.encode(), digest_size=32).digest()

    def rank(self, post_id_bytes: bytes) -> bytes:
        """Where a post comes in this replica's order (smaller first)."""
        return hashlib.blake2b(post_id_bytes, key=self._key, digest_size=8).digest()

    def sort(self, batch: Iterable[A]) -> list[A]:
        """``batch`` in this replica's order."""
        return sorted(batch, key=lambda armed: self.rank(armed.id.bytes))


class BusyRetry:
    def __init__(self) -> None:
        self._skips: dict[uuid.UUID, int] = {}  # post -> claims in a row that found it busy
        self._parked: list[tuple[float, int, Armed]] = []  # (claim again at, tie-break, its timer)
        self._order = itertools.count()

    def park(self, armed: Armed, now: float) -> None:
        """Hold a busy post's timer until it is claimed again (``delay`` after ``now``)."""
        heapq.heappush(self._parked, (now + self.delay(armed.id), next(self._order), armed))

    def release(self, now: float) -> list[Armed]:
        """The parked timers whose retry time has come, to be armed again."""
        back = []
        while self._parked and self._parked[0][0] <= now:
            back.append(heapq.heappop(self._parked)[2])
        return back

    def next_at(self) -> float | None:
        """When the next parked post is to be claimed again."""
        return self._parked[0][0] if self._parked else None

    def answered(self, asked: Iterable[uuid.UUID], busy: Iterable[Verdict]) -> None:
        """A claim's answer: its busy posts count one more skip, the others are forgotten
        (every busy post is claimed again, so none is kept longer than its lock is held)."""
        skipped = {v.id for v in busy}
        if not (skipped or self._skips):
            return
        if len(self._skips) > 10_000:  # posts deleted while skipped and dropped by a resync: start over
            self._skips.clear()
        for post_id in asked:
            if post_id in skipped:
                self._skips[post_id] = self._skips.get(post_id, 0) + 1
            else:
                self._skips.pop(post_id, None)

    def delay(self, post_id: uuid.UUID) -> float:
        """How long after now to claim ``post_id`` again."""
        doublings = min(8, max(0, self._skips.get(post_id, 1) - 1))
        return min(BUSY_RETRY_CAP, BUSY_RETRY_SECONDS * float(1 << doublings))
