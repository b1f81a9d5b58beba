"""The paper's workflow executed end to end at micro sizes: workflows/config/paper.yaml with paper-micro.yaml.

Micro archives in the real sources' layouts are served from 127.0.0.1: DIV2K's eight zips (train and valid HR,
MATLAB-bicubic LR at x2, x3, x4), EDSR's Flickr2K.tar (HR and an LR folder the fetch leaves out) and
benchmark.tar (Set5, Set14, B100, Urban100 with HR and LR_bicubic), found through SUITE_DATA_MIRROR as a
mirror of the public sources, and a Manga109.zip named by `datasets.Manga109.url`. Snakemake then runs every
job of the paper's DAG: the fetches and the DF2K merge, light and large+ from their official recipe files at
x2, x3 from x2 and x4 from x3, each a torchrun launch of 2 processes (gloo), evaluation on the five test sets,
the analysis tools, the profile sweep and the report with the paper's row beside large+. A second invocation
has nothing to do. Marked `paper_micro`: .ci/run runs it on its own (about five minutes on 2 cores).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import copy_workflow, job_counts, serve_folder, shell_lines, snakemake
from suite.data.mini import load_photograph
from suite.data.resize import imresize

pytestmark = pytest.mark.paper_micro

SCALES = (2, 3, 4)
MODELS = ("light-rib", "large+-rib")
TEST_SETS = ("Set5", "Set14", "B100", "Urban100", "Manga109")
PAPER_ROW = "SST-L+ (DF2K)"  # paper.yaml's report.paper_rows for large+ (the paper's teaser)


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def crops(photo: str, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Crops (H, W) of a bundled scikit-image photograph, from its top-left corner along the diagonal; every
    size a multiple of 12, so x2, x3 and x4 divide it (no modcrop)."""
    image = load_photograph(photo)
    return [image[i * 24 : i * 24 + h, i * 24 : i * 24 + w] for i, (h, w) in enumerate(sizes)]


def lr_members(folder: str, name: str, hr: np.ndarray, suffix: str = "x{s}") -> dict[str, bytes]:
    """`folder/X{s}/{name}{suffix}.png` at each scale: MATLAB bicubic, as the published LR folders."""
    return {f"{folder}/X{s}/{name}{suffix.format(s=s)}.png": png(imresize(hr, 1 / s)) for s in SCALES}


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def serve_micro_archives(folder: Path) -> dict[str, int]:
    """Write the micro archives into `folder` in the public sources' file names and layouts; returns the
    number of HR images per training source."""
    div2k_train = crops("rocket", [(96, 72), (72, 120), (48, 96)])  # 0001.png .. 0003.png
    div2k_valid = crops("coffee", [(48, 48)])  # 0801.png
    flickr = crops("chelsea", [(120, 96), (72, 72)])  # 000001.png, 000002.png
    for split, images, first in (("train", div2k_train, 1), ("valid", div2k_valid, 801)):
        names = [f"{first + i:04d}" for i in range(len(images))]
        write_zip(
            folder / f"DIV2K_{split}_HR.zip", {f"DIV2K_{split}_HR/{n}.png": png(hr) for n, hr in zip(names, images)}
        )
        for s in SCALES:
            write_zip(
                folder / f"DIV2K_{split}_LR_bicubic_X{s}.zip",
                {
                    f"DIV2K_{split}_LR_bicubic/X{s}/{n}x{s}.png": png(imresize(hr, 1 / s))
                    for n, hr in zip(names, images)
                },
            )
    flickr_members = {f"Flickr2K/Flickr2K_HR/{i + 1:06d}.png": png(hr) for i, hr in enumerate(flickr)}
    flickr_members.update(lr_members("Flickr2K/Flickr2K_LR_bicubic", "000001", flickr[0]))  # left out by the fetch
    write_tar(folder / "Flickr2K.tar", flickr_members)
    benchmark = {}
    for name, photo, sizes in (
        ("Set5", "astronaut", [(48, 48), (36, 48)]),
        ("Set14", "coins", [(48, 36)]),
        ("B100", "camera", [(36, 36)]),
        ("Urban100", "coffee", [(48, 60), (48, 48)]),
    ):
        for index, hr in enumerate(crops(photo, sizes)):
            stem = f"{name.lower()}_{index}"
            benchmark[f"benchmark/{name}/HR/{stem}.png"] = png(hr)
            benchmark.update(lr_members(f"benchmark/{name}/LR_bicubic", stem, hr))
    write_tar(folder / "benchmark.tar", benchmark)
    # Manga109 as commonly shared: the page images directly under Manga109/ (the suite makes their LR).
    write_zip(folder / "Manga109.zip", {"Manga109/AisazuNihaIrarenai.png": png(crops("astronaut", [(48, 36)])[0])})
    return {"DIV2K": len(div2k_train), "Flickr2K": len(flickr)}


def test_the_papers_workflow_runs_every_job_at_micro_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "served"
    served.mkdir()
    counts = serve_micro_archives(served)
    workdir = copy_workflow(tmp_path / "workflow")
    with serve_folder(served) as base_url:
        monkeypatch.setenv("SUITE_DATA_MIRROR", base_url)
        (workdir / "urls.yaml").write_text(
            yaml.safe_dump({"datasets": {"Manga109": {"url": f"{base_url}/Manga109.zip"}}})
        )
        args = ("--configfile", "workflows/config/paper.yaml", "workflows/config/paper-micro.yaml", "urls.yaml")
        plan = snakemake(workdir, "-n", "-p", "--cores", "2", *args)
        assert plan.returncode == 0, plan.stdout + plan.stderr
        planned = job_counts(plan.stdout)
        started = time.monotonic()
        done = snakemake(workdir, "--cores", "2", *args, timeout=1500)
        wall = time.monotonic() - started
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
        again = snakemake(workdir, "-n", "--cores", "2", *args)
    total = planned.pop("total")
    print(f"paper-micro workflow: {total} jobs in {wall:.0f} s")
    output = done.stdout + done.stderr

    # Every job of the plan ran: the paper's DAG, with Manga109 from its url, nothing skipped.
    assert f"{total} of {total} steps (100%) done" in output
    assert planned == {
        "data_fetch": 4,  # DIV2K, DF2K, benchmark, Manga109
        "train": 2 * 3,
        "eval_checkpoint": 2 * 5 * 3 - 2,
        "eval_checkpoint_with_images": 2,  # the report's crop, Urban100 x4
        "eval_bicubic": 5 * 3 - 1,
        "eval_bicubic_with_images": 1,
        "analyze_bias": 6,
        "analyze_windows": 6,
        "profile_sweep": 1,
        "report": 1,
        "all": 1,
    }
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout

    # The data: the public layouts fetched from the mirror, DF2K the union of DIV2K train and Flickr2K HR.
    data = workdir / "data" / "paper-micro"
    assert len(list((data / "DF2K").iterdir())) == counts["DIV2K"] + counts["Flickr2K"]
    assert not (data / "Flickr2K" / "Flickr2K_LR_bicubic").exists()
    assert "suite data fetch Manga109 --root data/paper-micro --url http://127.0.0.1:" in plan.stdout
    assert sorted(path.name for path in (data / "benchmark").iterdir()) == sorted(TEST_SETS[:4])

    # Training: each official recipe file, x3 from x2 and x4 from x3, torchrun with 2 processes.
    results = workdir / "results" / "paper-micro"
    trains = {re.search(r"name=(\S+)", line)[1]: line for line in shell_lines(plan.stdout, " train --config")}
    assert sorted(trains) == sorted(f"{model}-x{scale}" for model in MODELS for scale in SCALES)
    for model in MODELS:
        option = {"light-rib": "SSTlight_DIV2K", "large+-rib": "SSTLarge_Plus_DF2K"}[model]
        for scale in SCALES:
            line = trains[f"{model}-x{scale}"]
            assert line.startswith("OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=2 -m suite train ")
            assert f"--config workflows/config/recipes/official/{option}_X{scale}.yaml " in line
            summary = json.loads((results / "train" / f"{model}-x{scale}" / "summary.json").read_text())
            assert (summary["iterations"], summary["world_size"], summary["global_batch"]) == (6, 2, 2)
            assert summary["lr_patch"] == (12 if model == "large+-rib" else 8) and np.isfinite(summary["val_psnr"])
            if scale > 2:
                log = (workdir / "logs" / "paper-micro" / "train" / f"{model}-x{scale}.log").read_text()
                assert f"init_from results/paper-micro/train/{model}-x{scale - 1}/final.pt: re-interpolated" in log

    # Evaluation on the five test sets at every scale; the report beside the paper's row.
    for model in ("bicubic", *MODELS):
        for name in TEST_SETS:
            for scale in SCALES:
                result = json.loads((results / "eval" / model / f"{name}-x{scale}.json").read_text())
                assert result["scale"] == scale and np.isfinite(result["psnr"])
    table = pd.read_csv(results / "tables" / "paper_comparison.csv")
    assert set(table["method"]) == {"large+-rib"} and set(table["paper_row"]) == {PAPER_ROW}
    compared = table[table["psnr_paper"].notna()]  # the teaser's cells of SST-L+ (DF2K): Urban100 x2, x3, x4
    assert sorted(zip(compared["dataset"], compared["scale"])) == [("Urban100", s) for s in SCALES]
    assert compared["psnr_diff_low"].notna().all() and compared["psnr_diff_high"].notna().all()
    report = (results / "REPORT.md").read_text()
    assert PAPER_ROW in report and "large+-rib" in report and "light-rib" in report
