"""`suite data mini`: byte-identical on every run, disjoint train/test, benchmark layout, MATLAB LR."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from suite.cli import main
from suite.data.datasets import open_paired
from suite.data.io import read_image
from suite.data.mini import SCALES, SPLITS, TEST_SIZE, TRAIN_SIZE
from suite.data.resize import degrade


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_runs_write_identical_bytes(mini_root, tmp_path, capsys):
    assert main(["data", "mini", "--root", str(tmp_path / "again")]) == 0
    assert "train 9, test 5 images" in capsys.readouterr().out
    first, second = _tree(mini_root), _tree(tmp_path / "again")
    assert list(first) == list(second)
    assert all(first[name] == second[name] for name in first)
    # and a rerun into the same folder changes nothing
    assert main(["data", "mini", "--root", str(tmp_path / "again")]) == 0
    assert _tree(tmp_path / "again") == second


def test_layout_sizes_and_lr_are_matlab_bicubic(mini_root):
    for split, size in (("train", TRAIN_SIZE), ("test", TEST_SIZE)):
        names = [name for name, _ in SPLITS[split]]
        assert sorted(p.stem for p in (mini_root / split / "HR").iterdir()) == sorted(names)
        for scale in SCALES:
            ds = open_paired(mini_root / split, scale)
            assert ds.lr_source == "stored" and len(ds) == len(names)
        hr = read_image(mini_root / split / "HR" / f"{names[0]}.png")
        assert hr.shape == (size, size, 3)
        for scale in SCALES:
            lr = read_image(mini_root / split / "LR_bicubic" / f"X{scale}" / f"{names[0]}x{scale}.png")
            np.testing.assert_array_equal(lr, degrade(hr, scale))


def test_train_and_test_share_no_source_image(mini_root):
    manifest = json.loads((mini_root / "manifest.json").read_text())
    sources = {split: {row["source"] for row in info["images"]} for split, info in manifest["splits"].items()}
    assert sources["train"].isdisjoint(sources["test"])
    assert len(sources["train"]) == 9 and len(sources["test"]) == 5
    # nor any identical picture, and the grey photographs really became RGB
    digests = {
        split: {hashlib.sha256(p.read_bytes()).hexdigest() for p in (mini_root / split / "HR").iterdir()}
        for split in ("train", "test")
    }
    assert digests["train"].isdisjoint(digests["test"])
    camera = read_image(mini_root / "test" / "HR" / "camera.png")
    assert (camera[:, :, 0] == camera[:, :, 2]).all()
