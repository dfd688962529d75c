"""The search interface both backends implement: query, result, errors, the query language.

Query language (the same on both backends, see docs/search.md):

- words separated by spaces must all occur (AND); ``a OR b`` needs either; ``-word`` excludes;
  ``"two words"`` is one phrase. A word matches as a substring of the finding's matched text or its
  context: ``幼小衔接`` finds ``幼小衔接班``; one- and two-character words work too.
- Filters (category, rule, institution, district, severity, status, source, since/until) are exact
  and combine with AND; several values for one filter combine with OR.
- An empty query with no filter is refused; an empty query with a filter lists the filtered set.
"""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

FACETS: tuple[str, ...] = ("category", "rule_id", "institution", "district", "severity", "status", "source")
DEFAULT_FACETS: tuple[str, ...] = ("category", "institution", "district", "severity", "status")
SORTS: tuple[str, ...] = ("relevance", "newest", "oldest", "severity", "score")
SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}
FILTER_FIELDS = FACETS
MAX_QUERY_CHARS = 500
MAX_TERMS = 32
MAX_PAGE_SIZE = 1000
FACET_SIZE = 50
HIGHLIGHT_PRE, HIGHLIGHT_POST = "<em>", "</em>"
SEARCH_FIELDS = ("text", "context")

# Fields every hit and every export row carries (page text is in the Elasticsearch document for
# Kibana but not in results: it is large and lives in the store).
RESULT_FIELDS: tuple[str, ...] = (
    "id", "category", "rule_id", "text", "context", "severity", "score", "status", "institution",
    "district", "url", "source", "image_url", "image_sha256", "basis", "start", "end",
    "first_seen_at", "last_seen_at", "first_scan_id", "last_scan_id",
)


class SearchError(Exception):
    """A search or indexing failure to show the user in one line."""


class QuerySyntaxError(SearchError):
    pass


class BackendUnavailable(SearchError):
    """The index cannot be reached (refused, timed out, not Elasticsearch)."""


class MappingConflict(SearchError):
    """The existing index was built with another mapping; it must be rebuilt (jianfu index)."""


# -- the query ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedQuery:
    groups: tuple[tuple[str, ...], ...]  # AND of groups, each an OR of terms
    negatives: tuple[str, ...]

    @property
    def positive_terms(self) -> list[str]:
        return [t for g in self.groups for t in g]

    @property
    def empty(self) -> bool:
        return not self.groups and not self.negatives


_TOKEN = re.compile(r'(-?)"([^"]*)"|(\S+)')


def _searchable(term: str) -> bool:
    return any(unicodedata.category(c)[0] in "LN" for c in term)


def parse_query(text: str) -> ParsedQuery:
    """Parse the query language; raises QuerySyntaxError with a one-line reason."""
    text = (text or "").strip()
    if len(text) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(f"query too long ({len(text)} characters; at most {MAX_QUERY_CHARS})")
    if text.count('"') % 2:
        raise QuerySyntaxError("unbalanced quote in query")
    items: list[tuple[str, bool, bool]] = []  # (term, negated, is_or_operator)
    for m in _TOKEN.finditer(text):
        dash, quoted, bare = m.group(1), m.group(2), m.group(3)
        if quoted is not None:
            term = " ".join(quoted.split())
            if not term:
                raise QuerySyntaxError('empty phrase "" in query')
            items.append((term, bool(dash), False))
        elif bare == "OR":
            items.append(("OR", False, True))
        else:
            neg = bare.startswith("-")
            term = bare[1:] if neg else bare
            if neg and not term:
                raise QuerySyntaxError("'-' must be followed by a word")
            items.append((term, neg, False))
    groups: list[list[str]] = []
    negatives: list[str] = []
    pending_or = False
    for idx, (term, neg, is_or) in enumerate(items):
        if is_or:
            if idx == 0 or idx == len(items) - 1 or pending_or:
                raise QuerySyntaxError("OR needs a word on each side")
            if items[idx - 1][1]:
                raise QuerySyntaxError("OR cannot join an excluded (-) word")
            pending_or = True
            continue
        if not _searchable(term):
            raise QuerySyntaxError(f"{term!r} has no letters or digits to search for")
        if neg:
            if pending_or:
                raise QuerySyntaxError("OR cannot join an excluded (-) word")
            negatives.append(term)
        elif pending_or:
            groups[-1].append(term)
            pending_or = False
        else:
            groups.append([term])
    n = sum(len(g) for g in groups) + len(negatives)
    if n > MAX_TERMS:
        raise QuerySyntaxError(f"too many words in query ({n}; at most {MAX_TERMS})")
    if negatives and not groups:
        raise QuerySyntaxError("a query of only excluded (-) words matches everything; add a word")
    return ParsedQuery(tuple(tuple(g) for g in groups), tuple(negatives))


def parse_time(value: str | None, what: str = "since") -> str | None:
    """Normalise a date or ISO time to the store's form, 2024-05-01T00:00:00.000Z."""
    if value in (None, ""):
        return None
    v = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            dt = datetime.strptime(v, "%Y-%m-%d").replace(tzinfo=UTC)
        else:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
    except ValueError:
        raise QuerySyntaxError(f"--{what} must be a date (2024-05-01) or ISO time, not {value!r}") from None
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class SearchQuery:
    text: str = ""
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)  # field -> allowed values
    since: str | None = None  # last_seen_at >= since
    until: str | None = None  # last_seen_at < until
    sort: str = "relevance"
    size: int = 20
    after: str | None = None  # opaque cursor from SearchResult.next_cursor
    facets: tuple[str, ...] = DEFAULT_FACETS
    highlight: bool = True

    def __post_init__(self) -> None:
        self.filters = {k: tuple(v) if not isinstance(v, str) else (v,) for k, v in (self.filters or {}).items()
                        if v}

    def validate(self) -> ParsedQuery:
        parsed = parse_query(self.text)
        unknown = [k for k in self.filters if k not in FILTER_FIELDS]
        if unknown:
            raise QuerySyntaxError(f"unknown filter {unknown[0]!r} (known: {', '.join(FILTER_FIELDS)})")
        bad = [f for f in self.facets if f not in FACETS]
        if bad:
            raise QuerySyntaxError(f"unknown facet {bad[0]!r} (known: {', '.join(FACETS)})")
        if self.sort not in SORTS:
            raise QuerySyntaxError(f"unknown sort {self.sort!r} (known: {', '.join(SORTS)})")
        if not 0 <= self.size <= MAX_PAGE_SIZE:
            raise QuerySyntaxError(f"page size must be between 0 and {MAX_PAGE_SIZE}")
        self.since = parse_time(self.since, "since")
        self.until = parse_time(self.until, "until")
        if parsed.empty and not self.filters and not self.since and not self.until:
            raise QuerySyntaxError("empty query: give words to search for, or at least one filter")
        if self.after is not None:
            decode_cursor(self.after, self.sort)
        return parsed


def encode_cursor(sort: str, values: Sequence[Any]) -> str:
    raw = json.dumps([sort, list(values)], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str, sort: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        kind, values = json.loads(raw)
        if not isinstance(values, list):
            raise ValueError
    except (ValueError, TypeError):
        raise QuerySyntaxError("invalid --after cursor (copy it from the previous page)") from None
    if kind != sort:
        raise QuerySyntaxError(f"this cursor belongs to sort {kind!r}, not {sort!r}")
    return values


# -- results --------------------------------------------------------------------------------
@dataclass
class Hit:
    id: str
    score: float | None
    doc: dict[str, Any]
    highlights: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "relevance": self.score, "highlights": self.highlights, **self.doc}


@dataclass
class SearchResult:
    total: int
    hits: list[Hit]
    facets: dict[str, list[tuple[str, int]]]
    next_cursor: str | None
    took_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "hits": [h.to_dict() for h in self.hits],
            "facets": {k: [{"value": v, "count": c} for v, c in vals] for k, vals in self.facets.items()},
            "next_cursor": self.next_cursor,
            "took_ms": round(self.took_ms, 2),
        }


@dataclass
class IndexReport:
    indexed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # id -> one-line reason


@runtime_checkable
class SearchBackend(Protocol):
    name: str

    def index(self, docs: Sequence[dict[str, Any]], *, refresh: bool = False) -> IndexReport:
        """Insert or replace documents (by ``id``); returns per-document outcomes."""

    def delete(self, ids: Sequence[str], *, refresh: bool = False) -> IndexReport: ...

    def search(self, query: SearchQuery) -> SearchResult: ...

    def count(self, query: SearchQuery) -> int: ...

    def export(self, query: SearchQuery) -> Iterator[dict[str, Any]]:
        """Every match in ``query.sort`` order, streamed; no row cap."""

    def ids(self, query: SearchQuery, limit: int | None = None) -> list[str]:
        """The ids of every match (at most ``limit``), in no particular order: what a caller that
        only needs to know *which* findings match (the web app's case list) asks for."""

    def refresh(self) -> None: ...

    def close(self) -> None: ...


# -- helpers both backends use --------------------------------------------------------------
def highlight(value: str | None, terms: Sequence[str]) -> str | None:
    """Wrap every (case-insensitive) occurrence of the terms in <em>…</em>; None when none occurs."""
    if not value or not terms:
        return None
    low = value.lower()
    spans: list[tuple[int, int]] = []
    for t in terms:
        tl = t.lower()
        i = low.find(tl)
        while i >= 0:
            spans.append((i, i + len(tl)))
            i = low.find(tl, i + 1)
    if not spans:
        return None
    spans.sort()
    merged = [list(spans[0])]
    for s, e in spans[1:]:
        if s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out, pos = [], 0
    for s, e in merged:
        out.append(value[pos:s])
        out.append(HIGHLIGHT_PRE + value[s:e] + HIGHLIGHT_POST)
        pos = e
    out.append(value[pos:])
    return "".join(out)


def merge_adjacent_highlights(fragment: str) -> str:
    return fragment.replace(HIGHLIGHT_POST + HIGHLIGHT_PRE, "")


def result_doc(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in RESULT_FIELDS}
