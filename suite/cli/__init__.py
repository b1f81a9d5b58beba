"""The `suite` command: a thin argparse front end; each subcommand lives in its own module.

Building the parser imports no torch (each subcommand imports its engine when it runs), so `suite
--help` answers at once. Every expected failure ends as one line `suite CMD: error: ...` with exit 2;
Ctrl-C ends as one line with exit 130.
"""

from __future__ import annotations

import argparse
import math
import sys

from suite import __version__

# Subcommands (module suite/cli/<name>.py with register(subparsers)) and their line in `suite --help`.
COMMANDS = {
    "data": "datasets: fetch, single files, mini benchmark",
    "train": "train a model from a YAML recipe (checkpoints, exact resume, DDP via torchrun)",
    "eval": "PSNR/SSIM of an upscaler (classical, suite or released checkpoint) on a dataset",
    "convert": "convert checkpoints: a released official one (BasicSR .pth), an RPB model to low rank",
    "profile": "profile training/inference steps: one setting (run) or a grid (sweep)",
    "bench": "micro-benchmarks: attention layers, image resizing",
    "analyze": "research tools on checkpoints: learned bias fields, low-rank RPB, window extrapolation",
    "report": "tables, figures and REPORT.md from a results folder",
    "doctor": "what this machine will do: versions, devices, attention backends, lock, disk",
}
MESSAGE_LIMIT = 2000


def build_parser(commands=None) -> argparse.ArgumentParser:
    """The parser with the subcommands in `commands` (default: all) fully registered, the others
    as their help line only, so that `suite --help` and `suite train ...` import only what they use."""
    import importlib

    parser = argparse.ArgumentParser(prog="suite", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"suite {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for name, summary in COMMANDS.items():
        if commands is None or name in commands:
            importlib.import_module(f"suite.cli.{name}").register(subparsers)
        else:
            subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def positive_int(text: str) -> int:
    """argparse type of a count such as --threads: a decimal integer >= 1, or an error naming the value."""
    if not (text.isascii() and text.strip().isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return int(text)


def positive_float(text: str) -> float:
    """argparse type of a duration or factor such as --timeout: a finite number > 0 (not inf, nan, 0 or
    negative), or an error naming the value."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number > 0")
    return value


def add_override_option(parser: argparse.ArgumentParser, help: str) -> None:
    """The one spelling of overrides on the command line, `--override KEY=VALUE [KEY=VALUE ...]` (may be
    repeated; suite.overrides parses the values)."""
    parser.add_argument("--override", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help=help)


def _command(argv: list[str]) -> str | None:
    """The subcommand `argv` asks for (the first word that is not an option), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def expected_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input or a bad environment, not a bug: reported in one line."""
    import tarfile
    import zipfile

    types: list[type[BaseException]] = [ValueError, OSError, RuntimeError, tarfile.TarError, zipfile.BadZipFile]
    for module, name in (("yaml", "YAMLError"), ("PIL.Image", "DecompressionBombError")):
        loaded = sys.modules.get(module)  # only a module that was used can have raised it
        if loaded is not None and hasattr(loaded, name):
            types.append(getattr(loaded, name))
    return tuple(types)


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + " ..."


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command(argv)
    args = build_parser(() if command is None else (command,)).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"suite {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if not isinstance(err, expected_errors()):
            raise
        print(f"suite {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
