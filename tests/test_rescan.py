"""Incremental re-scan: unchanged pages come back 304 and keep their findings without being
re-examined; a changed page is fetched in full and examined again."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import demo_site.server as demo

JIANFU = [sys.executable, "-P", "-m", "jianfu"]


def scan(url: str, store: Path) -> dict:
    out = subprocess.run([*JIANFU, "scan", f"启明星学堂={url}", "--store", str(store), "--target", "qiming",
                          "--json", "--quiet"], capture_output=True, text=True, check=True).stdout
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
