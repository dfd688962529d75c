"""What makes a scan fast must not cost what it captured (issue 18): the store's batched writes
(``Store.batched_writes``: one transaction about every 0.5 s, a savepoint per Store call) and the
scan's worker process (``crawler/workers.py``: detection and OCR on another core)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demo_site.server import DemoSites
from store import Store
from tests.conftest import ROOT


def count(store: Path, sql: str, *args: object) -> int:
    # another connection: sees only what is committed (mode=rw: never creates the file)
    con = sqlite3.connect(f"file:{store / 'jianfu.sqlite3'}?mode=rw", uri=True)
    try:
        return con.execute(sql, args).fetchone()[0]
    finally:
        con.close()


def test_a_batch_commits_on_time_and_a_failed_call_undoes_only_itself(tmp_path):
    with Store(tmp_path) as store:
        scan = store.begin_scan(["http://127.0.0.1:9/"])
        with store.batched_writes(3600):
            store.record_fetch(scan, "http://127.0.0.1:9/a", status=200)
            with pytest.raises(sqlite3.IntegrityError), store.db:  # one Store call's block fails mid-way
                store.db.execute("INSERT INTO meta(key, value) VALUES ('half', 'done')")
                store.db.execute("INSERT INTO scans(id, started_at, seeds) VALUES (?, 'x', '[]')", (scan,))
            store.record_fetch(scan, "http://127.0.0.1:9/b", status=200)
            assert count(tmp_path, "SELECT COUNT(*) FROM fetches") == 0  # not committed yet
            store.commit_writes()
            assert count(tmp_path, "SELECT COUNT(*) FROM fetches") == 2
            assert count(tmp_path, "SELECT COUNT(*) FROM meta WHERE key='half'") == 0
            store.record_fetch(scan, "http://127.0.0.1:9/c", status=200)
        assert count(tmp_path, "SELECT COUNT(*) FROM fetches") == 3  # the end of the block commits
    with Store(tmp_path) as store:  # and the seconds: a call ending after them commits the batch
        with store.batched_writes(0.2):
            store.record_fetch(scan, "http://127.0.0.1:9/d", status=200)
            time.sleep(0.3)
            store.record_fetch(scan, "http://127.0.0.1:9/e", status=200)
            assert count(tmp_path, "SELECT COUNT(*) FROM fetches") == 5


KILLED_MID_BATCH = """
import os, sys
from demo_site.server import DemoSites
from store import Store
store = Store(sys.argv[1])
scan = store.begin_scan(["http://127.0.0.1:9/"])
with store.batched_writes(3600):
    for i in range(50):
        store.record_fetch(scan, f"http://127.0.0.1:9/kept/{i}", status=200)
    store.commit_writes()
    for i in range(50):
        store.record_fetch(scan, f"http://127.0.0.1:9/lost/{i}", status=200)
    os.kill(os.getpid(), 9)
"""


def test_a_process_killed_mid_batch_keeps_what_was_committed(tmp_path):
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_BATCH, str(tmp_path)], cwd=ROOT, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert count(tmp_path, "SELECT COUNT(*) FROM fetches WHERE url LIKE '%/kept/%'") == 50
    assert count(tmp_path, "SELECT COUNT(*) FROM fetches WHERE url LIKE '%/lost/%'") == 0
    with Store(tmp_path) as store:  # the store opens and takes writes as before
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        store.record_fetch(store.scans()[0]["id"], "http://127.0.0.1:9/after", status=200)


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.fixture
def slow_site():
    """The generated site answering each page after 10 ms: a scan of it is still running seconds later."""
    with DemoSites(["generated"]) as sites:
        sites.handlers["generated"].page_delay = 0.01
        yield sites.urls["generated"]


def test_a_scan_whose_worker_dies_is_failed_and_keeps_its_pages(slow_site, tmp_path):
    """The worker process (detection, OCR) killed mid-scan: the crawl goes on storing pages, the
    scan ends as failed with one line naming its log (so the next scan examines its pages again
    instead of re-sighting findings this one could not look for)."""
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "jianfu", "scan", slow_site, "--store", str(store), "--quiet",
                             "--json", "--depth", "50", "--max-pages", "500", "--no-auto-render", "--concurrency", "2"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # some pages examined: the worker is up and working
            try:
                if count(store, "SELECT COUNT(*) FROM sightings") >= 3:
                    break
            except sqlite3.OperationalError:  # the store's file or tables are not there yet
                pass
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            time.sleep(0.2)
        else:
            raise AssertionError("the scan did not get going")
        scan_cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()  # the worker is a fork of the scan
        workers = [c for c in children(proc.pid) if Path(f"/proc/{c}/cmdline").read_bytes() == scan_cmdline]
        assert len(workers) == 1, workers
        os.kill(workers[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 70, err[-2000:]
    assert "worker process failed" in err and "Traceback" not in err
    assert count(store, "SELECT COUNT(*) FROM scans WHERE status='failed'") == 1
    assert count(store, "SELECT COUNT(*) FROM pages") >= 3
