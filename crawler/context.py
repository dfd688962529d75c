"""One scan's shared state, handed to Scrapy components by scan id."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from scrapy.crawler import Crawler

from crawler.address_guard import is_exempt_seed_host
from crawler.warc import WarcWriter
from crawler.workers import WorkerProcess
from store import Store


@dataclass(frozen=True, slots=True)
class Seed:
    url: str
    institution: str
    district: str | None = None
    render: bool | None = None  # per-target browser rendering (None: the scan's --render)


def origin(url: str) -> str:
    s = urlsplit(url)
    return f"{s.scheme}://{s.netloc}".lower()


@dataclass
class ScanContext:
    store: Store
    scan_id: str
    seeds: list[Seed]
    worker: WorkerProcess  # detection and OCR (crawler.workers)
    warc: WarcWriter
    settings: dict[str, Any] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)
    origins: dict[str, Seed] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for seed in self.seeds:
            self.origins.setdefault(origin(seed.url), seed)

    def seed_for(self, url: str) -> Seed | None:
        return self.origins.get(origin(url))

    def adopt_origin(self, url: str, seed: Seed) -> None:
        """A seed that redirected to another origin (http→https, www.) brings that origin in."""
        self.origins.setdefault(origin(url), seed)

    @cached_property
    def exempt_hosts(self) -> frozenset[str]:
        """Seeded hosts the private-address guards let through: only those typed as a literal IP
        address or ``localhost`` (the demo, tests, an investigator's lab). A seeded DNS name is
        resolved and checked like any other host: the institution controls its own DNS."""
        hosts = ((urlsplit(s.url).hostname or "").lower() for s in self.seeds)
        return frozenset(h for h in hosts if h and is_exempt_seed_host(h))


CONTEXTS: dict[str, ScanContext] = {}


def context_of(crawler: Crawler) -> ScanContext:
    scan_id = crawler.settings.get("JIANFU_SCAN_ID")
    try:
        return CONTEXTS[scan_id]
    except KeyError:
        raise RuntimeError(f"no scan context for scan id {scan_id!r}: start scans through crawler.runner") from None
