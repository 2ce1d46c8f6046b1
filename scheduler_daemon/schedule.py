"""The armed posts: a heap keyed by due instant with lazy cancellation. No I/O, no asyncio.

A post is armed at a ``version`` (``content_posts.schedule_version``), which the
triggers bump whenever anything that decides the due instant changes; so ``(id,
version)`` determines the due instant, and the only per-post state besides the heap item
is ``id -> version``. Re-arming or cancelling does not touch the heap: heap items whose
version no longer matches are dropped when they reach the top (and the heap is compacted
when stale items outnumber live ones). Arm, cancel and pop are O(log n), and a million
armed posts cost one small tuple and one dict slot each, not one task each.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterator
from typing import NamedTuple


class Armed(NamedTuple):
    id: uuid.UUID
    due: float  # epoch seconds on the daemon's clock
    version: int  # content_posts.schedule_version the timer was armed with


class Schedule:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, uuid.UUID]] = []  # (due, version, id)
        self._live: dict[uuid.UUID, int] = {}  # id -> armed version

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, post_id: object) -> bool:
        return post_id in self._live

    def __iter__(self) -> Iterator[Armed]:
        """The armed posts (a scan of the heap: for inspection, not the hot path)."""
        seen: set[uuid.UUID] = set()
        for due, version, pid in self._heap:
            if self._live.get(pid) == version and pid not in seen:
                seen.add(pid)
                yield Armed(pid, due, version)

    def get(self, post_id: uuid.UUID) -> Armed | None:
        """The armed entry of ``post_id`` (a scan: for inspection, not the hot path)."""
        if post_id not in self._live:
            return None
        return next(a for a in self if a.id == post_id)

    def arm(self, post_id: uuid.UUID, due: float, version: int) -> bool:
        """Arm or re-arm ``post_id``. True when it became the earliest deadline.

        A version not newer than the armed one changes nothing: notifications are hints
        that may arrive after a fresher load, and one version means one due instant.
        """
        current = self._live.get(post_id)
        if current is not None and current >= version:
            return False
        self._live[post_id] = version
        earliest = self.next_due()  # of the others: this post's older items are stale now
        heapq.heappush(self._heap, (due, version, post_id))
        self._maybe_compact()
        return earliest is None or due < earliest

    def cancel(self, post_id: uuid.UUID) -> bool:
        """Forget ``post_id``; True if it was armed."""
        return self._live.pop(post_id, None) is not None

    def clear(self) -> None:
        self._heap.clear()
        self._live.clear()

    def next_due(self) -> float | None:
        """The earliest live deadline, or None when nothing is armed."""
        heap, live = self._heap, self._live
        while heap:
            due, version, pid = heap[0]
            if live.get(pid) == version:
                return due
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float, limit: int | None = None) -> list[Armed]:
        """Remove and return the posts due at or before ``now``, earliest first."""
        out: list[Armed] = []
        heap, live = self._heap, self._live
        while heap and (limit is None or len(out) < limit):
            due, version, pid = heap[0]
            if due > now:
                break
            heapq.heappop(heap)
            if live.get(pid) == version:
                del live[pid]
                out.append(Armed(pid, due, version))
        return out

    def _maybe_compact(self) -> None:
        if len(self._heap) > 1024 and len(self._heap) > 2 * len(self._live):
            self._heap = [(a.due, a.version, a.id) for a in list(self)]
            heapq.heapify(self._heap)
