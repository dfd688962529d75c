"""The walking skeleton end to end: a real Scrapy crawl of the demo sites on 127.0.0.1, real OCR of
their ad banners, a real SQLite store, through the real command line."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import jianfu

# What an investigator must see on each violating page (text or its images), by category.
EXPECTED = {
    ("qiming", "index.html"): {"preschool_subject", "off_hours_schedule"},
    ("qiming", "courses.html"): {"preschool_subject", "guarantee_promise", "off_hours_schedule"},
    ("qiming", "fees.html"): {"prepaid_fees"},
    ("qiming", "news.html"): {"competition_ranking"},
    ("xuebatong", "index.html"): {"advance_teaching", "photo_search", "competition_ranking"},
    ("xuebatong", "app.html"): {"photo_search"},
    ("xuebatong", "courses.html"): {"competition_ranking", "off_hours_schedule", "guarantee_promise", "false_claim"},
    ("xuebatong", "teachers.html"): {"teacher_qualification"},
    ("xuebatong", "honor.html"): {"competition_ranking"},
}
COMPLIANT_SITES = ("caihong", "feiyue")


def db(store: Path) -> sqlite3.Connection:
    con = sqlite3.connect(store / "jianfu.sqlite3")
    con.row_factory = sqlite3.Row
    return con


def findings_jsonl(store: Path) -> list[dict]:
    proc = jianfu("findings", "--store", str(store), "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def page_key(url: str, seeds: dict[str, str]) -> tuple[str, str] | None:
    for site, base in seeds.items():
        if url.startswith(base):
            return site, url[len(base):] or "index.html"
    return None


def test_findings_name_the_violations_on_each_page(demo_scan):
    store, summary, seeds = demo_scan
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for f in findings_jsonl(store):
        found[page_key(f["url"], seeds)].add(f["category"])
    for page, categories in EXPECTED.items():
        assert categories <= found[page], f"{page}: missing {categories - found[page]}"


def test_compliant_sites_have_no_findings(demo_scan):
    store, _, seeds = demo_scan
    wrong = [(f["url"], f["category"], f["text"]) for f in findings_jsonl(store)
             if page_key(f["url"], seeds)[0] in COMPLIANT_SITES]
    assert wrong == []


def test_findings_follow_the_contract(demo_scan):
    store, _, _ = demo_scan
    rows = findings_jsonl(store)
    assert rows
    for f in rows:
        for key in ("id", "url", "source", "category", "rule_id", "text", "start", "end", "score",
                    "severity", "basis"):
            assert f[key] not in (None, ""), (key, f)
        assert 0 <= f["score"] <= 1 and f["source"] in ("text", "image")
        if f["source"] == "image":
            assert f["image_url"] and f["boxes"], f
    with db(store) as con:
        for f in rows:
            if f["source"] == "text":
                text = con.execute("SELECT text FROM pages WHERE url=?", (f["url"],)).fetchone()[0]
                assert text[f["start"]:f["end"]] == f["text"]


def test_ad_images_are_read_wherever_they_hide(demo_scan):
    store, _, seeds = demo_scan
    image_findings = {(f["image_url"].rsplit("/", 1)[-1], f["category"])
                      for f in findings_jsonl(store) if f["source"] == "image"}
    assert ("banner-preschool.png", "preschool_subject") in image_findings      # <img src>
    assert ("hero-app.png", "photo_search") in image_findings                   # CSS background
    assert ("lazy-cup.png", "competition_ranking") in image_findings            # data-src
    assert ("app-poster.webp", "photo_search") in image_findings                # <picture><source>
    with db(store) as con:
        tiny = con.execute("SELECT error FROM page_images WHERE image_url LIKE '%placeholder.gif'").fetchone()
        assert tiny and tiny[0], "the 1x1 spacer is skipped with a reason"


def test_robots_404_redirect_and_gbk(demo_scan):
    store, summary, seeds = demo_scan
    failures = {(f["url"], f["error"]) for f in summary["failures"]}
    assert (seeds["feiyue"] + "admin/pricing.html", "robots") in failures
    assert (seeds["qiming"] + "missing-page.html", "http_404") in failures
    with db(store) as con:
        assert con.execute("SELECT COUNT(*) FROM pages WHERE url LIKE '%/admin/%'").fetchone()[0] == 0
        redirect = con.execute("SELECT status, reason FROM fetches WHERE url LIKE '%/old-courses'").fetchone()
        assert redirect["status"] == 301 and "courses.html" in redirect["reason"]
        fees = con.execute("SELECT text, encoding FROM pages WHERE url=?", (seeds["qiming"] + "fees.html",)).fetchone()
        assert "一次性缴纳全年学费" in fees["text"] and fees["encoding"].startswith("gb18030")
        assert con.execute("SELECT COUNT(*) FROM fetches WHERE status=200 AND ip='127.0.0.1'").fetchone()[0] > 10


def test_summary_counts_pages_images_and_categories(demo_scan):
    _, summary, _ = demo_scan
    assert summary["status"] == "finished"
    assert summary["pages"] >= 20 and summary["images"] >= 8
    assert summary["findings"] == sum(summary["by_category"].values()) > 0


def test_warc_holds_every_response_and_checks_clean(demo_scan):
    store, _, _ = demo_scan
    warcs = list((store / "warc").glob("*.warc.gz"))
    assert len(warcs) == 1
    check = subprocess.run([str(Path(sys.executable).parent / "warcio"), "check", str(warcs[0])],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with db(store) as con:
        rows = con.execute("SELECT warc_file, warc_offset FROM pages").fetchall()
        assert rows and all(r["warc_file"] and r["warc_offset"] is not None for r in rows)


def test_rescan_adds_no_duplicates_and_reads_no_image_twice(demo_scan, tmp_path):
    store, first, seeds = demo_scan
    copy = tmp_path / "store"
    subprocess.run(["cp", "-r", str(store), str(copy)], check=True)
    before = {f["id"] for f in findings_jsonl(copy)}
    proc = jianfu("scan", *seeds.values(), "--store", str(copy), "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    second = json.loads(proc.stdout)
    after = {f["id"] for f in findings_jsonl(copy)}
    assert after == before
    assert second["new_findings"] == 0 and second["ocr_runs"] == 0 and second["ocr_cached"] >= 8


def test_hostile_site_is_survived_and_every_failure_has_a_reason(demo_sites, tmp_path):
    base = demo_sites.urls["hostile"]
    proc = jianfu("scan", base, "--store", str(tmp_path), "--json", "--quiet", "--timeout", "3",
                  "--depth", "4", "--max-pages", "40")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    errors = {f["url"].removeprefix(base): f["error"] for f in summary["failures"]}
    assert errors["reset"] == "connection_lost"
    assert errors["binary"] == "not_html"
    assert errors["huge.html"] == "too_large"
    assert errors["bomb.html"] == "too_large"
    assert errors["slow.html"] == "timeout"
    assert errors["404.html"] == "http_404"
    port = base.rstrip("/").rsplit(":", 1)[1]
    assert errors[f"http://127.0.0.2:{port}/ok.html"] == "private_address"   # unseeded names for the
    assert errors[f"http://localhost:{port}/ok.html"] == "private_address"   # same server: refused
    assert errors[demo_sites.urls["caihong"]] == "off_site"                   # /redirect-out leaves the site
    assert all(f["reason"] for f in summary["failures"])
    with db(tmp_path) as con:
        pages = {r[0].removeprefix(base) for r in con.execute("SELECT url FROM pages")}
        assert "bad-bytes.html" in pages and "ok.html" in pages
        traps = [int(p.split("/")[1]) for p in pages if p.startswith("trap/")]
        assert traps and max(traps) <= 6   # /trap/0 is at depth 1; each level adds at most 2: depth 4 stops at 6
        assert len(pages) <= 40
        bad_images = dict(con.execute("SELECT image_url, error FROM page_images WHERE error IS NOT NULL"))
        for name in ("corrupt.png", "bomb.png", "truncated.png"):
            assert any(u.endswith(name) and e for u, e in bad_images.items()), name
    found = {(f["url"].removeprefix(base), f["category"]) for f in findings_jsonl(tmp_path)}
    assert ("ok.html", "preschool_subject") in found


def test_unreachable_host_is_recorded_not_fatal(tmp_path):
    proc = jianfu("scan", "http://127.0.0.1:9/", "--store", str(tmp_path), "--json", "--quiet", "--timeout", "3")
    assert proc.returncode == 0, proc.stderr
    failures = json.loads(proc.stdout)["failures"]
    assert failures and failures[0]["error"] == "refused"


@pytest.mark.parametrize("args,code", [
    (["scan", "ftp://example/", "--store", "{tmp}"], 2),
    (["scan", "not a url", "--store", "{tmp}"], 2),
    (["scan", "http://127.0.0.1:9/", "--store", "{tmp}", "--concurrency", "0"], 2),
    (["scan", "http://127.0.0.1:9/", "--store", "{tmp}", "--concurrency", "-3"], 2),
    (["scan", "http://127.0.0.1:9/", "--store", "{tmp}", "--timeout", "0"], 2),
    (["scan", "http://127.0.0.1:9/", "--store", "{tmp}", "--timeout", "-1.5"], 2),
    (["scan", "http://127.0.0.1:9/", "--store", "{tmp}", "--timeout", "nan"], 2),
    (["scan", "http://127.0.0.1:9/", "--store", "/proc/jianfu-store"], 1),
    (["findings", "--store", "{tmp}/nothing-here"], 1),
    (["findings", "--store", "{tmp}", "--format", "xml"], 2),
])
def test_bad_command_lines_fail_in_one_line(tmp_path, args, code):
    proc = jianfu(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == code
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("jianfu")  # usage lines, then one error line


def test_detect_contract():
    proc = jianfu("detect", input='{"text":"幼小衔接拼音班火热招生"}\n{"text":"周末少儿美术班"}\n')
    assert proc.returncode == 0, proc.stderr
    first, second = (json.loads(line) for line in proc.stdout.splitlines())
    assert "preschool_subject" in {f["category"] for f in first["findings"]}
    f = first["findings"][0]
    assert first["text"][f["start"]:f["end"]] == f["text"] and f["basis"] and 0 <= f["score"] <= 1
    assert second["findings"] == []


def test_detect_reports_bad_lines_and_goes_on():
    proc = jianfu("detect", input='not json\n{"no_text": 1}\n{"text":"拍照搜题，秒出答案"}\n')
    assert proc.returncode == 1
    assert "line 1" in proc.stderr and "line 2" in proc.stderr
    assert len(proc.stdout.splitlines()) == 1
