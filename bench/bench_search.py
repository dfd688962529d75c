"""Search benchmark: bulk index rate and search latency on both backends.

    .venv/bin/python -m bench.bench_search            # 100k findings on both, 1M on ES if allowed
    JIANFU_BENCH_N=20000 JIANFU_BENCH_ES_N=50000 .venv/bin/python -m bench.bench_search

Env: JIANFU_BENCH_N (SQLite and ES size, default 100000), JIANFU_BENCH_ES_N (extra, larger ES
size, default 1000000; 0 to skip), JIANFU_BENCH_QUERIES (queries per size, default 200),
JIANFU_TEST_ES_URL (default http://127.0.0.1:9200; the ES rows are skipped when it is down).
Prints a markdown table.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import figure

CATEGORIES = ("preschool_subject", "photo_search", "competition_ranking", "advance_teaching",
              "off_hours_schedule", "prepaid_fees", "teacher_qualification", "guarantee_promise",
              "false_claim", "unlicensed_subject")
PHRASES = {
    "preschool_subject": ["幼小衔接", "学前识字", "拼音提前学", "幼儿数学思维", "大班升一年级"],
    "photo_search": ["拍照搜题", "一拍即得答案", "作业秒出答案"],
    "competition_ranking": ["奥数竞赛", "华杯赛冲刺", "杯赛排名", "数学竞赛一等奖"],
    "advance_teaching": ["超前学习", "提前学完初中数学", "寒假预习下学期", "培优拔高"],
    "off_hours_schedule": ["周末全天班", "寒暑假集训", "节假日补课", "晚上九点后上课"],
    "prepaid_fees": ["一次性缴清三年学费", "预交48课时", "充值送课时", "年卡优惠"],
    "teacher_qualification": ["名师无证授课", "清北学霸老师", "前新东方名师"],
    "guarantee_promise": ["保证提分", "不过全额退款", "包过", "提分30分"],
    "false_claim": ["100%升学率", "全市第一", "官方指定", "教育局推荐"],
    "unlicensed_subject": ["语文数学英语辅导", "物理化学一对一", "学科类培训"],
}
INSTITUTIONS = ["学而思", "新东方", "高思教育", "卓越教育", "精锐教育", "学大教育", "昂立教育", "龙文教育",
                "巨人教育", "优胜教育", "金石教育", "博学堂", "启明星", "智慧树", "小天才", "春芽",
                "明日之星", "北辰教育", "东方之星", "睿思"]
DISTRICTS = ["海淀区", "朝阳区", "东城区", "西城区", "丰台区", "石景山区", "通州区", "昌平区", "大兴区",
             "顺义区", "房山区", "门头沟区", "浦东新区", "徐汇区", "天河区", "南山区"]
FILLER = ("本机构专注中小学教育多年，拥有一流师资团队，小班授课，个性化辅导，欢迎家长带孩子免费试听，"
          "咨询电话请拨打热线，地址位于地铁站旁交通便利，春季班火热报名中，名额有限先到先得，"
          "课程覆盖多个年级，采用互动教学模式，定期举办家长会反馈学习情况。")
SEVERITY = {"preschool_subject": "high", "photo_search": "medium", "competition_ranking": "high",
            "advance_teaching": "high", "off_hours_schedule": "medium", "prepaid_fees": "medium",
            "teacher_qualification": "low", "guarantee_promise": "medium", "false_claim": "low",
            "unlicensed_subject": "high"}


def generate(n: int, seed: int = 7, with_page_text: bool = True) -> Iterator[dict[str, Any]]:
    """Realistic-looking finding documents (deterministic for a seed)."""
    from search.indexer import finding_doc

    rnd = random.Random(seed)
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    for i in range(n):
        cat = rnd.choice(CATEGORIES)
        words = rnd.choice(PHRASES[cat])
        inst = rnd.choice(INSTITUTIONS)
        district = rnd.choice(DISTRICTS)
        a = rnd.randrange(0, len(FILLER) - 40)
        b = rnd.randrange(0, len(FILLER) - 40)
        before = FILLER[a:a + rnd.randint(10, 40)]
        after = FILLER[b:b + rnd.randint(10, 40)]
        context = f"{inst}{before}{words}{after}"
        first = t0 + timedelta(minutes=rnd.randrange(0, 60 * 24 * 365))
        last = first + timedelta(minutes=rnd.randrange(0, 60 * 24 * 60))
        ts = lambda d: d.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # noqa: E731
        url = f"https://{abs(hash(inst)) % 9999}.example.cn/course/{i // 5}"
        row = {
            "id": uuid.UUID(int=rnd.getrandbits(128)).hex[:24], "category": cat, "rule_id": f"{cat}.{PHRASES[cat].index(words)}",
            "text": words, "start": len(inst) + len(before), "end": len(inst) + len(before) + len(words),
            "score": round(rnd.uniform(0.5, 1.0), 2), "severity": SEVERITY[cat],
            "basis": "《关于进一步减轻义务教育阶段学生作业负担和校外培训负担的意见》",
            "explanation": [f"matched {words!r}"], "context": context, "url": url,
            "source": "image" if rnd.random() < 0.15 else "text", "image_url": None, "image_sha256": None,
            "institution": inst, "district": district,
            "status": rnd.choices(["open", "confirmed", "dismissed"], [8, 1, 1])[0],
            "first_seen_at": ts(first), "last_seen_at": ts(last), "first_scan_id": "bench", "last_scan_id": "bench",
        }
        page_text = (context + FILLER) * 2 if with_page_text else None
        yield finding_doc(row, page_title=f"{inst} 课程介绍", page_text=page_text)


QUERIES = ["幼小衔接", "奥数", "提分", "保证提分", "寒暑假集训", "学费", "名师 -新东方", "竞赛 OR 杯赛",
           "拍照搜题", "一对一", "超前学习 海淀区", "充值", "100%升学率", "学科类培训", "数学"]


def _queries(k: int, seed: int = 3) -> list[Any]:
    from search.base import SearchQuery

    rnd = random.Random(seed)
    out = []
    for _ in range(k):
        text = rnd.choice(QUERIES)
        filters: dict[str, Any] = {}
        if rnd.random() < 0.4:
            filters["category"] = [rnd.choice(CATEGORIES)]
        if rnd.random() < 0.3:
            filters["district"] = [rnd.choice(DISTRICTS)]
        if rnd.random() < 0.2:
            filters["status"] = ["open"]
        sort = rnd.choice(["relevance", "relevance", "newest", "severity"])
        out.append(SearchQuery(text=text, filters=filters, sort=sort, size=20))
    return out


def _latency(backend: Any, queries: list[Any]) -> tuple[float, float]:
    times = []
    for q in queries[:5]:
        backend.search(q)  # warm up
    for q in queries:
        t = time.perf_counter()
        backend.search(q)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p50 = statistics.median(times)
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
    return p50, p95


def bench_sqlite(n: int, queries: list[Any]) -> dict[str, Any]:
    from search.sqlite_fts import SqliteBackend
    from store import Store

    with tempfile.TemporaryDirectory() as d:
        store = Store(d)
        be = SqliteBackend(store)
        docs = list(generate(n, with_page_text=False))
        t, cpu = time.perf_counter(), time.process_time()
        for i in range(0, n, 10000):
            be.index(docs[i:i + 10000])
        be.refresh()  # the index catches up (otherwise the first search does)
        rate, cpu = n / (time.perf_counter() - t), time.process_time() - cpu
        p50, p95 = _latency(be, queries)
        store.close()
    return {"backend": "SQLite FTS5 (a token per character), in the store", "key": "sqlite", "n": n, "rate": rate,
            "cpu": cpu, "p50": p50, "p95": p95}


def bench_bare_trigram(n: int) -> dict[str, Any]:
    """The bare tool: the same texts into a plain contentless FTS5 trigram table of a new database
    (WAL, 10,000 a transaction), no findings table, no triggers, no store."""
    import sqlite3

    values = [(i + 1, d["text"], d["context"]) for i, d in enumerate(generate(n, with_page_text=False))]
    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(os.path.join(d, "bare.sqlite3"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE VIRTUAL TABLE t USING fts5(text, context, content='', tokenize='trigram')")
        t, cpu = time.perf_counter(), time.process_time()
        for i in range(0, n, 10000):
            db.execute("BEGIN")
            db.executemany("INSERT INTO t(rowid, text, context) VALUES (?, ?, ?)", values[i:i + 10000])
            db.execute("COMMIT")
        rate, cpu = n / (time.perf_counter() - t), time.process_time() - cpu
        db.close()
    return {"backend": "bare SQLite FTS5 trigram insert (same texts, no store)", "key": "sqlite_bare_trigram",
            "n": n, "rate": rate, "cpu": cpu, "p50": None, "p95": None}


def bench_es(url: str, n: int, queries: list[Any], key: str = "es") -> dict[str, Any]:
    from search.elastic import ElasticBackend

    be = ElasticBackend(url, alias=f"jianfu-bench-{uuid.uuid4().hex[:6]}")
    try:
        t = time.perf_counter()
        be.rebuild(generate(n))
        rate = n / (time.perf_counter() - t)
        p50, p95 = _latency(be, queries)
    finally:
        be.drop()
        be.close()
    return {"backend": "Elasticsearch 8.19 (1 GB heap)", "key": key, "n": n,
            "rate": rate, "cpu": None, "p50": p50, "p95": p95}


def main() -> int:
    n = int(os.environ.get("JIANFU_BENCH_N", "100000"))
    es_n = int(os.environ.get("JIANFU_BENCH_ES_N", "1000000"))
    k = int(os.environ.get("JIANFU_BENCH_QUERIES", "200"))
    url = os.environ.get("JIANFU_TEST_ES_URL", "http://127.0.0.1:9200")
    queries = _queries(k)
    rows = [bench_sqlite(n, queries), bench_bare_trigram(n)]
    try:
        from search.elastic import ElasticBackend

        ElasticBackend(url).close()
        es_up = True
    except Exception as e:
        print(f"(Elasticsearch at {url} not reachable, ES rows skipped: {e})", file=sys.stderr)
        es_up = False
    if es_up:
        rows.append(bench_es(url, n, queries))
        if es_n and es_n > n:
            rows.append(bench_es(url, es_n, queries, key=f"es_{es_n // 1000}k"))
    for r in rows:
        figure(f"search.{r['key']}_bulk_per_s", r["rate"])
        if r["cpu"] is not None:
            figure(f"search.{r['key']}_bulk_cpu_s", r["cpu"])
        if r["p50"] is not None:
            figure(f"search.{r['key']}_p50_ms", r["p50"])
            figure(f"search.{r['key']}_p95_ms", r["p95"])
    ms = lambda v: "–" if v is None else f"{v:.1f}"  # noqa: E731
    print("| backend | findings | bulk index rate (findings/s) | CPU for the load (s) | search p50 (ms) | search p95 (ms) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        cpu = "–" if r["cpu"] is None else f"{r['cpu']:.2f}"
        print(f"| {r['backend']} | {r['n']:,} | {r['rate']:,.0f} | {cpu} | {ms(r['p50'])} | {ms(r['p95'])} |")
    print(f"\n{len(queries)} queries per row (Chinese words, 1–5 characters, with random filters and sorts), "
          "page size 20, facets and highlights on; rate includes building the index (ES: refresh included). "
          "SQLite: CPU seconds of this process (ES works in its own); the bare row is the tool alone, "
          "the findings table, its indexes and the store's triggers are the rest of jianfu's figure.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
