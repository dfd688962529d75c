"""One conformance suite for the store, run against both backends: the SQLite file and a real
PostgreSQL server (started by tests/servers.py on a free port). Every test takes ``location``
(a store directory, or a ``postgresql://…?files=`` URL) and must behave identically on both."""

from __future__ import annotations

import sqlite3
import threading
import uuid

import pytest

from detectors.model import Finding
from scheduler import alerts, runs
from store import Store, StoreError
from store.backends import store_exists, translate_ddl, translate_sql
from tests.servers import postgres  # noqa: F401 - session fixture
from tests.test_search_conformance import es_url  # noqa: F401 - session fixture: the test node


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "store")
    return request.getfixturevalue("postgres").url(tmp_path / "files")


def _finding(text: str, rule: str = "R1", category: str = "exam_ranking", start: int = 0) -> Finding:
    return Finding(category=category, rule_id=rule, text=text, start=start, end=start + len(text), score=0.9,
                   severity="high", basis="《意见》第十三条", explanation=("matched", text))


def _strip(rows):
    """Rows without the wall-clock fields (they differ between two runs of the same scenario)."""
    drop = {"fetched_at", "started_at", "finished_at", "first_seen_at", "last_seen_at", "seen_at", "queued_at",
            "created_at", "next_attempt_at"}
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def scenario(location: str) -> dict:
    """A scan, a re-scan and a review: everything Store does, as data to compare across backends."""
    with Store(location) as s:
        a = s.begin_scan(["http://a.test/"], {"depth": 2}, target="t1", scan_id="scan-a")
        f1 = s.record_fetch(a, "http://a.test/", status=200, headers={"ETag": "x"}, elapsed_ms=1.5,
                            warc_file="a.warc.gz", warc_offset=2**33)
        f2 = s.record_fetch(a, "http://a.test/gone", status=404, error="http_404", reason="Not Found")
        s.record_fetch(a, "http://a.test/gone", kind="page", status=404, error="http_404", reason="Not Found")
        s.note_fetch(f1, "slow")
        s.mark_fetch_error(f2, "http_404", "页面不存在")
        text = "本机构保证提分，全市排名第一。尾"
        pid = s.save_page(a, "http://a.test/", title="首页", text=text, content_sha256="h1", depth=0,
                          institution="甲", rendered=True, text_boxes=[{"start": 0, "end": 2, "box": [1, 2, 3, 4]}],
                          warc_file="a.warc.gz", warc_offset=2**33)
        assert s.save_page(a, "http://a.test/", title="首页2", text=text, content_sha256="h1") == pid
        s.put_blob(b"png-bytes")
        s.save_image("sha-img", bytes=9, width=10, height=20, format="PNG", ocr=[{"text": "提分"}], qr=["http://q"])
        s.save_image("sha-img", phash="ff")
        s.link_image(a, "http://a.test/", "http://a.test/ad.png", "sha-img")
        s.link_image(a, "http://a.test/", "http://a.test/ad.png", "sha-img", error=None)
        s.link_qr(a, "http://a.test/", "http://a.test/ad.png", "sha-img", "http://q", "outside", "不在扫描范围")
        ids = s.save_findings(a, "http://a.test/", "text", text,
                              [_finding("保证提分", start=3), _finding("排名第一", "R2", "ranking", 9),
                               _finding("保证提分", start=3)], institution="甲", district="示范区")
        img = s.save_findings(a, "http://a.test/", "image", "提分", [_finding("提分")], image_url="http://a.test/ad.png",
                              image_sha256="sha-img", boxes=[[[0, 0], [1, 1]]], institution="甲")
        s.set_detector_fingerprint(a, "fp1")
        s.set_detector_fingerprint(a, "fp2")
        s.finish_scan(a)
        assert s.finish_scan(a, "interrupted", if_status="running")["status"] == "finished"

        b = s.begin_scan(["http://a.test/"], target="t1", scan_id="scan-b")
        s.record_fetch(b, "http://a.test/", status=304)
        s.resight(b, ids[:2])
        s.finish_scan(b)
        reviewed = s.set_status(ids[:1], "confirmed")
        out = {
            "ids": ids + img,
            "reviewed": reviewed,
            "scans": _strip(s.scans()),
            "summary_a": _strip([s.scan_summary(a)]),
            "summary_b": _strip([s.scan_summary(b)]),
            "pages": _strip(s.pages(a)),
            "page": _strip([s.page(a, "http://a.test/")]),
            "image": {k: v for k, v in s.image("sha-img").items() if k != "first_seen_at"},
            "qr": _strip(s.qr_links(a)),
            "showing": s.pages_showing(a, "http://a.test/ad.png"),
            "findings": _strip(s.findings()),
            "findings_b": _strip(s.findings(scan_id=b)),
            "confirmed": [f["id"] for f in s.findings(status="confirmed")],
            "by_ids": [f["id"] for f in s.findings(ids=ids[1:2])],
            "no_ids": list(s.findings(ids=[])),
            "category": [f["id"] for f in s.findings(category="ranking")],
            "sighted": sorted(s.sighted(b, "http://a.test/")),
            "last_fetches": [(r["url"], r["warc_offset"]) for r in s.last_fetches("none")],
            "hashes": {u: h for u, (_, h) in s.last_page_hashes("fp2", "none").items()},
            "hashes_other_fp": s.last_page_hashes("fp1", "none"),
            "outbox": [tuple(r) for r in s.db.execute(
                "SELECT finding_id, version, rejected FROM index_outbox ORDER BY finding_id")],
            "blob": s.blob_path(s.put_blob(b"png-bytes")).read_bytes(),
        }
    return out


def test_scenario_matches_across_backends(postgres, tmp_path):  # noqa: F811
    """The same calls give the same data in SQLite and in PostgreSQL."""
    lite = scenario(str(tmp_path / "lite"))
    pg = scenario(postgres.url(tmp_path / "pgfiles"))
    assert lite.keys() == pg.keys()
    for key in lite:
        assert pg[key] == lite[key], key
    # and the scenario itself is what the store promises
    assert len(set(lite["ids"])) == 4 and lite["ids"][0] != lite["ids"][2]  # a repeat is its own occurrence
    assert lite["summary_a"][0]["failures"] == [{"url": "http://a.test/gone", "kind": "page", "status": 404,
                                                 "error": "http_404", "reason": "Not Found", "attempts": 1},
                                                {"url": "http://a.test/gone", "kind": "page", "status": 404,
                                                 "error": "http_404", "reason": "Not Found", "attempts": 1}] \
        or lite["summary_a"][0]["errors"] == 1
    assert lite["summary_b"][0]["findings"] == 2 and lite["summary_b"][0]["new_findings"] == 0
    assert lite["page"][0]["title"] == "首页2" and lite["page"][0]["rendered"] == 1
    assert lite["page"][0]["warc_offset"] == 2**33
    assert lite["image"]["phash"] == "ff" and lite["image"]["width"] == 10
    assert lite["no_ids"] == [] and lite["reviewed"] == 1
    assert [v for _, v, _ in lite["outbox"]] == [2, 2, 1, 1] or sorted(v for _, v, _ in lite["outbox"]) == [1, 1, 2, 3]
    assert lite["hashes"] == {"http://a.test/": "h1"} and lite["hashes_other_fp"] == {}


def test_nul_and_unicode_survive(location):
    with Store(location) as s:
        a = s.begin_scan(["http://a.test/"])
        s.save_page(a, "http://a.test/", text="前\x00后", title="标题")
        text = s.page(a, "http://a.test/")["text"]
    assert len(text) == 3 and text[0] == "前" and text[2] == "后"  # offsets into the text still hold


def test_fetch_ids_increase_and_rowcount(location):
    with Store(location) as s:
        a = s.begin_scan(["http://a.test/"])
        ids = [s.record_fetch(a, f"http://a.test/{i}", status=200) for i in range(5)]
        assert ids == sorted(ids) and len(set(ids)) == 5 and ids[0] >= 1
        fids = s.save_findings(a, "http://a.test/0", "text", "保证提分", [_finding("保证提分")])
        assert s.set_status(fids + ["nope"], "dismissed") == 1
        with pytest.raises(ValueError):
            s.set_status(fids, "deleted")


def test_reopen_and_migrate_added_columns(location):
    """An older store (without a column in ADDED_COLUMNS) gets it when opened."""
    with Store(location) as s:
        s.db.execute("ALTER TABLE index_outbox DROP COLUMN retry_at")
        with s.db:
            pass
    with Store(location) as s:
        cols = {d[0] for d in s.db.execute("SELECT * FROM index_outbox LIMIT 0").description}
        s.db.execute("INSERT INTO index_outbox(finding_id, queued_at, retry_at) VALUES ('f', 'now', ?)",
                      (1796049870.125,))
        assert s.db.execute("SELECT retry_at FROM index_outbox").fetchone()[0] == 1796049870.125  # full precision
    assert "retry_at" in cols
    assert store_exists(location)


def test_two_connections_write_one_finding_once(location):
    """Two writers (two workers) record the same finding: one row, one sighting per scan."""
    with Store(location) as s:
        a = s.begin_scan(["http://a.test/"])
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with Store(location) as w:
                for _ in range(10):
                    w.save_findings(a, "http://a.test/", "text", "保证提分", [_finding("保证提分")])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=write) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with Store(location) as s:
        assert s.db.execute("SELECT COUNT(*) FROM findings").fetchone()[0] == 1
        assert s.db.execute("SELECT COUNT(*) FROM sightings").fetchone()[0] == 1


def test_runs_baseline_and_alerts(location):
    """The scheduler's run table, the one-running-per-target lock and the alert outbox."""
    with Store(location) as s:
        a = s.begin_scan(["http://a.test/"], target="t1")
        s.save_page(a, "http://a.test/", text="保证提分")
        gone_id = s.save_findings(a, "http://a.test/", "text", "x", [_finding("旧的")])[0]
        s.save_findings(a, "http://a.test/", "text", "保证提分", [_finding("保证提分")])
        s.finish_scan(a)
    db = runs.connect(location)
    other = runs.connect(location)
    try:
        r1 = runs.begin_run(db, "t1", "schedule")
        with pytest.raises(runs.AlreadyRunning):
            runs.begin_run(other, "t1", "schedule")  # a second connection: the database enforces it
        run = runs.finish_run(db, r1, "finished", a, {"pages": 1}, None, ["webhook"])
        assert (run["status"], run["new"], run["findings"], run["alerts"]) == ("finished", 2, 2, 2)
        outbox = alerts.outbox(db)
        assert len(outbox) == 1 and outbox[0]["status"] == "pending"
        alerts.enqueue(db, r1, "t1", a, [gone_id], {gone_id: "new"}, ["webhook"])  # same run+channel: no dup
        assert len(alerts.outbox(db)) == 1

        with Store(location) as s:
            b = s.begin_scan(["http://a.test/"], target="t1")
            s.save_page(b, "http://a.test/", text="保证提分")
            s.save_findings(b, "http://a.test/", "text", "保证提分", [_finding("保证提分")])
            s.finish_scan(b)
        r2 = runs.begin_run(other, "t1", "schedule")
        run = runs.finish_run(other, r2, "finished", b, {"pages": 1}, None, [])
        assert (run["new"], run["present"], run["gone"]) == (0, 1, 1)
        assert [r["id"] for r in runs.list_runs(db, "t1")] == [r1, r2]
        assert runs.last_runs(db)["t1"]["id"] == r2
        runs.record_skipped(db, "t1", "run-now", "busy")
        assert runs.list_runs(db)[-1]["status"] == "skipped"
    finally:
        db.close()
        other.close()


def test_index_outbox_drains_to_elasticsearch(location, es_url):  # noqa: F811
    """Every worker indexes through the outbox into the one Elasticsearch, from either backend."""
    from search.elastic import ElasticBackend
    from search.indexer import Indexer

    alias = f"jianfu-conf-{uuid.uuid4().hex[:8]}"
    backend = ElasticBackend(es_url, alias=alias, timeout=10)
    try:
        with Store(location) as s:
            a = s.begin_scan(["http://a.test/"])
            s.save_page(a, "http://a.test/", title="首页", text="保证提分 排名第一")
            ids = s.save_findings(a, "http://a.test/", "text", "保证提分 排名第一",
                                  [_finding("保证提分"), _finding("排名第一", "R2", start=5)])
            res = Indexer(s, backend, refresh=True).drain(force=True)
            assert (res.sent, res.pending, res.error) == (2, 0, None)
            assert s.db.execute("SELECT COUNT(*) FROM index_outbox").fetchone()[0] == 0
            s.set_status(ids[:1], "confirmed")
            assert Indexer(s, backend, refresh=True).drain(force=True).sent == 1
    finally:
        for name in backend.es.indices.get(index=f"{alias}-v*", ignore_unavailable=True, allow_no_indices=True):
            backend.es.indices.delete(index=name)
        backend.close()


def test_bad_postgres_location_is_one_line(tmp_path, postgres):  # noqa: F811
    with pytest.raises(StoreError, match="files="):
        Store(f"postgresql://jianfu@127.0.0.1:{postgres.port}/postgres")
    with pytest.raises(StoreError, match="无法打开存储库"):
        Store(f"postgresql://jianfu@127.0.0.1:1/nowhere?files={tmp_path}")


def test_sql_translation():
    assert translate_sql("SELECT '?', \"a?\" FROM t WHERE x=? AND y LIKE '%a' -- ?\n AND z IN ()") == \
        "SELECT '?', \"a?\" FROM t WHERE x=%s AND y LIKE '%%a' -- ?\n AND z IN (SELECT NULL WHERE FALSE)"
    ddl = translate_ddl("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER, r REAL, b BLOB, "
                        "note TEXT DEFAULT 'INTEGER') -- REAL comment")
    assert "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY" in ddl and "n BIGINT" in ddl
    assert "DOUBLE PRECISION" in ddl and "BYTEA" in ddl and "'INTEGER'" in ddl and "-- REAL comment" in ddl


def test_integrity_error_is_sqlite3s(location):
    """Code that catches sqlite3.IntegrityError works on PostgreSQL too."""
    with Store(location) as s:
        s.begin_scan(["http://a.test/"], scan_id="same")
        with pytest.raises(sqlite3.IntegrityError):
            s.begin_scan(["http://a.test/"], scan_id="same")


def test_explicit_transactions_commit_and_roll_back(location):
    """BEGIN IMMEDIATE … COMMIT / ROLLBACK issued as statements (scheduler/runs.py) work on both."""
    with Store(location):
        pass
    db = runs.connect(location)
    try:
        with pytest.raises(RuntimeError):
            with runs.tx(db):
                db.execute("INSERT INTO meta(key, value) VALUES ('a', '1')")
                raise RuntimeError("abort")
        with runs.tx(db):
            db.execute("INSERT INTO meta(key, value) VALUES ('b', '2')")
        with pytest.raises(sqlite3.IntegrityError):
            with runs.tx(db):
                db.execute("INSERT INTO meta(key, value) VALUES ('c', '3')")
                db.execute("INSERT INTO meta(key, value) VALUES ('b', '2')")
        keys = [r[0] for r in db.execute("SELECT key FROM meta WHERE key IN ('a', 'b', 'c') ORDER BY key")]
    finally:
        db.close()
    assert keys == ["b"]


# -- the other areas' tables: cases, page addresses, ledger, precedents, abandoned scans ----------------

def _cases_scenario(location: str, ledger_csv) -> dict:
    """Cases (grouping, review and proposal history, listing, filters, paging, facets), page
    addresses, the institution ledger, precedents and abandoned scans: as data to compare."""
    from ledger.importer import import_file

    def strip(d, *also: str):
        """Without wall-clock times and random ids (they differ between two runs)."""
        return {k: v for k, v in d.items() if k not in {"updated_at", "at", "cursor", "imported_at", "proposal_id",
                                                         "changed_at", "import_id", "first_seen_at", "last_seen_at",
                                                         "seen_at", "started_at", "finished_at", *also}}

    with Store(location) as s:
        a = s.begin_scan(["http://a.test/"], target="t1", scan_id="scan-a")
        for page, fetched in (("http://a.test/", "http://a.test/index.html"), ("http://a.test/", "http://a.test/"),
                              ("http://a.test/b", "http://a.test/b?utm_source=x")):
            s.record_page_address(a, page, fetched, content_sha256="h", warc_file="a.warc.gz", warc_offset=1)
        s.save_page(a, "http://a.test/", title="首页", text="保证提分 排名第一", content_sha256="h")
        s.save_page(a, "http://a.test/b", title="课程", text="保证提分", content_sha256="h2")
        s.save_image("sha-ad", width=10, height=10, phash="ffff0000ffff0000")
        s.link_image(a, "http://a.test/", "http://a.test/ad.png", "sha-ad")
        s.link_image(a, "http://b.test/", "http://b.test/same.png", "sha-ad")
        text = s.save_findings(a, "http://a.test/", "text", "保证提分 排名第一",
                               [_finding("保证提分"), _finding("排名第一", "R2", "ranking", 5)],
                               institution="甲学校", district="东城区")
        other = s.save_findings(a, "http://a.test/b", "text", "保证提分", [_finding("保证提分")],
                                institution="甲学校", district="东城区")
        img = s.save_findings(a, "http://a.test/", "image", "提分", [_finding("提分", category="ranking")],
                              image_url="http://a.test/ad.png", image_sha256="sha-ad", institution="甲学校")
        unnamed = s.save_findings(a, "http://c.test/", "text", "全市第一", [_finding("全市第一", "R3", "ranking")],
                                  district="西城区")
        s.finish_scan(a)
        b = s.begin_scan(["http://a.test/"], target="t1", scan_id="scan-b")
        s.resight(b, text)
        s.record_page_address(b, "http://a.test/", "http://a.test/?utm_medium=y", content_sha256="h",
                              warc_file="b.warc.gz", warc_offset=2)
        s.finish_scan(b)

        cids = s.case_ids_of(text + other + img + unnamed)
        case_text, case_img = cids[text[0]], cids[img[0]]
        s.set_case_status([case_text], "confirmed", actor="张三", reason="核实")
        prop = s.propose_case_status(case_img, "dismissed", actor="李四", reason="误报")
        pending = [c["id"] for c in s.pending_proposals()]
        s.decide_case_proposal(case_img, approve=False, actor="王五", reason="证据充分", proposal_id=prop)
        s.propose_case_status(case_img, "confirmed", actor="李四", reason="复核")
        s.decide_case_proposal(case_img, approve=True, actor="王五")
        s.set_status(other, "dismissed", actor="张三", reason="单条")
        first_page = s.cases(limit=2)
        second_page = s.cases(limit=2, after=first_page[-1]["cursor"])

        # ledger: import, re-import with a change, lookups, scans and findings against it
        first = import_file(s, ledger_csv)
        again = import_file(s, ledger_csv)
        rows = list(s.institutions())
        code = rows[0]["credit_code"]
        with_site = next(r for r in rows if r["sites"])
        s.record_scan_site(a, "甲学校", code, "seed", "种子")
        s.record_scan_site(a, "甲学校", code, "domain", "域名")
        s.record_scan_site(a, "乙", None, None, None)
        s.attach_ledger(text, code, rows[0])

        # tips and submissions (intake/): a tip's upload checked in scan a, its cases linked
        tip = s.add_tip(channel="phone", text="举报 甲学校 保证提分", urls=["http://a.test/"], institution="甲学校",
                        district="东城区", received_at="2026-01-02T03:04:05.000Z")
        s.add_tip(channel="mail", text="另一条", received_at="2026-01-03T03:04:05.000Z")
        sub = s.add_submission(kind="url", url="http://a.test/", status="checked", tip_id=tip, scan_id=a,
                               page_url="http://a.test/", findings=2, details={"pages": 1},
                               received_at="2026-01-02T03:05:00.000Z")
        s.update_submission(sub, reason=None, findings=3)
        on_pages = s.case_ids_on_pages(a, ["http://a.test/", "http://a.test/b"])
        linked = s.link_tip_cases(tip, on_pages)
        relinked = s.link_tip_cases(tip, on_pages, by="张三")

        # a scan whose process is gone is closed; a running one (this process) is not
        gone = s.begin_scan(["http://d.test/"], scan_id="scan-gone")
        s.begin_scan(["http://d.test/"], scan_id="scan-alive")
        s.db.execute("UPDATE scans SET process_key='not-this-process' WHERE id=?", (gone,))
        closed = s.close_abandoned_scans()

        out = {
            "addresses": [strip(r) for r in s.page_addresses("http://a.test/")],
            "addresses_a": [strip(r) for r in s.page_addresses("http://a.test/", scan_id=a)],
            "alternates": s.alternate_urls("http://a.test/"),
            "alternate_map": s.alternate_url_map(),
            "not_reached": s.pages_not_reached(b, ["http://a.test"]),
            "case_of": {f: cids[f] for f in sorted(cids)},
            # (the default order is by last_seen_at, a wall-clock time: compared as sets across backends)
            "cases": sorted((strip(c) for c in s.cases(limit=50)), key=lambda c: c["id"]),
            "paged": sorted(c["id"] for c in first_page + second_page),
            "paged_in_order": [c["last_seen_at"] for c in first_page + second_page] == sorted(
                (c["last_seen_at"] for c in first_page + second_page), reverse=True),
            "by_severity": [c["id"] for c in s.cases(sort="severity")],
            "by_institution": [c["id"] for c in s.cases(sort="institution", descending=False)],
            "offset": [c["id"] for c in s.cases(limit=1, offset=1, sort="violations")],
            "count": s.count_cases(),
            "filtered": {
                "category": sorted(c["id"] for c in s.cases(category="ranking")),
                "district": sorted(c["id"] for c in s.cases(district="东城区")),
                "institution": sorted(c["id"] for c in s.cases(institution=["甲学校", "http://c.test"])),
                "status": sorted(c["id"] for c in s.cases(status="confirmed")),
                "source": s.count_cases(source="image"),
                "scan": sorted(c["id"] for c in s.cases(scan_id=b)),
                "findings": sorted(c["id"] for c in s.cases(finding_ids=[img[0], "nope"])),
                "many_findings": s.count_cases(finding_ids=[*text, *[f"x{i}" for i in range(600)]]),
                "many_ids": s.count_cases(ids=[case_text, *[f"y{i}" for i in range(600)]]),
                "since": s.count_cases(since="2000-01-01T00:00:00Z", until="2999-01-01T00:00:00Z"),
                "new_since": s.count_cases(new_since="2999-01-01T00:00:00Z"),
            },
            "facets": s.case_facets(),
            "trend": [k for _, k in s.case_trend()],
            "resolved": s.resolve_case_id(case_text[:8].upper()),
            "case": strip(s.case(case_text, detail=False)),
            "case_detail": sorted(s.case(case_img)),
            "case_findings": [f["id"] for f in s.case_findings(case_text)],
            "sightings": [(d["scan_id"], d["findings"], d["pages"]) for d in s.case_sightings(case_text)],
            "elsewhere": [strip(r) for r in s.same_ad_elsewhere(case_img)],
            "reviews": {c: [strip(r, "id") for r in s.case_reviews(c)] for c in (case_text, case_img, cids[other[0]])},
            "pending": pending,
            "precedents": s.reviewed_findings(),
            "import": [strip(r, "id") for r in (first, again)],
            "imports": len(s.ledger_imports()),
            "has_ledger": s.has_ledger(),
            "institutions": [strip(r, "created_at", "last_import_id") for r in rows],
            "counts": s.count_institutions(),
            "counts_district": s.count_institutions(district=rows[0]["district"]),
            "by_name": [r["credit_code"] for r in s.institutions(name=rows[1]["name"][3:7])],
            "page": [r["credit_code"] for r in s.institutions(limit=3, offset=2, with_site=True)],
            "by_host": [r["credit_code"] for r in s.institutions_by_key(
                "host", [with_site["sites"][0].split("/")[2].removeprefix("www."), "nowhere.cn"])],
            "history": [strip(h) for h in s.institution_history(code)],
            "seeds": s.ledger_seeds(status=["approved"]),
            "scan_sites": s.scan_sites(a),
            "institution_scans": [strip(r) for r in s.institution_scans(code)],
            "institution_findings": [f["id"] for f in s.institution_findings(code)],
            "closed": closed,
            "tips": [strip(t, "id", "recorded_at") for t in s.tips()],
            "tip_cases": [strip(c, "linked_at") for c in s.tip_cases(tip)],
            "tips_of_cases": {k: [t == tip for t in v] for k, v in sorted(s.tips_of_cases(on_pages).items())},
            "tip_links": (linked, relinked, len(on_pages)),
            "submissions": [strip(x, "id", "tip_id") for x in s.submissions(tip_id=tip)],
            "case_submissions": [x["id"] == sub for x in s.case_submissions(case_text)],
            "scan_status": {r["id"]: r["status"] for r in s.scans()},
        }
    with Store(location, read_only=True) as r:  # the listing commands' way in: the same rows
        out["read_only_cases"] = sorted(c["id"] for c in r.cases(limit=50))
        with pytest.raises(sqlite3.Error):
            r.db.execute("DELETE FROM cases")
    return out


def test_cases_ledger_and_addresses_match_across_backends(postgres, tmp_path):  # noqa: F811
    from demo_site.ledger import generate, write_csv

    ledger_csv = write_csv(tmp_path / "ledger.csv", [r.cells for r in generate(60)])
    lite = _cases_scenario(str(tmp_path / "lite"), ledger_csv)
    pg = _cases_scenario(postgres.url(tmp_path / "pgfiles"), ledger_csv)
    assert lite.keys() == pg.keys()
    for key in lite:
        assert pg[key] == lite[key], key
    # and what the scenario promises
    assert lite["alternates"] == ["http://a.test/?utm_medium=y", "http://a.test/index.html"]
    assert lite["count"] == 4 and len(set(lite["paged"])) == 4 and lite["paged_in_order"]
    assert lite["filtered"]["source"] == 1 and lite["filtered"]["new_since"] == 0
    assert lite["filtered"]["many_findings"] == 1 and lite["filtered"]["many_ids"] == 1
    assert lite["resolved"] == lite["case_of"][sorted(lite["case_of"])[0]] or lite["resolved"]
    img_reviews = [r["action"] for r in lite["reviews"][lite["pending"][0]]]
    assert img_reviews == ["propose", "reject", "propose", "approve"]
    assert {p["status"] for p in lite["precedents"]} == {"confirmed", "dismissed"}
    assert lite["import"][0]["added"] > 0 and lite["import"][1]["unchanged"] == lite["import"][0]["added"]
    assert lite["by_name"] and lite["by_host"] and lite["seeds"]
    assert [(r["site"], r["linked_by"]) for r in lite["scan_sites"]] == [("乙", None), ("甲学校", "domain")]
    assert lite["closed"] == ["scan-gone"]
    assert lite["tip_links"] == (3, 0, 3) and lite["case_submissions"] == [True]
    assert lite["submissions"][0]["findings"] == 3 and len(lite["tips"]) == 2
    assert lite["scan_status"]["scan-gone"] == "interrupted" and lite["scan_status"]["scan-alive"] == "running"
    assert lite["read_only_cases"] == [c["id"] for c in lite["cases"]]


def test_concurrent_reviews_of_one_case_number_their_history(location):
    """Reviewers on several connections (web app threads, two machines): one history, 1…n."""
    with Store(location) as s:
        a = s.begin_scan(["http://a.test/"])
        (fid,) = s.save_findings(a, "http://a.test/", "text", "保证提分", [_finding("保证提分")], institution="甲")
        cid = s.case_ids_of([fid])[fid]
    errors: list[BaseException] = []

    def review(n: int) -> None:
        try:
            with Store(location) as w:
                for i in range(5):
                    w.set_case_status([cid], "confirmed" if (n + i) % 2 else "dismissed", actor=f"r{n}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=review, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with Store(location) as s:
        seqs = [r["seq"] for r in s.case_reviews(cid)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 5


def test_a_ledger_target_reaches_a_worker_and_reads_the_ledger(location, tmp_path):
    """A plan target with ``ledger = {…}`` sent as a queue job: the worker's crawl command has the
    institutions the store's ledger selects now (store.ledger_seeds on either backend)."""
    import json

    from demo_site.ledger import generate, write_csv
    from ledger.importer import import_file
    from scheduler import jobs, queue
    from scheduler.plans import PlanError, parse_plan

    plan = parse_plan(f'store = "{location}"\n[targets.east]\nevery = "1h"\n'
                      'ledger = { district = "东城区", status = ["approved", "pending"] }\n', tmp_path / "plan.toml")
    t = plan.targets["east"]
    with pytest.raises(PlanError):   # nothing in the ledger yet: the run fails with a clear line
        jobs.command_for(location, t)
    with Store(location) as s:
        import_file(s, write_csv(tmp_path / "ledger.csv", [r.cells for r in generate(80)]))
        want = [f"{name}={url}" for name, url, _ in s.ledger_seeds(district="东城区", status=["approved", "pending"])]
    job = json.loads(json.dumps(queue.job_payload(plan, t, "schedule"), ensure_ascii=False))  # the message
    assert queue.target_of(job) == t
    cmd = jobs.command_for(job["store"], queue.target_of(job))
    assert want and cmd[cmd.index("scan") + 1:cmd.index("--store")] == want
