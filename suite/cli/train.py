"""`suite train`: train a network from a YAML recipe (validated before any work), optionally resuming."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from suite.train.config import load_recipe
    from suite.train.trainer import train

    recipe = load_recipe(args.config, args.overrides)
    train(recipe, resume=args.resume)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model from a YAML recipe (checkpoints, exact --resume, DDP via torchrun)",
        description="Train from a YAML recipe (sections model, data, optim, schedule, ema, run; see "
                    "suite/train/config.py for every field and its paper-scale default). Launch with "
                    "`torchrun --nproc_per_node N -m suite train ...` for DistributedDataParallel.")
    parser.add_argument("--config", required=True, metavar="FILE", help="recipe YAML")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT_DIR/checkpoints/last (starts fresh when there is none)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="dotted overrides, e.g. schedule.iterations=1000 model.bias=rpb")
    parser.set_defaults(func=_run)
