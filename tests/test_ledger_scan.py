"""Scans against the ledger: real scans (``jianfu scan`` subprocesses) of the demo sites on
127.0.0.1 with the demo ledger imported — each cross-check fires once, on the right site, and every
finding carries its institution's ledger record; sites linked by domain, printed credit code and
QR target; ledger-driven plan targets picking up newly imported institutions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from demo_site.ledger import BOYA_LICENCE, CAIHONG_CODE, QIMING_CODE, XUEBATONG_CODE, demo_rows, write_csv
from demo_site.server import INSTITUTIONS
from scheduler.plans import PlanError, parse_plan
from tests.conftest import ROOT, jianfu

LEDGER_RULES = {"ledger.subject_without_approval", "ledger.barred_still_advertising", "ledger.identifier_mismatch",
                "ledger.unregistered_name"}


def findings(store: Path) -> list[dict]:
    proc = jianfu("findings", "--store", str(store), "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def scan(store: Path, *seeds: str) -> dict:
    proc = jianfu("scan", *seeds, "--store", str(store), "--json", "--quiet", "--district", "示范区")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def import_ledger(store: Path, file: Path) -> dict:
    proc = jianfu("institutions", "import", str(file), "--store", str(store), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["rejections"] == []
    return report


@pytest.fixture(scope="module")
def ledger_scan(demo_sites, tmp_path_factory):
    store = tmp_path_factory.mktemp("ledger-store")
    file = write_csv(store.parent / "demo-ledger.csv", demo_rows(demo_sites.urls), "gbk")
    assert import_ledger(store, file)["added"] == 6
    summary = scan(store, *(f"{INSTITUTIONS[n]}={demo_sites.urls[n]}" for n in INSTITUTIONS))
    return store, summary


def test_each_cross_check_fires_once_on_its_site(ledger_scan) -> None:
    store, summary = ledger_scan
    fired = sorted((f["rule_id"], f["institution"]) for f in findings(store) if f["rule_id"].startswith("ledger."))
    assert fired == [("ledger.barred_still_advertising", "学霸通在线"), ("ledger.identifier_mismatch", "彩虹艺术中心"),
                     ("ledger.subject_without_approval", "启明星学堂"), ("ledger.unregistered_name", "飞跃体育编程俱乐部")]
    sites = {s["site"]: s for s in summary["ledger"]}
    assert sites["启明星学堂"]["credit_code"] == QIMING_CODE and sites["启明星学堂"]["linked_by"] == "seed"
    assert sites["飞跃体育编程俱乐部"]["credit_code"] is None


def test_cross_check_findings_carry_basis_explanation_and_ledger_record(ledger_scan) -> None:
    store, _ = ledger_scan
    by_rule = {f["rule_id"]: f for f in findings(store) if f["rule_id"] in LEDGER_RULES}
    mismatch = by_rule["ledger.identifier_mismatch"]
    assert mismatch["text"] == BOYA_LICENCE and mismatch["url"].endswith("/statement.html")
    assert mismatch["category"] == "false_claim" and "广告法" in mismatch["basis"]
    assert "博雅学科培训学校" in " ".join(mismatch["explanation"])
    assert mismatch["ledger"]["credit_code"] == CAIHONG_CODE and mismatch["ledger"]["status"] == "approved"
    barred = by_rule["ledger.barred_still_advertising"]
    assert barred["ledger"]["status_label"] == "已吊销" and barred["credit_code"] == XUEBATONG_CODE
    subject = by_rule["ledger.subject_without_approval"]
    assert subject["category"] == "unlicensed_subject" and "非学科类（文化艺术）" in subject["explanation"][0]
    unregistered = by_rule["ledger.unregistered_name"]
    assert unregistered["ledger"] is None and "未登记？" in unregistered["explanation"][0]


def test_detector_findings_carry_their_institutions_ledger_record(ledger_scan) -> None:
    store, _ = ledger_scan
    rows = findings(store)
    qiming = [f for f in rows if f["institution"] == "启明星学堂"]
    assert len(qiming) > 5 and all(f["credit_code"] == QIMING_CODE for f in qiming)
    assert {f["ledger"]["type_label"] for f in qiming} == {"非学科类（文化艺术）"}


def test_institution_view_and_recheck_are_stable(ledger_scan) -> None:
    store, summary = ledger_scan
    view = json.loads(jianfu("institutions", "show", "学霸通在线", "--store", str(store), "--format", "json").stdout)
    assert view["institution"]["credit_code"] == XUEBATONG_CODE
    assert [s["scan_id"] for s in view["scans"]] == [summary["scan_id"]]
    assert "ledger.barred_still_advertising" in {f["rule_id"] for f in view["findings"]}
    before = sorted(f["id"] for f in findings(store))
    proc = jianfu("institutions", "check", "--store", str(store))
    assert proc.returncode == 0 and "学霸通在线" in proc.stdout, proc.stderr
    assert sorted(f["id"] for f in findings(store)) == before  # nothing duplicated


def test_evidence_packet_carries_the_ledger_record(ledger_scan, tmp_path: Path) -> None:
    import zipfile

    store, _ = ledger_scan
    out = tmp_path / "case.zip"
    proc = jianfu("export", "--store", str(store), "--institution", "学霸通在线", "--out", str(out), "--no-pdf")
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        entries = json.loads(z.read(next(n for n in names if n.endswith("findings.json"))))["findings"]
        report = z.read(next(n for n in names if n.endswith("report.html"))).decode()
    assert entries and all(e["ledger"]["credit_code"] == XUEBATONG_CODE for e in entries)
    assert "台账记录" in report and "已吊销" in report


def test_sites_linked_by_domain_printed_code_and_qr(demo_sites, tmp_path: Path) -> None:
    urls = demo_sites.urls
    rows = demo_rows(urls)
    by_name = {r["机构名称"]: r for r in rows}
    by_name["启明星学堂"]["网站"] = ""                  # only its WeChat account: the QR ad on its home page
    by_name["彩虹艺术中心"]["网站"] = ""                # only the credit code its 合规声明 page prints
    rows.append({"机构名称": "飞跃体育编程俱乐部", "统一社会信用代码": "52110101MJ0000050U", "类型": "体育类",
                 "状态": "白名单", "网站": urls["feiyue"]})     # by its domain
    store = tmp_path / "s"
    import_ledger(store, write_csv(tmp_path / "l.csv", rows))
    summary = scan(store, urls["qiming"], urls["caihong"], urls["feiyue"])  # no names on the seeds
    links = {s["name"]: s["linked_by"] for s in summary["ledger"]}
    assert links == {"启明星学堂": "qr", "彩虹艺术中心": "credit_code", "飞跃体育编程俱乐部": "domain"}


# -- plans that scan from the ledger ---------------------------------------------------------------
def test_ledger_target_validation(tmp_path: Path) -> None:
    ok = parse_plan('store="s"\n[targets.t]\nledger={district="东城区", status="白名单"}\nevery="1d"\n',
                    tmp_path / "p.toml")
    t = ok.targets["t"]
    assert t.ledger.status == ("approved",) and t.district == "东城区" and t.seeds == ()
    every_site = parse_plan('store="s"\n[targets.t]\nledger={}\nevery="1d"\n', tmp_path / "p.toml").targets["t"]
    assert every_site.ledger.status == () and every_site.ledger.district == () and every_site.district is None
    for body, message in (('ledger={status="暂停"}', "targets.t.ledger.status: unknown status '暂停'"),
                          ('ledger={kind="x"}', "targets.t.ledger.kind: unknown key"),
                          ("", "targets.t.seeds: at least one seed URL is required (or ledger")):
        with pytest.raises(PlanError, match=message.replace("(", r"\(")):
            parse_plan(f'store="s"\n[targets.t]\n{body}\nevery="1d"\n', tmp_path / "p.toml")


def run_now(plan: Path, target: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the scheduler's crawl runs `python -P -m jianfu`
    proc = subprocess.run([sys.executable, "-m", "jianfu", "schedule", "run-now", target, "--plan", str(plan),
                           "--json", "--no-alerts"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_ledger_target_scans_approved_institutions_and_picks_up_new_ones(demo_sites, tmp_path: Path) -> None:
    urls = demo_sites.urls
    store = tmp_path / "store"
    plan = tmp_path / "plan.toml"
    plan.write_text('store = "store"\n[targets.shifan]\nledger = { district = "示范区", status = ["approved"] }\n'
                    'every = "1d"\ndepth = 1\n', encoding="utf-8")
    import_ledger(store, write_csv(tmp_path / "a.csv", demo_rows({"caihong": urls["caihong"],
                                                                   "xuebatong": urls["xuebatong"]})))
    first = run_now(plan, "shifan")
    assert first["status"] == "finished", first
    seeds = json.loads(jianfu_scan_seeds(store, first["scan_id"]))
    assert seeds == [urls["caihong"]]  # 学霸通在线 is revoked: not an approved institution
    # the next export of the platform lists a newly approved institution with a site
    import_ledger(store, write_csv(tmp_path / "b.csv", [{"机构名称": "飞跃体育编程俱乐部", "统一社会信用代码": "52110101MJ0000050U",
                                                        "类型": "非学科类（体育）", "状态": "白名单", "区县": "示范区",
                                                        "网站": urls["feiyue"]}]))
    second = run_now(plan, "shifan")
    assert sorted(json.loads(jianfu_scan_seeds(store, second["scan_id"]))) == sorted([urls["caihong"], urls["feiyue"]])


def jianfu_scan_seeds(store: Path, scan_id: str) -> str:
    import sqlite3

    db = sqlite3.connect(store / "jianfu.sqlite3")
    try:
        return db.execute("SELECT seeds FROM scans WHERE id=?", (scan_id,)).fetchone()[0]
    finally:
        db.close()


def test_rescan_sights_the_same_cross_check_findings(ledger_scan, demo_sites) -> None:
    store, first = ledger_scan
    before = {f["id"] for f in findings(store) if f["rule_id"] in LEDGER_RULES}
    second = scan(store, *(f"{INSTITUTIONS[n]}={demo_sites.urls[n]}" for n in INSTITUTIONS))
    after = [f for f in findings(store) if f["rule_id"] in LEDGER_RULES]
    assert {f["id"] for f in after} == before and len(after) == 4
    assert all(f["last_scan_id"] == second["scan_id"] and f["first_scan_id"] == first["scan_id"] for f in after)
