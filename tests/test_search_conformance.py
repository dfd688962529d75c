"""One conformance suite, run against both search backends: SQLite FTS5 and a real Elasticsearch.

The ES node is started outside pytest (``scripts/elasticsearch.sh start``; ``make test`` does it).
Under CI=true an unreachable node FAILS these tests; locally they skip.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from search.base import SEVERITY_RANK, SearchError, SearchQuery, parse_query
from search.indexer import finding_doc

ES_URL = os.environ.get("JIANFU_TEST_ES_URL", "http://127.0.0.1:9200")
RUN = uuid.uuid4().hex[:8]


def es_prefix(name: str) -> str:
    return f"jianfu-test-{RUN}-{name}"


@pytest.fixture(scope="session")
def es_url() -> str:
    from search.elastic import ElasticBackend

    try:
        ElasticBackend(ES_URL, timeout=10).close()
    except SearchError as e:
        msg = (f"Elasticsearch test node not reachable at {ES_URL} ({e}); start it with "
               "`scripts/elasticsearch.sh start` or set JIANFU_TEST_ES_URL")
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return ES_URL


# -- the corpus -------------------------------------------------------------------------------
_T0 = datetime(2025, 1, 1, tzinfo=UTC)
_ROWS = [
    # (category, matched text, context, institution, district)
    ("preschool_subject", "幼小衔接", "暑期幼小衔接班火热招生，拼音识字一步到位", "启明星学堂", "海淀区"),
    ("preschool_subject", "幼小衔接", "春季幼小衔接课程，数学思维提前学", "启明星学堂", "朝阳区"),
    ("preschool_subject", "拼音提前学", "大班孩子拼音提前学，轻松上小学", "春芽教育", "海淀区"),
    ("competition_ranking", "奥数", "奥数竞赛集训营，冲刺华杯赛", "学霸通", "海淀区"),
    ("competition_ranking", "杯赛排名", "杯赛排名前十名奖励奖学金", "学霸通", "西城区"),
    ("competition_ranking", "数学竞赛一等奖", "我校学员获数学竞赛一等奖", "高思", "东城区"),
    ("advance_teaching", "超前学习", "超前学习初中数学，培优拔高", "高思", "海淀区"),
    ("advance_teaching", "提前学完", "寒假提前学完下学期内容", "卓越", "朝阳区"),
    ("off_hours_schedule", "周末全天班", "周末全天班，寒暑假集训", "卓越", "丰台区"),
    ("off_hours_schedule", "节假日补课", "国庆节假日补课不停课", "龙文", "丰台区"),
    ("prepaid_fees", "一次性缴清", "一次性缴清三年学费享八折", "龙文", "西城区"),
    ("prepaid_fees", "充值送课时", "充值送课时，年卡更优惠", "学大", "海淀区"),
    ("teacher_qualification", "名师", "清北名师授课，无需教师资格证", "学大", "朝阳区"),
    ("teacher_qualification", "名师", "前新东方名师一对一辅导", "新东方", "朝阳区"),
    ("guarantee_promise", "保证提分", "保证提分30分，不提分全额退款", "精锐", "海淀区"),
    ("guarantee_promise", "包过", "考试包过，VIP 小班", "精锐", "东城区"),
    ("false_claim", "100%升学率", "100%升学率，全市第一", "优胜", "通州区"),
    ("false_claim", "全市第一", "全市第一的培训机构，官方指定", "优胜", "通州区"),
    ("unlicensed_subject", "学科类培训", "学科类培训：语文数学英语", "金石", "大兴区"),
    ("unlicensed_subject", "一对一", "物理化学一对一上门辅导 VIP", "金石", None),
    ("photo_search", "拍照搜题", "拍照搜题，作业秒出答案", "小猿", None),
    ("photo_search", "搜题", "App 搜题神器，一拍即得", "小猿", "海淀区"),
]
SEVERITY = {"preschool_subject": "high", "competition_ranking": "high", "advance_teaching": "high",
            "off_hours_schedule": "medium", "prepaid_fees": "medium", "teacher_qualification": "low",
            "guarantee_promise": "medium", "false_claim": "low", "unlicensed_subject": "high",
            "photo_search": "medium"}


def make_docs() -> list[dict[str, Any]]:
    docs = []
    statuses = ["open", "open", "confirmed", "dismissed"]
    for i, (cat, text, context, inst, district) in enumerate(_ROWS):
        first = _T0 + timedelta(days=7 * i, hours=i)
        last = first + timedelta(days=(i * 37) % 90)
        ts = lambda d: d.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # noqa: E731
        start = context.find(text)
        docs.append(finding_doc({
            "id": f"f{i:02d}-{uuid.uuid5(uuid.NAMESPACE_DNS, str(i)).hex[:12]}", "category": cat,
            "rule_id": f"{cat}.r{i % 3}", "text": text, "start": start, "end": start + len(text),
            "score": [0.55, 0.7, 0.85, 0.95][i % 4], "severity": SEVERITY[cat], "basis": "《双减意见》第十三条",
            "explanation": [f"matched {text}"], "context": context, "url": f"http://127.0.0.1:1/{inst}/{i % 5}",
            "source": "image" if i % 6 == 5 else "text", "image_url": None, "image_sha256": None,
            "institution": inst, "district": district, "status": statuses[i % 4],
            "first_seen_at": ts(first), "last_seen_at": ts(last), "first_scan_id": "s1", "last_scan_id": "s1",
        }, page_title=f"{inst}课程", page_text=f"{inst} {context} 联系电话 010-0000"))
    return docs


DOCS = make_docs()


# -- the oracle: what every backend must answer ---------------------------------------------
def oracle(q: SearchQuery) -> list[dict[str, Any]]:
    parsed = parse_query(q.text)
    q2 = SearchQuery(**{**q.__dict__})
    q2.validate()

    def has(d: dict[str, Any], t: str) -> bool:
        return any(t.lower() in (d.get(f) or "").lower() for f in ("text", "context"))

    out = []
    for d in DOCS:
        if not all(any(has(d, t) for t in g) for g in parsed.groups):
            continue
        if any(has(d, t) for t in parsed.negatives):
            continue
        if any(d.get(k) not in v for k, v in q2.filters.items()):
            continue
        if q2.since and d["last_seen_at"] < q2.since:
            continue
        if q2.until and d["last_seen_at"] >= q2.until:
            continue
        out.append(d)
    keys = {
        "newest": lambda d: (_neg(d["last_seen_at"]), d["id"]),
        "oldest": lambda d: (d["first_seen_at"], d["id"]),
        "severity": lambda d: (-SEVERITY_RANK[d["severity"]], _neg(d["last_seen_at"]), d["id"]),
        "score": lambda d: (-d["score"], d["id"]),
        "relevance": lambda d: d["id"],
    }
    return sorted(out, key=keys[q.sort])


def _neg(s: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in s)


@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def backend(request, tmp_path_factory):
    if request.param == "sqlite":
        from search.sqlite_fts import SqliteBackend
        from store import Store

        store = Store(tmp_path_factory.mktemp("conformance"))
        be = SqliteBackend(store)
        be.index(DOCS)
        be.index(DOCS)  # idempotent
        yield be
        store.close()
    else:
        from search.elastic import ElasticBackend

        url = request.getfixturevalue("es_url")
        be = ElasticBackend(url, alias=es_prefix("conformance"))
        be.rebuild(iter(DOCS))
        be.index(DOCS, refresh=True)  # idempotent: same ids
        yield be
        be.drop()
        be.close()


CASES = [
    ("幼小衔接", {}),
    ("衔接", {}),            # two characters
    ("学", {}),              # one character
    ("提前学", {}),
    ("奥数 OR 杯赛", {}),
    ("名师 -新东方", {}),
    ('"全市第一"', {}),
    ("数学 海淀区", {}),      # district is a facet, not text: no match expected unless in text
    ("VIP", {}),
    ("vip", {}),
    ("一对一 OR 拍照搜题", {"source": ["text"]}),
    ("", {"category": ["prepaid_fees", "false_claim"]}),
    ("", {"institution": ["学霸通"]}),
    ("", {"district": ["海淀区"], "status": ["open"]}),
    ("学", {"severity": ["high"]}),
    ("不存在的词", {}),
]


@pytest.mark.parametrize("text,filters", CASES)
@pytest.mark.parametrize("sort", ["newest", "oldest", "severity", "score", "relevance"])
def test_matches_and_order(backend, text, filters, sort):
    q = SearchQuery(text=text, filters=filters, sort=sort, size=100)
    expected = oracle(q)
    r = backend.search(q)
    got = [h.id for h in r.hits]
    assert r.total == len(expected) == backend.count(q)
    if sort == "relevance" and text:
        assert sorted(got) == sorted(d["id"] for d in expected)
    else:
        assert got == [d["id"] for d in expected]


@pytest.mark.parametrize("text,filters", CASES)
def test_facets(backend, text, filters):
    q = SearchQuery(text=text, filters=filters, facets=("category", "institution", "district", "severity",
                                                         "status", "rule_id", "source"), size=0)
    expected = oracle(q)
    r = backend.search(q)
    assert r.hits == []
    for f in q.facets:
        counts: dict[str, int] = {}
        for d in expected:
            if d.get(f) is not None:
                counts[d[f]] = counts.get(d[f], 0) + 1
        assert r.facets[f] == sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])), f


@pytest.mark.parametrize("sort", ["newest", "severity", "relevance", "score"])
def test_cursor_paging_and_export(backend, sort):
    q = SearchQuery(text="", filters={"status": ["open", "confirmed", "dismissed"]}, sort=sort, size=3)
    all_ids, after, pages = [], None, 0
    while True:
        q.after = after
        r = backend.search(q)
        all_ids += [h.id for h in r.hits]
        pages += 1
        if not r.next_cursor:
            break
        after = r.next_cursor
    expected = [d["id"] for d in oracle(q)]
    assert all_ids == expected
    assert pages >= len(DOCS) // 3
    exported = list(backend.export(SearchQuery(text="", filters=q.filters, sort=sort)))
    assert [d["id"] for d in exported] == expected
    assert set(exported[0]) >= {"id", "category", "text", "context", "institution", "url", "last_seen_at"}


@pytest.mark.parametrize("text,filters", CASES)
def test_ids_are_the_matches(backend, text, filters):
    q = SearchQuery(text=text, filters=filters, sort="newest")
    expected = sorted(d["id"] for d in oracle(q))
    assert sorted(backend.ids(q)) == expected
    assert len(backend.ids(q, limit=2)) == min(2, len(expected))


def test_highlights(backend):
    r = backend.search(SearchQuery(text="幼小衔接 OR 包过", sort="newest"))
    assert r.total == 3
    for h in r.hits:
        marked = h.highlights["context"][0]
        assert "<em>幼小衔接</em>" in marked or "<em>包过</em>" in marked
        assert marked.replace("<em>", "").replace("</em>", "") == h.doc["context"]
        assert h.highlights["text"][0] in ("<em>幼小衔接</em>", "<em>包过</em>")
    r = backend.search(SearchQuery(text="", filters={"category": ["false_claim"]}))
    assert all(not h.highlights for h in r.hits)


def test_since_until(backend):
    since, until = DOCS[5]["last_seen_at"][:10], DOCS[15]["last_seen_at"][:10]
    q = SearchQuery(text="", filters={"source": ["text", "image"]}, since=since, until=until, sort="oldest")
    expected = [d["id"] for d in oracle(q)]
    assert 0 < len(expected) < len(DOCS)
    assert [h.id for h in backend.search(q).hits] == expected


def test_status_change_reindexes_in_place(backend):
    d = dict(DOCS[0], status="dismissed")
    backend.index([d], refresh=True)
    try:
        r = backend.search(SearchQuery(text="幼小衔接", filters={"status": ["dismissed"]}))
        assert [h.id for h in r.hits] == [d["id"]]
        assert backend.count(SearchQuery(text="", filters={"source": ["text", "image"]})) == len(DOCS)
    finally:
        backend.index([DOCS[0]], refresh=True)


@pytest.mark.parametrize("bad", ['"unbalanced', "OR 幼小", "幼小 OR", "-幼小", "！！", "x" * 600, "a " * 40])
def test_bad_queries_raise_one_line(backend, bad):
    with pytest.raises(SearchError) as e:
        backend.search(SearchQuery(text=bad))
    assert "\n" not in str(e.value)


def test_bad_options_raise(backend):
    for q in (SearchQuery(text=""), SearchQuery(text="x", facets=("nope",)), SearchQuery(text="x", sort="nope"),
              SearchQuery(text="x", filters={"colour": ["red"]}), SearchQuery(text="x", since="yesterday"),
              SearchQuery(text="x", after="garbage!"), SearchQuery(text="x", size=100000)):
        with pytest.raises(SearchError):
            backend.search(q)
    cur = backend.search(SearchQuery(text="学", sort="newest", size=1)).next_cursor
    with pytest.raises(SearchError):  # a cursor of another sort
        backend.search(SearchQuery(text="学", sort="oldest", after=cur))


@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def big_backend(request, tmp_path_factory):
    from bench.bench_search import generate

    docs = list(generate(10_600, seed=11, with_page_text=False))
    if request.param == "sqlite":
        from search.sqlite_fts import SqliteBackend
        from store import Store

        store = Store(tmp_path_factory.mktemp("big"))
        be = SqliteBackend(store)
        be.index(docs)
        yield be
        store.close()
    else:
        from search.elastic import ElasticBackend

        be = ElasticBackend(request.getfixturevalue("es_url"), alias=es_prefix("big"))
        be.rebuild(iter(docs))
        yield be
        be.drop()
        be.close()


def test_paging_past_10000(big_backend):
    q = SearchQuery(text="", filters={"source": ["text", "image"]}, sort="newest", size=1000, facets=())
    seen: list[str] = []
    while True:
        r = big_backend.search(q)
        assert r.total == 10_600
        seen += [h.id for h in r.hits]
        if not r.next_cursor:
            break
        q.after = r.next_cursor
    assert len(seen) == len(set(seen)) == 10_600
    exported = [d["id"] for d in big_backend.export(SearchQuery(text="", filters=q.filters, sort="newest"))]
    assert exported == seen
    assert sorted(big_backend.ids(SearchQuery(text="", filters=q.filters))) == sorted(seen)


def test_sqlite_index_follows_other_writers(tmp_path):
    """Findings written by another connection (a scan) are searchable at once, short words too."""
    from detectors.model import Finding
    from search.sqlite_fts import SqliteBackend
    from store import Store

    reader, writer = Store(tmp_path), Store(tmp_path)
    be = SqliteBackend(reader)
    scan = writer.begin_scan(["x"])
    text = "本周奥数班开课，保证提分"
    ids = writer.save_findings(scan, "http://127.0.0.1:1/a", "text", text,
                               [Finding("competition_ranking", "r", "奥数", 2, 4, 0.9, "high", "b")])
    for word in ("奥", "奥数", "奥数班", "提分"):
        assert [h.id for h in be.search(SearchQuery(text=word)).hits] == ids, word
    writer.db.execute("UPDATE findings SET context='已整改' WHERE id=?", (ids[0],))
    writer.db.commit()
    assert be.count(SearchQuery(text="提分")) == 0 and be.count(SearchQuery(text="整改")) == 1
    writer.db.execute("DELETE FROM sightings")
    writer.db.execute("DELETE FROM findings")
    writer.db.commit()
    assert be.count(SearchQuery(text="整改")) == 0
    reader.close()
    writer.close()


_EXACT_CONTEXTS = [
    "保证提分，不提分全额退款", "保，证提分", "保 证提分", "VIP 小班", "V.I.P 小班", "vip小班", "ＶＩＰ一对一",
    "100%升学率", "100 %升学率", "升学率100％", "C++ 编程", "全市 第一", "全市第一", "全市\u3000第一",
    "Math 奥数", "mathematics", "学", "学而思", "“名师”授课", "名师授课", "tab\tsep", "a_b%c",
]


def test_sqlite_words_are_exact_substrings(tmp_path):
    """A word matches exactly the findings whose text or context holds it (case aside), whatever its
    length, punctuation or whitespace: the index drops no character."""
    from search.sqlite_fts import SqliteBackend
    from store import Store

    docs = [{**DOCS[0], "id": f"x{i:02d}", "text": c[:1], "context": c} for i, c in enumerate(_EXACT_CONTEXTS)]
    store = Store(tmp_path)
    be = SqliteBackend(store)
    be.index(docs)
    words = ["保证", "保", "证提", "VIP", "vip", "ｖｉｐ", "V.I.P", "100%", "100%升学率", "%升", "0％", "C++", "c+",
             '"全市 第一"', "全市第一", "全市", "math", "MATH", "学", "“名师”", "名师", "师”", "tab", "_b%", "a_b%c"]
    for word in words:
        term = word.strip('"')
        want = sorted(d["id"] for d in docs if term.lower() in d["context"].lower())
        got = sorted(be.ids(SearchQuery(text=word, filters={"source": ["text", "image"]})))
        assert got == want, word
    store.close()


def _vocab(store: Any) -> list[tuple]:
    """Every token of the SQLite index: (term, finding id, column, position)."""
    db = store.db
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.findings_fts_vocab USING fts5vocab(main, findings_fts, 'instance')")
    return [tuple(r) for r in db.execute("SELECT v.term, f.id, v.col, v.offset FROM temp.findings_fts_vocab v "
                                         "LEFT JOIN findings f ON f.rowid = v.doc ORDER BY 1, 2, 3, 4")]


def test_sqlite_index_forgets_changed_and_deleted_findings(tmp_path):
    """The SQLite indexes keep no copy of the text: a changed or deleted finding leaves them only
    when given the values they were built from. After updates (twice before one catch-up, text
    only, context only, by upsert), deletes, deleted rowids taken again (before and after a catch-up), and
    several catch-ups, the indexes hold exactly what indexing the final findings afresh holds."""
    from bench.bench_search import generate
    from search.sqlite_fts import SqliteBackend
    from store import Store

    docs = list(generate(400, seed=5, with_page_text=False))
    store, writer = Store(tmp_path / "a"), Store(tmp_path / "a")
    be = SqliteBackend(store)
    be.index(docs[:300])
    assert be.count(SearchQuery(text="", filters={"source": ["text", "image"]})) == 300
    w = writer.db
    ids = [d["id"] for d in docs]
    with w:
        w.executemany("UPDATE findings SET context = context || '加急开班' WHERE id=?", [(i,) for i in ids[:40]])
        w.executemany("UPDATE findings SET context = '改为周日上课' WHERE id=?", [(i,) for i in ids[:20]])  # twice
        w.executemany("UPDATE findings SET text = '补习班' WHERE id=?", [(i,) for i in ids[40:60]])
        w.executemany("DELETE FROM findings WHERE id=?", [(i,) for i in ids[60:90]])
        w.executemany("UPDATE findings SET status = 'confirmed' WHERE id=?", [(i,) for i in ids[90:100]])
    assert be.count(SearchQuery(text="周日")) == 20 and be.count(SearchQuery(text="加急开班")) == 20
    be.index([{**d, "context": "暑期托管班报名"} for d in docs[100:130]] + docs[300:350])  # upserts and new ones
    last = w.execute("SELECT id FROM findings ORDER BY rowid DESC LIMIT 1").fetchone()[0]
    with w:
        w.execute("DELETE FROM findings WHERE id=?", (last,))
    be.index(docs[350:])  # the first of these takes the deleted row's rowid
    with w:
        w.execute("UPDATE findings SET context = '全新内容' WHERE id=?", (ids[399],))
    with w:
        w.execute("DELETE FROM findings WHERE rowid = (SELECT max(rowid) - 1 FROM findings)")
    assert be.count(SearchQuery(text="托管")) == 30
    # after that catch-up the last finding is deleted: two new ones take its rowid and the one
    # deleted before the catch-up (below the index's high mark, no longer listed anywhere)
    with w:
        w.execute("DELETE FROM findings WHERE rowid = (SELECT max(rowid) FROM findings)")
    be.index([{**docs[0], "id": f"again{i}", "context": "重新开班"} for i in range(2)])
    with w:
        w.execute("UPDATE findings SET context = '重新开班，再改' WHERE id='again1'")
    assert be.count(SearchQuery(text="重新开班")) == 2 and be.count(SearchQuery(text="再改")) == 1

    rows = [dict(r) for r in store.db.execute("SELECT * FROM findings")]
    fresh_store = Store(tmp_path / "b")
    fresh = SqliteBackend(fresh_store)
    fresh.index(rows)
    fresh.refresh()
    assert len(rows) == 400 - 30 - 1 - 1 - 1 + 2
    got, want = _vocab(store), _vocab(fresh_store)
    same = got == want  # (compared outside the assert: pytest's diff of two huge lists takes minutes)
    assert len(got) > 10000 and same, "the index differs from one built afresh from the same findings"
    for word in ("周", "周日", "加急", "补习班", "托管", "全新", "奥数", "学费", "重新", "再改"):
        q = SearchQuery(text=word, size=500, sort="newest")
        assert [h.id for h in be.search(q).hits] == [h.id for h in fresh.search(q).hits], word
    for s in (store, writer, fresh_store):
        s.close()
