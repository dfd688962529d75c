"""Ad campaigns: the same ad posted on several pages and sites, recognised by perceptual hash.

Every image the crawler reads gets a 64-bit pHash (``images.phash``, see ``detectors.images``).
Re-encoding (PNG → JPEG), resizing (960×240 → 900×225) and CDN recompression move a pHash by a few
bits; different ads, even with the same layout, differ by 16 or more on the demo banners. Two
images are *the same ad* when their Hamming distance is ≤ ``max_distance`` (default
:data:`MAX_DISTANCE`), and a campaign is a connected group of such images (single linkage:
union-find over every close pair).

Close pairs come from a BK-tree over the distinct hashes, so clustering costs about
n·(tree nodes visited per query) rather than n²/2 comparisons: a query with a radius of a few bits
visits a small part of the tree. Identical hashes are merged before the tree is built.

    for c in campaigns(store, max_distance=6, min_sites=2):
        c.id, c.sites, c.institutions, c.pages, c.image_urls, c.categories, c.first_seen, ...

``jianfu campaigns --store DIR [--format table|jsonl] [--max-distance N] [--min-sites N]``
prints them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_DISTANCE = 6  # of 64 bits: re-encoded/resized copies measure 0–4, different banners ≥ 16
HASH_BITS = 64


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def degenerate(h: int) -> bool:
    """A flat or nearly flat picture (blank spacer, solid colour) has almost no bits set in its
    pHash; such hashes say nothing about content and would join unrelated images."""
    return h.bit_count() <= 1 or h.bit_count() >= HASH_BITS - 1


class BKTree:
    """Burkhard–Keller tree over integers under Hamming distance: ``near(h, r)`` finds every stored
    value within ``r`` bits of ``h`` by visiting only children whose edge distance d satisfies
    |d − dist(h, node)| ≤ r (the triangle inequality prunes the rest)."""

    def __init__(self) -> None:
        self.root: int | None = None
        self.children: dict[int, dict[int, int]] = {}

    def add(self, h: int) -> None:
        if self.root is None:
            self.root = h
            self.children[h] = {}
            return
        node = self.root
        while True:
            d = hamming(h, node)
            if d == 0:
                return
            kids = self.children[node]
            if d not in kids:
                kids[d] = h
                self.children[h] = {}
                return
            node = kids[d]

    def near(self, h: int, radius: int) -> Iterator[tuple[int, int]]:
        """(value, distance) for every stored value within ``radius`` of ``h``."""
        if self.root is None:
            return
        stack = [self.root]
        while stack:
            node = stack.pop()
            d = hamming(h, node)
            if d <= radius:
                yield node, d
            for edge, child in self.children[node].items():
                if d - radius <= edge <= d + radius:
                    stack.append(child)


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def cluster_hashes(hashes: Iterable[str], max_distance: int = MAX_DISTANCE) -> list[list[str]]:
    """Group pHash hex strings into clusters whose members chain together by steps of at most
    ``max_distance`` bits. Each cluster is sorted; clusters come largest first. Degenerate (flat
    image) hashes stay alone."""
    values = sorted({int(h, 16) for h in hashes if h})
    uf = UnionFind()
    tree = BKTree()
    for v in values:
        uf.find(v)
        if degenerate(v):
            continue
        for other, _ in tree.near(v, max_distance):
            uf.union(v, other)
        tree.add(v)
    groups: dict[int, list[int]] = defaultdict(list)
    for v in values:
        groups[uf.find(v)].append(v)
    width = HASH_BITS // 4
    out = [[format(v, f"0{width}x") for v in sorted(g)] for g in groups.values()]
    return sorted(out, key=lambda g: (-len(g), g[0]))


# -- campaigns from a store --------------------------------------------------------------------


@dataclass
class CampaignImage:
    sha256: str
    phash: str
    width: int | None
    height: int | None
    format: str | None
    urls: list[str] = field(default_factory=list)
    qr: list[str] = field(default_factory=list)


@dataclass
class Campaign:
    id: str  # "c-" + the first 12 hex digits of the smallest member sha256 (stable while it stays)
    images: list[CampaignImage]
    sites: list[str]  # origins of the pages showing it
    institutions: list[str]
    pages: list[str]
    image_urls: list[str]
    first_seen: str | None
    last_seen: str | None
    categories: dict[str, int]  # finding category → findings (image findings on these images)
    max_distance: int | None  # largest pHash distance between two of its images (None: too many to compare)
    qr: list[str]  # QR payloads decoded from its images

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _spread(values: list[int], limit: int = 256) -> int | None:
    if len(values) > limit:
        return None
    return max((hamming(a, b) for i, a in enumerate(values) for b in values[i + 1:]), default=0)


def _origin(url: str) -> str:
    s = urlsplit(url)
    return f"{s.scheme}://{s.netloc}".lower()


def campaigns(store: Any, *, max_distance: int = MAX_DISTANCE, min_sites: int = 2,
              min_pages: int = 1) -> list[Campaign]:
    """The campaigns in ``store`` (a :class:`store.Store`): clusters of images within
    ``max_distance`` pHash bits, shown on at least ``min_sites`` sites and ``min_pages`` pages,
    most sites first."""
    db = store.db
    images: dict[str, CampaignImage] = {}
    by_hash: dict[str, list[str]] = defaultdict(list)
    for row in db.execute("SELECT sha256, phash, width, height, format, qr FROM images "
                          "WHERE phash IS NOT NULL AND phash != '' AND error IS NULL"):
        img = CampaignImage(row["sha256"], row["phash"], row["width"], row["height"], row["format"],
                            qr=json.loads(row["qr"]) if row["qr"] else [])
        images[img.sha256] = img
        by_hash[img.phash].append(img.sha256)

    shown: dict[str, list[tuple[str, str, str | None, str | None]]] = defaultdict(list)
    for row in db.execute(
        """SELECT pi.sha256, pi.page_url, pi.image_url, p.institution, p.fetched_at
           FROM page_images pi LEFT JOIN pages p ON p.scan_id = pi.scan_id AND p.url = pi.page_url
           WHERE pi.sha256 IS NOT NULL AND pi.error IS NULL"""
    ):
        if row["sha256"] in images:
            shown[row["sha256"]].append((row["page_url"], row["image_url"], row["institution"], row["fetched_at"]))

    categories: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in db.execute("SELECT image_sha256, category, COUNT(*) FROM findings "
                          "WHERE source = 'image' AND image_sha256 IS NOT NULL GROUP BY image_sha256, category"):
        categories[row[0]][row[1]] += row[2]

    out = []
    for group in cluster_hashes(by_hash, max_distance):
        shas = sorted(sha for h in group for sha in by_hash[h])
        members = [images[s] for s in shas]
        sights = [s for sha in shas for s in shown.get(sha, [])]
        for img in members:
            img.urls = sorted({u for page, u, *_ in shown.get(img.sha256, [])})
        sites = sorted({_origin(page) for page, *_ in sights})
        pages = sorted({page for page, *_ in sights})
        if len(sites) < min_sites or len(pages) < min_pages:
            continue
        seen = sorted(t for *_, t in sights if t)
        cats: dict[str, int] = defaultdict(int)
        for sha in shas:
            for cat, n in categories.get(sha, {}).items():
                cats[cat] += n
        ints = [int(h, 16) for h in group]
        out.append(Campaign(
            id="c-" + shas[0][:12], images=members, sites=sites,
            institutions=sorted({inst for *_, inst, _ in sights if inst}), pages=pages,
            image_urls=sorted({u for _, u, *_ in sights}),
            first_seen=seen[0] if seen else None, last_seen=seen[-1] if seen else None,
            categories=dict(sorted(cats.items())),
            max_distance=_spread(ints),
            qr=sorted({p for img in members for p in img.qr}),
        ))
    return sorted(out, key=lambda c: (-len(c.sites), -len(c.pages), c.id))


# -- jianfu campaigns --------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("campaigns", help="list ads posted on several sites (images alike by perceptual hash)")
    p.add_argument("--store", required=True)
    p.add_argument("--format", choices=["table", "jsonl"], default="table")
    p.add_argument("--max-distance", type=_distance, default=MAX_DISTANCE, metavar="N",
                   help=f"largest pHash Hamming distance (of 64 bits) for the same ad (default {MAX_DISTANCE})")
    p.add_argument("--min-sites", type=_positive, default=2, metavar="N",
                   help="only campaigns seen on at least N sites (default 2; 1 lists every image group)")
    p.set_defaults(func=run_campaigns)


def _distance(value: str) -> int:
    n = int(value)
    if not 0 <= n <= HASH_BITS:
        raise argparse.ArgumentTypeError(f"must be 0–{HASH_BITS}")
    return n


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def run_campaigns(args: argparse.Namespace) -> int:
    from store.command import open_existing

    with open_existing(args.store, read_only=True) as store:
        found = campaigns(store, max_distance=args.max_distance, min_sites=args.min_sites)
    if args.format == "jsonl":
        for c in found:
            sys.stdout.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
        return 0
    for c in found:
        cats = ", ".join(f"{k} ×{n}" for k, n in c.categories.items()) or "no findings"
        print(f"{c.id}  {len(c.images)} image(s), {len(c.sites)} site(s), {len(c.pages)} page(s), "
              f"pHash distance ≤ {c.max_distance if c.max_distance is not None else '?'}")
        print(f"  seen         {c.first_seen or '?'} … {c.last_seen or '?'}")
        print(f"  institutions {', '.join(c.institutions) or '(unknown)'}")
        print(f"  categories   {cats}")
        for img in c.images:
            size = f"{img.width}×{img.height}" if img.width else "?"
            for url in img.urls or ["(not linked)"]:
                print(f"  image        {img.phash}  {size:>9} {img.format or '?':<4}  {url}")
        for page in c.pages:
            print(f"  page         {page}")
        for payload in c.qr:
            print(f"  QR           {payload}")
        print()
    print(f"{len(found)} campaign(s) (pHash distance ≤ {args.max_distance}, on ≥ {args.min_sites} site(s))")
    return 0
