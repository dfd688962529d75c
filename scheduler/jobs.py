"""The job APScheduler runs: ``scheduler.jobs:run_target`` — one run of one target.

The crawl is a ``jianfu scan ... --target NAME --json`` subprocess in its own process group
(Twisted's reactor cannot restart, and a hung crawl can be killed whole), with the target's
timeout. The plan is re-read at each run, so seed edits apply without rescheduling.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

from scheduler import runs
from scheduler.plans import Plan, PlanError, Target, load_plan, target_seeds

log = logging.getLogger(__name__)


def scan_command(plan: Plan, t: Target) -> list[str]:
    cmd = [sys.executable, "-P", "-m", "jianfu", "scan", *target_seeds(plan, t), "--store", str(plan.store), "--target", t.name,
           "--json", "--quiet", "--depth", str(t.depth), "--max-pages", str(t.max_pages),
           "--concurrency", str(t.concurrency)]
    if t.district:
        cmd += ["--district", t.district]
    if t.render == "browser":
        cmd.append("--render")  # `jianfu scan --render`: every page in Chromium
    return cmd


def run_target(plan: str, target: str, trigger: str = "schedule", **_: Any) -> dict[str, Any] | None:
    """Run ``target`` of the plan file ``plan`` now; returns the run record (None if skipped)."""
    p = load_plan(plan)
    if target not in p.targets:
        log.warning("target %r is no longer in %s: not run", target, p.path)
        return None
    t = p.targets[target]
    db = runs.connect(p.store)
    try:
        try:
            run_id = runs.begin_run(db, target, trigger)
        except runs.AlreadyRunning as e:
            runs.record_skipped(db, target, trigger, str(e))
            log.warning("%s", e)
            return None
        return _run(db, p, t, run_id)
    finally:
        db.close()


def _run(db: Any, p: Plan, t: Target, run_id: int) -> dict[str, Any]:
    status, summary, error, scan_id = "failed", None, None, None
    try:
        cmd = scan_command(p, t)  # a ledger target's seeds are read from the ledger now
    except PlanError as e:
        return runs.finish_run(db, run_id, "failed", None, None, str(e), [])
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    except OSError as e:
        return runs.finish_run(db, run_id, "failed", None, None, f"cannot start the crawl: {e}", [])
    runs.set_child(db, run_id, proc.pid)
    try:
        out, err = proc.communicate(timeout=t.timeout)
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
    return runs.finish_run(db, run_id, status, scan_id, summary, error, p.alerts.channels)
