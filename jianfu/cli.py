"""The ``jianfu`` console script: one argparse parser, subcommands registered by module.

Each module in ``COMMANDS`` exposes ``register(subparsers)``, which adds its subcommand(s) and sets
``func`` on them; ``func(args) -> int`` is the exit code. No command ends in a traceback; how each
kind of failure ends is decided here, once:

====  ==========================================================================================
exit  meaning
====  ==========================================================================================
0     done (a scan whose single pages failed is done: failures are data in its summary)
1     an expected failure, one line on stderr: ``CommandError``, a store that cannot be opened or
      whose database is damaged (``store.StoreError``), bad input lines (``jianfu detect``)
2     a bad command line (argparse: usage, then one line)
70    a fault in jianfu itself: one line on stderr saying where the traceback was written
      (``$JIANFU_LOG_DIR``, else ``$XDG_STATE_HOME/jianfu`` or ``~/.local/state/jianfu``)
130   interrupted (Ctrl-C)
====  ==========================================================================================
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from jianfu import __version__

COMMANDS = [
    "detectors.command",
    "crawler.command",
    "store.command",
    "evidence.command",
    "search.command",
    "scheduler.command",
    "webapp.command",
    "ledger.command",
    "scheduler.worker_command",
    "intake.command",
]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_FAULT, EXIT_INTERRUPTED = 0, 1, 2, 70, 130


class CommandError(Exception):
    """An error to report to the user in one line (exit code 1)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jianfu", description="双减 training-ad monitor")
    parser.add_argument("--version", action="version", version=f"jianfu {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def log_dir() -> Path:
    if os.environ.get("JIANFU_LOG_DIR"):
        return Path(os.environ["JIANFU_LOG_DIR"])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "jianfu"


def write_fault_log(command: str, exc: BaseException) -> Path:
    """The traceback of a fault, with what was run, in a new file; returns its path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = (f"jianfu {__version__} · Python {platform.python_version()} · {platform.platform()}\n"
            f"command: {' '.join(sys.argv)}\n\n"
            + "".join(traceback.format_exception(exc)))
    for directory in (log_dir(), Path(tempfile.gettempdir()) / "jianfu"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"fault-{stamp}-{command}-{os.getpid()}.log"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    raise OSError("no writable log directory")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:1000]


def _store_failure(exc: BaseException) -> str | None:
    """The one line for a store that cannot be used, or None when ``exc`` is something else."""
    import sqlite3

    from store import StoreError

    if isinstance(exc, StoreError):
        return str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.ProgrammingError):
        text = str(exc)
        if any(s in text for s in ("not a database", "malformed", "disk I/O error", "readonly database",
                                   "unable to open database")):
            return f"存储库的数据库无法读取（文件已损坏、被截断或不是 jianfu 存储库）：{text}"
    return None


def main(argv: list[str] | None = None) -> int:
    command = "jianfu"
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        return int(args.func(args) or 0)
    except CommandError as e:
        print(f"jianfu {command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"jianfu {command}: 已中断 (interrupted)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say to it
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_OK
    except Exception as e:  # noqa: BLE001 — the one place a fault becomes a line and a log file
        store_failure = _store_failure(e)
        if store_failure:
            print(f"jianfu {command}: error: {_one_line(store_failure)}", file=sys.stderr)
            return EXIT_ERROR
        try:
            where = f"详细记录已写入 {write_fault_log(command, e)}"
        except OSError:
            where = "无法写入日志文件"
        print(f"jianfu {command}: 内部错误（程序缺陷，请报告）：{type(e).__name__}: "
              f"{_one_line(e)[:300]}；{where}", file=sys.stderr)
        return EXIT_FAULT


if __name__ == "__main__":
    sys.exit(main())
