"""`suite train`: train a network from a YAML recipe (validated before any work).

Without a flag an `out_dir` that already holds a run is an error; `--resume` continues it from its
newest valid checkpoint; `--resume-or-restart` (the workflow's) continues an unfinished run of the same
recipe and otherwise trains afresh: the earlier run's files git holds are replaced in place, the rest
moved to `out_dir/replaced/<time>/`.
"""

from __future__ import annotations

import argparse

from suite.cli import add_override_option


def _run(args: argparse.Namespace) -> int:
    from suite.train.config import load_recipe
    from suite.train.trainer import train

    recipe = load_recipe(args.config, args.override)
    mode = "resume" if args.resume else "resume-or-restart" if args.resume_or_restart else "new"
    train(recipe, mode=mode)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a YAML recipe (checkpoints, exact resume, DDP via torchrun)",
        description="Train from a YAML recipe (sections model, data, optim, schedule, ema, run; see "
        "suite/train/config.py for every field and its paper-scale default). Launch with "
        "`torchrun --nproc_per_node N -m suite train ...` for DistributedDataParallel. "
        + __doc__.split("\n\n", 1)[1].replace("\n", " "),
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="recipe YAML")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT_DIR's run from its newest valid checkpoint (error if there is none)",
    )
    start.add_argument(
        "--resume-or-restart",
        action="store_true",
        help="continue an unfinished run of the same recipe; otherwise move the earlier run aside and train afresh",
    )
    add_override_option(parser, "dotted recipe fields, e.g. schedule.iterations=1000 model.bias=rpb")
    parser.set_defaults(func=_run)
