"""The suspected (疑似) tier — the precedent matcher and the wording model — on the real corpora,
beside the rules.

    .venv/bin/python -m bench precedents

For the tuning and sealed parts of both corpora (``bench.corpus``): the rules alone; each source of
the suspected tier on its own, behind a rule engine with no rule packs (its own recall, violations
with a suspected finding, and its compliant-passed, compliant texts with none): the precedent
matcher, then the wording model (``detectors.wording``); and rules + suspected together as shipped
(a suspected finding only where no rule fired), with the number of violations only the suspected
tier flags. A text never counts for itself: when a tuning text is scored, every precedent from its
own source is left out (the sealed part is not in the library at all). The wording model was
trained on the tuning part, so only its sealed figures are a fair estimate. Only figures are
printed for the sealed part, never its texts.

Then page-like text without violations (``bench.bench_detectors.realistic_text``): suspected
findings per MB (false alarms), and the speed of rules alone vs rules + precedents.
"""

from __future__ import annotations

import os
import tempfile
import time

from bench import corpus, figure
from detectors.engine import Detector, default_detector
from detectors.precedents import SUSPECTED, PrecedentDetector, load_library


def _score(detector: PrecedentDetector, violations: list[corpus.Record], compliant: list[corpus.Record]) -> dict:
    out = {"n_v": len(violations), "n_c": len(compliant)}
    hits = {"rules": 0, "suspected": 0, "both": 0, "only_suspected": 0, "cat_suspected": 0}
    clean = {"rules": 0, "suspected": 0, "both": 0}
    for records, is_violation in ((violations, True), (compliant, False)):
        for r in records:
            detector.exclude = lambda p, url=r.source_url: p.source_url == url  # never itself
            found = detector.detect(r.text)
            rules = [f for f in found if f.tier != SUSPECTED]
            sus = [f for f in found if f.tier == SUSPECTED]
            if is_violation:
                hits["rules"] += bool(rules)
                hits["suspected"] += bool(sus)
                hits["both"] += bool(found)
                hits["only_suspected"] += bool(sus) and not rules
                hits["cat_suspected"] += any(f.category in r.categories for f in sus)
            else:
                clean["rules"] += not rules
                clean["suspected"] += not sus
                clean["both"] += not found
    detector.exclude = None
    nv, nc = max(1, len(violations)), max(1, len(compliant))
    out.update({
        "rules_recall": hits["rules"] / nv, "rules_passed": clean["rules"] / nc,
        "sus_recall": hits["suspected"] / nv, "sus_passed": clean["suspected"] / nc,
        "sus_only": hits["only_suspected"], "sus_cat": hits["cat_suspected"] / max(1, hits["suspected"]),
        "both_recall": hits["both"] / nv, "both_passed": clean["both"] / nc,
    })
    return out


def main() -> None:
    if not corpus.available():
        print(f"corpus not found at {corpus.CORPUS_DIR}")
        return
    rules = default_detector()
    library = load_library()
    detector = PrecedentDetector(rules, library)
    with tempfile.TemporaryDirectory() as empty:
        alone = PrecedentDetector(Detector(empty), library, wording=False)
        worded = PrecedentDetector(Detector(empty), [])
    print(f"library: {len(library)} cases ({sum(p.violation for p in library)} violations, "
          f"{sum(not p.violation for p in library)} counter-examples), tuning part only; "
          f"suspected at similarity ≥ {detector.suspect_at:.2f}, margin {detector.margin:.2f} over counter-examples\n")
    model = detector.wording
    print(f"wording model: {model.trained_on} training texts, suspected at probability ≥ "
          f"{model.threshold_probability:.2f}\n" if model else "wording model: none shipped\n")
    print("| corpus | part | violations / compliant | rules: recall / passed | precedents alone: recall / "
          "passed (category right) | wording model alone: recall / passed (category right) | "
          "rules + suspected: recall / passed | violations only the suspected tier flags |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, vfile, cfile in corpus.SETS:
        vt, vs = corpus.split(corpus.load(vfile))
        ct, cs = corpus.split(corpus.load(cfile))
        for part, v, c in (("tuning", vt, ct), ("sealed", vs, cs)):
            s = _score(detector, v, c)
            a = _score(alone, v, c)
            w = _score(worded, v, c)
            print(f"| {name} | {part} | {s['n_v']} / {s['n_c']} | {s['rules_recall']:.2f} / {s['rules_passed']:.2f} | "
                  f"{a['sus_recall']:.2f} / {a['sus_passed']:.2f} ({a['sus_cat']:.2f}) | "
                  f"{w['sus_recall']:.2f} / {w['sus_passed']:.2f} ({w['sus_cat']:.2f}) | "
                  f"{s['both_recall']:.2f} / {s['both_passed']:.2f} | {s['sus_only']} |")
            if part == "sealed":
                figure(f"precedents.{name}_sealed_shipped_recall", s["both_recall"])
                figure(f"precedents.{name}_sealed_shipped_passed", s["both_passed"])
                figure(f"precedents.{name}_sealed_wording_recall", w["sus_recall"])

    from bench.bench_detectors import realistic_text

    mb = float(os.environ.get("JIANFU_BENCH_MB", "1"))
    text, _ = realistic_text(mb, [], [], "", violation_share=0)
    size = len(text.encode("utf-8")) / 1e6
    rules.detect(text[:2000])
    t0 = time.process_time()
    found = rules.detect(text)
    t_rules = time.process_time() - t0
    t0 = time.process_time()
    both = detector.annotate(text, found)
    t_prec = time.process_time() - t0
    alarms = sum(f.tier == SUSPECTED for f in both)
    print(f"\npage-like text without violations, {size:.1f} MB:\n")
    print("| | MB/s (CPU) | suspected findings per MB |")
    print("|---|---:|---:|")
    print(f"| rules | {size / max(t_rules, 1e-9):.1f} | |")
    print(f"| rules + precedents (citations, suspected tier) | {size / max(t_rules + t_prec, 1e-9):.1f} | "
          f"{alarms / size:.1f} |")
    figure("precedents.filler_rules_mb_s", size / max(t_rules, 1e-9))
    figure("precedents.filler_shipped_mb_s", size / max(t_rules + t_prec, 1e-9))
    figure("precedents.filler_suspected_per_mb", alarms / size)


if __name__ == "__main__":
    main()
