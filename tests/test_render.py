"""Browser rendering against the demo sites with the real Chromium: render-only violations,
screenshots, text boxes, the browser's traffic in the WARC, and hostile pages.

Never skipped in CI: without Chromium these tests fail when ``CI=true``."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.render import chromium_executable
from demo_site import server
from tests.conftest import ROOT, jianfu


@pytest.fixture(scope="module", autouse=True)
def chromium():
    exe = chromium_executable()
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing (/usr/bin/chromium): browser tests must run in CI")
        pytest.skip("Chromium is missing")
    return exe


def db(store: Path) -> sqlite3.Connection:
    con = sqlite3.connect(store / "jianfu.sqlite3")
    con.row_factory = sqlite3.Row
    return con


def scan(store: Path, *args: str) -> dict:
    proc = jianfu("scan", *args, "--store", str(store), "--json", "--quiet", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def warc_records(store: Path) -> list[dict]:
    out = []
    for path in sorted((store / "warc").glob("*.warc.gz")):
        with open(path, "rb") as fh:
            it = ArchiveIterator(fh)
            for rec in it:
                out.append({"type": rec.rec_type, "uri": rec.rec_headers.get_header("WARC-Target-URI"),
                            "ip": rec.rec_headers.get_header("WARC-IP-Address"),
                            "body": rec.content_stream().read(), "offset": it.get_record_offset(),
                            "file": path.name, "status": rec.http_headers.get_statuscode() if rec.http_headers else None})
    return out


@pytest.fixture(scope="module")
def rendered(demo_sites, tmp_path_factory):
    store = tmp_path_factory.mktemp("render-store")
    base = demo_sites.urls["xingguang"]
    summary = scan(store, f"星光少儿在线={base}", "--render")
    return store, summary, base


def test_render_only_violation_is_found(rendered):
    store, summary, base = rendered
    proc = jianfu("findings", "--store", str(store), "--format", "jsonl")
    found = [json.loads(line) for line in proc.stdout.splitlines()]
    notice = [f for f in found if f["url"] == base + "notice.html" and f["source"] == "text"]
    assert any(f["category"] == "preschool_subject" and "幼小衔接" in f["text"] for f in notice), notice
    # the pop-up ad's words and the lazy poster (read by OCR) count too
    assert any(f["url"] == base + "promo.html" and f["category"] == "prepaid_fees" for f in found)
    assert any(f["url"] == base + "gallery.html" and f["source"] == "image" for f in found)


def test_every_page_has_a_screenshot_blob_and_warc_resource(rendered):
    store, summary, base = rendered
    records = warc_records(store)
    views = {r["uri"]: r["body"] for r in records if r["type"] == "resource" and r["uri"].startswith("urn:view:")}
    with db(store) as con:
        pages = con.execute("SELECT * FROM pages").fetchall()
    assert len(pages) >= 5 and summary["errors"] == 0
    for page in pages:
        assert page["rendered"] == 1, page["url"]
        sha = page["screenshot_sha256"]
        blob = (store / "blobs" / sha[:2] / sha).read_bytes()
        assert blob[:8] == b"\x89PNG\r\n\x1a\n" and hashlib.sha256(blob).hexdigest() == sha
        assert hashlib.sha256(views[f"urn:view:{page['final_url']}"]).hexdigest() == sha


def test_text_boxes_point_into_the_text_and_onto_the_screenshot(rendered):
    from PIL import Image

    store, _, base = rendered
    with db(store) as con:
        page = con.execute("SELECT * FROM pages WHERE url=?", (base + "notice.html",)).fetchone()
        finding = con.execute("SELECT * FROM findings WHERE url=? AND category='preschool_subject'",
                              (base + "notice.html",)).fetchone()
    text, boxes = page["text"], json.loads(page["text_boxes"])
    sha = page["screenshot_sha256"]
    width, height = Image.open(store / "blobs" / sha[:2] / sha).size
    assert boxes and all(text[b["start"]:b["end"]].strip() for b in boxes)
    for b in boxes:
        x, y, w, h = b["box"]
        assert 0 <= x and 0 <= y and x + w <= width and y + h <= height and w > 0 and h > 0
    covering = [b for b in boxes if b["start"] <= finding["start"] and finding["end"] <= b["end"]]
    assert len(covering) == 1 and "幼小衔接拼音班" in text[covering[0]["start"]:covering[0]["end"]]
    assert covering[0]["box"][1] > 100  # below the heading and the first paragraph: the inserted notice


def test_browser_traffic_is_archived_and_checks_clean(rendered):
    store, _, base = rendered
    check = subprocess.run([str(Path(sys.executable).with_name("warcio")), "check", "-v",
                            *map(str, (store / "warc").glob("*.warc.gz"))], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    records = warc_records(store)
    responses = {r["uri"]: r for r in records if r["type"] == "response"}
    for path in ("api/notice.json", "js/app.js", "img/lazy-olympiad.png", "img/popup-ad.png", "promo.html"):
        assert base + path in responses, path
        assert responses[base + path]["ip"] == "127.0.0.1"
    assert b"\xe5\xb9\xbc\xe5\xb0\x8f" in responses[base + "api/notice.json"]["body"]  # 幼小, as received
    assert sum(r["type"] == "request" for r in records) == sum(r["type"] == "response" for r in records)
    info = next(r for r in records if r["type"] == "warcinfo")
    assert b"jianfu/" in info["body"] and b"Chromium" in info["body"] and b"render" in info["body"]
    meta = {r["uri"]: json.loads(r["body"]) for r in records if r["type"] == "metadata"}
    promo = meta[f"urn:capture:{base}promo.html"]
    assert promo["captured_at"].endswith("Z") and promo["tool"].startswith("jianfu/")
    assert any("预存两年学费" in o["text"] for o in promo["overlays"])  # the pop-up ad, as an overlay
    # each page and its fetch point at the response record of the document the browser received
    by_offset = {(r["file"], r["offset"]): r for r in records}
    with db(store) as con:
        for page in con.execute("SELECT url, final_url, warc_file, warc_offset FROM pages"):
            rec = by_offset[(page["warc_file"], page["warc_offset"])]
            assert rec["type"] == "response" and rec["uri"] == page["final_url"]
        for f in con.execute("SELECT url, warc_file, warc_offset FROM fetches WHERE warc_offset IS NOT NULL"):
            assert by_offset[(f["warc_file"], f["warc_offset"])]["uri"] == f["url"]


def test_script_built_page_is_rendered_without_the_flag(demo_sites, tmp_path):
    base = demo_sites.urls["xingguang"]
    scan(tmp_path, base)
    with db(tmp_path) as con:
        rendered = {r["url"]: r["rendered"] for r in con.execute("SELECT url, rendered FROM pages")}
        app = con.execute("SELECT text FROM pages WHERE url=?", (base + "app.html",)).fetchone()["text"]
        note = con.execute("SELECT reason FROM fetches WHERE url=? AND kind='page' ORDER BY id LIMIT 1",
                           (base + "app.html",)).fetchone()["reason"]
    assert rendered.pop(base + "app.html") == 1 and not any(rendered.values())
    assert "小学数学提前学" in app and "built by script" in note


def test_missing_chromium_says_so_in_one_line_and_scans_over_http(demo_sites, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jianfu", "scan", demo_sites.urls["xingguang"], "--render",
                           "--store", str(tmp_path), "--quiet", "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "JIANFU_CHROMIUM": "/nonexistent/chromium"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "Chromium" in line]
    assert len(lines) == 2 and "not found" in lines[0] and "built by script" in lines[1]
    assert json.loads(proc.stdout)["pages"] >= 5


def test_hostile_pages_are_recorded_and_the_crawl_completes(demo_sites, tmp_path):
    base = demo_sites.urls["hostile"] + "render/"
    summary = scan(tmp_path, base, "--render", "--timeout", "6")
    assert summary["status"] == "finished"
    with db(tmp_path) as con:
        fetch = {r["url"].removeprefix(base): dict(r) for r in con.execute(
            "SELECT * FROM fetches WHERE kind='page' ORDER BY id")}
        pages = {r["url"].removeprefix(base): dict(r) for r in con.execute("SELECT * FROM pages")}
    assert fetch["stall.html"]["error"] == "render_timeout" and "in time" in fetch["stall.html"]["reason"]
    assert fetch["download.zip"]["error"] == "download"
    assert "network still busy" in fetch["never-idle.html"]["reason"] and pages["never-idle.html"]["rendered"]
    assert "endless scroll" in fetch["endless.html"]["reason"] and pages["endless.html"]["screenshot_sha256"]
    assert "JavaScript errors" in fetch["js-error.html"]["reason"] and "小学奥数班" in pages["js-error.html"]["text"]
    assert "限时报名" in pages["alert.html"]["text"]                       # the alert's words are kept
    assert "landed.html" in pages and "全科集训营" in pages["landed.html"]["text"]  # it navigated away
    blocked = [f for f in summary["failures"] if f["url"].startswith("http://127.0.0.2")]
    assert blocked and all(f["error"] == "private_address" for f in blocked)


def test_browser_crash_mid_crawl_is_recorded_and_the_browser_restarts(demo_sites, tmp_path):
    import psutil

    proc: dict[str, subprocess.Popen] = {}
    crashed: list[int] = []

    def crash() -> None:  # kill the Chromium this test's scan started, once
        if crashed:
            return
        for child in psutil.Process(proc["scan"].pid).children(recursive=True):
            if "chrom" in child.name().lower():
                crashed.append(child.pid)
                child.kill()

    base = demo_sites.urls["hostile"] + "render/"
    server.HOOKS["crash"] = crash
    try:
        proc["scan"] = subprocess.Popen(
            [sys.executable, "-m", "jianfu", "scan", base + "crash.html", "--render", "--store", str(tmp_path),
             "--json", "--quiet", "--concurrency", "2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        out, err = proc["scan"].communicate(timeout=300)
    finally:
        server.HOOKS.pop("crash", None)
    assert proc["scan"].returncode == 0, err[-3000:]
    assert crashed
    with db(tmp_path) as con:
        failed = con.execute("SELECT error, reason FROM fetches WHERE url=? AND error IS NOT NULL",
                             (base + "crash.html",)).fetchall()
        pages = {r["url"]: r["rendered"] for r in con.execute("SELECT url, rendered FROM pages")}
    assert failed and failed[0]["error"] == "browser_crash" and "restarted browser" in failed[0]["reason"]
    assert pages.get(base + "crash.html") == 1 and pages.get(base + "after-crash.html") == 1


def test_a_reused_tab_shoots_and_measures_the_page_it_is_on(demo_sites, tmp_path):
    """One page in flight (--concurrency 2): every page after the first is drawn in the tab the
    previous page used. Each screenshot must show its own page where its text boxes say: the
    heading's box, cut from the screenshot and read by OCR, is that page's heading."""
    from io import BytesIO

    from PIL import Image

    from detectors.images import read_image

    scan(tmp_path, demo_sites.urls["generated"], "--render", "--concurrency", "2", "--max-pages", "6")
    with db(tmp_path) as con:
        pages = con.execute("SELECT text, text_boxes, screenshot_sha256 FROM pages").fetchall()
    assert len(pages) == 6
    shots = set()
    for page in pages:
        text, boxes, sha = page["text"], json.loads(page["text_boxes"]), page["screenshot_sha256"]
        heading = next(b for b in boxes if text[b["start"]:b["end"]].startswith("机构动态"))
        x, y, w, h = heading["box"]
        shot = Image.open(tmp_path / "blobs" / sha[:2] / sha)
        crop = BytesIO()
        shot.crop((max(0, x - 8), max(0, y - 8), x + w + 8, y + h + 8)).save(crop, format="PNG")
        read = read_image(crop.getvalue(), qr=False)
        assert read.text.replace(" ", "") == text[heading["start"]:heading["end"]].replace(" ", ""), read.text
        shots.add(sha)
    assert len(shots) == len({p["text"] for p in pages})
