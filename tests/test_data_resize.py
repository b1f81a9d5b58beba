"""MATLAB bicubic wrapper: hand-computed MATLAB weights, rounding, constants, batching, bad input."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from suite.data.resize import degrade, imresize, resize_matrix

# MATLAB's bicubic (Keys, a = -0.5) weights, worked out by hand:
# downscale x2 (kernel widened by 2): taps at distances 3.5, 2.5, 1.5, 0.5 | 0.5, 1.5, 2.5, 3.5 HR px,
# cubic(d / 2) / 2 normalised -> (-3, -9, 29, 111, 111, 29, -9, -3) / 256.
DOWN2 = [Fraction(v, 256) for v in (-3, -9, 29, 111, 111, 29, -9, -3)]
# upscale x2: output i sits at u = i/2 - 1/4; the four taps are 1.75, 0.75, 0.25, 1.25 (even i)
# or 1.25, 0.25, 0.75, 1.75 (odd i) away -> (-3, 29, 111, -9) / 128 and (-9, 111, 29, -3) / 128.
UP2_EVEN = [Fraction(v, 128) for v in (-3, 29, 111, -9)]
UP2_ODD = [Fraction(v, 128) for v in (-9, 111, 29, -3)]


def symmetric(j: int, n: int) -> int:
    """MATLAB's symmetric border: ... b a | a b c ... x y | y x ..."""
    if j < 0:
        return -j - 1
    if j >= n:
        return 2 * n - 1 - j
    return j


def hand_matrix(n_in: int, rows: list[tuple[int, list[Fraction]]]) -> np.ndarray:
    """Matrix from (first tap index, weights) per output row, folding taps at the borders."""
    m = np.zeros((len(rows), n_in))
    for i, (first, weights) in enumerate(rows):
        for k, w in enumerate(weights):
            m[i, symmetric(first + k, n_in)] += float(w)
    return m


def hand_down2(n: int) -> np.ndarray:
    return hand_matrix(n, [(2 * i - 3, DOWN2) for i in range(n // 2)])


def hand_up2(n: int) -> np.ndarray:
    # output i: even -> first tap i/2 - 2, odd -> (i - 1)/2 - 1
    return hand_matrix(n, [((i // 2) - 2, UP2_EVEN) if i % 2 == 0 else ((i // 2) - 1, UP2_ODD) for i in range(2 * n)])


def matlab_round(x: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(x, 0, 255) + 0.5).astype(np.uint8)


def test_operator_rows_are_matlab_weights():
    assert sum(DOWN2) == 1 and sum(UP2_EVEN) == 1 and sum(UP2_ODD) == 1
    np.testing.assert_allclose(resize_matrix(8, 0.5), hand_down2(8), rtol=0, atol=1e-15)
    np.testing.assert_allclose(resize_matrix(6, 2.0), hand_up2(6), rtol=0, atol=1e-15)
    # The border row folds symmetric taps onto the first pixels: (29+111, -9+111, -3+29, -9, -3) / 256.
    np.testing.assert_allclose(resize_matrix(8, 0.5)[0, :5], np.array([140, 102, 26, -9, -3]) / 256, atol=1e-15)


def test_uint8_resize_matches_hand_computed_weights():
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, size=(8, 10, 3), dtype=np.uint8)
    x = img.astype(np.float64)
    down = np.einsum("ih,hwc,jw->ijc", hand_down2(8), x, hand_down2(10))
    np.testing.assert_array_equal(imresize(img, 0.5), matlab_round(down))
    up = np.einsum("ih,hwc,jw->ijc", hand_up2(8), x, hand_up2(10))
    np.testing.assert_array_equal(imresize(img, 2.0), matlab_round(up))


def test_rounding_is_half_away_from_zero_and_clipped():
    # Upscaling a step overshoots (negative lobes): values below 0 / above 255 must clip, not wrap.
    step = np.zeros((4, 8, 1), dtype=np.uint8)
    step[:, 4:] = 255
    up = imresize(step, 2.0)
    assert up.min() == 0 and up.max() == 255
    # Row (0, 0, 0, 32) upscaled x2 is exactly (0, 0, 0, -0.75, -2.25, 6.5, 25.5, 35): MATLAB rounds
    # 6.5 to 7 (half away from zero) where round-half-to-even would give 6.
    row = np.array([0, 0, 0, 32], dtype=np.uint8)
    exact = row.astype(np.float64) @ hand_up2(4).T
    assert exact[5] == 6.5
    out = imresize(np.tile(row[None, :, None], (4, 1, 1)), 2.0)  # (4, 4, 1) -> (8, 8, 1)
    assert out.shape == (8, 8, 1)
    np.testing.assert_array_equal(out[:, :, 0], np.tile([0, 0, 0, 0, 0, 7, 26, 35], (8, 1)))


@pytest.mark.parametrize("value", [0, 1, 128, 254, 255])
@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2.0, 3.0, 4.0])
def test_constant_image_stays_constant(value, scale):
    img = np.full((2, 24, 36, 3), value, dtype=np.uint8)
    out = imresize(img, scale)
    assert out.shape == (2, round(24 * scale), round(36 * scale), 3)
    assert (out == value).all()


def test_batched_equals_one_by_one_and_sizes():
    rng = np.random.default_rng(1)
    batch = rng.integers(0, 256, size=(3, 36, 48, 3), dtype=np.uint8)
    for s in (2, 3, 4):
        lr = degrade(batch, s)
        assert lr.shape == (3, 36 // s, 48 // s, 3)
        for i in range(3):
            np.testing.assert_array_equal(lr[i], degrade(batch[i], s))
    # MATLAB's ceil for sizes that do not divide
    assert imresize(batch[0, :7, :9], 0.5).shape == (4, 5, 3)


def test_equals_pyiqa_resampler_in_float64():
    """The band operator reproduces pyiqa's own resize_1d run in float64 (before rounding)."""
    from pyiqa.matlab_utils.resize import resize_1d

    from suite.data.resize import imresize_float64

    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, size=(30, 42, 3), dtype=np.uint8)
    for scale in (1 / 2, 1 / 3, 1 / 4, 3.0):
        x = torch.from_numpy(img.transpose(2, 0, 1).copy()).to(torch.float64)[:, None]  # (3, 1, H, W)
        h, w = img.shape[:2]
        ref = resize_1d(x, -2, size=int(np.ceil(h * scale)), scale=scale)
        ref = resize_1d(ref, -1, size=int(np.ceil(w * scale)), scale=scale)[:, 0].numpy().transpose(1, 2, 0)
        np.testing.assert_allclose(imresize_float64(img, scale), ref, rtol=0, atol=1e-9)


def test_within_one_level_of_pyiqa_imresize():
    """pyiqa's public imresize computes in float32; rounded, it differs from ours by at most 1 level."""
    from pyiqa.matlab_utils import imresize as pyiqa_imresize

    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, size=(48, 60, 3), dtype=np.uint8)
    x = torch.from_numpy(img.transpose(2, 0, 1).copy()).to(torch.float64)[None]
    theirs = pyiqa_imresize(x, scale=0.25)[0].numpy().transpose(1, 2, 0)
    diff = np.abs(imresize(img, 0.25).astype(int) - matlab_round(theirs).astype(int))
    assert diff.max() <= 1


def test_too_small_axis_is_a_clear_error():
    with pytest.raises(ValueError, match="too small"):
        imresize(np.zeros((1, 8, 3), dtype=np.uint8), 2.0)


@pytest.mark.parametrize(
    "bad, scale, match",
    [
        (np.zeros((4, 4, 3), dtype=np.float32), 0.5, "uint8"),
        (np.zeros((4, 4), dtype=np.uint8), 0.5, r"\(H, W, C\)"),
        (np.zeros((4, 4, 3), dtype=np.uint8), 0, "positive"),
        (np.zeros((4, 4, 3), dtype=np.uint8), float("nan"), "positive"),
    ],
)
def test_bad_input_is_refused(bad, scale, match):
    with pytest.raises(ValueError, match=match):
        imresize(bad, scale)


def test_bench_resize_writes_its_timings_with_a_run_record(tmp_path):
    import json

    from suite.cli import main

    out = tmp_path / "resize.json"
    assert (
        main(["bench", "resize", "--images", "1", "--height", "8", "--width", "8", "--scales", "2", "--out", str(out)])
        == 0
    )
    result = json.loads(out.read_text())
    assert result["n_images"] == 1 and list(result["seconds_per_scale"]) == ["x2"]
    record = result["provenance"]
    assert record["device"] == "cpu" and record["numpy"] == np.__version__ and "git_commit" in record
    assert record["command"] == f"suite bench resize --images 1 --height 8 --width 8 --scales 2 --seed 0 --out {out}"
