"""The one retry policy: exponential backoff with full jitter.

The n-th delay is uniform in ``[0, min(cap, base * 2^(n-1))]`` (AWS's "full jitter"):
replicas and posts that failed together do not retry together. ``Backoff`` counts the
failures of one retry loop (the listener's reconnects, the outcome writer's flushes, the
dispatcher's claims): ``next()`` after a failure, ``reset()`` after a success.
``delay(attempt, ...)`` is the same rule for a count kept elsewhere (a post's attempts,
stored on its row).
"""

from __future__ import annotations

import random
from collections.abc import Callable

Jitter = Callable[[float, float], float]


def delay(attempt: int, base: float, cap: float, jitter: Jitter = random.uniform) -> float:
    """The wait before retry number ``attempt`` (1 is the first). The exponent is bounded,
    so any attempt count gives a finite delay."""
    return jitter(0, min(cap, base * 2.0 ** min(max(attempt - 1, 0), 64)))


class Backoff:
    def __init__(self, base: float, cap: float, *, jitter: Jitter = random.uniform) -> None:
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self.failures = 0

    def next(self) -> float:
        """Count one more failure; the seconds to wait before trying again."""
        self.failures += 1
        return delay(self.failures, self.base, self.cap, self.jitter)

    def reset(self) -> None:
        """The loop succeeded: the next failure waits the shortest again."""
        self.failures = 0
