"""Write tests/fixtures/official_train_options.json: the facts of every official training option.

    python tools/official/extract_train_options.py PATH/TO/SST [--out tests/fixtures/official_train_options.json]

PATH/TO/SST is a checkout of the public repository dslisleedh/SST (its commit is recorded). For each
options/train/*.yaml it keeps the values a training recipe of this suite states (network, data set, patch,
batch, optimiser, schedule, EMA, seed, validation and checkpoint frequency, the weights it starts from), so
that tests/test_official_recipes.py can compare workflows/config/recipes/official/<option>.yaml with the
official option of the same name without the official code at hand.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import yaml


def option_facts(option: dict) -> dict:
    """The recipe-relevant fields of one official BasicSR training option."""
    train_set, train = option["datasets"]["train"], option["train"]
    return {
        "scale": option["scale"],
        "num_gpu": option["num_gpu"],
        "manual_seed": option["manual_seed"],
        "dataset": train_set["name"],
        "dataset_type": train_set["type"],
        "gt_size": train_set["gt_size"],
        "batch_size_per_gpu": train_set["batch_size_per_gpu"],
        "num_worker_per_gpu": train_set["num_worker_per_gpu"],
        "use_hflip": train_set.get("use_hflip"),
        "use_rot": train_set.get("use_rot"),
        "dataroot_gt": Path(train_set["dataroot_gt"]).name,  # the folder name says whether it holds sub-images
        "network_g": option["network_g"],
        "pretrain_network_g": option["path"].get("pretrain_network_g"),
        "optimizer": train["optim_g"],
        "scheduler": train["scheduler"],
        "total_iter": train["total_iter"],
        "warmup_iter": train.get("warmup_iter"),
        "ema_decay": train.get("ema_decay"),
        "pixel_opt": train.get("pixel_opt"),
        "val_freq": option.get("val", {}).get("val_freq"),
        "save_checkpoint_freq": option["logger"]["save_checkpoint_freq"],
        "print_freq": option["logger"]["print_freq"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("official", type=Path, help="checkout of dslisleedh/SST")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/official_train_options.json"))
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "-C", str(args.official), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    options = {
        path.stem: option_facts(yaml.safe_load(path.read_text()))
        for path in sorted((args.official / "options" / "train").glob("*.yaml"))
    }
    record = {"official_repository": "https://github.com/dslisleedh/SST", "official_commit": commit, "options": options}
    # One line per option: the fixture folder stays small (tests/test_official.py checks its size).
    lines = [f"  {json.dumps(name)}: {json.dumps(facts, sort_keys=True)}" for name, facts in options.items()]
    head = json.dumps({key: value for key, value in record.items() if key != "options"})[:-1]
    args.out.write_text(head + ', "options": {\n' + ",\n".join(lines) + "\n}}\n")
    print(f"{args.out}: {len(options)} options at {commit}")


if __name__ == "__main__":
    main()
