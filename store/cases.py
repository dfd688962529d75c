"""Cases: one institution × one ad × its violations — what investigators work on.

An *ad* is an image (keyed by its content SHA-256: the same banner on five pages of one
institution's site is one case) or a page's text (keyed by the page's canonical URL: ``/``,
``/index.html``, ``?utm_source=…`` and a trailing slash are one page; the words in the page's title
and in its heading are one case). The case id is a hash of (institution, kind, key), so it is the
same in every scan and every store; a finding belongs to exactly one case (``findings.case_id``).

``Store`` inherits :class:`CaseStore`: the ``cases`` table is kept by ``Store.save_findings`` and
``Store.resight`` (summary columns: categories, severity, counts, first/last seen), a review status
per case with its history in ``case_reviews`` (investigator proposes, supervisor approves, or a
direct decision), and the queries the web app and the CLI need. See ``docs/cases.md``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

STATUSES = ("open", "confirmed", "dismissed")
SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}
SOURCES = ("text", "image")
SORTS = {  # name → (column, default descending)
    "last_seen": ("last_seen_at", True),
    "first_seen": ("first_seen_at", True),
    "severity": ("severity_rank", True),
    "violations": ("violations", True),
    "institution": ("institution_key", False),
}
MAX_PAGE = 1000
MAX_LISTED = 500     # ids bound as parameters; more go through a temporary table


class CaseError(ValueError):
    """A case operation that cannot be done (unknown case, bad status, no pending proposal)."""


# -- keys ----------------------------------------------------------------------------------------
def canonical_url(url: str) -> str:
    """The one address a page is known by: the crawler's rule (``store.db.canonical_page_url``),
    so a case's page key is the page's own URL in the store."""
    from store.db import canonical_page_url  # store.db imports this module

    return canonical_page_url(url)


def site_of(url: str) -> str:
    s = urlsplit(url)
    return f"{s.scheme}://{s.netloc}".lower()


def institution_key(institution: str | None, url: str) -> str:
    """Who a case belongs to: the institution's name as scanned, or the site when unnamed."""
    return (institution or "").strip() or site_of(url)


def ad_of(url: str, source: str, image_sha256: str | None = None, image_url: str | None = None) -> str:
    """The ad a finding was read from: ``image_sha256`` for an image, the page's canonical URL for text."""
    if source == "image":
        return image_sha256 or canonical_url(image_url or url)
    return canonical_url(url)


def case_id(inst_key: str, source: str, ad_key: str) -> str:
    """Deterministic: the same institution, kind of ad and ad give the same id in every scan."""
    raw = "\x1f".join(("case/1", inst_key, source, ad_key))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def case_id_of(url: str, source: str, institution: str | None, image_sha256: str | None = None,
               image_url: str | None = None) -> str:
    """The id of the case a finding with these fields belongs to."""
    return case_id(institution_key(institution, url), source, ad_of(url, source, image_sha256, image_url))


def span_boxes(text_boxes: str | list | None, start: int, end: int) -> list[list[float]]:
    """Boxes of the rendered text runs overlapping [start, end) (``pages.text_boxes``)."""
    if not text_boxes:
        return []
    runs = json.loads(text_boxes) if isinstance(text_boxes, str) else text_boxes
    return [r["box"] for r in runs
            if isinstance(r, dict) and "box" in r and r.get("start", 0) < end and r.get("end", 0) > start]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _values(v: str | Iterable[str] | None) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [x for x in v.split(",") if x] if v else []
    return [x for x in v if x]


def encode_cursor(sort: str, value: Any, cid: str) -> str:
    raw = json.dumps([sort, value, cid], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(token: str, sort: str) -> tuple[Any, str]:
    try:
        sort_of, value, cid = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError) as e:
        raise CaseError("bad cursor") from e
    if sort_of != sort or not isinstance(cid, str):
        raise CaseError("the cursor belongs to another sort order")
    return value, cid


CASE_COLUMNS = ("id", "institution", "institution_key", "district", "source", "ad_key", "url", "image_url",
                "image_sha256", "title", "categories", "severity", "severity_rank", "violations", "findings",
                "pages", "status", "proposed_status", "proposal_id", "first_seen_at", "last_seen_at",
                "first_scan_id", "last_scan_id", "updated_at")


def case_row(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["categories"] = [c for c in (d.get("categories") or "").split(",") if c]
    return d


class CaseStore:
    """Case queries and review, mixed into :class:`store.Store` (``self.db`` is its connection)."""

    db: Any
    shared: bool = False   # a PostgreSQL store (Store sets it): rows are locked where SQLite serialises writers

    # -- kept by save_findings / resight (inside the caller's transaction) -------------------------
    def _ensure_case(self, cid: str, *, inst_key: str, institution: str | None, district: str | None,
                     source: str, ad_key: str, url: str, image_url: str | None, image_sha256: str | None,
                     now: str, scan_id: str) -> str:
        """The case's status, creating the row if it is new (summary columns are set by _refresh_cases)."""
        self.db.execute(
            """INSERT INTO cases(id, institution, institution_key, district, source, ad_key, url, image_url,
                 image_sha256, categories, severity, severity_rank, violations, findings, pages, status,
                 first_seen_at, last_seen_at, first_scan_id, last_scan_id, updated_at)
               VALUES (?,?,?,?,?,?,?,?,?,'','low',1,0,0,0,'open',?,?,?,?,?)
               ON CONFLICT (id) DO NOTHING""",
            (cid, institution, inst_key, district, source, ad_key,
             url if source == "image" else canonical_url(url), image_url, image_sha256,
             now, now, scan_id, scan_id, now))
        return self.db.execute("SELECT status FROM cases WHERE id=?", (cid,)).fetchone()[0]

    def _refresh_cases(self, case_ids: Iterable[str]) -> None:
        """Recompute the summary columns of these cases from their findings (caller's transaction)."""
        ids = sorted(set(case_ids))
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            acc: dict[str, dict[str, Any]] = {}
            for r in self.db.execute(
                    f"""SELECT case_id, category, severity, rule_id, text, url, district, first_seen_at,
                          last_seen_at, first_scan_id, last_scan_id FROM findings WHERE case_id IN ({marks})""",
                    chunk):
                a = acc.setdefault(r[0], {"cats": set(), "rank": 0, "viol": set(), "n": 0, "pages": set(),
                                          "district": None, "first": None, "last": None})
                a["cats"].add(r[1])
                a["rank"] = max(a["rank"], SEVERITY_RANK.get(r[2], 1))
                a["viol"].add((r[3], r[4]))
                a["n"] += 1
                a["pages"].add(r[5])
                a["district"] = a["district"] or r[6]
                if a["first"] is None or r[7] < a["first"][0]:
                    a["first"] = (r[7], r[9])
                if a["last"] is None or r[8] > a["last"][0]:
                    a["last"] = (r[8], r[10])
            sev = {v: k for k, v in SEVERITY_RANK.items()}
            now = _now()
            for cid, a in acc.items():
                self.db.execute(
                    """UPDATE cases SET categories=?, severity=?, severity_rank=?, violations=?, findings=?, pages=?,
                         district=COALESCE(?, district), first_seen_at=?, first_scan_id=?, last_seen_at=?,
                         last_scan_id=?, updated_at=? WHERE id=?""",
                    (",".join(sorted(a["cats"])), sev[a["rank"]], a["rank"], len(a["viol"]), a["n"], len(a["pages"]),
                     a["district"], a["first"][0], a["first"][1], a["last"][0], a["last"][1], now, cid))
            for cid in set(chunk) - set(acc):   # every finding moved elsewhere: the case has none now
                self.db.execute("UPDATE cases SET violations=0, findings=0, pages=0, updated_at=? WHERE id=?",
                                (now, cid))
        self._refresh_titles(ids)

    def _refresh_titles(self, case_ids: Sequence[str]) -> None:
        for cid in case_ids:
            row = self.db.execute(
                """SELECT p.title FROM findings f JOIN pages p ON p.url=f.url AND p.scan_id=f.last_scan_id
                   WHERE f.case_id=? AND p.title IS NOT NULL ORDER BY f.last_seen_at DESC LIMIT 1""",
                (cid,)).fetchone()
            if row:
                self.db.execute("UPDATE cases SET title=? WHERE id=?", (row[0], cid))

    def rebuild_cases(self, *, only_missing: bool = False) -> int:
        """Give every finding its case (stores made before cases, or after the canonical URL rule
        changed), carrying a review decision over to the new case when all of an old case's findings
        land in one new case. ``only_missing``: just the findings without a case (what opening an
        older store does). Returns how many findings changed case."""
        rows = self.db.execute(
            """SELECT id, url, source, image_sha256, image_url, institution, district, case_id, first_seen_at,
                 first_scan_id FROM findings""" + (" WHERE case_id IS NULL" if only_missing else "")).fetchall()
        moves: list[tuple[str, str]] = []
        moved_from: dict[str, set[str]] = defaultdict(set)
        with self.db:
            for r in rows:
                cid = case_id_of(r["url"], r["source"], r["institution"], r["image_sha256"], r["image_url"])
                if cid == r["case_id"]:
                    continue
                self._ensure_case(cid, inst_key=institution_key(r["institution"], r["url"]),
                                  institution=r["institution"], district=r["district"], source=r["source"],
                                  ad_key=ad_of(r["url"], r["source"], r["image_sha256"], r["image_url"]),
                                  url=r["url"], image_url=r["image_url"], image_sha256=r["image_sha256"],
                                  now=r["first_seen_at"], scan_id=r["first_scan_id"])
                moves.append((cid, r["id"]))
                if r["case_id"]:
                    moved_from[r["case_id"]].add(cid)
            self.db.executemany("UPDATE findings SET case_id=? WHERE id=?", moves)
            # a finding that joins a dismissed case is dismissed too (it must not alert)
            self.db.executemany(
                "UPDATE findings SET status='dismissed' WHERE id=? AND status='open' AND "
                "(SELECT status FROM cases WHERE id=?)='dismissed'", [(fid, cid) for cid, fid in moves])
            for old, new in moved_from.items():
                left = self.db.execute("SELECT COUNT(*) FROM findings WHERE case_id=?", (old,)).fetchone()[0]
                prev = self.db.execute("SELECT status FROM cases WHERE id=?", (old,)).fetchone()
                if left == 0 and len(new) == 1 and prev and prev[0] != "open":
                    (target,) = new
                    self.db.execute("UPDATE cases SET status=? WHERE id=? AND status='open'", (prev[0], target))
                    self.db.execute("UPDATE case_reviews SET case_id=? WHERE case_id=?", (target, old))
            self._refresh_cases([c for c, _ in moves] + list(moved_from))
            self.db.execute("DELETE FROM cases WHERE findings=0 AND id NOT IN (SELECT case_id FROM case_reviews)")
        return len(moves)

    # -- listing -----------------------------------------------------------------------------------
    def _case_filters(self, *, category: str | Iterable[str] | None = None,
                      district: str | Iterable[str] | None = None,
                      institution: str | Iterable[str] | None = None,
                      status: str | Iterable[str] | None = None,
                      severity: str | Iterable[str] | None = None,
                      source: str | Iterable[str] | None = None,
                      since: str | None = None, until: str | None = None,
                      new_since: str | None = None,
                      ids: Iterable[str] | None = None,
                      finding_ids: Iterable[str] | None = None,
                      scan_id: str | None = None) -> tuple[list[str], list[Any]]:
        where: list[str] = ["c.findings > 0"]
        args: list[Any] = []

        def one_of(column: str, values: list[str]) -> None:
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            args.extend(values)

        for column, value in (("c.district", district), ("c.status", status), ("c.severity", severity),
                              ("c.source", source)):
            if value is not None:
                one_of(column, _values(value) or [""])
        if institution is not None:
            names = _values(institution) or [""]
            marks = ",".join("?" * len(names))
            where.append(f"(c.institution IN ({marks}) OR c.institution_key IN ({marks}))")
            args.extend(names + names)
        if category is not None:   # the case's summary column: no join with findings
            cats = _values(category) or [""]
            where.append("(" + " OR ".join("(',' || c.categories || ',') LIKE ?" for _ in cats) + ")")
            args.extend(f"%,{c},%" for c in cats)
        if since:
            where.append("c.last_seen_at >= ?")
            args.append(since)
        if until:
            where.append("c.first_seen_at <= ?")
            args.append(until)
        if new_since:
            where.append("c.first_seen_at >= ?")
            args.append(new_since)
        if scan_id:
            where.append("EXISTS (SELECT 1 FROM findings f JOIN sightings s ON s.finding_id=f.id "
                         "WHERE f.case_id=c.id AND s.scan_id=?)")
            args.append(scan_id)
        if ids is not None:
            listed = sorted(set(ids))
            if len(listed) <= MAX_LISTED:
                one_of("c.id", listed or [""])
            else:
                where.append(f"c.id IN (SELECT id FROM {self._id_table('case', listed)})")
        if finding_ids is not None:
            listed = sorted(set(finding_ids))
            if len(listed) <= MAX_LISTED:
                where.append(f"c.id IN (SELECT f.case_id FROM findings f WHERE f.id IN "
                             f"({','.join('?' * len(listed))}))")
                args.extend(listed or [""])
            else:   # a full-text search's many hits: one join instead of thousands of parameters
                # the listed ids drive the join (CROSS JOIN keeps that order in SQLite): each is one
                # primary-key lookup in findings, never a scan of it
                where.append(f"c.id IN (SELECT f.case_id FROM {self._id_table('finding', listed)} t "
                             f"CROSS JOIN findings f WHERE f.id=t.id)")
        return where, args

    def _id_table(self, kind: str, ids: list[str]) -> str:
        """A temporary table (this connection's own) holding ``ids``; refilled only when they change,
        so a count and a page over the same search hits fill it once."""
        name = f"case_filter_{kind}_ids"
        key = hashlib.sha256("\x1f".join(ids).encode("utf-8")).hexdigest()
        cache = self.__dict__.setdefault("_id_tables", {})
        if cache.get(name) != key:
            with self.db:
                self.db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} (id TEXT PRIMARY KEY)")
                self.db.execute(f"DELETE FROM {name}")
                self.db.executemany(f"INSERT INTO {name}(id) VALUES (?)", [(i,) for i in ids])
            cache[name] = key
        return name

    def cases(self, *, sort: str = "last_seen", descending: bool | None = None, limit: int = 50,
              offset: int = 0, after: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        """A page of cases, most recently seen first by default.

        Filters (each optional; a list means any of them): ``category``, ``district``,
        ``institution`` (name, or site for unnamed ones), ``status``, ``severity``, ``source``
        (``text``/``image``), ``since``/``until`` (ISO time: seen in that period), ``new_since``
        (first seen at or after that time: new since the user's last visit), ``ids`` (case
        ids), ``finding_ids`` (cases holding any of these findings, e.g. a full-text search's hits),
        ``scan_id`` (seen in that scan). ``sort``: last_seen | first_seen | severity | violations |
        institution, ties broken by id. Paging: ``offset``, or keyset with ``after`` = the
        ``cursor`` of the previous page's last row (use it past the first few pages)."""
        if sort not in SORTS:
            raise CaseError(f"unknown sort {sort!r} (one of {', '.join(SORTS)})")
        column, default_desc = SORTS[sort]
        desc = default_desc if descending is None else descending
        limit = max(1, min(int(limit), MAX_PAGE))
        where, args = self._case_filters(**filters)
        if after:   # keyset: a row-value comparison, which both SQLite and PostgreSQL answer from the index
            value, cid = decode_cursor(after, f"{sort}:{'d' if desc else 'a'}")
            where.append(f"(c.{column}, c.id) {'<' if desc else '>'} (?, ?)")
            args += [value, cid]
        order = "DESC" if desc else "ASC"
        sql = (f"SELECT {', '.join('c.' + c for c in CASE_COLUMNS)} FROM cases c WHERE {' AND '.join(where)} "
               f"ORDER BY c.{column} {order}, c.id {order} LIMIT ? OFFSET ?")
        out = []
        for r in self.db.execute(sql, [*args, limit, 0 if after else max(0, int(offset))]):
            d = case_row(r)
            d["cursor"] = encode_cursor(f"{sort}:{'d' if desc else 'a'}", d[column], d["id"])
            out.append(d)
        return out

    def count_cases(self, **filters: Any) -> int:
        where, args = self._case_filters(**filters)
        return int(self.db.execute(f"SELECT COUNT(*) FROM cases c WHERE {' AND '.join(where)}", args).fetchone()[0])

    def case_facets(self, fields: Sequence[str] = ("category", "district", "institution", "status", "severity",
                                                   "source"), **filters: Any) -> dict[str, dict[str, int]]:
        """Counts of the filtered cases by each field, most first (a case counts once under each of
        its categories; ``institution`` counts by name, or by site for unnamed ones)."""
        columns = {"category": "categories", "district": "district", "institution": "institution_key",
                   "status": "status", "severity": "severity", "source": "source"}
        unknown = [f for f in fields if f not in columns]
        if unknown:
            raise CaseError(f"unknown facet {unknown[0]!r} (one of {', '.join(columns)})")
        where, args = self._case_filters(**filters)
        counts: dict[str, dict[str, int]] = {name: defaultdict(int) for name in fields}
        # one pass over the filtered cases (measured faster than a GROUP BY per field)
        sql = f"SELECT {', '.join('c.' + columns[f] for f in fields)} FROM cases c WHERE {' AND '.join(where)}"
        for row in self.db.execute(sql, args):
            for name, value in zip(fields, row, strict=True):
                if name == "category":
                    for cat in (value or "").split(","):
                        if cat:
                            counts[name][cat] += 1
                else:
                    counts[name][value if value is not None else ""] += 1
        return {name: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for name, c in counts.items()}

    def case_trend(self, *, bucket: str = "day", **filters: Any) -> list[tuple[str, int]]:
        """How many of the filtered cases were first seen per day (``bucket='day'``) or month, in UTC."""
        n = {"day": 10, "month": 7}[bucket]
        where, args = self._case_filters(**filters)
        sql = (f"SELECT SUBSTR(c.first_seen_at, 1, {n}) AS b, COUNT(*) FROM cases c WHERE {' AND '.join(where)} "
               f"GROUP BY SUBSTR(c.first_seen_at, 1, {n}) ORDER BY b")
        return [(b, k) for b, k in self.db.execute(sql, args)]

    def case_ids_of(self, finding_ids: Iterable[str]) -> dict[str, str]:
        """finding id → case id, for the given findings (unknown ids are left out)."""
        out: dict[str, str] = {}
        for chunk in _chunks(list(dict.fromkeys(finding_ids))):
            out.update(self.db.execute(
                f"SELECT id, case_id FROM findings WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall())
        return out

    def resolve_case_id(self, raw: str) -> str | None:
        """A case id from a full id or a unique prefix of at least 6 characters; None if unknown or ambiguous."""
        raw = raw.strip().lower()
        if self.db.execute("SELECT 1 FROM cases WHERE id=?", (raw,)).fetchone():
            return raw
        if len(raw) < 6 or not all(ch in "0123456789abcdef" for ch in raw):
            return None
        rows = self.db.execute("SELECT id FROM cases WHERE id LIKE ? LIMIT 2", (raw + "%",)).fetchall()
        return rows[0][0] if len(rows) == 1 else None

    # -- one case ----------------------------------------------------------------------------------
    def case(self, cid: str, *, detail: bool = True) -> dict[str, Any] | None:
        """One case: its summary columns and, with ``detail``, everything the case page shows:

        ``findings`` (finding rows), ``violations`` (one per rule × matched words, with the boxes
        to draw and the finding ids), ``pages`` (each page showing the ad: URL, title, last scan),
        ``image`` (the image row for an image ad: sha256 = blob, size, format, pHash, OCR lines),
        ``screenshot`` (for a page's text: the newest rendered capture's blob sha256, its page URL
        and scan; the violations' ``boxes`` are in its pixels), ``sightings`` (per scan),
        ``elsewhere`` (the same ad on other institutions' sites) and ``reviews`` (history)."""
        row = self.db.execute(f"SELECT {', '.join(CASE_COLUMNS)} FROM cases WHERE id=?", (cid,)).fetchone()
        if row is None:
            return None
        c = case_row(row)
        if not detail:
            return c
        from store.db import finding_row

        findings = [finding_row(r) for r in self.db.execute(
            """SELECT f.*, i.qr AS qr FROM findings f LEFT JOIN images i ON i.sha256=f.image_sha256
               WHERE f.case_id=? ORDER BY f.url, f.start, f.rule_id""", (cid,))]
        c["findings"] = findings
        pages = {}
        for f in findings:
            p = pages.setdefault(f["url"], {"url": f["url"], "scan_id": f["last_scan_id"],
                                            "last_seen_at": f["last_seen_at"], "image_url": f["image_url"]})
            if f["last_seen_at"] > p["last_seen_at"]:
                p.update(scan_id=f["last_scan_id"], last_seen_at=f["last_seen_at"])
        for p in pages.values():
            got = self.db.execute("SELECT title, screenshot_sha256, text_boxes, rendered FROM pages "
                                  "WHERE scan_id=? AND url=?", (p["scan_id"], p["url"])).fetchone()
            p["title"] = got["title"] if got else None
            p["screenshot_sha256"] = got["screenshot_sha256"] if got else None
            p["_text_boxes"] = got["text_boxes"] if got else None
        c["pages"] = sorted(({k: v for k, v in p.items() if not k.startswith("_")} for p in pages.values()),
                            key=lambda p: p["url"])
        c["image"] = None
        c["screenshot"] = None
        if c["source"] == "image" and c["image_sha256"]:
            img = self.db.execute("SELECT sha256, bytes, width, height, format, phash, ocr_engine, ocr, qr "
                                  "FROM images WHERE sha256=?", (c["image_sha256"],)).fetchone()
            if img:
                c["image"] = dict(img)
                c["image"]["ocr"] = json.loads(img["ocr"]) if img["ocr"] else None
                c["image"]["qr"] = json.loads(img["qr"]) if img["qr"] else []
        shot_page = None
        if c["source"] == "text":
            shot_page = max((p for p in pages.values() if p["screenshot_sha256"]),
                            key=lambda p: (p["last_seen_at"], p["url"] == c["url"]), default=None)
            if shot_page:
                c["screenshot"] = {"sha256": shot_page["screenshot_sha256"], "page_url": shot_page["url"],
                                   "scan_id": shot_page["scan_id"]}
        c["violations"] = _violations(findings, c["source"], shot_page)
        c["sightings"] = self.case_sightings(cid)
        c["elsewhere"] = self.same_ad_elsewhere(cid)
        c["reviews"] = self.case_reviews(cid)
        return c

    def case_findings(self, cid: str) -> list[dict[str, Any]]:
        from store.db import finding_row

        return [finding_row(r) for r in self.db.execute(
            """SELECT f.*, i.qr AS qr FROM findings f LEFT JOIN images i ON i.sha256=f.image_sha256
               WHERE f.case_id=? ORDER BY f.url, f.start, f.rule_id""", (cid,))]

    def case_sightings(self, cid: str) -> list[dict[str, Any]]:
        """Each scan that saw the case: scan id, when, how many of its findings, on which pages."""
        by_scan: dict[str, dict[str, Any]] = {}
        for r in self.db.execute(
                """SELECT s.scan_id, s.seen_at, f.url FROM sightings s JOIN findings f ON f.id=s.finding_id
                   WHERE f.case_id=? ORDER BY s.seen_at""", (cid,)):
            d = by_scan.setdefault(r[0], {"scan_id": r[0], "seen_at": r[1], "findings": 0, "pages": set()})
            d["findings"] += 1
            d["pages"].add(r[2])
            d["seen_at"] = min(d["seen_at"], r[1])
        return [d | {"pages": sorted(d["pages"])} for d in sorted(by_scan.values(), key=lambda d: d["seen_at"])]

    def same_ad_elsewhere(self, cid: str, max_distance: int | None = None) -> list[dict[str, Any]]:
        """For an image ad: the pages of *other* institutions (or sites) that show the same image
        or one within ``max_distance`` pHash bits (re-encoded, resized — see store/campaigns.py),
        with the case there when it has findings. Empty for a page's text."""
        from store.campaigns import MAX_DISTANCE, degenerate, hamming

        c = self.db.execute("SELECT source, image_sha256, institution_key FROM cases WHERE id=?", (cid,)).fetchone()
        if c is None or c[0] != "image" or not c[1]:
            return []
        limit = MAX_DISTANCE if max_distance is None else max_distance
        own = self.db.execute("SELECT phash FROM images WHERE sha256=?", (c[1],)).fetchone()
        near: dict[str, int] = {c[1]: 0}
        if own and own[0] and not degenerate(int(own[0], 16)):
            mine = int(own[0], 16)
            for sha, ph in self._phashes():
                d = hamming(mine, ph)
                if d <= limit:
                    near[sha] = min(near.get(sha, d), d)
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for chunk in _chunks(sorted(near)):
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(
                    f"""SELECT pi.sha256, pi.page_url, pi.image_url, p.institution, p.fetched_at
                        FROM page_images pi JOIN pages p ON p.scan_id=pi.scan_id AND p.url=pi.page_url
                        WHERE pi.sha256 IN ({marks}) ORDER BY p.fetched_at""", chunk):
                key = institution_key(r[3], r[1])
                if key == c[2]:
                    continue
                other = case_id(key, "image", r[0])
                d = out.setdefault((r[1], r[2]), {
                    "institution": r[3], "site": site_of(r[1]), "page_url": r[1], "image_url": r[2],
                    "sha256": r[0], "distance": near[r[0]], "first_seen_at": r[4], "last_seen_at": r[4],
                    "case_id": None, "_case": other})
                d["last_seen_at"] = r[4]
        have = set()
        for chunk in _chunks(sorted({d["_case"] for d in out.values()})):
            have |= {r[0] for r in self.db.execute(
                f"SELECT id FROM cases WHERE findings > 0 AND id IN ({','.join('?' * len(chunk))})", chunk)}
        for d in out.values():
            other = d.pop("_case")
            d["case_id"] = other if other in have else None
        return sorted(out.values(), key=lambda d: (d["distance"], d["site"], d["page_url"]))

    def _phashes(self) -> list[tuple[str, int]]:
        """(sha256, pHash) of every image, parsed once per connection and read again only when the
        number of images changed (case pages ask for it on every view)."""
        n = self.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        cached = self.__dict__.get("_phash_cache")
        if cached is None or cached[0] != n:
            cached = (n, [(sha, int(ph, 16)) for sha, ph in self.db.execute(
                "SELECT sha256, phash FROM images WHERE phash IS NOT NULL AND phash != ''")])
            self.__dict__["_phash_cache"] = cached
        return cached[1]

    # -- review ------------------------------------------------------------------------------------
    def case_reviews(self, cid: str) -> list[dict[str, Any]]:
        """The case's review history, oldest first: seq, at, actor, action (set | propose | approve |
        reject | finding), from_status, to_status, reason, proposal_id, finding_id."""
        return [dict(r) for r in self.db.execute(
            "SELECT * FROM case_reviews WHERE case_id=? ORDER BY seq", (cid,))]

    def _review(self, cid: str, *, actor: str, action: str, from_status: str | None, to_status: str,
                reason: str | None, proposal_id: str | None = None, finding_id: str | None = None) -> str:
        rid = uuid.uuid4().hex
        # the next number in one statement, so two writers never take the same one (PostgreSQL: with
        # the case's row locked, as READ COMMITTED would let two statements see the same MAX)
        if self.shared:
            self.db.execute("SELECT 1 FROM cases WHERE id=? FOR UPDATE", (cid,))
        self.db.execute(
            """INSERT INTO case_reviews(id, case_id, seq, at, actor, action, from_status, to_status, reason,
                 proposal_id, finding_id)
               SELECT ?, ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ? FROM case_reviews WHERE case_id=?""",
            (rid, cid, _now(), actor, action, from_status, to_status, reason, proposal_id, finding_id, cid))
        return rid

    def _case_for_update(self, cid: str) -> Any:
        row = self.db.execute("SELECT id, status, proposed_status, proposal_id FROM cases WHERE id=?"
                              + (" FOR UPDATE" if self.shared else ""), (cid,)).fetchone()
        if row is None:
            raise CaseError(f"unknown case {cid}")
        return row

    def _apply_case_status(self, cid: str, status: str) -> None:
        """The case's decision goes to its findings too (a confirmed case keeps the findings that were
        dismissed one by one), and they are queued for the search index."""
        from store.db import _queue_for_index

        self.db.execute("UPDATE cases SET status=?, proposed_status=NULL, proposal_id=NULL, updated_at=? WHERE id=?",
                        (status, _now(), cid))
        keep = " AND status != 'dismissed'" if status == "confirmed" else ""
        ids = [r[0] for r in self.db.execute(f"SELECT id FROM findings WHERE case_id=?{keep}", (cid,))]
        self.db.executemany("UPDATE findings SET status=? WHERE id=?", [(status, i) for i in ids])
        _queue_for_index(self.db, ids, _now())

    def set_case_status(self, case_ids: Iterable[str], status: str, *, actor: str,
                        reason: str | None = None) -> int:
        """Decide directly (the CLI, or a supervisor): each case and its findings take ``status``; the
        history records who, when, from → to and why; a pending proposal is superseded. Returns how
        many cases changed."""
        _check_status(status)
        changed = 0
        with self.db:
            for cid in case_ids:
                row = self._case_for_update(cid)
                if row["status"] == status and not row["proposal_id"]:
                    continue
                self._review(cid, actor=actor, action="set", from_status=row["status"], to_status=status,
                             reason=reason, proposal_id=row["proposal_id"])
                self._apply_case_status(cid, status)
                changed += 1
        return changed

    def propose_case_status(self, cid: str, status: str, *, actor: str, reason: str) -> str:
        """An investigator proposes ``status`` with a reason; nothing changes until approved. A newer
        proposal replaces a pending one. Returns the proposal's id."""
        _check_status(status)
        if not (reason or "").strip():
            raise CaseError("a proposal needs a reason")
        with self.db:
            row = self._case_for_update(cid)
            rid = self._review(cid, actor=actor, action="propose", from_status=row["status"], to_status=status,
                               reason=reason)
            self.db.execute("UPDATE cases SET proposed_status=?, proposal_id=?, updated_at=? WHERE id=?",
                            (status, rid, _now(), cid))
        return rid

    def decide_case_proposal(self, cid: str, *, approve: bool, actor: str, reason: str | None = None,
                             proposal_id: str | None = None) -> dict[str, Any]:
        """A supervisor approves (the case takes the proposed status) or rejects (nothing changes)
        the case's pending proposal. With ``proposal_id``, only if that is still the pending one.
        Returns the case (without detail)."""
        with self.db:
            row = self._case_for_update(cid)
            if not row["proposal_id"] or (proposal_id and proposal_id != row["proposal_id"]):
                raise CaseError(f"case {cid} has no such pending proposal")
            self._review(cid, actor=actor, action="approve" if approve else "reject", from_status=row["status"],
                         to_status=row["proposed_status"] if approve else row["status"], reason=reason,
                         proposal_id=row["proposal_id"])
            if approve:
                self._apply_case_status(cid, row["proposed_status"])
            else:
                self.db.execute("UPDATE cases SET proposed_status=NULL, proposal_id=NULL, updated_at=? WHERE id=?",
                                (_now(), cid))
        return self.case(cid, detail=False) or {}

    def pending_proposals(self, **filters: Any) -> list[dict[str, Any]]:
        """Cases with a proposal waiting for a supervisor (same filters as :meth:`cases`), oldest first."""
        where, args = self._case_filters(**filters)
        return [case_row(r) for r in self.db.execute(
            f"""SELECT {', '.join('c.' + c for c in CASE_COLUMNS)} FROM cases c
                JOIN case_reviews r ON r.id=c.proposal_id WHERE {' AND '.join(where)} ORDER BY r.at, c.id""",
            args)]


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise CaseError(f"status must be open, confirmed or dismissed, not {status!r}")


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _violations(findings: list[dict[str, Any]], source: str, shot_page: dict[str, Any] | None
                ) -> list[dict[str, Any]]:
    """One entry per rule × matched words: the boxes to draw for every occurrence, in the image's
    pixels (an image ad: from one page, they are the same on every page) or in the screenshot's (a
    rendered page's text: from the screenshot's page)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    box_page = None
    if source == "image" and findings:
        box_page = min(f["url"] for f in findings)
    elif shot_page:
        box_page = shot_page["url"]
    for f in findings:
        v = out.setdefault((f["rule_id"], f["text"]), {
            "category": f["category"], "rule_id": f["rule_id"], "text": f["text"], "severity": f["severity"],
            "score": f["score"], "basis": f["basis"], "explanation": f["explanation"], "context": f["context"],
            "start": f["start"], "end": f["end"], "status": f["status"], "tier": f.get("tier") or "rule",
            "finding_ids": [], "urls": [],
            "boxes": [], "occurrences": 0})
        v["finding_ids"].append(f["id"])
        if f["url"] not in v["urls"]:
            v["urls"].append(f["url"])
        v["score"] = max(v["score"], f["score"])
        if f["url"] == box_page:
            v["occurrences"] += 1
            if source == "image":
                v["boxes"].extend(_flat_boxes(f["boxes"]))
            elif shot_page:
                v["boxes"].extend(f["boxes"] or span_boxes(shot_page.get("_text_boxes"), f["start"], f["end"]))
    return sorted(out.values(), key=lambda v: (-SEVERITY_RANK.get(v["severity"], 1), v["category"], v["start"]))


def _flat_boxes(boxes: Any) -> list[Any]:
    """An image finding's ``boxes``: the OCR boxes (four points each) of the words it matched."""
    return list(boxes or [])
