"""Ledger import: 100,000 generated institutions (2 % broken rows) as CSV (UTF-8 and GBK) and XLSX,
imported into a fresh store, then re-imported unchanged — rows/s and peak memory.

Each run is its own process (``jianfu institutions import``'s code path, ``ledger.importer``), so
its peak RSS is its own. The bare tool — reading the same file with ``csv.reader`` / openpyxl's
read-only mode and nothing else — runs in the same way beside it: the floor the import cannot beat.
"Memory flat" is checked by importing 10,000 and 100,000 rows: the peak must not grow with the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from demo_site.ledger import generate, write_csv, write_xlsx

ROWS = 100_000
SMALL = 10_000

PEAK = "from bench import peak_rss_mb as peak_mb\n"  # its own peak (bench.peak_rss_mb)
IMPORT = PEAK + """
import json, sys, time
from ledger.importer import import_file
from store import Store
store = Store(sys.argv[2])
t = time.perf_counter()
r = import_file(store, sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t, "rss_mb": peak_mb(),
                  **{k: r[k] for k in ("added", "changed", "unchanged", "rejected")}}))
"""
BARE = PEAK + """
import csv, json, sys, time
t = time.perf_counter()
n = 0
if sys.argv[1].endswith(".xlsx"):
    import openpyxl
    wb = openpyxl.load_workbook(sys.argv[1], read_only=True, data_only=True)
    for row in wb.worksheets[0].iter_rows(values_only=True):
        n += 1
    wb.close()
else:
    with open(sys.argv[1], encoding=sys.argv[2], newline="") as f:
        for row in csv.reader(f):
            n += 1
print(json.dumps({"seconds": time.perf_counter() - t, "rss_mb": peak_mb(),
                  "rows": n}))
"""


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        files = {}
        for n in (SMALL, ROWS):
            rows = [r.cells for r in generate(n)]
            files[("CSV UTF-8", n)] = (write_csv(tmp_path / f"l{n}-utf8.csv", rows, "utf-8"), "utf-8")
            files[("CSV GBK", n)] = (write_csv(tmp_path / f"l{n}-gbk.csv", rows, "gbk"), "gbk")
            files[("XLSX", n)] = (write_xlsx(tmp_path / f"l{n}.xlsx", rows), "")
            del rows
        print(f"| file ({ROWS:,} rows) | MB | bare read rows/s | import rows/s | re-import rows/s | "
              f"added / unchanged / rejected | peak RSS MB: bare · import {SMALL:,} → {ROWS:,} rows |")
        print("|---|---:|---:|---:|---:|---|---|")
        for kind in ("CSV UTF-8", "CSV GBK", "XLSX"):
            path, enc = files[(kind, ROWS)]
            bare = run(BARE, str(path), enc)
            store = tmp_path / f"store-{kind.replace(' ', '-')}"
            first = run(IMPORT, str(path), str(store))
            again = run(IMPORT, str(path), str(store))
            small = run(IMPORT, str(files[(kind, SMALL)][0]), str(tmp_path / f"small-{kind.replace(' ', '-')}"))
            assert again["unchanged"] == first["added"] and again["added"] == again["changed"] == 0, again
            print(f"| {kind} | {path.stat().st_size / 1e6:.1f} | {ROWS / bare['seconds']:,.0f} | "
                  f"{ROWS / first['seconds']:,.0f} | {ROWS / again['seconds']:,.0f} | "
                  f"{first['added']:,} / {again['unchanged']:,} / {first['rejected']:,} | "
                  f"{bare['rss_mb']:.0f} · {small['rss_mb']:.0f} → {first['rss_mb']:.0f} |", flush=True)
        print(f"\nrows/s over the whole file (header and rejected rows included); one transaction per import. "
              f"Memory is flat when the {ROWS:,}-row import peaks about where the {SMALL:,}-row one does.")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
