"""Training patches sampled over BasicSR's sub-images (`TrainPatches(subimages=(size, step))`), cut on the fly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from suite.data.datasets import TrainPatches, modcrop, subimage_starts
from suite.data.io import read_image, write_png
from suite.data.resize import degrade
from suite.train.config import validate
from suite.train.trainer import _open_train_data

SIZE, STEP, PATCH = 48, 24, 8  # HR sub-image 48 (LR 24 at x2), 24 apart, LR patch 8

# BasicSR's rule (extract_subimages.py, thresh_size 0) worked by hand for the fixture's modcropped sides at
# size 48, step 24: range(0, side - 48 + 1, 24), then side - 48 appended if side - (last + 48) > 0.
#   96 -> 0, 24, 48 (96 - 96 = 0: nothing appended)
#   160 -> 0, 24, 48, 72, 96, then 112 (160 - 144 = 16 > 0)
#   48 -> 0
#   72 -> 0, 24;  121 is modcropped to 120 at x2 -> 0, 24, 48, 72 (unmodcropped, 121 - 120 = 1 would add 73)
HAND_STARTS = {
    "img0": ([0, 24, 48], [0, 24, 48, 72, 96, 112]),  # 96x160: 3 x 6 = 18 sub-images
    "img1": ([0], [0]),  # 48x48: 1
    "img2": ([0, 24], [0, 24, 48, 72]),  # 72x121: 2 x 4 = 8
}
SIZES = {"img0": (96, 160), "img1": (48, 48), "img2": (72, 121)}  # (H, W)


@pytest.fixture(scope="module")
def sub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Benchmark layout with stored x2 LR: three images of different sizes, one of odd width."""
    root = tmp_path_factory.mktemp("sub") / "S"
    for i, (name, (h, w)) in enumerate(SIZES.items()):
        hr = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)  # (H, W, 3)
        write_png(root / "HR" / f"{name}.png", hr)
        write_png(root / "LR_bicubic" / "X2" / f"{name}x2.png", degrade(modcrop(hr, 2), 2))
    return root


def _hand_subimages(ds: TrainPatches) -> Counter:
    """(image index, LR top, LR left) of every sub-image of HAND_STARTS, once each."""
    return Counter(
        (image, top // 2, left // 2)
        for image, pair in enumerate(ds.pairs)
        for top in HAND_STARTS[pair.name][0]
        for left in HAND_STARTS[pair.name][1]
    )


@pytest.mark.parametrize(
    "side, size, step, expected",
    [
        # DIV2K's width at the official 480/240: range(0, 1561, 240) = 0..1440, then 2040 - 1920 = 120 > 0 adds 1560
        (2040, 480, 240, [0, 240, 480, 720, 960, 1200, 1440, 1560]),
        (480, 480, 240, [0]),  # exactly one sub-image: 480 - 480 = 0 adds nothing
        (481, 480, 240, [0, 1]),  # one pixel left over: 481 - 480 = 1 > 0 adds 1
        (720, 480, 240, [0, 240]),  # 720 - 720 = 0 adds nothing
        (1356, 480, 240, [0, 240, 480, 720, 876]),  # a DIV2K height: 1356 - 1200 = 156 > 0 adds 876
        (160, 48, 24, [0, 24, 48, 72, 96, 112]),
    ],
)
def test_starts_follow_basicsr_rule(side: int, size: int, step: int, expected: list[int]) -> None:
    assert subimage_starts(side, size, step) == expected


def test_side_shorter_than_subimage_is_refused() -> None:
    with pytest.raises(ValueError, match="side of 479 is shorter than a sub-image of 480"):
        subimage_starts(479, 480, 240)


def test_epoch_draws_each_subimage_once(sub_root: Path) -> None:
    ds = TrainPatches(sub_root, 2, PATCH, seed=3, subimages=(SIZE, STEP))
    hand = _hand_subimages(ds)
    assert len(ds) == sum(hand.values()) == 18 + 1 + 8  # the default epoch: one sample per sub-image
    for epoch in range(3):
        plans = [ds.sample_plan(i, epoch) for i in range(len(ds))]
        per_image = Counter(ds.pairs[plan["image"]].name for plan in plans)
        assert per_image == {"img0": 18, "img1": 1, "img2": 8}
        drawn = Counter((plan["image"], *plan["subimage"][:2]) for plan in plans)
        assert drawn == hand  # every sub-image exactly once, in this epoch's own order
    orders = [[ds.sample_plan(i, epoch)["subimage"] for i in range(len(ds))] for epoch in (0, 1)]
    assert orders[0] != orders[1]


def test_corners_stay_inside_their_subimage(sub_root: Path) -> None:
    ds = TrainPatches(sub_root, 2, PATCH, seed=0, subimages=(SIZE, STEP))
    corners = set()
    for epoch in range(40):
        for i in range(len(ds)):
            plan = ds.sample_plan(i, epoch)
            top, left, side = plan["subimage"]
            assert side == SIZE // 2
            assert top <= plan["top"] <= top + side - PATCH and left <= plan["left"] <= left + side - PATCH, plan
            corners.add((plan["top"] - top, plan["left"] - left))
    # both ends of the inclusive range [0, 24 - 8] are drawn, on both axes
    offsets = {c for corner in corners for c in corner}
    assert {0, SIZE // 2 - PATCH} <= offsets


def test_plan_is_a_function_of_seed_epoch_index(sub_root: Path) -> None:
    fresh = TrainPatches(sub_root, 2, PATCH, seed=7, subimages=(SIZE, STEP))
    used = TrainPatches(sub_root, 2, PATCH, seed=7, subimages=(SIZE, STEP))
    used.sample_plan(4, epoch=9)  # another epoch's order cached first
    assert [used.sample_plan(i, 2) for i in reversed(range(len(used)))][::-1] == [
        fresh.sample_plan(i, 2) for i in range(len(fresh))
    ]
    longer = TrainPatches(sub_root, 2, PATCH, seed=7, length=60, subimages=(SIZE, STEP))
    # past one pass the order wraps round: sample i + 27 is drawn in the same sub-image as sample i
    assert [longer.sample_plan(i + 27, 1)["subimage"] for i in range(27)] == [
        fresh.sample_plan(i, 1)["subimage"] for i in range(27)
    ]


@pytest.mark.parametrize("on_the_fly", [False, True])
def test_patches_are_crops_of_the_whole_image(sub_root: Path, on_the_fly: bool) -> None:
    ds = TrainPatches(sub_root, 2, PATCH, seed=1, augment=False, on_the_fly=on_the_fly, subimages=(SIZE, STEP))
    for i in range(len(ds)):
        plan, (lr, hr) = ds.sample_plan(i), ds[i]
        name, top, left = ds.pairs[plan["image"]].name, plan["top"], plan["left"]
        lr_file = read_image(sub_root / "LR_bicubic" / "X2" / f"{name}x2.png")[top : top + PATCH, left : left + PATCH]
        hr_file = read_image(sub_root / "HR" / f"{name}.png")[
            2 * top : 2 * (top + PATCH), 2 * left : 2 * (left + PATCH)
        ]
        # x2 on the fly is pixel-identical to the stored LR's crop (tests/test_data_datasets.py)
        assert torch.equal(lr, torch.from_numpy(lr_file.transpose(2, 0, 1).copy()).float() / 255), (i, plan)
        assert torch.equal(hr, torch.from_numpy(hr_file.transpose(2, 0, 1).copy()).float() / 255), (i, plan)


def test_without_subimages_the_samples_are_unchanged(sub_root: Path) -> None:
    before = TrainPatches(sub_root, 2, PATCH, seed=5, length=10)
    after = TrainPatches(sub_root, 2, PATCH, seed=5, length=10, subimages=None)
    for epoch in (0, 4):
        for i in range(10):
            plan = after.sample_plan(i, epoch)
            assert plan == before.sample_plan(i, epoch) and plan["subimage"] is None
            # the draws of the code before sub-images, written out: image from the epoch's permutation of the
            # images, then top, left and transform from the sample's own generator
            rng = np.random.default_rng([5, epoch, i])
            image = int(np.random.default_rng([5, epoch, 2**31]).permutation(3)[i % 3])
            lr_h, lr_w = SIZES[after.pairs[image].name][0] // 2, SIZES[after.pairs[image].name][1] // 2
            expected = (
                image,
                int(rng.integers(0, lr_h - PATCH + 1)),
                int(rng.integers(0, lr_w - PATCH + 1)),
                int(rng.integers(0, 8)),
            )
            assert (plan["image"], plan["top"], plan["left"], plan["transform"]) == expected
    assert len(after) == 10 and len(TrainPatches(sub_root, 2, PATCH, seed=5)) == 3


def test_image_smaller_than_a_subimage_is_named(tmp_path: Path) -> None:
    write_png(tmp_path / "fits" / "wide.png", np.zeros((49, 120, 3), dtype=np.uint8))  # modcropped 48x120
    assert len(TrainPatches(tmp_path / "fits", 2, PATCH, seed=0, subimages=(48, 24))) == 1 * 4
    write_png(tmp_path / "short" / "short.png", np.zeros((47, 120, 3), dtype=np.uint8))  # modcropped 46 < 48
    with pytest.raises(ValueError) as err:
        TrainPatches(tmp_path / "short", 2, PATCH, seed=0, subimages=(48, 24))
    message = str(err.value)
    assert "short.png" in message and "120x47" in message and "120x46" in message and "48x48" in message


@pytest.mark.parametrize(
    "subimages, fragment",
    [
        ((0, 24), "sub-image size must be a positive integer"),
        ((48, 64), "step 64 is larger than its size 48"),
        ((49, 24), "multiples of the scale x2"),
        ((48, 25), "multiples of the scale x2"),
        ((12, 12), "smaller than the LR patch 8"),
    ],
)
def test_bad_subimages_are_refused(sub_root: Path, subimages: tuple[int, int], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        TrainPatches(sub_root, 2, PATCH, seed=0, subimages=subimages)


def test_trainer_passes_the_recipe_field(sub_root: Path, tmp_path: Path) -> None:
    recipe = {
        "out_dir": str(tmp_path / "run"),
        "model": {"preset": "tiny", "scale": 2},
        "data": {"train": str(sub_root), "lr_patch": PATCH, "subimages": {"size": SIZE, "step": STEP}},
    }
    ds = _open_train_data(validate(recipe))
    assert ds.subimages == (SIZE, STEP) and len(ds) == 27
    recipe["data"]["subimages"] = None
    assert len(_open_train_data(validate(recipe))) == 3
