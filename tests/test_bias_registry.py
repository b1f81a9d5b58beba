"""The bias registry (suite.models.biases) is the one declaration of a positional bias: every bias goes
through the whole product (build, a training step, eval, a profile point, the speedup table, the table
writers and readers, the report) and every list of biases elsewhere is the registry's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from suite.cli import build_parser, main
from suite.models import build_model, count_parameters
from suite.models.biases import BIAS_PARAMS, BIASES, FACTORED_BIASES, FIXED_WINDOW_BIASES, REGISTRY, bias_spec
from suite.profiling import tables
from suite.profiling.attention import AttentionSpec, bench, ratio_columns
from suite.profiling.flops import flop_counter, forward_flops
from suite.profiling.measure import PointSpec, measure
from suite.report import build_report
from suite.report.readers import MODEL_NAME, RUN_NAME, read_profile
from suite.train.config import load_recipe
from suite.train.trainer import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"dim": 16, "n_blocks": 1, "heads": 2, "window_sizes": [8, 8], "ranks": [4, 4]}


def test_registry_names_every_property_once():
    assert BIASES[:3] == ("rpb", "rib", "none")  # the paper's three come first in every table
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.label and spec.summary
        assert spec.kind in ("additive", "factored", "rotary", "none")
        assert spec.flash == (spec.kind != "additive")  # only an additive N x N term blocks flash kernels
        assert (spec.module is None) == (spec.build is None)
        assert spec.uses_rank == spec.factored
    assert set(FACTORED_BIASES) == {"rib", "lowrank", "flashbias", "rib-siren"}
    assert set(FIXED_WINDOW_BIASES) == {"rpb", "lowrank", "flashbias"}
    assert {REGISTRY[b].official for b in ("cpe", "rope", "flashbias", "rib-siren")} == {
        "CPE",
        "RoPEViT",
        "FlashBias",
        "RIBSiren",
    }
    with pytest.raises(ValueError, match=r"unknown bias 'alibi'; expected one of rpb, rib, none, lowrank"):
        bias_spec("alibi")


def test_every_list_of_biases_is_the_registry(capsys):
    schema = yaml.safe_load((ROOT / "workflows" / "schemas" / "config.schema.yaml").read_text())
    assert schema["$defs"]["bias"]["enum"] == list(BIASES)
    assert set(tables.BIASES) == set(BIASES)
    for bias in BIASES:
        assert f"{bias}_ms" in tables.SPEEDUP_COLUMNS
        assert MODEL_NAME.match(f"tiny-{bias}")["bias"] == bias
        assert RUN_NAME.match(f"base+-{bias}-x3")["bias"] == bias
    for command in (["profile", "run"], ["convert", "released", "x.pth"]):
        with pytest.raises(SystemExit):
            build_parser((command[0],)).parse_args([*command, "--bias", "alibi"])
        assert "invalid choice: 'alibi'" in capsys.readouterr().err
    from suite.cli.convert import OFFICIAL_BIASES

    assert OFFICIAL_BIASES == tuple(bias for bias in BIASES if bias != "lowrank")  # lowrank is the suite's own


def test_bias_fields_are_checked_and_kept_per_bias():
    rope = build_model("tiny", "rope", 2, rope_form="axial", rope_scale="standard", **SMALL)
    assert (rope.config["rope_form"], rope.config["rope_scale"], rope.config["rope_theta"]) == (
        "axial",
        "standard",
        10.0,
    )
    assert "fourier_levels" not in rope.config  # another bias's field is not this model's
    assert build_model("tiny", "rib", 2, rope_form="axial", **SMALL).config.get("rope_form") is None
    assert set(BIAS_PARAMS) >= {"fourier_levels", "mlp_hidden", "rope_form", "flashbias_init", "siren_omega"}
    from suite.models import ModelConfigError

    with pytest.raises(ModelConfigError, match=r"model field rope_form = 'spiral' must be one of mixed, axial"):
        build_model("tiny", "rope", 2, rope_form="spiral")
    with pytest.raises(ModelConfigError, match=r"model field ranks\[0\] = 65 exceeds window_sizes\[0\]\^2 = 64"):
        build_model("tiny", "flashbias", 2, **{**SMALL, "ranks": [65, 4]})


@pytest.mark.parametrize("bias", BIASES)
def test_every_bias_builds_counts_its_flops_and_keeps_the_shape(bias):
    model = build_model("tiny", bias, 2, **SMALL).eval()
    assert model.config["bias"] == bias and build_model(**model.config).config == model.config
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad(), flop_counter() as counter:
        y = model(x)
    assert y.shape == (1, 3, 24, 20)
    # The analytic count (RIB's MLP, CPE's convolution from the registry) is what torch counts.
    assert forward_flops(model.config, 1, 12, 10) == counter.get_total_flops()


def test_flashbias_zero_init_never_learns_and_the_default_does():
    """The official FlashBias init (both factors zero) gives both factors a zero gradient: as written it
    trains as no bias. The default, zero-q, starts at exactly no bias and gets a gradient."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    for init, learns in (("zeros", False), ("zero-q", True)):
        model = build_model("light", "flashbias", 2, flashbias_init=init, **SMALL)
        model(x).square().mean().backward()
        layer = model.attention_layers()[0].flashbias
        assert layer.q_factors.abs().max() == 0  # both start with no bias
        assert (layer.q_factors.grad.abs().max() > 0) == learns
        assert layer.k_factors.grad.abs().max() == 0  # its gradient goes through Q_p, zero at the start


def test_rope_official_scale_is_one_and_standard_is_rsqrt_d():
    official = build_model("tiny", "rope", 2, **SMALL).attention_layers()[0]
    standard = build_model("tiny", "rope", 2, rope_scale="standard", **SMALL).attention_layers()[0]
    assert official.softmax_scale == 1.0 and standard.softmax_scale == 8**-0.5


def test_rope_rotation_is_relative():
    """RoPE's logit between two tokens depends only on their offset: shifting both keeps it."""
    layer = build_model("tiny", "rope", 2, **SMALL).attention_layers()[0].rope
    cos, sin = layer.angles(4, 4, torch.device("cpu"))
    q, k = torch.randn(1, 2, 1, 8).expand(1, 2, 16, 8), torch.randn(1, 2, 1, 8).expand(1, 2, 16, 8)
    logits = (layer.rotate(q, cos, sin) * layer.rotate(k, cos, sin)).sum(-1)  # (1, heads, N): token i with i
    assert torch.allclose(logits, logits[..., :1].expand_as(logits), atol=1e-5)
    q_rot, k_rot = layer.rotate(q, cos, sin), layer.rotate(k, cos, sin)
    pair = lambda a, b: (q_rot[0, :, a] * k_rot[0, :, b]).sum(-1)  # noqa: E731
    assert torch.allclose(pair(0, 5), pair(2, 7), atol=1e-5)  # (0,0)-(1,1) and (0,2)-(1,3): same offset


def _small_benchmark(root: Path, mini_root: Path) -> Path:
    from suite.data.io import read_image, write_png
    from suite.data.resize import degrade

    for name in ("astronaut", "coffee"):
        hr = read_image(mini_root / "test" / "HR" / f"{name}.png")[:32, :32]
        write_png(root / "HR" / f"{name}.png", hr)
        write_png(root / "LR_bicubic" / "X2" / f"{name}x2.png", degrade(hr, 2))
    return root


def _train_one_step(root: Path, bias: str, mini_root: Path) -> Path:
    recipe = {
        "name": f"tiny-{bias}",
        "out_dir": str(root / "runs" / f"tiny-{bias}-x2"),
        "model": {"preset": "tiny", "bias": bias, "scale": 2, "overrides": SMALL},
        "data": {"train": str(mini_root / "train"), "lr_patch": 8, "batch_size": 2, "num_workers": 0},
        "optim": {"lr": 1e-3},
        "schedule": {"iterations": 1, "warmup": 0, "milestones": []},
        "ema": {"decay": 0.5},
        "run": {"device": "cpu", "seed": 3, "log_every": 1, "val_every": 0, "checkpoint_every": 1},
    }
    path = root / f"{bias}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return train(load_recipe(path))


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory, mini_root: Path) -> dict:
    """Every registered bias through the real commands into one results folder (a training step, `suite
    eval`, a profile point), then `suite report` on it."""
    root = tmp_path_factory.mktemp("registry")
    data = _small_benchmark(root / "small", mini_root)
    results = root / "results"
    found: dict = {"results": results, "summaries": {}, "evals": {}, "rows": {}}
    for bias in BIASES:
        checkpoint = _train_one_step(root, bias, mini_root)
        train_dir = results / "train" / f"tiny-{bias}-x2"
        train_dir.mkdir(parents=True)
        for name in ("summary.json", "train_log.csv"):
            shutil.copy(checkpoint.parent / name, train_dir / name)
        found["summaries"][bias] = json.loads((train_dir / "summary.json").read_text())
        out = results / "eval" / f"tiny-{bias}" / "small-x2.json"
        assert (
            main(["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--scale", "2", "--out", str(out)]) == 0
        )
        found["evals"][bias] = json.loads(out.read_text())
        spec = PointSpec(
            preset="tiny",
            bias=bias,
            phase="infer",
            window=8,
            patch=16,
            batch=1,
            warmup=0,
            steps=1,
            profile_warmup=0,
            profile_active=1,
            threads=1,
            overrides={k: v for k, v in SMALL.items() if k != "window_sizes"},
        )
        found["rows"][bias] = row = measure(spec, root / "traces", process="single", command="test")
        row["expected_params"] = count_parameters(build_model(**spec.model_config()))
        tables.upsert(results / "profile", [{k: v for k, v in row.items() if k != "expected_params"}])
    build_report(results, results, "registry", "small")
    found["report"] = (results / "REPORT.md").read_text()
    return found


@pytest.mark.parametrize("bias", BIASES)
def test_every_bias_trains_evaluates_profiles_and_reaches_the_report(bias, product: dict):
    summary, scored, row = product["summaries"][bias], product["evals"][bias], product["rows"][bias]
    assert summary["model"]["bias"] == bias and summary["iterations"] == 1
    assert scored["n_images"] == 2 and scored["provenance"]["model_config"]["bias"] == bias
    assert row["status"] == "ok" and row["bias"] == bias and row["ms_median"] > 0
    assert row["params"] == row["expected_params"]

    results = product["results"]
    speedups = read_profile(results / "profile" / "profile.json").speedups
    (point,) = [record for record in speedups if record["window"] == 8]
    assert point[f"{bias}_status"] == "ok" and point[f"{bias}_ms"] == row["ms_median"]
    if bias != tables.BASELINE:
        assert point[tables.speedup_column(bias)] == round(point["rpb_ms"] / row["ms_median"], 3)
    assert f"{bias}_ms" in (results / "tables" / "speed.csv").read_text().splitlines()[0]
    label = REGISTRY[bias].label
    report = product["report"]
    assert f"{label} variant" in report and f"RPB / {label} time" in report or bias == "rpb"
    assert f"| tiny-{bias}-x2 |" in (results / "tables" / "training.md").read_text()


def test_attention_benchmark_times_every_bias():
    spec = AttentionSpec(
        window=8,
        patch=8,
        batch=1,
        heads=2,
        head_dim=8,
        ranks=[4],
        warmup=0,
        steps=1,
        threads=1,
        variants=[(bias, "auto") for bias in BIASES],
    )
    rows = bench(spec)
    fwd = {row["variant"]: row for row in rows if row["pass"] == "fwd"}
    assert set(fwd) == {*BIASES, "none@D+R"} and all(row["status"] == "ok" for row in rows)
    assert {bias for bias, row in fwd.items() if row["kernel_head_dim"] == 16} == {*FACTORED_BIASES, "none@D+R"}
    from suite.profiling.attention import pair_ratios

    ratios = pair_ratios(rows)
    assert set(ratios[0]) == set(ratio_columns(list(BIASES)))
    assert ratios[0]["rpb_over_rope"] == round(fwd["rpb"]["ms_median"] / fwd["rope"]["ms_median"], 3)
