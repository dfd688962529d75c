"""The SQLite store: one file, WAL mode, deterministic finding ids."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detectors.model import Finding
from store.backends import DB_NAME as DB_NAME
from store.backends import apply_schema_once, connect, is_database_url, schema_digest, split_location
from store.cases import CaseStore, ad_of, case_id, institution_key
from store.files import FileArea
from store.intake import IntakeTables
from store.ledger import LedgerTables

SCHEMA = Path(__file__).with_name("schema.sql")
CONTEXT_CHARS = 40


class StoreError(RuntimeError):
    """The store cannot be opened or written (bad path, permissions, corrupt file)."""


def _why(e: BaseException) -> str:
    """An open failure in words an investigator can act on, SQLite's own words kept after them."""
    text = str(e)
    if "not a database" in text:
        return f"数据库文件已损坏或不是 SQLite 数据库（{text}）"
    if "malformed" in text:
        return f"数据库文件已损坏或被截断（{text}）"
    if isinstance(e, PermissionError) or "readonly" in text or "permission" in text.lower():
        return f"没有读写权限（{text}）"
    return text


def process_key(pid: int) -> str | None:
    """What identifies process ``pid`` on this machine across pid reuse: the boot it runs in and its
    start time (``/proc``); None when no such process runs (or it is a zombie: killed, not reaped)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else f"{boot}/{fields[19]}"


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def finding_id(url: str, source: str, rule_id: str, text: str, occurrence: int, image_sha256: str = "") -> str:
    """Stable id: the same words matched by the same rule at the same place of the same page
    (or image) get the same id in every scan, whatever else on the page moved."""
    key = "\x1f".join([url, source, image_sha256, rule_id, text, str(occurrence)])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


# query parameters that only say where a visitor came from (ad campaigns, click ids): a page with
# them is the same page without them
TRACKING_PARAMS = ("gclid", "fbclid", "msclkid", "yclid", "bd_vid", "spm")
DIRECTORY_INDEXES = ("index.html", "index.htm", "index.shtml", "index.php", "default.htm", "default.html",
                     "default.asp", "default.aspx")


def canonical_page_url(url: str) -> str:
    """The one address a page is known by, whichever of its addresses a scan reached it at:
    ``/`` and ``/index.html`` (and ``default.aspx`` …), ``/news/`` and ``/news``, and the page with
    ``utm_…`` or click-id parameters are one page. Scheme and host are lower-cased, the other query
    parameters sorted, the fragment dropped (w3lib ``canonicalize_url``). ``pages.url``,
    ``findings.url`` and ``page_images.page_url`` hold this form; every address a page was
    fetched at is in ``page_addresses``."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    from w3lib.url import canonicalize_url

    parts = urlsplit(canonicalize_url(url))
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not (k.lower().startswith("utm_") or k.lower() in TRACKING_PARAMS)]
    path = parts.path or "/"
    head, _, last = path.rpartition("/")
    if last.lower() in DIRECTORY_INDEXES:
        path = head + "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))


def context_of(text: str, start: int, end: int, width: int = CONTEXT_CHARS) -> str:
    return text[max(0, start - width) : end + width]


class Store(CaseStore, LedgerTables, IntakeTables):
    """``location``: a directory (SQLite file + files), or ``postgresql://…?files=/shared/dir``
    (rows in PostgreSQL, blobs/WARCs/keys in a directory every worker mounts); store/backends.py.

    ``read_only=True`` (the listing commands) never writes to it: the database must exist, nothing
    is created and no schema is applied (SQLite: opened with ``mode=ro``; a file that is not a
    jianfu database — random bytes, cut short — is a ``StoreError``; PostgreSQL: the connection's
    transactions are read-only)."""

    def __init__(self, location: str | Path, *, read_only: bool = False) -> None:
        self.location = str(location)
        self.read_only = read_only
        try:
            self.dir = split_location(location)[1]  # blobs/, warc/, keys/
        except ValueError as e:
            raise StoreError(f"无法打开存储库：{e}") from e
        self.shared = is_database_url(location)
        where = "PostgreSQL" if self.shared else str(self.dir)
        try:
            if read_only:
                self.files = FileArea(self.dir, create=False)
                self.db = self._open_shared_read_only() if self.shared else self._open_read_only()
            elif self.shared:
                self.files = FileArea(self.dir)
                self.db = connect(location)
                self._apply_schema_shared()
            else:
                self.dir.mkdir(parents=True, exist_ok=True)
                self.db = connect(location)
                tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if tables and "scans" not in tables:  # someone else's database: not ours to add tables to
                    self.db.close()
                    raise StoreError(f"{self.dir / DB_NAME} 不是 jianfu 存储库的数据库")
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.execute("PRAGMA foreign_keys=ON")
                self.db.executescript(SCHEMA.read_text())
                self._migrate()
                self.files = FileArea(self.dir)  # after the database opened: no litter on failure
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"无法打开存储库 {where}：{_why(e)}") from e

    def _apply_schema_shared(self) -> None:
        """PostgreSQL: schema.sql and the migrations once per schema version (store.backends.
        apply_schema_once: workers open the store all the time, mid-scan, and must not take DDL locks)."""
        digest = hashlib.sha256(SCHEMA.read_bytes() + repr((self.ADDED_COLUMNS, self.ADDED_INDEXES)).encode()).hexdigest()

        def apply() -> None:
            self.db.executescript(SCHEMA.read_text())
            self._migrate()

        if schema_digest(self.db, "store") == digest:
            self._migrate()  # checks only (a column dropped by hand is still added back)
        else:
            apply_schema_once(self.db, "store", digest, apply)

    def _open_shared_read_only(self) -> Any:
        """A PostgreSQL store, read-only: no schema applied; a database without jianfu's tables is refused."""
        db = connect(self.location)
        try:
            db.execute("SET default_transaction_read_only = on")
            tables = {r[0] for r in db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema=current_schema()")}
            if not {"scans", "findings"} <= tables:
                raise StoreError(f"{self.location.split('?')[0]} 不是 jianfu 存储库的数据库")
        except BaseException:
            db.close()
            raise
        return db

    def _open_read_only(self) -> sqlite3.Connection:
        path = self.dir / DB_NAME
        if not path.is_file():
            raise StoreError(f"{self.dir} 不是 jianfu 存储库（没有 {DB_NAME}）")
        uri = path.resolve().as_uri()
        if not path.with_name(DB_NAME + "-wal").exists():
            # no writer has it open: check the file with `immutable` first, which creates nothing, so
            # a damaged file is refused before SQLite's reader makes its -wal/-shm files beside it
            self._checked(sqlite3.connect(f"{uri}?immutable=1", uri=True)).close()
        try:
            return self._checked(sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False, timeout=30))
        except sqlite3.OperationalError as e:  # a read-only directory (evidence media): nobody writes there
            if "unable to open" not in str(e):
                raise
            return self._checked(sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False))

    def _checked(self, db: sqlite3.Connection) -> sqlite3.Connection:
        """``db`` when it is a readable jianfu database; closed and refused (``StoreError``) if not."""
        db.row_factory = sqlite3.Row
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"scans", "findings"} <= tables:
                raise StoreError(f"{self.dir / DB_NAME} 不是 jianfu 存储库的数据库")
            db.execute("SELECT COUNT(*) FROM findings").fetchone()  # reads the table's pages: catches a cut
        except BaseException:
            db.close()
            raise
        return db

    # columns added to tables after stores were already made: (table, column, definition)
    ADDED_COLUMNS = (
        ("index_outbox", "rejected", "INTEGER NOT NULL DEFAULT 0"),
        ("index_outbox", "retry_at", "REAL"),
        # the process running a scan, to tell a killed scan from a running one (close_abandoned_scans)
        ("scans", "host", "TEXT"),
        ("scans", "pid", "INTEGER"),
        ("scans", "process_key", "TEXT"),
        ("findings", "tier", "TEXT NOT NULL DEFAULT 'rule'"),
        ("findings", "precedent", "TEXT"),
        ("findings", "case_id", "TEXT"),
        ("findings", "credit_code", "TEXT"),             # the institution in the ledger (ledger/scan.py)
        ("findings", "ledger", "TEXT"),                  # JSON: its ledger record when the scan checked it
    )
    # indexes on added columns (created after them): (name, table, columns)
    ADDED_INDEXES = (
        ("findings_case", "findings", "case_id"),
    )

    def _migrate(self) -> None:
        """Bring an older store's tables up to schema.sql (CREATE … IF NOT EXISTS adds no columns)."""
        for table, column, definition in self.ADDED_COLUMNS:
            have = {d[0] for d in self.db.execute(f"SELECT * FROM {table} LIMIT 0").description}
            if column not in have:
                # PostgreSQL: workers starting at once may race to add it
                exists = "IF NOT EXISTS " if self.shared else ""
                with self.db:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {exists}{column} {definition}")
        if self.shared:  # PostgreSQL: DDL only when something is missing (CREATE INDEX locks the table)
            indexes = {r[0] for r in self.db.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname=current_schema()")}
            if "cases_status" in indexes:
                self.db.execute("DROP INDEX IF EXISTS cases_status")
            added = [(n, t, c) for n, t, c in self.ADDED_INDEXES if n not in indexes]
        else:
            self.db.execute("DROP INDEX IF EXISTS cases_status")   # in stores of the first cases commits
            added = list(self.ADDED_INDEXES)
        for name, table, columns in added:
            with self.db:
                self.db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table}({columns})")
        if self.db.execute("SELECT 1 FROM findings WHERE case_id IS NULL LIMIT 1").fetchone():
            self.rebuild_cases(only_missing=True)  # findings saved before cases existed (or by older code)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def batched_writes(self, seconds: float = 0.5) -> Iterator[None]:
        """Group the writes made inside the block into one transaction about every ``seconds``
        (a scan: one commit per page costs more than the page's own statements). Each Store method
        stays atomic; a process killed inside the block loses at most the last ``seconds`` of
        writes, which the next scan of the site fetches again. Call ``commit_writes()`` when
        waiting, so nothing sits uncommitted. SQLite only; on PostgreSQL every write commits."""
        batched = getattr(self.db, "batched", None)
        if batched is None:
            yield
            return
        with batched(seconds):
            yield

    def commit_writes(self) -> None:
        """Commit what ``batched_writes`` holds (nothing to do outside it)."""
        commit = getattr(self.db, "commit_batch", None)
        if commit is not None:
            commit()

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
                "INSERT INTO scans(id, started_at, seeds, settings, target, host, pid, process_key) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (scan_id, utcnow(), json.dumps(seeds), json.dumps(settings or {}, default=str), target,
                 socket.gethostname(), os.getpid(), process_key(os.getpid())),
            )
        return scan_id

    def close_abandoned_scans(self) -> list[str]:
        """Scans left ``running`` by a process that is gone (killed, crashed, power cut): closed as
        ``interrupted`` with their counts. A scan whose process still runs is left alone, as is one
        started on another host or by a jianfu that did not record its process (nothing to check
        against). Returns the ids closed."""
        host = socket.gethostname()
        rows = self.db.execute("SELECT id, pid, process_key FROM scans WHERE status='running' AND host=? "
                               "AND pid IS NOT NULL AND process_key IS NOT NULL", (host,)).fetchall()
        closed = []
        for row in rows:
            if process_key(row["pid"]) != row["process_key"]:
                self.finish_scan(row["id"], "interrupted", if_status="running")
                closed.append(row["id"])
        return closed

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

    def record_page_address(self, scan_id: str, url: str, fetched_url: str, *, content_sha256: str | None,
                            warc_file: str | None, warc_offset: int | None) -> bool:
        """Note that the page ``url`` (canonical) was fetched at ``fetched_url`` in this scan, with
        those bytes. Returns True when ``fetched_url`` is the first address of the page in this scan
        (its capture is the page row), False for another address of a page already captured."""
        with self.db:
            first = self.db.execute("SELECT 1 FROM page_addresses WHERE scan_id=? AND url=? LIMIT 1",
                                    (scan_id, url)).fetchone() is None
            self.db.execute(
                """INSERT INTO page_addresses(scan_id, url, fetched_url, content_sha256, warc_file, warc_offset)
                   VALUES (?,?,?,?,?,?) ON CONFLICT (scan_id, fetched_url) DO UPDATE SET url=excluded.url,
                   content_sha256=excluded.content_sha256, warc_file=excluded.warc_file,
                   warc_offset=excluded.warc_offset""",
                (scan_id, url, fetched_url, content_sha256, warc_file, warc_offset))
        return first

    def page_addresses(self, url: str, scan_id: str | None = None) -> list[dict[str, Any]]:
        """Every address the page ``url`` (canonical) was fetched at (in ``scan_id``, or in any scan,
        newest first): fetched_url, scan_id, content_sha256, warc_file, warc_offset."""
        sql, args = "SELECT * FROM page_addresses WHERE url=?", [url]
        if scan_id:
            sql, args = sql + " AND scan_id=?", [*args, scan_id]
        return [dict(r) for r in self.db.execute(sql + " ORDER BY scan_id DESC, fetched_url", args)]

    def alternate_urls(self, url: str) -> list[str]:
        """The other addresses the page ``url`` (canonical) was seen at, in any scan, sorted."""
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT fetched_url FROM page_addresses WHERE url=? AND fetched_url != ? ORDER BY fetched_url",
            (url, url))]

    def alternate_url_map(self) -> dict[str, list[str]]:
        """canonical page URL → the other addresses it was seen at (any scan), for every page."""
        out: dict[str, list[str]] = {}
        for url, fetched in self.db.execute(
                "SELECT DISTINCT url, fetched_url FROM page_addresses WHERE fetched_url != url ORDER BY url, fetched_url"):
            out.setdefault(url, []).append(fetched)
        return out

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

    def pages_not_reached(self, scan_id: str, origins: Iterable[str]) -> list[str]:
        """Pages (canonical URLs) captured by an earlier scan on one of ``origins`` (``scheme://host``)
        that ``scan_id`` neither captured nor tried to fetch at any of their addresses."""
        prefixes = [o.rstrip("/") + "/" for o in origins]
        done = {r[0] for r in self.db.execute("SELECT url FROM pages WHERE scan_id=?", (scan_id,))}
        tried = {r[0] for r in self.db.execute("SELECT DISTINCT url FROM fetches WHERE scan_id=?", (scan_id,))}
        out = []
        for (url,) in self.db.execute("SELECT DISTINCT url FROM pages WHERE scan_id != ? ORDER BY url", (scan_id,)):
            if url in done or url in tried or not any(url.startswith(p) for p in prefixes):
                continue
            addresses = {r["fetched_url"] for r in self.page_addresses(url)}
            if not addresses & tried:
                out.append(url)
        return out

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
        findings = list(findings)
        inst_key = institution_key(institution, url)
        ad_key = ad_of(url, source, image_sha256, image_url)
        cid = case_id(inst_key, source, ad_key)
        with self.db:
            case_status = self._ensure_case(
                cid, inst_key=inst_key, institution=institution, district=district, source=source, ad_key=ad_key,
                url=url, image_url=image_url, image_sha256=image_sha256, now=now, scan_id=scan_id) if findings else ""
            for i, f in enumerate(findings):
                n = occurrences.get((f.rule_id, f.text), 0)
                occurrences[(f.rule_id, f.text)] = n + 1
                fid = finding_id(url, source, f.rule_id, f.text, n, image_sha256 or "")
                ids.append(fid)
                box = json.dumps(boxes[i]) if boxes is not None else None
                self.db.execute(
                    """INSERT INTO findings(id, category, rule_id, text, start, "end", score, severity, basis,
                         explanation, context, url, source, image_url, image_sha256, boxes, institution,
                         district, status, first_seen_at, last_seen_at, first_scan_id, last_scan_id, case_id,
                         tier, precedent)
                       VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                       ON CONFLICT(id) DO UPDATE SET start=excluded.start, "end"=excluded."end",
                         score=excluded.score, explanation=excluded.explanation, context=excluded.context,
                         boxes=excluded.boxes, basis=excluded.basis, severity=excluded.severity,
                         last_seen_at=excluded.last_seen_at, last_scan_id=excluded.last_scan_id,
                         case_id=excluded.case_id, tier=excluded.tier, precedent=excluded.precedent""",
                    (fid, f.category, f.rule_id, f.text, f.start, f.end, f.score, f.severity, f.basis,
                     json.dumps(list(f.explanation), ensure_ascii=False), context_of(text, f.start, f.end),
                     url, source, image_url, image_sha256, box, institution, district,
                     # a new finding in a dismissed case is dismissed too: the case never alerts again
                     "dismissed" if case_status == "dismissed" else "open",
                     now, now, scan_id, scan_id, cid, f.tier, f.precedent or None),
                )
            if findings:
                self._refresh_cases([cid])
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
            self._refresh_cases(self.case_ids_of(ids).values())
            _queue_for_index(self.db, ids, now)
        return len(ids)

    def findings(self, *, scan_id: str | None = None, category: str | None = None,
                 ids: Iterable[str] | None = None, status: str | None = None,
                 tier: str | None = None) -> Iterator[dict[str, Any]]:
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
        if tier:
            where.append("f.tier=?")
            args.append(tier)
        if ids is not None:
            id_list = list(ids)
            where.append(f"f.id IN ({', '.join('?' * len(id_list))})")
            args.extend(id_list)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY f.url, f.source, COALESCE(f.image_url, ''), f.start, f.rule_id"  # NULL first, as SQLite
        for row in self.db.execute(sql, args):
            yield finding_row(row)

    def reviewed_findings(self) -> list[dict[str, Any]]:
        """Findings an investigator confirmed or dismissed, as precedents for the matcher
        (``detectors.precedents.reviewed_precedents``): id, status, category, text, context, url,
        institution."""
        return [dict(r) for r in self.db.execute(
            """SELECT id, status, category, text, context, url, institution FROM findings
               WHERE status IN ('confirmed', 'dismissed') ORDER BY id""")]

    def set_status(self, finding_ids: Iterable[str], status: str, *, actor: str | None = None,
                   reason: str | None = None) -> int:
        """Review single findings; each change is also written to its case's review history
        (action ``finding``). The case's own status is decided with ``set_case_status``."""
        if status not in ("open", "confirmed", "dismissed"):
            raise ValueError(f"status must be open, confirmed or dismissed, not {status!r}")
        with self.db:
            id_list = list(finding_ids)
            before = {r[0]: (r[1], r[2]) for r in self.db.execute(
                f"SELECT id, status, case_id FROM findings WHERE id IN ({', '.join('?' * len(id_list))})", id_list)}
            cur = self.db.executemany("UPDATE findings SET status=? WHERE id=?",
                                      [(status, i) for i in id_list])
            for fid, (was, cid) in before.items():
                if cid and was != status:
                    self._review(cid, actor=actor or "jianfu review", action="finding", from_status=was,
                                 to_status=status, reason=reason, finding_id=fid)
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
    if "ledger" in d:  # the institution's ledger record (None when the site matched no ledger entry)
        d["ledger"] = json.loads(d["ledger"]) if d["ledger"] else None
    return d
