"""A count that can be awaited, for probes and the receiver (no polling)."""

from __future__ import annotations

import asyncio


class Tally:
    """A count that can be awaited: ``await tally.reach(n, timeout)``."""

    def __init__(self) -> None:
        self.value = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def add(self, amount: int = 1) -> None:
        self.value += amount
        for wanted, future in self._waiters:
            if self.value >= wanted and not future.done():
                future.set_result(None)

    async def reach(self, count: int, timeout: float) -> bool:
        """True once the count is at least ``count``; False after ``timeout`` seconds."""
        if self.value >= count:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (count, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.remove(entry)
