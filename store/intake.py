"""SQL of tips (举报) and submissions checked now (``intake/``): tables ``tips``, ``tip_cases`` and
``submissions`` (store/schema.sql). Mixed into :class:`store.db.Store`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

TIP_CHANNELS = ("phone", "mail", "online_form", "forwarded", "visit", "other")
TIP_OUTCOMES = ("open", "case_opened", "no_violation", "referred", "closed")
_TIP_FIELDS = ("received_at", "channel", "forwarded_by", "contact", "institution", "district", "text", "urls",
               "outcome", "outcome_note", "recorded_by")
_SUBMISSION_FIELDS = ("received_at", "kind", "name", "url", "sha256", "bytes", "media_type", "submitted_by",
                      "institution", "district", "tip_id", "scan_id", "page_url", "status", "reason", "findings",
                      "details")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _tip_row(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["urls"] = json.loads(d.get("urls") or "[]")
    return d


def _submission_row(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["details"] = json.loads(d.get("details") or "{}")
    return d


class IntakeTables:
    """Tips and submissions. Expects ``self.db`` (sqlite3 connection, row factory Row)."""

    db: Any

    # -- tips ----------------------------------------------------------------------------------
    def add_tip(self, *, channel: str, text: str = "", urls: list[str] | None = None,
                received_at: str | None = None, **fields: Any) -> str:
        if channel not in TIP_CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(TIP_CHANNELS)}, not {channel!r}")
        unknown = set(fields) - set(_TIP_FIELDS)
        if unknown:
            raise ValueError(f"unknown tip fields: {sorted(unknown)}")
        now = _now()
        tip_id = f"JB-{datetime.now(UTC):%Y%m%d}-{uuid.uuid4().hex[:6]}"
        row = {"received_at": received_at or now, "channel": channel, "text": text,
               "urls": json.dumps(list(urls or []), ensure_ascii=False), **fields}
        cols = ["id", *row, "recorded_at", "updated_at"]
        with self.db:
            self.db.execute(f"INSERT INTO tips({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [tip_id, *row.values(), now, now])
        return tip_id

    def tip(self, tip_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM tips WHERE id=?", (tip_id,)).fetchone()
        return _tip_row(row) if row else None

    def tips(self, *, outcome: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        sql, args = "SELECT t.*, (SELECT COUNT(*) FROM tip_cases c WHERE c.tip_id=t.id) AS cases FROM tips t", []
        if outcome:
            sql, args = sql + " WHERE t.outcome=?", [outcome]
        return [_tip_row(r) for r in self.db.execute(sql + " ORDER BY t.received_at DESC, t.id LIMIT ?",
                                                      [*args, limit])]

    def set_tip_outcome(self, tip_id: str, outcome: str, note: str | None = None) -> None:
        if outcome not in TIP_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(TIP_OUTCOMES)}, not {outcome!r}")
        with self.db:
            self.db.execute("UPDATE tips SET outcome=?, outcome_note=COALESCE(?, outcome_note), updated_at=? "
                            "WHERE id=?", (outcome, note, _now(), tip_id))

    def link_tip_cases(self, tip_id: str, case_ids: list[str], by: str = "check") -> int:
        """Link a tip to cases (each once); an open tip that led to a case becomes ``case_opened``.
        Returns how many links are new."""
        now = _now()
        before = self.db.execute("SELECT COUNT(*) FROM tip_cases WHERE tip_id=?", (tip_id,)).fetchone()[0]
        with self.db:
            self.db.executemany(
                "INSERT INTO tip_cases(tip_id, case_id, linked_at, linked_by) VALUES (?,?,?,?) "
                "ON CONFLICT (tip_id, case_id) DO NOTHING", [(tip_id, c, now, by) for c in dict.fromkeys(case_ids)])
            added = self.db.execute("SELECT COUNT(*) FROM tip_cases WHERE tip_id=?", (tip_id,)).fetchone()[0] - before
            if added:
                self.db.execute("UPDATE tips SET outcome='case_opened', updated_at=? WHERE id=? AND outcome='open'",
                                (now, tip_id))
        return added

    def tip_cases(self, tip_id: str) -> list[dict[str, Any]]:
        """The cases a tip led to, with their summary (cases table), oldest link first."""
        rows = [dict(r) for r in self.db.execute(
            """SELECT c.*, t.linked_at, t.linked_by FROM tip_cases t JOIN cases c ON c.id=t.case_id
               WHERE t.tip_id=? ORDER BY t.linked_at, c.id""", (tip_id,))]
        for r in rows:
            r["categories"] = [c for c in (r["categories"] or "").split(",") if c]
        return rows

    def tips_of_cases(self, case_ids: list[str]) -> dict[str, list[str]]:
        """case id → ids of the tips that led to it."""
        out: dict[str, list[str]] = {}
        ids = list(case_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for r in self.db.execute(f"SELECT case_id, tip_id FROM tip_cases WHERE case_id IN "
                                     f"({', '.join('?' * len(chunk))}) ORDER BY tip_id", chunk):
                out.setdefault(r[0], []).append(r[1])
        return out

    # -- submissions ---------------------------------------------------------------------------
    def add_submission(self, **fields: Any) -> str:
        unknown = set(fields) - set(_SUBMISSION_FIELDS)
        if unknown:
            raise ValueError(f"unknown submission fields: {sorted(unknown)}")
        if isinstance(fields.get("details"), dict):
            fields["details"] = json.dumps(fields["details"], ensure_ascii=False)
        fields.setdefault("received_at", _now())
        sid = uuid.uuid4().hex[:16]
        cols = ["id", *fields]
        with self.db:
            self.db.execute(f"INSERT INTO submissions({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [sid, *fields.values()])
        return sid

    def update_submission(self, sid: str, **fields: Any) -> None:
        unknown = set(fields) - set(_SUBMISSION_FIELDS)
        if unknown or not fields:
            raise ValueError(f"unknown submission fields: {sorted(unknown)}")
        if isinstance(fields.get("details"), dict):
            fields["details"] = json.dumps(fields["details"], ensure_ascii=False)
        with self.db:
            self.db.execute(f"UPDATE submissions SET {', '.join(f'{k}=?' for k in fields)} WHERE id=?",
                            [*fields.values(), sid])

    def submission(self, sid: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM submissions WHERE id=?", (sid,)).fetchone()
        return _submission_row(row) if row else None

    def submissions(self, *, tip_id: str | None = None, scan_ids: list[str] | None = None,
                    limit: int = 500) -> list[dict[str, Any]]:
        sql, where, args = "SELECT * FROM submissions", [], []
        if tip_id:
            where.append("tip_id=?")
            args.append(tip_id)
        if scan_ids is not None:
            where.append(f"scan_id IN ({', '.join('?' * len(scan_ids)) or 'NULL'})")
            args.extend(scan_ids)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_submission_row(r) for r in self.db.execute(sql + " ORDER BY received_at, id LIMIT ?",
                                                              [*args, limit])]

    def case_ids_on_pages(self, scan_id: str, page_urls: list[str]) -> list[str]:
        """Cases of the findings ``scan_id`` saw on these pages (a submission's findings → its cases)."""
        if not page_urls:
            return []
        return [r[0] for r in self.db.execute(
            f"""SELECT DISTINCT f.case_id FROM sightings s JOIN findings f ON f.id=s.finding_id
                WHERE s.scan_id=? AND f.case_id IS NOT NULL AND f.url IN ({', '.join('?' * len(page_urls))})
                ORDER BY f.case_id""", [scan_id, *page_urls])]

    def case_submissions(self, case_id: str) -> list[dict[str, Any]]:
        """The material sent in (checked submissions) that a case's findings were read from."""
        urls = {r[0] for r in self.db.execute("SELECT DISTINCT url FROM findings WHERE case_id=?", (case_id,))}
        keys = sorted(urls | {"submission://" + u[len("submission://"):].split("/", 1)[0] + "/"
                              for u in urls if u.startswith("submission://")})
        if not keys:
            return []
        return [_submission_row(r) for r in self.db.execute(
            f"SELECT * FROM submissions WHERE status='checked' AND page_url IN ({', '.join('?' * len(keys))}) "
            "ORDER BY received_at, id", keys)]
