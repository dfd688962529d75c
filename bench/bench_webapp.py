"""Web app benchmark: case list, search and case detail latency over HTTP against the running app.

    .venv/bin/python -m bench webapp
    JIANFU_BENCH_WEB_N=20000 .venv/bin/python -m bench.bench_webapp

A store of N findings (default 100,000; env JIANFU_BENCH_WEB_N) is written through the Store API
(as scans write it: pages with several findings, some image ads shown on several pages, 16
districts), ``jianfu serve`` (waitress, 4 threads) is started on a free port, and a logged-in
investigator (4 districts) and an admin request the pages over HTTP. Times are wall-clock per
request at the client on 127.0.0.1 (so server time plus a loopback round trip). Beside each row:
the same query made directly on the store and search backend in this process (the bare tool, no
HTTP or Django), to show what the app adds. With Elasticsearch at JIANFU_TEST_ES_URL (default
http://127.0.0.1:9200) the search rows are repeated with ``--es`` after ``jianfu index``.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
N = int(os.environ.get("JIANFU_BENCH_WEB_N", "100000"))
REQUESTS = int(os.environ.get("JIANFU_BENCH_WEB_REQUESTS", "60"))
ES_URL = os.environ.get("JIANFU_TEST_ES_URL", "http://127.0.0.1:9200")
PASSWORD = "Bench-pass-2026"


def build_store(path: Path, n: int, seed: int = 11) -> dict[str, Any]:
    from bench.bench_search import CATEGORIES, DISTRICTS, FILLER, INSTITUTIONS, PHRASES, SEVERITY
    from detectors.model import Finding
    from store import Store

    rnd = random.Random(seed)
    made = 0
    with Store(path) as st:
        scan = st.begin_scan(["https://bench.example.cn/"], target="bench")
        st.db.execute("PRAGMA synchronous=OFF")
        page = 0
        while made < n:
            inst = rnd.choice(INSTITUTIONS)
            district = DISTRICTS[zlib.crc32(f"{inst}{page % 7}".encode()) % len(DISTRICTS)]
            url = f"https://{zlib.crc32(inst.encode()) % 9999}.example.cn/p/{page}.html"
            k = min(n - made, rnd.randint(1, 9))
            parts, findings = [], []
            pos = 0
            for _ in range(k):
                cat = rnd.choice(CATEGORIES)
                words = rnd.choice(PHRASES[cat])
                filler = FILLER[rnd.randrange(0, 60):][: rnd.randint(10, 40)]
                parts += [filler, words]
                start = pos + len(filler)
                findings.append(Finding(cat, f"{cat}.r{PHRASES[cat].index(words)}", words, start, start + len(words),
                                        round(rnd.uniform(0.5, 1), 2), SEVERITY[cat], "《双减意见》第13条",
                                        (f"rule {cat}.r: 测试", "score 0.80 ≥ threshold 0.50")))
                pos = start + len(words)
            text = "".join(parts)
            if rnd.random() < 0.15:  # an image ad (the same banner on a few pages of the institution)
                sha = hashlib.sha256(f"{inst}/{page % 40}".encode()).hexdigest()
                st.save_findings(scan, url, "image", text, findings, image_url=f"{url}.banner.png", image_sha256=sha,
                                 boxes=[[[0, 0], [10, 0], [10, 10], [0, 10]]] * k, institution=inst, district=district)
            else:
                st.save_page(scan, url, status=200, title=f"{inst} - 课程 {page}", text=text, institution=inst)
                st.save_findings(scan, url, "text", text, findings, institution=inst, district=district)
            made += k
            page += 1
        st.finish_scan(scan)
        cases = st.count_cases()
    return {"findings": made, "pages": page, "cases": cases, "districts": DISTRICTS[:4],
            "words": [w for ws in PHRASES.values() for w in ws]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jianfu(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jianfu", *args], cwd=ROOT, input=input, text=True,
                          capture_output=True, timeout=3600)


class App:
    def __init__(self, store: Path, es: str | None = None) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "jianfu", "serve", "--store", str(store), "--port", str(self.port),
               "--threads", "4"]
        if es:
            cmd += ["--es", es]
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log, text=True)
        self.base = f"http://127.0.0.1:{self.port}"
        import requests

        for _ in range(300):
            try:
                if requests.get(self.base + "/login/", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("jianfu serve did not start: " + self.log_tail())

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read()[-1500:]

    def session(self, name: str) -> Any:
        import requests

        s = requests.Session()
        s.get(self.base + "/login/")
        r = s.post(self.base + "/login/", data={"username": name, "password": PASSWORD,
                                                "csrfmiddlewaretoken": s.cookies["csrftoken"]}, allow_redirects=False)
        assert r.status_code == 302, r.text[:200]
        return s

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def timed(fn, items: list[Any]) -> list[float]:
    out = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        out.append((time.perf_counter() - t) * 1000)
    return out


def p(ms: list[float], q: float) -> float:
    return statistics.quantiles(ms, n=100, method="inclusive")[int(q) - 1] if len(ms) > 1 else ms[0]


def get_ok(s: Any, url: str, **params: Any) -> str:
    r = s.get(url, params=params)
    if r.status_code != 200:
        raise RuntimeError(f"{url} {params} → HTTP {r.status_code}")
    return r.text


def run(store: Path, info: dict[str, Any], es: str | None, rows: list[list[str]]) -> None:
    import re

    from search.base import SearchQuery
    from store import Store

    rnd = random.Random(5)
    app = App(store, es)
    label = "Elasticsearch" if es else "SQLite FTS5"
    try:
        inv, admin = app.session("inv"), app.session("admin")
        words = [rnd.choice(info["words"]) for _ in range(REQUESTS)]
        with Store(store) as st:
            if es:
                from search.elastic import ElasticBackend

                backend: Any = ElasticBackend(es, alias=os.environ.get("JIANFU_ES_INDEX"))
            else:
                from search.sqlite_fts import SqliteBackend

                backend = SqliteBackend(st)
            districts = info["districts"]

            def bare_search(w: str) -> None:
                q = SearchQuery(text=w, filters={"district": tuple(districts)}, sort="newest", facets=(),
                                highlight=False)
                case_ids = sorted(set(st.case_ids_of(backend.ids(q)).values()))
                st.count_cases(district=districts, ids=case_ids)
                st.cases(district=districts, ids=case_ids, limit=50)

            get_ok(inv, app.base + "/cases/", q=words[0])  # warm up (FTS catch-up, caches)
            bare_search(words[0])
            web = timed(lambda w: get_ok(inv, app.base + "/cases/", q=w), words)
            bare = timed(bare_search, words)
            rows.append([f"search `/cases/?q=…` (investigator, 4 districts), {label}", f"{p(web, 50):.0f}",
                         f"{p(web, 95):.0f}", f"{p(bare, 95):.0f}"])
            web = timed(lambda w: get_ok(admin, app.base + "/cases/", q=w), words)
            rows.append([f"search `/cases/?q=…` (admin, all districts), {label}", f"{p(web, 50):.0f}",
                         f"{p(web, 95):.0f}", "–"])
            if es:
                return
            cats = [rnd.choice(["preschool_subject", "photo_search", "prepaid_fees", ""]) for _ in range(REQUESTS)]
            web = timed(lambda c: get_ok(inv, app.base + "/cases/", category=c), cats)
            bare = timed(lambda c: (st.count_cases(district=districts, **({"category": c} if c else {})),
                                    st.cases(district=districts, limit=50, **({"category": c} if c else {}))), cats)
            rows.append(["case list, page 1 (± category filter), investigator", f"{p(web, 50):.0f}",
                         f"{p(web, 95):.0f}", f"{p(bare, 95):.0f}"])
            web = timed(lambda _: get_ok(admin, app.base + "/cases/"), range(REQUESTS))
            rows.append(["case list, page 1, admin (all cases)", f"{p(web, 50):.0f}", f"{p(web, 95):.0f}", "–"])
            # deep paging: walk to page 250 (12,500 cases in) by the next-page links, time the last hops
            html = get_ok(admin, app.base + "/cases/")
            hops = []
            for _ in range(min(250, info["cases"] // 50 - 1)):
                m = re.search(r'href="(\?[^"]*after=[^"]+)" rel="next"', html)
                if not m:
                    break
                t = time.perf_counter()
                html = get_ok(admin, app.base + "/cases/" + m.group(1).replace("&amp;", "&"))
                hops.append((time.perf_counter() - t) * 1000)
            if hops:
                rows.append([f"case list, next page at page {len(hops) + 1} (keyset), admin", f"{p(hops, 50):.0f}",
                             f"{p(hops, 95):.0f}", "–"])
            offset_pages = [rnd.randint(200, 400) for _ in range(20)]
            web = timed(lambda n: get_ok(admin, app.base + "/cases/", page=n), offset_pages)
            rows.append(["case list, jump to page 200–400 (offset), admin", f"{p(web, 50):.0f}", f"{p(web, 95):.0f}",
                         "–"])
            ids = [c["id"] for c in st.cases(district=districts, limit=1000)]
            sample = [rnd.choice(ids) for _ in range(REQUESTS)]
            web = timed(lambda cid: get_ok(inv, f"{app.base}/cases/{cid}/"), sample)
            bare = timed(lambda cid: st.case(cid), sample)
            rows.append(["case detail, investigator", f"{p(web, 50):.0f}", f"{p(web, 95):.0f}", f"{p(bare, 95):.0f}"])
            web = timed(lambda _: get_ok(inv, app.base + "/"), range(20))
            rows.append(["总览 (overview), investigator", f"{p(web, 50):.0f}", f"{p(web, 95):.0f}", "–"])
    except RuntimeError as e:
        raise RuntimeError(f"{e}; server log: {app.log_tail()}") from None
    finally:
        app.close()


def es_up(url: str) -> bool:
    import requests

    try:
        return requests.get(url + "/_cluster/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="jianfu-bench-web-") as tmp:
        store = Path(tmp) / "store"
        t = time.perf_counter()
        info = build_store(store, N)
        build_s = time.perf_counter() - t
        jianfu("users", "add", "admin", "--role", "admin", "--store", str(store), input=PASSWORD + "\n")
        args = [a for d in info["districts"] for a in ("--district", d)]
        jianfu("users", "add", "inv", "--role", "investigator", *args, "--store", str(store), input=PASSWORD + "\n")
        rows: list[list[str]] = []
        run(store, info, None, rows)
        es_note = "Elasticsearch not reachable: ES rows skipped"
        if es_up(ES_URL):
            alias = f"jianfu-bench-web-{os.getpid()}"
            t = time.perf_counter()
            proc = jianfu("index", "--store", str(store), "--es", ES_URL, "--es-index", alias, "--no-remember")
            if proc.returncode == 0:
                es_note = f"Elasticsearch index of {info['findings']:,} findings built in {time.perf_counter() - t:.0f} s"
                os.environ["JIANFU_ES_INDEX"] = alias
                import requests

                try:
                    run(store, info, ES_URL, rows)
                except (RuntimeError, requests.RequestException, OSError) as e:
                    es_note += f"; the Elasticsearch rows failed: {type(e).__name__}: {str(e)[:120]}"
                finally:
                    os.environ.pop("JIANFU_ES_INDEX", None)
                    try:
                        requests.delete(f"{ES_URL}/{alias}-*", timeout=30)
                    except requests.RequestException:
                        pass
            else:
                es_note = "jianfu index failed: " + proc.stderr.strip().splitlines()[-1]
        load = os.getloadavg()
        print(f"{info['findings']:,} findings in {info['cases']:,} cases ({info['pages']:,} pages), store written "
              f"in {build_s:.0f} s; {REQUESTS} requests per row; {es_note}. Machine load average at the end "
              f"{load[0]:.1f} on {os.cpu_count()} CPUs (times grow with it).\n")
        print("| request | p50 ms | p95 ms | bare store/search p95 ms |")
        print("|---|---:|---:|---:|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
