"""Fixed buckets of seconds, so that run durations and queue waits add up across rows and days
and their percentiles are read without the runs: a percentile is the upper bound of the bucket it
falls in (at most one bucket's width above the true value)."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence

#: Upper bounds, in seconds; a last bucket takes everything above the largest.
BOUNDS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
SIZE = len(BOUNDS) + 1


def bucket(seconds: float) -> int:
    """The index of the bucket ``seconds`` falls in."""
    return bisect_left(BOUNDS, max(seconds, 0.0))


def added(counts: Sequence[int] | None, seconds: float) -> list[int]:
    """``counts`` with one more observation of ``seconds``."""
    merged = _sized(counts)
    merged[bucket(seconds)] += 1
    return merged


def merged(histograms: Iterable[Sequence[int] | None]) -> list[int]:
    """The sum of ``histograms``, bucket by bucket."""
    total = [0] * SIZE
    for counts in histograms:
        for index, count in enumerate(_sized(counts)):
            total[index] += count
    return total


def percentile(counts: Sequence[int], fraction: float) -> float | None:
    """The upper bound of the bucket where ``fraction`` (0 to 1) of the observations are at or
    below; None without observations. Past the largest bound: that bound (the last bucket has no
    upper one)."""
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))  # the smallest count that covers the fraction
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return BOUNDS[min(index, len(BOUNDS) - 1)]
    return BOUNDS[-1]


def _sized(counts: Sequence[int] | None) -> list[int]:
    values = [int(count) for count in (counts or [])][:SIZE]
    return values + [0] * (SIZE - len(values))
