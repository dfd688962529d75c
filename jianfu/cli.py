"""The ``jianfu`` console script: one argparse parser, subcommands registered by module.

Each module in ``COMMANDS`` exposes ``register(subparsers)``, which adds its subcommand(s) and sets
``func`` on them; ``func(args) -> int`` is the exit code. A bad command line exits 2 with one line;
an operational error (``CommandError``) exits 1 with one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from jianfu import __version__

COMMANDS = [
    "detectors.command",
    "crawler.command",
    "store.command",
    "evidence.command",
    "search.command",
    "scheduler.command",
    "scheduler.worker_command",
]


class CommandError(Exception):
    """An error to report to the user in one line (exit code 1)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jianfu", description="双减 training-ad monitor")
    parser.add_argument("--version", action="version", version=f"jianfu {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as e:
        print(f"jianfu {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"jianfu {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
