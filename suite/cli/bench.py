"""`suite bench`: placeholder until its issue lands."""

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="(not yet implemented)")
    parser.set_defaults(func=lambda args: parser.error("not yet implemented"))
