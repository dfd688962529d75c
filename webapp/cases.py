"""The app's view of the store's cases (``store.cases``, docs/cases.md): listing with filters and
full-text search, one case, review, the overview and institution figures.

A case is one institution × one ad (an image, or a page's text) × its violations; the store keeps
cases and their review history. Full-text search goes through the search interface (``search``:
Elasticsearch when configured, the store's FTS5 otherwise); its hits (findings) become cases
through ``Store.cases(finding_ids=…)``. The user's districts are a filter of every query here.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings

from store import Store

_local = threading.local()
TREND_DAYS = 30
CACHE_SECONDS = 60
MAX_SEARCH_HITS = 30_000  # findings a full-text search may turn into cases in one listing
NO_DISTRICT = ""          # cases scanned without --district: visible to admins only


class QueryError(Exception):
    """A search the user typed that cannot run (bad syntax, index down); one Chinese line."""


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    size: int
    notes: list[str] = field(default_factory=list)
    next_after: str | None = None

    @property
    def has_next(self) -> bool:
        return self.page * self.size < self.total

    @property
    def first(self) -> int:
        return (self.page - 1) * self.size + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return (self.page - 1) * self.size + len(self.rows)


def store() -> Store:
    """One store connection per server thread."""
    s = getattr(_local, "store", None)
    if s is None:
        s = _local.store = Store(settings.STORE_LOCATION)
    return s


def search_backend(st: Store) -> Any:
    if settings.ES_URL:
        from search.elastic import ElasticBackend

        b = getattr(_local, "es", None)
        if b is None:
            b = _local.es = ElasticBackend(settings.ES_URL, alias=settings.ES_INDEX, timeout=10.0)
        return b
    from search.sqlite_fts import SqliteBackend

    return SqliteBackend(st)


def _utc(day: str, end: bool = False) -> str | None:
    """'2026-11-28' (a 北京时间 date) → the UTC ISO time of its start (or its end)."""
    try:
        d = date.fromisoformat(day)
    except ValueError:
        raise QueryError(f"日期格式不对：{day[:20]}（应为 2026-11-28）") from None
    start = datetime(d.year, d.month, d.day, tzinfo=UTC) - timedelta(hours=8)
    t = start + timedelta(days=1, milliseconds=-1) if end else start
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _store_filters(allowed: list[str] | None, filters: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in filters.items()
                           if k in ("category", "district", "institution", "status", "severity", "source") and v}
    if allowed is not None:
        want = out.get("district")
        out["district"] = [want] if want and want in allowed else (list(allowed) if not want else ["\x00none"])
    if filters.get("since"):
        out["since"] = _utc(filters["since"])
    if filters.get("until"):
        out["until"] = _utc(filters["until"], end=True)
    return out


def matching_findings(st: Store, q: str, allowed: list[str] | None) -> tuple[list[str], bool]:
    """Ids of the findings the words match (through the search interface, within the districts),
    and whether there were more than ``MAX_SEARCH_HITS``."""
    from search.base import SearchError, SearchQuery

    filters = {"district": tuple(allowed) or ("\x00none",)} if allowed is not None else {}
    query = SearchQuery(text=q, filters=filters, sort="newest", facets=(), highlight=False)
    try:
        ids = search_backend(st).ids(query, limit=MAX_SEARCH_HITS + 1)
    except SearchError as e:
        from webapp.labels import search_error

        raise QueryError(search_error(e)) from e
    return ids[:MAX_SEARCH_HITS], len(ids) > MAX_SEARCH_HITS


def query(st: Store, *, allowed: list[str] | None, q: str, filters: dict[str, str], page: int, size: int,
          after: str | None = None) -> Page:
    """A page of cases. ``page`` pages by offset; ``after`` (the previous page's last cursor) pages by
    keyset, which costs the same on page 1 and page 5,000."""
    f = _store_filters(allowed, filters)
    notes = []
    if q:
        hits, more = matching_findings(st, q, allowed)
        if more:
            notes.append(f"匹配的违规用语超过 {MAX_SEARCH_HITS} 处，只列出最近的部分；请加上筛选条件缩小范围。")
        f["ids"] = sorted(set(st.case_ids_of(hits).values())) or ["\x00none"]
    total = st.count_cases(**f)
    if after:
        rows = st.cases(limit=size, after=after, **f)
    else:
        rows = st.cases(limit=size, offset=(page - 1) * size, **f)
    return Page(rows, total, page, size, notes, rows[-1]["cursor"] if rows else None)


def _cached(key: str, compute: Any, seconds: int = CACHE_SECONDS) -> Any:
    """Figures over all of a user's cases change only when a scan or a review lands: kept for a
    minute per district set, so a page of the list does not recount 100,000 findings."""
    from django.core.cache import cache

    full = "jianfu:" + hashlib.sha256(f"{settings.STORE_DIR}|{key}".encode()).hexdigest()
    got = cache.get(full)
    if got is None:
        got = compute()
        cache.set(full, got, seconds)
    return got


def _scope(allowed: list[str] | None) -> str:
    return "*" if allowed is None else "\x1f".join(sorted(allowed))


def facets(st: Store, allowed: list[str] | None) -> dict[str, list[str]]:
    def compute() -> dict[str, list[str]]:
        got = st.case_facets(("district", "institution"), **_store_filters(allowed, {}))
        return {k: sorted(v for v in vals if v) for k, vals in got.items()}

    return _cached("facets|" + _scope(allowed), compute)


def get(st: Store, case_id: str) -> dict[str, Any] | None:
    """One case with everything the case page shows, plus ``figures`` to draw (see ``charts``)."""
    c = st.case(case_id)
    if c is None:
        return None
    boxes = [b for v in c["violations"] for b in v["boxes"]]
    figures = []
    if c.get("image"):
        img = c["image"]
        figures.append({"kind": "广告图片", "sha256": img["sha256"], "width": img.get("width"),
                        "height": img.get("height"), "boxes": boxes})
    if c.get("screenshot"):
        from PIL import Image

        sha = c["screenshot"]["sha256"]
        try:
            with Image.open(st.blob_path(sha)) as im:
                w, h = im.size
        except (OSError, ValueError):
            w = h = 0
        figures.append({"kind": "网页截图", "sha256": sha, "width": w, "height": h, "boxes": boxes,
                        "page_url": c["screenshot"]["page_url"]})
    for fig in figures:
        fig["raster"] = _blob_type(st, fig["sha256"]) is not None
    c["figures"] = figures
    c["words"] = sorted({v["text"] for v in c["violations"]})
    return c


IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF87a": "image/gif",
               b"GIF89a": "image/gif"}


def sniff_image(head: bytes) -> str | None:
    """The real type of a raster image from its first bytes; None for anything else (SVG, HTML…)."""
    for magic, ctype in IMAGE_TYPES.items():
        if head.startswith(magic):
            return ctype
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _blob_type(st: Store, sha256: str) -> str | None:
    try:
        with st.blob_path(sha256).open("rb") as fh:
            return sniff_image(fh.read(16))
    except OSError:
        return None


def blob_digests(case: dict[str, Any]) -> set[str]:
    """The blobs a case may show: its image and its page screenshots."""
    out = {f["sha256"] for f in case.get("figures", []) if f.get("sha256")}
    out |= {p["screenshot_sha256"] for p in case.get("pages", []) if p.get("screenshot_sha256")}
    return out


def pending(st: Store, allowed: list[str] | None) -> list[dict[str, Any]]:
    f = _store_filters(allowed, {})
    out = []
    for c in st.pending_proposals(**f):
        prop = next((r for r in reversed(st.case_reviews(c["id"])) if r["id"] == c["proposal_id"]), None)
        out.append({**c, "proposal": prop})
    return out


def overview(st: Store, allowed: list[str] | None, since: datetime | None) -> dict[str, Any]:
    f = _store_filters(allowed, {})
    cutoff = since.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if since else None

    def compute() -> dict[str, Any]:
        open_f = {**f, "status": "open"}
        fac = st.case_facets(("category", "district", "institution"), **open_f)
        return {
            "open": st.count_cases(**open_f), "total": st.count_cases(**f),
            "by_category": list(fac["category"].items()),
            "by_district": [(k or "未分区", n) for k, n in fac["district"].items()],
            "by_institution": list(fac["institution"].items())[:20],
            "trend_all": st.case_trend(**f),
        }

    data = dict(_cached("overview|" + _scope(allowed), compute))
    data["new"] = count_new(st, f, cutoff, data["trend_all"])
    data["trend"] = last_days(data.pop("trend_all"))
    return data


def count_new(st: Store, f: dict[str, Any], cutoff: str | None, trend: list[tuple[str, int]]) -> int:
    """Cases first seen at or after ``cutoff`` (all when None)."""
    if cutoff is None:
        return sum(n for _, n in trend)
    return st.count_cases(new_since=cutoff, **f)


def last_days(trend: list[tuple[str, int]], days: int = TREND_DAYS) -> list[tuple[str, int]]:
    counts = dict(trend)
    today = datetime.now(UTC).date()
    return [((today - timedelta(days=i)).isoformat(), counts.get((today - timedelta(days=i)).isoformat(), 0))
            for i in range(days - 1, -1, -1)]


def institutions(st: Store, allowed: list[str] | None) -> list[dict[str, Any]]:
    f = _store_filters(allowed, {})
    total = st.case_facets(("institution",), **f)["institution"]
    open_ = st.case_facets(("institution",), **f, status="open")["institution"]
    return sorted(({"name": k, "cases": n, "open": open_.get(k, 0)} for k, n in total.items() if k),
                  key=lambda r: (-r["open"], -r["cases"], r["name"]))


def institution(st: Store, name: str, allowed: list[str] | None) -> dict[str, Any] | None:
    f = {**_store_filters(allowed, {}), "institution": name}
    total = st.count_cases(**f)
    if not total:
        return None
    rows = st.cases(limit=200, **f)
    scan_ids = {r["last_scan_id"] for r in rows} | {r["first_scan_id"] for r in rows}
    scans = sorted((s for s in (st.scan(i) for i in scan_ids) if s), key=lambda s: s["started_at"], reverse=True)
    return {"cases": rows, "total": total, "open": st.count_cases(**f, status="open"),
            "districts": sorted({r["district"] or "" for r in rows}), "scans": scans,
            "trend": last_days(st.case_trend(**f))}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
