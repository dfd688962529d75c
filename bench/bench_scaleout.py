"""Scale-out: scans/hour and pages/s with 1, 2 and 4 ``jianfu worker`` processes (Celery over a
real Redis, one real PostgreSQL store), and the queue's overhead per job against the local
scheduler running the same scans one after another (``scheduler.jobs.run_target``, no broker,
same PostgreSQL store).

The workload: the four demo institutions plus two copies of the generated site capped at 150
pages each (six targets, ~620 pages, 10 ad images per generated copy). Everything — crawls, OCR,
PostgreSQL, Redis, the demo web servers — shares this machine's cores, so the table also shows
where adding workers stops paying."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from demo_site.server import INSTITUTIONS, DemoSites
from scheduler import jobs, queue, runs
from scheduler.plans import load_plan

ROOT = Path(__file__).resolve().parent.parent
GENERATED_COPIES = 2
GENERATED_PAGES = 150
WORKER_COUNTS = (1, 2, 4)


def write_plan(path: Path, store: str, broker: str | None, urls: dict[str, str]) -> list[str]:
    lines = [f'store = "{store}"'] + ([f'broker = "{broker}"'] if broker else []) + [""]
    names = []
    for name in INSTITUTIONS:
        lines += [f"[targets.{name}]", f'seeds = ["{INSTITUTIONS[name]}={urls[name]}"]', 'every = "1d"', ""]
        names.append(name)
    for k in range(GENERATED_COPIES):
        lines += [f"[targets.gen{k}]", f'seeds = ["生成站{k}={urls["generated"]}"]', 'every = "1d"',
                  "depth = 50", f"max_pages = {GENERATED_PAGES}", ""]
        names.append(f"gen{k}")
    path.write_text("\n".join(lines), encoding="utf-8")
    return names


def _pages(db, since_run: int) -> int:
    return db.execute("SELECT COALESCE(SUM(pages), 0) FROM runs WHERE id>? AND status='finished'",
                      (since_run,)).fetchone()[0]


def _gap_ms(db) -> float:
    """Mean time between one run's end and the next run's start, one runner working through the
    jobs in turn: what handing over a job costs (local loop, or ack + next message + claim)."""
    from datetime import datetime

    def t(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    rows = db.execute("SELECT started_at, finished_at FROM runs ORDER BY id").fetchall()
    gaps = [t(b[0]) - t(a[1]) for a, b in zip(rows, rows[1:], strict=False)]
    return 1000 * sum(gaps) / len(gaps) if gaps else 0.0


def local_pass(pg, urls: dict[str, str], tmp: Path) -> tuple[float, int, int, float]:
    """The local scheduler: each target's job function run in turn (one crawl subprocess each)."""
    url = pg.url(tmp / "files-local")
    names = write_plan(tmp / "local.toml", url, None, urls)
    plan = load_plan(tmp / "local.toml")
    t0 = time.perf_counter()
    for name in names:
        jobs.run_target(str(plan.path), name)
    wall = time.perf_counter() - t0
    db = runs.connect(url)
    try:
        return wall, _pages(db, 0), len(names), _gap_ms(db)
    finally:
        db.close()


def worker_pass(pg, redis_url: str, urls: dict[str, str], tmp: Path, n: int) -> tuple[float, int, int, float]:
    url = pg.url(tmp / f"files-{n}")
    names = write_plan(tmp / f"w{n}.toml", url, redis_url, urls)
    plan = load_plan(tmp / f"w{n}.toml")
    db = runs.connect(url)
    workers = [subprocess.Popen([sys.executable, "-m", "jianfu", "worker", "--broker", redis_url,
                                 "--concurrency", "1", "--beat", "5"], cwd=ROOT, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=open(tmp / f"w{n}-{i}.log", "ab"))
               for i in range(n)]
    try:
        time.sleep(3)  # workers connected (their start-up is not part of a job's cost)
        t0 = time.perf_counter()
        for name in names:
            jobs.run_target(str(plan.path), name)
        while not all(j["state"] == "done" for j in queue.jobs(db)):
            time.sleep(0.2)
        wall = time.perf_counter() - t0
        return wall, _pages(db, 0), len(names), _gap_ms(db)
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            w.wait(timeout=120)
        db.close()


def main() -> None:
    from tests.servers import PostgresServer, RedisServer

    rows = []
    with PostgresServer() as pg, RedisServer() as rs, tempfile.TemporaryDirectory() as tmp, \
            DemoSites([*INSTITUTIONS, "generated"]) as sites:
        tmp_path = Path(tmp)
        local = local_pass(pg, sites.urls, tmp_path)
        for n in WORKER_COUNTS:
            rows.append((n, worker_pass(pg, rs.url, sites.urls, tmp_path, n)))
    lw, lpages, njobs, local_gap = local
    print(f"| scale-out ({njobs} scans, {lpages} pages; {os.cpu_count()} cores) | wall s | scans/hour | pages/s "
          "| vs local scheduler |")
    print("|---|---:|---:|---:|---:|")
    print(f"| local scheduler, one scan after another (PostgreSQL store) | {lw:.1f} | {njobs * 3600 / lw:.0f} "
          f"| {lpages / lw:.1f} | 1.00× |")
    for n, (wall, pages, jobs_done, _) in rows:
        print(f"| {n} worker{'s' if n > 1 else ''} (Celery + Redis, concurrency 1 each) | {wall:.1f} "
              f"| {jobs_done * 3600 / wall:.0f} | {pages / wall:.1f} | {lw / wall:.2f}× |")
    one, one_gap = rows[0][1][0], rows[0][1][3]
    print(f"\nQueue overhead per job, 1 worker vs the local scheduler (same scans, same store): wall "
          f"{(one - lw) / njobs * 1000:+.0f} ms/job; hand-over between consecutive runs {one_gap:.0f} ms "
          f"(queue: ack, next message, claim) vs {local_gap:.0f} ms (local loop).")
