"""Alerts: a durable outbox, delivered by e-mail (SMTP) and webhook (JSON POST).

A finished run queues one outbox row per configured channel, in the same transaction that
records the run, listing the findings that are new or came back — never dismissed ones, nor any
finding of a dismissed case (store/cases.py). The service drains the outbox on its housekeeping
tick, outside the scan path: a dead SMTP server or webhook costs a short timeout there, never a scan. A failed delivery is recorded (``last_error``
and a row in ``alert_attempts``) and retried with exponential backoff until ``max_attempts``,
then marked ``failed``. A lease on each row keeps two drainers (the service and a
``run-now``) from sending the same alert twice. Findings dismissed (or whose case was dismissed)
after the alert was queued are dropped at delivery time; an alert left with none is ``cancelled``.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import sqlite3
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from scheduler.plans import Alerts, EmailChannel, WebhookChannel
from store.db import utcnow

log = logging.getLogger(__name__)

DDL = """
CREATE TABLE IF NOT EXISTS alert_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL,
  target TEXT NOT NULL,
  scan_id TEXT NOT NULL,
  channel TEXT NOT NULL,                     -- email | webhook
  finding_ids TEXT NOT NULL,                 -- JSON {finding id: "new" | "returned"}
  status TEXT NOT NULL DEFAULT 'pending',    -- pending | sent | failed | cancelled
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  lease_until TEXT,
  last_error TEXT,
  created_at TEXT NOT NULL,
  sent_at TEXT,
  UNIQUE (run_id, channel)
);
CREATE INDEX IF NOT EXISTS alert_outbox_due ON alert_outbox(status, next_attempt_at);
CREATE TABLE IF NOT EXISTS alert_attempts (
  outbox_id INTEGER NOT NULL,
  at TEXT NOT NULL,
  ok INTEGER NOT NULL,
  error TEXT
);
"""
LEASE = timedelta(minutes=5)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def enqueue(db: sqlite3.Connection, run_id: int, target: str, scan_id: str, finding_ids: list[str],
            kinds: dict[str, str], channels: list[str]) -> int:
    """Queue alerts for ``finding_ids`` minus dismissed ones (inside the caller's transaction);
    returns how many findings will be alerted."""
    if not finding_ids:
        return 0
    marks = ",".join("?" * len(finding_ids))
    dismissed = {r[0] for r in db.execute(
        f"""SELECT f.id FROM findings f LEFT JOIN cases c ON c.id=f.case_id
            WHERE (f.status='dismissed' OR c.status='dismissed') AND f.id IN ({marks})""", finding_ids)}
    ids = {f: kinds[f] for f in finding_ids if f not in dismissed}
    if not ids:
        return 0
    now = utcnow()
    for channel in channels:
        db.execute(
            """INSERT INTO alert_outbox(run_id, target, scan_id, channel, finding_ids, next_attempt_at,
                 created_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT(run_id, channel) DO NOTHING""",
            (run_id, target, scan_id, channel, json.dumps(ids), now, now))
    return len(ids)


def payload(db: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    kinds: dict[str, str] = json.loads(row["finding_ids"])
    ids = list(kinds)
    findings = []
    if ids:
        rows = db.execute(
            f"""SELECT f.id, f.category, f.rule_id, f.text, f.severity, f.basis, f.context, f.url, f.source,
                  f.image_url, f.institution, f.district, f.status, f.first_seen_at, f.last_seen_at, f.case_id
                FROM findings f LEFT JOIN cases c ON c.id=f.case_id
                WHERE f.id IN ({','.join('?' * len(ids))}) AND f.status != 'dismissed'
                  AND COALESCE(c.status, '') != 'dismissed'
                ORDER BY f.url, f.source, f.start""", ids).fetchall()
        findings = [dict(r) | {"change": kinds[r["id"]]} for r in rows]
    cases: dict[str, dict[str, Any]] = {}
    for f in findings:   # the cases they belong to (store/cases.py): what an investigator opens
        c = cases.setdefault(f["case_id"] or f["id"], {"id": f["case_id"], "institution": f["institution"],
                                                        "source": f["source"], "url": f["url"],
                                                        "image_url": f["image_url"], "findings": []})
        c["findings"].append(f["id"])
    return {"event": "jianfu.findings", "target": row["target"], "run_id": row["run_id"],
            "scan_id": row["scan_id"], "new": sum(f["change"] == "new" for f in findings),
            "returned": sum(f["change"] == "returned" for f in findings), "findings": findings,
            "cases": list(cases.values())}


class AlertConfigError(RuntimeError):
    """The plan's channel cannot be used as configured (recorded as a failed delivery)."""


def smtp_password(ch: EmailChannel) -> str | None:
    """The SMTP password from the environment variable ``password_env`` names; None without login."""
    if not ch.username:
        return None
    if not ch.password_env:  # refused when the plan loads; kept for channels built by hand
        raise AlertConfigError("alerts.email: username is set but password_env is not")
    password = os.environ.get(ch.password_env)
    if not password:
        raise AlertConfigError(f"alerts.email.password_env: environment variable {ch.password_env} "
                               "is not set (or empty) in the scheduler's environment")
    return password


def subject(data: dict[str, Any]) -> str:
    """``[jianfu] qiming: 3 new, 1 returned finding(s) — 启明星学堂``"""
    counts = [f"{data[k]} {k}" for k in ("new", "returned") if data.get(k)] or [f"{len(data['findings'])}"]
    inst = sorted({f["institution"] or "" for f in data["findings"]} - {""})
    return f"[jianfu] {data['target']}: {', '.join(counts)} finding(s)" + (f" — {', '.join(inst)}" if inst else "")


def send_email(ch: EmailChannel, data: dict[str, Any]) -> None:
    password = smtp_password(ch)  # before connecting: a missing password is a clear failure
    msg = EmailMessage()
    msg["Subject"] = subject(data)
    msg["From"] = ch.sender
    msg["To"] = ", ".join(ch.to)
    lines = [f"Target {data['target']}, run {data['run_id']}, scan {data['scan_id']}: "
             f"{data['new']} new, {data['returned']} back after being gone.", ""]
    for f in data["findings"]:
        where = f["url"] + (f" (image {f['image_url']})" if f["source"] == "image" else "")
        lines += [f"[{f['change']}] {f['category']} ({f['severity']}) {f['institution'] or ''}",
                  f"  「{f['text']}」 … {' '.join((f['context'] or '').split())}",
                  f"  {where}", f"  id {f['id']} · first seen {f['first_seen_at']} · {f['basis']}", ""]
    msg.set_content("\n".join(lines))
    msg.add_attachment(json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8"), maintype="application",
                       subtype="json", filename="findings.json")
    smtp_cls = smtplib.SMTP_SSL if ch.ssl else smtplib.SMTP
    with smtp_cls(ch.host, ch.port, timeout=ch.timeout) as smtp:
        if ch.starttls:
            smtp.starttls()
        if ch.username and password is not None:
            smtp.login(ch.username, password)
        smtp.send_message(msg)


def send_webhook(ch: WebhookChannel, data: dict[str, Any]) -> None:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(ch.url, data=body, method="POST",
                                 headers={"Content-Type": "application/json; charset=utf-8",
                                          "User-Agent": "jianfu-alerts/1", **dict(ch.headers)})
    with urllib.request.urlopen(req, timeout=ch.timeout) as resp:  # noqa: S310 - the plan's URL
        if not 200 <= resp.status < 300:
            raise RuntimeError(f"HTTP {resp.status}")


def deliver(channel: str, cfg: Alerts, data: dict[str, Any]) -> None:
    if channel == "email" and cfg.email:
        send_email(cfg.email, data)
    elif channel == "webhook" and cfg.webhook:
        send_webhook(cfg.webhook, data)
    else:
        raise RuntimeError(f"channel {channel!r} is not configured in the plan")


def backoff(cfg: Alerts, attempts: int) -> float:
    return min(cfg.backoff * 2 ** max(0, attempts - 1), cfg.backoff_max)


def drain(db: sqlite3.Connection, cfg: Alerts, now: datetime | None = None, limit: int = 50) -> dict[str, int]:
    """Deliver due alerts; returns counts of sent / retry / failed / cancelled."""
    now = now or datetime.now(UTC)
    stamp = iso(now)
    counts = {"sent": 0, "retry": 0, "failed": 0, "cancelled": 0}
    due = db.execute("""SELECT id FROM alert_outbox WHERE status='pending' AND next_attempt_at<=?
                        AND (lease_until IS NULL OR lease_until<?) ORDER BY id LIMIT ?""",
                     (stamp, stamp, limit)).fetchall()
    for (oid,) in due:
        claimed = db.execute("""UPDATE alert_outbox SET lease_until=? WHERE id=? AND status='pending'
                                AND (lease_until IS NULL OR lease_until<?)""",
                             (iso(now + LEASE), oid, stamp)).rowcount
        if not claimed:
            continue  # another drainer has it
        row = db.execute("SELECT * FROM alert_outbox WHERE id=?", (oid,)).fetchone()
        data = payload(db, row)
        if not data["findings"]:
            db.execute("UPDATE alert_outbox SET status='cancelled', lease_until=NULL, "
                       "last_error='every finding was dismissed before delivery' WHERE id=?", (oid,))
            counts["cancelled"] += 1
            continue
        try:
            deliver(row["channel"], cfg, data)
        except Exception as e:  # any delivery failure: record, back off, retry later
            err = f"{type(e).__name__}: {e}"[:500]
            attempts = row["attempts"] + 1
            final = attempts >= cfg.max_attempts
            db.execute("""UPDATE alert_outbox SET attempts=?, last_error=?, lease_until=NULL, status=?,
                          next_attempt_at=? WHERE id=?""",
                       (attempts, err, "failed" if final else "pending",
                        iso(now + timedelta(seconds=backoff(cfg, attempts))), oid))
            db.execute("INSERT INTO alert_attempts(outbox_id, at, ok, error) VALUES (?,?,0,?)", (oid, stamp, err))
            counts["failed" if final else "retry"] += 1
            log.warning("alert %s (%s) failed (attempt %s): %s", oid, row["channel"], attempts, err)
            continue
        db.execute("""UPDATE alert_outbox SET status='sent', attempts=attempts+1, sent_at=?, lease_until=NULL,
                      last_error=NULL WHERE id=?""", (iso(datetime.now(UTC)), oid))
        db.execute("INSERT INTO alert_attempts(outbox_id, at, ok) VALUES (?,?,1)", (oid, stamp))
        counts["sent"] += 1
    return counts


def outbox(db: sqlite3.Connection, limit: int = 50) -> list[dict[str, Any]]:
    rows = db.execute("SELECT * FROM alert_outbox ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [dict(r) | {"findings": len(json.loads(r["finding_ids"]))} for r in reversed(rows)]
