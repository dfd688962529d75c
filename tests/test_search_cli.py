"""``jianfu search`` and ``jianfu index`` end to end, and bad input: one-line errors, no crash,
no partial writes (ES URL that refuses, times out or is not Elasticsearch; mapping conflicts)."""

from __future__ import annotations

import csv
import http.server
import io
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from search.base import SearchError, SearchQuery
from search.elastic import MAPPING_VERSION, ElasticBackend, mappings, pick_analyzer
from search.indexer import Indexer
from search.sqlite_fts import SqliteBackend
from store import Store
from tests.test_search_conformance import DOCS, es_prefix, es_url  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent


def jianfu(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jianfu", *args], cwd=ROOT, text=True, capture_output=True,
                          timeout=timeout, env={**__import__("os").environ, "JIANFU_ES_URL": ""})


def one_line_error(p: subprocess.CompletedProcess, code: int = 1) -> str:
    assert p.returncode == code, (p.returncode, p.stdout[-500:], p.stderr[-2000:])
    err = p.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture()
def store_dir(tmp_path):
    d = tmp_path / "store"
    with Store(d) as s:
        SqliteBackend(s).index(DOCS)
    return d


# -- the SQLite default -----------------------------------------------------------------------
def test_search_text_and_json(store_dir):
    p = jianfu("search", "幼小衔接", "--store", str(store_dir))
    assert p.returncode == 0, p.stderr
    assert "2 finding(s) for '幼小衔接'" in p.stdout and "«幼小衔接»" in p.stdout
    assert "category: preschool_subject 2" in p.stdout
    p = jianfu("search", "学", "--store", str(store_dir), "--format", "json", "--size", "2", "--category",
               "preschool_subject,advance_teaching", "--facets", "institution")
    out = json.loads(p.stdout)
    assert out["total"] == 4 and len(out["hits"]) == 2 and out["next_cursor"]
    assert set(out["facets"]) == {"institution"}
    p2 = jianfu("search", "学", "--store", str(store_dir), "--format", "json", "--size", "2", "--category",
                "preschool_subject,advance_teaching", "--after", out["next_cursor"])
    p3 = jianfu("search", "学", "--store", str(store_dir), "--format", "json", "--size", "2", "--category",
                "preschool_subject,advance_teaching", "--page", "2")
    assert [h["id"] for h in json.loads(p2.stdout)["hits"]] == [h["id"] for h in json.loads(p3.stdout)["hits"]]


def test_export_csv_and_jsonl(store_dir, tmp_path):
    out = tmp_path / "all.csv"
    p = jianfu("search", "", "--status", "open,confirmed,dismissed", "--store", str(store_dir), "--export", "csv",
               "-o", str(out))
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == len(DOCS) and rows[0]["id"] and rows[0]["context"]
    p = jianfu("search", "名师", "--store", str(store_dir), "--export", "jsonl")
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert len(lines) == 2 and all("名师" in x["text"] for x in lines)


@pytest.mark.parametrize("args,needle", [
    (["\"unbalanced"], "unbalanced quote"),
    ([""], "empty query"),
    (["x" * 5000], "query too long"),
    (["OR"], "OR needs"),
    (["幼小", "--facets", "colour"], "unknown facet 'colour'"),
    (["幼小", "--since", "last week"], "--since must be a date"),
    (["幼小", "--after", "%%%"], "invalid --after cursor"),
    (["幼小", "--size", "5000"], "page size"),
    (["幼小", "--page", "99"], "there is no page 99"),
    (["幼小", "--es", "ftp://x"], "URL must look like"),
])
def test_bad_search_input(store_dir, args, needle):
    err = one_line_error(jianfu("search", *args, "--store", str(store_dir)))
    assert needle in err and err.startswith("jianfu search: error:")


def test_missing_store(tmp_path):
    assert "no jianfu store" in one_line_error(jianfu("search", "x", "--store", str(tmp_path / "none")))


def test_bad_sort_is_a_usage_error(store_dir):
    assert jianfu("search", "x", "--store", str(store_dir), "--sort", "random").returncode == 2


# -- Elasticsearch URLs that are not a healthy node -------------------------------------------
class _NotEs(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b'{"status":"green","hello":"I am not Elasticsearch"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_HEAD = do_GET  # noqa: N815

    def log_message(self, *a):
        pass


class _Html500(_NotEs):
    def do_GET(self):  # noqa: N802
        body = b"<html>proxy error</html>"
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(params=[_NotEs, _Html500])
def not_es(request):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def silent_port():
    """A port that accepts connections and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_es_refuses(store_dir):
    url = f"http://127.0.0.1:{_free_port()}"
    for cmd in (["search", "幼小"], ["index"]):
        err = one_line_error(jianfu(*cmd, "--store", str(store_dir), "--es", url))
        assert "connection refused" in err


def test_es_times_out(store_dir, silent_port):
    err = one_line_error(jianfu("search", "幼小", "--store", str(store_dir), "--es", silent_port, "--timeout", "1"))
    assert "timed out after 1s" in err


def test_es_is_something_else(store_dir, not_es):
    for cmd in (["search", "幼小"], ["index"]):
        err = one_line_error(jianfu(*cmd, "--store", str(store_dir), "--es", not_es))
        assert "is not Elasticsearch" in err
    # the store was not touched: nothing recorded as the ES configuration
    with Store(store_dir) as s:
        assert s.db.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'search.es%'").fetchone()[0] == 0


# -- Elasticsearch end to end and mapping conflicts ------------------------------------------
def test_index_then_search_es(store_dir, es_url):  # noqa: F811
    alias = es_prefix("cli")
    try:
        p = jianfu("index", "--store", str(store_dir), "--es", es_url, "--es-index", alias)
        assert p.returncode == 0, p.stderr
        assert f"indexed {len(DOCS)} finding(s)" in p.stdout
        p = jianfu("index", "--store", str(store_dir), "--es", es_url, "--es-index", alias)  # again: idempotent
        assert p.returncode == 0, p.stderr
        es_args = ["--es", es_url, "--es-index", alias]
        a = json.loads(jianfu("search", "学", "--store", str(store_dir), "--format", "json", *es_args).stdout)
        b = json.loads(jianfu("search", "学", "--store", str(store_dir), "--format", "json").stdout)
        assert a["total"] == b["total"] > 0 and {h["id"] for h in a["hits"]} == {h["id"] for h in b["hits"]}
        assert a["facets"] == b["facets"]
        p = jianfu("search", "", "--source", "text,image", "--store", str(store_dir), "--export", "jsonl", *es_args)
        assert len(p.stdout.splitlines()) == len(DOCS)
        with Store(store_dir) as s:  # remembered for scans
            meta = dict(s.db.execute("SELECT key, value FROM meta WHERE key LIKE 'search.es%'").fetchall())
            assert meta == {"search.es_url": es_url, "search.es_index": alias}
        be = ElasticBackend(es_url, alias=alias)
        assert len(be._alias_indices(alias)) == 1  # the old index was dropped by the second rebuild
        be.close()
    finally:
        ElasticBackend(es_url, alias=alias).drop()


def test_plain_index_in_the_way(store_dir, es_url):  # noqa: F811
    """An older layout: a plain index named like the alias with a conflicting mapping."""
    alias = es_prefix("plain")
    be = ElasticBackend(es_url, alias=alias)
    be.es.indices.create(index=alias, mappings={"properties": {"category": {"type": "integer"}}})
    be.es.index(index=alias, id="old", document={"category": 3}, refresh=True)
    try:
        err = one_line_error(jianfu("search", "幼小", "--store", str(store_dir), "--es", es_url, "--es-index", alias))
        assert "plain index" in err and "--replace" in err
        err = one_line_error(jianfu("index", "--store", str(store_dir), "--es", es_url, "--es-index", alias))
        assert "--replace" in err
        # no partial writes: the old index is intact and no new index was left behind
        assert be.es.count(index=alias)["count"] == 1
        assert list(be.es.indices.get(index=f"{alias}-v*", allow_no_indices=True).body) == []
        p = jianfu("index", "--store", str(store_dir), "--es", es_url, "--es-index", alias, "--replace")
        assert p.returncode == 0, p.stderr
        assert be.count(SearchQuery(text="", filters={"source": ["text", "image"]})) == len(DOCS)
    finally:
        try:
            be.es.indices.delete(index=alias)
        except Exception:
            pass
        be.drop()
        be.close()


def test_older_mapping_version_is_rebuilt_not_lost(tmp_path, es_url):  # noqa: F811
    alias = es_prefix("older")
    be = ElasticBackend(es_url, alias=alias)
    old = mappings(None)
    old["_meta"]["jianfu_mapping_version"] = 0
    old["properties"]["severity"] = {"type": "integer"}  # a conflicting older field type
    be.es.indices.create(index=f"{alias}-v0-old", mappings=old,
                         aliases={alias: {}, be.write_alias: {"is_write_index": True}})
    store = Store(tmp_path / "s")
    from detectors.model import Finding

    scan = store.begin_scan(["x"])
    ids = store.save_findings(scan, "http://127.0.0.1:1/a", "text", "幼小衔接班招生",
                              [Finding("preschool_subject", "r", "幼小衔接", 0, 4, 0.9, "high", "b")])
    try:
        idx = Indexer(store, be)
        res = idx.drain()
        assert res.error and "mapping version 0" in res.error and res.pending == 1
        with pytest.raises(SearchError, match="mapping version 0"):
            be.search(SearchQuery(text="幼小衔接"))
        store.close()
        p = jianfu("index", "--store", str(tmp_path / "s"), "--es", es_url, "--es-index", alias)
        assert p.returncode == 0, p.stderr
        store = Store(tmp_path / "s")
        assert store.db.execute("SELECT COUNT(*) FROM index_outbox").fetchone()[0] == 0
        be2 = ElasticBackend(es_url, alias=alias)
        r = be2.search(SearchQuery(text="幼小衔接"))
        assert [h.id for h in r.hits] == ids
        assert be2._alias_indices(alias)[0].startswith(f"{alias}-v{MAPPING_VERSION}-")
        be2.close()
    finally:
        store.close()
        be.drop()
        be.close()


def test_bulk_item_failure_stays_queued(tmp_path, es_url):  # noqa: F811
    """A document the index rejects is kept in the outbox with its reason, the rest go through."""
    alias = es_prefix("reject")
    be = ElasticBackend(es_url, alias=alias)
    store = Store(tmp_path)
    from detectors.model import Finding

    scan = store.begin_scan(["x"])
    store.save_findings(scan, "http://127.0.0.1:1/a", "text", "奥数竞赛和包过",
                        [Finding("competition_ranking", "r1", "奥数竞赛", 0, 4, 0.9, "high", "b"),
                         Finding("guarantee_promise", "r2", "包过", 5, 7, 0.8, "medium", "b")])
    store.db.execute("UPDATE findings SET first_seen_at='not a date' WHERE rule_id='r2'")
    store.db.commit()
    try:
        res = Indexer(store, be, refresh=True).drain()
        assert res.sent == 1 and res.failed == 1 and res.pending == 1
        (err,) = store.db.execute("SELECT last_error FROM index_outbox").fetchone()
        assert "parsing" in err or "date" in err
    finally:
        store.close()
        be.drop()
        be.close()


def test_analyzer_choice_and_mapping():
    assert pick_analyzer(["x-pack-core", "transport-netty4"]) is None
    assert pick_analyzer(["analysis-common"]) == ("cjk", "cjk")
    assert pick_analyzer(["analysis-common", "analysis-smartcn"]) == ("smartcn", "smartcn")
    assert pick_analyzer(["analysis-smartcn", "analysis-ik"]) == ("ik_max_word", "ik_smart")
    m = mappings(("ik_max_word", "ik_smart"))
    assert m["properties"]["text"]["analyzer"] == "standard"
    assert m["properties"]["context"]["fields"]["words"]["analyzer"] == "ik_max_word"
    assert m["dynamic"] == "strict" and m["_meta"]["analyzer"] == "ik_max_word"
    for f in ("category", "rule_id", "institution", "district", "severity", "status"):
        assert m["properties"][f]["type"] == "keyword"
    assert m["properties"]["@timestamp"]["type"] == "date"
