"""OCR benchmark on generated ad images: accuracy, keyword recall, speed, memory.

    python -m bench.bench_ocr [--banners 36] [--posters 30] [--quick] [--paddle] [--cores 1]

Each engine runs in its own subprocess (so peak RSS is its own), pinned to ``--cores`` CPU(s),
on the same deterministic image set from ``demo_site.adgen.bench_set``:

- CER: character edit distance / characters drawn, over the set (spaces ignored);
- keyword recall: of the findings the detector reports on the *drawn* text, the share it also
  reports (same rule, same words) on the OCR text;
- s/img: wall time of ``read_image`` (decode + OCR + QR + pHash), median and p95, after one
  warm-up image; load time is reported separately;
- peak RSS: the subprocess's maximum resident set size.

The default engine runs the int8 det/rec models ``make install`` builds (``detectors.ocr.int8``;
the table's footnote names the models that ran); "fp32 det/rec" is the same engine on the wheel's
fp32 models, the default before issue 18's third step, so every run shows that gain.

Targets (issue 4): CER ≤ 1 % on clean banners, ≤ 2 % on busy posters, ≤ 0.1 s per banner on one
core, ≤ 600 MB resident.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

from bench import figure, peak_rss_mb

ENGINES: dict[str, tuple[str, dict]] = {
    "rapidocr (jianfu tuned, int8 det/rec)": ("rapidocr", {}),
    "rapidocr (tuned, fp32 det/rec: before issue 18's int8)": ("rapidocr", {"int8": False}),
    "rapidocr (tuned, side 960)": ("rapidocr", {"limit_side_len": 960}),
    "rapidocr (tuned, heap not capped)": ("rapidocr", {"heap_mmap_threshold": None}),
    "rapidocr (tuned fp32, no onnxruntime arena: before issue 18)": (
        "rapidocr", {"cpu_mem_arena": False, "int8": False}),
    "rapidocr (tuned fp32, lines batched by 6, 64 KB heap cap: issue 18 first step)": (
        "rapidocr", {"rec_batch_num": 6, "heap_mmap_threshold": 64 * 1024, "int8": False}),
    "rapidocr (bare defaults)": ("rapidocr", {"defaults": False}),
    "paddleocr PP-OCRv4 (extra)": ("paddleocr", {}),
}
BARE = "rapidocr (bare defaults)"
DEFAULT = "rapidocr (jianfu tuned, int8 det/rec)"
# figure-name prefix per engine: the default configuration's figures carry no engine part
SLUGS = {DEFAULT: "", "rapidocr (tuned, fp32 det/rec: before issue 18's int8)": "fp32_",
         "rapidocr (tuned, side 960)": "side960_", "rapidocr (tuned, heap not capped)": "uncapped_",
         "rapidocr (tuned fp32, no onnxruntime arena: before issue 18)": "no_arena_",
         "rapidocr (tuned fp32, lines batched by 6, 64 KB heap cap: issue 18 first step)": "batch6_",
         BARE: "bare_", "paddleocr PP-OCRv4 (extra)": "paddle_"}


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def run_engine(label: str, images_file: str) -> dict:
    """Runs in the subprocess: read every image, return per-image measurements. The images were
    drawn by the parent (drawing them loads CJK fonts: ~250 MB that are not the OCR's)."""
    from detectors import detect
    from detectors.images import image_findings, read_image
    from detectors.ocr import load_engine

    name, settings = ENGINES[label]
    with open(images_file, "rb") as fh:
        images = pickle.load(fh)
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
    return {"label": label, "engine": getattr(engine, "name", name), "load_s": load_s, "rows": rows,
            "peak_rss_mb": peak_rss_mb()}


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
        "| engine | set | images | CER | keyword recall | s/img median | s/img p95 | × bare | QR ok | peak RSS | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    bare = next((r for r in results if r.get("label") == BARE and "error" not in r), None)
    for res in results:
        if "error" in res:
            out.append(f"| {res['label']} | — | — | — | — | — | — | — | — | — | {res['error']} |")
            continue
        for kind, set_name in (("banner", "clean banners"), ("poster", "busy posters")):
            s = summarise(res, kind)
            slug = SLUGS.get(res["label"], "")
            figure(f"ocr.{slug}{kind}_median_s", s["median"])
            figure(f"ocr.{slug}{kind}_p95_s", s["p95"])
            figure(f"ocr.{slug}{kind}_cer", s["cer"])
            figure(f"ocr.{slug}{kind}_keyword_recall", s["recall"])
            figure(f"ocr.{slug}peak_rss_mb", res["peak_rss_mb"])
            ratio = f"{s['median'] / summarise(bare, kind)['median']:.2f}" if bare else "—"
            out.append(
                f"| {res['label']} | {set_name} | {s['n']} | {s['cer'] * 100:.2f} % | "
                f"{s['recall'] * 100:.1f} % ({s['kw']}) | {s['median']:.3f} s | {s['p95']:.3f} s | {ratio} | "
                f"{s['qr']}/{s['n']} | {res['peak_rss_mb']:.0f} MB | {res['load_s']:.1f} s |"
            )
    out.append("")
    default = next((r for r in results if r.get("label") == DEFAULT and "error" not in r), None)
    if default:
        out.append(f"Default engine: {default['engine']}.")
    out.append(f"CPU cores per engine: {cores} (pinned); images from demo_site.adgen.bench_set; "
               "targets: CER ≤ 1 % banners, ≤ 2 % posters, ≤ 0.1 s/banner, ≤ 600 MB. "
               "× bare: median time over bare rapidocr's in this run (the machine may be loaded: "
               f"compare ratios). Load average at the end: {os.getloadavg()[0]:.1f}.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--banners", type=int, default=36)
    ap.add_argument("--posters", type=int, default=30)
    ap.add_argument("--cores", type=int, default=1, help="CPU cores each engine may use (pinned)")
    ap.add_argument("--quick", action="store_true", help="12 banners, 8 posters, no heap comparison")
    ap.add_argument("--paddle", action="store_true", help="also run the paddleocr extra")
    ap.add_argument("--engine", help=argparse.SUPPRESS)  # subprocess mode
    ap.add_argument("--images-file", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.engine:
        cpus = sorted(os.sched_getaffinity(0))[: args.cores]
        os.sched_setaffinity(0, cpus)
        print(json.dumps(run_engine(args.engine, args.images_file)))
        return

    from demo_site.adgen import bench_set

    if args.quick:
        args.banners, args.posters = 12, 8
    labels = [lb for lb in ENGINES if (args.paddle or ENGINES[lb][0] != "paddleocr")
              and not (args.quick and "heap" in lb)]
    results = []
    with tempfile.NamedTemporaryFile(suffix=".pickle") as fh:
        # plain values, not AdImage objects: unpickling those would import the generator and its
        # CJK fonts (~265 MB) into the engine's process and count them as OCR memory
        plain = [(kind, SimpleNamespace(data=ad.data, text=ad.text, qr=ad.qr, width=ad.width, height=ad.height))
                 for kind, ad in bench_set(args.banners, args.posters)]
        pickle.dump(plain, fh)
        fh.flush()
        for label in labels:
            results.append(_run_child(label, fh.name, args.cores))
    print(table(results, args.cores))


def _run_child(label: str, images_file: str, cores: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_ocr", "--engine", label, "--images-file", images_file,
         "--cores", str(cores)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(cores)},
    )
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return {"label": label, "error": err}
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
