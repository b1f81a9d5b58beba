"""The smoke benchmark's tabulation: rows, ratios and target checks from the files its steps write."""

from __future__ import annotations

import json
from pathlib import Path

from suite.train.config import validate
from suite.train.smoke import build_rows, check_targets, markdown_table, smoke_recipe


def write_outputs(out: Path, steps: dict[str, float], psnr: dict[str, float]) -> None:
    def dump(name: str, obj: dict) -> None:
        (out / name).write_text(json.dumps(obj))

    dump("eval-bicubic.json", {"psnr": psnr["bicubic"], "ssim": 0.8})
    for bias in ("rpb", "rib"):
        dump(f"summary-{bias}.json", {"params": 10, "iterations": 400, "global_batch": 4, "lr_patch": 32,
                                      "model": {"window_sizes": [32, 32]}, "median_step_time_s": steps[bias],
                                      "wall_time_s": 400 * steps[bias], "threads": 2})
        dump(f"eval-{bias}.json", {"psnr": psnr[bias], "ssim": 0.9})


def test_targets_follow_the_measurements(tmp_path: Path) -> None:
    write_outputs(tmp_path, {"rpb": 1.0, "rib": 0.4}, {"bicubic": 30.0, "rpb": 31.0, "rib": 30.95})
    rows = build_rows(tmp_path)
    assert [row["method"] for row in rows] == ["tiny-rpb", "tiny-rib", "bicubic"]
    assert rows[0]["step_time_vs_rib"] == 2.5 and rows[1]["psnr_vs_bicubic_db"] == 30.95 - 30.0
    assert [ok for _, ok, _ in check_targets(rows)] == [True, True, True, True]
    assert "| tiny-rib | 10 | 400 | 0.4000 | 1.00 | 160.0 | 30.9500 | 0.9000 | 0.950 |" in markdown_table(rows)

    write_outputs(tmp_path, {"rpb": 1.0, "rib": 0.6}, {"bicubic": 30.0, "rpb": 31.0, "rib": 30.05})
    checks = check_targets(build_rows(tmp_path))
    assert [ok for _, ok, _ in checks] == [False, False, True, False]
    assert checks[0][2] == "1.67x" and checks[1][2] == "RIB - RPB = -0.950 dB"


def test_smoke_recipe_is_valid_and_fits_the_rpb_window() -> None:
    recipe = validate({**smoke_recipe(400, 4, 32, 2, 0), "out_dir": "runs/rpb"}, "smoke")
    assert recipe["model"]["preset"] == "tiny" and recipe["data"]["lr_patch"] == 32
    validate({**smoke_recipe(400, 4, 32, 2, 0), "out_dir": "x", "model": {"preset": "tiny", "bias": "rpb"}}, "smoke")
