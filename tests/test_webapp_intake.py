"""即时检查 and 举报 in the web app, end to end: the real ``jianfu serve`` on a free port over a new
store, driven by real Chromium (Playwright) for the pages and plain HTTP for the denials; uploads
are generated submissions (a phone photo, a PDF brochure, a zip named .png), the link a demo site
page checked by a real rendered one-page scan."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import requests

from demo_site import submissions as gen
from store import Store
from tests.conftest import jianfu
from tests.test_webapp import CHROMIUM, CHROMIUM_ARGS, login, post, serve

PASSWORDS = {"inv": "Inv-pass-2026x", "far": "Far-pass-2026x"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = tmp_path_factory.mktemp("web-intake") / "store"
    Store(store).close()  # a new, empty store: everything in it comes through the pages
    for name, district in (("inv", "示范区"), ("far", "远方区")):
        proc = jianfu("users", "add", name, "--role", "investigator", "--district", district, "--store", str(store),
                      input=PASSWORDS[name] + "\n")
        assert proc.returncode == 0, proc.stderr
    return store


@pytest.fixture(scope="module")
def server(store):
    with serve(store, threads=4) as base:
        yield base


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("uploads")
    out = {"photo": ("海报照片.jpg", gen.phone_photo(seed=6)), "zip": ("poster.png", gen.zip_named_png()),
           "pdf": ("课程手册.pdf", gen.brochure_pdf(2))}
    paths = {}
    for key, (name, data) in out.items():
        paths[key] = d / name
        paths[key].write_bytes(data)
    return paths


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing ({CHROMIUM}): browser tests must run in CI")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_context(locale="zh-CN").new_page()
        page.goto(server + "/check/")
        page.fill("input[name=username]", "inv")
        page.fill("input[name=password]", PASSWORDS["inv"])
        page.click("button[type=submit]")
        page.wait_for_url(server + "/check/")
        yield page
        browser.close()


def audit_rows(store: Path) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(store / "webapp.sqlite3")
    try:
        return [tuple(r) for r in db.execute("SELECT action, target, detail FROM webapp_auditentry ORDER BY seq")]
    finally:
        db.close()


def test_check_now_uploads_show_findings_and_open_the_case(server, page, files, store):
    page.goto(server + "/check/")
    page.set_input_files("#check-form input[name=files]", [str(files["photo"]), str(files["zip"])])
    page.fill("#check-form input[name=institution]", "启明星学堂")
    page.click("#check-form button[type=submit]")
    page.wait_for_selector("text=检查结果", timeout=180_000)
    body = page.inner_text("main")
    assert "面向学龄前儿童开展学科类培训" in body and "幼小衔接" in body and "照片已做透视校正" in body
    assert "拒收" in body and "压缩包不予解压" in body
    page.click("text=查看案件 >> nth=0")
    page.wait_for_url("**/cases/**")
    assert "启明星学堂" in page.inner_text("main")
    assert "海报照片.jpg" in page.inner_text("#case-intake")  # the material the case was read from
    assert any(a == "check_submitted" for a, _, _ in audit_rows(store))


def test_tip_with_upload_and_link_leads_to_cases(server, page, files, store, demo_sites):
    page.goto(server + "/tips/")
    page.select_option("#tip-form select[name=channel]", "online_form")
    page.fill("#tip-form input[name=contact]", "李先生 139****0000")
    page.fill("#tip-form input[name=institution]", "星光少儿在线")
    page.fill("#tip-form textarea[name=text]", "网站和宣传册都在招幼小衔接班")
    page.fill("#tip-form textarea[name=links]", demo_sites.urls["xingguang"] + "notice.html")
    page.set_input_files("#tip-form input[name=files]", [str(files["pdf"])])
    page.click("#tip-form button[type=submit]")
    page.wait_for_url("**/tips/JB-*/", timeout=300_000)
    body = page.inner_text("main")
    assert "已登记举报" in body and "网上举报" in body and "李先生 139****0000" in body
    assert "课程手册.pdf" in body and "notice.html" in body
    rows = page.locator("#tip-cases tbody tr a")
    assert rows.count() >= 2  # the brochure's and the rendered page's cases
    tip_url = page.url
    rows.first.click()  # the case page says where it came from: the material and the tip
    page.wait_for_url("**/cases/**")
    intake = page.inner_text("#case-intake")
    assert "由举报" in intake and "网上举报" in intake and ("课程手册.pdf" in intake or "notice.html" in intake)
    page.goto(tip_url)
    page.select_option("select[name=outcome]", "referred")
    page.fill("input[name=note]", "移交市场监管")
    page.click("text=保存")
    page.wait_for_selector("text=已移交")
    tip_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    shown = jianfu("tips", "show", tip_id, "--store", str(store), "--format", "json")
    assert '"outcome": "referred"' in shown.stdout
    audit = audit_rows(store)
    assert ("tip_added", tip_id) in [(a, t) for a, t, _ in audit] and any(a == "tip_outcome" for a, _, _ in audit)
    assert not any("139****0000" in (d or "") for _, _, d in audit)  # the tipster's contact never in the log
    # another district's investigator: not in the list, 403 on the page
    far = login(server, "far", PASSWORDS["far"])
    assert tip_id not in far.get(server + "/tips/").text
    assert far.get(server + f"/tips/{tip_id}/").status_code == 403
    assert post(far, server, f"/tips/{tip_id}/outcome/", {"outcome": "closed"}).status_code == 403


def test_intake_posts_need_csrf_and_a_login(server):
    inv = login(server, "inv", PASSWORDS["inv"])
    r = inv.post(server + "/tips/", data={"channel": "phone", "text": "x"}, headers={"Referer": server + "/tips/"})
    assert r.status_code == 403
    anon = requests.get(server + "/check/", allow_redirects=False)
    assert anon.status_code == 302 and "/login/" in anon.headers["Location"]
