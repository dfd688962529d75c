"""Cases benchmark: the store's case queries at web-app scale, against grouping findings on the fly.

    .venv/bin/python -m bench cases                    # 100k findings (≈ 25k cases)
    JIANFU_BENCH_CASES_N=20000 .venv/bin/python -m bench cases

The store is filled through ``Store.save_findings`` (the crawler's path, case upkeep included;
its rate is the first row), ~4 findings per ad, 20 institutions × 16 districts, a year of scans.
Then each query runs ``JIANFU_BENCH_QUERIES`` times (default 50) and the table gives p50/p95 in
milliseconds. The bare tool is one SQLite ``GROUP BY`` over ``findings`` that computes the same
first page of cases without the ``cases`` table.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.bench_search import DISTRICTS, INSTITUTIONS, PHRASES, SEVERITY

BARE_FIRST_PAGE = """
SELECT f.institution, f.url, f.source, f.image_sha256, COUNT(*) AS findings,
       COUNT(DISTINCT f.rule_id || '|' || f.text) AS violations, GROUP_CONCAT(DISTINCT f.category) AS categories,
       MIN(f.first_seen_at) AS first_seen_at, MAX(f.last_seen_at) AS last_seen_at
FROM findings f {where}
GROUP BY f.institution, CASE WHEN f.source='image' THEN f.image_sha256 ELSE f.url END
ORDER BY last_seen_at DESC LIMIT 50"""


def fill(store: Any, n: int, seed: int = 11) -> float:
    """``n`` findings in ads of 1–7 findings; returns findings saved per second."""
    import store.db as db
    from detectors.model import Finding

    rnd = random.Random(seed)
    t0 = datetime(2025, 12, 1, tzinfo=UTC)
    clock = {"now": t0}
    real_now = db.utcnow
    db.utcnow = lambda: clock["now"].isoformat(timespec="milliseconds").replace("+00:00", "Z")
    scans = [store.begin_scan([f"https://{i}.example.cn/"], scan_id=f"bench-{i:03d}") for i in range(52)]
    saved, ad = 0, 0
    started = time.perf_counter()
    try:
        while saved < n:
            inst = rnd.choice(INSTITUTIONS)
            district = DISTRICTS[INSTITUTIONS.index(inst) % len(DISTRICTS)]
            site = f"https://{INSTITUTIONS.index(inst)}.example.cn"
            image = rnd.random() < 0.3
            k = min(n - saved, rnd.randint(1, 7))
            words = []
            for _ in range(k):
                cat = rnd.choice(list(PHRASES))
                words.append((cat, rnd.choice(PHRASES[cat])))
            text = "，".join(w for _, w in words)
            found, pos = [], 0
            for cat, w in words:
                start = text.index(w, pos)
                found.append(Finding(category=cat, rule_id=f"{cat}.{PHRASES[cat].index(w)}", text=w, start=start,
                                     end=start + len(w), score=0.8, severity=SEVERITY[cat], basis="《双减意见》",
                                     explanation=("bench",)))
                pos = start + len(w)
            week = rnd.randrange(len(scans))
            clock["now"] = t0 + timedelta(days=7 * week, minutes=rnd.randrange(600))
            page = f"{site}/p/{ad}.html"
            if image:
                store.save_findings(scans[week], page, "image", text, found, image_url=f"{site}/img/{ad}.png",
                                    image_sha256=f"{ad:064x}", boxes=[[[[0, 0], [9, 0], [9, 9], [0, 9]]]] * k,
                                    institution=inst, district=district)
            else:
                store.save_findings(scans[week], page, "text", text, found, institution=inst, district=district)
            saved += k
            ad += 1
    finally:
        db.utcnow = real_now
    return saved / (time.perf_counter() - started)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    fn()  # warm
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1000)
    ms.sort()
    return statistics.median(ms), ms[max(0, round(0.95 * len(ms)) - 1)]


def main() -> None:
    from store import Store

    n = int(os.environ.get("JIANFU_BENCH_CASES_N", "100000"))
    runs = int(os.environ.get("JIANFU_BENCH_QUERIES", "50"))
    with tempfile.TemporaryDirectory(prefix="jianfu-bench-cases-") as tmp:
        st = Store(tmp)
        rate = fill(st, n)
        total = st.count_cases()
        rnd = random.Random(3)
        deep = st.cases(limit=1000, offset=max(0, min(total - 1000, 10_000)))[-1]["cursor"]
        some = [c["id"] for c in st.cases(limit=200, sort="violations")]
        hits = [f["id"] for f in st.findings(category="photo_search")][:2000]
        rows = [
            ("case list, first page (50, newest)", lambda: st.cases(limit=50)),
            ("case list + count, district + status", lambda: (st.cases(district=rnd.choice(DISTRICTS), status="open"),
                                                            st.count_cases(district=rnd.choice(DISTRICTS),
                                                                           status="open"))),
            ("case list + count, category", lambda: (st.cases(category=rnd.choice(list(PHRASES))),
                                                   st.count_cases(category=rnd.choice(list(PHRASES))))),
            ("case list, severity sort, image ads", lambda: st.cases(sort="severity", source="image")),
            ("case list, keyset page past 10,000", lambda: st.cases(limit=50, after=deep)),
            ("case list, offset 10,000 (for comparison)", lambda: st.cases(limit=50, offset=10_000)),
            ("cases of 2,000 search hits", lambda: st.cases(finding_ids=hits)),
            ("facets (6 fields) + trend, all cases", lambda: (st.case_facets(), st.case_trend())),
            ("case detail (findings, sightings, elsewhere, reviews)", lambda: st.case(rnd.choice(some))),
            ("bare: GROUP BY findings, first page", lambda: st.db.execute(BARE_FIRST_PAGE.format(where="")).fetchall()),
            ("bare: GROUP BY findings, one district", lambda: st.db.execute(
                BARE_FIRST_PAGE.format(where="WHERE f.district=?"), (rnd.choice(DISTRICTS),)).fetchall()),
        ]
        print(f"{n:,} findings in {total:,} cases; saved through Store.save_findings at {rate:,.0f} findings/s "
              f"(case upkeep included)\n")
        print("| query | p50 ms | p95 ms |")
        print("|---|---:|---:|")
        for name, fn in rows:
            p50, p95 = timed(fn, runs)
            print(f"| {name} | {p50:.1f} | {p95:.1f} |")
        st.close()


if __name__ == "__main__":
    main()
