"""Ad campaigns: images alike by perceptual hash, clustered across sites (store/campaigns.py)."""

from __future__ import annotations

import json
import random

import pytest

from detectors.model import Finding
from store import Store
from store.campaigns import BKTree, campaigns, cluster_hashes, hamming
from tests.conftest import jianfu


def flip(h: int, bits: int, rng: random.Random) -> int:
    for b in rng.sample(range(64), bits):
        h ^= 1 << b
    return h


def brute_force(values: list[int], radius: int) -> set[frozenset[int]]:
    parent = {v: v for v in values}

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for i, a in enumerate(values):
        for b in values[i + 1:]:
            if hamming(a, b) <= radius:
                parent[find(a)] = find(b)
    groups: dict[int, set[int]] = {}
    for v in values:
        groups.setdefault(find(v), set()).add(v)
    return {frozenset(g) for g in groups.values()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clusters_match_brute_force(seed):
    rng = random.Random(seed)
    values = []
    for _ in range(60):  # 60 ads, each re-encoded a few times (0–4 bits moved), plus noise hashes
        base = rng.getrandbits(64)
        values += [base] + [flip(base, rng.randint(0, 4), rng) for _ in range(rng.randint(0, 3))]
    values += [rng.getrandbits(64) for _ in range(200)]
    values = [v for v in dict.fromkeys(values) if 1 < v.bit_count() < 63]
    got = {frozenset(int(h, 16) for h in g) for g in cluster_hashes([f"{v:016x}" for v in values], 6)}
    assert got == brute_force(values, 6)


def test_bk_tree_finds_exactly_the_neighbours():
    rng = random.Random(7)
    values = list({rng.getrandbits(64) for _ in range(500)})
    tree = BKTree()
    for v in values:
        tree.add(v)
    for q in values[:50] + [flip(values[0], 3, rng)]:
        want = {v for v in values if hamming(q, v) <= 12}
        assert {v for v, _ in tree.near(q, 12)} == want


def test_flat_images_do_not_join_campaigns():
    # a solid-colour picture hashes to (almost) nothing: such hashes must not chain ads together
    assert cluster_hashes(["8000000000000000", "0000000000000000", "8000000000000001"], 6) == [
        ["0000000000000000"], ["8000000000000000"], ["8000000000000001"]]


def _store_with_ads(tmp_path) -> Store:
    store = Store(tmp_path)
    scan = store.begin_scan(["http://a.test/", "http://b.test/", "http://c.test/"])
    ads = {  # sha → (phash, site, page, image url)
        "aa" * 32: ("95eb3a1a6a91c43e", "http://a.test/", "http://a.test/", "http://a.test/img/summer.png"),
        "bb" * 32: ("95eb3a1a6a91c43f", "http://b.test/", "http://b.test/news.html", "http://b.test/s.jpg"),
        "cc" * 32: ("857d7a123ac4d137", "http://c.test/", "http://c.test/", "http://c.test/other.png"),
        "dd" * 32: ("857d7a123ac4d137", "http://c.test/", "http://c.test/more.html", "http://c.test/other2.png"),
    }
    institutions = {"http://a.test/": "甲机构", "http://b.test/": "乙机构", "http://c.test/": "丙机构"}
    for sha, (phash, site, page, url) in ads.items():
        store.save_image(sha, bytes=1000, width=960, height=240, format="png", phash=phash, ocr="{}",
                         qr=["http://a.test/landing.html"] if sha.startswith("a") else [])
        store.save_page(scan, page, institution=institutions[site], status=200)
        store.link_image(scan, page, url, sha)
    f = Finding(category="competition_ranking", rule_id="r1", text="奥数", start=0, end=2, score=0.9,
                severity="high", basis="basis", explanation=("why",))
    store.save_findings(scan, "http://a.test/", "image", "奥数", [f], image_url="http://a.test/img/summer.png",
                        image_sha256="aa" * 32, boxes=[[[0, 0], [1, 0], [1, 1], [0, 1]]])
    return store


def test_campaigns_from_a_store(tmp_path):
    with _store_with_ads(tmp_path) as store:
        found = campaigns(store)
        assert len(found) == 1
        c = found[0]
        assert c.sites == ["http://a.test", "http://b.test"]
        assert c.institutions == ["乙机构", "甲机构"]
        assert c.pages == ["http://a.test/", "http://b.test/news.html"]
        assert c.image_urls == ["http://a.test/img/summer.png", "http://b.test/s.jpg"]
        assert c.categories == {"competition_ranking": 1}
        assert c.max_distance == 1 and c.qr == ["http://a.test/landing.html"]
        assert c.first_seen and c.last_seen and c.first_seen <= c.last_seen
        assert c.id == "c-" + "aa" * 6
        # one site, two pages: listed only when asked for single-site groups
        singles = campaigns(store, min_sites=1)
        assert [len(x.sites) for x in singles] == [2, 1]
        assert campaigns(store, max_distance=0) == []


def test_campaigns_command(tmp_path):
    _store_with_ads(tmp_path).close()
    proc = jianfu("campaigns", "--store", str(tmp_path), "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 1 and set(rows[0]["institutions"]) == {"甲机构", "乙机构"}
    table = jianfu("campaigns", "--store", str(tmp_path))
    assert table.returncode == 0 and "甲机构" in table.stdout and "1 campaign(s)" in table.stdout
    assert jianfu("campaigns", "--store", str(tmp_path / "none")).returncode == 1
    bad = jianfu("campaigns", "--store", str(tmp_path), "--max-distance", "99")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_demo_ad_on_two_sites_is_one_campaign(demo_scan):
    store, _, seeds = demo_scan
    proc = jianfu("campaigns", "--store", str(store), "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    summer = [c for c in rows if any(u.endswith("/summer-olympiad.png") for u in c["image_urls"])]
    assert len(summer) == 1, rows
    c = summer[0]
    assert sorted(u.rsplit("/", 1)[-1] for u in c["image_urls"]) == ["summer-olympiad.jpg", "summer-olympiad.png"]
    assert {img["format"] for img in c["images"]} == {"png", "jpeg"}
    assert {(img["width"], img["height"]) for img in c["images"]} == {(960, 240), (900, 225)}
    assert set(c["institutions"]) == {"启明星学堂", "学霸通在线"}
    assert set(c["sites"]) == {seeds["qiming"].rstrip("/"), seeds["xuebatong"].rstrip("/")}
    assert "competition_ranking" in c["categories"]

    # unrelated banners stay apart: every group holds one ad (same file name, any encoding)
    proc = jianfu("campaigns", "--store", str(store), "--format", "jsonl", "--min-sites", "1")
    groups = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(groups) >= 8
    for g in groups:
        stems = {u.rsplit("/", 1)[-1].rsplit(".", 1)[0] for u in g["image_urls"]}
        assert len(stems) == 1, g["image_urls"]
