"""Figures, targets and summaries: the shape of results.json."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(values: Sequence[float], scale: float = 1000.0, digits: int = 3) -> dict[str, float | int]:
    """n, min, p50, p90, p99, max, mean of ``values`` × ``scale`` (seconds → ms by default)."""
    if not values:
        return {"n": 0}
    scaled = [v * scale for v in values]
    return {
        "n": len(scaled),
        "min": round(min(scaled), digits),
        "p50": round(percentile(scaled, 50), digits),
        "p90": round(percentile(scaled, 90), digits),
        "p99": round(percentile(scaled, 99), digits),
        "max": round(max(scaled), digits),
        "mean": round(sum(scaled) / len(scaled), digits),
    }


@dataclass(frozen=True)
class Target:
    """One figure against its target: ``measured <op> limit``."""

    scenario: str
    figure: str
    measured: float | None  # None: could not be measured (see note)
    op: str  # "<=" or ">="
    limit: float
    unit: str
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured <= self.limit if self.op == "<=" else self.measured >= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def target(
    scenario: str, figure: str, measured: float | None, op: str, limit: float, unit: str, note: str = ""
) -> dict[str, Any]:
    value = None if measured is None else round(measured, 3)
    return Target(scenario, figure, value, op, limit, unit, note).as_dict()
