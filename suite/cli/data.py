"""`suite data`: fetch public datasets and single files (checkpoints), build the embedded mini benchmark."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _fetch(args: argparse.Namespace) -> int:
    from suite.data.fetch import SOURCES, fetch

    records = fetch(
        args.name,
        args.root,
        parts=args.parts,
        url=args.url,
        mirror=args.mirror,
        timeout=args.timeout,
        remove_archives=args.remove_archives,
        log=_log,
        deadline=args.deadline,
    )
    downloaded = sum(record["downloaded_bytes"] for record in records)
    print(
        f"{args.name}: {len(records)} archive(s) ready, {downloaded} bytes downloaded; "
        f"use --data {Path(args.root) / SOURCES[args.name].data_path}"
    )
    return 0


def _fetch_file(args: argparse.Namespace) -> int:
    from suite.data.fetch import fetch_file

    record = fetch_file(args.url, args.out, sha256=args.sha256, timeout=args.timeout, log=_log, deadline=args.deadline)
    print(
        f"{record['file']}: {record['action']}, {record['downloaded_bytes']} bytes downloaded, "
        f"sha256 {record['sha256']}"
    )
    return 0


def _mini(args: argparse.Namespace) -> int:
    from suite.data.mini import build_mini

    manifest = build_mini(args.root, log=_log)
    counts = ", ".join(f"{split} {len(info['images'])}" for split, info in manifest["splits"].items())
    print(f"mini benchmark written to {args.root} ({counts} images; scales {manifest['scales']})")
    return 0


def _limit_options(parser: argparse.ArgumentParser) -> None:
    from suite.cli import positive_float

    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="network timeout: connecting, and every 64 KiB of data must arrive within it (default 30)",
    )
    parser.add_argument(
        "--deadline",
        type=positive_float,
        metavar="SECONDS",
        help="the longest a whole download may take; what arrived is kept and resumed by the next run (default: a day)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="datasets: fetch, fetch-file, mini benchmark", description=__doc__)
    actions = parser.add_subparsers(dest="data_command", required=True)

    fetch = actions.add_parser(
        "fetch",
        help="download, verify and extract a dataset",
        description="Resumable download with SHA-256 verification (lock file), "
        "safe extraction; a second run does nothing.",
    )
    fetch.add_argument(
        "name",
        help="DIV2K, Flickr2K, DF2K (DIV2K train HR + Flickr2K HR, linked into one "
        "folder), benchmark, Set5, Set14, B100, Urban100, or Manga109 "
        "(no public archive: needs --url, --mirror or the archive placed by hand)",
    )
    fetch.add_argument("--root", type=Path, required=True, help="data root folder")
    fetch.add_argument(
        "--parts", nargs="+", metavar="PART", help="DIV2K parts, e.g. train_HR valid_HR valid_LR_X2 (default: all)"
    )
    fetch.add_argument("--url", help="download this URL instead (one archive only)")
    fetch.add_argument(
        "--mirror",
        help="base URL holding the archives by their file names "
        "(default: $SUITE_DATA_MIRROR, else the original sources)",
    )
    _limit_options(fetch)
    fetch.add_argument("--remove-archives", action="store_true", help="delete archives once extracted")
    fetch.set_defaults(func=_fetch)

    one = actions.add_parser(
        "fetch-file",
        help="download and verify one file, e.g. a released checkpoint",
        description="Resumable download of URL to --out with SHA-256 verification "
        "(--sha256, else the lock file beside --out, pinned on first use); "
        "a file already at --out is verified and used without network.",
    )
    one.add_argument(
        "url", help="http(s) URL to download, or a local path / file:// URL to copy (a checkpoint downloaded by hand)"
    )
    one.add_argument("--out", type=Path, required=True, help="the file to write (its folder holds the lock file)")
    one.add_argument("--sha256", help="expected SHA-256 (64 hex digits)")
    _limit_options(one)
    one.set_defaults(func=_fetch_file)

    mini = actions.add_parser("mini", help="write the embedded mini benchmark (scikit-image photographs)")
    mini.add_argument("--root", type=Path, required=True, help="output folder")
    mini.set_defaults(func=_mini)
