"""Scan plans, the scheduler service (restart, missed-run catch-up, SIGKILL mid-scan), run history.

The service and every crawl are real subprocesses; the demo sites run in this process on
127.0.0.1. Tests never touch an address outside 127.0.0.0/8.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from demo_site.server import DemoHandler, DemoSites
from jianfu.cli import main
from scheduler.plans import PlanError, load_plan, parse_plan

JIANFU = [sys.executable, "-P", "-m", "jianfu"]


def wait_for(pred, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def q(store: Path, sql: str, *args):
    db = sqlite3.connect(store / "jianfu.sqlite3", timeout=30)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def start_service(plan: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([*JIANFU, "schedule", "run", "--plan", str(plan), "--tick", "0.5"],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)  # noqa: SIM115


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        proc.wait(30)


# -- plans: bad input gets one clear line -----------------------------------------------------
@pytest.mark.parametrize("body, message", [
    ('[targets.a]\nseeds=["http://127.0.0.1/"]\ncron="61 * * * *"', "targets.a.cron: bad cron expression '61 * * * *'"),
    ('[targets.a]\nseeds=["http://127.0.0.1/"]\ncron="* * *"', "targets.a.cron: bad cron expression"),
    ('[targets.a]\nseeds=["http://127.0.0.1/"]', "give exactly one of cron"),
    ('[targets.a]\nseeds=["ftp://x/"]\nevery="1h"', "targets.a.seeds[0]: not an http(s) URL"),
    ('[targets.a]\nseeds=["http://127.0.0.1/"]\nevery="soon"', "targets.a.every: expected a duration"),
    ('[targets.a]\nseeds=["http://127.0.0.1/"]\nevery="1h"\nrender="flash"', "targets.a.render: must be one of"),
    ('[targets.a]\nseeds=["http://127.0.0.1/"]\nevery="1h"\ndepht=3', "targets.a.depht: unknown key"),
    ('timezone="Mars/Olympus"', "timezone: unknown time zone"),
    ('[alerts.email]\nhost="127.0.0.1"', "alerts.email.to: at least one e-mail address"),
    ('[targets.a\n', "not valid TOML"),
])
def test_plan_errors_are_one_clear_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(PlanError) as e:
        parse_plan(f'store = "s"\n{body}\n', tmp_path / "plan.toml")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_example_plan_is_valid() -> None:
    plan = load_plan(Path(__file__).parents[1] / "docs" / "plans.example.toml")
    assert plan.targets and plan.timezone == "Asia/Shanghai"
    assert all(t.cron or t.every for t in plan.targets.values())


def test_cli_bad_cron_and_unknown_target(tmp_path: Path, capsys) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('store = "s"\n')
    assert main(["schedule", "add", "a", "--plan", str(plan), "--seed", "http://127.0.0.1:9/", "--cron", "0 25 * * *"]) == 1
    assert "bad cron expression '0 25 * * *'" in capsys.readouterr().err
    assert plan.read_text() == 'store = "s"\n'  # a bad add leaves the plan as it was
    for action in ("pause", "resume", "run-now"):
        assert main(["schedule", action, "nope", "--plan", str(plan)]) == 1
        assert "unknown target 'nope'" in capsys.readouterr().err


# -- the service: job added, restart, missed run caught up once ----------------------------------
def test_job_survives_restart_and_missed_run_is_caught_up_once(tmp_path: Path) -> None:
    from scheduler.plans import load_plan as lp
    from scheduler.service import control

    plan = tmp_path / "plan.toml"
    plan.write_text('store = "store"\n')
    store, log = tmp_path / "store", tmp_path / "service.log"
    with DemoSites(["qiming"]) as sites:
        assert main(["schedule", "add", "qiming", "--plan", str(plan), "--seed",
                     f"启明星学堂={sites.urls['qiming']}", "--every", "1h", "--max-pages", "20"]) == 0
        svc = start_service(plan, log)
        try:  # the service loads the job and runs nothing before it is due
            wait_for(lambda: "pid" in log.read_text(errors="replace"), 30, "the service to start")
            time.sleep(2)
        finally:
            stop(svc)
        assert svc.returncode == 0
        assert q(store, "SELECT COUNT(*) FROM runs")[0][0] == 0
        with control(lp(plan)) as sched:  # still there after the restart … and three runs missed
            job = sched.get_job("target:qiming")
            assert job is not None and job.kwargs["target"] == "qiming"
            assert job.func_ref == "scheduler.jobs:run_target"
            sched.modify_job("target:qiming", next_run_time=datetime.now(UTC) - timedelta(hours=3, minutes=1))
        svc = start_service(plan, log)
        try:
            wait_for(lambda: q(store, "SELECT status FROM runs WHERE status != 'running'"), 90,
                     "the catch-up run")
            time.sleep(3)  # a second catch-up run would have started by now
        finally:
            stop(svc)
        rows = q(store, "SELECT trigger, status, pages, new FROM runs")
        # qiming's five pages (`/` and `/index.html` are one page: store.canonical_page_url)
        assert rows == [("schedule", "finished", 5, rows[0][3])] and rows[0][3] > 0, rows
        with control(lp(plan)) as sched:
            nxt = sched.get_job("target:qiming").next_run_time
            assert timedelta(minutes=50) < nxt - datetime.now(UTC) <= timedelta(hours=1)
    out = subprocess.run([*JIANFU, "runs", "--plan", str(plan), "--json"], capture_output=True, text=True, check=True)
    run = json.loads(out.stdout.splitlines()[-1])
    assert run["status"] == "finished" and run["pages"] == 5 and run["new"] == rows[0][3]


# -- SIGKILL during a scan ---------------------------------------------------------------------
class SlowQiming(DemoHandler):
    site = "qiming"

    def do_GET(self) -> None:
        time.sleep(0.4)
        super().do_GET()


def test_sigkill_during_scan_marks_interrupted_and_reruns(tmp_path: Path) -> None:
    import threading
    from http.server import ThreadingHTTPServer

    srv = ThreadingHTTPServer(("127.0.0.1", 0), SlowQiming)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/"
    plan, store, log = tmp_path / "plan.toml", tmp_path / "store", tmp_path / "service.log"
    plan.write_text(f'store = "store"\n[targets.qiming]\nseeds = ["启明星学堂={url}"]\nevery = "1h"\n'
                    'concurrency = 1\n')
    try:
        from scheduler.plans import load_plan as lp
        from scheduler.service import control, sync_jobs

        with control(lp(plan)) as sched:  # due now
            sync_jobs(sched, lp(plan))
            sched.modify_job("target:qiming", next_run_time=datetime.now(UTC))
        svc = start_service(plan, log)
        try:
            wait_for(lambda: q(store, "SELECT COUNT(*) FROM pages")[0][0] >= 1, 60, "the first page")
            child = q(store, "SELECT child_pid FROM runs WHERE status='running'")[0][0]
            os.kill(svc.pid, signal.SIGKILL)  # the scheduler dies mid-scan
            svc.wait(10)
        finally:
            stop(svc)
        assert q(store, "SELECT status FROM runs") == [("running",)]
        svc = start_service(plan, log)
        try:
            wait_for(lambda: q(store, "SELECT 1 FROM runs WHERE status='finished'"), 90, "the re-run")
        finally:
            stop(svc)
        assert not _alive(child)  # the orphaned crawl did not outlive the recovery
        runs = q(store, "SELECT trigger, status, scan_id, new, present FROM runs ORDER BY id")
        assert [r[:2] for r in runs] == [("schedule", "interrupted"), ("rerun", "finished")], runs
        (_, _, killed_scan, _, _), (_, _, rerun_scan, new, present) = runs
        assert q(store, "SELECT status FROM scans WHERE id=?", killed_scan) == [("interrupted",)]
        # nothing duplicated, nothing lost: the re-run sighted every finding the store holds, once
        total = q(store, "SELECT COUNT(*) FROM findings")[0][0]
        assert total > 0 and new == total and present == 0
        assert q(store, "SELECT COUNT(*) FROM sightings WHERE scan_id=?", rerun_scan)[0][0] == total
    finally:
        srv.shutdown()
        srv.server_close()


def _alive(pid: int) -> bool:
    from scheduler.runs import pid_alive

    return pid_alive(pid)


# -- the baseline: an image that failed this time proves nothing -------------------------------
def test_failed_image_does_not_make_its_findings_gone(tmp_path: Path) -> None:
    from detectors.model import Finding
    from scheduler import runs
    from store import Store

    page, img = "http://127.0.0.1:1/ads.html", "http://127.0.0.1:1/img/ad.png"
    ad = [Finding("photo_search", "r.ad", "拍照搜题", 0, 4, 0.9, "high", "b")]
    txt = [Finding("photo_search", "r.txt", "拍照搜题", 5, 9, 0.9, "high", "b")]

    def scan(image: str) -> dict:
        with Store(tmp_path) as st:
            sid = st.begin_scan([page], target="t")
            st.save_page(sid, page, status=200, text="广告。 拍照搜题")
            st.save_findings(sid, page, "text", "广告。 拍照搜题", txt)
            if image == "read":
                st.link_image(sid, page, img, "ab" * 32)
                st.save_findings(sid, page, "image", "拍照搜题", ad, image_url=img, image_sha256="ab" * 32)
            elif image == "read, ad changed":
                st.link_image(sid, page, img, "cd" * 32)
            elif image == "timeout":
                st.link_image(sid, page, img, None, error="timeout after 30 s")
            elif image == "ocr failed":
                st.link_image(sid, page, img, "ab" * 32, error="OCR failed: RuntimeError: engine")
            elif image == "never fetched":
                st.link_image(sid, page, img, None)
            st.finish_scan(sid)  # image == "removed": the page no longer shows it
        db = runs.connect(tmp_path)
        try:
            return runs.finish_run(db, runs.begin_run(db, "t", "run-now"), "finished", sid, None, None, [])
        finally:
            db.close()

    def counts(run: dict) -> tuple[int, int, int, int]:
        return run["new"], run["returned"], run["present"], run["gone"]

    assert counts(scan("read")) == (2, 0, 0, 0)
    for failure in ("timeout", "ocr failed", "never fetched"):  # the ad's finding keeps its state
        assert counts(scan(failure)) == (0, 0, 1, 0), failure
    assert counts(scan("read")) == (0, 0, 2, 0)  # … so nothing "returned", nothing re-alerted
    assert counts(scan("read, ad changed")) == (0, 0, 1, 1)  # read, finding not there: gone
    assert counts(scan("read")) == (0, 1, 1, 0)
    assert counts(scan("removed")) == (0, 0, 1, 1)  # the page no longer shows the image: gone


def test_interrupted_and_timed_out_runs_count_their_scan_like_the_store(tmp_path: Path) -> None:
    from scheduler import runs
    from store import Store

    base = "http://127.0.0.1:1/"

    def partial_scan() -> str:
        with Store(tmp_path) as st:
            sid = st.begin_scan([base], target="t")
            for p in ("a", "b"):
                st.save_page(sid, base + p, status=200, text=p)
                st.link_image(sid, base + p, base + "logo.png", "ab" * 32)  # one image on two pages
            st.link_image(sid, base + "b", base + "ad.png", None, error="timeout")
            for _ in range(3):  # one URL retried three times is one failed URL
                st.record_fetch(sid, base + "ad.png", kind="image", error="timeout", reason="timed out")
            return sid

    db = runs.connect(tmp_path)
    try:
        sid = partial_scan()
        run = runs.get_run(db, runs.begin_run(db, "t", "schedule"))
        runs.mark_interrupted(db, run | {"scan_id": sid}, "stopped")
        scan = dict(db.execute("SELECT status, finished_at, pages, images, errors FROM scans WHERE id=?",
                               (sid,)).fetchone())
        assert scan["status"] == "interrupted" and scan["finished_at"]
        assert (scan["pages"], scan["images"], scan["errors"]) == (2, 2, 1)
        run = runs.get_run(db, run["id"])
        assert (run["status"], run["pages"], run["images"], run["errors"]) == ("interrupted", 2, 2, 1)

        sid = partial_scan()  # a crawl killed by its timeout: the same counts
        run = runs.finish_run(db, runs.begin_run(db, "t", "schedule"), "timeout", sid, None, "timed out", [])
        scan = dict(db.execute("SELECT status, pages, images, errors FROM scans WHERE id=?", (sid,)).fetchone())
        assert scan == {"status": "interrupted", "pages": 2, "images": 2, "errors": 1}
        assert (run["status"], run["pages"], run["images"], run["errors"]) == ("timeout", 2, 2, 1)

        with Store(tmp_path) as st:  # a scan that finished is not rewritten by a late interruption
            sid = st.begin_scan([base], target="t")
            st.finish_scan(sid)
        runs.mark_interrupted(db, runs.get_run(db, runs.begin_run(db, "t", "schedule")) | {"scan_id": sid}, "x")
        assert db.execute("SELECT status FROM scans WHERE id=?", (sid,)).fetchone()[0] == "finished"
    finally:
        db.close()
