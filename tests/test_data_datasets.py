"""Paired datasets (benchmark, DIV2K, HR-only layouts) and the deterministic training patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from suite.data.datasets import TrainPatches, modcrop, open_paired
from suite.data.io import read_image, write_png
from suite.data.resize import degrade


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random image (noise blurred by bicubic down/up) so resampling has structure to keep."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    from suite.data.resize import imresize

    return np.ascontiguousarray(imresize(coarse, 4.0)[:h, :w])


def _benchmark(root: Path, sizes: list[tuple[int, int]], scales=(2,), stored=True) -> Path:
    for i, (h, w) in enumerate(sizes):
        hr = _photo(h, w, i)
        write_png(root / "HR" / f"img{i}.png", hr)
        if stored:
            for s in scales:
                write_png(root / "LR_bicubic" / f"X{s}" / f"img{i}x{s}.png", degrade(modcrop(hr, s), s))
    return root


def test_benchmark_layout_with_stored_lr(tmp_path):
    root = _benchmark(tmp_path / "SetA", [(40, 48), (36, 44)])
    ds = open_paired(root, 2)
    assert (ds.name, ds.layout, ds.lr_source, len(ds)) == ("SetA", "benchmark", "stored", 2)
    item = ds[1]
    assert item["name"] == "img1"
    assert item["hr"].shape == (36, 44, 3) and item["lr"].shape == (18, 22, 3)
    np.testing.assert_array_equal(item["lr"], read_image(root / "LR_bicubic" / "X2" / "img1x2.png"))


def test_hr_only_folder_modcrops_and_degrades(tmp_path):
    hr = _photo(43, 50, 3)
    write_png(tmp_path / "pics" / "odd.png", hr)
    (tmp_path / "pics" / "notes.txt").write_text("ignored: not an image")
    ds = open_paired(tmp_path / "pics", 4)
    assert (ds.layout, ds.lr_source, len(ds)) == ("hr-only", "matlab-bicubic", 1)
    item = ds[0]
    np.testing.assert_array_equal(item["hr"], hr[:40, :48])
    np.testing.assert_array_equal(item["lr"], degrade(hr[:40, :48], 4))


def test_benchmark_layout_without_lr_folder_for_that_scale(tmp_path):
    root = _benchmark(tmp_path / "SetB", [(24, 24)], scales=(2,))
    ds = open_paired(root, 3)
    assert ds.lr_source == "matlab-bicubic" and ds[0]["lr"].shape == (8, 8, 3)


def test_div2k_layout(tmp_path):
    root = tmp_path / "DIV2K"
    hr = _photo(24, 36, 5)
    write_png(root / "DIV2K_valid_HR" / "0801.png", hr)
    write_png(root / "DIV2K_valid_LR_bicubic" / "X2" / "0801x2.png", degrade(hr, 2))
    write_png(root / "DIV2K_train_HR" / "0001.png", hr)
    ds = open_paired(root, 2)
    assert (ds.name, ds.layout, ds.lr_source) == ("DIV2K_valid", "div2k", "stored")
    assert ds[0]["name"] == "0801"
    train = open_paired(root, 2, split="train")
    assert (train.name, train.lr_source) == ("DIV2K_train", "matlab-bicubic")


def test_size_mismatch_names_both_files_and_sizes(tmp_path):
    root = _benchmark(tmp_path / "SetC", [(40, 48)])
    write_png(root / "LR_bicubic" / "X2" / "img0x2.png", _photo(20, 23, 9))  # should be 20x24 (HxW)
    with pytest.raises(ValueError) as err:
        open_paired(root, 2)
    message = str(err.value)
    assert "img0x2.png is 23x20" in message and "img0.png is 48x40" in message and "24x20" in message


def test_missing_lr_file_empty_and_missing_folders(tmp_path):
    root = _benchmark(tmp_path / "SetD", [(24, 24), (24, 24)])
    (root / "LR_bicubic" / "X2" / "img1x2.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"img1x2\.png"):
        open_paired(root, 2)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no dataset in .*empty: expected .*empty/HR"):
        open_paired(tmp_path / "empty", 2)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        open_paired(tmp_path / "nowhere", 2)
    with pytest.raises(ValueError, match="scale"):
        open_paired(root, 0)


def test_folders_that_are_there_but_not_folders_say_what_they_are(tmp_path):
    root = _benchmark(tmp_path / "SetF", [(24, 24)])
    with pytest.raises(FileNotFoundError, match=r"dataset folder .*img0\.png is a file, not a folder$"):
        open_paired(root / "HR" / "img0.png", 2)
    (root / "LR_bicubic" / "X2" / "img0x2.png").unlink()
    (root / "LR_bicubic" / "X2" / "img0x2.png").mkdir()
    with pytest.raises(FileNotFoundError, match=r"expected .*img0x2\.png, which is a folder, not a file$"):
        open_paired(root, 2)
    (root / "LR_bicubic" / "X2" / "img0x2.png").rmdir()
    (root / "LR_bicubic" / "X2").rmdir()
    (root / "LR_bicubic" / "X2").write_text("not a folder")  # was silently "LR made from HR"
    with pytest.raises(FileNotFoundError, match=r"LR folder .*X2 is a file, not a folder of LR images$"):
        open_paired(root, 2)


def test_corrupt_image_in_folder_is_named(tmp_path):
    root = _benchmark(tmp_path / "SetE", [(24, 24)], stored=False)
    (root / "HR" / "zz.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    ds = open_paired(root, 2)
    assert len(ds) == 2
    with pytest.raises(ValueError, match=r"zz\.png"):
        ds[1]


# --- training patches -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_root(tmp_path_factory) -> Path:
    return _benchmark(tmp_path_factory.mktemp("train") / "T", [(96, 120), (84, 96), (120, 108)], scales=(2, 3, 4))


def _all(ds: TrainPatches) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [ds[i] for i in range(len(ds))]


def test_patches_shapes_and_range(train_root):
    ds = TrainPatches(train_root, 3, 12, seed=0, length=7)
    assert len(ds) == 7
    lr, hr = ds[6]
    assert lr.dtype == torch.float32 and lr.shape == (3, 12, 12) and hr.shape == (3, 36, 36)
    assert 0 <= float(lr.min()) and float(hr.max()) <= 1


def test_patches_are_a_function_of_seed_epoch_index(train_root):
    a = TrainPatches(train_root, 2, 16, seed=5, length=6)
    b = TrainPatches(train_root, 2, 16, seed=5, length=6, cache_images=False)
    backwards = [b[i] for i in reversed(range(6))][::-1]  # access order does not matter
    for (la, ha), (lb, hb) in zip(_all(a), backwards):
        assert torch.equal(la, lb) and torch.equal(ha, hb)
    a.set_epoch(1)
    assert not all(torch.equal(x[1], y[1]) for x, y in zip(_all(a), backwards))
    b.set_epoch(1)
    assert all(torch.equal(x[1], y[1]) for x, y in zip(_all(a), _all(b)))
    other_seed = TrainPatches(train_root, 2, 16, seed=6, length=6)
    assert not all(torch.equal(x[1], y[1]) for x, y in zip(_all(other_seed), backwards))


def test_patches_same_with_dataloader_workers(train_root):
    ds = TrainPatches(train_root, 2, 8, seed=1, length=8)
    ds.set_epoch(3)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    lr_batches = torch.cat([lr for lr, _ in loader])
    assert torch.equal(lr_batches, torch.stack([ds[i][0] for i in range(8)]))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_patches_align_lr_and_hr_under_every_transform(train_root, scale):
    ds = TrainPatches(train_root, scale, 10, seed=2, length=24)
    seen = set()
    for i in range(len(ds)):
        plan = ds.sample_plan(i)
        seen.add(plan["transform"])
        lr, hr = ds[i]
        lr8 = (lr * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        hr8 = (hr * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        # Bicubic commutes with flips/rotations, so the crop's own LR agrees away from its border.
        inner = slice(3, -3)
        diff = np.abs(degrade(hr8, scale)[inner, inner].astype(int) - lr8[inner, inner].astype(int))
        assert diff.max() <= 1, (i, plan)
    assert len(seen) >= 6  # flips and 90-degree rotations are really drawn


def test_patches_without_augmentation_are_plain_crops(train_root):
    ds = TrainPatches(train_root, 2, 10, seed=4, length=5, augment=False)
    for i in range(5):
        plan = ds.sample_plan(i)
        lr, hr = ds[i]
        name = ds.pairs[plan["image"]].name
        top, left = plan["top"], plan["left"]
        lr_file = read_image(train_root / "LR_bicubic" / "X2" / f"{name}x2.png")[top : top + 10, left : left + 10]
        hr_file = read_image(train_root / "HR" / f"{name}.png")[2 * top : 2 * top + 20, 2 * left : 2 * left + 20]
        assert torch.equal(lr, torch.from_numpy(lr_file.transpose(2, 0, 1).copy()).float() / 255)
        assert torch.equal(hr, torch.from_numpy(hr_file.transpose(2, 0, 1).copy()).float() / 255)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_on_the_fly_degradation_matches_stored_lr(train_root, scale):
    stored = TrainPatches(train_root, scale, 12, seed=9, length=30)
    fly = TrainPatches(train_root, scale, 12, seed=9, length=30, on_the_fly=True)
    for (ls, hs), (lf, hf) in zip(_all(stored), _all(fly)):
        assert torch.equal(hs, hf)
        if scale == 3:  # 1/3 is inexact in binary: the crop's operator may round differently by 1e-16
            assert float((ls - lf).abs().max()) <= 1 / 255 + 1e-6
        else:
            assert torch.equal(ls, lf)


def test_hr_only_training_folder_and_small_images(tmp_path):
    write_png(tmp_path / "hr" / "a.png", _photo(40, 44, 1))
    ds = TrainPatches(tmp_path / "hr", 2, 16, seed=0, length=3)
    assert ds[2][1].shape == (3, 32, 32)
    with pytest.raises(ValueError, match=r"a\.png is 44x40: too small"):
        TrainPatches(tmp_path / "hr", 2, 24, seed=0)
    with pytest.raises(ValueError, match="seed"):
        TrainPatches(tmp_path / "hr", 2, 16, seed=-1)


def test_ambiguous_image_stems_are_refused_naming_both_files(tmp_path):
    # a.png beside a.jpg: two rows named `a`, one SR file over the other, ax2.png paired with a.jpg
    root = _benchmark(tmp_path / "SetD", [(24, 24)])
    hr = read_image(root / "HR" / "img0.png")
    from PIL import Image

    Image.fromarray(hr).save(root / "HR" / "img0.jpg", quality=90)
    with pytest.raises(ValueError, match=r"ambiguous image names: .*img0\.jpg and .*img0\.png"):
        open_paired(root, 2)
    with pytest.raises(ValueError, match=r"ambiguous image names"):
        TrainPatches(root, 2, lr_patch=4, seed=0)
    (root / "HR" / "img0.jpg").unlink()
    write_png(root / "HR" / "IMG0.png", hr)  # differs only in case: the same file on some systems
    with pytest.raises(ValueError, match=r"ambiguous image names"):
        open_paired(root, 2)
    (root / "HR" / "IMG0.png").unlink()
    # two stored LR files for one HR image
    lr = read_image(root / "LR_bicubic" / "X2" / "img0x2.png")
    Image.fromarray(lr).save(root / "LR_bicubic" / "X2" / "img0x2.bmp")
    with pytest.raises(ValueError, match=r"ambiguous LR images for .*img0\.png: .*img0x2\.png and .*img0x2\.bmp"):
        open_paired(root, 2)
    (root / "LR_bicubic" / "X2" / "img0x2.bmp").unlink()
    assert len(open_paired(root, 2)) == 1


def test_decode_all_names_the_corrupt_file_before_training(tmp_path):
    from suite.data import decode_all

    root = _benchmark(tmp_path / "SetE", [(24, 24), (24, 28), (28, 24)])
    train = TrainPatches(root, 2, lr_patch=4, seed=0, cache_images=False)
    assert decode_all(train) == 6 and decode_all(open_paired(root, 2)) == 6
    cached = TrainPatches(root, 2, lr_patch=4, seed=0, cache_images=True)
    assert decode_all(cached) == 6 and len(cached._cache) == 6  # decoded once, kept
    before = [cached[i] for i in range(3)]
    fresh = TrainPatches(root, 2, lr_patch=4, seed=0, cache_images=False)
    for (lr_a, hr_a), (lr_b, hr_b) in zip(before, [fresh[i] for i in range(3)]):
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)  # same samples: no RNG consumed

    # a PNG whose header is intact but whose pixel data is cut: the header-only size check passes
    bad = root / "LR_bicubic" / "X2" / "img2x2.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    train = TrainPatches(root, 2, lr_patch=4, seed=0)  # opens fine: sizes come from headers
    with pytest.raises(ValueError, match=r"cannot read image .*img2x2\.png"):
        decode_all(train)
    with pytest.raises(ValueError, match=r"cannot read image .*img2x2\.png"):
        decode_all(open_paired(root, 2))


def test_an_image_too_small_to_degrade_is_named(tmp_path):
    """A 2-pixel axis cannot be MATLAB-resized by 1/2 (the kernel reaches past both borders): the error names
    the file instead of only the axis."""
    root = tmp_path / "Thin"
    write_png(root / "HR" / "thin.png", np.zeros((2, 40, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"thin\.png: image axis of 2 px is too small to resize by 0\.5"):
        open_paired(root, 2)[0]
