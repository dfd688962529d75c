"""Tips (举报) and checking a link now: ``jianfu tips add|list|show|update`` with a phone photo and
a link to a demo site page that shows its violation only when rendered (real Chromium, a real
one-page scan by the crawler), the tip linked to the cases it led to."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from crawler.render import chromium_executable
from demo_site import submissions as gen
from tests.conftest import jianfu


@pytest.fixture(scope="module", autouse=True)
def chromium():
    if chromium_executable() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing (/usr/bin/chromium): browser tests must run in CI")
        pytest.skip("Chromium is missing")


@pytest.fixture(scope="module")
def tip(demo_sites, tmp_path_factory):
    d = tmp_path_factory.mktemp("tip")
    photo = d / "电梯广告.jpg"
    photo.write_bytes(gen.phone_photo(seed=4))
    store = d / "store"
    notice = demo_sites.urls["xingguang"] + "notice.html"
    proc = jianfu("tips", "add", "--store", str(store), "--channel", "forwarded", "--forwarded-by", "市教委",
                  "--contact", "王女士 138****1234", "--institution", "星光少儿在线", "--district", "示范区",
                  "--text", "电梯里贴着幼小衔接招生广告，公众号也在发", "--file", str(photo), "--url", notice,
                  "--received-at", "2026-11-29T08:30:00Z", "--format", "json", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return store, json.loads(proc.stdout), notice


def test_tip_checks_its_file_and_link(tip):
    store, added, notice = tip
    checked = {r["kind"]: r for r in added["checked"]}
    assert checked["image"]["status"] == "checked"
    assert any(f["category"] == "preschool_subject" for f in checked["image"]["findings"])
    # the notice page's violation is drawn by script: only a rendered capture has it
    assert checked["url"]["status"] == "checked" and checked["url"]["details"]["rendered"] is True
    assert any(f["category"] == "preschool_subject" and "幼小衔接" in f["text"] for f in checked["url"]["findings"])


def test_tip_show_links_its_cases(tip):
    store, added, _ = tip
    proc = jianfu("tips", "show", added["tip"], "--store", str(store), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    t = record["tip"]
    assert t["channel"] == "forwarded" and t["forwarded_by"] == "市教委" and t["contact"] == "王女士 138****1234"
    assert t["received_at"] == "2026-11-29T08:30:00Z" and t["outcome"] == "case_opened"
    assert {s["kind"] for s in record["submissions"]} == {"image", "url"}
    expected = {c for r in added["checked"] for c in r["cases"]}
    assert expected and {c["id"] for c in record["cases"]} == expected
    assert all(c["institution"] == "星光少儿在线" for c in record["cases"])
    text = jianfu("tips", "show", added["tip"], "--store", str(store)).stdout
    assert "其他部门转办" in text and "市教委" in text and "案件：" in text


def test_tips_list_and_update(tip):
    store, added, _ = tip
    plain = jianfu("tips", "add", "--store", str(store), "--channel", "phone", "--text", "某机构周末上数学课",
                   "--no-check", "--format", "json")
    assert plain.returncode == 0, plain.stderr
    second = json.loads(plain.stdout)["tip"]
    rows = [json.loads(x) for x in jianfu("tips", "list", "--store", str(store), "--format", "json").stdout.splitlines()]
    assert {r["id"] for r in rows} == {added["tip"], second}
    bare = next(r for r in rows if r["id"] == second)
    assert bare["contact"] is None and bare["outcome"] == "open" and bare["cases"] == 0   # nothing invented
    case = json.loads(jianfu("tips", "show", added["tip"], "--store", str(store), "--format", "json").stdout)["cases"][0]
    up = jianfu("tips", "update", second, "--store", str(store), "--case", case["id"], "--outcome", "closed",
                "--note", "与举报 1 为同一机构")
    assert up.returncode == 0, up.stderr
    shown = json.loads(jianfu("tips", "show", second, "--store", str(store), "--format", "json").stdout)
    assert shown["tip"]["outcome"] == "closed" and [c["id"] for c in shown["cases"]] == [case["id"]]
    bad = jianfu("tips", "update", second, "--store", str(store), "--case", "nope")
    assert bad.returncode == 1 and "没有编号为 nope 的案件" in bad.stderr
    assert jianfu("tips", "show", "JB-0", "--store", str(store)).returncode == 1


def test_check_refuses_a_link_that_is_not_http(tmp_path):
    proc = jianfu("check", "file:///etc/passwd", "--store", str(tmp_path / "s"), "--format", "json")
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert result["status"] == "refused" and "不是 http(s) 网址" in result["reason"]
    con = sqlite3.connect(Path(tmp_path / "s" / "jianfu.sqlite3"))
    assert con.execute("SELECT COUNT(*) FROM fetches").fetchone()[0] == 0
