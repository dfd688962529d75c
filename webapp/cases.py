"""The app's view of the store's cases: listing with filters, full-text search, one case, status.

A case is one institution × one ad (an image, or a page's text) × its violations; the store
groups findings into cases and keeps their review status (``store``). Full-text search goes
through the search interface (``search``: Elasticsearch when configured, the store's FTS5
otherwise): the matching findings are mapped to their cases. District limits are applied here,
in the query, for every caller.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings

from store import Store

_local = threading.local()
SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}
TREND_DAYS = 30


class QueryError(Exception):
    """A search the user typed that cannot run (bad syntax, index down); one Chinese line."""


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    size: int

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
        s = _local.store = Store(settings.STORE_DIR)
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


def matching_findings(st: Store, q: str, allowed: list[str] | None) -> list[str]:
    """Ids of the findings the words match, through the search interface, within the districts."""
    from search.base import SearchError, SearchQuery

    filters = {"district": tuple(allowed)} if allowed is not None else {}
    query = SearchQuery(text=q, filters=filters, sort="newest", facets=(), highlight=False, size=1000)
    try:
        query.validate()
        return [d["id"] for d in search_backend(st).export(query)]
    except SearchError as e:
        raise QueryError(f"搜索条件无法执行：{e}") from e


# -- provisional grouping (until the store's case API is merged) ---------------------------------
def _case_key(f: dict[str, Any]) -> str:
    ad = f["image_sha256"] if f["source"] == "image" and f.get("image_sha256") else f["url"]
    raw = "\x1f".join([f.get("institution") or "", f["source"], ad])
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def _all_cases(st: Store) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in st.findings():
        groups[_case_key(f)].append(f)
    return {cid: _summary(cid, fs) for cid, fs in groups.items()}


def _summary(cid: str, fs: list[dict[str, Any]]) -> dict[str, Any]:
    first = fs[0]
    statuses = {f["status"] for f in fs}
    status = "open" if "open" in statuses else ("confirmed" if "confirmed" in statuses else "dismissed")
    return {
        "id": cid, "institution": first.get("institution") or "", "district": first.get("district") or "",
        "source": first["source"], "url": first["url"], "image_url": first.get("image_url"),
        "image_sha256": first.get("image_sha256"),
        "categories": sorted({f["category"] for f in fs}),
        "words": sorted({f["text"] for f in fs}),
        "severity": max((f["severity"] for f in fs), key=lambda s: SEVERITY_RANK.get(s, 0)),
        "status": status, "findings": fs, "finding_count": len(fs),
        "first_seen_at": min(f["first_seen_at"] for f in fs), "last_seen_at": max(f["last_seen_at"] for f in fs),
    }


def _visible(c: dict[str, Any], allowed: list[str] | None) -> bool:
    return allowed is None or (c["district"] or "") in allowed


def query(st: Store, *, allowed: list[str] | None, q: str, filters: dict[str, str], page: int,
          size: int) -> Page:
    ids = set(matching_findings(st, q, allowed)) if q else None
    rows = []
    for c in _all_cases(st).values():
        if not _visible(c, allowed):
            continue
        if ids is not None and not any(f["id"] in ids for f in c["findings"]):
            continue
        if not _matches(c, filters):
            continue
        rows.append(c)
    rows.sort(key=lambda c: (c["last_seen_at"], c["id"]), reverse=True)
    start = (page - 1) * size
    return Page(rows[start:start + size], len(rows), page, size)


def _matches(c: dict[str, Any], f: dict[str, str]) -> bool:
    if f.get("category") and f["category"] not in c["categories"]:
        return False
    for k in ("district", "institution", "status", "severity", "source"):
        if f.get(k) and (c.get(k) or "") != f[k]:
            return False
    if f.get("since") and c["last_seen_at"][:10] < f["since"]:
        return False
    return not (f.get("until") and c["last_seen_at"][:10] > f["until"])


def facets(st: Store, allowed: list[str] | None) -> dict[str, list[str]]:
    cs = [c for c in _all_cases(st).values() if _visible(c, allowed)]
    return {"district": sorted({c["district"] for c in cs if c["district"]}),
            "institution": sorted({c["institution"] for c in cs if c["institution"]})}


def get(st: Store, case_id: str) -> dict[str, Any] | None:
    c = _all_cases(st).get(case_id)
    if c is None:
        return None
    figures = []
    if c["source"] == "image" and c["image_sha256"]:
        img = st.image(c["image_sha256"]) or {}
        figures.append({"kind": "广告图片", "sha256": c["image_sha256"], "width": img.get("width"),
                        "height": img.get("height"), "boxes": [b for f in c["findings"] for b in (f["boxes"] or [])]})
    c["figures"] = figures
    c["sightings"] = []
    c["elsewhere"] = []
    c["history"] = []
    return c


def blob_digests(case: dict[str, Any]) -> set[str]:
    return {f["sha256"] for f in case.get("figures", []) if f.get("sha256")}


def set_status(st: Store, case_id: str, status: str, *, by: str, reason: str) -> None:
    c = _all_cases(st)[case_id]
    st.set_status([f["id"] for f in c["findings"]], status)


def overview(st: Store, allowed: list[str] | None, since: datetime | None) -> dict[str, Any]:
    cs = [c for c in _all_cases(st).values() if _visible(c, allowed)]
    cutoff = since.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if since else ""
    new = [c for c in cs if c["first_seen_at"] > cutoff]
    open_ = [c for c in cs if c["status"] == "open"]
    by_cat: Counter[str] = Counter(k for c in open_ for k in c["categories"])
    days = Counter(c["first_seen_at"][:10] for c in cs)
    today = datetime.now(UTC).date()
    trend = [((today - timedelta(days=i)).isoformat(), days.get((today - timedelta(days=i)).isoformat(), 0))
             for i in range(TREND_DAYS - 1, -1, -1)]
    return {
        "new": len(new), "open": len(open_), "total": len(cs),
        "by_category": by_cat.most_common(),
        "by_district": Counter(c["district"] or "未分区" for c in open_).most_common(),
        "by_institution": Counter(c["institution"] or "未知机构" for c in open_).most_common(20),
        "trend": trend,
    }


def institutions(st: Store, allowed: list[str] | None) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for c in _all_cases(st).values():
        if not _visible(c, allowed) or not c["institution"]:
            continue
        r = out.setdefault(c["institution"], {"name": c["institution"], "district": c["district"], "cases": 0,
                                              "open": 0, "last_seen_at": ""})
        r["cases"] += 1
        r["open"] += c["status"] == "open"
        r["last_seen_at"] = max(r["last_seen_at"], c["last_seen_at"])
    return sorted(out.values(), key=lambda r: (-r["open"], r["name"]))


def institution(st: Store, name: str, allowed: list[str] | None) -> dict[str, Any] | None:
    cs = [c for c in _all_cases(st).values() if c["institution"] == name and _visible(c, allowed)]
    if not cs:
        return None
    days = Counter(c["first_seen_at"][:10] for c in cs)
    today = datetime.now(UTC).date()
    trend = [((today - timedelta(days=i)).isoformat(), days.get((today - timedelta(days=i)).isoformat(), 0))
             for i in range(TREND_DAYS - 1, -1, -1)]
    cs.sort(key=lambda c: c["last_seen_at"], reverse=True)
    return {"cases": cs[:200], "total": len(cs), "open": sum(c["status"] == "open" for c in cs),
            "scans": [], "trend": trend, "district": cs[0]["district"]}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
