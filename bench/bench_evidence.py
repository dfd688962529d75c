"""Evidence packets: size, export time and verify time for the demo scan.

Scans the four demo institutions once (subprocess), then exports the whole scan — with the PDF
report (headless Chromium) and without — and one single finding, and verifies each packet.
Export times are measured in-process (``evidence.packet.export``), so they exclude interpreter
start-up; the ``jianfu verify`` row includes it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from demo_site.server import INSTITUTIONS, DemoSites


def main() -> None:
    from evidence.packet import ExportRequest, export
    from evidence.verify import verify

    with DemoSites(list(INSTITUTIONS)) as sites, tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        seeds = [f"{INSTITUTIONS[n]}={sites.urls[n]}" for n in INSTITUTIONS]
        out = subprocess.run([sys.executable, "-m", "jianfu", "scan", *seeds, "--store", str(store),
                              "--quiet", "--json"], check=True, capture_output=True, text=True).stdout
        summary = json.loads(out)
        scan_id = summary["scan_id"]
        first = json.loads(subprocess.run([sys.executable, "-m", "jianfu", "findings", "--store", str(store),
                                           "--format", "jsonl"], check=True, capture_output=True,
                                          text=True).stdout.splitlines()[0])["id"]
        rows = []
        for label, req in (
            (f"whole scan ({summary['findings']} findings, {summary['pages']} pages), with PDF",
             ExportRequest(scan_id=scan_id)),
            ("whole scan, --no-pdf", ExportRequest(scan_id=scan_id, pdf=False)),
            ("one finding, with PDF", ExportRequest(finding_ids=[first])),
            ("one finding, --no-pdf", ExportRequest(finding_ids=[first], pdf=False)),
        ):
            path = Path(tmp) / f"p{len(rows)}.zip"
            t0 = time.perf_counter()
            res = export(store, path, req)
            t_export = time.perf_counter() - t0
            t0 = time.perf_counter()
            ok = verify(path).ok
            t_verify = time.perf_counter() - t0
            with zipfile.ZipFile(path) as z:
                wacz = z.getinfo("evidence.wacz").file_size
                pdf = z.getinfo("report.pdf").file_size if "report.pdf" in z.namelist() else 0
            rows.append((label, path.stat().st_size, wacz, pdf, res["files"], t_export,
                         res["timings"].get("report", 0.0), t_verify, ok))
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, "-m", "jianfu", "verify", str(Path(tmp) / "p0.zip")],
                            capture_output=True).returncode
        t_cli = time.perf_counter() - t0

    print("| packet (demo scan, 4 institutions) | size | of which WACZ | of which PDF | files | export s "
          "| of which report+PDF s | verify s | verdict |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for label, size, wacz, pdf, files, te, tr, tv, ok in rows:
        print(f"| {label} | {size / 1e6:.2f} MB | {wacz / 1e6:.2f} MB | {pdf / 1e6:.2f} MB | {files} "
              f"| {te:.2f} | {tr:.2f} | {tv:.3f} | {'valid' if ok else 'INVALID'} |")
    print(f"\n(`jianfu verify` of the whole-scan packet as a command, start-up included: {t_cli:.2f} s, "
          f"exit {rc})")


if __name__ == "__main__":
    main()
