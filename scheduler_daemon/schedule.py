"""The armed posts: a heap keyed by due instant with lazy cancellation. No I/O, no asyncio.

Each post id has at most one live entry, ``(due, version)``. Re-arming or cancelling
does not touch the heap; it replaces or removes the id's entry in a dict, and heap
items whose sequence number no longer matches are dropped when they reach the top
(and the heap is compacted when stale items outnumber live ones). So arm, cancel and
pop are all O(log n) and a million armed posts cost one tuple each, not one task each.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections.abc import Iterator
from typing import NamedTuple


class Armed(NamedTuple):
    id: uuid.UUID
    due: float  # epoch seconds on the daemon's clock
    version: int  # content_posts.schedule_version the timer was armed with


class Schedule:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, uuid.UUID]] = []
        self._live: dict[uuid.UUID, tuple[float, int, int]] = {}  # id -> (due, version, seq)
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, post_id: object) -> bool:
        return post_id in self._live

    def __iter__(self) -> Iterator[Armed]:
        return (Armed(pid, due, ver) for pid, (due, ver, _) in self._live.items())

    def get(self, post_id: uuid.UUID) -> Armed | None:
        entry = self._live.get(post_id)
        return None if entry is None else Armed(post_id, entry[0], entry[1])

    def arm(self, post_id: uuid.UUID, due: float, version: int) -> bool:
        """Arm or re-arm ``post_id``. True when it became the earliest deadline.

        An older version never replaces a newer one: notifications are hints that may
        arrive after a fresher boot load.
        """
        current = self._live.get(post_id)
        if current is not None and current[1] > version:
            return False
        if current is not None and current[0] == due and current[1] == version:
            return False
        seq = next(self._seq)
        self._live[post_id] = (due, version, seq)
        earliest = self.next_due()
        heapq.heappush(self._heap, (due, seq, post_id))
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
        heap = self._heap
        while heap:
            due, seq, pid = heap[0]
            entry = self._live.get(pid)
            if entry is not None and entry[2] == seq:
                return due
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float, limit: int | None = None) -> list[Armed]:
        """Remove and return the posts due at or before ``now``, earliest first."""
        out: list[Armed] = []
        heap = self._heap
        while heap and (limit is None or len(out) < limit):
            due, seq, pid = heap[0]
            if due > now:
                break
            heapq.heappop(heap)
            entry = self._live.get(pid)
            if entry is None or entry[2] != seq:
                continue
            del self._live[pid]
            out.append(Armed(pid, due, entry[1]))
        return out

    def _maybe_compact(self) -> None:
        if len(self._heap) > 1024 and len(self._heap) > 2 * len(self._live):
            self._heap = [(due, seq, pid) for pid, (due, _, seq) in self._live.items()]
            heapq.heapify(self._heap)
