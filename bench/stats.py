"""Small statistics helpers: percentiles and summaries of latency samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """p50/p99/mean/max of a sample, in the unit of the sample (ms throughout the bench)."""

    n: int
    p50: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        """Summarise `values` (NaNs when empty)."""
        if not values:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        return cls(
            n=len(values),
            p50=percentile(values, 50),
            p99=percentile(values, 99),
            mean=sum(values) / len(values),
            max=max(values),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is zero or NaN."""
    if not denominator or math.isnan(denominator):
        return math.nan
    return numerator / denominator
