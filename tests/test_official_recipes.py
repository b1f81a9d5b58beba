"""The official training options as recipe files that stand alone.

workflows/config/recipes/official/<option>.yaml must be, field for field, the official options/train/<option>.yaml
of dslisleedh/SST: tests/fixtures/official_train_options.json holds those options' facts (written by
tools/official/extract_train_options.py from the official checkout, its commit recorded). `suite train --config`
on one of the files is the official recipe; the paper workflow runs the files as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.models.presets import OFFICIAL_NAMES, resolve_model_config
from suite.train.config import load_recipe

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "workflows" / "config" / "recipes" / "official"
OPTIONS = json.loads((REPO / "tests" / "fixtures" / "official_train_options.json").read_text())
# SSTReal_X4 trains a diffusion U-Net for real-world SR (type EDMUNet), not one of the paper's SR transformers.
NOT_RECIPES = {"SSTReal_X4"}
PRESET_OF = {official: preset for preset, official in OFFICIAL_NAMES.items()}
# The official SSTlight_Plus_DIV2K_X4 starts from pretrained_models/SSTlight_Plus_DFLIP_X3.pth; every other
# fine-tune starts from the same data's model of the scale below, and so does the recipe (its comment says so).
SAME_DATA_CHAIN = {"SSTlight_Plus_DIV2K_X4": "pretrained_models/SSTlight_Plus_DFLIP_X3.pth"}
OFFICIAL_RECIPES = sorted(set(OPTIONS["options"]) - NOT_RECIPES)


def test_every_official_option_has_a_recipe_file_and_no_other() -> None:
    assert OPTIONS["official_commit"] == "bcd613284145ddc1cb19a85c781060c03c9aa4c3"
    assert sorted(path.stem for path in RECIPES.glob("*.yaml")) == OFFICIAL_RECIPES
    assert len(OFFICIAL_RECIPES) == 33  # 11 presets-and-data x 3 scales


def split_option(option: str) -> tuple[str, str, int]:
    """ "SSTLarge_Plus_DF2K_X3" -> ("SSTLarge_Plus", "DF2K", 3)."""
    stem, scale = option.rsplit("_X", 1)
    family, data = stem.rsplit("_", 1)
    return family, data, int(scale)


@pytest.mark.parametrize("option", OFFICIAL_RECIPES)
def test_the_recipe_file_is_the_official_option(option: str) -> None:
    official = OPTIONS["options"][option]
    recipe = load_recipe(RECIPES / f"{option}.yaml")
    family, data, scale = split_option(option)
    network = official["network_g"]

    # The network: the preset of the official name, at the option's scale, equal to network_g field by field.
    model = recipe["model"]
    assert (model["preset"], model["bias"], model["scale"], model["overrides"]) == (PRESET_OF[family], "rib", scale, {})
    assert official["scale"] == network["upscaling_factor"] == scale and network["attn_type"] == "RIB"
    resolved = resolve_model_config(model["preset"], model["bias"], model["scale"], model["overrides"])
    assert resolved["dim"] == network["dim"] and resolved["n_blocks"] == network["n_blocks"]
    assert list(resolved["window_sizes"]) == network["window_sizes"]
    assert list(resolved["ranks"]) == network["ranks"]
    assert [resolved["heads"]] * len(network["num_heads"]) == network["num_heads"]
    assert resolved["exp_ratio"] == network["exp_ratio"] and resolved["upsampler"] == network["upsampler_type"]

    # The data: the option's set, its patch (gt_size = LR patch x scale), its global batch over its GPUs,
    # flips and rotations, and BasicSR's 480/240 sub-images.
    assert Path(recipe["data"]["train"]).name == official["dataset"] == data
    assert recipe["data"]["lr_patch"] * scale == official["gt_size"]
    assert recipe["data"]["batch_size"] == official["batch_size_per_gpu"] * official["num_gpu"]
    assert recipe["data"]["num_workers"] == official["num_worker_per_gpu"]
    assert official["use_hflip"] and official["use_rot"]  # the suite's patches always flip and rotate
    if official["dataset_type"] == "PairedImageDataset":  # HR and LR cut by extract_subimages: "*_sub.lmdb"
        assert "_sub" in official["dataroot_gt"] and recipe["data"]["subimages"] == {"size": 480, "step": 240}
    else:  # DownsampleImageDataset: a crop of a whole DFLIP image, uniformly over images
        assert official["dataset_type"] == "DownsampleImageDataset" and recipe["data"]["subimages"] is None
        assert recipe["data"]["on_the_fly"]  # HR only: the LR is made from the crop

    # Optimiser, schedule, EMA, loss.
    optimizer, scheduler = official["optimizer"], official["scheduler"]
    assert optimizer["type"] == "AdamW" and scheduler["type"] == "MultiStepLR"
    assert recipe["optim"]["lr"] == optimizer["lr"] and recipe["optim"]["betas"] == optimizer["betas"]
    assert recipe["optim"]["weight_decay"] == optimizer["weight_decay"] and recipe["optim"]["grad_clip"] == 0
    assert recipe["schedule"]["kind"] == "step" and recipe["schedule"]["iterations"] == official["total_iter"]
    assert recipe["schedule"]["warmup"] == official["warmup_iter"]
    assert recipe["schedule"]["milestones"] == scheduler["milestones"]
    assert recipe["schedule"]["gamma"] == scheduler["gamma"]
    assert recipe["ema"]["decay"] == official["ema_decay"]
    assert official["pixel_opt"] == {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}  # the suite's loss

    # Seed, logging, validation and checkpoints; the official precision (SPEC section 5).
    run = recipe["run"]
    assert run["seed"] == official["manual_seed"] and run["log_every"] == official["print_freq"]
    assert run["val_every"] == official["val_freq"] and run["checkpoint_every"] == official["save_checkpoint_freq"]
    assert (run["device"], run["precision"]) == ("cuda", "attention-bf16")

    # x2 from scratch; x3 and x4 from the model of the scale below, which the recipe of that option writes.
    assert recipe["name"] == option and recipe["out_dir"] == f"runs/{option}"
    below = f"{family}_{data}_X{scale - 1}"
    if scale == 2:
        assert official["pretrain_network_g"] is None and recipe["init_from"] is None
    else:
        assert official["pretrain_network_g"] == SAME_DATA_CHAIN.get(option, f"pretrained_models/{below}.pth")
        assert recipe["init_from"] == f"runs/{below}/final.pt"
        assert load_recipe(RECIPES / f"{below}.yaml")["out_dir"] == f"runs/{below}"
