"""The SQLite store: one file, WAL mode, deterministic finding ids."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detectors.model import Finding
from store.backends import DB_NAME as DB_NAME
from store.backends import connect, is_database_url, split_location
from store.files import FileArea

SCHEMA = Path(__file__).with_name("schema.sql")
CONTEXT_CHARS = 40


class StoreError(RuntimeError):
    """The store cannot be opened or written (bad path, permissions, corrupt file)."""


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def finding_id(url: str, source: str, rule_id: str, text: str, occurrence: int, image_sha256: str = "") -> str:
    """Stable id: the same words matched by the same rule at the same place of the same page
    (or image) get the same id in every scan, whatever else on the page moved."""
    key = "\x1f".join([url, source, image_sha256, rule_id, text, str(occurrence)])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def context_of(text: str, start: int, end: int, width: int = CONTEXT_CHARS) -> str:
    return text[max(0, start - width) : end + width]


class Store:
    """``location``: a directory (SQLite file + files), or ``postgresql://…?files=/shared/dir``
    (rows in PostgreSQL, blobs/WARCs/keys in a directory every worker mounts); store/backends.py."""

    def __init__(self, location: str | Path) -> None:
        self.location = str(location)
        try:
            self.dir = split_location(location)[1]  # blobs/, warc/, keys/
        except ValueError as e:
            raise StoreError(str(e)) from e
        self.shared = is_database_url(location)
        try:
            self.files = FileArea(self.dir)
            self.db = connect(location)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA.read_text())
            self._migrate()
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open store at {self.dir if not self.shared else 'PostgreSQL'}: {e}") from e

    # columns added to tables after stores were already made: (table, column, definition)
    ADDED_COLUMNS = (
        ("index_outbox", "rejected", "INTEGER NOT NULL DEFAULT 0"),
        ("index_outbox", "retry_at", "REAL"),
    )

    def _migrate(self) -> None:
        """Bring an older store's tables up to schema.sql (CREATE … IF NOT EXISTS adds no columns)."""
        for table, column, definition in self.ADDED_COLUMNS:
            have = {d[0] for d in self.db.execute(f"SELECT * FROM {table} LIMIT 0").description}
            if column not in have:
                with self.db:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scans -----------------------------------------------------------------------------
    def begin_scan(self, seeds: list[str], settings: dict[str, Any] | None = None,
                   target: str | None = None, scan_id: str | None = None) -> str:
        scan_id = scan_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
        with self.db:
            self.db.execute(
                "INSERT INTO scans(id, started_at, seeds, settings, target) VALUES (?,?,?,?,?)",
                (scan_id, utcnow(), json.dumps(seeds), json.dumps(settings or {}, default=str), target),
            )
        return scan_id

    def finish_scan(self, scan_id: str, status: str = "finished", *,
                    if_status: str | Iterable[str] | None = None) -> dict[str, Any]:
        """Close a scan with ``status`` and its counts (pages, distinct images, distinct failed
        URLs); ``finished_at`` is set once. With ``if_status``, only a scan currently in that status
        (or one of those) is changed, e.g. mark a scan ``interrupted`` only while it is ``running``.
        Returns the scan's summary."""
        only = [if_status] if isinstance(if_status, str) else list(if_status or ())
        guard = f" AND status IN ({', '.join('?' * len(only))})" if only else ""
        with self.db:
            self.db.execute(
                f"""UPDATE scans SET finished_at=COALESCE(finished_at, ?), status=?,
                     pages=(SELECT COUNT(*) FROM pages WHERE scan_id=?),
                     images=(SELECT COUNT(DISTINCT image_url) FROM page_images WHERE scan_id=?),
                     errors=(SELECT COUNT(DISTINCT url) FROM fetches WHERE scan_id=? AND error IS NOT NULL)
                   WHERE id=?{guard}""",
                (utcnow(), status, scan_id, scan_id, scan_id, scan_id, *only),
            )
        return self.scan_summary(scan_id)

    def scan(self, scan_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM scans WHERE id=?", (scan_id,)).fetchone()
        return dict(row) if row else None

    def scans(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM scans ORDER BY started_at")]

    def scan_summary(self, scan_id: str) -> dict[str, Any]:
        scan = self.scan(scan_id) or {}
        by_cat = dict(
            self.db.execute(
                """SELECT f.category, COUNT(*) FROM sightings s JOIN findings f ON f.id=s.finding_id
                   WHERE s.scan_id=? GROUP BY f.category ORDER BY f.category""",
                (scan_id,),
            ).fetchall()
        )
        new = self.db.execute("SELECT COUNT(*) FROM findings WHERE first_scan_id=?", (scan_id,)).fetchone()[0]
        failures = [
            dict(r)
            for r in self.db.execute(
                """SELECT url, MIN(kind) AS kind, MAX(status) AS status, error, MIN(reason) AS reason, COUNT(*) AS attempts
                   FROM fetches WHERE scan_id=? AND error IS NOT NULL GROUP BY url, error ORDER BY MIN(id)""",
                (scan_id,),
            )
        ]
        return {
            "scan_id": scan_id,
            "status": scan.get("status"),
            "pages": scan.get("pages", 0),
            "images": scan.get("images", 0),
            "errors": scan.get("errors", 0),
            "findings": sum(by_cat.values()),
            "new_findings": new,
            "by_category": by_cat,
            "failures": failures,
        }

    # -- fetches and pages -----------------------------------------------------------------
    def record_fetch(self, scan_id: str, url: str, *, kind: str = "page", status: int | None = None,
                     headers: dict[str, Any] | None = None, elapsed_ms: float | None = None,
                     ip: str | None = None, error: str | None = None, reason: str | None = None,
                     warc_file: str | None = None, warc_offset: int | None = None) -> int:
        with self.db:
            cur = self.db.execute(
                """INSERT INTO fetches(scan_id, url, kind, status, headers, elapsed_ms, fetched_at, ip,
                                       error, reason, warc_file, warc_offset)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?)""",
                (scan_id, url, kind, status, json.dumps(headers or {}, ensure_ascii=False), elapsed_ms,
                 utcnow(), ip, error, reason, warc_file, warc_offset),
            )
        return int(cur.lastrowid or 0)

    def note_fetch(self, fetch_id: int, note: str) -> None:
        """A caveat on a fetch that worked: a reason without an error."""
        with self.db:
            self.db.execute("UPDATE fetches SET reason=? WHERE id=?", (note[:1000], fetch_id))

    def mark_fetch_error(self, fetch_id: int, error: str, reason: str) -> None:
        """A fetch that arrived but could not be used (not a page, too large after decoding)."""
        with self.db:
            self.db.execute("UPDATE fetches SET error=?, reason=? WHERE id=?", (error, reason, fetch_id))

    def save_page(self, scan_id: str, url: str, **fields: Any) -> int:
        """Insert or replace the page captured at ``url`` in this scan; returns its row id."""
        allowed = {"final_url", "status", "content_type", "encoding", "title", "text", "content_sha256",
                   "depth", "institution", "rendered", "screenshot_sha256", "text_boxes", "duplicate_of",
                   "warc_file", "warc_offset"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown page fields: {sorted(unknown)}")
        if isinstance(fields.get("text_boxes"), list | dict):
            fields["text_boxes"] = json.dumps(fields["text_boxes"])
        cols = ["scan_id", "url", "fetched_at", *fields]
        vals = [scan_id, url, utcnow(), *fields.values()]
        updates = ", ".join(f"{c}=excluded.{c}" for c in cols[2:])
        with self.db:
            self.db.execute(
                f"INSERT INTO pages({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                f"ON CONFLICT(scan_id, url) DO UPDATE SET {updates}",
                vals,
            )
        row = self.db.execute("SELECT id FROM pages WHERE scan_id=? AND url=?", (scan_id, url)).fetchone()
        return int(row[0])

    def page(self, scan_id: str, url: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM pages WHERE scan_id=? AND url=?", (scan_id, url)).fetchone()
        return dict(row) if row else None

    def pages(self, scan_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM pages WHERE scan_id=? ORDER BY id", (scan_id,))]

    # -- earlier captures (incremental re-scans, crawler/incremental.py) --------------------
    def set_detector_fingerprint(self, scan_id: str, fingerprint: str) -> None:
        """Record which detector code and rule packs this scan examines pages with."""
        with self.db:
            self.db.execute("INSERT INTO scan_detectors(scan_id, fingerprint) VALUES (?,?) "
                            "ON CONFLICT(scan_id) DO UPDATE SET fingerprint=excluded.fingerprint",
                            (scan_id, fingerprint))

    def last_fetches(self, exclude_scan_id: str) -> list[sqlite3.Row]:
        """For each URL, its last successful (200) fetch with a WARC record in another scan:
        url, scan_id, headers (JSON), warc_file, warc_offset."""
        return self.db.execute(
            """SELECT f.url, f.scan_id, f.headers, f.warc_file, f.warc_offset FROM fetches f
               JOIN (SELECT MAX(id) AS id FROM fetches WHERE status=200 AND warc_file IS NOT NULL
                     AND scan_id != ? GROUP BY url) m ON m.id=f.id""", (exclude_scan_id,)).fetchall()

    def last_page_hashes(self, fingerprint: str, exclude_scan_id: str) -> dict[str, tuple[str, str]]:
        """url → (scan id, content sha256) of its last capture in another *finished* scan made with
        the detector ``fingerprint`` (pages recorded as duplicates of another URL left out)."""
        return {r[0]: (r[1], r[2]) for r in self.db.execute(
            """SELECT p.url, p.scan_id, p.content_sha256 FROM pages p
               JOIN (SELECT MAX(p2.id) AS id FROM pages p2 JOIN scans s ON s.id=p2.scan_id
                     JOIN scan_detectors d ON d.scan_id=p2.scan_id
                     WHERE s.status='finished' AND d.fingerprint=? AND p2.scan_id != ?
                     GROUP BY p2.url) m ON m.id=p.id
               WHERE p.duplicate_of IS NULL AND p.content_sha256 IS NOT NULL""",
            (fingerprint, exclude_scan_id))}

    # -- blobs and images ------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        return self.files.put_blob(data)

    def blob_path(self, digest: str) -> Path:
        return self.files.blob_path(digest)

    def image(self, sha256: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM images WHERE sha256=?", (sha256,)).fetchone()
        return dict(row) if row else None

    def save_image(self, sha256: str, **fields: Any) -> None:
        for k in ("ocr", "qr"):
            if k in fields and not isinstance(fields[k], str | None):
                fields[k] = json.dumps(fields[k], ensure_ascii=False)
        cols = ["sha256", "first_seen_at", *fields]
        vals = [sha256, utcnow(), *fields.values()]
        updates = ", ".join(f"{c}=excluded.{c}" for c in fields) or "sha256=sha256"
        with self.db:
            self.db.execute(
                f"INSERT INTO images({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                f"ON CONFLICT(sha256) DO UPDATE SET {updates}",
                vals,
            )

    def link_image(self, scan_id: str, page_url: str, image_url: str, sha256: str | None,
                   error: str | None = None) -> None:
        with self.db:
            self.db.execute(
                """INSERT INTO page_images(scan_id, page_url, image_url, sha256, error) VALUES (?,?,?,?,?)
                   ON CONFLICT(scan_id, page_url, image_url) DO UPDATE SET sha256=excluded.sha256,
                   error=excluded.error""",
                (scan_id, page_url, image_url, sha256, error),
            )

    def link_qr(self, scan_id: str, page_url: str, image_url: str, sha256: str, payload: str, action: str,
                reason: str | None = None) -> None:
        """Record a QR payload read from an image on a page, and what the scan did with it
        (``queued`` for capture, ``outside`` the scan's sites, ``not_a_url``, ``page_limit``)."""
        with self.db:
            self.db.execute(
                """INSERT INTO qr_links(scan_id, page_url, image_url, sha256, payload, action, reason)
                   VALUES (?,?,?,?,?,?,?) ON CONFLICT(scan_id, page_url, image_url, payload) DO UPDATE SET
                   sha256=excluded.sha256, action=excluded.action, reason=excluded.reason""",
                (scan_id, page_url, image_url, sha256, payload, action, reason),
            )

    def qr_links(self, scan_id: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM qr_links", ()
        if scan_id:
            sql, args = sql + " WHERE scan_id=?", (scan_id,)
        return [dict(r) for r in self.db.execute(sql + " ORDER BY page_url, image_url, payload", args)]

    def pages_showing(self, scan_id: str, image_url: str) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT page_url FROM page_images WHERE scan_id=? AND image_url=?", (scan_id, image_url))]

    # -- findings --------------------------------------------------------------------------
    def save_findings(self, scan_id: str, url: str, source: str, text: str, findings: Iterable[Finding], *,
                      image_url: str | None = None, image_sha256: str | None = None,
                      boxes: list[Any] | None = None, institution: str | None = None,
                      district: str | None = None) -> list[str]:
        """Record findings for one page text or one image; returns their ids.

        ``boxes``, when given, is parallel to ``findings``. A finding seen before keeps its id,
        first-seen time and review status; only its last-seen fields move."""
        now = utcnow()
        ids: list[str] = []
        occurrences: dict[tuple[str, str], int] = {}
        with self.db:
            for i, f in enumerate(findings):
                n = occurrences.get((f.rule_id, f.text), 0)
                occurrences[(f.rule_id, f.text)] = n + 1
                fid = finding_id(url, source, f.rule_id, f.text, n, image_sha256 or "")
                ids.append(fid)
                box = json.dumps(boxes[i]) if boxes is not None else None
                self.db.execute(
                    """INSERT INTO findings(id, category, rule_id, text, start, "end", score, severity, basis,
                         explanation, context, url, source, image_url, image_sha256, boxes, institution,
                         district, first_seen_at, last_seen_at, first_scan_id, last_scan_id)
                       VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                       ON CONFLICT(id) DO UPDATE SET start=excluded.start, "end"=excluded."end",
                         score=excluded.score, explanation=excluded.explanation, context=excluded.context,
                         boxes=excluded.boxes, basis=excluded.basis, severity=excluded.severity,
                         last_seen_at=excluded.last_seen_at, last_scan_id=excluded.last_scan_id""",
                    (fid, f.category, f.rule_id, f.text, f.start, f.end, f.score, f.severity, f.basis,
                     json.dumps(list(f.explanation), ensure_ascii=False), context_of(text, f.start, f.end),
                     url, source, image_url, image_sha256, box, institution, district,
                     now, now, scan_id, scan_id),
                )
            _sight(self.db, scan_id, ids, now)
            _queue_for_index(self.db, ids, now)
        return ids

    def sighted(self, scan_id: str, url: str, source: str = "text") -> list[str]:
        """Ids of the findings of ``source`` on ``url`` that ``scan_id`` saw."""
        return [r[0] for r in self.db.execute(
            """SELECT s.finding_id FROM sightings s JOIN findings f ON f.id=s.finding_id
               WHERE s.scan_id=? AND f.url=? AND f.source=?""", (scan_id, url, source))]

    def resight(self, scan_id: str, finding_ids: Iterable[str]) -> int:
        """Findings seen again in ``scan_id`` without being re-detected (an unchanged page): a
        sighting, their last-seen fields, and the search outbox, in one transaction — as
        ``save_findings`` does for findings it saves. Returns how many were re-sighted."""
        ids = list(finding_ids)
        now = utcnow()
        with self.db:
            _sight(self.db, scan_id, ids, now)
            self.db.executemany("UPDATE findings SET last_seen_at=?, last_scan_id=? WHERE id=?",
                                [(now, scan_id, i) for i in ids])
            _queue_for_index(self.db, ids, now)
        return len(ids)

    def findings(self, *, scan_id: str | None = None, category: str | None = None,
                 ids: Iterable[str] | None = None, status: str | None = None) -> Iterator[dict[str, Any]]:
        sql = "SELECT f.*, i.qr AS qr FROM findings f LEFT JOIN images i ON i.sha256 = f.image_sha256"
        where, args = [], []
        if scan_id:
            sql += " JOIN sightings s ON s.finding_id=f.id"
            where.append("s.scan_id=?")
            args.append(scan_id)
        if category:
            where.append("f.category=?")
            args.append(category)
        if status:
            where.append("f.status=?")
            args.append(status)
        if ids is not None:
            id_list = list(ids)
            where.append(f"f.id IN ({', '.join('?' * len(id_list))})")
            args.extend(id_list)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY f.url, f.source, COALESCE(f.image_url, ''), f.start, f.rule_id"  # NULL first, as SQLite
        for row in self.db.execute(sql, args):
            yield finding_row(row)

    def set_status(self, finding_ids: Iterable[str], status: str) -> int:
        if status not in ("open", "confirmed", "dismissed"):
            raise ValueError(f"status must be open, confirmed or dismissed, not {status!r}")
        with self.db:
            id_list = list(finding_ids)
            cur = self.db.executemany("UPDATE findings SET status=? WHERE id=?",
                                      [(status, i) for i in id_list])
            _queue_for_index(self.db, id_list, utcnow())
        return cur.rowcount


def _sight(db: sqlite3.Connection, scan_id: str, ids: Iterable[str], now: str) -> None:
    """One sighting per (finding, scan), inside the caller's transaction."""
    db.executemany("INSERT INTO sightings(finding_id, scan_id, seen_at) VALUES (?,?,?) "
                   "ON CONFLICT(finding_id, scan_id) DO NOTHING",
                   [(i, scan_id, now) for i in ids])


def _queue_for_index(db: sqlite3.Connection, ids: Iterable[str], now: str) -> None:
    """Queue changed findings for the external search index, inside the caller's transaction.
    A new version of a document the index rejected is tried again (its rejections start over)."""
    db.executemany(
        """INSERT INTO index_outbox(finding_id, queued_at) VALUES (?, ?)
           ON CONFLICT(finding_id) DO UPDATE SET version=index_outbox.version+1, queued_at=excluded.queued_at,
             rejected=0, retry_at=NULL""",
        [(i, now) for i in ids],
    )


def finding_row(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["explanation"] = json.loads(d["explanation"] or "[]")
    d["boxes"] = json.loads(d["boxes"]) if d.get("boxes") else None
    if "qr" in d:  # QR payloads of the image a finding was read from (None for page text)
        d["qr"] = (json.loads(d["qr"]) or None) if d["qr"] else None
    return d
