"""Small, dependency-free statistics: medians, nearest-rank p95, bootstrap intervals, fits."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def p95(values: Sequence[float]) -> float | None:
    """Nearest-rank 95th percentile, as pytest-criu's own summary computes it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def bootstrap_ratio(
    numerator: Sequence[float],
    denominator: Sequence[float],
    *,
    rounds: int = 2000,
    seed: int = 1,
) -> tuple[float, float] | None:
    """95% bootstrap interval of ``median(numerator) / median(denominator)``."""
    if len(numerator) < 2 or len(denominator) < 2:
        return None
    generator = random.Random(seed)
    ratios: list[float] = []
    for _ in range(rounds):
        top = statistics.median(generator.choices(numerator, k=len(numerator)))
        bottom = statistics.median(generator.choices(denominator, k=len(denominator)))
        if bottom > 0:
            ratios.append(top / bottom)
    if not ratios:
        return None
    ratios.sort()
    return ratios[int(0.025 * (len(ratios) - 1))], ratios[int(0.975 * (len(ratios) - 1))]


def linear_fit(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares ``(intercept, slope)`` of ``y = intercept + slope * x``."""
    if len(points) < 2:
        return None
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return mean_y - slope * mean_x, slope


def seconds(value: float | None, *, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"
