"""Nothing is lost when Elasticsearch is down: the store's outbox and Indexer.drain().

The outage test stops the real test node (scripts/elasticsearch.sh stop) while findings are being
written, starts it again, and checks the index ends up equal to the store: same ids, no duplicates.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from detectors.model import Finding
from search.base import SearchQuery
from search.indexer import Indexer, indexer_for_store
from store import Store
from tests.test_search_conformance import es_prefix, es_url  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "elasticsearch.sh"
WORDS = ["幼小衔接", "奥数竞赛", "保证提分", "超前学习", "拍照搜题", "充值送课时", "全市第一"]


def page(i: int, n: int = 4) -> tuple[str, list[Finding]]:
    parts, findings = [], []
    text = f"第{i}页："
    for k in range(n):
        w = WORDS[(i + k) % len(WORDS)]
        start = len(text)
        text += w + "，欢迎报名。"
        findings.append(Finding("preschool_subject", f"r.{k}", w, start, start + len(w), 0.9, "high", "basis"))
        parts.append(w)
    return text, findings


def all_store_ids(store: Store) -> dict[str, str]:
    return {r["id"]: r["status"] for r in store.findings()}


def es_state(be) -> dict[str, str]:
    be.refresh()
    docs = list(be.export(SearchQuery(text="", filters={"source": ["text"]}, sort="newest")))
    ids = [d["id"] for d in docs]
    assert len(ids) == len(set(ids)), "duplicate documents"
    return {d["id"]: d["status"] for d in docs}


def test_outbox_filled_in_the_same_transaction(tmp_path):
    store = Store(tmp_path)
    scan = store.begin_scan(["http://127.0.0.1:1/"])
    text, fs = page(1)
    ids = store.save_findings(scan, "http://127.0.0.1:1/p1", "text", text, fs)
    rows = dict(store.db.execute("SELECT finding_id, version FROM index_outbox").fetchall())
    assert rows == {i: 1 for i in ids}
    store.save_findings(scan, "http://127.0.0.1:1/p1", "text", text, fs)  # seen again: version bump
    store.set_status(ids[:1], "confirmed")
    rows = dict(store.db.execute("SELECT finding_id, version FROM index_outbox").fetchall())
    assert rows[ids[0]] == 3 and rows[ids[1]] == 2
    # a failing save leaves no outbox row behind
    bad = [Finding("preschool_subject", "r.x", "坏", 0, 1, 0.5, "high", "b")]
    n = store.db.execute("SELECT COUNT(*) FROM index_outbox").fetchone()[0]
    with pytest.raises(AttributeError):
        store.save_findings(scan, "http://127.0.0.1:1/p2", "text", "坏", [*bad, None])  # type: ignore[list-item]
    assert store.db.execute("SELECT COUNT(*) FROM index_outbox").fetchone()[0] == n
    assert store.db.execute("SELECT COUNT(*) FROM findings WHERE url LIKE '%/p2'").fetchone()[0] == 0
    store.close()


def test_drain_against_a_refusing_url_never_raises(tmp_path):
    from search.elastic import ElasticBackend

    store = Store(tmp_path)
    scan = store.begin_scan(["x"])
    text, fs = page(2)
    store.save_findings(scan, "http://127.0.0.1:1/p", "text", text, fs)
    idx = Indexer(store, ElasticBackend("http://127.0.0.1:9", connect=False, timeout=2))
    t = time.perf_counter()
    res = idx.drain()
    assert res.error and "cannot reach" in res.error and res.sent == 0 and res.pending == len(fs)
    res2 = idx.drain()  # backing off: cheap, does not retry yet
    assert res2.skipped and time.perf_counter() - t < 5
    errs = store.db.execute("SELECT attempts, last_error FROM index_outbox").fetchall()
    assert all(a == 1 and "cannot reach" in e for a, e in errs)
    store.close()


class CountingBackend:
    """A stand-in for Elasticsearch that counts requests and refuses the documents in ``reject``."""

    name = "counting"

    def __init__(self, reject: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.reject = set(reject)
        self.requests: list[list[str]] = []

    def index(self, docs, *, refresh: bool = False):
        from search.base import IndexReport

        ids = [d["id"] for d in docs]
        self.requests.append(ids)
        return IndexReport(indexed=[i for i in ids if i not in self.reject],
                           failed={i: "document_parsing_exception: failed to parse field [score]"
                                   for i in ids if i in self.reject})

    def delete(self, ids, *, refresh: bool = False):
        from search.base import IndexReport

        self.requests.append(list(ids))
        return IndexReport(deleted=list(ids))

    def sent(self, fid: str) -> int:
        return sum(fid in r for r in self.requests)


def test_drain_makes_no_request_when_the_queue_is_empty(tmp_path):
    from search.elastic import ElasticBackend
    from search.indexer import META_LAST_ERROR

    store = Store(tmp_path)
    counting = Indexer(store, CountingBackend())
    refusing = Indexer(store, ElasticBackend("http://127.0.0.1:9", connect=False, timeout=2))  # nothing listens
    for _ in range(200):
        for idx in (counting, refusing):
            res = idx.drain()
            assert (res.error, res.skipped, res.sent, res.pending) == (None, False, 0, 0)
    res = refusing.drain(force=True)
    assert res.error is None and refusing.last_error is None and refusing._failures == 0
    assert counting.backend.requests == []
    assert store.db.execute("SELECT 1 FROM meta WHERE key=?", (META_LAST_ERROR,)).fetchone() is None
    store.close()


def test_rejected_document_backs_off_then_parks_and_is_never_lost(tmp_path):
    store = Store(tmp_path)
    scan = store.begin_scan(["x"])
    text, fs = page(3)
    ids = store.save_findings(scan, "http://127.0.0.1:1/p", "text", text, fs)
    bad = ids[1]
    be = CountingBackend(reject={bad})
    idx = Indexer(store, be, max_rejections=3)

    res = idx.drain()  # the others are indexed; the refused one stays queued with the reason
    assert (res.sent, res.failed, res.pending, res.parked) == (len(ids) - 1, 1, 1, 0)
    row = store.db.execute("SELECT rejected, attempts, last_error FROM index_outbox WHERE finding_id=?",
                           (bad,)).fetchone()
    assert row[0] == 1 and row[1] == 1 and "document_parsing_exception" in row[2]
    for _ in range(50):  # a crawl drains after every item: the refused document is not re-sent each time
        res = idx.drain()
        assert res.failed == 0 and res.error is None and res.pending == 1
    assert be.sent(bad) == 1
    time.sleep(0.6)  # its own back-off (0.5 s after the first refusal) is over: tried again
    assert idx.drain().failed == 1 and be.sent(bad) == 2
    store.db.execute("UPDATE index_outbox SET retry_at=0")  # as if the (doubled) back-off elapsed
    store.db.commit()
    assert idx.drain().failed == 1 and be.sent(bad) == 3
    store.db.execute("UPDATE index_outbox SET retry_at=0")
    store.db.commit()
    for _ in range(10):  # refused max_rejections times: parked, never tried by an ordinary drain
        res = idx.drain()
        assert (res.failed, res.pending, res.parked) == (0, 1, 1)
    assert be.sent(bad) == 3
    assert idx.maybe_drain(min_interval=0).failed == 0 and be.sent(bad) == 3
    # still queued, with its reason, for an explicit drain (jianfu index --drain = drain(force=True))
    assert store.db.execute("SELECT last_error FROM index_outbox WHERE finding_id=?", (bad,)).fetchone()[0]
    assert idx.drain(force=True, retry_rejected=False).failed == 0 and be.sent(bad) == 3
    be.reject.clear()  # the mapping was fixed
    res = idx.drain(force=True)
    assert (res.sent, res.pending, res.parked) == (1, 0, 0) and be.sent(bad) == 4

    # a new version of a parked document (seen again, reviewed) is tried again by ordinary drains
    be.reject.add(bad)
    store.save_findings(scan, "http://127.0.0.1:1/p", "text", text, fs)
    for _ in range(3):
        idx.drain()
        store.db.execute("UPDATE index_outbox SET retry_at=0")
        store.db.commit()
    assert idx.drain().parked == 1
    sent = be.sent(bad)
    store.set_status([bad], "confirmed")
    assert idx.drain().failed == 1 and be.sent(bad) == sent + 1
    store.close()


def test_maybe_drain_sends_at_most_one_batch_per_interval(tmp_path):
    store = Store(tmp_path)
    scan = store.begin_scan(["x"])
    for i in range(4):
        store.save_findings(scan, f"http://127.0.0.1:1/p{i}", "text", *page(i, n=2))  # 8 findings
    be = CountingBackend()
    idx = Indexer(store, be, batch_size=3)
    res = idx.maybe_drain(min_interval=0.3)
    assert (res.sent, res.pending, len(be.requests)) == (3, 5, 1)  # one batch only
    for _ in range(100):  # within the interval: returns at once, no request
        res = idx.maybe_drain(min_interval=0.3)
        assert res.skipped and res.sent == 0
    assert len(be.requests) == 1
    time.sleep(0.35)
    assert idx.maybe_drain(min_interval=0.3).sent == 3 and len(be.requests) == 2
    idx.drain()  # any drain counts as the last one
    assert idx.maybe_drain(min_interval=0.3).skipped
    assert idx.pending() == 0 and len(be.requests) == 3
    store.close()


def test_indexer_for_store_reads_configuration(tmp_path, monkeypatch):
    monkeypatch.delenv("JIANFU_ES_URL", raising=False)
    store = Store(tmp_path)
    assert indexer_for_store(store) is None
    monkeypatch.setenv("JIANFU_ES_URL", "http://127.0.0.1:9")
    idx = indexer_for_store(store)
    assert idx is not None and idx.backend.url == "http://127.0.0.1:9"
    monkeypatch.setenv("JIANFU_ES_URL", "not a url")
    assert indexer_for_store(store) is None  # logged, never raises
    store.close()


def _node_managed(url: str) -> bool:
    port = urlparse(url).port or 9200
    env_port = os.environ.get("JIANFU_ES_PORT", "9200")
    return str(port) == env_port and urlparse(url).hostname in ("127.0.0.1", "localhost") and \
        subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode == 0


def test_outage_while_writing_loses_nothing(tmp_path, es_url):  # noqa: F811
    from search.elastic import ElasticBackend

    if not _node_managed(es_url):
        msg = "the ES node at JIANFU_TEST_ES_URL is not managed by scripts/elasticsearch.sh (cannot stop it)"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    store = Store(tmp_path)
    be = ElasticBackend(es_url, alias=es_prefix("outage"), timeout=5)
    idx = Indexer(store, be, max_backoff=0.5)
    scan = store.begin_scan(["http://127.0.0.1:1/"])
    log: list[str] = []

    def outage() -> None:
        time.sleep(1.0)
        r = subprocess.run([str(SCRIPT), "stop"], capture_output=True, text=True)
        log.append(f"stop rc={r.returncode}")
        time.sleep(2.0)
        r = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True)
        log.append(f"start rc={r.returncode} {r.stderr[-300:]}")

    t = threading.Thread(target=outage)
    errors = 0
    try:
        t.start()
        i = 0
        while t.is_alive() or i < 40:
            text, fs = page(i)
            ids = store.save_findings(scan, f"http://127.0.0.1:1/p{i}", "text", text, fs)
            if i % 7 == 3:  # an investigator reviews while the node is away
                store.set_status(ids[:1], "confirmed")
            if i % 5 == 4:  # the same page seen again: same ids, new versions
                store.save_findings(scan, f"http://127.0.0.1:1/p{i - 2}", "text", *page(i - 2))
            res = idx.drain()
            errors += bool(res.error)
            i += 1
            time.sleep(0.05)
    finally:
        t.join()
        if subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode != 0:
            subprocess.run([str(SCRIPT), "start"], capture_output=True)
    assert log[0] == "stop rc=0" and log[1].startswith("start rc=0"), log
    assert errors > 0, "the outage was not observed by drain()"
    deadline = time.monotonic() + 60
    while True:
        res = idx.drain(force=True)
        if res.pending == 0 and not res.error:
            break
        assert time.monotonic() < deadline, res
        time.sleep(0.5)
    try:
        expected = all_store_ids(store)
        assert len(expected) >= 150
        assert es_state(be) == expected
    finally:
        be.drop()
        be.close()
        store.close()
