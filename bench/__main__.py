"""Run every benchmark module (``bench/bench_*.py``) and print their tables; ``python -m bench NAME``
runs the ones whose name contains NAME; ``--json FILE`` also writes every figure the modules
reported (``bench.figure``) as one flat JSON object."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
import time
from datetime import UTC, datetime

import bench


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description="Run the benchmark modules.")
    ap.add_argument("names", nargs="*", help="run only modules whose name contains one of these")
    ap.add_argument("--json", metavar="FILE", help="also write every reported figure to FILE as JSON")
    args = ap.parse_args(argv)
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    if args.names:
        names = [n for n in names if any(a in n for a in args.names)]
    failed = 0
    for name in names:
        print(f"\n## {name.removeprefix('bench_')}\n", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            _main_without_argv(module)
        except Exception as e:  # one broken benchmark must not hide the others
            failed += 1
            print(f"FAILED: {type(e).__name__}: {e}")
        seconds = time.perf_counter() - t0
        bench.figure(f"{name.removeprefix('bench_')}.bench_seconds", seconds)
        print(f"\n({name} took {seconds:.1f} s)", flush=True)
        if args.json:  # after each module: a later failure or kill keeps what was measured
            write_json(args.json)
    if args.json:
        write_json(args.json)
    return 1 if failed else 0


def _main_without_argv(module: object) -> None:
    """Modules with an argparse ``main(argv=None)`` must not see ``python -m bench``'s own arguments."""
    saved = sys.argv
    sys.argv = [saved[0]]
    try:
        module.main()  # type: ignore[attr-defined]
    finally:
        sys.argv = saved


def write_json(path: str) -> None:
    doc = {"bench.finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
           "bench.cpu_count": os.cpu_count(), "bench.load_avg_1m": round(os.getloadavg()[0], 2),
           **dict(sorted(bench.FIGURES.items()))}
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
