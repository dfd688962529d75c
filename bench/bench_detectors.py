"""Quality and speed benchmark of the detectors against a plain keyword baseline.

    .venv/bin/python -m bench.bench_detectors            # ~50 MB speed run
    JIANFU_BENCH_MB=2 .venv/bin/python -m bench.bench_detectors   # quick run

Quality: recall on ../shared/corpus/dev_violations.jsonl (flagged = any finding), the share of
dev_compliant.jsonl passed (no finding), category accuracy (share of flagged violations with a
finding whose category is in the row's ``categories``), plus the same figures on the held-out
texts in tests/data/detectors_heldout.jsonl. Speed: MB/s (UTF-8 bytes) of ``detect`` on the
corpus texts repeated to the target size, beside a naive regex alternation of the same anchors.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from detectors.engine import default_detector

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
HELDOUT = ROOT / "tests" / "data" / "detectors_heldout.jsonl"

# The obvious terms, no context: what a keyword filter would use.
BASELINE: dict[str, list[str]] = {
    "preschool_subject": ["幼小衔接", "学前班", "拼音", "识字"],
    "photo_search": ["拍照搜题", "搜题", "拍题"],
    "competition_ranking": ["杯赛", "竞赛", "奥数", "光荣榜", "喜报", "排名"],
    "advance_teaching": ["提前学", "超前", "小升初", "衔接班", "预习"],
    "off_hours_schedule": ["暑假班", "寒假班", "周末班", "暑期班", "周六", "周日"],
    "prepaid_fees": ["年卡", "年缴", "充值", "一次性"],
    "teacher_qualification": ["在职教师", "在职老师", "名师", "名校"],
    "guarantee_promise": ["保过", "包过", "提分", "通过率", "退款"],
    "false_claim": ["原价", "焦虑", "起跑线", "最好"],
    "unlicensed_subject": ["一对一", "补习", "家教", "住家教师", "家政"],
}


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def baseline_detect(text: str) -> list[str]:
    return [cat for cat, words in BASELINE.items() for w in words if w in text]


def detector_cats(text: str) -> list[str]:
    return [f.category for f in default_detector().detect(text)]


def quality(violations: list[dict], compliant: list[dict], fn: Callable[[str], list[str]]) -> dict:
    flagged = cat_ok = 0
    for row in violations:
        cats = fn(row["text"])
        if cats:
            flagged += 1
            if set(cats) & set(row.get("categories") or []):
                cat_ok += 1
    passed = sum(1 for row in compliant if not fn(row["text"]))
    return {
        "recall": flagged / len(violations) if violations else float("nan"),
        "passed": passed / len(compliant) if compliant else float("nan"),
        "category": cat_ok / flagged if flagged else float("nan"),
    }


def speed_unique(texts: list[str], mb: float) -> float:
    """MB/s when no line repeats (each line numbered), so the per-line memo never helps."""
    det = default_detector()
    det._line_cache.clear()
    lines = []
    size = 0
    i = 0
    while size < mb * 1e6:
        line = f"第{i}条 {texts[i % len(texts)]}\n"
        lines.append(line)
        size += len(line.encode("utf-8"))
        i += 1
    big = "".join(lines)
    t0 = time.perf_counter()
    det.detect(big)
    return size / 1e6 / (time.perf_counter() - t0)


def speed(texts: list[str], mb: float) -> tuple[float, float, int, int]:
    unit = "\n".join(texts) + "\n"
    reps = max(1, int(mb * 1e6 / len(unit.encode("utf-8"))))
    big = unit * reps
    size = len(big.encode("utf-8")) / 1e6
    det = default_detector()
    t0 = time.perf_counter()
    n_found = len(det.detect(big))
    t_det = time.perf_counter() - t0
    words = sorted({a for r in det.rules for p in r.patterns for a in p.anchors}, key=len, reverse=True)
    naive = re.compile("|".join(re.escape(w) for w in words))
    t0 = time.perf_counter()
    n_naive = sum(1 for _ in naive.finditer(big))
    t_naive = time.perf_counter() - t0
    return size / t_det, size / t_naive, n_found, n_naive


def main() -> None:
    mb = float(os.environ.get("JIANFU_BENCH_MB", "50"))
    print("## jianfu detectors benchmark\n")
    default_detector()
    texts: list[str] = []
    sets = []
    if CORPUS.is_dir() and (CORPUS / "dev_violations.jsonl").exists():
        v = read_jsonl(CORPUS / "dev_violations.jsonl")
        c = read_jsonl(CORPUS / "dev_compliant.jsonl") if (CORPUS / "dev_compliant.jsonl").exists() else []
        sets.append((f"dev corpus ({len(v)} violations, {len(c)} compliant)", v, c))
        texts = [r["text"] for r in v + c]
    else:
        print(f"(corpus not found at {CORPUS}: skipping the dev-corpus quality figures)\n")
    if HELDOUT.exists():
        rows = read_jsonl(HELDOUT)
        hv = [r for r in rows if r.get("categories")]
        hc = [r for r in rows if not r.get("categories")]
        sets.append((f"held-out ({len(hv)} violations, {len(hc)} compliant)", hv, hc))
        texts = texts or [r["text"] for r in rows]
    if sets:
        print("| set | method | violations flagged | compliant passed | category right (of flagged) |")
        print("|---|---|---|---|---|")
        for name, v, c in sets:
            for label, fn in (("jianfu detectors", detector_cats), ("keyword baseline", baseline_detect)):
                q = quality(v, c, fn)
                print(f"| {name} | {label} | {q['recall']:.3f} | {q['passed']:.3f} | {q['category']:.3f} |")
        print()
    if not texts:
        print("(no texts for the speed run)")
        return
    det_mbs, naive_mbs, n_found, n_naive = speed(texts, mb)
    n_terms = len({a for r in default_detector().rules for p in r.patterns for a in p.anchors})
    uniq_mb = min(mb, 5.0)
    uniq = speed_unique(texts, uniq_mb)
    print(f"| speed, one core, ~{mb:g} MB of corpus texts repeated (one string; MB = UTF-8 bytes) | MB/s | hits |")
    print("|---|---|---|")
    print(f"| jianfu detect (normalise + automaton + rules + context) | {det_mbs:.1f} | {n_found} findings |")
    print(f"| naive regex alternation of the same {n_terms} anchor terms (no normalisation, no rules) "
          f"| {naive_mbs:.1f} | {n_naive} matches |")
    print(f"| jianfu detect, ~{uniq_mb:g} MB where no line repeats (per-line memo defeated) | {uniq:.1f} | |")


if __name__ == "__main__":
    main()
