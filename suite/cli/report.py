"""`suite report`: tables, figures and REPORT.md from a results folder (see suite.report)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="tables, figures and REPORT.md from a results folder",
        description="Read eval JSONs, training summaries and logs and the profile sweep under --results; "
        "write tables/, figures/ and REPORT.md under --out.",
    )
    parser.add_argument("--results", type=Path, required=True, help="results folder (results/<config name>)")
    parser.add_argument("--out", type=Path, required=True, help="folder for tables/, figures/ and REPORT.md")
    parser.add_argument("--title", help="the report's title (default: the results folder's name)")
    parser.add_argument("--val-dataset", help="validation set of training: its bicubic PSNR is drawn")
    parser.add_argument(
        "--analysis-dataset",
        help="test set of the positional-bias comparison (default: the one most trained models were evaluated on)",
    )
    parser.add_argument(
        "--paper-rows",
        nargs="+",
        default=[],
        metavar="METHOD=ROW",
        help="compare eval/<METHOD>/ with a row of the paper's values "
        "(suite/report/paper_values.yaml), e.g. large+-rib='SST-L+ (DF2K)'",
    )
    parser.add_argument(
        "--skipped",
        nargs="+",
        default=[],
        metavar="DATASET=WHY",
        help="test sets left out of the evaluations, each with why (one line each near the top of REPORT.md), "
        "e.g. 'Manga109=no source'",
    )
    crop = parser.add_argument_group("visual crop comparison (needs images saved by suite eval --save-images)")
    crop.add_argument("--crop-dataset", help="test set of the crop")
    crop.add_argument("--crop-scale", type=int, help="scale of the crop")
    crop.add_argument("--crop-hr", type=Path, help="folder of that test set's HR images")
    crop.add_argument("--crop-image", help="image name (default: the first one)")
    crop.add_argument("--crop-size", type=int, default=64, help="crop side in HR pixels (default 64)")
    parser.set_defaults(func=run)


def parse_pairs(option: str, items: list[str], example: str) -> dict[str, str]:
    """["NAME=TEXT", ...] of `option` (--paper-rows, --skipped) -> {NAME: TEXT}; a malformed or repeated item is
    an error naming the option and the item."""
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise ValueError(f"{option} {item!r}: expected {example}")
        if name.strip() in pairs:
            raise ValueError(f"{option} names {name.strip()!r} twice")
        pairs[name.strip()] = text.strip()
    return pairs


def run(args: argparse.Namespace) -> int:
    from suite.report import CropRequest, build_report

    crop_args = {"--crop-dataset": args.crop_dataset, "--crop-scale": args.crop_scale, "--crop-hr": args.crop_hr}
    given = [flag for flag, value in crop_args.items() if value is not None]
    if given and len(given) != len(crop_args):
        missing = ", ".join(flag for flag in crop_args if flag not in given)
        raise ValueError(f"the crop comparison needs {', '.join(crop_args)} together; missing {missing}")
    if args.crop_size < 8:
        raise ValueError(f"--crop-size must be at least 8 HR pixels, got {args.crop_size}")
    crop = (
        CropRequest(args.crop_dataset, args.crop_scale, args.crop_hr, args.crop_image, args.crop_size)
        if given
        else None
    )
    paper_rows = parse_pairs("--paper-rows", args.paper_rows, "METHOD=ROW, e.g. large+-rib='SST-L+ (DF2K)'")
    written = build_report(
        args.results,
        args.out,
        args.title,
        args.val_dataset,
        crop,
        paper_rows,
        args.analysis_dataset,
        parse_pairs("--skipped", args.skipped, "DATASET=WHY, e.g. 'Manga109=no source'"),
    )
    print(f"suite report: wrote {len(written)} files under {args.out} (REPORT.md, tables/, figures/)")
    return 0
