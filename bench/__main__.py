"""Run every benchmark module (``bench/bench_*.py``) and print their tables; ``python -m bench NAME``
runs the ones whose name contains NAME."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    failed = 0
    for name in names:
        print(f"\n## {name.removeprefix('bench_')}\n", flush=True)
        t0 = time.perf_counter()
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception as e:  # one broken benchmark must not hide the others
            failed += 1
            print(f"FAILED: {type(e).__name__}: {e}")
        print(f"\n({name} took {time.perf_counter() - t0:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
