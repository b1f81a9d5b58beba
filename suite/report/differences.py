"""Quality differences between evaluated models, each with its interval, and the sentence that states it.

Every difference the report states goes through `psnr_difference`: the evaluations of one model (one per
training seed) against another's, on the same test set and scale, paired by seed and by test image, with
the percentile-bootstrap interval of `suite.stats.paired_bootstrap` (over images; over seeds and images
where there are several seeds). A method evaluated once (bicubic, a released model) stands beside every seed
of the other side. `verdict` turns an interval into the report's words.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

from suite.report.readers import EvalResult, ReportInputError
from suite.stats import LEVEL, RESAMPLES, Interval, paired_bootstrap, paired_differences

RESOLVED = "resolved"
NOT_RESOLVED = "not resolved at this size"


def seed_groups(evals: list[EvalResult]) -> dict[tuple[str, str, int], list[EvalResult]]:
    """(model without its seed, dataset, scale) -> its evaluations, one per seed, by seed."""
    groups: dict[tuple[str, str, int], list[EvalResult]] = {}
    for result in evals:
        groups.setdefault((result.model, result.dataset, result.scale), []).append(result)
    return {key: sorted(found, key=lambda r: r.seed or 0) for key, found in groups.items()}


def per_image_psnr(result: EvalResult, metric: str = "psnr") -> dict[str, float]:
    """Image name -> its score (`metric`: "psnr" or "ssim") from the eval JSON."""
    try:
        return {str(image["name"]): float(image[metric]) for image in result.images}
    except (KeyError, TypeError, ValueError) as err:
        raise ReportInputError(f"{result.path}: per-image scores unreadable ({err!r})") from None


def psnr_difference(first: Sequence[EvalResult], second: Sequence[EvalResult]) -> Interval | None:
    """Mean PSNR of `first` minus `second` (each: one model's evaluations, one per seed) with its interval,
    paired by seed and image; None where a side has no per-image scores. Seeds pair by value; a side with one
    evaluation pairs with every seed of the other."""
    if not first or not second or not all(r.images for r in (*first, *second)):
        return None
    if len(first) > 1 and len(second) > 1:
        seeds = ({r.seed for r in first}, {r.seed for r in second})
        if seeds[0] != seeds[1]:
            raise ReportInputError(
                f"{first[0].path.parent} and {second[0].path.parent}: seeds {sorted(seeds[0])} and "
                f"{sorted(seeds[1])} do not pair up"
            )
        pairs = list(zip(first, second))
    else:
        pairs = [(a, b) for a in first for b in second]
    try:
        table = [paired_differences(per_image_psnr(a), per_image_psnr(b)) for a, b in pairs]
        return paired_bootstrap(table)
    except ValueError as err:
        raise ReportInputError(f"{first[0].path} against {second[0].path}: {err}") from None


def spread(values: Sequence[float]) -> float | None:
    """The sample standard deviation over seeds, None for a single seed."""
    return statistics.stdev(values) if len(values) > 1 else None


def verdict(interval: Interval | None) -> str:
    if interval is None:
        return "no interval (no per-image scores)"
    return RESOLVED if interval.resolved else NOT_RESOLVED


def interval_text(interval: Interval | None, digits: int = 3, unit: str = " dB") -> str:
    """ "+0.008 dB [-0.031, +0.047]" (a ratio: "2.53x [2.41, 2.60]"); "–" where there is no interval."""
    if interval is None:
        return "–"
    sign = "+" if interval.null == 0.0 else ""  # a difference is signed, a ratio is not
    return f"{interval.mean:{sign}.{digits}f}{unit} [{interval.low:{sign}.{digits}f}, {interval.high:{sign}.{digits}f}]"


def over_text(interval: Interval | None) -> str | None:
    """What an interval resampled: "5 test images", "10 seed-image pairs (2 seeds x 5 test images, ...)"."""
    return f"{interval.n} {interval.over}" if interval is not None else None


def method_note(overs: Iterable[str | None]) -> str:
    """How the intervals of a table were computed; `overs`: each interval's `over_text` (None: no interval)."""
    found = sorted({str(over) for over in overs if isinstance(over, str) and over})
    return (
        f"Intervals: {LEVEL:.0%} percentile bootstrap of the mean paired PSNR difference, {RESAMPLES:,} resamples, "
        f"paired by test image (and by training seed where there are several; each resample then draws seeds and "
        f"images with replacement), over {'; '.join(found) or 'nothing'}. Resolved: the interval excludes 0; "
        f"not resolved at this size: it contains 0, so the run cannot tell the two apart."
    )
