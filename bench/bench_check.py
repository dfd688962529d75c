"""Check-now benchmark: ``jianfu check`` on one phone photo and on a 10-page PDF brochure (seconds,
peak memory), against the bare tools on the same input (bare rapidocr on the photo; pypdfium2 text
plus bare rapidocr on the PDF's images); and how OCR holds up on phone photos against flat banners.

    python -m bench.bench_check [--ads 8] [--quick]

Timing runs each in its own subprocess (peak RSS is its own; the OCR model load is included, as an
investigator pays it). Accuracy uses generated posters from ``demo_site.adgen`` (the same lines on
each): the flat banner, the phone photo read as jianfu reads it (EXIF, perspective straightened),
and the same photo read without straightening — CER (character edit distance / characters drawn,
spaces ignored) and keyword recall (of the findings the detector reports on the drawn text, the
share also reported on the OCR text, same rule and words).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_ocr import edit_distance

ROOT = Path(__file__).resolve().parent.parent

_TIMED = r"""
import json, sys, time, hashlib
from bench import peak_rss_mb
t0 = time.perf_counter()
mode, path, store = sys.argv[1:4]
if mode == "check":
    from jianfu.cli import main
    import contextlib, io
    with contextlib.redirect_stdout(io.StringIO()):
        main(["check", path, "--store", store])
elif mode == "bare-photo":
    from detectors.ocr import load_engine
    from detectors.images import read_image
    read_image(open(path, "rb").read(), load_engine(), qr=False)
elif mode == "bare-pdf":
    import io
    import pypdfium2 as pdfium, pypdfium2.raw as c
    from detectors.ocr import load_engine
    from detectors.images import read_image
    engine = load_engine()
    doc = pdfium.PdfDocument(open(path, "rb").read())
    for page in doc:
        page.get_textpage().get_text_bounded()
        for obj in page.get_objects(filter=(c.FPDF_PAGEOBJ_IMAGE,)):
            buf = io.BytesIO(); obj.get_bitmap(render=True).to_pil().save(buf, "PNG")
            read_image(buf.getvalue(), engine, qr=False)
print(json.dumps({"seconds": time.perf_counter() - t0,
                  "peak_mb": peak_rss_mb()}))
"""


def timed(mode: str, path: Path, store: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _TIMED, mode, str(path), str(store)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode}: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _squash(text: str) -> str:
    return "".join(text.split())


PHOTO_CONDITIONS = {  # how the photo was taken: corner shift, blur radius, poster scale in the frame
    "moderate": {"angle": 0.3, "blur": 1.4, "scale": 0.8},
    "hard": {"angle": 0.4, "blur": 1.8, "scale": 0.7},
}


def accuracy(n_ads: int) -> list[tuple[str, dict]]:
    """CER and keyword recall on flat posters, and on phone photos of them (two conditions) read
    as jianfu reads them (EXIF + straightened) and with EXIF only."""
    from demo_site.adgen import NEUTRAL, VIOLATIONS, render
    from demo_site.submissions import phone_photo
    from detectors import detect
    from detectors.images import decode_image, ocr_image
    from detectors.ocr import load_engine
    from intake.check import SUBMISSION_OCR
    from intake.photo import straighten

    engine = load_engine(**SUBMISSION_OCR)  # as jianfu check reads them
    rng = random.Random(2026)
    keys = ["flat poster (as a banner)"]
    for cond in PHOTO_CONDITIONS:
        keys += [f"phone photo, {cond}: EXIF + straightened (jianfu)", f"phone photo, {cond}: EXIF only"]
    rows: dict[str, dict] = {k: {"edits": 0, "chars": 0, "want": 0, "got": 0, "seconds": []} for k in keys}
    phrases = list(VIOLATIONS)

    def read(key: str, image, truth: str, want: set, fix: bool) -> None:  # noqa: ANN001
        t0 = time.perf_counter()
        img = straighten(image)[0] if fix else image
        text = "\n".join(ln.text for ln in ocr_image(img, engine))
        rows[key]["seconds"].append(time.perf_counter() - t0)
        got = {(f.rule_id, f.text) for f in detect(text)}
        rows[key]["edits"] += edit_distance(_squash(truth), _squash(text))
        rows[key]["chars"] += len(_squash(truth))
        rows[key]["want"] += len(want)
        rows[key]["got"] += len(want & got)

    for i in range(n_ads):
        lines = [phrases[i % len(phrases)], rng.choice(NEUTRAL), phrases[(i + 2) % len(phrases)], rng.choice(NEUTRAL)]
        ad = render(lines, font_size=34, style="noise", fmt="PNG", seed=i, mixed_fonts=True)
        truth = "\n".join(lines)
        want = {(f.rule_id, f.text) for f in detect(truth)}
        read(keys[0], decode_image(ad.data).image, truth, want, False)
        for n, params in enumerate(PHOTO_CONDITIONS.values()):
            photo = decode_image(phone_photo(ad, seed=100 + i, exif_rotate=bool(i % 2), glare=0.45, moire=14,
                                             **params)).image
            read(keys[1 + 2 * n], photo, truth, want, True)
            read(keys[2 + 2 * n], photo, truth, want, False)
    return list(rows.items())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ads", type=int, default=8)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv if argv is not None else [])
    from demo_site.submissions import brochure_pdf, phone_photo

    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        d = Path(tmp)
        photo, pdf = d / "photo.jpg", d / "brochure.pdf"
        photo.write_bytes(phone_photo(seed=1))
        pdf.write_bytes(brochure_pdf(10))
        print("| input | tool | seconds | peak RSS (MB) |")
        print("|---|---|---:|---:|")
        for label, path, bare in (("phone photo (1350×960 JPEG q60)", photo, "bare-photo"),
                                  (f"10-page PDF brochure ({pdf.stat().st_size // 1024} KB, 5 image pages)", pdf,
                                   "bare-pdf")):
            for tool, mode, store in (("jianfu check (new store)", "check", d / f"s-{bare}"),
                                      ("bare rapidocr (+ pypdfium2)", bare, d / "unused")):
                r = timed(mode, path, store)
                print(f"| {label} | {tool} | {r['seconds']:.1f} | {r['peak_mb']:.0f} |")
    n = 4 if args.quick else args.ads
    print(f"\nOCR on phone photos vs flat posters ({n} generated posters, 4 lines of 34 px on a noisy background; "
          "photos: perspective, blur, moiré, glare, JPEG q60, every other one EXIF-rotated; "
          f"conditions {PHOTO_CONDITIONS})\n")
    print("| image | CER | keyword recall | s/img (median) |")
    print("|---|---:|---:|---:|")
    for key, r in accuracy(n):
        print(f"| {key} | {r['edits'] / max(1, r['chars']):.1%} | {r['got'] / max(1, r['want']):.0%} "
              f"({r['got']}/{r['want']}) | {statistics.median(r['seconds']):.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
