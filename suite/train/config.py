"""Training recipes: the paper-scale defaults (SPEC section 5), YAML loading with dotted overrides,
validation before any work (errors name the field and the value), and the recipe hash.

A recipe is a plain nested dict with the sections of `DEFAULTS`; `load_recipe` returns it with every
field present and typed. Checks that need the data on disk (paths, scales) live in `check_data`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import yaml

from suite.env import check_device
from suite.models.biases import FIXED_WINDOW_BIASES, REGISTRY
from suite.models.presets import PRECISIONS, ModelConfigError, resolve_model_config
from suite.overrides import apply_overrides, short_repr

SCHEDULE_KINDS = ("step", "cosine")

# SPEC section 5: L1, AdamW lr 5e-4 betas (0.9, 0.9) no weight decay, 500k iterations with 20k linear
# warm-up, x0.5 at 250k/400k/450k/475k/490k, EMA 0.999, global batch 32, LR patch 64. No clipping is
# stated in the paper, so clipping is off (0) by default.
DEFAULTS: dict[str, Any] = {
    "name": None,  # defaults to the recipe file's stem
    "out_dir": None,  # required
    "model": {"preset": "base", "bias": "rib", "scale": 2, "overrides": {}},
    "data": {
        "train": None,  # required
        "val": None,  # a benchmark folder; None turns periodic validation off
        "lr_patch": 64,
        "batch_size": 32,  # global: split evenly over DDP processes
        "on_the_fly": False,
        "num_workers": 4,
        "samples_per_epoch": None,  # None: TrainPatches' own length
        # None: one patch per image per epoch. {size: 480, step: 240} (HR pixels): BasicSR's sub-images of
        # DIV2K/DF2K, cut on the fly; an epoch is one patch per sub-image, so larger images give more patches.
        "subimages": None,
    },
    # positional_lr_scale: the positional bias's weights learn at lr times this (1: as every other weight)
    "optim": {"lr": 5e-4, "betas": [0.9, 0.9], "weight_decay": 0.0, "grad_clip": 0.0, "positional_lr_scale": 1.0},
    "schedule": {
        "kind": "step",
        "iterations": 500_000,
        "warmup": 20_000,
        "milestones": [250_000, 400_000, 450_000, 475_000, 490_000],
        "gamma": 0.5,
    },
    "ema": {"decay": 0.999},
    "run": {
        "seed": 0,
        "device": "auto",  # auto: cuda when available, else cpu
        # auto: autocast-bf16 on cuda, fp32 on cpu. attention-bf16 is the official setting (SPEC section 5).
        "precision": "auto",
        "compile": False,  # torch.compile the network for training (same numbers, up to kernel rounding)
        "threads": None,  # torch.set_num_threads; None leaves torch's default
        "log_every": 100,
        "val_every": 5000,  # 0: no periodic validation
        "checkpoint_every": 5000,
    },
    "init_from": None,  # a checkpoint whose weights (EMA) start the run, e.g. x3/x4 from x2
}

# Fields that may differ between a checkpoint and the recipe resuming it: they change how a run is
# observed or fed, not what it computes.
RESUMABLE_CHANGES = frozenset(
    {
        "name",
        "out_dir",
        "data.num_workers",
        "run.log_every",
        "run.val_every",
        "run.checkpoint_every",
    }
)
# run.threads is not among them: a different intra-op thread count changes CPU reduction order, so a
# resume with other threads would not be bit-identical to an uninterrupted run.


class RecipeError(ValueError):
    """A recipe field with a bad value; the message names the source, the field and the value."""


def _fail(source: str, message: str) -> RecipeError:
    return RecipeError(f"{source}: {message}")


def read_recipe_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {err}") from None
    except UnicodeDecodeError as err:
        raise RecipeError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping, got {type(raw).__name__}")
    return raw


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Read a YAML recipe, apply dotted overrides, fill defaults and validate every field."""
    source = str(path)
    raw = apply_overrides(read_recipe_file(path), list(overrides), source)
    if raw.get("name") is None:
        raw["name"] = Path(path).stem
    return validate(raw, source)


# ---- field checkers: each returns the typed value or raises naming the field and the value ----


def _as_int(source: str, field: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(source, f"{field} = {short_repr(value)} must be an integer")
    if minimum is not None and value < minimum:
        raise _fail(source, f"{field} = {short_repr(value)} must be >= {minimum}")
    return value


def _as_float(source: str, field: str, value: Any) -> float:
    # YAML 1.1 reads `5e-4` (no dot) as a string: accept numeric strings.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(source, f"{field} = {short_repr(value)} must be a finite number")
    return float(value)


def _as_bool(source: str, field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(source, f"{field} = {short_repr(value)} must be true or false")
    return value


def _as_choice(source: str, field: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _fail(source, f"{field} = {short_repr(value)} is not one of {', '.join(choices)}")
    return value


def _as_path(source: str, field: str, value: Any, required: bool) -> str | None:
    if value is None:
        if required:
            raise _fail(source, f"{field} is required")
        return None
    if not isinstance(value, str) or not value:
        raise _fail(source, f"{field} = {short_repr(value)} must be a path")
    return value


def _check_keys(source: str, section: str, given: dict, allowed: dict | frozenset) -> None:
    unknown = sorted(str(key) for key in set(given) - set(allowed))
    if unknown:
        where = f"{section}." if section else ""
        named = [(where + key)[:80] for key in unknown[:10]] + (["..."] if len(unknown) > 10 else [])
        raise _fail(
            source,
            f"unknown field(s) {', '.join(named)}; "
            f"expected some of {', '.join(where + key for key in sorted(allowed))}",
        )


def _merge_defaults(source: str, raw: dict) -> dict:
    _check_keys(source, "", raw, DEFAULTS)
    merged: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        value = raw.get(key, default)
        if isinstance(default, dict) and key != "model":
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise _fail(source, f"{key} = {short_repr(value)} must be a mapping")
            _check_keys(source, key, value, default)
            value = {**copy.deepcopy(default), **value}
        merged[key] = copy.deepcopy(value)
    model = merged["model"]
    if not isinstance(model, dict):
        raise _fail(source, f"model = {short_repr(model)} must be a mapping")
    _check_keys(source, "model", model, DEFAULTS["model"])
    merged["model"] = {**copy.deepcopy(DEFAULTS["model"]), **model}
    return merged


def _validate_model(source: str, model: dict) -> tuple[dict, dict]:
    """-> (the recipe's model section, typed; the full resolved model config from suite.models)."""
    overrides = model["overrides"] if model["overrides"] is not None else {}
    if not isinstance(overrides, dict):
        raise _fail(source, f"model.overrides = {short_repr(overrides)} must be a mapping")
    try:
        resolved = resolve_model_config(model["preset"], model["bias"], model["scale"], overrides)
    except ModelConfigError as err:
        raise _fail(source, str(err)) from None
    # Only what the recipe overrides is kept, so the recipe stays readable; the preset fills the rest.
    kept = {key: resolved[key] for key in overrides}
    section = {"preset": resolved["preset"], "bias": resolved["bias"], "scale": resolved["scale"], "overrides": kept}
    return section, resolved


def _validate_data(source: str, data: dict, model: dict, resolved: dict) -> None:
    data["train"] = _as_path(source, "data.train", data["train"], required=True)
    data["val"] = _as_path(source, "data.val", data["val"], required=False)
    data["lr_patch"] = _as_int(source, "data.lr_patch", data["lr_patch"], minimum=1)
    data["batch_size"] = _as_int(source, "data.batch_size", data["batch_size"], minimum=1)
    data["on_the_fly"] = _as_bool(source, "data.on_the_fly", data["on_the_fly"])
    data["num_workers"] = _as_int(source, "data.num_workers", data["num_workers"], minimum=0)
    if data["samples_per_epoch"] is not None:
        data["samples_per_epoch"] = _as_int(source, "data.samples_per_epoch", data["samples_per_epoch"], minimum=1)
        if data["samples_per_epoch"] < data["batch_size"]:
            raise _fail(
                source,
                f"data.samples_per_epoch = {data['samples_per_epoch']} is smaller than "
                f"data.batch_size = {data['batch_size']}: no full batch fits in an epoch",
            )
    data["subimages"] = _validate_subimages(source, data["subimages"], model["scale"], data["lr_patch"])
    if model["bias"] in FIXED_WINDOW_BIASES:
        name = REGISTRY[model["bias"]].label
        # A layer whose bias is tied to its window never clamps it: a smaller map is padded up to it (SPEC section
        # 4). A patch below the window would train every window on mostly padding, and the table entries for offsets
        # beyond the patch would be learnt from padded copies, then used on real content at test time.
        for i, window in enumerate(resolved["window_sizes"]):
            if data["lr_patch"] < window:
                raise _fail(
                    source,
                    (
                        f"data.lr_patch = {data['lr_patch']} is smaller than {name} window {window} "
                        f"(layer {i} of model.preset {model['preset']!r}"
                        f"{' with model.overrides.window_sizes' if 'window_sizes' in model['overrides'] else ''}): "
                        f"{name} pads a smaller map up to its window, so training would see mostly padding; "
                        f"use data.lr_patch >= {max(resolved['window_sizes'])} or smaller windows"
                    ),
                )


def _validate_subimages(source: str, value: Any, scale: int, lr_patch: int) -> dict | None:
    """data.subimages: None or {size, step} in HR pixels whose LR sub-image (size / scale) holds an LR patch."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(source, f"data.subimages = {short_repr(value)} must be null or a mapping {{size: 480, step: 240}}")
    _check_keys(source, "data.subimages", value, frozenset({"size", "step"}))
    for key in ("size", "step"):
        if key not in value:
            raise _fail(source, f"data.subimages.{key} is required when data.subimages is set")
    size = _as_int(source, "data.subimages.size", value["size"], minimum=1)
    step = _as_int(source, "data.subimages.step", value["step"], minimum=1)
    if step > size:
        raise _fail(
            source,
            f"data.subimages.step = {step} is larger than data.subimages.size = {size}: "
            "pixels between sub-images would never be drawn",
        )
    # The LR sub-image is cut at size / scale, step / scale (as BasicSR's LR sub-image folders), so both
    # must be whole LR pixels.
    for key, pixels in (("size", size), ("step", step)):
        if pixels % scale:
            raise _fail(
                source, f"data.subimages.{key} = {pixels} is not divisible by model.scale = {scale} (whole LR pixels)"
            )
    if size // scale < lr_patch:
        raise _fail(
            source,
            f"data.subimages.size = {size} is {size // scale} LR pixels at x{scale}, "
            f"smaller than data.lr_patch = {lr_patch}: no patch fits in a sub-image",
        )
    return {"size": size, "step": step}


def _validate_optim(source: str, optim: dict) -> None:
    optim["lr"] = _as_float(source, "optim.lr", optim["lr"])
    if optim["lr"] <= 0:
        raise _fail(source, f"optim.lr = {optim['lr']!r} must be positive")
    betas = optim["betas"]
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
        raise _fail(source, f"optim.betas = {short_repr(betas)} must be a pair [beta1, beta2]")
    optim["betas"] = [_as_float(source, f"optim.betas[{i}]", b) for i, b in enumerate(betas)]
    for i, beta in enumerate(optim["betas"]):
        if not 0.0 <= beta < 1.0:
            raise _fail(source, f"optim.betas[{i}] = {beta!r} must lie in [0, 1)")

    optim["weight_decay"] = _as_float(source, "optim.weight_decay", optim["weight_decay"])
    if optim["weight_decay"] < 0:
        raise _fail(source, f"optim.weight_decay = {optim['weight_decay']!r} must be >= 0")
    optim["grad_clip"] = _as_float(source, "optim.grad_clip", 0.0 if optim["grad_clip"] is None else optim["grad_clip"])
    if optim["grad_clip"] < 0:
        raise _fail(source, f"optim.grad_clip = {optim['grad_clip']!r} must be >= 0 (0 turns clipping off)")
    optim["positional_lr_scale"] = _as_float(source, "optim.positional_lr_scale", optim["positional_lr_scale"])
    if optim["positional_lr_scale"] <= 0:
        raise _fail(source, f"optim.positional_lr_scale = {optim['positional_lr_scale']!r} must be positive")


def _validate_schedule(source: str, schedule: dict) -> None:
    schedule["kind"] = _as_choice(source, "schedule.kind", schedule["kind"], SCHEDULE_KINDS)
    schedule["iterations"] = _as_int(source, "schedule.iterations", schedule["iterations"], minimum=1)
    schedule["warmup"] = _as_int(source, "schedule.warmup", schedule["warmup"], minimum=0)
    if schedule["warmup"] >= schedule["iterations"]:
        raise _fail(
            source,
            f"schedule.warmup = {schedule['warmup']} must be smaller than "
            f"schedule.iterations = {schedule['iterations']}",
        )
    milestones = schedule["milestones"] if schedule["milestones"] is not None else []
    if not isinstance(milestones, (list, tuple)):
        raise _fail(source, f"schedule.milestones = {short_repr(milestones)} must be a list of iterations")
    schedule["milestones"] = [
        _as_int(source, f"schedule.milestones[{i}]", m, minimum=1) for i, m in enumerate(milestones)
    ]
    if any(b <= a for a, b in zip(schedule["milestones"], schedule["milestones"][1:])):
        raise _fail(source, f"schedule.milestones = {schedule['milestones']} must increase strictly")
    schedule["gamma"] = _as_float(source, "schedule.gamma", schedule["gamma"])
    if not 0.0 < schedule["gamma"] <= 1.0:
        raise _fail(source, f"schedule.gamma = {schedule['gamma']!r} must lie in (0, 1]")


def _validate_run(source: str, run: dict) -> None:
    run["seed"] = _as_int(source, "run.seed", run["seed"], minimum=0)
    try:
        check_device(run["device"], "run.device")
    except ValueError as err:
        raise _fail(source, str(err)) from None
    run["precision"] = _as_choice(source, "run.precision", run["precision"], ("auto", *PRECISIONS))
    run["compile"] = _as_bool(source, "run.compile", run["compile"])
    if run["threads"] is not None:
        run["threads"] = _as_int(source, "run.threads", run["threads"], minimum=1)
    run["log_every"] = _as_int(source, "run.log_every", run["log_every"], minimum=1)
    run["val_every"] = _as_int(source, "run.val_every", run["val_every"], minimum=0)
    run["checkpoint_every"] = _as_int(source, "run.checkpoint_every", run["checkpoint_every"], minimum=1)


def validate(raw: dict, source: str = "recipe") -> dict:
    """Fill defaults and check every field; returns the recipe with typed values."""
    recipe = _merge_defaults(source, raw)
    if recipe["name"] is not None and not isinstance(recipe["name"], str):
        raise _fail(source, f"name = {short_repr(recipe['name'])} must be a string")
    recipe["out_dir"] = _as_path(source, "out_dir", recipe["out_dir"], required=True)
    recipe["name"] = recipe["name"] or Path(recipe["out_dir"]).name
    recipe["init_from"] = _as_path(source, "init_from", recipe["init_from"], required=False)
    recipe["model"], resolved = _validate_model(source, recipe["model"])
    _validate_data(source, recipe["data"], recipe["model"], resolved)
    _validate_optim(source, recipe["optim"])
    _validate_schedule(source, recipe["schedule"])
    recipe["ema"]["decay"] = _as_float(source, "ema.decay", recipe["ema"]["decay"])
    if not 0.0 <= recipe["ema"]["decay"] < 1.0:
        raise _fail(source, f"ema.decay = {recipe['ema']['decay']!r} must lie in [0, 1)")
    _validate_run(source, recipe["run"])
    return recipe


def resolved_model_config(recipe: dict) -> dict:
    """Arguments for `build_model`: preset, bias, scale and the overrides."""
    model = recipe["model"]
    return {"preset": model["preset"], "bias": model["bias"], "scale": model["scale"], **model["overrides"]}


def recipe_hash(recipe: dict) -> str:
    """SHA-256 of the recipe as canonical JSON."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def flatten(recipe: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; model.overrides stays one value so its keys compare as a whole."""
    flat: dict[str, Any] = {}
    for key, value in recipe.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name != "model.overrides":
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def resume_differences(saved: dict, current: dict) -> list[str]:
    """Fields (other than RESUMABLE_CHANGES) whose values differ: `field: saved -> current`."""
    before, after = flatten(saved), flatten(current)
    return [
        f"{key}: {short_repr(before.get(key))} -> {short_repr(after.get(key))}"
        for key in sorted(set(before) | set(after))
        if key not in RESUMABLE_CHANGES and before.get(key) != after.get(key)
    ]
