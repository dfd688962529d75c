"""The embedded default backend: SQLite FTS5 inside the store itself.

One FTS5 index, ``findings_fts``, over the ``text`` and ``context`` of ``findings``, in which every
character is a token of its own: the values are indexed with a space between their characters
(``" ".join``, at C speed) under FTS5's ``unicode61`` tokenizer with every Unicode category but
separators as token characters, and each query word is the phrase of its characters (``"保 证 提
分"``). A phrase matches exactly where the word is a substring (after FTS5's case folding), for
words of any length, punctuation included: one index answers ``学``, ``奥数`` and ``100%升学率``, and
bm25 ranks by phrase frequency. Whitespace in a value or a quoted word is indexed as a private-use
character (``_CHARS``), so ``"全市 第一"`` does not match ``全市第一``.

The index is contentless (``content=''``): it holds no copy of the text, only the index. Triggers on
``findings`` only list changed rows in ``findings_fts_dirty``, in the writer's own transaction
(cheap for the crawler, and they work from any connection); for a row the index holds, the list
keeps the values it was built from (a contentless index forgets a row only when it is given them
again). Every search first catches up on that list in one bulk transaction (``catch_up``), so a
search never misses a committed finding, and bulk loads cost a fraction of per-row index
maintenance.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from search.base import (
    FACET_SIZE,
    SEARCH_FIELDS,
    Hit,
    IndexReport,
    ParsedQuery,
    QuerySyntaxError,
    SearchError,
    SearchQuery,
    SearchResult,
    decode_cursor,
    encode_cursor,
    highlight,
    result_doc,
)

FTS_VERSION = "6"
_TRIGGERS = ("findings_fts_ai", "findings_fts_ad", "findings_fts_au")
_OLD_TABLES = ("findings_fts", "findings_bi", "findings_bi_dirty", "findings_fts_dirty")  # dropped on a rebuild
# FTS5 writes a segment when its in-memory index of pending rows passes this (default 1 MB) and at
# each commit; at 8 MB one catch-up batch is one segment, and up to 8 segments of a level (default
# 4) wait before they are merged: a bulk catch-up merges nothing (-35 % of FTS5's insert time).
_HASH_BYTES = 8 * 1024 * 1024
# Every category but Z* (space, line and paragraph separators) is a token character, so with a space
# between characters each character is one token.
_TOKENIZER = "unicode61 remove_diacritics 0 categories ''L* N* P* S* M* C*''"
# A dirty row with indexed = 1 is in the index with old_text/old_context (the first change since the
# last catch-up keeps them); indexed = 0: a row inserted since (or a rebuild), not indexed yet.
_DDL = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS findings_fts USING fts5(text, context, content='', tokenize='{_TOKENIZER}');
INSERT INTO findings_fts(findings_fts, rank) VALUES ('hashsize', {_HASH_BYTES});
INSERT INTO findings_fts(findings_fts, rank) VALUES ('automerge', 8);
CREATE TABLE IF NOT EXISTS findings_fts_dirty (
  rid INTEGER PRIMARY KEY, indexed INTEGER NOT NULL DEFAULT 0, old_text TEXT, old_context TEXT
);
CREATE TRIGGER IF NOT EXISTS findings_fts_ai AFTER INSERT ON findings BEGIN
  INSERT INTO findings_fts_dirty(rid) VALUES (new.rowid) ON CONFLICT (rid) DO NOTHING;
END;
CREATE TRIGGER IF NOT EXISTS findings_fts_ad AFTER DELETE ON findings BEGIN
  INSERT INTO findings_fts_dirty(rid, indexed, old_text, old_context) VALUES (old.rowid, 1, old.text, old.context)
  ON CONFLICT (rid) DO NOTHING;
END;
CREATE TRIGGER IF NOT EXISTS findings_fts_au AFTER UPDATE OF text, context ON findings
WHEN old.text IS NOT new.text OR old.context IS NOT new.context BEGIN
  INSERT INTO findings_fts_dirty(rid, indexed, old_text, old_context) VALUES (old.rowid, 1, old.text, old.context)
  ON CONFLICT (rid) DO NOTHING;
END;
CREATE INDEX IF NOT EXISTS findings_search_last_seen ON findings(last_seen_at, id);
"""

# Separators (Z*, and U+180E, a separator in older Unicode tables) -> private-use characters (tokens).
_SEPARATORS = ("\u0020\u00a0\u1680\u180e\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
               "\u200a\u2028\u2029\u202f\u205f\u3000")
_SEPARATOR_TOKENS = str.maketrans({c: chr(0xF8E0 + i) for i, c in enumerate(_SEPARATORS)})


def _chars(value: str | None) -> str:
    """A value as the index sees it: one token per character (whitespace as a private-use one)."""
    if not value:
        return ""
    if " " in value or not value.isprintable():  # (other separators are not printable): rare in CJK text
        value = value.translate(_SEPARATOR_TOKENS)
    return " ".join(value)


# The matched text is nearly always a slice of its context: then it is indexed once, in the context
# (every substring of it is one of the context's). SQL of (text column, context column).
_TEXT_IF_NOT_IN_CONTEXT = "CASE WHEN instr({1}, {0}) > 0 THEN '' ELSE {0} END"


def _phrase(term: str) -> str:
    """FTS5 query for a word: the phrase of its characters."""
    return '"' + _chars(term).replace('"', '""') + '"'


_CATCH_UP_BATCH = 20000
_RANKED_LEN = 3
# Page cache of the store's connection, at least (SQLite's default is 2 MB): upserting findings
# touches random pages of five indexes; at 100k findings 2 MB halves the insert rate. Memory is
# only taken as pages are read.
_CACHE_KIB = 16 * 1024
_STAGE = "search_bulk_findings"  # a TEMP table: documents to upsert, staged for one INSERT … SELECT
_SEV = "CASE f.severity WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END"
# sort name -> list of (sql expression, direction, cursor key)
_SORTS: dict[str, list[tuple[str, str]]] = {
    "relevance": [("_rel", "DESC"), ("id", "ASC")],
    "newest": [("last_seen_at", "DESC"), ("id", "ASC")],
    "oldest": [("first_seen_at", "ASC"), ("id", "ASC")],
    "severity": [("_sev", "DESC"), ("last_seen_at", "DESC"), ("id", "ASC")],
    "score": [("score", "DESC"), ("id", "ASC")],
}
_COLUMNS = ("id", "category", "rule_id", "text", "start", "end", "score", "severity", "basis", "explanation",
            "context", "url", "source", "image_url", "image_sha256", "boxes", "institution", "district",
            "status", "first_seen_at", "last_seen_at", "first_scan_id", "last_scan_id")
_JSON_COLUMNS = (_COLUMNS.index("explanation"), _COLUMNS.index("boxes"))
_STATUS = _COLUMNS.index("status")
_json = json.JSONEncoder(ensure_ascii=False).encode


class SqliteBackend:
    name = "sqlite"

    def __init__(self, store: Any) -> None:
        self.store = store
        self.db: sqlite3.Connection = store.db
        try:
            cache = self.db.execute("PRAGMA cache_size").fetchone()[0]  # < 0: KiB, > 0: pages
            if cache > 0:
                cache = -cache * self.db.execute("PRAGMA page_size").fetchone()[0] // 1024
            if -cache < _CACHE_KIB:
                self.db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            row = self.db.execute("SELECT value FROM meta WHERE key='search.fts_version'").fetchone()
            if not row or row[0] != FTS_VERSION:
                with self.db:
                    for t in _TRIGGERS:
                        self.db.execute(f"DROP TRIGGER IF EXISTS {t}")
                    for t in _OLD_TABLES:
                        self.db.execute(f"DROP TABLE IF EXISTS {t}")
                    for stmt in _split(_DDL):
                        self.db.execute(stmt)
                    self.db.execute("INSERT INTO findings_fts_dirty(rid) SELECT rowid FROM findings")
                    self.db.execute("INSERT INTO meta(key, value) VALUES ('search.fts_version', ?) "
                                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (FTS_VERSION,))
        except sqlite3.OperationalError as e:
            raise SearchError(f"SQLite full-text index unavailable: {e}") from e

    def catch_up(self) -> int:
        """Bring the index up to date with findings changed since the last search. The store's
        triggers list them in findings_fts_dirty, in the writer's transaction, with the values the
        index holds for them (forgotten here first, then the current values indexed)."""
        if self.db.execute("SELECT 1 FROM findings_fts_dirty LIMIT 1").fetchone() is None:
            return 0
        n = 0
        try:
            while True:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    rows = self.db.execute(
                        "SELECT d.rid, d.indexed, "
                        f"{_TEXT_IF_NOT_IN_CONTEXT.format('d.old_text', 'd.old_context')}, d.old_context, "
                        "f.rowid IS NOT NULL, "
                        f"{_TEXT_IF_NOT_IN_CONTEXT.format('f.text', 'f.context')}, f.context "
                        "FROM findings_fts_dirty d LEFT JOIN findings f ON f.rowid = d.rid ORDER BY d.rid LIMIT ?",
                        (_CATCH_UP_BATCH,)).fetchall()
                    if rows:
                        # a contentless index forgets a row when given the values it was built from
                        self.db.executemany("INSERT INTO findings_fts(findings_fts, rowid, text, context) "
                                            "VALUES ('delete', ?, ?, ?)",
                                            [(r[0], _chars(r[2]), _chars(r[3])) for r in rows if r[1]])
                        self.db.executemany("INSERT INTO findings_fts(rowid, text, context) VALUES (?, ?, ?)",
                                            [(r[0], _chars(r[5]), _chars(r[6])) for r in rows if r[4]])
                        self.db.execute("DELETE FROM findings_fts_dirty WHERE rid BETWEEN ? AND ?",
                                        (rows[0][0], rows[-1][0]))
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
                n += len(rows)
                if len(rows) < _CATCH_UP_BATCH:
                    return n
        except sqlite3.Error as e:
            raise SearchError(f"cannot update the search index: {e}") from e

    # -- writing ------------------------------------------------------------------------------
    def index(self, docs: Sequence[dict[str, Any]], *, refresh: bool = False) -> IndexReport:
        """Upsert finding documents into the store's findings table (the triggers index them).

        Documents built from the store are already there; this loads documents from elsewhere
        (tests, benchmark, imports)."""
        rows = []
        for d in docs:
            r = list(map(d.get, _COLUMNS))
            for i in _JSON_COLUMNS:
                if r[i] is not None and not isinstance(r[i], str):
                    r[i] = _json(r[i])
            if r[_STATUS] is None:
                r[_STATUS] = "open"
            rows.append(r)
        cols = ", ".join(f'"{c}"' for c in _COLUMNS)
        updates = ", ".join(f'"{c}"=excluded."{c}"' for c in _COLUMNS if c != "id")
        # One INSERT … SELECT rather than one INSERT per document: with the triggers on findings,
        # each statement pays a statement journal of every page it touches (half the time).
        try:
            with self.db:
                self.db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} AS SELECT {cols} FROM findings WHERE 0")
                self.db.executemany(f"INSERT INTO {_STAGE} VALUES ({', '.join('?' * len(_COLUMNS))})", rows)
                self.db.execute(f"INSERT INTO findings({cols}) SELECT {cols} FROM {_STAGE} WHERE true "
                                f"ON CONFLICT(id) DO UPDATE SET {updates}")
                self.db.execute(f"DELETE FROM {_STAGE}")
        except sqlite3.Error as e:
            raise SearchError(f"cannot write findings: {e}") from e
        return IndexReport(indexed=[d["id"] for d in docs])

    def delete(self, ids: Sequence[str], *, refresh: bool = False) -> IndexReport:
        return IndexReport()  # the store owns findings; nothing to do

    def refresh(self) -> None:
        self.catch_up()

    def close(self) -> None:
        pass

    # -- reading ------------------------------------------------------------------------------
    def _where(self, q: SearchQuery, parsed: ParsedQuery) -> tuple[str, list[Any], str | None]:
        where: list[str] = []
        args: list[Any] = []

        def term_cond(t: str) -> str:
            args.append(_phrase(t))
            return "f.rowid IN (SELECT rowid FROM findings_fts WHERE findings_fts MATCH ?)"

        for group in parsed.groups:
            where.append("(" + " OR ".join(term_cond(t) for t in group) + ")")
        for t in parsed.negatives:
            where.append("NOT " + term_cond(t))
        for fld, values in q.filters.items():
            where.append(f"f.{fld} IN ({', '.join('?' * len(values))})")
            args.extend(values)
        if q.since:
            where.append("f.last_seen_at >= ?")
            args.append(q.since)
        if q.until:
            where.append("f.last_seen_at < ?")
            args.append(q.until)
        # ranked by bm25 over the words of three or more characters (a shorter word is in too many
        # findings to tell them apart, and scoring every one of them would be the slowest part)
        long_terms = [t for t in parsed.positive_terms if len(t) >= _RANKED_LEN]
        rank_match = " OR ".join(_phrase(t) for t in long_terms) if long_terms else None
        return (" AND ".join(where) or "1"), args, rank_match

    def _select(self, q: SearchQuery, parsed: ParsedQuery) -> tuple[str, list[Any]]:
        where, args, rank_match = self._where(q, parsed)
        rank_join, rel = "", "0.0"
        if rank_match and q.sort == "relevance":
            rank_join = ("LEFT JOIN (SELECT rowid AS rid, bm25(findings_fts) AS r FROM findings_fts "
                         "WHERE findings_fts MATCH ?) m ON m.rid = f.rowid")
            rel = "ROUND(-COALESCE(m.r, 0.0), 6)"
            args = [rank_match, *args]
        sql = (f"SELECT f.*, {rel} AS _rel, {_SEV} AS _sev FROM findings f {rank_join} WHERE {where}")
        return sql, args

    def _ordered(self, q: SearchQuery, parsed: ParsedQuery, after: list[Any] | None) -> tuple[str, list[Any]]:
        inner, args = self._select(q, parsed)
        keys = _SORTS[q.sort]
        sql = f"SELECT * FROM ({inner})"
        if after is not None:
            if len(after) != len(keys):
                raise QuerySyntaxError("invalid --after cursor (copy it from the previous page)")
            ors = []
            for i, (col, direction) in enumerate(keys):
                eqs = [f"{keys[j][0]} = ?" for j in range(i)]
                op = "<" if direction == "DESC" else ">"
                ors.append("(" + " AND ".join([*eqs, f"{col} {op} ?"]) + ")")
                args.extend(after[:i])
                args.append(after[i])
            sql += " WHERE " + " OR ".join(ors)
        sql += " ORDER BY " + ", ".join(f"{c} {d}" for c, d in keys)
        return sql, args

    def count(self, query: SearchQuery) -> int:
        parsed = query.validate()
        self.catch_up()
        where, args, _ = self._where(query, parsed)
        return self._run(f"SELECT COUNT(*) FROM findings f WHERE {where}", args).fetchone()[0]

    def search(self, query: SearchQuery) -> SearchResult:
        t0 = time.perf_counter()
        parsed = query.validate()
        self.catch_up()
        after = decode_cursor(query.after, query.sort) if query.after else None
        where, wargs, _ = self._where(query, parsed)
        # one pass for the total and every facet
        facet_cols = list(query.facets)
        if facet_cols:
            sel = ", ".join(f"f.{c}" for c in facet_cols)
            rows = self._run(f"SELECT {sel}, COUNT(*) FROM findings f WHERE {where} GROUP BY {sel}",
                             wargs).fetchall()
            total = sum(r[-1] for r in rows)
            counters = {c: Counter() for c in facet_cols}
            for r in rows:
                for i, c in enumerate(facet_cols):
                    if r[i] is not None:
                        counters[c][r[i]] += r[-1]
            facets = {c: sorted(counters[c].items(), key=lambda kv: (-kv[1], kv[0]))[:FACET_SIZE]
                      for c in facet_cols}
        else:
            total = self._run(f"SELECT COUNT(*) FROM findings f WHERE {where}", wargs).fetchone()[0]
            facets = {}
        hits: list[Hit] = []
        next_cursor = None
        if query.size:
            sql, args = self._ordered(query, parsed, after)
            rows = self._run(sql + " LIMIT ?", [*args, query.size]).fetchall()
            terms = parsed.positive_terms
            for r in rows:
                d = dict(r)
                hl: dict[str, list[str]] = {}
                if query.highlight:
                    for fld in SEARCH_FIELDS:
                        h = highlight(d.get(fld), terms)
                        if h:
                            hl[fld] = [h]
                hits.append(Hit(d["id"], d["_rel"] if query.sort == "relevance" else None, result_doc(d), hl))
            if len(rows) == query.size:
                last = dict(rows[-1])
                next_cursor = encode_cursor(query.sort, [last[c] for c, _ in _SORTS[query.sort]])
        return SearchResult(total, hits, facets, next_cursor, (time.perf_counter() - t0) * 1000)

    def export(self, query: SearchQuery) -> Iterator[dict[str, Any]]:
        parsed = query.validate()
        self.catch_up()
        sql, args = self._ordered(query, parsed, None)
        cur = self._run(sql, args)
        while True:
            rows = cur.fetchmany(1000)
            if not rows:
                return
            for r in rows:
                yield result_doc(dict(r))

    def ids(self, query: SearchQuery, limit: int | None = None) -> list[str]:
        parsed = query.validate()
        self.catch_up()
        where, args, _ = self._where(query, parsed)
        sql = f"SELECT f.id FROM findings f WHERE {where}"
        if limit is not None:
            sql, args = sql + " LIMIT ?", [*args, int(limit)]
        return [r[0] for r in self._run(sql, args)]

    def _run(self, sql: str, args: Sequence[Any]) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, args)
        except sqlite3.OperationalError as e:
            raise SearchError(f"SQLite search failed: {e}") from e


def _split(ddl: str) -> list[str]:
    """Split the DDL into statements (triggers contain ';' inside BEGIN … END)."""
    out, buf = [], []
    for line in ddl.strip().splitlines():
        buf.append(line)
        joined = "\n".join(buf).strip()
        if joined.endswith(";") and (not joined.upper().startswith("CREATE TRIGGER") or joined.endswith("END;")):
            out.append(joined)
            buf = []
    return out

