"""Scale-out, end to end against real servers: PostgreSQL (the one store), Redis (the broker),
Elasticsearch (the one index) and three ``jianfu worker`` processes scanning the demo sites and
the 500-page generated site. One worker is killed with SIGKILL mid-scan and Redis is restarted
mid-run; the result must equal single-process scans of the same sites: same pages, same findings,
same sightings, no duplicate, nothing lost."""

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

from demo_site.server import GENERATED_PAGES, INSTITUTIONS, DemoSites
from scheduler import jobs, queue, runs
from scheduler.plans import load_plan
from store import Store
from tests.servers import postgres, redis_server  # noqa: F401 - session fixtures

ROOT = Path(__file__).resolve().parent.parent
JIANFU = [sys.executable, "-m", "jianfu"]
SITES = [*INSTITUTIONS, "generated"]
FINDING_KEYS = ("id", "category", "rule_id", "text", "start", "end", "url", "source", "image_url", "image_sha256",
                "institution", "district", "severity", "basis")


def wait_for(pred, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def write_plan(path: Path, store: str, broker: str, urls: dict[str, str]) -> Path:
    lines = [f'store = "{store}"', f'broker = "{broker}"', "", "[defaults]", 'district = "示范区"', ""]
    for name in SITES:
        seed = f"{INSTITUTIONS.get(name, '生成站')}={urls[name]}"
        lines += [f"[targets.{name}]", f'seeds = ["{seed}"]', 'every = "1d"']
        if name == "generated":
            # a budget above the site's size: the whole site, whatever order the crawl takes
            lines += ["depth = 50", f"max_pages = {GENERATED_PAGES + 100}"]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def start_worker(broker: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([*JIANFU, "worker", "--broker", broker, "--concurrency", "1", "--visibility-timeout", "8",
                             "--lease", "6", "--beat", "2", "--restore-interval", "1", "--verbose"],
                            cwd=ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def reference_scans(plan, tmp: Path) -> dict[str, Path]:
    """Each target scanned by a single `jianfu scan` process into its own SQLite store (the
    command the local scheduler runs)."""
    procs = {}
    for name in SITES:
        store = tmp / f"ref-{name}"
        procs[name] = (store, subprocess.Popen(jobs.command_for(store, plan.targets[name]), cwd=ROOT,
                                               env=jobs.same_code_env(), stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, text=True))
    for name, (_, p) in procs.items():
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, f"{name}: {err[-2000:]}"
    return {name: store for name, (store, _) in procs.items()}


def scan_result(store: Store, scan_id: str) -> dict:
    pages = sorted((p["url"], p["content_sha256"], p["duplicate_of"]) for p in store.pages(scan_id))
    sightings = [r[0] for r in store.db.execute("SELECT finding_id FROM sightings WHERE scan_id=?", (scan_id,))]
    findings = sorted(tuple(f[k] for k in FINDING_KEYS) for f in store.findings(scan_id=scan_id))
    images = sorted(tuple(r) for r in store.db.execute(
        "SELECT page_url, image_url, sha256 FROM page_images WHERE scan_id=?", (scan_id,)))
    return {"pages": pages, "sightings": sorted(sightings), "findings": findings, "images": images,
            "dup_sightings": len(sightings) - len(set(sightings))}


@pytest.mark.timeout(1800)
def test_three_workers_kill_and_broker_restart_equal_single_process(postgres, redis_server, tmp_path):  # noqa: F811
    files = tmp_path / "shared"
    url = postgres.url(files)
    workers: list[subprocess.Popen] = []
    with DemoSites(SITES) as sites:
        plan = load_plan(write_plan(tmp_path / "plan.toml", url, redis_server.url, sites.urls))
        try:
            workers = [start_worker(redis_server.url, tmp_path / f"worker{i}.log") for i in range(3)]
            for name in SITES:  # what the scheduler's APScheduler job does when a broker is configured
                assert jobs.run_target(str(plan.path), name) is None
            db = runs.connect(url)
            try:
                queued = queue.jobs(db)
                assert len(queued) == len(SITES) and all(j["published_at"] for j in queued)

                # the broker restarts while jobs are queued and running: none is lost
                wait_for(lambda: len(queue.jobs(db, "running")) >= 2, 120, "two jobs running")
                print(time.strftime("%X"), "restarting redis", flush=True)
                redis_server.restart()
                print(time.strftime("%X"), "redis restarted", flush=True)

                # the worker crawling the big site is killed mid-scan
                def generated_midway():
                    j = next(j for j in queue.jobs(db) if j["target"] == "generated")
                    if j["state"] != "running" or not j["run_id"]:
                        return None
                    scan = runs.scan_of_run(db, runs.get_run(db, j["run_id"]))
                    n = scan and db.execute("SELECT COUNT(*) FROM pages WHERE scan_id=?", (scan,)).fetchone()[0]
                    return j if n and n >= 40 else None

                victim_job = wait_for(generated_midway, 400, "the generated site's scan under way", every=0.2)
                print(time.strftime("%X"), "killing", victim_job, flush=True)
                victim_pid = int(victim_job["worker"].rsplit(":", 1)[1])
                victim = next(w for w in workers if w.pid == victim_pid)
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait(timeout=10)
                workers.append(start_worker(redis_server.url, tmp_path / "worker3.log"))  # the machine comes back

                done = wait_for(lambda: (js := queue.jobs(db)) and all(j["state"] == "done" for j in js) and js,
                                900, "every job done")
                assert sum(j["attempts"] for j in done) == len(SITES) + 1, done  # the killed one ran twice
                assert next(j for j in done if j["target"] == "generated")["attempts"] == 2
                history = runs.list_runs(db, limit=100)
            finally:
                db.close()
        finally:
            for w in workers:
                if w.poll() is None:
                    os.killpg(w.pid, signal.SIGTERM)
            for w in workers:
                try:
                    w.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(w.pid, signal.SIGKILL)
        logs = "\n".join((tmp_path / f"worker{i}.log").read_text(errors="replace")[-1500:] for i in range(4))

        by_target: dict[str, list[dict]] = {}
        for r in history:
            by_target.setdefault(r["target"], []).append(r)
        for name in SITES:
            statuses = [r["status"] for r in by_target[name]]
            expected = ["interrupted", "finished"] if name == "generated" else ["finished"]
            assert statuses == expected, (name, statuses, logs)
        killed = by_target["generated"][0]
        assert "stopped during the run" in killed["error"]

        refs = reference_scans(plan, tmp_path)

    with Store(url) as shared:
        assert shared.scan(killed["scan_id"])["status"] == "interrupted"
        total_findings = shared.db.execute("SELECT COUNT(*) FROM findings").fetchone()[0]
        reference_ids: set[str] = set()
        for name in SITES:
            finished = by_target[name][-1]
            got = scan_result(shared, finished["scan_id"])
            with Store(refs[name]) as ref:
                (ref_scan,) = ref.scans()
                want = scan_result(ref, ref_scan["id"])
                reference_ids |= {f["id"] for f in ref.findings()}
            assert got["dup_sightings"] == 0
            for key in ("pages", "findings", "sightings", "images"):
                assert got[key] == want[key], (name, key, len(got[key]), len(want[key]))
            assert finished["pages"] == len(want["pages"]) and finished["findings"] == len(want["sightings"])
            if name == "generated":
                assert len(want["pages"]) > GENERATED_PAGES  # every page, and the root
        # the interrupted attempt found nothing the finished scans did not; no finding is stored twice
        assert total_findings == len(reference_ids)
        assert all(shared.scan(r["scan_id"])["status"] == "finished" for rs in by_target.values()
                   for r in rs if r["status"] == "finished")

    # evidence export from the shared store works from any machine that mounts the files
    fid = next(f for f in Store(url).findings() if f["institution"] == INSTITUTIONS["qiming"])["id"]
    out = tmp_path / "case.jfpkt.zip"
    proc = subprocess.run([*JIANFU, "export", "--store", url, "--finding", fid, "--out", str(out), "--no-pdf"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = subprocess.run([*JIANFU, "verify", str(out), "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["intact"], proc.stdout[-2000:]


@pytest.mark.timeout(600)
def test_duplicate_delivery_and_second_job_for_a_running_target(postgres, redis_server, tmp_path):  # noqa: F811
    """A job delivered twice runs once; a second job for a target whose scan is running is skipped
    (never two scans of one target at once, across workers); a job the broker did not take is sent
    again by republish."""
    url = postgres.url(tmp_path / "shared")
    with DemoSites(["caihong"]) as sites:
        plan_path = tmp_path / "plan.toml"
        plan_path.write_text(f'store = "{url}"\nbroker = "{redis_server.url}"\n[targets.caihong]\n'
                             f'seeds = ["彩虹艺术中心={sites.urls["caihong"]}"]\nevery = "1d"\n', encoding="utf-8")
        plan = load_plan(plan_path)
        t = plan.targets["caihong"]
        db = runs.connect(url)
        try:
            first = queue.job_payload(plan, t, "schedule")
            second = queue.job_payload(plan, t, "schedule")
            run_id = queue.claim(db, first, lease=30)
            assert run_id
            with pytest.raises(queue.Busy):
                queue.claim(db, first, lease=30)  # the same job again while it runs: later
            assert queue.claim(db, second, lease=30) is None  # another job, same target: skipped
            assert [j["state"] for j in queue.jobs(db)] == ["running", "skipped"]
            assert runs.list_runs(db)[-1]["status"] == "skipped"
            # the first attempt's worker dies (lease lapses): the job is taken over and completed once
            db.execute("UPDATE scan_jobs SET lease_until=0 WHERE id=?", (first["id"],))
            run = queue.run_job(first, lease=30, beat=2)
            assert run["status"] == "finished" and run["pages"] > 0
            assert queue.run_job(first, lease=30, beat=2) is None  # delivered again after completion
            statuses = [r["status"] for r in runs.list_runs(db)]
            assert statuses == ["interrupted", "skipped", "finished"], statuses

            # the broker is unreachable when the scheduler publishes: the job waits, then goes out
            dead = queue.make_app("redis://127.0.0.1:1/0")
            job = queue.enqueue(db, dead, plan, t)
            assert queue.jobs(db, "queued")[0]["published_at"] is None
            assert queue.republish(db, queue.make_app(redis_server.url)) == 1
            assert queue.jobs(db, "queued")[0]["published_at"] and job["id"] == queue.jobs(db, "queued")[0]["id"]
        finally:
            db.close()


def test_worker_needs_a_broker():
    proc = subprocess.run([*JIANFU, "worker"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "JIANFU_BROKER"})
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "broker" in proc.stderr


@pytest.mark.timeout(300)
def test_scheduler_service_enqueues_on_a_postgresql_plan(postgres, redis_server, tmp_path):  # noqa: F811
    """The service itself on a PostgreSQL store and a broker: its APScheduler job store lives in the
    same database, a due target becomes a published job (no local crawl), and `jianfu runs` reads
    the shared run history."""
    url = postgres.url(tmp_path / "shared")
    plan_path = tmp_path / "plan.toml"
    plan_path.write_text(f'store = "{url}"\nbroker = "{redis_server.url}"\ntick = "1s"\n'
                         '[targets.caihong]\nseeds = ["彩虹艺术中心=http://127.0.0.1:9/"]\nevery = "1d"\n',
                         encoding="utf-8")
    service = subprocess.Popen([*JIANFU, "schedule", "run", "--plan", str(plan_path)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=open(tmp_path / "service.log", "ab"))
    db = runs.connect(url)
    try:
        try:  # the service keeps its schedule in PostgreSQL, beside the store
            def scheduled() -> bool:
                try:
                    return db.execute("SELECT COUNT(*) FROM apscheduler_jobs").fetchone()[0] == 1
                except sqlite3.DatabaseError:  # the service has not created its table yet
                    return False

            wait_for(scheduled, 120, "the target's job in the job store")
        finally:
            service.terminate()
            service.wait(timeout=60)
        # the job APScheduler runs when the target is due: it enqueues, it does not crawl
        assert jobs.run_target(str(plan_path), "caihong") is None
        (job,) = queue.jobs(db)
        assert job["state"] == "queued" and job["published_at"] and job["target"] == "caihong"
        assert runs.list_runs(db) == []
    finally:
        db.close()
    proc = subprocess.run([*JIANFU, "runs", "--store", url, "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr[-2000:]
