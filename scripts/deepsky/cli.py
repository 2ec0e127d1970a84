"""The ``deepsky`` command line: one sub-command per module that registers itself here.

Each sub-command module exposes ``add_parser(subparsers)`` which adds its parser and sets
``func`` (called with the parsed arguments, returning an exit status).
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: modules providing sub-commands (each with add_parser(subparsers))
SUBCOMMANDS: list[str] = ["predict", "manifest"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepsky", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"deepsky.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"deepsky {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
