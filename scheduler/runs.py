"""Run history: one row per run of a target, and the per-target baseline that says what is new.

Tables (in the store's SQLite file, created here):

- ``runs``: start, end, outcome (running | finished | failed | timeout | interrupted | skipped),
  scan id, pages / images / errors, findings new / returned / still present / gone, the service
  and crawl process ids. A partial unique index makes "never two runs of one target at once" a
  database fact, across processes (the service and ``jianfu schedule run-now``).
- ``watch``: for each (target, finding) whether it is currently ``present`` or ``gone``. A run
  that finishes moves findings between the two: seen and unknown → *new*; seen and ``gone`` →
  *returned*; ``present`` and not seen on a page this scan did capture (or that now answers
  404/410) → *gone*. Pages are known by their canonical URL (``store.db.canonical_page_url``), so
  a page reached at ``/index.html`` this time counts for ``/``. A finding on a page the scan could
  not fetch or render (an error, a timeout, a page budget that ran out) stays as it was, so a flaky
  page does not make its findings "gone" and then "new" again; likewise a finding read from an
  image counts as looked at only if this scan read that image on that page (or the page no longer
  shows it): an image timeout or OCR failure changes nothing. Only finished runs move the
  baseline: an interrupted or failed run changes nothing, and its re-run alerts exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from store import backends
from store.db import Store, canonical_page_url, utcnow

DDL = """
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  target TEXT NOT NULL,
  trigger TEXT NOT NULL,                     -- schedule | run-now | rerun
  status TEXT NOT NULL DEFAULT 'running',    -- running | finished | failed | timeout | interrupted | skipped
  started_at TEXT NOT NULL,
  finished_at TEXT,
  scan_id TEXT,
  pid INTEGER,                               -- the process that started the run (service or CLI)
  child_pid INTEGER,                         -- the `jianfu scan` subprocess
  pages INTEGER NOT NULL DEFAULT 0,
  images INTEGER NOT NULL DEFAULT 0,
  errors INTEGER NOT NULL DEFAULT 0,
  findings INTEGER NOT NULL DEFAULT 0,       -- seen in this run's scan
  new INTEGER NOT NULL DEFAULT 0,
  returned INTEGER NOT NULL DEFAULT 0,       -- gone before, back now
  present INTEGER NOT NULL DEFAULT 0,        -- still present
  gone INTEGER NOT NULL DEFAULT 0,
  alerts INTEGER NOT NULL DEFAULT 0,         -- findings alerted (new + returned, not dismissed)
  error TEXT
);
CREATE INDEX IF NOT EXISTS runs_target ON runs(target, id);
CREATE UNIQUE INDEX IF NOT EXISTS runs_one_running ON runs(target) WHERE status='running';

CREATE TABLE IF NOT EXISTS watch (
  target TEXT NOT NULL,
  finding_id TEXT NOT NULL,
  state TEXT NOT NULL,                       -- present | gone
  first_run_id INTEGER NOT NULL,
  changed_run_id INTEGER NOT NULL,
  PRIMARY KEY (target, finding_id)
);
"""

TERMINAL = ("finished", "failed", "timeout", "interrupted", "skipped")


class AlreadyRunning(RuntimeError):
    def __init__(self, target: str, run: dict[str, Any]) -> None:
        super().__init__(f"target {target!r} is already running (run {run['id']}, started {run['started_at']}, "
                         f"pid {run['pid']})")
        self.run = run


def connect(store_dir: str | Path) -> sqlite3.Connection:
    """The store's database with the scheduler's tables (store schema created if new); an SQLite
    connection without implicit transactions, or a PostgreSQL one (store/backends.py)."""
    from scheduler.alerts import DDL as ALERTS_DDL

    Store(store_dir).close()  # creates/migrates the store schema
    db = backends.connect(store_dir, autocommit=True)
    db.execute("PRAGMA busy_timeout=30000")
    if isinstance(db, backends.PostgresConnection):  # once per version: workers connect for every job
        ddl = DDL + ALERTS_DDL
        backends.apply_schema_once(db, "scheduler", hashlib.sha256(ddl.encode()).hexdigest(),
                                   lambda: db.executescript(ddl))
    else:
        db.executescript(DDL + ALERTS_DDL)
    return db


class _Tx:
    """``with _Tx(db):`` — BEGIN IMMEDIATE … COMMIT/ROLLBACK (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def tx(db: sqlite3.Connection) -> _Tx:
    return _Tx(db)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def begin_run(db: sqlite3.Connection, target: str, trigger: str) -> int:
    """Record a run as running; raises AlreadyRunning if this target has one (in any process)."""
    try:
        with tx(db):
            cur = db.execute("INSERT INTO runs(target, trigger, started_at, pid) VALUES (?,?,?,?)",
                             (target, trigger, utcnow(), os.getpid()))
            return int(cur.lastrowid or 0)
    except sqlite3.IntegrityError:
        run = running_run(db, target)
        if run and not pid_alive(run["pid"]):  # left by a crashed process: recover, then go
            recover(db, target)
            return begin_run(db, target, trigger)
        raise AlreadyRunning(target, run or {"id": "?", "started_at": "?", "pid": "?"}) from None


def record_skipped(db: sqlite3.Connection, target: str, trigger: str, reason: str) -> None:
    now = utcnow()
    db.execute("INSERT INTO runs(target, trigger, status, started_at, finished_at, pid, error) "
               "VALUES (?,?,?,?,?,?,?)", (target, trigger, "skipped", now, now, os.getpid(), reason))


def running_run(db: sqlite3.Connection, target: str) -> dict[str, Any] | None:
    row = db.execute("SELECT * FROM runs WHERE target=? AND status='running'", (target,)).fetchone()
    return dict(row) if row else None


def set_child(db: sqlite3.Connection, run_id: int, child_pid: int) -> None:
    db.execute("UPDATE runs SET child_pid=? WHERE id=?", (child_pid, run_id))


def scan_of_run(db: sqlite3.Connection, run: dict[str, Any]) -> str | None:
    """The scan the run's subprocess began (its scans row carries the target name)."""
    row = db.execute("SELECT id FROM scans WHERE target=? AND started_at>=? ORDER BY started_at LIMIT 1",
                     (run["target"], run["started_at"])).fetchone()
    return row[0] if row else None


def kill_group(pid: int | None, grace: float = 5.0) -> None:
    """SIGTERM the crawl's process group, SIGKILL it after ``grace`` seconds."""
    if not pid:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.05)


def recover(db: sqlite3.Connection, target: str | None = None) -> list[str]:
    """Runs left ``running`` by a process that no longer exists (SIGKILL, power cut): stop their
    orphaned crawl, mark run and scan ``interrupted``. Returns the targets to run again."""
    sql = "SELECT * FROM runs WHERE status='running'" + (" AND target=?" if target else "")
    targets = []
    for row in db.execute(sql, (target,) if target else ()).fetchall():
        run = dict(row)
        if pid_alive(run["pid"]) and run["pid"] != os.getpid():
            continue  # a live service or run-now owns it
        if db.execute("SELECT 1 FROM scan_jobs WHERE run_id=? AND state='running'", (run["id"],)).fetchone():
            continue  # a queue worker's run (maybe on another machine): its job's lease decides
        if run["child_pid"] and pid_alive(run["child_pid"]) and _is_scan(run["child_pid"]):
            kill_group(run["child_pid"])
        mark_interrupted(db, run, "the scheduler stopped during the run (killed or crashed)")
        targets.append(run["target"])
    return targets


def _is_scan(pid: int) -> bool:
    try:
        return b"scan" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def store_of(db: sqlite3.Connection) -> Store:
    """The Store whose database ``db`` is connected to (a second connection to the same file)."""
    if isinstance(db, backends.PostgresConnection):
        return Store(db.location)
    path = next(r[2] for r in db.execute("PRAGMA database_list") if r[1] == "main")
    return Store(Path(path).parent)


def mark_interrupted(db: sqlite3.Connection, run: dict[str, Any], why: str, status: str = "interrupted") -> None:
    """Close a run that will not finish (its scan too, if still running, counted by the store)."""
    scan_id = run.get("scan_id") or scan_of_run(db, run)
    s: dict[str, Any] = {}
    if scan_id:  # the scan first: a crash between the two leaves a running run, recovered again
        with store_of(db) as store:
            store.finish_scan(scan_id, "interrupted", if_status="running")
            s = store.scan(scan_id) or {}
    db.execute("""UPDATE runs SET status=?, finished_at=?, scan_id=?, error=?, pages=?, images=?, errors=?
                  WHERE id=? AND status='running'""",
               (status, utcnow(), scan_id, why, s.get("pages", 0), s.get("images", 0), s.get("errors", 0),
                run["id"]))


def finish_run(db: sqlite3.Connection, run_id: int, status: str, scan_id: str | None,
               summary: dict[str, Any] | None, error: str | None, channels: list[str]) -> dict[str, Any]:
    """Record the run's outcome; for a finished run move the baseline and queue alerts for what
    is new or back, all in one transaction."""
    from scheduler.alerts import enqueue

    run = dict(db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone())
    if run["status"] != "running":  # already marked interrupted by a stop or a recovery
        return run
    s = summary or {}
    if status != "finished" and scan_id:  # the scan does not count: close it, counted by the store
        with store_of(db) as store:
            closed = store.finish_scan(scan_id, "interrupted" if status in ("timeout", "interrupted") else "failed",
                                       if_status=("running", "finished"))
        s = {k: closed.get(k) or 0 for k in ("pages", "images", "errors")} | s
    with tx(db):
        counts = {"new": 0, "returned": 0, "present": 0, "gone": 0, "findings": 0, "alerts": 0}
        if status == "finished" and scan_id:
            diff = _move_baseline(db, run["target"], run_id, scan_id)
            counts = {k: len(v) for k, v in diff.items()}
            alert_ids = diff["new"] + diff["returned"]
            counts["alerts"] = enqueue(db, run_id, run["target"], scan_id, alert_ids,
                                       {f: ("returned" if f in diff["returned"] else "new") for f in alert_ids},
                                       channels)
            counts["findings"] = db.execute("SELECT COUNT(*) FROM sightings WHERE scan_id=?",
                                            (scan_id,)).fetchone()[0]
        db.execute(
            """UPDATE runs SET status=?, finished_at=?, scan_id=?, pages=?, images=?, errors=?, findings=?,
                 new=?, returned=?, present=?, gone=?, alerts=?, error=? WHERE id=?""",
            (status, utcnow(), scan_id, s.get("pages", 0), s.get("images", 0), s.get("errors", 0),
             counts["findings"], counts["new"], counts["returned"], counts["present"], counts["gone"],
             counts["alerts"], error, run_id))
    return get_run(db, run_id)


def _move_baseline(db: sqlite3.Connection, target: str, run_id: int, scan_id: str) -> dict[str, list[str]]:
    seen = {r[0] for r in db.execute("SELECT finding_id FROM sightings WHERE scan_id=?", (scan_id,))}
    state = dict(db.execute("SELECT finding_id, state FROM watch WHERE target=?", (target,)).fetchall())
    captured = {r[0] for r in db.execute("SELECT url FROM pages WHERE scan_id=?", (scan_id,))}
    captured |= {canonical_page_url(r[0]) for r in db.execute(  # pages are known by their canonical URL
        "SELECT url FROM fetches WHERE scan_id=? AND status IN (404, 410)", (scan_id,))}
    out: dict[str, list[str]] = {"new": [], "returned": [], "present": [], "gone": []}
    for fid in sorted(seen):
        was = state.get(fid)
        out["present" if was == "present" else "returned" if was == "gone" else "new"].append(fid)
    absent = [f for f, st in state.items() if st == "present" and f not in seen]
    if absent:
        where = {r[0]: (r[1], r[2], r[3]) for r in db.execute(
            f"SELECT id, url, source, image_url FROM findings WHERE id IN ({','.join('?' * len(absent))})", absent)}
        images = _image_outcomes(db, scan_id)
        out["gone"] = sorted(f for f in absent if f in where and _captured(*where[f], captured, images))
    db.executemany("INSERT INTO watch(target, finding_id, state, first_run_id, changed_run_id) VALUES (?,?,?,?,?)",
                   [(target, f, "present", run_id, run_id) for f in out["new"]])
    db.executemany("UPDATE watch SET state='present', changed_run_id=? WHERE target=? AND finding_id=?",
                   [(run_id, target, f) for f in out["returned"]])
    db.executemany("UPDATE watch SET state='gone', changed_run_id=? WHERE target=? AND finding_id=?",
                   [(run_id, target, f) for f in out["gone"]])
    return out


def _image_outcomes(db: sqlite3.Connection, scan_id: str) -> dict[tuple[str, str], bool]:
    """(page URL, image URL) → whether this scan read that image on that page (True), or showed it
    but could not fetch or read it (False: a timeout, an OCR failure, never fetched)."""
    out = {(r[0], r[1]): bool(r[2]) for r in db.execute(
        "SELECT page_url, image_url, sha256 IS NOT NULL AND error IS NULL FROM page_images WHERE scan_id=?",
        (scan_id,))}
    removed = {r[0] for r in db.execute(
        "SELECT url FROM fetches WHERE scan_id=? AND status IN (404, 410)", (scan_id,))}
    return {k: ok or k[1] in removed for k, ok in out.items()}


def _captured(url: str, source: str, image_url: str | None, pages: set[str],
              images: dict[tuple[str, str], bool]) -> bool:
    """Did this scan look at where the finding was? A text finding: its page was captured (or is
    404/410 now). An image finding: its page was captured and either no longer shows the image
    or the image was read (or answers 404/410) — an image that failed this time proves nothing."""
    if url not in pages:
        return False
    if source != "image" or not image_url:
        return True
    return images.get((url, image_url), True)


def get_run(db: sqlite3.Connection, run_id: int) -> dict[str, Any]:
    return dict(db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone())


def list_runs(db: sqlite3.Connection, target: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    sql = "SELECT * FROM runs" + (" WHERE target=?" if target else "") + " ORDER BY id DESC LIMIT ?"
    rows = db.execute(sql, (target, limit) if target else (limit,)).fetchall()
    return [dict(r) for r in reversed(rows)]


def last_runs(db: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    rows = db.execute("SELECT r.* FROM runs r JOIN (SELECT MAX(id) id FROM runs WHERE status!='skipped' "
                      "GROUP BY target) m ON m.id=r.id").fetchall()
    return {r["target"]: dict(r) for r in rows}


def as_json(run: dict[str, Any]) -> str:
    return json.dumps(run, ensure_ascii=False)
