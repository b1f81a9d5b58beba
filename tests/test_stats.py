"""suite.stats: the paired percentile bootstrap behind every interval the report gives a difference."""

from __future__ import annotations

import numpy as np
import pytest

from suite.stats import paired_bootstrap, paired_differences, paired_ratio, unpaired_ratio


def test_constant_differences_give_a_point_interval():
    interval = paired_bootstrap([0.25] * 7)
    assert (interval.mean, interval.low, interval.high, interval.n) == (0.25, 0.25, 0.25, 7)
    assert interval.resolved and interval.method().startswith("95% percentile bootstrap")


def test_interval_is_the_quantiles_of_resampled_means():
    differences = [0.3, -0.1, 0.05, 0.2, -0.05]
    interval = paired_bootstrap(differences, resamples=2000, seed=4)
    rng = np.random.default_rng(4)
    means = np.asarray(differences)[rng.integers(0, 5, size=(2000, 5))].mean(axis=1)
    assert (interval.low, interval.high) == tuple(np.quantile(means, [0.025, 0.975]))
    assert interval.mean == pytest.approx(np.mean(differences))
    assert not interval.resolved  # the interval straddles 0
    assert paired_bootstrap(differences, resamples=2000, seed=4) == interval  # same seed, same interval


def test_sign_of_a_clear_difference_is_resolved_both_ways():
    up = paired_bootstrap([0.10, 0.12, 0.08, 0.11, 0.09])
    down = paired_bootstrap([-0.10, -0.12, -0.08, -0.11, -0.09])
    assert up.resolved and up.low > 0 and down.resolved and down.high < 0


def test_pairs_are_matched_by_image_name_and_bad_input_is_named():
    assert paired_differences({"b": 2.0, "a": 1.0}, {"a": 0.5, "b": 1.0}) == [0.5, 1.0]
    with pytest.raises(ValueError, match=r"images scored by one side only: c"):
        paired_differences({"a": 1.0, "c": 2.0}, {"a": 1.0})
    with pytest.raises(ValueError, match=r"non-empty list \(or seeds x images table\) of differences"):
        paired_bootstrap([])
    with pytest.raises(ValueError, match=r"must be finite"):
        paired_bootstrap([0.1, float("inf")])
    with pytest.raises(ValueError, match=r"level 1.5 must lie in \(0, 1\)"):
        paired_bootstrap([0.1], level=1.5)


def test_ratio_interval_is_the_exponentiated_interval_of_log_ratios_and_reciprocal_when_swapped():
    slow, fast = [2.0, 2.2, 1.9, 2.1, 2.05], [1.0, 1.0, 1.1, 0.95, 1.0]
    ratio = paired_ratio(slow, fast)
    logs = paired_bootstrap(np.log(slow) - np.log(fast))
    assert (ratio.mean, ratio.low, ratio.high) == (np.exp(logs.mean), np.exp(logs.low), np.exp(logs.high))
    assert ratio.resolved and ratio.null == 1.0 and ratio.low > 1.0
    assert ratio.method() == (
        "95% percentile bootstrap of the geometric mean of per-round ratios over 5 interleaved rounds, 10,000 resamples"
    )
    inverse = paired_ratio(fast, slow)
    assert inverse.mean == pytest.approx(1 / ratio.mean) and inverse.low == pytest.approx(1 / ratio.high)
    assert not paired_ratio([1.0, 1.2, 0.9], [1.1, 1.0, 1.0]).resolved  # straddles 1


def test_ratio_rejects_rounds_that_do_not_pair_or_are_not_times():
    with pytest.raises(ValueError, match=r"3 numerator and 2 denominator rounds do not pair up"):
        paired_ratio([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"positive finite"):
        paired_ratio([1.0, 0.0], [1.0, 1.0])


def test_a_table_of_identical_seeds_gives_the_interval_over_images_exactly():
    """Seeds that agree add nothing: the two-stage bootstrap draws the images first, as the one-stage one does."""
    differences = [0.12, -0.03, 0.08, 0.2, 0.01, 0.05]
    one = paired_bootstrap(differences)
    three = paired_bootstrap([differences] * 3)
    assert (three.mean, three.low, three.high) == pytest.approx((one.mean, one.low, one.high), rel=1e-12)
    assert (one.n, three.n) == (6, 18) and one.over == "test images"
    assert three.over == "seed-image pairs (3 seeds x 6 test images, both resampled)"
    assert paired_bootstrap([differences]) == one  # one seed is the list itself


def test_seeds_that_disagree_widen_the_interval_to_their_range():
    """Two seeds whose images agree within each seed: a resample holds seed 1 twice, seed 2 twice, or one of
    each (probability 1/4, 1/4, 1/2), so the 2.5% and 97.5% quantiles are the seeds' own differences."""
    interval = paired_bootstrap([[0.1] * 5, [-0.05] * 5])
    assert (interval.low, interval.high) == pytest.approx((-0.05, 0.1))
    assert interval.mean == pytest.approx(0.025) and not interval.resolved
    assert paired_bootstrap([0.1] * 5 + [-0.05] * 5).high < 0.1  # pooled as images, the interval is narrower


def test_unpaired_ratio_is_the_ratio_of_medians_with_each_side_resampled():
    slow, fast = [2.0, 2.2, 1.9, 2.1, 2.05, 2.3], [1.0, 1.0, 1.1, 0.95]
    ratio = unpaired_ratio(slow, fast)
    assert ratio.mean == pytest.approx(np.median(slow) / np.median(fast))
    assert ratio.low <= ratio.mean <= ratio.high and ratio.resolved and ratio.null == 1.0
    assert "separate runs, not interleaved" in ratio.method()
    same = unpaired_ratio([1.0, 1.2, 0.9, 1.1], [1.05, 0.95, 1.15, 1.0])
    assert not same.resolved
    with pytest.raises(ValueError, match=r"two non-empty samples, got 0 and 2"):
        unpaired_ratio([], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"positive finite"):
        unpaired_ratio([1.0, 0.0], [1.0, 2.0])
