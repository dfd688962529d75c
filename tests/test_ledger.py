"""The institution ledger: credit codes, row parsing, import from CSV (UTF-8, GBK) and XLSX of a
generated 5,000-institution ledger with broken rows, idempotent re-import, history, export, and
the pure cross-checks. Imports go through the real ``jianfu institutions`` command line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from demo_site.ledger import HEADERS, generate, write_csv, write_xlsx
from ledger.codes import CHARSET, credit_code_problem, make_credit_code, printed_identifiers
from ledger.crosscheck import Page, SiteEvidence, cross_check, link_site
from ledger.records import Institution, RowRejected, parse_row, parse_status, parse_type
from tests.conftest import jianfu

N = 5000
REASON_WORDS = {"bad_check_digit": "校验位错误", "missing_name": "缺少机构名称", "unknown_type": "类型无法识别",
                "unknown_status": "状态无法识别", "bad_site": "网站地址无效", "duplicate_code": "重复"}


# -- credit codes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["91350100M000100Y43", "91110108551385082Q", "52110101MJ0000018G"])
def test_published_credit_codes_are_valid(code: str) -> None:
    assert credit_code_problem(code) is None


@given(st.text(alphabet=CHARSET, min_size=2, max_size=2), st.text(alphabet="0123456789", min_size=6, max_size=6),
       st.text(alphabet=CHARSET, min_size=9, max_size=9), st.integers(0, 17), st.sampled_from(CHARSET))
def test_any_single_changed_character_is_caught(head: str, area: str, org: str, pos: int, char: str) -> None:
    code = make_credit_code(head[0], head[1], area, org)
    assert credit_code_problem(code) is None
    wrong = code[:pos] + char + code[pos + 1:]
    if wrong != code and (pos not in range(2, 8) or char.isdigit()):
        assert "校验位错误" in credit_code_problem(wrong)


@pytest.mark.parametrize("code, words", [("", "缺少"), ("9135010", "18位"), ("91350100M000100I43", "不允许的字符"),
                                          ("91350100M000100Y44", "校验位错误（应为 3）")])
def test_bad_credit_codes_say_why(code: str, words: str) -> None:
    assert words in credit_code_problem(code)


def test_identifiers_printed_on_a_page() -> None:
    text = ("地址：书香路18号 统一社会信用代码：９１３５０１００Ｍ０００１００Ｙ４３ 办学许可证号：教民 110101770000034号 "
            "电话：13800000000 信用代码 91350100M000100Y44 订单号 ABCDEFGHJK12345678")
    found = printed_identifiers(text)
    assert [(p.kind, p.value, p.valid) for p in found] == [
        ("credit_code", "91350100M000100Y43", True), ("licence", "教民110101770000034号", True),
        ("credit_code", "91350100M000100Y44", False)]
    assert text[found[0].start:found[0].end] == "９１３５０１００Ｍ０００１００Ｙ４３"  # offsets into the page text


# -- rows -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, want", [("学科类", ("subject", None)), ("非学科类（体育）", ("non_subject", "体育")),
                                       ("非学科类-文化艺术", ("non_subject", "文化艺术")), ("科技类", ("non_subject", "科技")),
                                       ("非学科类(艺术)", ("non_subject", "文化艺术"))])
def test_types(raw: str, want: tuple) -> None:
    assert parse_type(raw) == want


@pytest.mark.parametrize("raw, want", [("白名单", "approved"), ("已审批", "approved"), ("黑名单", "blacklisted"),
                                       ("已吊销", "revoked"), ("注销", "cancelled"), ("待审批", "pending")])
def test_statuses(raw: str, want: str) -> None:
    assert parse_status(raw) == want


def test_a_row_without_a_name_or_with_an_unknown_type_is_rejected() -> None:
    good = {"name": "启明星学堂", "credit_code": "52110101MJ0000018G", "type": "学科类", "status": "白名单"}
    assert parse_row(good).institution.credit_code == "52110101MJ0000018G"
    with pytest.raises(RowRejected, match="缺少机构名称"):
        parse_row({**good, "name": " "})
    with pytest.raises(RowRejected, match="类型无法识别"):
        parse_row({**good, "type": "兴趣班"})


# -- import ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ledger_rows():
    return list(generate(N))


def expected_rejections(rows, first_line: int) -> dict[int, str]:
    return {first_line + i: r.broken for i, r in enumerate(rows) if r.broken}


def imported(store: Path, file: Path, *extra: str) -> dict:
    proc = jianfu("institutions", "import", str(file), "--store", str(store), "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def count(store: Path, table: str) -> int:
    db = sqlite3.connect(store / "jianfu.sqlite3")
    try:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        db.close()


@pytest.mark.parametrize("fmt", ["csv-utf8", "csv-gbk", "xlsx"])
def test_import_a_generated_ledger_then_reimport(tmp_path: Path, ledger_rows, fmt: str) -> None:
    cells = [r.cells for r in ledger_rows]
    title = "全国校外教育培训监管与服务综合平台 机构名单导出"
    if fmt == "xlsx":
        file = write_xlsx(tmp_path / "ledger.xlsx", cells, title=title)
    else:
        file = write_csv(tmp_path / "ledger.csv", cells, "gbk" if fmt == "csv-gbk" else "utf-8", title=title)
    store = tmp_path / "store"
    broken = expected_rejections(ledger_rows, first_line=3)  # title line, header line, then the rows
    report = imported(store, file)
    assert report["encoding"] == {"csv-gbk": "gb18030", "csv-utf8": "utf-8-sig", "xlsx": None}[fmt]
    assert (report["added"], report["changed"], report["unchanged"]) == (N - len(broken), 0, 0)
    assert {r["line"]: r["reason"] for r in report["rejections"]}.keys() == broken.keys()
    for r in report["rejections"]:
        assert REASON_WORDS[broken[r["line"]]] in r["reason"], r
    dup = next(r for r in report["rejections"] if broken[r["line"]] == "duplicate_code")
    assert "与第3行重复" in dup["reason"]
    assert count(store, "institutions") == N - len(broken)

    again = imported(store, file)
    assert (again["added"], again["changed"], again["unchanged"], again["rejected"]) == \
        (0, 0, N - len(broken), len(broken))
    assert count(store, "institution_history") == N - len(broken)  # nothing new happened


def test_changes_columns_in_any_order_and_history(tmp_path: Path, ledger_rows) -> None:
    rows = [dict(r.cells) for r in ledger_rows[:200] if not r.broken]
    store = tmp_path / "store"
    imported(store, write_csv(tmp_path / "a.csv", rows))
    # the next export: other column order, extra columns, no 网站 column, two institutions changed
    rows[0]["状态"] = "已吊销"
    rows[1]["地址"] = "北京市海淀区新地址1号"
    headers = ["备注", "状态", "统一社会信用代码", "类型", "机构名称", "区县", "地址", "办学许可证号", "联系电话", "法定代表人"]
    report = imported(store, write_csv(tmp_path / "b.csv", rows, "gbk", headers=headers))
    assert (report["added"], report["changed"], report["unchanged"], report["rejected"]) == (0, 2, len(rows) - 2, 0)
    show = json.loads(jianfu("institutions", "show", rows[0]["统一社会信用代码"], "--store", str(store),
                             "--format", "json").stdout)
    assert show["institution"]["status"] == "revoked"
    assert [h["change"] for h in show["history"]] == ["added", "changed"]
    assert show["history"][1]["fields"] == {"status": ["approved" if rows[0]["状态"] else "", "revoked"]} or \
        show["history"][1]["fields"]["status"][1] == "revoked"
    assert show["history"][1]["file"] == "b.csv"
    # a file without a 网站 column leaves the sites the ledger has
    with_site = next(r for r in rows if r["网站"])
    one = json.loads(jianfu("institutions", "show", with_site["统一社会信用代码"], "--store", str(store),
                            "--format", "json").stdout)
    assert one["institution"]["sites"] == [with_site["网站"]]


def test_export_round_trips_in_csv_and_xlsx(tmp_path: Path, ledger_rows) -> None:
    store = tmp_path / "store"
    good = [r.cells for r in ledger_rows[:300] if not r.broken]
    imported(store, write_csv(tmp_path / "a.csv", good))
    for name in ("out.csv", "out.xlsx"):
        proc = jianfu("institutions", "export", "--store", str(store), "--out", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
        report = imported(store, tmp_path / name)
        assert (report["added"], report["changed"], report["unchanged"], report["rejected"]) == (0, 0, len(good), 0)


def test_list_filters_and_formats(tmp_path: Path, ledger_rows) -> None:
    store = tmp_path / "store"
    good = [r.cells for r in ledger_rows[:400] if not r.broken]
    imported(store, write_csv(tmp_path / "a.csv", good))
    out = jianfu("institutions", "list", "--store", str(store), "--format", "jsonl", "--district", "海淀区",
                 "--status", "白名单", "--status", "已审批", "--with-site").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    want = [r for r in good if r["区县"] == "海淀区" and r["状态"] in ("白名单", "已审批") and r["网站"]]
    assert sorted(r["credit_code"] for r in rows) == sorted(r["统一社会信用代码"] for r in want) and rows
    table = jianfu("institutions", "list", "--store", str(store), "--type", "学科类").stdout
    assert "统一社会信用代码" in table and f"共 {sum(r['类型'] == '学科类' for r in good)} 家机构" in table


def test_a_file_error_imports_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    file = write_csv(tmp_path / "big.csv", [r.cells for r in generate(8000, broken_every=0)])
    assert file.stat().st_size > 1 << 20  # past what the encoding sniffer reads
    with file.open("ab") as f:
        f.write("坏行,".encode() + b"\xff\xfe\xfa" + b",x\n")
    proc = jianfu("institutions", "import", str(file), "--store", str(store))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "不是UTF-8编码" in proc.stderr and "整个文件未导入" in proc.stderr
    assert count(store, "institutions") == 0 and count(store, "ledger_imports") == 0


def test_missing_required_column_is_one_clear_line(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "x.csv", [{"机构名称": "a"}], headers=["机构名称", "类型", "地址"])
    proc = jianfu("institutions", "import", str(file), "--store", str(tmp_path / "s"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "缺少：统一社会信用代码、状态" in proc.stderr
    assert HEADERS  # the generator's layout names every supported column


# -- cross-checks (pure) --------------------------------------------------------------------------
def inst(name: str, code: str, type: str = "subject", status: str = "approved", **kw) -> Institution:
    return Institution(credit_code=code, name=name, type=type, status=status, **kw)


A = inst("甲学科培训学校", make_credit_code("5", "2", "110101", "MA0000011"), licence_no="教民110101170000001号")
B = inst("乙艺术中心", make_credit_code("5", "2", "110101", "MA0000029"), "non_subject", field="文化艺术",
         licence_no="教民110101770000002号")


def finding(category: str, text: str, url: str = "http://a.cn/", severity: str = "high") -> dict:
    return {"id": text, "category": category, "rule_id": f"{category}.x", "text": text, "start": 0, "end": len(text),
            "context": f"本周{text}火热招生", "url": url, "source": "text", "severity": severity, "score": 0.8}


def site(name: str = "甲学科培训学校", text: str = "欢迎报名", findings=(), named: bool = True) -> SiteEvidence:
    pages = [Page("http://a.cn/", f"{name}\n{text}")]
    printed = [(p.url, x) for p in pages for x in printed_identifiers(p.text)]
    return SiteEvidence(name, named, pages, list(findings), printed)


def fired(ev: SiteEvidence, link_to: Institution | None, owners=None) -> list[str]:
    link = link_site(ev, {"seed": [link_to]} if link_to else {})
    return [c.finding.rule_id for c in cross_check(ev, link, owners or {})]


SUBJECT = [finding("off_hours_schedule", "周六小学数学提高班")]


def test_approved_subject_institution_advertising_subject_training_is_not_a_ledger_finding() -> None:
    assert fired(site(findings=SUBJECT), A) == []


@pytest.mark.parametrize("who, status, rule", [
    (B, "approved", "ledger.subject_without_approval"),      # non-subject institution
    (A, "pending", "ledger.subject_without_approval"),       # subject, not on the white list
    (A, "revoked", "ledger.barred_still_advertising"),       # barred: that finding only
    (A, "blacklisted", "ledger.barred_still_advertising"),
])
def test_subject_ads_against_the_ledger(who: Institution, status: str, rule: str) -> None:
    from dataclasses import replace

    assert fired(site(who.name, findings=SUBJECT), replace(who, status=status)) == [rule]


def test_unregistered_site_advertising_subject_training() -> None:
    assert fired(site("丙培优", findings=SUBJECT), None) == ["ledger.subject_without_approval",
                                                           "ledger.unregistered_name"]
    assert fired(site("丙美术", findings=[]), None) == ["ledger.unregistered_name"]


def test_barred_site_without_findings_still_advertises_by_its_enrolment_words() -> None:
    from dataclasses import replace

    revoked = replace(B, status="cancelled")
    assert fired(site(B.name, "暑期班火热报名中"), revoked) == ["ledger.barred_still_advertising"]
    assert fired(site(B.name, "本机构已停止办学"), revoked) == []


def test_identifiers_on_the_site_against_the_ledger() -> None:
    own = f"统一社会信用代码：{B.credit_code} 办学许可证号：{B.licence_no}"
    assert fired(site(B.name, own), B) == []
    other = site(B.name, f"办学许可证号：{A.licence_no}")
    from ledger.codes import licence_key

    out = cross_check(other, link_site(other, {"seed": [B]}), {("licence", licence_key(A.licence_no)): A})
    assert [c.finding.rule_id for c in out] == ["ledger.identifier_mismatch"]
    assert out[0].finding.text == A.licence_no and "属于台账中的另一机构“甲学科培训学校”" in out[0].finding.explanation[1]
    bad = site(B.name, "统一社会信用代码：91350100M000100Y44")
    out = cross_check(bad, link_site(bad, {"seed": [B]}), {})
    assert "不是有效的统一社会信用代码" in out[0].finding.explanation[1]


def test_a_number_borrowed_under_another_name_is_a_mismatch() -> None:
    from ledger.codes import licence_key

    ev = site("丁培优工作室", f"办学许可证号：{A.licence_no}")
    owners = {("licence", licence_key(A.licence_no)): A}
    link = link_site(ev, {"licence": [A]})
    assert link.institution == A and link.how == "licence"
    out = cross_check(ev, link, owners)
    assert [c.finding.rule_id for c in out] == ["ledger.identifier_mismatch"]
    assert "属于另一机构“甲学科培训学校”" in out[0].finding.explanation[0]
    same = site(A.name, f"办学许可证号：{A.licence_no}")  # its own number under its own name: fine
    assert cross_check(same, link_site(same, {"licence": [A]}), owners) == []


def test_linking_prefers_the_seed_then_the_domain_and_tells_twins_apart() -> None:
    twin = inst("甲学科培训学校", make_credit_code("5", "2", "110102", "MA0000037"))
    ev = site()
    assert link_site(ev, {"seed": [A, twin], "domain": [twin]}).institution == twin
    assert link_site(ev, {"domain": [A], "qr": [B]}).how == "domain"
    assert link_site(ev, {"qr": [B]}).institution == B
    assert link_site(ev, {}).institution is None
