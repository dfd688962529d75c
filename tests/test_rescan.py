"""Incremental re-scan: unchanged pages come back 304 and keep their findings without being
re-examined; a changed page is fetched in full and examined again."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import demo_site.server as demo
from tests.conftest import ROOT, jianfu

JIANFU = [sys.executable, "-m", "jianfu"]  # run from the repository root (cwd=ROOT): this checkout's code


def scan(url: str, store: Path) -> dict:
    out = subprocess.run([*JIANFU, "scan", f"启明星学堂={url}", "--store", str(store), "--target", "qiming",
                          "--json", "--quiet"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out)


def test_unchanged_pages_are_304_and_reused_changed_page_is_reexamined(tmp_path: Path, monkeypatch) -> None:
    sites_dir = tmp_path / "sites"
    shutil.copytree(demo.SITES_DIR / "qiming", sites_dir / "qiming")
    monkeypatch.setattr(demo, "SITES_DIR", sites_dir)
    store = tmp_path / "store"
    with demo.DemoSites(["qiming"]) as sites:
        url = sites.urls["qiming"]
        first = scan(url, store)
        db = sqlite3.connect(store / "jianfu.sqlite3")
        fees_before = {r[0] for r in db.execute(
            "SELECT id FROM findings WHERE url LIKE '%/fees.html' AND source='text'")}
        page = sites_dir / "qiming" / "courses.html"
        page.write_text(page.read_text().replace("</body>", "<p>暑期衔接：小学三年级数学提前学四年级内容，"
                                                            "报名即送拍照搜题会员。</p></body>"))
        second = scan(url, store)
        statuses = dict(db.execute("SELECT url, status FROM fetches WHERE scan_id=? AND kind IN ('page', 'image')",
                                   (second["scan_id"],)).fetchall())
        assert statuses[url + "courses.html"] == 200  # changed: fetched in full …
        assert statuses[url + "fees.html"] == 304 and statuses[url + "img/banner-preschool.png"] == 304
        assert second["pages"] == first["pages"] and second["ocr_runs"] == 0
        # … and examined again: new findings on it
        new = db.execute("SELECT url FROM findings WHERE first_scan_id=?", (second["scan_id"],)).fetchall()
        assert new and {u for (u,) in new} == {url + "courses.html"}
        # unchanged pages keep their findings, sighted in the re-scan without re-detection
        sighted = {r[0] for r in db.execute("SELECT finding_id FROM sightings WHERE scan_id=?", (second["scan_id"],))}
        assert fees_before and fees_before <= sighted
        assert second["findings"] == first["findings"] + len(new)
        # the page row of an unchanged page points at the capture holding its bytes
        warc = db.execute("SELECT warc_file FROM pages WHERE scan_id=? AND url=?",
                          (second["scan_id"], url + "fees.html")).fetchone()[0]
        assert warc == f"{first['scan_id']}.warc.gz"
        db.close()


def test_store_resight_sights_moves_last_seen_and_queues_in_one_transaction(tmp_path: Path) -> None:
    from detectors.model import Finding
    from store import Store

    url = "http://127.0.0.1:1/fees.html"
    with Store(tmp_path) as st:
        # the incremental tables are the store's own: there before any scan
        tables = {r[0] for r in st.db.execute("SELECT name FROM sqlite_master")}
        assert {"scan_detectors", "fetches_url", "pages_url"} <= tables
        first = st.begin_scan([url])
        st.set_detector_fingerprint(first, "fp1")
        ids = st.save_findings(first, url, "text", "拍照搜题 提前学",
                               [Finding("photo_search", "r1", "拍照搜题", 0, 4, 0.9, "high", "b"),
                                Finding("advance_teaching", "r2", "提前学", 5, 8, 0.9, "high", "b")])
        st.save_findings(first, url, "image", "拍照搜题", [Finding("photo_search", "r1", "拍照搜题", 0, 4, 0.9,
                                                                   "high", "b")], image_url=url + ".png",
                         image_sha256="ab" * 32)
        st.save_page(first, url, status=200, text="拍照搜题 提前学", content_sha256="c1")
        st.finish_scan(first)
        second = st.begin_scan([url])
        assert st.last_page_hashes("fp1", second) == {url: (first, "c1")}
        assert st.last_page_hashes("fp2", second) == {}  # other rules: examine again
        assert sorted(st.sighted(first, url, "text")) == sorted(ids)
        st.db.execute("DELETE FROM index_outbox")
        st.db.commit()
        assert st.resight(second, st.sighted(first, url, "text")) == 2
        rows = st.db.execute("SELECT id, last_scan_id FROM findings WHERE source='text'").fetchall()
        assert {r[0]: r[1] for r in rows} == {i: second for i in ids}
        assert {r[0] for r in st.db.execute("SELECT finding_id FROM sightings WHERE scan_id=?", (second,))} == set(ids)
        assert dict(st.db.execute("SELECT finding_id, version FROM index_outbox").fetchall()) == {i: 1 for i in ids}
        st.resight(second, ids)  # twice: one sighting each, outbox version bumped
        assert st.db.execute("SELECT COUNT(*) FROM sightings WHERE scan_id=?", (second,)).fetchone()[0] == 2
        # all or nothing: an unknown scan id (foreign key) leaves no sighting and no outbox row behind
        n = st.db.execute("SELECT COUNT(*) FROM sightings").fetchone()[0]
        with pytest.raises(sqlite3.IntegrityError):
            st.resight("no-such-scan", ids)
        assert st.db.execute("SELECT COUNT(*) FROM sightings").fetchone()[0] == n
        assert {r[0] for r in st.db.execute("SELECT last_scan_id FROM findings WHERE source='text'")} == {second}


def test_canonical_page_url_one_address_per_page() -> None:
    from store import canonical_page_url as canon

    base = "http://127.0.0.1:8801"
    same = [f"{base}", f"{base}/", f"{base}/index.html", f"{base}/?utm_source=wx&utm_medium=qr", f"{base}/#top",
            "HTTP://127.0.0.1:8801/Index.html"]
    assert {canon(u) for u in same} == {f"{base}/"}
    assert {canon(u) for u in (f"{base}/news/", f"{base}/news", f"{base}/news/default.aspx")} == {f"{base}/news"}
    assert canon(f"{base}/p?b=2&a=1&utm_campaign=x&gclid=9") == f"{base}/p?a=1&b=2"
    assert canon(f"{base}/p?id=1") != canon(f"{base}/p?id=2")  # a real parameter is another page
    assert canon(f"{base}/news.html") != canon(f"{base}/news")


def test_page_reached_at_another_address_keeps_its_finding_ids(tmp_path: Path) -> None:
    """Seeded as /index.html or as /: the same page, the same findings, the same ids; every address
    the page was fetched at is recorded."""
    with demo.DemoSites(["qiming"]) as sites:
        url = sites.urls["qiming"]
        scan(url + "index.html?utm_source=wechat", tmp_path / "a")
        scan(url, tmp_path / "b")
    ids = []
    for name in ("a", "b"):
        db = sqlite3.connect(tmp_path / name / "jianfu.sqlite3")
        ids.append({r[0] for r in db.execute("SELECT id FROM findings")})
        assert not db.execute("SELECT url FROM findings WHERE url LIKE '%index.html%' OR url LIKE '%utm_%'").fetchall()
        if name == "b":  # the home page was reached at "/" (the seed) and "/index.html" (courses links it)
            addresses = {r[0] for r in db.execute("SELECT fetched_url FROM page_addresses WHERE url=?", (url,))}
            assert addresses == {url, url + "index.html"}
            assert db.execute("SELECT COUNT(*) FROM pages WHERE url=?", (url,)).fetchone()[0] == 1
        db.close()
    assert ids[0] and ids[0] == ids[1]
    # the investigator's list: each finding once, with the page's other addresses beside it
    proc = jianfu("findings", "--store", str(tmp_path / "b"), "--format", "jsonl")
    home = [json.loads(line) for line in proc.stdout.splitlines() if json.loads(line)["url"] == url]
    assert home and all(f["alternate_urls"] == [url + "index.html"] for f in home)
    assert len({f["id"] for f in home}) == len(home)


def test_page_budget_that_runs_out_is_a_failure_and_changes_nothing(tmp_path: Path) -> None:
    from scheduler import runs

    def finish(summary: dict) -> dict:
        db = runs.connect(store)
        try:
            return runs.finish_run(db, runs.begin_run(db, "qiming", "run-now"), "finished", summary["scan_id"],
                                   summary, None, [])
        finally:
            db.close()

    store = tmp_path / "store"
    with demo.DemoSites(["qiming"]) as sites:
        url = sites.urls["qiming"]
        first = finish(scan(url, store))
        out = subprocess.run([*JIANFU, "scan", f"启明星学堂={url}", "--store", str(store), "--target", "qiming",
                              "--max-pages", "2", "--json", "--quiet"], capture_output=True, text=True, check=True,
                             cwd=ROOT)
        short = json.loads(out.stdout)
    limited = {f["url"] for f in short["failures"] if f["error"] == "page_limit"}
    assert limited and all("page budget (2 pages) ran out" in f["reason"] for f in short["failures"]
                           if f["error"] == "page_limit")
    assert url + "fees.html" in limited or url + "courses.html" in limited
    run = finish(short)
    assert first["new"] > 0 and run["gone"] == 0 and run["new"] == 0  # not reached is not gone
