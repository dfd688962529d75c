"""The ledger's tables (institutions, their lookup keys and history, imports, scanned sites): the
SQL behind ``ledger/``, mixed into ``store.Store``.

An import is one transaction: every row of the file is applied, or (on a file error) none is.
Rows are handled in batches, so memory stays flat however long the file is; a credit code seen
twice in one file is caught by the ``last_import_id`` the first row wrote, not by a set in memory.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from ledger.records import LIST_FIELDS, RECORD_FIELDS, ParsedRow, key_values, list_json, record_digest

BATCH = 500


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def institution_row(row: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    d = dict(row)
    for k in LIST_FIELDS:
        if isinstance(d.get(k), str):
            d[k] = json.loads(d[k])
    return d


class LedgerTables:
    db: sqlite3.Connection

    # -- import ----------------------------------------------------------------------------------
    def import_institutions(self, rows: Iterable[tuple[int, ParsedRow | str]], *, file: str,
                            sha256: str | None = None) -> dict[str, Any]:
        """Apply a ledger file's rows — (line, parsed row) or (line, why it was rejected) — in one
        transaction, keyed on the credit code. Fields the file has no column for keep their values.
        Returns the report: import id, added / changed / unchanged counts, rejections by line."""
        import_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
        counts = {"added": 0, "changed": 0, "unchanged": 0}
        rejections: list[dict[str, Any]] = []
        now = _now()
        batch: list[tuple[int, ParsedRow]] = []
        with self.db:
            for line, row in rows:
                if isinstance(row, str):
                    rejections.append({"line": line, "reason": row})
                    continue
                batch.append((line, row))
                if len(batch) >= BATCH:
                    self._import_batch(batch, import_id, now, counts, rejections)
                    batch = []
            if batch:
                self._import_batch(batch, import_id, now, counts, rejections)
            rejections.sort(key=lambda r: r["line"])
            self.db.execute(
                """INSERT INTO ledger_imports(id, file, sha256, imported_at, added, changed, unchanged, rejected,
                     rejections) VALUES (?,?,?,?,?,?,?,?,?)""",
                (import_id, file, sha256, now, counts["added"], counts["changed"], counts["unchanged"],
                 len(rejections), json.dumps(rejections, ensure_ascii=False)))
        return {"import_id": import_id, "file": file, **counts, "rejected": len(rejections),
                "rejections": rejections}

    def _import_batch(self, batch: list[tuple[int, ParsedRow]], import_id: str, now: str,
                      counts: dict[str, int], rejections: list[dict[str, Any]]) -> None:
        codes = list({r.institution.credit_code for _, r in batch})
        existing = {r["credit_code"]: dict(r) for r in self.db.execute(
            f"SELECT * FROM institutions WHERE credit_code IN ({', '.join('?' * len(codes))})", codes)}
        inserts, updates, touches, history, stale_keys, new_keys = [], [], [], [], [], []
        for line, parsed in batch:
            inst = parsed.institution
            code = inst.credit_code
            old = existing.get(code)
            if old is not None and old["last_import_id"] == import_id:
                rejections.append({"line": line, "reason": f"统一社会信用代码 {code} 与第{old['last_import_line']}行"
                                                           "重复，本行未导入"})
                continue
            values = inst.values()
            if old is not None:  # columns the file does not have keep what the ledger says
                for f in RECORD_FIELDS:
                    if f not in parsed.present:
                        values[f] = json.loads(old[f]) if f in LIST_FIELDS else old[f]
            digest = record_digest(values)
            if old is not None and digest == old["digest"]:
                touches.append((import_id, line, code))
                counts["unchanged"] += 1
                existing[code] = {**old, "last_import_id": import_id, "last_import_line": line}
                continue
            stored = {f: list_json(values[f]) if f in LIST_FIELDS else values[f] for f in RECORD_FIELDS}
            if old is None:
                inserts.append((code, *stored.values(), digest, now, now, import_id, line))
                history.append((code, import_id, now, "added", json.dumps(
                    {f: [None, values[f]] for f in RECORD_FIELDS if values[f] not in (None, [])},
                    ensure_ascii=False)))
                new_keys += [(k, v, code) for k, v in key_values(values)]
                counts["added"] += 1
            else:
                before = institution_row(old)
                diff = {f: [before[f], values[f]] for f in RECORD_FIELDS if before[f] != values[f]}
                if not diff:  # same values under a digest an older version computed: refresh it only
                    updates.append((*stored.values(), digest, old["updated_at"], import_id, line, code))
                    counts["unchanged"] += 1
                else:
                    updates.append((*stored.values(), digest, now, import_id, line, code))
                    history.append((code, import_id, now, "changed", json.dumps(diff, ensure_ascii=False)))
                    stale_keys.append((code,))
                    new_keys += [(k, v, code) for k, v in key_values(values)]
                    counts["changed"] += 1
            existing[code] = {**(old or {}), **stored, "digest": digest, "last_import_id": import_id,
                              "last_import_line": line}
        cols = ", ".join(RECORD_FIELDS)
        self.db.executemany(
            f"""INSERT INTO institutions(credit_code, {cols}, digest, created_at, updated_at, last_import_id,
                  last_import_line) VALUES ({', '.join('?' * (len(RECORD_FIELDS) + 6))})""", inserts)
        sets = ", ".join(f"{f}=?" for f in RECORD_FIELDS)
        self.db.executemany(
            f"""UPDATE institutions SET {sets}, digest=?, updated_at=?, last_import_id=?, last_import_line=?
                WHERE credit_code=?""", updates)
        self.db.executemany("UPDATE institutions SET last_import_id=?, last_import_line=? WHERE credit_code=?",
                            touches)
        self.db.executemany("DELETE FROM institution_keys WHERE credit_code=?", stale_keys)
        self.db.executemany(
            """INSERT INTO institution_keys(kind, value, credit_code) VALUES (?,?,?)
               ON CONFLICT (kind, value, credit_code) DO NOTHING""", new_keys)
        self.db.executemany(
            "INSERT INTO institution_history(credit_code, import_id, changed_at, change, fields) VALUES (?,?,?,?,?)",
            history)

    # -- reading the ledger ----------------------------------------------------------------------
    def has_ledger(self) -> bool:
        return self.db.execute("SELECT 1 FROM institutions LIMIT 1").fetchone() is not None

    def institution(self, credit_code: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM institutions WHERE credit_code=?", (credit_code,)).fetchone()
        return institution_row(row) if row else None

    def institutions(self, *, district: str | None = None, status: str | Iterable[str] | None = None,
                     type: str | None = None, with_site: bool = False, name: str | None = None,
                     limit: int | None = None, offset: int = 0) -> Iterator[dict[str, Any]]:
        """Institutions in credit-code order; filters: district, status (one or several codes),
        type (subject | non_subject), with_site (only those with a web site), name (substring)."""
        where, args = self._ledger_filter(district, status, type, with_site, name)
        sql = "SELECT * FROM institutions" + where + " ORDER BY credit_code"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args += [limit, offset]
        for row in self.db.execute(sql, args):
            yield institution_row(row)

    def count_institutions(self, **filters: Any) -> dict[str, int]:
        """How many institutions match ``filters`` (as ``institutions``), by status, plus ``total``."""
        where, args = self._ledger_filter(filters.get("district"), filters.get("status"), filters.get("type"),
                                          filters.get("with_site", False), filters.get("name"))
        out = dict(self.db.execute(f"SELECT status, COUNT(*) FROM institutions{where} GROUP BY status", args))
        out["total"] = sum(out.values())
        return out

    @staticmethod
    def _ledger_filter(district: str | None, status: str | Iterable[str] | None, type: str | None,
                       with_site: bool, name: str | None) -> tuple[str, list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        if district:
            where.append("district=?")
            args.append(district)
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += statuses
        if type:
            where.append("type=?")
            args.append(type)
        if with_site:
            where.append("sites != '[]'")
        if name:
            where.append("LOWER(name) LIKE LOWER(?)")   # SQLite's LIKE ignores ASCII case, PostgreSQL's does not
            args.append(f"%{name}%")
        return (" WHERE " + " AND ".join(where) if where else ""), args

    def institutions_by_key(self, kind: str, values: Iterable[str]) -> list[dict[str, Any]]:
        """Institutions with one of ``values`` as a ``kind`` key (host, licence, wechat, mini_program,
        phone, name; values normalised as ``key_values`` does)."""
        vals = list(dict.fromkeys(values))
        if not vals:
            return []
        return [institution_row(r) for r in self.db.execute(
            f"""SELECT DISTINCT i.* FROM institution_keys k JOIN institutions i ON i.credit_code=k.credit_code
                WHERE k.kind=? AND k.value IN ({', '.join('?' * len(vals))}) ORDER BY i.credit_code""",
            [kind, *vals])]

    def institution_history(self, credit_code: str) -> list[dict[str, Any]]:
        return [{**dict(r), "fields": json.loads(r["fields"])} for r in self.db.execute(
            """SELECT h.*, l.file FROM institution_history h LEFT JOIN ledger_imports l ON l.id=h.import_id
               WHERE h.credit_code=? ORDER BY h.changed_at, h.import_id""", (credit_code,))]

    def ledger_imports(self) -> list[dict[str, Any]]:
        return [{**dict(r), "rejections": json.loads(r["rejections"])} for r in self.db.execute(
            "SELECT * FROM ledger_imports ORDER BY imported_at")]

    def ledger_seeds(self, *, district: str | Iterable[str] | None = None, status: Iterable[str] = (),
                     type: str | None = None) -> list[tuple[str, str, str | None]]:
        """(name, site URL, district) of every site of the institutions selected — what a plan
        target with ``ledger = {…}`` scans; read at each run, so new institutions join the next run."""
        districts = [district] if isinstance(district, str) else list(district or ())
        where, args = self._ledger_filter(None, list(status) or None, type, True, None)
        if districts:
            where += f" AND district IN ({', '.join('?' * len(districts))})"
            args += districts
        out = []
        for r in self.db.execute(f"SELECT name, sites, district FROM institutions{where} ORDER BY credit_code",
                                 args):
            out += [(r["name"], url, r["district"]) for url in json.loads(r["sites"])]
        return out

    # -- scans and findings against the ledger ---------------------------------------------------
    def record_scan_site(self, scan_id: str, site: str, credit_code: str | None, linked_by: str | None,
                         detail: str | None) -> None:
        with self.db:
            self.db.execute(
                """INSERT INTO scan_sites(scan_id, site, credit_code, linked_by, detail) VALUES (?,?,?,?,?)
                   ON CONFLICT (scan_id, site) DO UPDATE SET credit_code=excluded.credit_code,
                     linked_by=excluded.linked_by, detail=excluded.detail""",
                (scan_id, site, credit_code, linked_by, detail))

    def scan_sites(self, scan_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM scan_sites WHERE scan_id=? ORDER BY site",
                                                 (scan_id,))]

    def institution_scans(self, credit_code: str) -> list[dict[str, Any]]:
        """The scans that covered this institution's sites: scan row + site, linked_by, detail."""
        return [dict(r) for r in self.db.execute(
            """SELECT s.id AS scan_id, s.started_at, s.finished_at, s.status, s.target, s.pages, ss.site,
                      ss.linked_by, ss.detail
               FROM scan_sites ss JOIN scans s ON s.id=ss.scan_id WHERE ss.credit_code=?
               ORDER BY s.started_at""", (credit_code,))]

    def attach_ledger(self, finding_ids: Iterable[str], credit_code: str | None,
                      record: dict[str, Any] | None) -> int:
        """Put the institution's ledger record (as it stood at this scan) on findings."""
        from store.db import _queue_for_index

        ids = list(finding_ids)
        snapshot = json.dumps(record, ensure_ascii=False) if record else None
        with self.db:
            self.db.executemany("UPDATE findings SET credit_code=?, ledger=? WHERE id=?",
                                [(credit_code, snapshot, i) for i in ids])
            _queue_for_index(self.db, ids, _now())
        return len(ids)

    def institution_findings(self, credit_code: str) -> list[dict[str, Any]]:
        from store.db import finding_row

        return [finding_row(r) for r in self.db.execute(
            """SELECT f.*, i.qr AS qr FROM findings f LEFT JOIN images i ON i.sha256 = f.image_sha256
               WHERE f.credit_code=? ORDER BY f.url, f.source, COALESCE(f.image_url, ''), f.start, f.rule_id""", (credit_code,))]
