"""The `suite` command: a thin argparse front end; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys

from suite import __version__
from suite.cli import bench, data, eval as eval_cmd, profile, report, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="suite", description=__doc__)
    parser.add_argument("--version", action="version", version=f"suite {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (bench, data, eval_cmd, train, profile, report):
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        # Bad input ends with one clear line, not a traceback.
        print(f"suite {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
