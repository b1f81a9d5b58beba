"""Intervals for the differences the suite reports: a paired percentile bootstrap (numpy only, no torch).

A difference between two methods scored on the same test images is paired: each image gives one
difference, and the interval comes from resampling those differences with replacement. It covers the
sampling of test images only; another training seed moves a model by more than that (the README's rank
ablation), which only intervals over seeds capture.

A speed ratio measured in interleaved rounds is paired by round: `paired_ratio` bootstraps the per-round
log ratios and reports their geometric mean, so that A/B and B/A give reciprocal intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95
SEED = 0  # fixed, so a report written twice gives the same intervals


@dataclass(frozen=True)
class Interval:
    """A paired statistic (by default the mean of paired differences) with its percentile-bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int  # paired observations
    resamples: int
    level: float
    statistic: str = "mean paired difference"
    over: str = "test images"  # what one paired observation is
    null: float = 0.0  # the value of "no difference"

    @property
    def resolved(self) -> bool:
        """Whether the interval excludes the null value (0 for a difference, 1 for a ratio)."""
        return self.low > self.null or self.high < self.null

    def method(self) -> str:
        return (
            f"{self.level:.0%} percentile bootstrap of the {self.statistic} over {self.n} {self.over}, "
            f"{self.resamples:,} resamples"
        )


def paired_bootstrap(
    differences: Sequence[float], resamples: int = RESAMPLES, level: float = LEVEL, seed: int = SEED
) -> Interval:
    """The mean of `differences` (one per paired observation) and its percentile-bootstrap interval."""
    values = np.asarray(differences, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"paired bootstrap: expected a non-empty list of differences, got {values.size} values")
    if not np.isfinite(values).all():
        raise ValueError("paired bootstrap: the differences must be finite (an image scored infinite PSNR?)")
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"paired bootstrap: level {level} must lie in (0, 1) and resamples {resamples} be >= 1")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(values.mean()), float(low), float(high), int(values.size), resamples, level)


def paired_differences(first: Mapping[str, float], second: Mapping[str, float]) -> list[float]:
    """first[name] - second[name] for every name both score; ValueError naming the images only one has."""
    only = sorted(set(first) ^ set(second))
    if only:
        raise ValueError(
            f"paired comparison: images scored by one side only: {', '.join(only[:5])}"
            + (" ..." if len(only) > 5 else "")
        )
    return [first[name] - second[name] for name in sorted(first)]


def paired_ratio(
    numerator: Sequence[float], denominator: Sequence[float], resamples: int = RESAMPLES, level: float = LEVEL
) -> Interval:
    """The geometric mean of the per-round ratios numerator[i] / denominator[i] (times of two steps in the
    same interleaved round) and its percentile-bootstrap interval."""
    first, second = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(f"paired ratio: {first.size} numerator and {second.size} denominator rounds do not pair up")
    if not (np.isfinite(first).all() and np.isfinite(second).all() and (first > 0).all() and (second > 0).all()):
        raise ValueError("paired ratio: every time must be a positive finite number")
    logs = paired_bootstrap(np.log(first) - np.log(second), resamples=resamples, level=level)
    return Interval(
        math.exp(logs.mean),
        math.exp(logs.low),
        math.exp(logs.high),
        logs.n,
        logs.resamples,
        logs.level,
        statistic="geometric mean of per-round ratios",
        over="interleaved rounds",
        null=1.0,
    )
