"""QR codes in ads: payloads stored and carried with findings; targets on the scan's own sites
captured, others recorded and never fetched."""

from __future__ import annotations

import json
import sqlite3

from store import Store
from tests.conftest import jianfu


def test_qr_target_on_the_same_site_is_captured(demo_scan):
    store, _, seeds = demo_scan
    landing = seeds["xuebatong"] + "promo/qr-landing.html"  # linked from nowhere but the QR code
    con = sqlite3.connect(store / "jianfu.sqlite3")
    links = {r[0]: r[1:] for r in con.execute("SELECT payload, action, reason, image_url FROM qr_links")}
    assert links[landing][0] == "queued" and links[landing][2].endswith("/img/scan-qr.png")
    assert con.execute("SELECT status FROM pages WHERE url=?", (landing,)).fetchone() == (200,)
    rows = [json.loads(line) for line in
            jianfu("findings", "--store", str(store), "--format", "jsonl").stdout.splitlines()]
    assert any(f["url"] == landing and f["category"] == "advance_teaching" for f in rows)
    from_qr_ad = [f for f in rows if (f["image_url"] or "").endswith("/img/scan-qr.png")]
    assert from_qr_ad and all(f["qr"] == [landing] for f in from_qr_ad)
    assert all(f["qr"] is None for f in rows if f["source"] == "text")


def test_qr_target_elsewhere_is_recorded_not_fetched(demo_scan):
    store, _, _ = demo_scan
    con = sqlite3.connect(store / "jianfu.sqlite3")
    outside = "https://weixin.qq.com/r/qiming-demo"
    action, reason = con.execute("SELECT action, reason FROM qr_links WHERE payload=?", (outside,)).fetchone()
    assert action == "outside" and reason == f"QR target outside the scan's sites: {outside}"
    assert con.execute("SELECT COUNT(*) FROM fetches WHERE url LIKE '%weixin%'").fetchone()[0] == 0
    qr = con.execute("SELECT qr FROM images WHERE qr LIKE '%weixin%'").fetchone()
    assert json.loads(qr[0]) == [outside]


def test_link_qr_keeps_one_row_per_page_image_payload(tmp_path):
    with Store(tmp_path) as store:
        scan = store.begin_scan(["http://a.test/"])
        for action in ("queued", "page_limit"):
            store.link_qr(scan, "http://a.test/", "http://a.test/qr.png", "ab" * 32, "http://a.test/x", action)
        store.link_qr(scan, "http://a.test/", "http://a.test/qr.png", "ab" * 32, "WIFI:S:x;;", "not_a_url",
                      "QR payload is not a web address: WIFI:S:x;;")
        rows = store.qr_links(scan)
    assert [(r["payload"], r["action"]) for r in rows] == [("WIFI:S:x;;", "not_a_url"), ("http://a.test/x", "page_limit")]
