"""`suite profile`: time, memory, attention kernels and TensorBoard traces of one setting;
`suite profile sweep`: a grid of them from a YAML config. The work lives in suite.profiling."""

import argparse

from suite.profiling.command import add_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile", help="profile training/inference steps (suite profile sweep: a grid from a config)",
        description=__doc__,
    )
    add_arguments(parser)
