"""Recipe validation: every bad field fails before any work, with an error naming the field and value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from suite.cli import main
from suite.overrides import OverrideError, apply_overrides, parse_field_overrides
from suite.train.config import DEFAULTS, RecipeError, load_recipe, recipe_hash, validate
from suite.train.schedule import LRFactor


def write_recipe(folder: Path, **sections) -> Path:
    recipe = {
        "name": "cfg",
        "out_dir": str(folder / "run"),
        "model": {"preset": "tiny", "bias": "rib", "scale": 2},
        "data": {"train": str(folder / "data"), "lr_patch": 32, "batch_size": 2, "num_workers": 0},
        "schedule": {"iterations": 10, "warmup": 2, "milestones": [5]},
        "run": {"device": "cpu"},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_defaults_are_the_paper_recipe(tmp_path: Path) -> None:
    recipe = validate({"out_dir": str(tmp_path), "data": {"train": str(tmp_path)}})
    assert recipe["optim"] == {
        "lr": 5e-4,
        "betas": [0.9, 0.9],
        "weight_decay": 0.0,
        "grad_clip": 0.0,
        "positional_lr_scale": 1.0,  # the suite's own lever (the paper's recipe has none): every weight at lr
    }
    assert recipe["schedule"] == {
        "kind": "step",
        "iterations": 500_000,
        "warmup": 20_000,
        "milestones": [250_000, 400_000, 450_000, 475_000, 490_000],
        "gamma": 0.5,
    }
    assert recipe["ema"]["decay"] == 0.999
    assert (recipe["data"]["batch_size"], recipe["data"]["lr_patch"]) == (32, 64)
    assert set(recipe) == set(DEFAULTS)


def test_overrides_are_typed_and_change_the_hash(tmp_path: Path) -> None:
    path = write_recipe(tmp_path)
    base = load_recipe(path)
    changed = load_recipe(path, ["optim.lr=2.5e-4", "model.overrides.window_sizes=[16,16]", "optim.betas=[0.9,0.99]"])
    assert changed["optim"]["lr"] == 2.5e-4
    assert changed["model"]["overrides"] == {"window_sizes": [16, 16]}
    assert changed["optim"]["betas"] == [0.9, 0.99]
    assert recipe_hash(base) != recipe_hash(changed)
    assert recipe_hash(base) == recipe_hash(load_recipe(path))
    # YAML 1.1 reads 5e-4 as a string; a learning rate accepts it as the number it means.
    assert load_recipe(path, ["optim.lr=5e-4"])["optim"]["lr"] == 5e-4


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (["model.preset=huge"], ["model field preset = 'huge'", "tiny"]),
        (["model.overrides.ranks=[8,0]"], ["model field ranks[1] = 0", ">= 1"]),
        (["model.overrides.ranks=[-4,8]"], ["model field ranks[0] = -4"]),
        (["model.bias=rpb", "data.lr_patch=16"], ["data.lr_patch = 16", "RPB window 32", ">= 32"]),
        (
            ["model.bias=rpb", "model.overrides.window_sizes=[8,48]", "model.overrides.ranks=[4,4]"],
            ["data.lr_patch = 32", "RPB window 48", "layer 1"],
        ),
        (["model.bias=sinusoid"], ["model field bias = 'sinusoid'"]),
        (["model.scale=1"], ["model field scale = 1"]),
        (["model.overrides.heads=3"], ["dim = 32 is not divisible by heads = 3"]),
        (["model.overrides.depth=3"], ["unknown model field(s) depth"]),
        (["model.overrides=[1]"], ["model.overrides = [1] must be a mapping"]),
        (["optim.lr=-1"], ["optim.lr = -1.0"]),
        (["optim.lr=fast"], ["optim.lr = 'fast'"]),
        (["optim.betas=[0.9]"], ["optim.betas"]),
        (["optim.grad_clip=-1"], ["optim.grad_clip = -1.0"]),
        (["optim.positional_lr_scale=0"], ["optim.positional_lr_scale = 0.0 must be positive"]),
        (["optim.positional_lr_scale=inf"], ["optim.positional_lr_scale = inf must be a finite number"]),
        (["schedule.kind=linear"], ["schedule.kind = 'linear'"]),
        (["schedule.warmup=10"], ["schedule.warmup = 10", "schedule.iterations = 10"]),
        (["schedule.milestones=[5,3]"], ["schedule.milestones = [5, 3]"]),
        (["schedule.iterations=0"], ["schedule.iterations = 0"]),
        (["ema.decay=1.0"], ["ema.decay = 1.0"]),
        (["data.batch_size=0"], ["data.batch_size = 0"]),
        (["data.lr_patch=12.5"], ["data.lr_patch = 12.5"]),
        (["data.samples_per_epoch=1"], ["data.samples_per_epoch = 1", "data.batch_size = 2"]),
        (["data.trian=x"], ["data.trian"]),
        (["data.subimages=480"], ["data.subimages = 480 must be null or a mapping"]),
        (["data.subimages={size: 48}"], ["data.subimages.step is required"]),
        (["data.subimages={size: 48, step: 24, thresh_size: 0}"], ["unknown field(s) data.subimages.thresh_size"]),
        (["data.subimages={size: 0, step: 24}"], ["data.subimages.size = 0 must be >= 1"]),
        (["data.subimages={size: 48, step: true}"], ["data.subimages.step = True must be an integer"]),
        (["data.subimages={size: 48, step: 64}"], ["data.subimages.step = 64", "data.subimages.size = 48"]),
        (["data.subimages={size: 81, step: 24}"], ["data.subimages.size = 81", "model.scale = 2"]),
        (["data.subimages={size: 96, step: 25}"], ["data.subimages.step = 25", "model.scale = 2"]),
        (["data.subimages={size: 48, step: 24}"], ["data.subimages.size = 48 is 24 LR pixels", "data.lr_patch = 32"]),
        (["optimiser.lr=1"], ["optimiser"]),
        (["run.device=gpu"], ["run.device = 'gpu'"]),
        (["run.dtype=float16"], ["unknown field(s) run.dtype"]),
        (["run.precision=float16"], ["run.precision = 'float16'", "attention-bf16"]),
        (["run.compile=1"], ["run.compile = 1 must be true or false"]),
        (["run.checkpoint_every=0"], ["run.checkpoint_every = 0"]),
        (["out_dir=null"], ["out_dir is required"]),
    ],
)
def test_bad_field_is_named(tmp_path: Path, overrides: list[str], fragments: list[str]) -> None:
    path = write_recipe(tmp_path)
    with pytest.raises(RecipeError) as err:
        load_recipe(path, overrides)
    message = str(err.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


def test_subimages_default_off_and_set_by_dotted_overrides(tmp_path: Path) -> None:
    assert load_recipe(write_recipe(tmp_path))["data"]["subimages"] is None
    path = write_recipe(tmp_path, data={"subimages": {"size": 480, "step": 240}})
    official = load_recipe(path)
    assert official["data"]["subimages"] == {"size": 480, "step": 240}
    small = load_recipe(path, ["data.subimages.size=64", "data.subimages.step=32"])
    assert small["data"]["subimages"] == {"size": 64, "step": 32}
    assert recipe_hash(small) != recipe_hash(official)
    assert load_recipe(path, ["data.subimages=null"])["data"]["subimages"] is None


def test_rib_may_train_below_its_window(tmp_path: Path) -> None:
    # RIB clamps a window to the map, so a patch below the window is a valid (if unusual) recipe.
    assert load_recipe(write_recipe(tmp_path), ["data.lr_patch=16"])["data"]["lr_patch"] == 16
    assert load_recipe(write_recipe(tmp_path), ["model.bias=rpb", "data.lr_patch=32"])["model"]["bias"] == "rpb"


def test_malformed_override_and_yaml(tmp_path: Path) -> None:
    with pytest.raises(OverrideError, match="key.sub=value"):
        apply_overrides({}, ["optim.lr"], "x")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(RecipeError, match="bad.yaml: not valid YAML"):
        load_recipe(bad)


def test_model_field_overrides_are_flat_and_name_the_option() -> None:
    assert parse_field_overrides(["dim=16", "ranks=[4, 4]", "upsampler_dim="]) == {
        "dim": 16,
        "ranks": [4, 4],
        "upsampler_dim": None,
    }
    with pytest.raises(OverrideError, match=r"^--override 'rib.levels=3': a model field name has no dots"):
        parse_field_overrides(["rib.levels=3"])
    with pytest.raises(OverrideError, match=r"^--override: override 'dim' is not of the form"):
        parse_field_overrides(["dim"])


def test_train_takes_overrides_through_repeatable_override_options() -> None:
    from suite.cli import build_parser

    args = build_parser(("train",)).parse_args(
        ["train", "--config", "r.yaml", "--override", "optim.lr=1e-4", "name=x", "--override", "run.seed=3"]
    )
    assert args.override == ["optim.lr=1e-4", "name=x", "run.seed=3"]
    with pytest.raises(SystemExit):
        build_parser(("train",)).parse_args(["train", "--config", "r.yaml", "optim.lr=1e-4"])


def _make_benchmark(root: Path, scales: tuple[int, ...]) -> None:
    from suite.data.io import write_png
    from suite.data.resize import degrade

    rng = __import__("numpy").random.default_rng(0)
    hr = rng.integers(0, 256, (96, 96, 3), dtype="uint8")
    write_png(root / "HR" / "a.png", hr)
    for scale in scales:
        write_png(root / "LR_bicubic" / f"X{scale}" / f"ax{scale}.png", degrade(hr, scale))


def test_errors_come_before_any_work_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _make_benchmark(tmp_path / "data", scales=(2, 4))
    path = write_recipe(tmp_path)
    run_dir = tmp_path / "run"
    cases = [
        (["model.scale=3"], ["data.train", "X2, X4", "not X3", "model.scale = 3", "data.on_the_fly"]),
        (["data.train=" + str(tmp_path / "nowhere")], ["data.train not found:", "nowhere"]),
        (["data.train=" + str(path)], ["data.train", str(path), "is a file, not a folder"]),
        (["data.lr_patch=64"], ["data.train", "too small for an LR patch of 64"]),
        (["init_from=" + str(tmp_path / "missing.pt")], ["init_from", "missing.pt", "does not exist"]),
        (["model.bias=rpb", "data.lr_patch=8"], ["data.lr_patch = 8", "RPB window 32"]),
    ]
    for overrides, fragments in cases:
        code = main(["train", "--config", str(path), "--override", *overrides])
        message = capsys.readouterr().err
        assert code == 2, message
        assert message.startswith("suite train: error: "), message
        for fragment in fragments:
            assert fragment in message, message
        assert not run_dir.exists(), f"{overrides} did work before failing"


def test_scale_made_on_the_fly_when_asked(tmp_path: Path) -> None:
    from suite.train.trainer import check_data

    _make_benchmark(tmp_path / "data", scales=(2,))
    check_data(load_recipe(write_recipe(tmp_path), ["model.scale=3", "data.on_the_fly=true"]))
    with pytest.raises(RecipeError, match="not X3"):
        check_data(load_recipe(write_recipe(tmp_path), ["model.scale=3"]))


def test_schedule_warmup_step_and_cosine() -> None:
    step = LRFactor("step", iterations=100, warmup=10, milestones=[50, 80], gamma=0.5)
    assert [step(i) for i in (0, 4, 9)] == [0.1, 0.5, 1.0]
    # 0-based step i is iteration i+1: "x0.5 at 50" applies from iteration 50 (step 49) on.
    assert [step(i) for i in (10, 48, 49, 78, 79, 99)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    cosine = LRFactor("cosine", iterations=110, warmup=10, milestones=[], gamma=1.0)
    assert cosine(10) == 1.0
    assert cosine(60) == pytest.approx(0.5)
    assert cosine(110) == pytest.approx(0.0)
    assert LRFactor("step", 10, 0, [], 0.5)(0) == 1.0
