"""Sending committed findings to an external index, durably.

``Store.save_findings`` and ``Store.set_status`` put each changed finding id into the store's
``index_outbox`` table in the same transaction as the change. ``Indexer(store, backend).drain()``
sends what is queued and removes only what the index acknowledged (by version, so a change made
while a batch was in flight stays queued). When Elasticsearch is down, drain records the error on
the queued rows, backs off, and returns: it never raises, and nothing is lost.

A document the index itself rejects (a per-document error in an acknowledged bulk request) is
backed off on its own (``retry_at``, doubling up to ``max_backoff``) and, after
``max_rejections`` refusals of the same version, parked: it stays queued with its
``last_error`` but ordinary drains skip it. ``drain(force=True)`` (``jianfu index --drain``)
retries parked documents too; a new version of the finding (seen again, reviewed) starts over.

The crawler pipeline calls ``indexer_for_store(store)`` once and, after each page's findings are
saved, ``.maybe_drain()`` (at most one batch, at most every ``min_interval`` seconds, so the
crawl is never held up) or ``.drain()``; with no Elasticsearch configured that is ``None`` (the
embedded SQLite index is updated by the store's own triggers and needs no queue).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from search.base import SEVERITY_RANK, SearchError

log = logging.getLogger(__name__)

META_ES_URL = "search.es_url"
META_ES_INDEX = "search.es_index"
META_LAST_ERROR = "search.last_index_error"


def finding_doc(row: dict[str, Any], page_title: str | None = None, page_text: str | None = None) -> dict[str, Any]:
    """The search document of one finding row (as ``store.findings`` returns it, or a raw row)."""
    d = dict(row)
    for k in ("explanation", "boxes"):
        if isinstance(d.get(k), str):
            try:
                d[k] = json.loads(d[k])
            except ValueError:
                pass
    d.pop("_rel", None)
    d.pop("_sev", None)
    d.pop("boxes", None)
    expl = d.get("explanation")
    if isinstance(expl, list | tuple):
        d["explanation"] = [str(x) for x in expl]
    d["severity_rank"] = SEVERITY_RANK.get(d.get("severity") or "", 0)
    d["@timestamp"] = d.get("last_seen_at")
    if page_title is not None:
        d["page_title"] = page_title
    if page_text is not None:
        d["page_text"] = page_text
    return d


_DOC_SQL = """SELECT f.*, p.title AS _page_title, p.text AS _page_text FROM findings f
  LEFT JOIN pages p ON p.url = f.url AND p.scan_id = f.last_scan_id"""


def _row_doc(r: sqlite3.Row) -> dict[str, Any]:
    d = dict(r)
    title, text = d.pop("_page_title", None), d.pop("_page_text", None)
    return finding_doc(d, title, text)


def load_docs(db: sqlite3.Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        chunk = list(ids[i:i + 500])
        q = f"{_DOC_SQL} WHERE f.id IN ({', '.join('?' * len(chunk))})"
        for r in db.execute(q, chunk):
            out[r["id"]] = _row_doc(r)
    return out


def iter_store_docs(db: sqlite3.Connection, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every finding in the store as a search document, streamed in id order."""
    last = ""
    while True:
        rows = db.execute(f"{_DOC_SQL} WHERE f.id > ? ORDER BY f.id LIMIT ?", (last, batch)).fetchall()
        if not rows:
            return
        for r in rows:
            yield _row_doc(r)
        last = rows[-1]["id"]


@dataclass
class DrainResult:
    sent: int = 0
    deleted: int = 0
    failed: int = 0
    pending: int = 0
    parked: int = 0        # of pending: rejected max_rejections times, left for an explicit drain
    error: str | None = None
    skipped: bool = False  # backing off after a failure (or throttled by maybe_drain), nothing tried


class Indexer:
    """Drains the store's outbox into a backend. Cheap when the queue is empty; never raises."""

    def __init__(self, store: Any, backend: Any, *, batch_size: int = 500, max_backoff: float = 30.0,
                 refresh: bool = False, max_rejections: int = 5) -> None:
        self.store = store
        self.db: sqlite3.Connection = store.db
        self.backend = backend
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.refresh = refresh
        self.max_rejections = max_rejections
        self._failures = 0
        self._next_try = 0.0
        self._last_drain: float | None = None
        self.last_error: str | None = None

    def pending(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM index_outbox").fetchone()[0]

    def _due(self, retry_rejected: bool) -> tuple[str, tuple[Any, ...]]:
        """The outbox rows a drain may send now: all of them, or those not backing off or parked."""
        if retry_rejected:
            return "1=1", ()
        return "(rejected = 0 OR (rejected < ? AND (retry_at IS NULL OR retry_at <= ?)))", \
            (self.max_rejections, time.time())

    def maybe_drain(self, min_interval: float = 2.0) -> DrainResult:
        """The crawler's cheap call after each item: at most one batch, and only if ``min_interval``
        seconds have passed since the last drain; otherwise returns at once (``skipped``)."""
        if self._last_drain is not None and time.monotonic() - self._last_drain < min_interval:
            return DrainResult(skipped=True, error=self.last_error)
        return self.drain(max_batches=1)

    def drain(self, *, force: bool = False, max_batches: int | None = None,
              retry_rejected: bool | None = None) -> DrainResult:
        """Send what is queued. ``force`` ignores the back-off after a failure to reach the node
        and (unless ``retry_rejected=False``) retries documents the index rejected, parked ones too."""
        res = DrainResult()
        self._last_drain = time.monotonic()
        retry_rejected = force if retry_rejected is None else retry_rejected
        try:
            if getattr(self.backend, "name", "") == "sqlite":
                return res  # the embedded index is transactional with the store: nothing to send
            if hasattr(self.store, "commit_writes"):  # a scan's batched writes (Store.batched_writes):
                self.store.commit_writes()            # only committed findings leave for the index
            due, args = self._due(retry_rejected)
            if self.db.execute(f"SELECT 1 FROM index_outbox WHERE {due} LIMIT 1", args).fetchone() is None:
                if self.db.execute("SELECT 1 FROM index_outbox LIMIT 1").fetchone() is not None:
                    res.pending, res.parked = self._pending()  # only rejected documents wait
                return res
            if not force and time.monotonic() < self._next_try:
                res.skipped = True
                res.error = self.last_error
                return res
            last_id = ""
            batches = 0
            unreachable = False
            while max_batches is None or batches < max_batches:
                due, args = self._due(retry_rejected)
                rows = self.db.execute(
                    f"""SELECT finding_id, version FROM index_outbox WHERE finding_id > ? AND {due}
                        ORDER BY finding_id LIMIT ?""", (last_id, *args, self.batch_size)).fetchall()
                if not rows:
                    break
                batches += 1
                last_id = rows[-1][0]
                versions = {r[0]: r[1] for r in rows}
                docs = load_docs(self.db, list(versions))
                gone = [i for i in versions if i not in docs]
                try:
                    rep = self.backend.index(list(docs.values()), refresh=self.refresh)
                    if gone:
                        d = self.backend.delete(gone, refresh=self.refresh)
                        rep.deleted.extend(d.deleted)
                        rep.failed.update(d.failed)
                except SearchError as e:
                    self._record_failure(list(versions), str(e))
                    res.error = str(e)
                    unreachable = True
                    break
                done = [(i, versions[i]) for i in [*rep.indexed, *rep.deleted]]
                with self.db:
                    self.db.executemany("DELETE FROM index_outbox WHERE finding_id=? AND version=?", done)
                    if rep.failed:  # this version was refused: back off on it, park it after a few
                        refused = [i for i in rep.failed if i in versions]
                        marks = ",".join("?" * len(refused))
                        before = dict(self.db.execute(
                            f"SELECT finding_id, rejected FROM index_outbox WHERE finding_id IN ({marks})", refused))
                        now = time.time()
                        self.db.executemany(
                            """UPDATE index_outbox SET attempts=attempts+1, rejected=rejected+1, last_error=?,
                                 retry_at=? WHERE finding_id=? AND version=?""",
                            [(rep.failed[i][:500], now + min(self.max_backoff, 0.5 * (1 << min(before.get(i, 0), 10))),
                              i, versions[i]) for i in refused])
                res.sent += len(rep.indexed)
                res.deleted += len(rep.deleted)
                res.failed += len(rep.failed)
                if rep.failed and not res.error:
                    res.error = next(iter(rep.failed.values()))
            if not unreachable:  # the node answered: no back-off for the queue as a whole
                self._failures = 0
                self._next_try = 0.0
                self.last_error = None
            res.pending, res.parked = self._pending()
        except Exception as e:  # never let indexing break the caller (the crawl)
            log.warning("search index drain failed: %s", e)
            res.error = res.error or f"{type(e).__name__}: {e}"
            try:
                res.pending, res.parked = self._pending()
            except sqlite3.Error:
                pass
        return res

    def _pending(self) -> tuple[int, int]:
        n, parked = self.db.execute("SELECT COUNT(*), COALESCE(SUM(CASE WHEN rejected >= ? THEN 1 ELSE 0 END), 0) "
                                    "FROM index_outbox",
                                    (self.max_rejections,)).fetchone()
        return n, parked

    def _record_failure(self, ids: list[str], error: str) -> None:
        self._failures += 1
        self._next_try = time.monotonic() + min(self.max_backoff, 0.5 * 2 ** min(self._failures, 10))
        self.last_error = error
        log.warning("search index unavailable, %d finding(s) stay queued: %s", len(ids), error)
        with self.db:
            self.db.executemany("UPDATE index_outbox SET attempts=attempts+1, last_error=? WHERE finding_id=?",
                                [(error[:500], i) for i in ids])
            self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                            "SET value=excluded.value", (META_LAST_ERROR, error[:500]))


def configured_es(store: Any) -> tuple[str | None, str | None]:
    """(url, alias) of the Elasticsearch index: env JIANFU_ES_URL / JIANFU_ES_INDEX, else what
    ``jianfu index --es URL`` recorded in the store."""
    url = os.environ.get("JIANFU_ES_URL") or None
    index = os.environ.get("JIANFU_ES_INDEX") or None
    meta = dict(store.db.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", (META_ES_URL, META_ES_INDEX)))
    return url or meta.get(META_ES_URL), index or meta.get(META_ES_INDEX)


def indexer_for_store(store: Any, **kw: Any) -> Indexer | None:
    """The Indexer a scan should drain after each page, or None when no Elasticsearch is configured.
    Never raises: a bad configuration is logged and scans go on (findings stay queued)."""
    try:
        url, index = configured_es(store)
        if not url:
            return None
        from search.elastic import ElasticBackend
        # a short timeout: a hung node must not stall the crawl for long (drain then backs off)
        return Indexer(store, ElasticBackend(url, alias=index, connect=False, timeout=5.0), **kw)
    except Exception as e:
        log.warning("search index not configured: %s", e)
        return None
