"""Cases: one institution × one ad × its violations — grouping, stable ids across re-scans of the
demo sites, review with proposals and history, dismissed cases never alerting (a real scheduler run
against a real webhook receiver), ``jianfu findings --by case`` and the evidence report by case."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import demo_site.server as demo
from detectors import detect
from detectors.model import Finding
from evidence.report import explanation_zh
from evidence.verify import verify
from store import Store
from store.cases import CaseError, canonical_url, case_id_of
from tests.conftest import ROOT, jianfu

AD = "幼小衔接拼音班火热招生，一次性缴纳全年学费享八折，保过重点中学"
QUAD = [[0, 0], [100, 0], [100, 20], [0, 20]]


def finding(text: str, start: int, category: str = "preschool_subject", rule: str = "r.x") -> Finding:
    return Finding(category=category, rule_id=rule, text=text, start=start, end=start + len(text), score=0.9,
                   severity="high", basis="《双减意见》", explanation=("x",))


def demo_seeds(sites) -> list[str]:
    return [f"{demo.INSTITUTIONS[n]}={sites.urls[n]}" for n in demo.INSTITUTIONS]


def case_ids(store: Path) -> set[str]:
    proc = jianfu("findings", "--store", str(store), "--by", "case", "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    return {json.loads(line)["id"] for line in proc.stdout.splitlines()}


# -- grouping --------------------------------------------------------------------------------------
def test_three_banned_words_in_one_ad_image_are_one_case(tmp_path):
    found = detect(AD)
    assert len({(f.rule_id, f.text) for f in found}) >= 3
    with Store(tmp_path) as st:
        scan = st.begin_scan(["http://a.example/"])
        for page in ("http://a.example/", "http://a.example/about.html"):  # the same banner on two pages
            st.save_findings(scan, page, "image", AD, found, image_url="http://a.example/img/ad.png",
                             image_sha256="ab" * 32, boxes=[[QUAD]] * len(found), institution="甲机构",
                             district="示范区")
        cases = st.cases()
        assert len(cases) == 1
        c = cases[0]
        assert (c["source"], c["institution"], c["pages"], c["findings"]) == ("image", "甲机构", 2, 2 * len(found))
        assert c["violations"] == len({(f.rule_id, f.text) for f in found})
        assert set(c["categories"]) == {f.category for f in found}
        detail = st.case(c["id"])
        assert len(detail["violations"]) == c["violations"]
        assert all(v["boxes"] == [QUAD] for v in detail["violations"])  # drawn once, not once per page
        assert {f["case_id"] for f in st.findings()} == {c["id"]}
        # another institution showing the same image is its own case, and "the same ad elsewhere"
        st.save_findings(scan, "http://b.example/", "image", AD, found, image_url="http://b.example/x.png",
                         image_sha256="ab" * 32, institution="乙机构")
        st.link_image(scan, "http://a.example/", "http://a.example/img/ad.png", "ab" * 32)
        st.link_image(scan, "http://b.example/", "http://b.example/x.png", "ab" * 32)
        st.save_page(scan, "http://a.example/", institution="甲机构", title="甲")
        st.save_page(scan, "http://b.example/", institution="乙机构", title="乙")
        assert st.count_cases() == 2
        other = st.cases(institution="乙机构")[0]
        elsewhere = st.case(c["id"])["elsewhere"]
        assert [(o["institution"], o["case_id"], o["distance"]) for o in elsewhere] == [("乙机构", other["id"], 0)]


def test_same_text_on_root_and_index_html_and_in_title_and_heading_is_one_case(tmp_path):
    title = "幼小衔接拼音班"
    text = f"{title}\n{title}火热招生"          # the pipeline stores the title above the body
    found = detect(text)
    assert len(found) >= 2 and len({f.text for f in found if f.category == "preschool_subject"}) >= 1
    with Store(tmp_path) as st:
        scan = st.begin_scan(["http://a.example/"])
        for url in ("http://a.example/", "http://a.example/index.html", "http://A.example/?utm_source=wx",
                    "http://a.example/index.html#top"):
            st.save_findings(scan, url, "text", text, found, institution="甲机构")
        st.save_findings(scan, "http://a.example/news/", "text", text, found, institution="甲机构")
        st.save_findings(scan, "http://a.example/news", "text", text, found, institution="甲机构")
        cases = st.cases(sort="institution")
        assert len(cases) == 2
        assert sorted(c["url"] for c in cases) == ["http://a.example/", "http://a.example/news"]
        root = next(c for c in cases if c["url"] == "http://a.example/")
        assert root["pages"] == 4 and root["violations"] == len({(f.rule_id, f.text) for f in found})


def test_canonical_url_is_conservative():
    assert canonical_url("HTTP://Example.COM/index.html?utm_medium=x&id=3#f") == "http://example.com/?id=3"
    assert canonical_url("https://e.cn/a/b/") == "https://e.cn/a/b"
    assert canonical_url("https://e.cn/Course.html?b=2&a=1&spm=3") == "https://e.cn/Course.html?a=1&b=2"
    assert canonical_url("https://e.cn:8443/default.aspx") == "https://e.cn:8443/"
    assert canonical_url("https://e.cn/index.html/x") == "https://e.cn/index.html/x"


def test_unnamed_institutions_are_told_apart_by_site(tmp_path):
    with Store(tmp_path) as st:
        scan = st.begin_scan(["http://a.example/"])
        for site in ("http://a.example/", "http://b.example/"):
            st.save_findings(scan, site, "image", AD, [finding("幼小衔接", 0)], image_sha256="cd" * 32)
        assert {c["institution_key"] for c in st.cases()} == {"http://a.example", "http://b.example"}
    assert case_id_of("http://a.example/x", "text", None) != case_id_of("http://a.example/x", "text", "甲")


def test_cases_made_for_a_store_older_than_cases(tmp_path):
    with Store(tmp_path) as st:
        scan = st.begin_scan(["http://a.example/"])
        st.save_findings(scan, "http://a.example/", "text", AD, detect(AD), institution="甲机构")
        st.save_findings(scan, "http://a.example/index.html", "text", AD, detect(AD), institution="甲机构")
        before = {f["id"]: f["case_id"] for f in st.findings()}
        (cid,) = set(before.values())
    with sqlite3.connect(tmp_path / "jianfu.sqlite3") as db:   # as a store made before cases was
        db.execute("DROP INDEX findings_case")
        db.execute("ALTER TABLE findings DROP COLUMN case_id")
        db.execute("DROP TABLE cases")
        db.execute("DROP TABLE case_reviews")
    with Store(tmp_path) as st:
        assert {f["id"]: f["case_id"] for f in st.findings()} == before
        assert [c["id"] for c in st.cases()] == [cid] and st.case(cid)["pages"][0]["url"].endswith("/")


# -- paging and filters ----------------------------------------------------------------------------
def test_list_filters_sort_and_keyset_paging(tmp_path):
    with Store(tmp_path) as st:
        scan = st.begin_scan(["http://a.example/"])
        for i in range(23):
            inst = "甲机构" if i % 2 else "乙机构"
            cat, rule = (("photo_search", "p.x") if i % 3 else ("preschool_subject", "r.x"))
            st.save_findings(scan, f"http://{'a' if i % 2 else 'b'}.example/p{i}", "text", "幼小衔接 拍照搜题",
                             [finding("幼小衔接", 0, cat, rule)], institution=inst, district="海淀区" if i % 2 else "朝阳区")
        everything = [c["id"] for c in st.cases(limit=1000)]
        assert len(everything) == 23 == st.count_cases()
        walked, after = [], None
        while True:
            page = st.cases(limit=5, after=after)
            walked += [c["id"] for c in page]
            if len(page) < 5:
                break
            after = page[-1]["cursor"]
        assert walked == everything
        assert [c["id"] for c in st.cases(limit=5, offset=5)] == everything[5:10]
        assert st.count_cases(district="海淀区") == 11 and st.count_cases(institution=["甲机构", "乙机构"]) == 23
        assert st.count_cases(category="preschool_subject") == 8
        assert st.count_cases(new_since="2000-01-01") == 23 and st.count_cases(new_since="2999-01-01") == 0
        assert st.count_cases(category="preschool_subject", district="朝阳区") == 4
        facets = st.case_facets(district="朝阳区")
        assert facets["institution"] == {"乙机构": 12} and sum(facets["category"].values()) == 12
        one = st.cases(limit=1)[0]
        hits = [f["id"] for f in st.findings() if f["case_id"] == one["id"]]
        assert [c["id"] for c in st.cases(finding_ids=hits)] == [one["id"]]
        many = hits + [f"no-such-finding-{i}" for i in range(800)]      # past the bound parameters
        assert [c["id"] for c in st.cases(finding_ids=many)] == [one["id"]] == [
            c["id"] for c in st.cases(ids=[one["id"], *(f"no-such-case-{i}" for i in range(800))])]
        assert st.count_cases(finding_ids=many, district="海淀区") == (one["district"] == "海淀区")
        with pytest.raises(CaseError):
            st.cases(sort="severity", after=st.cases(limit=1)[0]["cursor"])  # a cursor of another sort


# -- review ----------------------------------------------------------------------------------------
def test_review_proposal_approval_and_history(tmp_path):
    with Store(tmp_path) as st:
        scan = st.begin_scan(["http://a.example/"])
        ids = st.save_findings(scan, "http://a.example/", "text", AD, detect(AD), institution="甲机构")
        (cid,) = {c["id"] for c in st.cases()}
        st.set_status(ids[:1], "dismissed", actor="王五", reason="误报")       # one finding, as before
        with pytest.raises(CaseError):
            st.propose_case_status(cid, "dismissed", actor="李四", reason=" ")
        rid = st.propose_case_status(cid, "confirmed", actor="李四", reason="确属违规宣传")
        assert st.case(cid, detail=False)["status"] == "open"                   # nothing until approved
        assert [c["id"] for c in st.pending_proposals()] == [cid]
        st.decide_case_proposal(cid, approve=False, actor="张三", reason="证据不足")
        with pytest.raises(CaseError):
            st.decide_case_proposal(cid, approve=True, actor="张三", proposal_id=rid)
        rid = st.propose_case_status(cid, "confirmed", actor="李四", reason="补充了截图")
        st.decide_case_proposal(cid, approve=True, actor="张三", proposal_id=rid)
        c = st.case(cid)
        assert c["status"] == "confirmed" and not c["proposed_status"] and not st.pending_proposals()
        # a confirmed case keeps the finding dismissed on its own
        assert {f["id"]: f["status"] for f in c["findings"]} == {i: "dismissed" if i == ids[0] else "confirmed"
                                                                 for i in ids}
        assert [(r["seq"], r["action"], r["actor"], r["from_status"], r["to_status"]) for r in c["reviews"]] == [
            (1, "finding", "王五", "open", "dismissed"), (2, "propose", "李四", "open", "confirmed"),
            (3, "reject", "张三", "open", "open"), (4, "propose", "李四", "open", "confirmed"),
            (5, "approve", "张三", "open", "confirmed")]
        assert c["reviews"][4]["proposal_id"] == c["reviews"][3]["id"] == rid
        assert st.set_case_status([cid], "confirmed", actor="张三") == 0          # no change, no history
        with pytest.raises(CaseError):
            st.set_case_status(["nope"], "dismissed", actor="x")


def test_review_cli_on_a_case_and_on_a_finding(tmp_path):
    with Store(tmp_path) as st:
        scan = st.begin_scan(["http://a.example/"])
        ids = st.save_findings(scan, "http://a.example/", "text", AD, detect(AD), institution="甲机构")
        (cid,) = {c["id"] for c in st.cases()}
    proc = jianfu("review", cid[:8], "--store", str(tmp_path), "--status", "dismissed", "--reason", "不是广告",
                  "--by", "张三")
    assert proc.returncode == 0 and "1 case(s) marked dismissed" in proc.stdout, proc.stderr
    proc = jianfu("review", ids[0], "--store", str(tmp_path), "--status", "open")
    assert proc.returncode == 0 and "1 finding(s) marked open" in proc.stdout
    proc = jianfu("review", "feedfacecafe", "--store", str(tmp_path), "--status", "open")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "unknown case or finding" in proc.stderr
    with Store(tmp_path) as st:
        hist = st.case_reviews(cid)
        assert [(r["action"], r["actor"], r["reason"]) for r in hist][0] == ("set", "张三", "不是广告")
        assert hist[1]["action"] == "finding" and hist[1]["finding_id"] == ids[0]


# -- re-scans of the demo sites ----------------------------------------------------------------------
def test_case_ids_and_decisions_survive_rescans_of_the_demo_sites(demo_scan, demo_sites, tmp_path):
    store0, summary, _ = demo_scan
    ids0 = case_ids(store0)
    assert 10 <= len(ids0) < summary["findings"] / 2          # 3 words in one ad are one case, not three
    store = tmp_path / "again"
    shutil.copytree(store0, store, ignore=shutil.ignore_patterns("*-wal", "*-shm", "keys"))
    with Store(store) as st:
        dismissed = st.cases(source="image", limit=1)[0]["id"]
        st.set_case_status([dismissed], "dismissed", actor="张三", reason="公益广告")
    proc = jianfu("scan", *demo_seeds(demo_sites), "--store", str(store), "--quiet", "--district", "示范区")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert case_ids(store) == ids0
    with Store(store) as st:
        c = st.case(dismissed)
        assert c["status"] == "dismissed" and len(c["sightings"]) == 2
        assert c["last_scan_id"] != summary["scan_id"]
    fresh = tmp_path / "fresh"                                     # another store, same ids
    proc = jianfu("scan", *demo_seeds(demo_sites), "--store", str(fresh), "--quiet", "--district", "示范区")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert case_ids(fresh) == ids0


def test_findings_by_case_table_and_jsonl(demo_scan):
    store = demo_scan[0]
    rows = [json.loads(line) for line in jianfu("findings", "--store", str(store), "--by", "case",
                                                "--format", "jsonl").stdout.splitlines()]
    findings = [json.loads(line) for line in jianfu("findings", "--store", str(store), "--format",
                                                    "jsonl").stdout.splitlines()]
    assert sum(r["findings"] for r in rows) == len(findings)
    assert {f["case_id"] for f in findings} == {r["id"] for r in rows}
    for r in rows:
        mine = [f for f in findings if f["case_id"] == r["id"]]
        assert r["violations"] == len({(f["rule_id"], f["text"]) for f in mine})
        assert sorted(r["categories"]) == sorted({f["category"] for f in mine})
        assert r["first_seen_at"] == min(f["first_seen_at"] for f in mine)
        assert {f["institution"] for f in mine} == {r["institution"]}
    table = jianfu("findings", "--store", str(store), "--by", "case").stdout.splitlines()
    assert table[0].split()[:3] == ["case", "institution", "ad"]
    assert len(table) == len(rows) + 3 and table[-1].startswith(f"{len(rows)} case(s), {len(findings)} finding(s)")
    assert all(any(line.startswith(r["id"]) for line in table) for r in rows)


# -- alerts ------------------------------------------------------------------------------------------
@pytest.fixture
def webhook():
    posts: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook", posts
    srv.shutdown()
    srv.server_close()


def test_a_dismissed_case_never_alerts_again(tmp_path, monkeypatch, webhook):
    from jianfu.cli import main
    from scheduler.plans import load_plan

    hook_url, posts = webhook
    # the scheduler runs `python -P -m jianfu scan`: this checkout's code, wherever jianfu is installed
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    sites_dir = tmp_path / "sites"
    shutil.copytree(demo.SITES_DIR / "qiming", sites_dir / "qiming")
    monkeypatch.setattr(demo, "SITES_DIR", sites_dir)
    plan_path = tmp_path / "plan.toml"
    with demo.DemoSites(["qiming"]) as sites:
        plan_path.write_text(f'''store = "store"
[targets.qiming]
seeds = ["启明星学堂={sites.urls['qiming']}"]
every = "1d"
[alerts.webhook]
url = "{hook_url}"
''')
        plan = load_plan(plan_path)
        assert main(["schedule", "run-now", "qiming", "--plan", str(plan_path)]) == 0
        assert len(posts) == 1
        with Store(plan.store) as st:
            courses = next(c for c in st.cases(source="text") if c["url"].endswith("/courses.html"))
            st.set_case_status([courses["id"]], "dismissed", actor="张三", reason="已整改")
            known = {f["id"] for f in st.findings()}
        # the dismissed page gets a new violation, another page gets one too
        for page in ("courses.html", "teachers.html"):
            path = sites_dir / "qiming" / page
            path.write_text(path.read_text().replace("</body>", "<p>学前班暑期开课，拼音识字一步到位</p></body>"))
        assert main(["schedule", "run-now", "qiming", "--plan", str(plan_path)]) == 0
        with Store(plan.store) as st:
            new = [f for f in st.findings() if f["id"] not in known]
        in_dismissed = [f for f in new if f["case_id"] == courses["id"]]
        elsewhere = [f for f in new if f["case_id"] != courses["id"]]
        assert in_dismissed and elsewhere
        assert all(f["status"] == "dismissed" for f in in_dismissed)        # saved dismissed
        assert len(posts) == 2
        alerted = {f["id"] for f in posts[1]["findings"]}
        assert alerted == {f["id"] for f in elsewhere}
        assert all(f["case_id"] != courses["id"] for f in posts[1]["findings"])
        assert {c["id"] for c in posts[1]["cases"]} == {f["case_id"] for f in elsewhere}


# -- the evidence report by case -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def case_packet(demo_scan, tmp_path_factory):
    store, summary, _ = demo_scan
    out = tmp_path_factory.mktemp("case-packet") / "demo.zip"
    proc = jianfu("export", "--store", str(store), "--scan", summary["scan_id"], "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    d = tmp_path_factory.mktemp("case-packet-x")
    with zipfile.ZipFile(out) as z:
        z.extractall(d)
    return out, d


def test_report_has_one_section_per_case_in_chinese_only(case_packet, demo_scan):
    out, d = case_packet
    assert verify(out).ok
    doc = json.loads((d / "findings.json").read_text())
    html = (d / "report.html").read_text()
    assert len(doc["cases"]) == len(case_ids(demo_scan[0]))
    assert html.count("<section class=case id=\"c-") == len(doc["cases"])
    assert sum(len(c["finding_ids"]) for c in doc["cases"]) == len(doc["findings"])
    # the detectors' English trace stays in findings.json, out of the official document
    trace = {x for f in doc["findings"] for x in f["explanation"]}
    left_out = {x for x in trace if not explanation_zh([x])}
    assert left_out and not any(x in html for x in left_out)
    for word in ("keyword pattern", "matched", "threshold", "--scan", "--include-dismissed", "finished"):
        assert word not in html, word
    # the summer-olympiad banner is on two institutions' sites (PNG on one, JPEG on the other)
    shared = [(c["institution"], o["institution"]) for c in doc["cases"] for o in c.get("elsewhere") or []]
    assert ("启明星学堂", "学霸通在线") in shared and ("学霸通在线", "启明星学堂") in shared and "其他网站" in html
    for c in doc["cases"]:
        if c["source"] == "image":   # the ad image, every violation boxed
            assert c["files"]["figures"] and (d / c["files"]["figures"][0]).is_file()
            assert all(v["boxes"] for v in c["violations"])
        for v in c["violations"]:
            assert v["rule_title"] and v["basis"] in html.replace("&quot;", '"').replace("&#x27;", "'")


def test_report_pdf_is_short_and_its_tables_fit(case_packet, tmp_path):
    _, d = case_packet
    doc = json.loads((d / "findings.json").read_text())
    info = subprocess.run(["pdfinfo", str(d / "report.pdf")], capture_output=True, text=True, check=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    n = len(doc["cases"])
    # about a page per case (one section each, a long one spills over), not per finding: the 97
    # findings of this scan printed as 149 pages with one section per finding, as 30 by case
    assert n + 2 <= pages <= min(3 * n + 6, len(doc["findings"])), (pages, n)
    # the summary table keeps each institution's name on one line (not one character per line)
    text = subprocess.run(["pdftotext", "-layout", "-f", "1", "-l", "2", str(d / "report.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    for name in {c["institution"] for c in doc["cases"]}:
        assert text.count(name) >= sum(1 for c in doc["cases"] if c["institution"] == name)


def test_only_chinese_explanation_steps_reach_the_report():
    english = ["rule preschool.named_class: 以“幼小衔接班”名义招生", "keyword pattern “幼小衔接” matched “幼小衔接”",
               "context “招生” (招生用语) in the sentence raised the score by 0.15", "score 0.95 ≥ threshold 0.50",
               "breaks 《双减意见》"]
    chinese = ["以“幼小衔接班”名义招生（规则 preschool.named_class）", "关键词“幼小衔接”命中“幼小衔接”（基础分 0.65）",
               "句中出现“招生”（招生用语），加分 0.15", "违反《双减意见》"]
    assert explanation_zh(english) == []
    assert explanation_zh(chinese) == chinese[1:3]   # the title and the basis are shown on their own


def test_export_by_case(demo_scan, tmp_path):
    store = demo_scan[0]
    with Store(store) as st:
        c = st.cases(source="image", sort="violations", limit=1)[0]
    out = tmp_path / "one.zip"
    proc = jianfu("export", "--store", str(store), "--case", c["id"][:10], "--out", str(out), "--no-pdf")
    assert proc.returncode == 0 and "1 case(s)" in proc.stdout, proc.stderr
    assert verify(out).ok
    with zipfile.ZipFile(out) as z:
        doc = json.loads(z.read("findings.json"))
        html = z.read("report.html").decode()
    assert [x["id"] for x in doc["cases"]] == [c["id"]] and len(doc["findings"]) == c["findings"]
    assert "指定案件" in html and html.count("<section class=case id=\"c-") == 1
    proc = jianfu("export", "--store", str(store), "--case", "0000000000", "--out", str(tmp_path / "x.zip"))
    assert proc.returncode == 1 and "unknown case id" in proc.stderr and proc.stderr.count("\n") == 1


def test_case_figure_boxes_every_violation_and_crops_a_tall_screenshot():
    import io

    from PIL import Image

    from evidence import highlight

    page = Image.new("RGB", (800, 4000), "white")
    buf = io.BytesIO()
    page.save(buf, "PNG")
    groups = [("1", [[100, 200, 160, 24]]), ("2", [[100, 3600, 160, 24]])]
    png, size = highlight.draw_numbered(buf.getvalue(), groups)
    drawn = Image.open(io.BytesIO(png)).convert("RGB")
    assert size == (800, 4000)
    assert drawn.getpixel((180, 212)) != (255, 255, 255) and drawn.getpixel((180, 3612)) != (255, 255, 255)
    # each tag sits left of its box, not on the words
    left_of_box = [drawn.getpixel((x, y)) for x in range(60, 94) for y in range(195, 216)]
    assert sum(r > 180 and g < 80 for r, g, _ in left_of_box) > 200 and drawn.getpixel((700, 212)) == (255, 255, 255)
    parts = highlight.crops(png, [b for _, boxes in groups for b in boxes])
    assert len(parts) == 2                       # two windows, far apart: each shows its box
    tops = [Image.open(io.BytesIO(p)) for p in parts]
    assert all(t.size == (800, highlight.CROP_MAX_HEIGHT) for t in tops)
    assert highlight.crops(png, [[100, 200, 160, 24], [100, 900, 160, 24]]) and \
        len(highlight.crops(png, [[100, 200, 160, 24], [100, 900, 160, 24]])) == 1
