"""Scans index into Elasticsearch as they go, and lose nothing when the node goes away mid-scan.

A real scan (subprocess) of the generated 500-page site indexes into the real test node; the node
is stopped while the scan runs and started again; afterwards the index holds exactly the store's
findings — no duplicates, none missing. The site answers each page after 40 ms, one page at a
time, so the scan lasts 20 s or more however fast scans become: long enough for the node to go
down and come back while it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from demo_site.server import DemoSites
from search.base import SearchQuery
from search.elastic import ElasticBackend
from store import Store
from tests.conftest import ROOT, jianfu
from tests.test_search_conformance import es_prefix, es_url  # noqa: F401  (fixture)
from tests.test_search_outbox import SCRIPT, _node_managed

ALL = SearchQuery(text="", filters={"source": ["text", "image"]})


@pytest.fixture
def slow_generated_site():
    with DemoSites(["generated"]) as sites:
        sites.handlers["generated"].page_delay = 0.04
        yield sites.urls["generated"]


def test_scan_indexes_as_it_goes_and_survives_an_outage(slow_generated_site, tmp_path, es_url):  # noqa: F811
    assert _node_managed(es_url), "the test node must be the one scripts/elasticsearch.sh runs"
    alias = es_prefix("scan")
    env = {**os.environ, "JIANFU_ES_URL": es_url, "JIANFU_ES_INDEX": alias}
    store_dir = tmp_path / "store"
    scan = subprocess.Popen(
        [sys.executable, "-m", "jianfu", "scan", slow_generated_site, "--store", str(store_dir),
         "--depth", "50", "--max-pages", "500", "--concurrency", "1", "--quiet", "--json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    be = ElasticBackend(es_url, alias=alias, timeout=10)
    try:
        deadline = time.monotonic() + 120
        while not _indexed(be):                      # findings reach the index while the scan runs
            assert scan.poll() is None, "the scan ended before anything was indexed"
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert subprocess.run([str(SCRIPT), "stop"], capture_output=True).returncode == 0
        stopped_during_scan = scan.poll() is None
        time.sleep(2)
        assert subprocess.run([str(SCRIPT), "start"], capture_output=True).returncode == 0
        out, err = scan.communicate(timeout=300)
        assert scan.returncode == 0, err[-2000:]
        summary = json.loads(out)
        assert stopped_during_scan, "the scan finished before the node went down: nothing was tested"
        proc = jianfu("index", "--store", str(store_dir), "--es", es_url, "--es-index", alias, "--drain")
        assert proc.returncode == 0, proc.stderr
        with Store(store_dir) as store:
            expected = {r["id"] for r in store.findings()}
            assert store.db.execute("SELECT COUNT(*) FROM index_outbox").fetchone()[0] == 0
        be.refresh()
        docs = [d["id"] for d in be.export(ALL)]
        assert len(docs) == len(set(docs)), "duplicate documents"
        assert set(docs) == expected and len(expected) == summary["findings"] > 100
    finally:
        if scan.poll() is None:
            scan.kill()
        if subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode != 0:
            subprocess.run([str(SCRIPT), "start"], capture_output=True)
        be.drop()
        be.close()


def _indexed(be: ElasticBackend) -> bool:
    try:
        be.refresh()
        return be.count(ALL) > 0
    except Exception:  # the alias does not exist until the first bulk
        return False
