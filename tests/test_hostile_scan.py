"""A real crawl of the hostile demo site (issue 13): no URL the crawl touched is dropped without a
word (redirect and meta-refresh loops, a redirect to file:, endless redirects, a 3xx without a
Location), no text is lost (deep nesting, one line longer than the detector's chunk), robots.txt
answering 5xx disallows everything (RFC 9309), and a scan killed mid-way does not stay running."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demo_site.server import DEEP_TEXT, LONG_LINE_TEXT, DemoSites
from store import Store
from store.db import process_key
from tests.conftest import ROOT, jianfu


def db(store: Path) -> sqlite3.Connection:
    con = sqlite3.connect(store / "jianfu.sqlite3")
    con.row_factory = sqlite3.Row
    return con


@pytest.fixture(scope="module")
def hostile(demo_sites, tmp_path_factory):
    store = tmp_path_factory.mktemp("hostile-store")
    base = demo_sites.urls["hostile"]
    proc = jianfu("scan", base, "--store", str(store), "--json", "--quiet", "--timeout", "3", "--depth", "1",
                  "--max-pages", "40", "--no-auto-render")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return store, json.loads(proc.stdout), base, proc.stderr


def unaccounted(store: Path) -> list[tuple[str, str]]:
    """Every URL in the fetch log must end as a stored page, a failure with a reason, an image
    linked to its page (with its error if it could not be read), robots.txt, or a hop (redirect or
    meta refresh) whose reason names where it went, that place accounted for in turn."""
    with db(store) as con:
        pages = {r[0] for r in con.execute("SELECT url FROM pages")} | {
            r[0] for r in con.execute("SELECT final_url FROM pages WHERE final_url IS NOT NULL")}
        failed = {r[0] for r in con.execute("SELECT url FROM fetches WHERE error IS NOT NULL AND reason != ''")}
        images = {r[0] for r in con.execute("SELECT image_url FROM page_images WHERE sha256 IS NOT NULL OR error IS NOT NULL")}
        hops: dict[str, str] = {}
        for r in con.execute("SELECT url, reason FROM fetches WHERE error IS NULL AND reason IS NOT NULL"):
            for lead in ("redirect to ", "meta refresh to "):
                if r["reason"].startswith(lead):
                    hops[r["url"]] = r["reason"][len(lead):].split(",", 1)[0]
        fetched = con.execute("SELECT DISTINCT url, kind FROM fetches").fetchall()
    from urllib.parse import urljoin

    def ok(url: str, seen: frozenset = frozenset()) -> bool:
        if url in pages or url in failed or url in images or url.endswith("/robots.txt"):
            return True
        if url in hops and url not in seen:
            return ok(urljoin(url, hops[url]), seen | {url})
        return False

    return [(r["url"], r["kind"]) for r in fetched if not ok(r["url"])]


def test_every_url_the_crawl_touched_is_a_page_a_failure_or_a_documented_hop(hostile):
    store, _, base, _ = hostile
    assert unaccounted(store) == []
    with db(store) as con:  # /redirect-to-ok and the link to /ok.html: one capture, the hop says where
        assert con.execute("SELECT COUNT(*) FROM pages WHERE url=?", (base + "ok.html",)).fetchone()[0] == 1
        hop = con.execute("SELECT status, error, reason FROM fetches WHERE url=?", (base + "redirect-to-ok",)).fetchone()
    assert hop["status"] == 301 and hop["error"] is None and hop["reason"].startswith("redirect to ")


def test_loops_and_redirects_out_of_the_web_are_failures_with_reasons(hostile):
    store, summary, base, _ = hostile
    failures = {f["url"].removeprefix(base): f for f in summary["failures"]}
    loop = failures["redirect-loop/b"]
    assert loop["error"] == "redirect_loop" and loop["reason"] == (
        f"redirect loop: {base}redirect-loop/a → {base}redirect-loop/b → {base}redirect-loop/a")
    refresh = failures["refresh-loop/b"]
    assert refresh["error"] == "redirect_loop" and refresh["reason"].startswith("meta refresh loop: ")
    assert failures["redirect-file"]["error"] == "redirect_refused"
    assert "file:///etc/passwd" in failures["redirect-file"]["reason"]
    assert failures["redirect-endless/10"]["error"] == "too_many_redirects"
    assert failures["redirect-nowhere"]["error"] == "http_302"
    assert "without a Location" in failures["redirect-nowhere"]["reason"]
    with db(store) as con:  # the first hop of each says where it went
        reasons = dict(con.execute("SELECT url, reason FROM fetches WHERE url IN (?, ?)",
                                   (base + "redirect-loop/a", base + "refresh-loop/a")).fetchall())
    assert reasons[base + "redirect-loop/a"] == "redirect to /redirect-loop/b"
    assert reasons[base + "refresh-loop/a"] == f"meta refresh to {base}refresh-loop/b"


def test_text_after_deep_nesting_and_on_one_huge_line_is_stored_and_examined(hostile):
    store, _, base, stderr = hostile
    assert "Traceback" not in stderr and "IndexError" not in stderr
    with db(store) as con:
        deep = con.execute("SELECT text FROM pages WHERE url=?", (base + "deep.html",)).fetchone()["text"]
        long = con.execute("SELECT text FROM pages WHERE url=?", (base + "long-line.html",)).fetchone()["text"]
        found = {(r["url"].removeprefix(base), r["category"])
                 for r in con.execute("SELECT url, category FROM findings")}
    assert deep.splitlines()[-1] == DEEP_TEXT
    assert "\n" not in long and len(long) > 131_072 and long.endswith(LONG_LINE_TEXT)
    assert ("deep.html", "preschool_subject") in found
    assert {("long-line.html", "guarantee_promise"), ("long-line.html", "photo_search")} <= found


def test_robots_txt_answering_5xx_disallows_everything_until_it_answers(demo_sites, tmp_path):
    base = demo_sites.urls["hostile-robots"]
    handler = demo_sites.handlers["hostile-robots"]
    args = ["scan", base, "--store", str(tmp_path), "--json", "--quiet", "--timeout", "3", "--no-auto-render"]
    try:
        for status in (503, 500):
            handler.robots_status = status
            proc = jianfu(*args)
            assert proc.returncode == 0, proc.stderr[-2000:]
            summary = json.loads(proc.stdout)
            failures = {f["url"]: f for f in summary["failures"]}
            assert summary["pages"] == 0
            assert failures[base + "robots.txt"]["error"] == f"http_{status}"
            assert failures[base]["error"] == "robots_unreachable"
            assert f"HTTP {status}" in failures[base]["reason"] and "RFC 9309" in failures[base]["reason"]
        handler.robots_status = 404  # unavailable: everything allowed
        summary = json.loads(jianfu(*args).stdout)
        assert summary["pages"] == 3
        handler.robots_status = 200  # it answers again: its rules apply
        summary = json.loads(jianfu(*args).stdout)
        assert summary["pages"] == 2
        assert {f["url"]: f["error"] for f in summary["failures"]} == {base + "private/secret.html": "robots"}
    finally:
        handler.robots_status = 503


# -- a scan killed mid-way ------------------------------------------------------------------------
def start_scan(url: str, store: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jianfu", "scan", url, "--store", str(store), "--quiet",
                             "--depth", "50", "--max-pages", "500", "--no-auto-render", "--concurrency", "2"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_pages(store: Path, proc: subprocess.Popen, n: int = 3, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        if (store / "jianfu.sqlite3").exists():
            try:
                with db(store) as con:
                    row = con.execute("SELECT s.id, (SELECT COUNT(*) FROM pages p WHERE p.scan_id=s.id) AS n "
                                      "FROM scans s WHERE s.status='running'").fetchone()
            except sqlite3.OperationalError:  # the file is there, its tables not yet
                row = None
            if row and row["n"] >= n:
                return row["id"]
        time.sleep(0.3)
    raise AssertionError("the scan did not get going")


def scan_row(store: Path, scan_id: str) -> sqlite3.Row:
    with db(store) as con:
        return con.execute("SELECT * FROM scans WHERE id=?", (scan_id,)).fetchone()


@pytest.fixture
def slow_site():
    """The generated site answering each page after 100 ms: a scan of it (500 pages, two at a time) is
    still running 25 s later, however fast scans become."""
    with DemoSites(["generated"]) as sites:
        sites.handlers["generated"].page_delay = 0.1
        yield sites.urls["generated"]


@pytest.mark.parametrize("closer", ["runs", "scan"])
def test_a_killed_scan_is_closed_as_interrupted_and_a_running_one_is_not(demo_sites, slow_site, tmp_path, closer):
    store = tmp_path / "store"
    proc = start_scan(slow_site, store)
    try:
        scan_id = wait_for_pages(store, proc)
        row = scan_row(store, scan_id)
        assert row["pid"] == proc.pid and row["process_key"] == process_key(proc.pid)
        # while it runs, `jianfu runs` leaves it alone
        assert jianfu("runs", "--store", str(store)).returncode == 0
        assert scan_row(store, scan_id)["status"] == "running"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert scan_row(store, scan_id)["status"] == "running"  # what a SIGKILL leaves behind
    if closer == "runs":
        done = jianfu("runs", "--store", str(store))
    else:
        done = jianfu("scan", demo_sites.urls["caihong"], "--store", str(store), "--quiet", "--max-pages", "2",
                      "--no-auto-render")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"扫描 {scan_id} 的进程已不在" in done.stderr
    row = scan_row(store, scan_id)
    assert row["status"] == "interrupted" and row["finished_at"] and row["pages"] >= 3
    with db(store) as con:
        assert [r[0] for r in con.execute("SELECT status FROM scans WHERE status='running'")] == []


def test_only_a_scan_whose_process_is_gone_is_closed(tmp_path):
    """A recorded pid that now belongs to another process (pid reuse) is not the scan's process."""
    with Store(tmp_path) as store:
        mine = store.begin_scan(["http://127.0.0.1:9/"])  # this process: alive
        reused = store.begin_scan(["http://127.0.0.1:9/"])
        gone = store.begin_scan(["http://127.0.0.1:9/"])
        elsewhere = store.begin_scan(["http://127.0.0.1:9/"])
        with store.db:
            store.db.execute("UPDATE scans SET process_key='another-boot/1' WHERE id=?", (reused,))
            store.db.execute("UPDATE scans SET pid=?, process_key='x' WHERE id=?", (2**22 + 12345, gone))
            store.db.execute("UPDATE scans SET host='another-host', pid=1, process_key='x' WHERE id=?", (elsewhere,))
        assert sorted(store.close_abandoned_scans()) == sorted([reused, gone])
        assert {s["id"]: s["status"] for s in store.scans()} == {
            mine: "running", reused: "interrupted", gone: "interrupted", elsewhere: "running"}


def test_a_fault_during_a_scan_is_one_line_naming_the_scans_log(demo_sites, tmp_path):
    """No page makes the pipeline fail any more, so the fault is planted (a test double for a
    defect): the pipeline raises after storing each page (detection runs in the scan's worker
    process, which a patch in this one would not reach). stderr gets one line per fault (at most
    five) naming the log, which holds the traceback; pages are still stored and the scan still
    finishes."""
    code = ("import sys; import crawler.pipelines\n"
            "def broken(*args, **kwargs): raise ZeroDivisionError('planted fault')\n"
            "crawler.pipelines.reuse_text_findings = broken\n"
            "from jianfu.cli import main; sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", code, "scan", demo_sites.urls["caihong"], "--store", str(tmp_path),
                           "--quiet", "--json", "--no-auto-render", "--max-pages", "3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 5 and all(line.startswith("jianfu scan: 内部错误：") for line in lines), lines
    log = Path(lines[0].rsplit("完整记录见 ", 1)[1].rstrip("）"))
    assert log.parent == tmp_path / "logs" and "ZeroDivisionError: planted fault" in log.read_text()
    assert json.loads(proc.stdout)["pages"] == 3
