"""The armed posts (the timers): a heap keyed by due instant with lazy cancellation.
No I/O, no asyncio.

A post is armed at a ``version`` (``content_posts.schedule_version``), which the
triggers bump whenever anything that decides the due instant changes; so ``(id,
version)`` determines the due instant, and the only per-post state besides the heap item
is ``id -> that heap item`` (the same tuple: no copy). Ids are kept as 128-bit ints (44
bytes, against 72 for asyncpg's UUID objects): at a million posts that is the difference
that keeps the daemon small. Re-arming or cancelling does not touch the heap: heap items
that are no longer their post's live item are dropped when they reach the top (and the
heap is compacted when stale items outnumber live ones). Arm, cancel and pop are O(log n),
``get`` is O(1), and a million armed posts cost one small tuple and one dict slot each,
not one task each.
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


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int]] = []  # (due, version, id as int)
        self._live: dict[int, tuple[float, int, int]] = {}  # id as int -> its live heap item

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, post_id: object) -> bool:
        return isinstance(post_id, uuid.UUID) and post_id.int in self._live

    def __iter__(self) -> Iterator[Armed]:
        """The armed posts (a scan of the heap: for inspection, not the hot path)."""
        for item in self._heap:
            if self._live.get(item[2]) is item:
                yield Armed(uuid.UUID(int=item[2]), item[0], item[1])

    def get(self, post_id: uuid.UUID) -> Armed | None:
        """The armed entry of ``post_id``."""
        item = self._live.get(post_id.int)
        return None if item is None else Armed(post_id, item[0], item[1])

    def arm(self, post_id: uuid.UUID, due: float, version: int) -> bool:
        """Arm or re-arm ``post_id``. True when it became the earliest deadline.

        A version not newer than the armed one changes nothing: notifications are hints
        that may arrive after a fresher load, and one version means one due instant.
        """
        key = post_id.int
        current = self._live.get(key)
        if current is not None and current[1] >= version:
            return False
        item = (due, version, key)
        self._live[key] = item
        earliest = self.next_due()  # of the others: this post's older items are stale now
        heapq.heappush(self._heap, item)
        self._maybe_compact()
        return earliest is None or due < earliest

    def cancel(self, post_id: uuid.UUID) -> bool:
        """Forget ``post_id``; True if it was armed."""
        return self._live.pop(post_id.int, None) is not None

    def clear(self) -> None:
        self._heap.clear()
        self._live.clear()

    def next_due(self) -> float | None:
        """The earliest live deadline, or None when nothing is armed."""
        heap, live = self._heap, self._live
        while heap:
            item = heap[0]
            if live.get(item[2]) is item:
                return item[0]
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float, limit: int | None = None) -> list[Armed]:
        """Remove and return the posts due at or before ``now``, earliest first."""
        out: list[Armed] = []
        heap, live = self._heap, self._live
        while heap and (limit is None or len(out) < limit):
            item = heap[0]
            due, version, key = item
            if due > now:
                break
            heapq.heappop(heap)
            if live.get(key) is item:
                del live[key]
                out.append(Armed(uuid.UUID(int=key), due, version))
        return out

    def nth_due(self, n: int) -> float | None:
        """The ``n``-th earliest live deadline (1: the earliest), or None when fewer are armed.
        A best-first walk from the heap's top: it costs about ``n`` log ``n``, not the heap."""
        heap, live = self._heap, self._live
        frontier = [(heap[0][0], 0)] if heap and n > 0 else []
        seen = 0
        while frontier:
            due, index = heapq.heappop(frontier)
            item = heap[index]
            if live.get(item[2]) is item:
                seen += 1
                if seen == n:
                    return due
            for child in (2 * index + 1, 2 * index + 2):
                if child < len(heap):
                    heapq.heappush(frontier, (heap[child][0], child))
        return None

    def due_by(self, until: float, after: float = float("-inf")) -> list[Armed]:
        """The posts due in (``after``, ``until``], left armed. A walk down from the heap's top
        that stops at items due after ``until`` (no child is due before its parent), so it
        costs the items due by ``until``, not the heap."""
        heap, live, out = self._heap, self._live, []
        stack = [0] if heap else []
        while stack:
            index = stack.pop()
            item = heap[index]
            due, version, key = item
            if due > until:
                continue
            if due > after and live.get(key) is item:
                out.append(Armed(uuid.UUID(int=key), due, version))
            stack.extend(c for c in (2 * index + 1, 2 * index + 2) if c < len(heap))
        return out

    @property
    def heap_size(self) -> int:
        """Heap items, stale ones included (compaction keeps them under twice the live ones)."""
        return len(self._heap)

    def _maybe_compact(self) -> None:
        if len(self._heap) > 1024 and len(self._heap) > 2 * len(self._live):
            live = self._live
            self._heap = [item for item in self._heap if live.get(item[2]) is item]
            heapq.heapify(self._heap)
