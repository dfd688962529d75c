"""``jianfu schedule run|list|add|pause|resume|run-now|check|alerts`` and ``jianfu runs``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

PLAN_HELP = "scan plan TOML file (default: $JIANFU_PLAN)"


def _plan_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", default=os.environ.get("JIANFU_PLAN"), help=PLAN_HELP)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("schedule", help="scheduled scans: the service and its jobs",
                       description="Scan plans, the scheduler service and its jobs. See docs/scheduler.md.")
    ss = s.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = ss.add_parser("run", help="start the scheduler service (foreground; SIGTERM stops it)")
    _plan_arg(p)
    p.add_argument("--tick", type=float, help="housekeeping interval in seconds (alerts, plan reload)")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=cmd_run)

    p = ss.add_parser("list", help="targets with their schedule, next run and last run")
    _plan_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = ss.add_parser("check", help="validate the plan file")
    _plan_arg(p)
    p.set_defaults(func=cmd_check)

    p = ss.add_parser("add", help="add a target to the plan file and schedule it")
    _plan_arg(p)
    p.add_argument("name")
    p.add_argument("--seed", action="append", required=True, help="URL or 机构名=URL (repeatable)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--cron", help="five-field cron expression, e.g. '0 3 * * *'")
    g.add_argument("--every", help="interval, e.g. 30m, 6h, 1d")
    p.add_argument("--timezone", help="time zone of the cron expression (default: the plan's, Asia/Shanghai)")
    p.add_argument("--render", choices=["static", "browser"], default="static")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--max-pages", type=int, default=500)
    p.add_argument("--district")
    p.add_argument("--timeout", help="longest a crawl may run, e.g. 2h")
    p.set_defaults(func=cmd_add)

    for name, helptext in (("pause", "pause a target's job (kept in the job store)"),
                           ("resume", "resume a paused target's job")):
        p = ss.add_parser(name, help=helptext)
        _plan_arg(p)
        p.add_argument("name")
        p.set_defaults(func=cmd_pause_resume)

    p = ss.add_parser("run-now", help="run a target now in the foreground (never while it is running)")
    _plan_arg(p)
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-alerts", action="store_true", help="queue alerts but do not deliver them now")
    p.set_defaults(func=cmd_run_now)

    p = ss.add_parser("alerts", help="the alert outbox: what was sent, what is retrying, what failed")
    _plan_arg(p)
    p.add_argument("--deliver", action="store_true", help="deliver due alerts now")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_alerts)

    r = sub.add_parser("runs", help="run history of scheduled scans")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--plan", default=os.environ.get("JIANFU_PLAN"), help=PLAN_HELP)
    g.add_argument("--store", help="store directory (instead of --plan)")
    r.add_argument("--target")
    r.add_argument("--limit", type=int, default=50)
    r.add_argument("--json", action="store_true", help="one JSON object per line")
    r.set_defaults(func=cmd_runs)


def _load(args: argparse.Namespace):
    from jianfu.cli import CommandError
    from scheduler.plans import PlanError, load_plan

    if not args.plan:
        raise CommandError("no plan file: pass --plan FILE or set JIANFU_PLAN")
    try:
        return load_plan(args.plan)
    except PlanError as e:
        raise CommandError(str(e)) from None


def _target(plan, name: str):
    from jianfu.cli import CommandError
    from scheduler.plans import PlanError

    try:
        return plan.target(name)
    except PlanError as e:
        raise CommandError(str(e)) from None


def _local(dt: datetime | None, tz: str) -> str:
    return dt.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z") if dt else "paused"


def _utc_to_local(stamp: str | None, tz: str) -> str:
    if not stamp:
        return ""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M:%S")


def cmd_check(args: argparse.Namespace) -> int:
    plan = _load(args)
    print(f"{plan.path}: OK — {len(plan.targets)} target(s), store {plan.store}, "
          f"alerts: {', '.join(plan.alerts.channels) or 'none'}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from scheduler.service import Service

    plan = _load(args)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not args.verbose:
        logging.getLogger("scheduler").setLevel(logging.INFO)
    print(f"jianfu scheduler: {len(plan.targets)} target(s) from {plan.path}, pid {os.getpid()}", flush=True)
    Service(str(plan.path), tick=args.tick).serve_forever()
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from scheduler import runs
    from scheduler.service import control

    plan = _load(args)
    db = runs.connect(plan.store)
    try:
        last = runs.last_runs(db)
        with control(plan) as sched:
            jobs = {j.id: j for j in sched.get_jobs(jobstore="default")}
        rows = []
        for t in plan.targets.values():
            job = jobs.get(t.job_id)
            lr = last.get(t.name) or {}
            rows.append({"target": t.name, "schedule": t.describe(), "timezone": t.timezone,
                         "state": "not scheduled" if job is None else "paused" if job.next_run_time is None
                         else "scheduled",
                         "next_run": job.next_run_time.isoformat() if job and job.next_run_time else None,
                         "last_run": lr.get("id"), "last_status": lr.get("status"),
                         "last_started": lr.get("started_at"), "seeds": list(t.seeds)})
    finally:
        db.close()
    if args.json:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
        return 0
    print(f"{'target':<16} {'schedule':<22} {'state':<13} {'next run':<26} last run")
    for r, t in zip(rows, plan.targets.values(), strict=True):
        nxt = _local(datetime.fromisoformat(r["next_run"]), t.timezone) if r["next_run"] else ""
        lastrun = f"#{r['last_run']} {r['last_status']} {_utc_to_local(r['last_started'], t.timezone)}" \
            if r["last_run"] else "never"
        print(f"{r['target']:<16} {r['schedule']:<22} {r['state']:<13} {nxt:<26} {lastrun}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from jianfu.cli import CommandError
    from scheduler.plans import PlanError, parse_plan, target_toml
    from scheduler.service import control, sync_jobs

    if not args.plan:
        raise CommandError("no plan file: pass --plan FILE or set JIANFU_PLAN")
    path = Path(args.plan).resolve()
    text = path.read_text(encoding="utf-8") if path.exists() else 'store = "store"\n'
    try:
        plan = parse_plan(text, path)
        if args.name in plan.targets:
            raise PlanError(f"target {args.name!r} already exists in {path.name}")
        # build the new table through the validator: same errors as a hand-written plan
        from scheduler.plans import Target

        draft = Target(name=args.name, seeds=tuple(args.seed), cron=args.cron,
                       every=1.0 if args.every else None, timezone=args.timezone or plan.timezone,
                       render=args.render, depth=args.depth, max_pages=args.max_pages, district=args.district)
        snippet = target_toml(draft)
        if args.every:
            snippet = snippet.replace('every = "1s"', f"every = {json.dumps(args.every)}")
        if args.timeout:
            snippet += f"timeout = {json.dumps(args.timeout)}\n"
        new_text = text.rstrip("\n") + "\n" + snippet
        plan = parse_plan(new_text, path)
    except PlanError as e:
        raise CommandError(str(e)) from None
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(new_text, encoding="utf-8")
    tmp.replace(path)
    with control(plan) as sched:
        sync_jobs(sched, plan)
        job = sched.get_job(plan.targets[args.name].job_id, jobstore="default")
        nxt = _local(job.next_run_time, plan.targets[args.name].timezone) if job else "?"
    print(f"added {args.name} ({plan.targets[args.name].describe()}) to {path.name}; next run {nxt}")
    return 0


def cmd_pause_resume(args: argparse.Namespace) -> int:
    from scheduler.service import control, sync_jobs

    plan = _load(args)
    t = _target(plan, args.name)
    with control(plan) as sched:
        if sched.get_job(t.job_id, jobstore="default") is None:
            sync_jobs(sched, plan)
        if args.action == "pause":
            sched.pause_job(t.job_id, jobstore="default")
            print(f"paused {t.name}")
        else:
            job = sched.resume_job(t.job_id, jobstore="default")
            print(f"resumed {t.name}; next run {_local(job.next_run_time if job else None, t.timezone)}")
    return 0


def cmd_run_now(args: argparse.Namespace) -> int:
    from jianfu.cli import CommandError
    from scheduler import alerts, jobs, runs

    plan = _load(args)
    t = _target(plan, args.name)
    db = runs.connect(plan.store)
    try:
        if (r := runs.running_run(db, t.name)) and runs.pid_alive(r["pid"]):
            raise CommandError(str(runs.AlreadyRunning(t.name, r)))
    finally:
        db.close()
    run = jobs.run_target(str(plan.path), t.name, trigger="run-now")
    if run is None:
        raise CommandError(f"target {t.name!r} is already running")
    if not args.no_alerts and plan.alerts.channels:
        db = runs.connect(plan.store)
        try:
            alerts.drain(db, plan.alerts)
        finally:
            db.close()
    if args.json:
        print(json.dumps(run, ensure_ascii=False))
    else:
        _print_runs([run], plan.timezone)
    return 0 if run["status"] == "finished" else 1


def cmd_alerts(args: argparse.Namespace) -> int:
    from scheduler import alerts, runs

    plan = _load(args)
    db = runs.connect(plan.store)
    try:
        if args.deliver:
            print(f"delivered: {alerts.drain(db, plan.alerts)}")
        rows = alerts.outbox(db)
    finally:
        db.close()
    for r in rows:
        r.pop("finding_ids", None)
        if args.json:
            print(json.dumps(r, ensure_ascii=False))
        else:
            print(f"#{r['id']:<4} run {r['run_id']:<4} {r['target']:<14} {r['channel']:<8} {r['status']:<9} "
                  f"findings {r['findings']:<4} attempts {r['attempts']}  {r['last_error'] or ''}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from jianfu.cli import CommandError
    from scheduler import runs
    from store import Store
    from store.backends import store_exists

    if args.store:
        store, tz = args.store, "Asia/Shanghai"
        if not store_exists(store):
            raise CommandError(f"no jianfu store at {store}")
    else:
        plan = _load(args)
        store, tz = plan.store, plan.timezone
    with Store(store) as opened:  # a scan killed mid-way is closed as interrupted (its process is gone)
        for abandoned in opened.close_abandoned_scans():
            print(f"jianfu runs: 扫描 {abandoned} 的进程已不在（被终止或崩溃），已记为中断 (interrupted)",
                  file=sys.stderr)
    db = runs.connect(store)
    try:
        rows = runs.list_runs(db, args.target, args.limit)
    finally:
        db.close()
    if args.json:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
    else:
        _print_runs(rows, tz)
    return 0


def _print_runs(rows: list[dict], tz: str) -> None:
    print(f"{'run':>4} {'target':<14} {'trigger':<8} {'status':<11} {'started':<14} {'secs':>6} "
          f"{'pages':>5} {'imgs':>4} {'errs':>4} {'new':>4} {'back':>4} {'still':>5} {'gone':>4}  error")
    for r in rows:
        secs = ""
        if r["finished_at"]:
            a = datetime.fromisoformat(r["started_at"].replace("Z", "+00:00"))
            b = datetime.fromisoformat(r["finished_at"].replace("Z", "+00:00"))
            secs = f"{(b - a).total_seconds():.1f}"
        print(f"{r['id']:>4} {r['target']:<14} {r['trigger']:<8} {r['status']:<11} "
              f"{_utc_to_local(r['started_at'], tz):<14} {secs:>6} {r['pages']:>5} {r['images']:>4} "
              f"{r['errors']:>4} {r['new']:>4} {r['returned']:>4} {r['present']:>5} {r['gone']:>4}  "
              f"{(r['error'] or '')[:80]}")
