"""Intervals for the differences the suite reports: a paired percentile bootstrap (numpy only, no torch).

A difference between two methods scored on the same test images is paired: each image gives one
difference, and the interval comes from resampling those differences with replacement. It covers the
sampling of test images only; another training seed moves a model by more than that (the README's rank
ablation), which only intervals over seeds capture: with several seeds the differences form a (seeds,
images) table, paired by seed and image, and each resample draws seeds and images with replacement (a
two-stage bootstrap), so the interval holds both the seed-to-seed and the image-to-image spread.

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
    differences: Sequence[float] | Sequence[Sequence[float]],
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = SEED,
) -> Interval:
    """The mean of `differences` and its percentile-bootstrap interval: one difference per test image, or a
    (seeds, images) table of them, resampled over seeds and images both."""
    values = np.asarray(differences, dtype=np.float64)
    if values.ndim not in (1, 2) or values.size == 0:
        raise ValueError(
            f"paired bootstrap: expected a non-empty list (or seeds x images table) of differences, "
            f"got shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError("paired bootstrap: the differences must be finite (an image scored infinite PSNR?)")
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"paired bootstrap: level {level} must lie in (0, 1) and resamples {resamples} be >= 1")
    rng = np.random.default_rng(seed)
    table = values if values.ndim == 2 else values[None, :]  # (seeds, images)
    seeds, images = table.shape
    picked_images = rng.integers(0, images, size=(resamples, images))
    if seeds == 1:
        means = table[0][picked_images].mean(axis=1)
    else:
        picked_seeds = rng.integers(0, seeds, size=(resamples, seeds))
        image_counts = np.stack([np.bincount(row, minlength=images) for row in picked_images])  # (R, images)
        seed_counts = np.stack([np.bincount(row, minlength=seeds) for row in picked_seeds])  # (R, seeds)
        means = np.einsum("rs,si,ri->r", seed_counts, table, image_counts) / (seeds * images)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    over = "test images" if seeds == 1 else f"seed-image pairs ({seeds} seeds x {images} test images, both resampled)"
    return Interval(float(table.mean()), float(low), float(high), int(table.size), resamples, level, over=over)


def paired_differences(first: Mapping[str, float], second: Mapping[str, float]) -> list[float]:
    """first[name] - second[name] for every name both score; ValueError naming the images only one has."""
    only = sorted(set(first) ^ set(second))
    if only:
        raise ValueError(
            f"paired comparison: images scored by one side only: {', '.join(only[:5])}"
            + (" ..." if len(only) > 5 else "")
        )
    return [first[name] - second[name] for name in sorted(first)]


def unpaired_ratio(
    numerator: Sequence[float], denominator: Sequence[float], resamples: int = RESAMPLES, level: float = LEVEL
) -> Interval:
    """The ratio of the medians of two samples of times taken in separate runs (not interleaved), and its
    percentile-bootstrap interval, each sample resampled on its own. It covers the step-to-step spread within
    each run, not whatever changed on the machine between the runs."""
    first, second = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    if first.ndim != 1 or second.ndim != 1 or first.size == 0 or second.size == 0:
        raise ValueError(f"unpaired ratio: expected two non-empty samples, got {first.size} and {second.size} times")
    if not (np.isfinite(first).all() and np.isfinite(second).all() and (first > 0).all() and (second > 0).all()):
        raise ValueError("unpaired ratio: every time must be a positive finite number")
    rng = np.random.default_rng(SEED)
    tops = np.median(first[rng.integers(0, first.size, size=(resamples, first.size))], axis=1)
    bottoms = np.median(second[rng.integers(0, second.size, size=(resamples, second.size))], axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(tops / bottoms, [tail, 1 - tail])
    return Interval(
        float(np.median(first) / np.median(second)),
        float(low),
        float(high),
        int(min(first.size, second.size)),
        resamples,
        level,
        statistic="ratio of medians (each side resampled on its own)",
        over=f"timed steps or more per side ({first.size} / {second.size}; separate runs, not interleaved)",
        null=1.0,
    )


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
