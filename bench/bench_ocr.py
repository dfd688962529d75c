"""OCR benchmark on generated ad images: accuracy, keyword recall, speed, memory.

    python -m bench.bench_ocr [--banners 36] [--posters 30] [--paddle] [--cores 1]

Each engine runs in its own subprocess (so peak RSS is its own), pinned to ``--cores`` CPU(s),
on the same deterministic image set from ``demo_site.adgen.bench_set``:

- CER: character edit distance / characters drawn, over the set (spaces ignored);
- keyword recall: of the findings the detector reports on the *drawn* text, the share it also
  reports (same rule, same words) on the OCR text;
- s/img: wall time of ``read_image`` (decode + OCR + QR + pHash), median and p95, after one
  warm-up image; load time is reported separately;
- peak RSS: the subprocess's maximum resident set size.

Targets (issue 4): CER ≤ 1 % on clean banners, ≤ 2 % on busy posters, ≤ 0.1 s per banner on one
core, ≤ 600 MB resident.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ENGINES: dict[str, tuple[str, dict]] = {
    "rapidocr (jianfu tuned)": ("rapidocr", {}),
    "rapidocr (tuned, side 736)": ("rapidocr", {"limit_side_len": 736}),
    "rapidocr (bare defaults)": ("rapidocr", {"defaults": False}),
    "paddleocr PP-OCRv4 (extra)": ("paddleocr", {}),
}


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def run_engine(label: str, n_banners: int, n_posters: int) -> dict:
    """Runs in the subprocess: read every image, return per-image measurements."""
    from demo_site.adgen import bench_set
    from detectors import detect
    from detectors.images import image_findings, read_image
    from detectors.ocr import load_engine

    name, settings = ENGINES[label]
    images = bench_set(n_banners, n_posters)
    t0 = time.perf_counter()
    engine = load_engine(name, **settings)
    load_s = time.perf_counter() - t0
    read_image(images[0][1].data, engine)  # warm-up (first-run allocations)
    rows = []
    for kind, ad in images:
        t = time.perf_counter()
        reading = read_image(ad.data, engine)
        secs = time.perf_counter() - t
        truth = ad.text.replace(" ", "")
        got = reading.text.replace(" ", "")
        want = {(f.rule_id, f.text) for f in detect(ad.text)}
        have = {(f.rule_id, f.text) for f, _ in image_findings(reading)}
        rows.append({
            "kind": kind, "secs": secs, "chars": len(truth), "edits": edit_distance(truth, got),
            "kw_want": len(want), "kw_found": len(want & have), "px": ad.width * ad.height,
            "qr_ok": (ad.qr is None) or (reading.qr == [ad.qr]),
        })
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"label": label, "engine": getattr(engine, "name", name), "load_s": load_s, "rows": rows,
            "peak_rss_mb": peak_kb / 1024}


def summarise(result: dict, kind: str) -> dict:
    rows = [r for r in result["rows"] if r["kind"] == kind]
    secs = sorted(r["secs"] for r in rows)
    p95 = secs[min(len(secs) - 1, max(0, round(0.95 * len(secs)) - 1))]
    return {
        "n": len(rows),
        "cer": sum(r["edits"] for r in rows) / max(1, sum(r["chars"] for r in rows)),
        "recall": sum(r["kw_found"] for r in rows) / max(1, sum(r["kw_want"] for r in rows)),
        "kw": sum(r["kw_want"] for r in rows),
        "median": statistics.median(secs), "p95": p95,
        "qr": sum(r["qr_ok"] for r in rows),
    }


def table(results: list[dict], cores: int) -> str:
    out = [
        "| engine | set | images | CER | keyword recall | s/img median | s/img p95 | QR ok | peak RSS | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        if "error" in res:
            out.append(f"| {res['label']} | — | — | — | — | — | — | — | — | {res['error']} |")
            continue
        for kind, set_name in (("banner", "clean banners"), ("poster", "busy posters")):
            s = summarise(res, kind)
            out.append(
                f"| {res['label']} | {set_name} | {s['n']} | {s['cer'] * 100:.2f} % | "
                f"{s['recall'] * 100:.1f} % ({s['kw']}) | {s['median']:.3f} s | {s['p95']:.3f} s | "
                f"{s['qr']}/{s['n']} | {res['peak_rss_mb']:.0f} MB | {res['load_s']:.1f} s |"
            )
    out.append("")
    out.append(f"CPU cores per engine: {cores} (pinned); images from demo_site.adgen.bench_set; "
               "targets: CER ≤ 1 % banners, ≤ 2 % posters, ≤ 0.1 s/banner, ≤ 600 MB.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--banners", type=int, default=36)
    ap.add_argument("--posters", type=int, default=30)
    ap.add_argument("--cores", type=int, default=1, help="CPU cores each engine may use (pinned)")
    ap.add_argument("--paddle", action="store_true", help="also run the paddleocr extra")
    ap.add_argument("--engine", help=argparse.SUPPRESS)  # subprocess mode
    args = ap.parse_args(argv)

    if args.engine:
        cpus = sorted(os.sched_getaffinity(0))[: args.cores]
        os.sched_setaffinity(0, cpus)
        print(json.dumps(run_engine(args.engine, args.banners, args.posters)))
        return

    labels = [lb for lb in ENGINES if args.paddle or ENGINES[lb][0] != "paddleocr"]
    results = []
    for label in labels:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.bench_ocr", "--engine", label, "--banners", str(args.banners),
             "--posters", str(args.posters), "--cores", str(args.cores)],
            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.cores)},
        )
        if proc.returncode != 0:
            err = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            results.append({"label": label, "error": err})
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(table(results, args.cores))


if __name__ == "__main__":
    main()
