"""The private-address guard (HTTP and browser share one check) and the scan's scope: a hostile page
cannot steer the crawler into an internal network or onto another site.

Name resolution is faked here (``crawler.address_guard.resolve``): these tests never ask a DNS
server and never touch an address outside 127.0.0.0/8."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from scrapy import Request
from scrapy.exceptions import IgnoreRequest

from crawler import address_guard, render
from crawler.address_guard import is_private_host
from crawler.context import CONTEXTS, ScanContext, Seed
from crawler.middlewares import PrivateAddressGuard
from tests.conftest import jianfu

FAKE_DNS = {
    "intranet.school.test": ["10.20.30.40"],
    "rebound.school.test": ["203.0.113.9", "192.168.1.5"],   # one private answer is enough
    "metadata.school.test": ["169.254.169.254"],
    "mapped.school.test": ["::ffff:127.0.0.1"],
    "public.school.test": ["93.184.216.34", "2606:2800:220:1::"],
}


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch):
    async def resolve(host: str) -> list[str]:
        if host not in FAKE_DNS:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return FAKE_DNS[host]

    monkeypatch.setattr(address_guard, "resolve", resolve)
    address_guard._cache.clear()
    yield
    address_guard._cache.clear()


def check(host: str) -> str | None:
    return asyncio.run(is_private_host(host))


@pytest.mark.parametrize("host", ["127.0.0.2", "10.0.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1",
                                  "0.0.0.0", "::1", "fe80::1", "::ffff:10.0.0.1", "localhost", "shop.localhost",
                                  "intranet.school.test", "rebound.school.test", "metadata.school.test",
                                  "mapped.school.test", "INTRANET.School.Test."])
def test_private_hosts_are_named(host):
    why = check(host)
    assert why and why.startswith("private address: ")


@pytest.mark.parametrize("host", ["93.184.216.34", "2606:2800:220:1::", "public.school.test",
                                  "does-not-resolve.test", ""])
def test_public_or_unresolvable_hosts_pass(host):
    assert check(host) is None  # an unresolvable name is not blocked: the fetch fails on its own


def fake_crawler(*seeds: str) -> SimpleNamespace:
    scan_id = f"guard-test-{len(CONTEXTS)}"
    CONTEXTS[scan_id] = ScanContext(store=None, scan_id=scan_id, seeds=[Seed(u, "测试机构") for u in seeds],
                                    worker=None, warc=None)
    return SimpleNamespace(settings={"JIANFU_SCAN_ID": scan_id})


def http_blocks(crawler: SimpleNamespace, url: str) -> str | None:
    try:
        asyncio.run(PrivateAddressGuard(crawler).process_request(Request(url)))
    except IgnoreRequest as e:
        return str(e)
    return None


def browser_blocks(url: str) -> str | None:
    render.BLOCKED.clear()
    aborted = asyncio.run(render.abort_request(SimpleNamespace(url=url)))
    why = render.BLOCKED.pop(url, None)
    assert aborted == (why is not None)
    return why


@pytest.mark.parametrize("url", ["http://intranet.school.test/", "http://localhost:8080/a.png",
                                 "https://127.0.0.2/x", "http://[::1]:81/", "http://public.school.test/",
                                 "http://nowhere.school.test/", "http://rebound.school.test/ad.png"])
def test_http_and_browser_guards_agree(url, monkeypatch):
    crawler = fake_crawler("http://127.0.0.1:9/")
    monkeypatch.setattr(render, "ALLOWED_HOSTS", set())
    http = http_blocks(crawler, url)
    browser = browser_blocks(url)
    assert (http is None) == (browser is None), (http, browser)
    if http:
        assert browser == f"{http} (browser request blocked)"


def test_only_literal_or_localhost_seeds_are_exempt():
    ctx = CONTEXTS[fake_crawler("http://127.0.0.1:8801/", "http://LOCALHOST:8802/a", "http://[::1]:81/",
                                "http://intranet.school.test/", "https://public.school.test/").settings["JIANFU_SCAN_ID"]]
    assert ctx.exempt_hosts == {"127.0.0.1", "localhost", "::1"}


@pytest.mark.parametrize("url", ["http://intranet.school.test/index.html", "http://metadata.school.test/latest/"])
def test_a_seeded_name_pointing_inside_is_still_refused(url, monkeypatch):
    """An institution controls its own DNS: seeding its domain does not let it aim jianfu at an
    internal address, over HTTP or in the browser."""
    crawler = fake_crawler(url)
    ctx = CONTEXTS[crawler.settings["JIANFU_SCAN_ID"]]
    monkeypatch.setattr(render, "ALLOWED_HOSTS", set(ctx.exempt_hosts))
    assert ctx.seed_for(url) is not None
    assert "private address" in (http_blocks(crawler, url) or "")
    assert "private address" in (browser_blocks(url) or "")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/", "http://localhost:9/", "http://[::1]:9/"])
def test_literal_and_localhost_seeds_pass_both_guards(url, monkeypatch):
    crawler = fake_crawler(url)
    monkeypatch.setattr(render, "ALLOWED_HOSTS", set(CONTEXTS[crawler.settings["JIANFU_SCAN_ID"]].exempt_hosts))
    assert http_blocks(crawler, url + "page.html") is None
    assert browser_blocks(url + "img/a.png") is None


# -- end to end: a plain (no --render) scan of the hostile site ----------------------------------------
@pytest.fixture(scope="module")
def hostile_scan(demo_sites, tmp_path_factory):
    store = tmp_path_factory.mktemp("guard-store")
    base = demo_sites.urls["hostile"]
    proc = jianfu("scan", base, "--store", str(store), "--json", "--quiet", "--timeout", "3", "--depth", "1",
                  "--max-pages", "30", "--no-auto-render")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return store, json.loads(proc.stdout), base


def db(store: Path) -> sqlite3.Connection:
    con = sqlite3.connect(store / "jianfu.sqlite3")
    con.row_factory = sqlite3.Row
    return con


def test_http_guard_refuses_unseeded_loopback_names(hostile_scan):
    store, summary, base = hostile_scan
    port = urlsplit(base).port
    failures = {f["url"]: f for f in summary["failures"]}
    for host in ("127.0.0.2", "localhost"):
        url = f"http://{host}:{port}/ok.html"
        assert failures[url]["error"] == "private_address", failures.get(url)
        assert f"{host}" in failures[url]["reason"] and "not a seeded host" in failures[url]["reason"]
    with db(store) as con:
        hosts = {urlsplit(r["url"]).hostname for r in con.execute("SELECT url FROM pages")}
        assert hosts == {"127.0.0.1"}
        for host in ("127.0.0.2", "localhost"):
            rows = con.execute("SELECT status, error, warc_offset FROM fetches WHERE url LIKE ?",
                               (f"http://{host}:%",)).fetchall()
            assert rows and all(r["error"] == "private_address" and r["status"] is None
                                and r["warc_offset"] is None for r in rows)  # never fetched


def test_a_redirect_off_the_site_is_recorded_not_stored(hostile_scan, demo_sites):
    """/redirect-out (a link at depth 1) answers 302 to another demo site: that site is not the
    institution's, so its page is not stored and it does not join the scan's scope."""
    store, summary, base = hostile_scan
    elsewhere = demo_sites.urls["caihong"]
    failures = {f["url"]: f for f in summary["failures"]}
    assert failures[elsewhere]["error"] == "off_site"
    assert failures[elsewhere]["reason"] == f"redirected off the scanned sites to {elsewhere}"
    with db(store) as con:
        assert con.execute("SELECT COUNT(*) FROM pages WHERE url LIKE ? OR final_url LIKE ?",
                           (elsewhere + "%", elsewhere + "%")).fetchone()[0] == 0
        hop = con.execute("SELECT status, reason FROM fetches WHERE url=?", (base + "redirect-out",)).fetchone()
        assert hop["status"] == 302 and elsewhere in hop["reason"]
        # nothing the foreign page links to or shows was fetched
        other = con.execute("SELECT url FROM fetches WHERE url LIKE ? AND url NOT IN (?, ?)",
                            (elsewhere + "%", elsewhere, elsewhere + "robots.txt")).fetchall()
        assert [r["url"] for r in other] == []


def test_a_seed_that_redirects_brings_its_new_origin_in(demo_sites, tmp_path):
    """A seed (depth 0) that moves to another origin (http→https, www.) keeps its institution: the
    page is stored and the new origin's links are followed."""
    elsewhere = demo_sites.urls["caihong"]
    proc = jianfu("scan", "彩虹=" + demo_sites.urls["hostile"] + "redirect-out", "--store", str(tmp_path),
                  "--json", "--quiet", "--depth", "1", "--max-pages", "4", "--no-auto-render")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not [f for f in json.loads(proc.stdout)["failures"] if f["error"] == "off_site"]
    with db(tmp_path) as con:
        pages = [r["url"] for r in con.execute("SELECT url FROM pages")]
    assert elsewhere in pages and len([u for u in pages if u.startswith(elsewhere)]) > 1, pages


def test_an_image_answering_4xx_or_5xx_is_listed_with_its_status(hostile_scan):
    store, _, base = hostile_scan
    with db(store) as con:
        links = {r["image_url"]: r for r in con.execute(
            "SELECT image_url, sha256, error FROM page_images WHERE page_url=?", (base,))}
    assert links[base + "img/missing.png"]["error"] == "HTTP 404"
    assert links[base + "img/server-error.png"]["error"] == "HTTP 500"
    assert links[base + "img/missing.png"]["sha256"] is None
