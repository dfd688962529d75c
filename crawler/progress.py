"""Progress lines on stderr while a scan runs, and the spider's close reason for the record."""

from __future__ import annotations

import sys

from scrapy import signals
from scrapy.crawler import Crawler
from twisted.internet import task

from crawler.context import context_of


class Progress:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.interval = crawler.settings.getfloat("JIANFU_PROGRESS_SECONDS", 2.0)
        self.loop: task.LoopingCall | None = None
        crawler.signals.connect(self.opened, signal=signals.spider_opened)
        crawler.signals.connect(self.closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Progress:
        return cls(crawler)

    def line(self) -> str:
        s = context_of(self.crawler).stats
        return (f"jianfu scan: pages {s['pages']} · images {s['images']} (ocr {s['ocr_runs']}, cached "
                f"{s['ocr_cached']}) · errors {s['errors']} · findings {s['findings']}")

    def opened(self, spider: object) -> None:
        if self.interval > 0:
            self.loop = task.LoopingCall(lambda: print(self.line(), file=sys.stderr, flush=True))
            self.loop.start(self.interval, now=False)

    def closed(self, spider: object, reason: str) -> None:
        if self.loop and self.loop.running:
            self.loop.stop()
        context_of(self.crawler).stats["close_reason:" + reason] += 1
