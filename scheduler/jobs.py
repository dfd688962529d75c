"""The job APScheduler runs: ``scheduler.jobs:run_target`` — one run of one target.

The crawl is a ``jianfu scan ... --target NAME --json`` subprocess in its own process group
(Twisted's reactor cannot restart, and a hung crawl can be killed whole), with the target's
timeout. The plan is re-read at each run, so seed edits apply without rescheduling.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scheduler import runs
from scheduler.plans import Plan, PlanError, Target, load_plan, store_target_seeds

log = logging.getLogger(__name__)


def scan_command(plan: Plan, t: Target, extra: tuple[str, ...] = ()) -> list[str]:
    return command_for(plan.store, t, extra)


def command_for(store: str | Path, t: Target, extra: tuple[str, ...] = ()) -> list[str]:
    """The ``jianfu scan`` of one run of ``t``; a ledger target's seeds are read from the ledger of
    ``store`` now (``PlanError`` when it selects nothing)."""
    cmd = [sys.executable, "-P", "-m", "jianfu", "scan", *store_target_seeds(store, t), "--store", str(store),
           "--target", t.name,
           "--json", "--quiet", "--depth", str(t.depth), "--max-pages", str(t.max_pages),
           "--concurrency", str(t.concurrency)]
    if t.district:
        cmd += ["--district", t.district]
    if t.render == "browser":
        cmd.append("--render")  # `jianfu scan --render`: every page in Chromium
    return cmd + list(extra)


def run_target(plan: str, target: str, trigger: str = "schedule", **_: Any) -> dict[str, Any] | None:
    """Run ``target`` of the plan file ``plan`` now; returns the run record (None if skipped)."""
    p = load_plan(plan)
    if target not in p.targets:
        log.warning("target %r is no longer in %s: not run", target, p.path)
        return None
    t = p.targets[target]
    db = runs.connect(p.store)
    try:
        if p.broker and trigger != "run-now":  # scale-out: a job for the workers, not a crawl here
            from scheduler import queue

            job = queue.enqueue(db, queue.app_for(p.broker), p, t, trigger)
            log.info("%s: job %s queued", target, job["id"])
            return None
        try:
            run_id = runs.begin_run(db, target, trigger)
        except runs.AlreadyRunning as e:
            runs.record_skipped(db, target, trigger, str(e))
            log.warning("%s", e)
            return None
        return _run(db, p, t, run_id)
    finally:
        db.close()


def same_code_env() -> dict[str, str]:
    """The crawl imports the same jianfu code as this process (``-P`` keeps the working directory
    off sys.path; an editable install elsewhere must not win either)."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return os.environ | {"PYTHONPATH": root + (os.pathsep + path if path else "")}


# A queue worker's crawl gets SIGKILL when the worker dies (PR_SET_PDEATHSIG, util-linux's setpriv,
# which then execs the crawl): a killed worker must not leave a crawl running that another redoes.
DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "KILL", "--")


def _run(db: Any, p: Plan, t: Target, run_id: int) -> dict[str, Any]:
    return run_crawl(db, p.store, t, run_id, p.alerts.channels)


def run_crawl(db: Any, store: str | Path, t: Target, run_id: int, channels: list[str], *,
              extra: tuple[str, ...] = (), beat: Callable[[], bool] | None = None,
              beat_every: float = 10.0) -> dict[str, Any]:
    """The crawl of run ``run_id`` as a subprocess, then its outcome recorded. A queue worker
    passes ``beat``, called every ``beat_every`` seconds while the crawl runs to renew its lease
    (False: the lease was lost, the crawl is stopped); its crawl also dies with it."""
    status, summary, error, scan_id = "failed", None, None, None
    try:
        cmd = [*(DIE_WITH_PARENT if beat else ()), *command_for(store, t, extra)]
    except PlanError as e:
        return runs.finish_run(db, run_id, "failed", None, None, str(e), [])
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                start_new_session=True, text=True, env=same_code_env())
    except OSError as e:
        return runs.finish_run(db, run_id, "failed", None, None, f"cannot start the crawl: {e}", [])
    runs.set_child(db, run_id, proc.pid)
    deadline = time.monotonic() + t.timeout
    try:
        while True:
            try:
                wait = deadline - time.monotonic()
                out, err = proc.communicate(timeout=max(0.0, min(wait, beat_every) if beat else wait))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    raise
                if beat and beat() is False:
                    runs.kill_group(proc.pid)
                    proc.communicate()
                    return runs.finish_run(db, run_id, "interrupted", runs.scan_of_run(db, runs.get_run(db, run_id)),
                                           None, "the job's lease was lost (taken over by another worker)", [])
    except subprocess.TimeoutExpired:
        runs.kill_group(proc.pid)
        proc.communicate()
        status, error = "timeout", f"the crawl ran longer than {t.timeout:g} s and was stopped"
    else:
        try:
            summary = json.loads(out[out.index("{"):]) if "{" in out else None
        except ValueError:
            summary = None
        if summary is None:
            tail = " ".join(err.strip().splitlines()[-3:])[-400:]
            error = f"the crawl exited {proc.returncode} without a summary: {tail or 'no output'}"
        elif summary.get("status") == "finished" and summary.get("pages", 0) > 0:
            status = "finished"
        elif summary.get("status") == "finished":
            error = "no page could be fetched (site down?): " + "; ".join(
                f"{f['url']} {f['reason']}" for f in summary.get("failures", [])[:3])
        else:
            status = "interrupted" if summary.get("status") == "interrupted" else "failed"
            error = f"the crawl ended {summary.get('status')}"
    run = runs.get_run(db, run_id)
    scan_id = (summary or {}).get("scan_id") or runs.scan_of_run(db, run)
    return runs.finish_run(db, run_id, status, scan_id, summary, error, channels)
