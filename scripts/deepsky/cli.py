"""The ``deepsky`` command line: one sub-command per module that registers itself here.

Each sub-command module exposes ``add_parser(subparsers)`` which adds its parser and sets
``func`` (called with the parsed arguments, returning an exit status).  Conventions shared by
every sub-command: ``--version``; ``-o/--out`` for what it writes; examples at the end of each
``--help``; exit status 2 with one line on stderr for a user's mistake (bad option, missing or
damaged file, wrong shape, bad model), the traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from . import __version__
from .errors import UserError

#: modules providing sub-commands (each with add_parser(subparsers))
SUBCOMMANDS: dict[str, str] = {"predict": "deepsky.predict", "manifest": "deepsky.manifest"}
#: exceptions that are the user's to fix: reported in one line, exit status 2
USER_ERRORS = (UserError, ValueError, OSError)

EPILOG = """\
examples:
  deepsky predict sizenet.keras --images f160w.fits --catalogue objects.csv -o sizes.parquet
  deepsky manifest results -o results/manifest.tsv
  deepsky predict --help      (every option of a sub-command, with examples)"""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and not isinstance(exc, UserError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="deepsky", description=__doc__.splitlines()[0], epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"deepsky {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    parser.set_defaults(_subparsers=sub)
    for name, module in SUBCOMMANDS.items():
        importlib.import_module(module).add_parser(sub)
        sub.choices[name].add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                       help="show the traceback of an error")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the sub-command's parser, so that its --help is the one suggested
        args._subparsers.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if not args.debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        if args.debug:
            traceback.print_exc()
        print(f"deepsky {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deepsky {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
