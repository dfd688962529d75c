"""The scheduler service: APScheduler 3 with a persistent SQLAlchemy job store.

- One job per plan target, id ``target:NAME``, function ``scheduler.jobs:run_target`` (a
  "module:function" reference, stored by name), kwargs ``plan``/``target``/``spec``. Jobs live in
  the job store (the store's SQLite file by default, or the plan's ``jobstore`` URL, e.g.
  PostgreSQL), so their next run time and paused state survive restarts.
- ``sync_jobs`` makes the job store match the plan: a job whose trigger spec is unchanged is
  left alone (its next run time, so a run missed while the service was down, is kept), a changed
  one is re-added with ``replace_existing=True`` (keeping it paused if it was), a target removed
  from the plan loses its job.
- Job defaults: ``coalesce=True`` (however many runs were missed, one catch-up run),
  ``misfire_grace_time`` from the plan (a run later than that is skipped), ``max_instances=1``
  (plus the run table's one-running-per-target index across processes).
- On start, runs left ``running`` by a killed service are marked interrupted (their orphaned
  crawl is stopped) and their targets are run again at once.
- A housekeeping tick (in-memory job) delivers due alerts and reloads the plan file when it
  changes; it also makes the service notice jobs that ``jianfu schedule add|pause|resume|run-now``
  wrote into the job store from another process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from scheduler import alerts, runs
from scheduler.plans import Plan, load_plan

log = logging.getLogger(__name__)
JOB_FUNC = "scheduler.jobs:run_target"
TABLE = "apscheduler_jobs"


class _ControlScheduler(BackgroundScheduler):
    """Reads and writes the job store, never runs a job (even during shutdown, when APScheduler's
    loop would otherwise process due jobs once more)."""

    def _process_jobs(self) -> None:
        return None


def make_scheduler(plan: Plan, cls: type[BackgroundScheduler] = BackgroundScheduler) -> BackgroundScheduler:
    engine_options: dict[str, Any] = {}
    if plan.jobstore_url.startswith("sqlite"):
        engine_options = {"connect_args": {"timeout": 30}}
    return cls(
        jobstores={"default": SQLAlchemyJobStore(url=plan.jobstore_url, tablename=TABLE,
                                                 engine_options=engine_options),
                   "memory": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(max(4, len(plan.targets) + 2))},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": int(plan.misfire_grace)},
        timezone=ZoneInfo(plan.timezone),
    )


@contextlib.contextmanager
def control(plan: Plan) -> Iterator[BackgroundScheduler]:
    """A scheduler on the plan's job store that runs nothing: for list/add/pause/resume from the
    command line, whether or not the service is running."""
    if plan.jobstore_url.startswith("sqlite"):
        runs.connect(plan.store).close()  # the store (and its directory) must exist first
    sched = make_scheduler(plan, _ControlScheduler)
    sched.start(paused=True)
    try:
        yield sched
    finally:
        sched.shutdown(wait=False)


def sync_jobs(sched: BackgroundScheduler, plan: Plan) -> dict[str, list[str]]:
    changes: dict[str, list[str]] = {"added": [], "rescheduled": [], "removed": [], "kept": []}
    for t in plan.targets.values():
        job = sched.get_job(t.job_id, jobstore="default")
        if job is not None and job.kwargs.get("spec") == t.spec and job.kwargs.get("plan") == str(plan.path):
            changes["kept"].append(t.name)
            continue
        paused = job is not None and job.next_run_time is None
        sched.add_job(JOB_FUNC, t.trigger(), id=t.job_id, name=t.name, jobstore="default",
                      kwargs={"plan": str(plan.path), "target": t.name, "spec": t.spec},
                      replace_existing=True)
        if paused:
            sched.pause_job(t.job_id, jobstore="default")
        changes["rescheduled" if job else "added"].append(t.name)
    for job in sched.get_jobs(jobstore="default"):
        if job.id.startswith("target:") and job.name not in plan.targets:
            sched.remove_job(job.id, jobstore="default")
            changes["removed"].append(job.name)
    return changes


class Service:
    def __init__(self, plan_path: str, tick: float | None = None) -> None:
        self.plan_path = plan_path
        self.plan = load_plan(plan_path)
        self.tick = tick or self.plan.tick
        self.sched = make_scheduler(self.plan)
        self.stopping = threading.Event()
        self._plan_mtime = self.plan.path.stat().st_mtime_ns
        self._lock = threading.Lock()

    def start(self) -> None:
        db = runs.connect(self.plan.store)
        try:
            interrupted = runs.recover(db) if not self.plan.broker else []  # workers: job leases recover
        finally:
            db.close()
        self.sched.start(paused=True)
        changes = sync_jobs(self.sched, self.plan)
        log.info("jobs: %s", changes)
        now = datetime.now(UTC)
        for name in sorted(set(interrupted)):
            job = self.sched.get_job(f"target:{name}", jobstore="default")
            if job is not None and job.next_run_time is not None and job.next_run_time <= now:
                continue  # already due: the catch-up run is the re-run
            log.warning("re-running %s: its last run was interrupted", name)
            self.sched.add_job(JOB_FUNC, "date", run_date=now, id=f"rerun:{name}", jobstore="memory",
                               kwargs={"plan": str(self.plan.path), "target": name, "trigger": "rerun"},
                               replace_existing=True, misfire_grace_time=None)
        self.sched.add_job(housekeeping, "interval", seconds=self.tick, id="housekeeping", jobstore="memory",
                           args=[self], replace_existing=True, next_run_time=now)
        self.sched.resume()

    def housekeeping(self) -> None:
        if not self._lock.acquire(blocking=False):
            return
        try:
            mtime = self.plan.path.stat().st_mtime_ns
            if mtime != self._plan_mtime:
                self._plan_mtime = mtime
                try:
                    plan = load_plan(self.plan_path)
                except Exception as e:
                    log.error("plan not reloaded: %s", e)
                else:
                    self.plan = plan
                    log.info("plan reloaded: %s", sync_jobs(self.sched, plan))
            db = runs.connect(self.plan.store)
            try:
                counts = alerts.drain(db, self.plan.alerts)
                if any(counts.values()):
                    log.info("alerts: %s", counts)
                if self.plan.broker:  # jobs the broker did not take (it was down): send them now
                    from scheduler import queue

                    if n := queue.republish(db, queue.app_for(self.plan.broker)):
                        log.info("jobs published again: %d", n)
            finally:
                db.close()
        except Exception:
            log.exception("housekeeping failed")
        finally:
            self._lock.release()

    def stop(self) -> None:
        """Graceful stop: no new runs; running crawls are stopped and marked interrupted, so the
        next start re-runs them."""
        self.sched.shutdown(wait=False)
        db = runs.connect(self.plan.store)
        try:
            for row in db.execute("SELECT * FROM runs WHERE status='running' AND pid=?",
                                  (os.getpid(),)).fetchall():
                run = dict(row)
                runs.kill_group(run["child_pid"])
                runs.mark_interrupted(db, run, "the scheduler service was stopped during the run")
        finally:
            db.close()

    def serve_forever(self) -> None:
        def on_signal(signum: int, frame: object) -> None:
            self.stopping.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        try:
            while not self.stopping.wait(1.0):
                pass
        finally:
            self.stop()


def housekeeping(service: Service) -> None:
    service.housekeeping()
