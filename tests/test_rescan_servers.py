"""Re-scans against web servers jianfu did not write: Debian's nginx (ETag + Last-Modified + gzip,
or no validators at all) and ``python3 -m http.server`` (Last-Modified only, HTTP/1.0), both
started here on 127.0.0.1 (demo_site.static).

Each flow scans the demo institutions' sites as static files five times — first scan, unchanged
re-scan, one page changed, one page deleted, one page made script-built — and moves the
scheduler's baseline after each (scheduler.runs.finish_run), checking the findings' new / still
present / gone sets exactly: nothing falsely gone, nothing twice, no failure but the site's own
broken links. Plain HTTP scans (the script-built pages rendered automatically) and ``--render``
scans (every page drawn in Chromium, also when the server answers 304).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import pytest

from crawler.render import chromium_executable
from demo_site.static import NGINX, StaticSites
from scheduler import runs
from tests.conftest import jianfu

SITE_BROKEN_LINKS = {"missing-page.html", "old-courses"}  # qiming links them; a static server has neither


@pytest.fixture(scope="module", autouse=True)
def servers_and_browser():
    missing = [what for what, ok in (("nginx", os.access(NGINX, os.X_OK)), ("Chromium", chromium_executable()))
               if not ok]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"missing for the re-scan tests: {', '.join(missing)} (scripts/debian-packages.txt)")
        pytest.skip(f"missing: {', '.join(missing)}")


class Baseline:
    """Scans into one store as target ``t`` and moves the run baseline after each, like the scheduler."""

    def __init__(self, store: Path, seeds: list[str], *flags: str) -> None:
        self.store, self.seeds, self.flags = store, seeds, flags

    def down(self, sites: StaticSites) -> None:
        """The server stops answering: every fetch fails, nothing is gone, every failure is listed."""
        before = self.q("SELECT finding_id, state FROM watch")
        sites.stop()
        proc = jianfu("scan", *self.seeds, "--store", str(self.store), "--target", "t", "--json", "--quiet",
                      *self.flags, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads(proc.stdout)
        db = runs.connect(self.store)
        try:
            run = runs.finish_run(db, runs.begin_run(db, "t", "run-now"), "finished", summary["scan_id"], summary,
                                  None, [])
        finally:
            db.close()
        assert (run["new"], run["gone"], run["present"], run["returned"]) == (0, 0, 0, 0)
        assert self.q("SELECT finding_id, state FROM watch") == before
        assert summary["pages"] == 0 and summary["failures"]
            # robots.txt unreachable means the whole host is disallowed for this scan (RFC 9309), so the
        # pages are listed as refused by robots rather than fetched and failed
        assert all(f["error"] in ("refused", "browser_network", "robots_unreachable")
                   for f in summary["failures"]), summary["failures"]

    def scan(self) -> tuple[dict, dict[str, set[str]]]:
        proc = jianfu("scan", *self.seeds, "--store", str(self.store), "--target", "t", "--json", "--quiet",
                      *self.flags, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads(proc.stdout)
        db = runs.connect(self.store)
        try:
            run = runs.finish_run(db, runs.begin_run(db, "t", "run-now"), "finished", summary["scan_id"], summary,
                                  None, [])
            watch = db.execute("SELECT finding_id, state, first_run_id, changed_run_id FROM watch").fetchall()
        finally:
            db.close()
        rid = run["id"]
        states = {
            "new": {r[0] for r in watch if r[2] == rid},
            "gone": {r[0] for r in watch if r[1] == "gone" and r[3] == rid},
            "present": {r[0] for r in watch if r[1] == "present" and r[2] != rid},
        }
        assert (run["new"], run["gone"], run["present"], run["returned"]) == (
            len(states["new"]), len(states["gone"]), len(states["present"]), 0), run
        return summary, states

    def q(self, sql: str, *args: object) -> list[tuple]:
        con = sqlite3.connect(self.store / "jianfu.sqlite3")
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def findings(self, where: str = "1=1", *args: object) -> set[str]:
        return {r[0] for r in self.q(f"SELECT id FROM findings WHERE {where}", *args)}


def failures(summary: dict) -> set[str]:
    return {f["url"].rsplit("/", 1)[-1] for f in summary["failures"]}


def script_built(html: str) -> str:
    """The same page with its body drawn by a script: an HTTP fetch sees only a loading notice."""
    head, body = html.split("<body>", 1)
    body = body.split("</body>", 1)[0]
    scripts = "".join(re.findall(r"<script>.*?</script>", body, flags=re.S))
    markup = re.sub(r"<script>.*?</script>", "", body, flags=re.S)
    return (f"{head}<body><div id='root'><p>加载中…</p></div><script>document.getElementById('root').innerHTML = "
            f"{json.dumps(markup, ensure_ascii=False)};</script>{scripts}</body></html>")


@pytest.mark.parametrize("server", ["nginx", "python"])
def test_http_rescans_new_present_gone(server: str, tmp_path: Path) -> None:
    with StaticSites(["qiming", "xingguang"], server=server) as sites:
        q, x = sites.urls["qiming"], sites.urls["xingguang"]
        b = Baseline(tmp_path, [f"启明星学堂={q}", f"星光少儿在线={x}"])

        # 1. first scan: everything new, each finding once ("/" and "/index.html" are one page)
        first, st = b.scan()
        everything = b.findings()
        assert st["new"] == everything and not st["gone"] and not st["present"]
        assert failures(first) == SITE_BROKEN_LINKS
        assert not b.findings("url LIKE '%index.html'")
        assert {r[0] for r in b.q("SELECT fetched_url FROM page_addresses WHERE url=?", q)} == {q, q + "index.html"}
        assert b.q("SELECT rendered FROM pages WHERE url=?", x + "app.html") == [(1,)]  # built by script
        app = b.findings("url=?", x + "app.html")
        assert app

        # 2. unchanged: all still present, nothing failed — the script-built page too, though the
        # server answers 304 to its conditional request
        second, st = b.scan()
        assert st == {"new": set(), "gone": set(), "present": everything}
        assert failures(second) == SITE_BROKEN_LINKS
        statuses = dict(b.q("SELECT url, status FROM fetches WHERE scan_id=? AND kind='page' AND status IS NOT NULL",
                            second["scan_id"]))
        assert statuses[q + "courses.html"] == 304 and statuses[x + "app.html"] == 304
        assert b.q("SELECT rendered FROM pages WHERE scan_id=? AND url=?", second["scan_id"], x + "app.html") == [(1,)]

        # 3. one page changed: its removed words gone, its new words new, the rest still present
        courses = sites.root / "qiming" / "courses.html"
        html = courses.read_text()
        sites.write("qiming", "courses.html", html.replace(
            "保过升学测试，提分30分以上，不达目标全额退款。", "课后作业不会做？报名即送拍照搜题会员。"))
        removed = b.findings("url=? AND text IN ('保过', '提分30分', '不达目标全额退款')", q + "courses.html")
        assert len(removed) == 3
        third, st = b.scan()
        added = b.findings("first_scan_id=?", third["scan_id"])
        assert added and b.q("SELECT DISTINCT url FROM findings WHERE first_scan_id=?", third["scan_id"]) == [
            (q + "courses.html",)]
        assert any("拍照搜题" in t for (t,) in b.q("SELECT text FROM findings WHERE first_scan_id=?", third["scan_id"]))
        assert st == {"new": added, "gone": removed, "present": everything - removed}
        assert failures(third) == SITE_BROKEN_LINKS
        everything = everything - removed | added

        # 4. one page deleted (the server answers 404): its findings gone, and only its
        fees = b.findings("url=?", q + "fees.html")
        assert fees
        sites.delete("qiming", "fees.html")
        fourth, st = b.scan()
        assert st == {"new": set(), "gone": fees, "present": everything - fees}
        assert failures(fourth) == SITE_BROKEN_LINKS | {"fees.html"}
        everything -= fees

        # 5. one page made script-built: drawn in the browser, the same findings still present
        news = b.findings("url=?", q + "news.html")
        assert news
        sites.write("qiming", "news.html", script_built((sites.root / "qiming" / "news.html").read_text()))
        fifth, st = b.scan()
        assert st == {"new": set(), "gone": set(), "present": everything}
        assert failures(fifth) == SITE_BROKEN_LINKS | {"fees.html"}
        assert b.q("SELECT rendered FROM pages WHERE scan_id=? AND url=?", fifth["scan_id"], q + "news.html") == [(1,)]

        # 6. the server is down: every fetch fails, and no finding is gone
        b.down(sites)


@pytest.mark.parametrize("server", ["nginx", "python"])
def test_rendered_rescans_new_present_gone(server: str, tmp_path: Path) -> None:
    with StaticSites(["xingguang"], server=server) as sites:
        x = sites.urls["xingguang"]
        b = Baseline(tmp_path, [f"星光少儿在线={x}"], "--render")

        first, st = b.scan()
        everything = b.findings()
        assert st["new"] == everything and not st["gone"] and not st["present"]
        assert failures(first) == set()
        notice, gallery = b.findings("url=?", x + "notice.html"), b.findings("url=?", x + "gallery.html")
        assert notice and gallery

        # unchanged: every page answered 304 and was drawn again from its capture; nothing failed
        second, st = b.scan()
        assert st == {"new": set(), "gone": set(), "present": everything}
        assert failures(second) == set()
        pages = b.q("SELECT url, rendered FROM pages WHERE scan_id=?", second["scan_id"])
        assert len(pages) == len(b.q("SELECT url FROM pages WHERE scan_id=?", first["scan_id"])) >= 5
        assert all(r for _, r in pages)
        not_modified = b.q("SELECT url FROM fetches WHERE scan_id=? AND kind='page' AND status=304 "
                           "AND reason LIKE '%not modified since scan%'", second["scan_id"])
        assert {u for (u,) in not_modified} >= {x + "notice.html", x + "promo.html", x + "gallery.html"}

        # the page's HTML is unchanged (304) but the data its script loads changed: the notice's
        # words are gone, the new words are new
        sites.write("xingguang", "api/notice.json",
                    json.dumps({"text": "最新通知：希望杯数学竞赛集训营开始报名，冲刺一等奖！"}, ensure_ascii=False))
        third, st = b.scan()
        added = b.findings("first_scan_id=?", third["scan_id"])
        assert added and {u for (u,) in b.q("SELECT url FROM findings WHERE first_scan_id=?", third["scan_id"])} == {
            x + "notice.html"}
        assert st == {"new": added, "gone": notice, "present": everything - notice}
        assert failures(third) == set()
        everything = everything - notice | added

        # a page deleted: its findings (the lazy poster's, read by OCR) gone
        sites.delete("xingguang", "gallery.html")
        fourth, st = b.scan()
        assert st == {"new": set(), "gone": gallery, "present": everything - gallery}
        assert failures(fourth) == {"gallery.html"}
        everything -= gallery

        # a page made script-built (its pop-up ad too): drawn the same, findings still present
        promo = (sites.root / "xingguang" / "promo.html").read_text()
        sites.write("xingguang", "promo.html", script_built(promo))
        fifth, st = b.scan()
        assert st == {"new": set(), "gone": set(), "present": everything}
        assert failures(fifth) == {"gallery.html"}

        # the server is down: the browser cannot load a page, and no finding is gone
        b.down(sites)


def test_rescan_without_validators_fetches_in_full_and_changes_nothing(tmp_path: Path) -> None:
    """nginx with server-side includes on: pages carry neither ETag nor Last-Modified (gzip on)."""
    with StaticSites(["qiming", "xingguang"], server="nginx-novalidators") as sites:
        q, x = sites.urls["qiming"], sites.urls["xingguang"]
        b = Baseline(tmp_path, [f"启明星学堂={q}", f"星光少儿在线={x}"])
        first, st = b.scan()
        everything = b.findings()
        assert st["new"] == everything and failures(first) == SITE_BROKEN_LINKS
        second, st = b.scan()
        assert st == {"new": set(), "gone": set(), "present": everything}
        assert failures(second) == SITE_BROKEN_LINKS
        page_statuses = {s for (s,) in b.q("SELECT status FROM fetches WHERE scan_id=? AND kind='page' AND url "
                                           "LIKE '%.html'", second["scan_id"])}
        assert page_statuses <= {200, 404}  # no validators, no 304: everything fetched again …
        reused = b.q("SELECT COUNT(*) FROM pages WHERE scan_id=?", second["scan_id"])[0][0]
        assert reused == len(b.q("SELECT url FROM pages WHERE scan_id=?", first["scan_id"]))
