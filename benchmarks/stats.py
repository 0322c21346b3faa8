"""Summary statistics of timing samples."""

from __future__ import annotations

import math
import statistics


def percentile(samples: list[float], fraction: float) -> float | None:
    """Return the nearest-rank percentile (fraction in (0, 1]) of the samples, or None if empty."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summary(samples: list[float]) -> dict:
    """Return n, median, p90 (nearest rank), min, max and the samples, in seconds."""
    if not samples:
        return {"n": 0, "median": None, "p90": None, "min": None, "max": None, "samples": []}
    return {"n": len(samples),
            "median": statistics.median(samples),
            "p90": percentile(samples, 0.9),
            "min": min(samples),
            "max": max(samples),
            "samples": [round(value, 4) for value in samples]}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator in (None, 0):
        return None
    return numerator / denominator
