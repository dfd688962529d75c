"""Scale-out: scans as jobs on Celery workers over a Redis broker.

When the plan names a ``broker``, the scheduler does not run crawls itself: ``enqueue`` records
a ``scan_jobs`` row (what to run, in the shared store) and publishes one Celery message per
target scan. ``jianfu worker`` runs a Celery worker (any number, on any machine that reaches the
broker, the store's database and its shared file directory); each job runs exactly as the local
scheduler runs it (``scheduler.jobs.run_crawl``: one ``jianfu scan`` subprocess, the run
recorded in ``runs``, the baseline moved, alerts queued).

Delivery is at-least-once; the store makes the work happen once:

- Late acknowledgement (``task_acks_late``, prefetch 1): a message is acknowledged only after its
  job is recorded. A worker killed mid-scan never acknowledges; Redis hands the message to another
  worker after the visibility timeout.
- A job is claimed with a compare-and-set on its ``scan_jobs`` row and a lease the worker renews
  while the crawl runs. A delivery of a job that is done is dropped; of a job running under a
  live lease is retried later (whoever holds it may still die); of a job whose lease expired is a
  take-over: the dead attempt's run and scan are closed ``interrupted`` and the job runs again.
- Never two scans of one target at once, across every worker: the ``runs`` table's
  one-running-per-target unique index, in the shared database. A second job for a target whose
  scan is running (under a live lease) is recorded ``skipped``, as the local scheduler does.
- The crawl subprocess dies with its worker (``PR_SET_PDEATHSIG``), so a killed worker leaves
  no crawl behind to race the take-over.
- A job the broker did not take (Redis down at that moment) keeps ``published_at`` NULL and is
  published again by ``republish`` (the service's housekeeping tick).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import sqlite3
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from scheduler import runs
from scheduler.plans import LedgerSelection, Plan, Target
from store.db import utcnow

log = logging.getLogger(__name__)

TASK = "jianfu.scan_target"
QUEUE = "jianfu.scans"
DEFAULTS = {"visibility_timeout": 600.0, "lease": 60.0, "beat": 10.0, "restore_interval": 10.0}


def make_app(broker: str, **options: float) -> Any:
    """The Celery app for ``broker``: late acks, one message prefetched per slot, the visibility
    timeout after which an unacknowledged job is handed to another worker."""
    from celery import Celery

    opts = DEFAULTS | {k: v for k, v in options.items() if v is not None}
    app = Celery("jianfu", broker=broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options={
            "visibility_timeout": opts["visibility_timeout"],
            "unacked_restore_interval": opts["restore_interval"],
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 5,
        },
        jianfu_lease=opts["lease"],
        jianfu_beat=opts["beat"],
        jianfu_scan_args=(),
    )
    app.task(name=TASK, bind=True, max_retries=None, acks_late=True)(scan_target)
    return app


@functools.cache
def app_for(broker: str) -> Any:
    """One app (and its broker connection pool) per broker URL in the scheduler process."""
    return make_app(broker)


# -- the scheduler's side ---------------------------------------------------------------------

def job_payload(plan: Plan, t: Target, trigger: str) -> dict[str, Any]:
    spec = asdict(t)
    spec["seeds"] = list(t.seeds)
    return {"id": uuid.uuid4().hex, "target": t.name, "trigger": trigger, "store": str(plan.store),
            "spec": spec, "channels": list(plan.alerts.channels)}


def enqueue(db: Any, app: Any, plan: Plan, t: Target, trigger: str = "schedule") -> dict[str, Any]:
    """Record the job, then publish it; a failed publish leaves it for ``republish``."""
    job = job_payload(plan, t, trigger)
    db.execute("INSERT INTO scan_jobs(id, target, trigger, payload, queued_at) VALUES (?,?,?,?,?)",
               (job["id"], t.name, trigger, json.dumps(job, ensure_ascii=False), utcnow()))
    _publish(db, app, job)
    return job


def _publish(db: Any, app: Any, job: dict[str, Any]) -> bool:
    try:
        app.send_task(TASK, kwargs={"job": job}, queue=QUEUE, retry=True,
                      retry_policy={"max_retries": 2, "interval_start": 0.5, "interval_step": 1})
    except Exception as e:  # the broker is down: the row stays unpublished, republish sends it later
        log.warning("job %s for %s not published yet: %s", job["id"], job["target"], e)
        return False
    db.execute("UPDATE scan_jobs SET published_at=? WHERE id=?", (utcnow(), job["id"]))
    return True


def republish(db: Any, app: Any, stale: float = 3600.0) -> int:
    """Publish again the jobs the broker did not take, and those whose message may be gone (still
    queued ``stale`` seconds after publishing, or running under a lease expired that long: a broker
    that lost its data). A job delivered twice still runs once. Returns how many went out."""
    before = datetime.fromtimestamp(time.time() - stale, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    rows = db.execute(
        "SELECT payload FROM scan_jobs WHERE (state='queued' AND (published_at IS NULL OR published_at<?)) "
        "OR (state='running' AND lease_until<? AND published_at<?) ORDER BY queued_at",
        (before, time.time() - stale, before)).fetchall()
    return sum(_publish(db, app, json.loads(r[0])) for r in rows)


def jobs(db: Any, state: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT id, target, trigger, state, queued_at, published_at, worker, lease_until, attempts, run_id, " \
          "finished_at FROM scan_jobs" + (" WHERE state=?" if state else "") + " ORDER BY queued_at"
    return [dict(r) for r in db.execute(sql, (state,) if state else ())]


# -- the worker's side -------------------------------------------------------------------------

class Busy(Exception):
    """The job (or its target) is held under a live lease: try this delivery again later."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"busy for {wait:.0f} s")
        self.wait = wait


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(db: Any, job: dict[str, Any], lease: float) -> int | None:
    """Take ``job`` for this worker: the new run's id, or None when there is nothing to do
    (done already, or skipped because its target is running under another job). Raises Busy."""
    db.execute("INSERT INTO scan_jobs(id, target, trigger, payload, queued_at, published_at) VALUES (?,?,?,?,?,?) "
               "ON CONFLICT(id) DO NOTHING",  # a message published by hand / from another store
               (job["id"], job["target"], job["trigger"], json.dumps(job, ensure_ascii=False), utcnow(), utcnow()))
    row = dict(db.execute("SELECT * FROM scan_jobs WHERE id=?", (job["id"],)).fetchone())
    now = time.time()
    if row["state"] in ("done", "skipped"):
        return None
    if row["state"] == "running" and (row["lease_until"] or 0) > now:
        raise Busy(row["lease_until"] - now)
    # queued, or running under an expired lease (its worker died): compare-and-set it to us
    with runs.tx(db):
        took = db.execute(
            "UPDATE scan_jobs SET state='running', worker=?, lease_until=?, attempts=attempts+1 "
            "WHERE id=? AND state=? AND COALESCE(run_id, -1)=?",
            (worker_id(), now + lease, job["id"], row["state"], row["run_id"] if row["run_id"] is not None else -1),
        ).rowcount
    if not took:
        raise Busy(1.0)  # another worker claimed it a moment ago
    if row["run_id"] is not None:  # the previous attempt's worker is gone: close its run and scan
        old = runs.get_run(db, row["run_id"])
        if old["status"] != "running" and old["status"] != "interrupted":  # recorded, then the worker died
            complete(db, job["id"], row["run_id"])
            return None
        if old["status"] == "running":
            log.warning("job %s: taking over from %s (lease expired)", job["id"], row["worker"])
            runs.mark_interrupted(db, old, f"the worker {row['worker']} stopped during the run (killed or lost)")
    return _begin(db, job, lease)


def _begin(db: Any, job: dict[str, Any], lease: float) -> int | None:
    target = job["target"]
    for _ in range(3):
        try:
            with runs.tx(db):
                cur = db.execute("INSERT INTO runs(target, trigger, started_at, pid) VALUES (?,?,?,?)",
                                 (target, job["trigger"], utcnow(), os.getpid()))
                run_id = int(cur.lastrowid or 0)
                db.execute("UPDATE scan_jobs SET run_id=? WHERE id=?", (run_id, job["id"]))
            return run_id
        except sqlite3.IntegrityError:  # PostgreSQL's unique violation arrives as this too
            pass
        running = runs.running_run(db, target)
        if running is None:
            continue  # it just finished
        holder = db.execute("SELECT id, worker, lease_until FROM scan_jobs WHERE run_id=? AND state='running'",
                            (running["id"],)).fetchone()
        if holder is not None and (holder["lease_until"] or 0) <= time.time():
            runs.mark_interrupted(db, running, f"the worker {holder['worker']} stopped during the run (killed or lost)")
            db.execute("UPDATE scan_jobs SET state='queued', lease_until=NULL WHERE id=? AND state='running'",
                       (holder["id"],))
            continue
        if holder is None and not runs.pid_alive(running["pid"]):
            runs.recover(db, target)  # a local run whose process died on this machine
            continue
        why = f"target {target!r} is already running (run {running['id']}, started {running['started_at']})"
        runs.record_skipped(db, target, job["trigger"], why)
        db.execute("UPDATE scan_jobs SET state='skipped', finished_at=?, lease_until=NULL WHERE id=?",
                   (utcnow(), job["id"]))
        log.warning("job %s skipped: %s", job["id"], why)
        return None
    raise Busy(5.0)


def renew(db: Any, job_id: str, run_id: int, lease: float) -> bool:
    """Extend this attempt's lease; False when another worker has taken the job over."""
    try:
        return bool(db.execute("UPDATE scan_jobs SET lease_until=? WHERE id=? AND run_id=? AND state='running'",
                               (time.time() + lease, job_id, run_id)).rowcount)
    except sqlite3.Error as e:  # the database is briefly unreachable: keep crawling, try next beat
        log.warning("job %s: lease not renewed: %s", job_id, e)
        return True


def complete(db: Any, job_id: str, run_id: int) -> None:
    db.execute("UPDATE scan_jobs SET state='done', finished_at=?, lease_until=NULL WHERE id=? AND run_id=?",
               (utcnow(), job_id, run_id))


def target_of(job: dict[str, Any]) -> Target:
    """The plan target a job message carries (a ledger target's seeds are read by the worker)."""
    spec = dict(job["spec"])
    spec["seeds"] = tuple(spec["seeds"])
    if spec.get("ledger") is not None:
        spec["ledger"] = LedgerSelection(**{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in spec["ledger"].items()})
    return Target(**spec)


def run_job(job: dict[str, Any], *, lease: float, beat: float, scan_args: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """Claim and run one job (raises Busy); returns the run record, or None if nothing was run."""
    from scheduler.jobs import run_crawl

    t = target_of(job)
    db = runs.connect(job["store"])
    try:
        run_id = claim(db, job, lease)
        if run_id is None:
            return None
        run = run_crawl(db, job["store"], t, run_id, job["channels"], extra=scan_args,
                        beat=lambda: renew(db, job["id"], run_id, lease), beat_every=beat)
        complete(db, job["id"], run_id)
        return run
    finally:
        db.close()


def scan_target(self: Any, job: dict[str, Any]) -> dict[str, Any] | None:
    """The Celery task (bound): one job; a busy job is retried after its holder's lease."""
    conf = self.app.conf
    try:
        run = run_job(job, lease=conf.jianfu_lease, beat=conf.jianfu_beat, scan_args=tuple(conf.jianfu_scan_args))
    except Busy as e:
        raise self.retry(countdown=max(1.0, min(e.wait + 1.0, 30.0))) from None
    except sqlite3.Error as e:  # the database is unreachable: the job must not be dropped
        log.warning("job %s: store unavailable, retrying in 30 s: %s", job["id"], e)
        raise self.retry(countdown=30.0) from None
    if run is not None:
        log.info("job %s: %s run %s %s (%s pages)", job["id"], job["target"], run["id"], run["status"], run["pages"])
    return None
