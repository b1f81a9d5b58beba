"""The released-model workflow end to end, offline, as a user runs it: workflows/config/verify.yaml with only
each model's `url:` filled, here pointing at a server on 127.0.0.1 that serves the official-equivalence fixture
checkpoints (BasicSR files of small official networks, H1's tests/fixtures/official/; one served as
.safetensors) and a small benchmark-layout Set5. Manga109 stays in verify.datasets without a source.

Checks: every checkpoint is fetched by `suite data fetch-file` over HTTP and pinned in the lock file, each is
evaluated at its own scale without training (the file recognised, its SHA-256 recorded), Manga109 is left out
with one line in REPORT.md, the report writes measured, paper and difference per cell, and a second run has
nothing to do.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import math
import tarfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from safetensors.torch import save_file

from conftest import copy_workflow, snakemake
from suite.data.fetch import MIRROR_ENV
from suite.data.resize import imresize
from suite.files import file_sha256
from suite.models.official import read_basicsr

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "official"
HR_SIDE = 48  # a multiple of 2, 3 and 4: every fixture scale divides it
PAPER_ROW = "SST-XL+ (DFLIP)"  # a stand-in pairing: it exercises the table, not the numbers
PAPER_SET5_X2 = (38.77, 0.9636)  # SPEC section 7, SST-XL+ x2 Set5


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_benchmark_tar(path: Path, hr_folder: Path, scales: set[int]) -> None:
    """benchmark.tar as the EDSR authors ship it: benchmark/Set5/HR/<name>.png and
    benchmark/Set5/LR_bicubic/X<s>/<name>x<s>.png (MATLAB bicubic), here two 48x48 crops."""
    members = {}
    for source in sorted(hr_folder.glob("*.png"))[:2]:
        hr = np.asarray(Image.open(source).convert("RGB"))[:HR_SIDE, :HR_SIDE]
        members[f"benchmark/Set5/HR/{source.stem}.png"] = png_bytes(hr)
        for scale in sorted(scales):
            lr = imresize(hr, 1 / scale)
            members[f"benchmark/Set5/LR_bicubic/X{scale}/{source.stem}x{scale}.png"] = png_bytes(lr)
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture()
def server(tmp_path: Path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served -> (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.slow
def test_verify_workflow_with_only_urls_filled(tmp_path: Path, server, mini_root: Path, monkeypatch) -> None:
    served, base_url = server
    monkeypatch.delenv(MIRROR_ENV, raising=False)  # Manga109 must have no source at all
    fixtures = json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]
    # Four of the fixtures: x2, x3 and x4, both upsamplers, RIB, RPB and RoPE. Every official type is
    # converted and evaluated in process by tests/test_official.py; here each model costs a `suite eval` process.
    served_keys = ("rib_pixelshuffle_x2", "rib_direct_x3_shifted", "rpb_pixelshuffle_x4", "rope_mixed_pixelshuffle_x2")
    # One served as .safetensors: the fixture's official state dict, flat.
    as_safetensors = "rib_direct_x3_shifted"
    suffixes = {key: ".safetensors" if key == as_safetensors else ".pth" for key in served_keys}
    state, _ = read_basicsr(FIXTURES / f"{as_safetensors}.pth")
    save_file({key: tensor.contiguous() for key, tensor in state.items()}, served / f"{as_safetensors}.safetensors")
    models = []
    for key in sorted(served_keys):
        if suffixes[key] == ".pth":
            (served / f"{key}.pth").write_bytes((FIXTURES / f"{key}.pth").read_bytes())
        suite = fixtures[key]["suite"]
        # The fields verify.yaml's entries have, the small fixture network's model_overrides and bias, and
        # `url:` filled: no `path:`.
        models.append(
            {
                "name": key,
                "preset": suite["preset"],
                "bias": suite.get("bias", "rib"),
                "scale": suite["scale"],
                "model_overrides": suite["overrides"],
                "url": f"{base_url}/{key}{suffixes[key]}",
                "paper": None,
            }
        )
    next(model for model in models if model["scale"] == 2)["paper"] = PAPER_ROW
    assert {m["scale"] for m in models} == {2, 3, 4} and all("path" not in model for model in models)
    write_benchmark_tar(served / "benchmark.tar", mini_root / "test" / "HR", {m["scale"] for m in models})

    verify = yaml.safe_load((REPO / "workflows/config/verify.yaml").read_text())
    assert "Manga109" in verify["verify"]["datasets"] and verify["datasets"]["Manga109"].get("url") is None
    # The real verify.yaml's XL+ models are too big for a CPU: the fixture models take their place, each with
    # only its url filled; Set5 comes from the local server, Manga109 keeps verify.yaml's entry (no source).
    config = {
        "name": "verify_test",
        "device": "cpu",
        "precision": "fp32",
        "data_root": "data/verify",
        "datasets": {"Set5": {"path": "benchmark/Set5", "fetch": "Set5", "url": f"{base_url}/benchmark.tar"}},
        "verify": {
            "datasets": ["Set5", "Manga109"],
            "models": models,
            "resources": {"threads": 1, "gpus": 0, "mem_mb": 2000, "runtime": 10},
        },
    }
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "verify_test.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    args = ("--configfile", "workflows/config/verify.yaml", "verify_test.yaml")

    done = snakemake(workdir, "--cores", "2", *args, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "rule train" not in done.stdout + done.stderr

    results = workdir / "results" / "verify_test"
    released = workdir / "data" / "verify" / "released"
    lock = json.loads((released / "suite-data.lock.json").read_text())
    for model in models:
        name = model["name"]
        checkpoint = released / f"{name}{suffixes[name]}"  # the source's suffix kept
        assert file_sha256(checkpoint) == file_sha256(served / f"{name}{suffixes[name]}")
        assert file_sha256(checkpoint) in json.dumps(lock)  # pinned on first download
        result = json.loads((results / "eval" / name / f"Set5-x{model['scale']}.json").read_text())
        assert result["scale"] == model["scale"] and result["n_images"] == 2
        assert math.isfinite(result["psnr"]) and 0 < result["ssim"] <= 1
        assert json.dumps(result["provenance"]).count(file_sha256(checkpoint)) >= 1, result["provenance"]
        assert result["provenance"]["checkpoint_format"] == ("safetensors" if name == as_safetensors else "basicsr")
        assert not (results / "eval" / name / f"Manga109-x{model['scale']}.json").exists()
    assert not (workdir / "data" / "verify" / ".ready" / "fetch-Manga109.done").exists()

    # Measured, paper and difference per cell, for the model compared with a paper row.
    x2 = next(model["name"] for model in models if model["paper"])
    measured = json.loads((results / "eval" / x2 / "Set5-x2.json").read_text())
    table = pd.read_csv(results / "tables" / "paper_comparison.csv")
    cell = table[(table["method"] == x2) & (table["dataset"] == "Set5") & (table["scale"] == 2)]
    assert len(cell) == 1 and cell["paper_row"].item() == PAPER_ROW
    assert cell["psnr_measured"].item() == pytest.approx(measured["psnr"], abs=1e-9)
    assert cell["ssim_measured"].item() == pytest.approx(measured["ssim"], abs=1e-9)
    assert (cell["psnr_paper"].item(), cell["ssim_paper"].item()) == PAPER_SET5_X2
    assert cell["psnr_diff"].item() == pytest.approx(measured["psnr"] - PAPER_SET5_X2[0], abs=1e-9)
    assert cell["ssim_diff"].item() == pytest.approx(measured["ssim"] - PAPER_SET5_X2[1], abs=1e-9)
    assert set(table["method"]) == {x2}  # only models given a paper row are compared
    report = (results / "REPORT.md").read_text()
    assert "## " in report and x2 in report
    # One line says Manga109 was skipped and why (the paper's tables still show its paper column).
    skip_lines = [line for line in report.splitlines() if "skipped" in line]
    assert len(skip_lines) == 1, skip_lines
    assert "Manga109 skipped:** no source (no url, no archive at data/verify/downloads/Manga109.zip)" in skip_lines[0]

    again = snakemake(workdir, "-n", *args)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout
